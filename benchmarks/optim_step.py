"""Time optimizer.step() on ResNet-18-sized tensors (about 11 M parameters).

    python benchmarks/optim_step.py [--steps 50] [--threads 1 2]

Each optimizer runs in its own subprocesses (so that its peak memory can be read), with
random gradients, 5 warm-up steps, then the median of ``--steps`` timed steps; the row is the
median over ``--repeats`` processes (torch's default Adam on CPU allocates temporaries, and
whether the allocator hands it fresh pages varies from process to process). Ratios are
against torch's default Adam and its fused Adam measured in the same run (on CPU torch's
default is its for-loop implementation). ``peak MiB`` is the process's peak resident
memory above what the parameters and gradients already take; ``state MiB`` is what
``optimizer.state`` holds (what a checkpoint saves) and ``kept MiB`` any other memory kept
between steps.

The rows: AdamEaPU as users get it (its base is torch's fused Adam where torch has one);
AdamEaPU over the for-loop Adam (``foreach=False``: the base torch's default uses), which
shows what the in-situ write itself costs; AdamNoise, the noisy-BP baseline (every update
written, dense noise); and a straightforward port of the paper's algorithm.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

# ResNet-18 (ImageNet head) weight and bias shapes: 11.7 M parameters.
SHAPES: list[tuple[int, ...]] = [(64, 3, 7, 7), (64,), (64,)]
for cin, cout, blocks in [(64, 64, 2), (64, 128, 2), (128, 256, 2), (256, 512, 2)]:
    for b in range(blocks):
        c0 = cin if b == 0 else cout
        SHAPES += [(cout, c0, 3, 3), (cout,), (cout,), (cout, cout, 3, 3), (cout,), (cout,)]
        if b == 0 and cin != cout:
            SHAPES += [(cout, cin, 1, 1), (cout,), (cout,)]
SHAPES += [(1000, 512), (1000,)]

OPTIMIZERS = [
    "torch Adam",
    "torch Adam fused",
    "AdamEaPU",
    "AdamEaPU for-loop",
    "AdamNoise",
    "naive AdamEaPU",
]


def naive_adam_eapu(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, th=0.025, sd=0.025):
    """The obvious per-tensor implementation (loop, dense noise draw): the speed reference
    for what a straightforward port of the paper's algorithm costs."""
    import torch

    state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    t = [0]

    @torch.no_grad()
    def step() -> None:
        t[0] += 1
        for p, (m, v) in zip(params, state, strict=True):
            m.mul_(betas[0]).add_(p.grad, alpha=1 - betas[0])
            v.mul_(betas[1]).addcmul_(p.grad, p.grad, value=1 - betas[1])
            denom = (v.sqrt() / (1 - betas[1] ** t[0]) ** 0.5).add_(eps)
            dw = -lr / (1 - betas[0] ** t[0]) * m / denom
            if p.dim() > 1:
                keep = dw.abs() >= torch.rand_like(dw) * th
                dw = torch.where(keep, dw, torch.zeros_like(dw))
                dw = torch.where(dw.abs() >= th, dw, torch.sign(dw) * th)
                dw = dw + torch.randn_like(dw) * sd * (dw != 0)
            p.add_(dw)

    return step


def _mib(tensors: object) -> float:
    import torch

    total = 0
    stack = [tensors]
    while stack:
        x = stack.pop()
        if isinstance(x, torch.Tensor):
            total += x.numel() * x.element_size()
        elif isinstance(x, dict):
            stack += list(x.values())
        elif isinstance(x, (list, tuple)):
            stack += list(x)
    return total / 2**20


def worker(name: str, threads: int, steps: int) -> dict[str, float]:
    import torch

    from eapu.optim import AdamEaPU, AdamNoise

    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(s, generator=g) * 0.05) for s in SHAPES]
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * 1e-2
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    opt: object = None
    if name == "torch Adam":
        opt = torch.optim.Adam(params, lr=1e-3)
    elif name == "torch Adam fused":
        opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    elif name == "AdamEaPU":
        opt = AdamEaPU(params, lr=1e-3, sd_us=2.0, rwg_per_us=1 / 80)
    elif name == "AdamEaPU for-loop":
        opt = AdamEaPU(params, lr=1e-3, sd_us=2.0, rwg_per_us=1 / 80, foreach=False)
    elif name == "AdamNoise":
        opt = AdamNoise(params, lr=1e-3, sd_us=2.0, rwg_per_us=1 / 80)
    step = opt.step if opt is not None else naive_adam_eapu(params)  # type: ignore[attr-defined]
    times = []
    for i in range(5 + steps):
        t0 = time.perf_counter()
        step()
        if i >= 5:
            times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss
    state = _mib(getattr(opt, "state", {}))
    kept = _mib(getattr(opt, "_buffers", {}))
    return {
        "ms": statistics.median(times) * 1e3,
        "peak_mib": peak / 1024,
        "state_mib": state,
        "kept_mib": kept,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3, help="processes per optimizer")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker[0], int(a.worker[1]), a.steps)))
        return
    n = sum(__import__("math").prod(s) for s in SHAPES)
    print(
        f"optimizer.step() on {n / 1e6:.1f} M parameters: median of {a.steps} steps in each of "
        f"{a.repeats} processes, then the median of those (min-max in brackets)"
    )
    print(
        f"{'optimizer':<18} {'threads':>7} {'ms/step':>9} {'(min-max)':>13} {'x Adam':>7} "
        f"{'x fused':>7} {'peak MiB':>9} {'state MiB':>9} {'kept MiB':>9}"
    )
    for threads in a.threads:
        rows = {}
        for name in OPTIMIZERS:  # all first: the ratios need both references
            cmd = [sys.executable, __file__, "--steps", str(a.steps), "--worker", name]
            rows[name] = [
                json.loads(
                    subprocess.run(
                        [*cmd, str(threads)], check=True, capture_output=True, text=True
                    ).stdout
                )
                for _ in range(a.repeats)
            ]
        med = {name: statistics.median(r["ms"] for r in runs) for name, runs in rows.items()}
        ref, fused = med["torch Adam"], med["torch Adam fused"]
        for name, runs in rows.items():
            ms = med[name]
            lo, hi = min(r["ms"] for r in runs), max(r["ms"] for r in runs)
            peak = max(r["peak_mib"] for r in runs)
            print(
                f"{name:<18} {threads:>7} {ms:>9.1f} {f'({lo:.1f}-{hi:.1f})':>13} "
                f"{ms / ref:>7.2f} {ms / fused:>7.2f} {peak:>9.0f} "
                f"{runs[0]['state_mib']:>9.0f} {runs[0]['kept_mib']:>9.0f}"
            )


if __name__ == "__main__":
    main()
