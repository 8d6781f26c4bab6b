"""Time optimizer.step() on large layouts: ResNet-18's shapes and square matrices.

    python benchmarks/optim_step.py [--rounds 15] [--steps 3] [--threads 1 2]
                                    [--layouts resnet18 square2048x3 square4096]

One process per layout and thread count holds every optimizer, each on its own copy of the
parameters (random gradients, shared), and times them interleaved: ``--rounds`` rounds, in
each round every optimizer (in an order rotated per round) takes ``--steps`` steps after
warm-up. A row is the median over rounds of the median step of a round; a ratio is the
median over rounds of that round's ratio to the reference timed in the same round (so a slow
spell of the machine hits both), with its min-max over rounds in brackets.

The rows: torch's Adam and SGD (momentum 0.9) in their default implementation (on CPU the
for-loop) and fused; AdamEaPU and SGDEaPU as users get them (the fused EaPU step of
`eapu.optim.fused` where a C compiler is at hand); the same on the unfused path (``EAPU_FUSED=0``:
torch's fused base, then the rule's passes); AdamNoise (noisy BP: every cell written, dense
noise); and a plain per-tensor port of the paper's algorithm (``--naive``). ΔWth = 2 µS ·
1/80, Adam lr 1e-3: about 4 % of the weights are written per step. ``state MiB`` is what
``optimizer.state`` holds, ``kept MiB`` other memory kept between steps.

Beside the timing, a byte model (float32, no weight decay): the bytes per parameter torch's
fused Adam / SGD reads and writes, those a fused EaPU step must move at least (the gradient
and the state streamed, the weight read and written only where EaPU writes, counted per cell
and per 64-byte line: a line holding a written cell is read and written back whole), and
those the kernel moves (it streams whole blocks of weights in a chunk that follows one of 4
or more written cells of 1024); each as a ratio to torch's, the floor a memory-bound step
could reach, and as GB/s at the measured median step (the model's bytes over the time: an
effective rate, not a measured memory traffic). ``q`` is the fraction of analog weights
written per step, from the optimizer's ledger.

``--baseline-kernel FILE`` adds AdamEaPU and SGDEaPU rows stepped by another source of the
kernel (an older ``fused_kernel.c``), built with the same compiler and flags and swapped in
for those rows' steps: before and after in the same rounds.

``--clock cpu`` times with the process's CPU time instead of the wall clock: on one thread,
what the scheduler gave the step (less noisy on a shared machine, blind to time lost to
other processes' use of the memory bus); on more threads it adds up the threads' times.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

# ResNet-18 (ImageNet head) weight and bias shapes: 11.7 M parameters.
RESNET18: list[tuple[int, ...]] = [(64, 3, 7, 7), (64,), (64,)]
for cin, cout, blocks in [(64, 64, 2), (64, 128, 2), (128, 256, 2), (256, 512, 2)]:
    for b in range(blocks):
        c0 = cin if b == 0 else cout
        RESNET18 += [(cout, c0, 3, 3), (cout,), (cout,), (cout, cout, 3, 3), (cout,), (cout,)]
        if b == 0 and cin != cout:
            RESNET18 += [(cout, cin, 1, 1), (cout,), (cout,)]
RESNET18 += [(1000, 512), (1000,)]
SHAPES = RESNET18  # the name other scripts import

LAYOUTS: dict[str, list[tuple[int, ...]]] = {
    "resnet18": RESNET18,
    "square2048x3": [(2048, 2048)] * 3 + [(2048,)] * 3,
    "square4096": [(4096, 4096), (4096,)],
}

# (row name, reference row for its ratio)
ROWS = [
    ("torch Adam", "torch Adam fused"),
    ("torch Adam fused", "torch Adam fused"),
    ("AdamEaPU", "torch Adam fused"),
    ("AdamEaPU unfused", "torch Adam fused"),
    ("AdamNoise", "torch Adam fused"),
    ("torch SGD", "torch SGD fused"),
    ("torch SGD fused", "torch SGD fused"),
    ("SGDEaPU", "torch SGD fused"),
    ("SGDEaPU unfused", "torch SGD fused"),
]
NAIVE = ("naive AdamEaPU", "torch Adam fused")
BASELINE = [
    ("AdamEaPU, baseline kernel", "torch Adam fused"),
    ("SGDEaPU, baseline kernel", "torch SGD fused"),
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

    state_list = [x for pair in state for x in pair]
    step.state = state_list  # type: ignore[attr-defined]
    return step


LINE = 16  # float32 weights per 64-byte cache line
CHUNK, DENSE_MIN = 1024, 4  # the kernel streams whole blocks after a chunk of >= 4 written


def byte_model(q: float, base: str) -> list[tuple[str, float, float]]:
    """(model, bytes read, bytes written) per float32 weight, no weight decay: torch's fused
    step, the fused EaPU step's floors (per cell, per 64-byte line) and this kernel; ``base``
    "adam" (exp_avg, exp_avg_sq) or "sgd" (a momentum buffer), ``q`` the fraction of the
    weights EaPU writes per step (spread at random: a line holds one with 1 - (1 - q)^16)."""
    state = 2 if base == "adam" else 1
    stream_r, stream_w = 4.0 * (1 + state), 4.0 * state  # the gradient and the state
    line = 1 - (1 - q) ** LINE
    kernel = 1.0 if q * CHUNK >= DENSE_MIN else line  # (its choice, at the mean density)
    return [
        ("torch fused", stream_r + 4, stream_w + 4),
        ("EaPU floor per cell", stream_r + 4 * q, stream_w + 4 * q),
        ("EaPU floor per line", stream_r + 4 * line, stream_w + 4 * line),
        ("this kernel", stream_r + 4 * kernel, stream_w + 4 * kernel),
    ]


def _print_bytes(res: dict[str, Any]) -> None:
    """The byte model beside the measured steps (GB/s: the model's bytes over the median)."""
    t, n, analog = res["times"], res["params"], res["analog"]
    for base, eapu, ref in (
        ("adam", "AdamEaPU", "torch Adam fused"),
        ("sgd", "SGDEaPU", "torch SGD fused"),
    ):
        q = res["written"].get(eapu)
        if q is None:
            continue
        rows = byte_model(q, base)
        torch_b = rows[0][1] + rows[0][2]
        line = 1 - (1 - q) ** LINE
        print(
            f"  {base}: q = {100 * q:.2f} % of the analog weights written per step, "
            f"{100 * line:.0f} % of their 64-byte lines"
        )
        for model, r, w in rows:
            row = {"torch fused": ref, "this kernel": eapu}.get(model)
            total = r + w
            rate = ""
            if row is not None:
                # the digital parameters (biases) are stepped by torch's fused base: its bytes
                step_b = analog * total + (n - analog) * torch_b
                rate = f"{step_b / (statistics.median(t[row]) * 1e-3) / 1e9:>7.1f}"
            name = f"{row} ({model})" if row else model
            line_out = f"    {name:<32} {r:>5.1f} {w:>7.1f} {total:>6.1f} {total / torch_b:>8.2f}"
            print(f"{line_out} {rate}".rstrip())


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


def _baseline_kernel(source: str) -> Any:
    """Another source of the fused kernel, built as `eapu.optim.fused` builds its own (same compiler
    and flags) into a temporary directory and loaded: the rows that step with it swap it in
    for their steps, so an old and a new kernel are timed in the same rounds."""
    import tempfile

    from eapu.optim import fused

    cc = fused._compiler()
    if cc is None:
        raise SystemExit("--baseline-kernel: no C compiler")
    out = os.path.join(tempfile.mkdtemp(prefix="eapu-baseline-"), "kernel.so")
    cmd = [cc, *fused._FLAGS, fused._OPENMP, "-o", out, source, "-lm"]
    subprocess.run(cmd, check=True, capture_output=True)
    return fused._load(out)


def _make(name: str, params: list[Any], baseline: Any = None) -> tuple[Callable[[], Any], object]:
    import torch

    from eapu.optim import AdamEaPU, AdamNoise, SGDEaPU, fused

    kw = {"sd_us": 2.0, "rwg_per_us": 1 / 80}
    opt: Any
    if name == "torch Adam":
        opt = torch.optim.Adam(params, lr=1e-3)
    elif name == "torch Adam fused":
        opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    elif name.startswith("AdamEaPU"):
        opt = AdamEaPU(params, lr=1e-3, **kw)
    elif name == "AdamNoise":
        opt = AdamNoise(params, lr=1e-3, **kw)
    elif name == "torch SGD":
        opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    elif name == "torch SGD fused":
        opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9, fused=True)
    elif name.startswith("SGDEaPU"):
        opt = SGDEaPU(params, lr=1e-3, momentum=0.9, **kw)
    else:
        step = naive_adam_eapu(params)
        return step, step
    if name.endswith("unfused"):

        def step() -> None:
            os.environ["EAPU_FUSED"] = "0"
            try:
                opt.step()
            finally:
                os.environ.pop("EAPU_FUSED")

        return step, opt
    if name.endswith("baseline kernel"):

        def step() -> None:
            own, fused._lib = fused._lib, baseline
            try:
                opt.step()
            finally:
                fused._lib = own

        return step, opt
    return opt.step, opt


def worker(
    layout: str,
    threads: int,
    rounds: int,
    steps: int,
    naive: bool,
    clock: str,
    baseline_source: str | None = None,
) -> dict[str, Any]:
    import torch

    from eapu.optim import fused

    now = time.process_time if clock == "cpu" else time.perf_counter
    torch.set_num_threads(threads)
    have_fused = fused.available()
    names = [r for r, _ in ROWS] + ([NAIVE[0]] if naive else [])
    baseline = None
    if baseline_source and have_fused:
        baseline = _baseline_kernel(baseline_source)
        names += [r for r, _ in BASELINE]
    g = torch.Generator().manual_seed(0)
    w0 = [torch.randn(s, generator=g) * 0.05 for s in LAYOUTS[layout]]
    grads = [torch.randn(s, generator=g) * 1e-2 for s in LAYOUTS[layout]]
    steppers, owners = {}, {}
    for name in names:
        params = [torch.nn.Parameter(w.clone()) for w in w0]
        for p, gr in zip(params, grads, strict=True):
            p.grad = gr
        steppers[name], owners[name] = _make(name, params, baseline)
        for _ in range(3):  # warm-up: state allocated, pages touched
            steppers[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            ts = []
            for _ in range(steps):
                t = now()
                steppers[name]()
                ts.append(now() - t)
            times[name].append(statistics.median(ts) * 1e3)
    written = {n: o.ledger.summary().rup for n, o in owners.items() if n in ("AdamEaPU", "SGDEaPU")}
    return {
        "times": times,
        "written": written,
        "analog": sum(math.prod(s) for s in LAYOUTS[layout] if len(s) > 1),
        "state_mib": {n: _mib(getattr(o, "state", {})) for n, o in owners.items()},
        "kept_mib": {n: _mib(getattr(o, "_buffers", {})) for n, o in owners.items()},
        "fused": have_fused,
        "build_s": fused.build_seconds(),
        "params": sum(math.prod(s) for s in LAYOUTS[layout]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per optimizer per round")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=list(LAYOUTS))
    ap.add_argument("--naive", action="store_true", help="add the plain port (slow)")
    ap.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall clock, or the process's CPU time (see above)",
    )
    ap.add_argument(
        "--baseline-kernel",
        metavar="FILE",
        help="another fused_kernel.c (an older one, say): AdamEaPU and SGDEaPU rows with it",
    )
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        res = worker(
            a.worker[0], int(a.worker[1]), a.rounds, a.steps, a.naive, a.clock, a.baseline_kernel
        )
        print(json.dumps(res))
        return
    rows = [*ROWS, NAIVE] if a.naive else ROWS
    if a.baseline_kernel:
        rows = [*rows, *BASELINE]
    print(
        f"optimizer.step(): median over {a.rounds} interleaved rounds of the median of "
        f"{a.steps} steps; ratio = median over rounds of the round's ratio (min-max); "
        f"{a.clock} clock"
    )
    for layout in a.layouts:
        for threads in a.threads:
            cmd = [sys.executable, __file__, "--rounds", str(a.rounds), "--steps", str(a.steps)]
            cmd += ["--clock", a.clock]
            if a.baseline_kernel:
                cmd += ["--baseline-kernel", os.path.abspath(a.baseline_kernel)]
            cmd += ["--naive"] * a.naive + ["--worker", layout, str(threads)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            res = json.loads(out)
            built = "from the cache" if res["build_s"] == 0 else f"built in {res['build_s']:.1f} s"
            fused_note = (
                f"fused kernel: yes ({built})"
                if res["fused"]
                else "fused kernel: NO (no C compiler: EaPU rows are the unfused path)"
            )
            print(
                f"\n{layout}: {res['params'] / 1e6:.1f} M parameters, {threads} thread(s); "
                f"{fused_note}"
            )
            print(
                f"{'optimizer':<26} {'ms/step':>8} {'(min-max)':>15} {'ratio':>6} "
                f"{'(min-max)':>13} {'to':<17} {'state MiB':>9} {'kept MiB':>8}"
            )
            t = res["times"]
            for name, ref in rows:
                if name not in t:  # (baseline rows without a kernel)
                    continue
                ms = statistics.median(t[name])
                ratios = [x / y for x, y in zip(t[name], t[ref], strict=True)]
                print(
                    f"{name:<26} {ms:>8.1f} {f'({min(t[name]):.1f}-{max(t[name]):.1f})':>15} "
                    f"{statistics.median(ratios):>6.2f} "
                    f"{f'({min(ratios):.2f}-{max(ratios):.2f})':>13} {ref:<17} "
                    f"{res['state_mib'][name]:>9.0f} {res['kept_mib'][name]:>8.0f}"
                )
            print(
                f"byte model, float32, B per weight    {'read':>5} {'written':>7} {'total':>6} "
                f"{'x torch':>8} {'GB/s':>7}"
            )
            _print_bytes(res)


if __name__ == "__main__":
    main()
