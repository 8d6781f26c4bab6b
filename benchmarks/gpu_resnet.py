"""The GPU check: PreActResNet-34 on CIFAR-shaped data, in-situ optimizers against torch's Adam,
then the EaPU write's statistics on the GPU itself.

    python benchmarks/gpu_resnet.py                    # CUDA: under 5 minutes on an H200
    python benchmarks/gpu_resnet.py --device cpu       # tiny sizes: the script's logic, the
                                                       # GPU's code path forced on the CPU
    python benchmarks/gpu_resnet.py --data-dir ~/data  # real CIFAR-10 if it is there

Part 1, speed. Batch 128 of random 3×32×32 images and labels (or the CIFAR-10 training set
when ``--data-dir`` holds ``cifar-10-batches-bin``), cross-entropy, fp32, one network per
optimizer (same seed):

- ``Adam``: torch's Adam in its default implementation (on CUDA: foreach), the reference;
- ``Adam fused``: torch's fused Adam;
- ``AdamEaPU``: weight level (SD εcell 2 µS, Rwg 1/80), its write in one Triton launch
  where triton is usable (`eapu.optim.triton_step`), else the torch path;
- ``AdamEaPU torch``: the same with ``EAPU_TRITON=0``: the write as torch operations;
- ``AdamEaPU compiled``: the same with the write (ΔW, formula 4, noise, counts) as one
  ``torch.compile`` d function of the proposal, the old values and the draws (drawn by torch
  outside it): the alternative to the Triton kernel, measured, not in the library;
- ``AdamEaPU memorial``: device level, the network converted onto ``taox_1t1r`` cells with
  the memorial scheme (EaPU's threshold from the device).

After ``--warmup`` untimed steps each, the optimizers take turns: ``--rounds`` rounds of
``--steps`` timed steps (order rotated per round; fewer steps where the last warm-up steps
say the rounds would run past ``--budget-s``, 240 s by default). Per optimizer: time per
training step and per ``step()`` (CUDA events), images/s, peak GPU memory over its warm-up, host
synchronisations per training step (on CUDA ``torch.cuda.set_sync_debug_mode("warn")`` over
3 steps, counting its warnings; on the CPU the calls in eapu's code that would wait for a
GPU, as ``tests/test_sync_free.py`` counts them), and the ratios to ``Adam`` and ``Adam fused``
(per round, median). The goals: AdamEaPU (weight level) at most 1.1× Adam per training step,
AdamEaPU memorial (device level) at most 2× Adam.

Part 2, statistics, on the same device and code path, for the Triton kernel and the torch
path alike (the properties the CPU tests check): E[ΔWn] = ΔW, P(write) = |ΔW| / ΔWth per
bin, the write noise's SD; the kernel equal to its same-key reference (computed on the CPU)
and independent of its block size; the memorial run's conductances inside the device's
window. Exit status 1 if a check fails, 2 without CUDA unless ``--device cpu`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

import eapu
from eapu.optim import AdamEaPU, InSituOptimizer, tile_of, triton_step
from eapu.runtime import force_sync_free

EPOCH_IMAGES = 50_000
ALL = "Adam,Adam fused,AdamEaPU,AdamEaPU torch,AdamEaPU compiled,AdamEaPU memorial"
SD_US, RWG = 2.0, 1 / 80
GOAL_WEIGHT, GOAL_DEVICE = 1.1, 2.0


def load_data(data_dir: str | None, n: int, device: torch.device) -> tuple[Any, ...]:
    """uint8 images and int64 labels on ``device`` (CIFAR-10 if found, else synthetic)."""
    d = Path(data_dir) if data_dir else None
    if d is not None and (
        (d / "cifar-10-batches-bin").exists() or d.name == "cifar-10-batches-bin"
    ):
        from eapu.data import get_dataset

        ds = get_dataset("cifar10", data_dir=data_dir, split="train")
        x = (ds.images[:n] * 255).round().to(torch.uint8)
        return x.to(device), ds.labels[:n].to(device), "CIFAR-10"
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), generator=g, device=device, dtype=torch.uint8)
    y = torch.randint(0, 10, (n,), generator=g, device=device)
    return x, y, "synthetic"


# --------------------------------------------------------- the compiled alternative
def _write_dense(
    new: Tensor, old: Tensor, bad: Tensor, u: Tensor, z: Tensor, th: float, sd: float
) -> tuple[Tensor, Tensor]:
    """The weight-level write as the torch path computes it, one uniform and one normal per
    cell given: (the cells' new values, the ledger row)."""
    dw = new - old
    skip = bad | ~dw.isfinite()
    dw = torch.where(skip, 0.0, dw)
    a = dw.abs()
    written = a > u * th
    val = torch.where(a >= th, dw, torch.sign(dw) * th)
    out = torch.where(written, old + (val + z * sd), old)
    n, s = written.sum(), skip.sum()
    zero = torch.zeros_like(n)
    return out, torch.stack([n, n, zero, zero, s, zero])


_compiled: Callable[..., tuple[Tensor, Tensor]] | None = None


class CompiledWriteEaPU(AdamEaPU):
    """AdamEaPU whose weight-level writes run `_write_dense` through ``torch.compile``
    (dynamic shapes: one graph for every tensor), in place of the Triton kernel."""

    def _write_triton(
        self, work: list[tuple[dict[str, Any], Tensor]], olds: list[Tensor], bad: list[Tensor]
    ) -> dict[int, Tensor]:
        global _compiled
        if _compiled is None:
            _compiled = torch.compile(_write_dense, dynamic=True, fullgraph=True)
        rows = {}
        for k, (group, p) in enumerate(work):
            if group["rule"] != "eapu" or tile_of(p) is not None:
                continue
            th = self.threshold_for(p, group)
            sd_us, rwg, _ = self.write_model(p, group)
            kw: dict[str, Any] = dict(device=p.device, dtype=p.dtype)
            u = torch.rand(p.shape, generator=self._generator(p.device), **kw)
            z = torch.randn(p.shape, generator=self._generator(p.device, noise=True), **kw)
            out, row = _compiled(p.detach(), olds[k], bad[k], u, z, th, sd_us * rwg)
            p.copy_(out)
            rows[id(p)] = row
        return rows


# --------------------------------------------------------------------- building
def build(name: str, args: argparse.Namespace, device: torch.device) -> tuple[Any, Any, Any]:
    """(model, optimizer, crossbar or None) for optimizer ``name``."""
    from eapu.models import get_model

    model = get_model("preact_resnet34", seed=0, num_classes=10, width=args.width).to(device)
    params = list(model.parameters())
    if name == "Adam":
        return model, torch.optim.Adam(params, lr=1e-3, foreach=True), None
    if name == "Adam fused":
        return model, torch.optim.Adam(params, lr=1e-3, fused=True), None
    if name in ("AdamEaPU", "AdamEaPU torch"):
        return model, AdamEaPU(params, lr=1e-3, sd_us=SD_US, rwg_per_us=RWG, seed=0), None
    if name == "AdamEaPU compiled":
        return model, CompiledWriteEaPU(params, lr=1e-3, sd_us=SD_US, rwg_per_us=RWG, seed=0), None
    if name == "AdamEaPU memorial":
        from eapu.nn import convert

        xb = convert(model, device="taox_1t1r", scheme="memorial", seed=0)
        return model, AdamEaPU(model.parameters(), lr=1e-3, seed=0), xb
    raise ValueError(f"unknown optimizer {name!r}; available: {ALL}")


@contextlib.contextmanager
def path_of(name: str, cpu: bool) -> Iterator[None]:
    """The code path optimizer ``name`` runs: ``EAPU_TRITON=0`` for the torch path; on the
    CPU, the GPU's (sync-free) path, forced."""
    before = os.environ.get("EAPU_TRITON")
    if name == "AdamEaPU torch":
        os.environ["EAPU_TRITON"] = "0"
    try:
        with force_sync_free() if cpu else contextlib.nullcontext():
            yield
    finally:
        if before is None:
            os.environ.pop("EAPU_TRITON", None)
        else:
            os.environ["EAPU_TRITON"] = before


def run_steps(
    model: Any, opt: Any, args: argparse.Namespace, data: tuple[Any, ...], start: int, n: int
) -> tuple[float, float]:
    """``n`` training steps from batch ``start``; (wall s, optimizer-step s)."""
    x_all, y_all = data[0], data[1]
    device = x_all.device
    bs, cuda = args.batch_size, device.type == "cuda"
    batches = len(x_all) // bs
    mean = torch.tensor([0.49, 0.48, 0.45], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.25, 0.24, 0.26], device=device).view(1, 3, 1, 1)
    events, opt_s = [], 0.0
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(start, start + n):
        k = i % batches
        x = (x_all[k * bs : (k + 1) * bs].float() / 255 - mean) / std
        y = y_all[k * bs : (k + 1) * bs]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        if cuda:
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            opt.step()
            e1.record()
            events.append((e0, e1))
        else:
            t = time.perf_counter()
            opt.step()
            opt_s += time.perf_counter() - t
    if cuda:
        torch.cuda.synchronize()
        opt_s = sum(e0.elapsed_time(e1) for e0, e1 in events) / 1e3
    return time.perf_counter() - t0, opt_s


# ------------------------------------------------------------ host synchronisations
_SRC = str(Path(eapu.__file__).resolve().parent)
_SYNC_METHODS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__")


@contextlib.contextmanager
def eapu_syncs() -> Iterator[Counter[str]]:
    """Count the calls made from eapu's source that would wait for a GPU (the counter of
    tests/test_sync_free.py): the CPU's stand-in for CUDA's sync debug mode."""
    counts: Counter[str] = Counter()
    saved: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str) -> None:
        original = getattr(owner, name)
        saved.append((owner, name, original))

        def spy(*a: Any, **k: Any) -> Any:
            if sys._getframe(1).f_code.co_filename.startswith(_SRC):
                counts[name] += 1
            return original(*a, **k)

        setattr(owner, name, spy)

    for name in _SYNC_METHODS:
        wrap(torch.Tensor, name)
    for name in ("nonzero", "masked_select"):
        wrap(torch.Tensor, name)
        wrap(torch, name)
    try:
        yield counts
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


def syncs_per_step(run: Callable[[], Any], steps: int, cuda: bool) -> float:
    """Host synchronisations per training step over ``steps`` steps that ``run`` takes."""
    if not cuda:
        with eapu_syncs() as c:
            run()
        return sum(c.values()) / steps
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum("synchroniz" in str(w.message) for w in caught) / steps


# ----------------------------------------------------------------- part 1: speed
def speed(
    args: argparse.Namespace, device: torch.device, names: list[str]
) -> tuple[Any, bool | None]:
    """Part 1: the table and the goals; returns (the memorial run's crossbar or None,
    whether the goals were met: None where not measured, on the CPU)."""
    cuda, cpu = device.type == "cuda", device.type == "cpu"
    n = min(EPOCH_IMAGES, (args.warmup + args.rounds * args.steps + 3) * args.batch_size)
    data = load_data(args.data_dir, n, device)
    dev_name = torch.cuda.get_device_name(device) if cuda else "CPU (the GPU's path, forced)"
    print(
        f"PreActResNet-34 (width {args.width}), {data[2]} data {tuple(data[0].shape)}, "
        f"batch {args.batch_size}, {dev_name}, torch {torch.__version__}, eapu {eapu.__version__}"
    )
    mode = "interpreted" if triton_step.interpreted() else "compiled"
    tri = (
        f"triton kernel: {mode}"
        if triton_step.available()
        else f"triton kernel: unavailable ({triton_step.unavailable_reason()})"
    )
    print(f"{tri}; AdamEaPU's write takes {'it' if triton_step.available() else 'the torch path'}")
    t_start = time.perf_counter()
    built, peak, setup_s, last = {}, {}, {}, {}
    for name in names:  # build and warm up each; peak memory over its own warm-up steps
        t0 = time.perf_counter()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        built[name] = build(name, args, device)
        with path_of(name, cpu):
            run_steps(*built[name][:2], args, data, 0, args.warmup - 1)
            last[name] = run_steps(*built[name][:2], args, data, args.warmup - 1, 1)[0]
        peak[name] = f"{torch.cuda.max_memory_allocated() / 2**20:.0f}" if cuda else "-"
        setup_s[name] = time.perf_counter() - t0
    # The timed rounds, from each optimizer's last warm-up step, kept inside the budget.
    left = args.budget_s - (time.perf_counter() - t_start)
    need = sum(last.values()) * (args.rounds * args.steps + 3)
    if need > left and args.steps > 3:
        steps = max(3, int(args.steps * left / need))
        print(f"(timed rounds estimated at {need:.0f} s, {left:.0f} s left of --budget-s: "
              f"{steps} steps per round instead of {args.steps})")  # fmt: skip
        args.steps = steps
    else:
        print(f"(timed rounds estimated at {need:.0f} s from the last warm-up steps)")
    step_ms: dict[str, list[float]] = {n: [] for n in names}
    opt_ms: dict[str, list[float]] = {n: [] for n in names}
    start = args.warmup
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            with path_of(name, cpu):
                wall, opt_s = run_steps(*built[name][:2], args, data, start, args.steps)
            step_ms[name].append(wall / args.steps * 1e3)
            opt_ms[name].append(opt_s / args.steps * 1e3)
        start += args.steps
    syncs = {}
    for name in names:
        with path_of(name, cpu):

            def three(name: str = name) -> None:
                run_steps(*built[name][:2], args, data, start, 3)

            syncs[name] = syncs_per_step(three, 3, cuda)

    def ratio(xs: dict[str, list[float]], name: str, ref: str) -> float:
        if ref not in xs:
            return math.nan
        return statistics.median(a / b for a, b in zip(xs[name], xs[ref], strict=True))

    def spread(xs: list[float]) -> str:
        return f"{(max(xs) - min(xs)) / statistics.median(xs) * 100:.0f}%"

    cols = ["optimizer", "step ms", "spread", "epoch s", "img/s", "opt ms", "peak MiB",
            "syncs/step", "x Adam", "x fused", "opt x Adam", "setup s"]  # fmt: skip
    print(
        f"median over {args.rounds} interleaved rounds of {args.steps} steps each (spread: "
        "max - min over rounds, of the median)"
    )
    print(" | ".join(f"{c:>18}" if i == 0 else f"{c:>10}" for i, c in enumerate(cols)))
    for name in names:
        ms = statistics.median(step_ms[name])
        vals = [
            f"{ms:.1f}",
            spread(step_ms[name]),
            f"{ms * (EPOCH_IMAGES // args.batch_size) / 1e3:.1f}",
            f"{args.batch_size / ms * 1e3:.0f}",
            f"{statistics.median(opt_ms[name]):.2f}",
            peak[name],
            f"{syncs[name]:.1f}",
            f"{ratio(step_ms, name, 'Adam'):.2f}",
            f"{ratio(step_ms, name, 'Adam fused'):.2f}",
            f"{ratio(opt_ms, name, 'Adam'):.2f}",
            f"{setup_s[name]:.1f}",
        ]
        print(" | ".join([f"{name:>18}"] + [f"{v:>10}" for v in vals]))
    ok: bool | None = True
    for name, goal, what in (
        ("AdamEaPU", GOAL_WEIGHT, "weight level"),
        ("AdamEaPU memorial", GOAL_DEVICE, "device level"),
    ):
        if name in names:
            x = ratio(step_ms, name, "Adam")
            met = x <= goal
            ok = ok and met
            verdict = ("met" if met else "missed") if cuda else "the CPU: no measure of the goal"
            print(
                f"goal: {name} ({what}) <= {goal:g}x Adam per training step: {x:.2f}x ({verdict})"
            )
    xb = built["AdamEaPU memorial"][2] if "AdamEaPU memorial" in built else None
    sys.stdout.flush()
    return xb, ok if cuda else None


# ------------------------------------------------------------ part 2: statistics
class Checks:
    """Prints one line per check; remembers whether all passed."""

    def __init__(self) -> None:
        self.failed = 0

    def __call__(self, what: str, path: str, ok: bool, detail: str) -> None:
        self.failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {what:<44} {path:<8} {detail}")
        sys.stdout.flush()


def sgd_write(dw: Tensor, *, threshold: float, sd_us: float, seed: int) -> tuple[Tensor, Any]:
    """One InSituOptimizer step (SGD, lr 1, from 0) that proposes ``dw``: (ΔWn + noise as
    written, the ledger's summary)."""
    w = torch.nn.Parameter(torch.zeros_like(dw))
    opt = InSituOptimizer(
        [w], torch.optim.SGD, lr=1.0, threshold=threshold, sd_us=sd_us, rwg_per_us=RWG,
        analog=lambda p: True, seed=seed,
    )  # fmt: skip
    w.grad = -dw
    opt.step()
    return w.detach(), opt.ledger.summary()


def statistics_checks(device: torch.device, n: int, xb: Any) -> int:
    cpu = device.type == "cpu"
    check = Checks()
    th = SD_US * RWG
    paths = ["kernel", "torch"] if triton_step.available() else ["torch"]
    if not triton_step.available():
        print(f"(the Triton kernel is unavailable: {triton_step.unavailable_reason()})")
    print(f"statistics on {device}, {n} cells per draw; bounds 5 standard errors")
    for path in paths:
        with path_of("AdamEaPU" if path == "kernel" else "AdamEaPU torch", cpu):
            for k, d in enumerate((0.004, -0.011, 0.02)):
                dw = torch.full((n,), d, device=device)
                out, s = sgd_write(dw, threshold=th, sd_us=0.0, seed=k)
                p = abs(d) / th
                mean = out.double().mean().item()
                se = th * math.sqrt(p * (1 - p) / n)
                check(f"E[dWn] = dW = {d:g}", path, abs(mean - d) < 5 * se,
                      f"mean {mean:.6f} ({(mean - d) / se:+.1f} SE)")  # fmt: skip
                frac = (out != 0).double().mean().item()
                fse = math.sqrt(p * (1 - p) / n)
                check(f"P(write) = |dW|/dWth = {p:.2f}", path, abs(frac - p) < 5 * fse,
                      f"{frac:.4f} ({(frac - p) / fse:+.1f} SE); ledger {s.written}")  # fmt: skip
                check(f"dWn in {{0, sign(dW) dWth}}, d = {d:g}", path,
                      bool(((out == 0) | (out == math.copysign(th, d))).all()), "")  # fmt: skip
            bins = 20
            per = n // bins
            level = (torch.arange(bins, dtype=torch.float64) + 0.5) / bins
            sign = torch.randint(0, 2, (bins, per), generator=torch.Generator().manual_seed(3))
            dw = (level[:, None] * th * (sign * 2 - 1)).float().to(device)
            out, _ = sgd_write(dw, threshold=th, sd_us=0.0, seed=7)
            frac = (out != 0).double().mean(1).cpu()
            z = (frac - level) / (level * (1 - level) / per).sqrt()
            check(f"P(write) per bin of |dW|/dWth ({bins} bins)", path, bool(z.abs().max() < 5),
                  f"worst {z.abs().max():.1f} SE")  # fmt: skip
            dw = torch.full((n,), 0.03, device=device)  # above the threshold: all written
            out, s = sgd_write(dw, threshold=th, sd_us=SD_US, seed=9)
            err = ((out - 0.03) / (SD_US * RWG)).double()
            sd = err.std().item()
            tail = (err.abs() > 2).double().mean().item()
            check("noise SD = Rwg SD(ecell) (all written)", path,
                  abs(sd - 1) < 5 / math.sqrt(2 * n) + 1e-4 and s.written == n,
                  f"SD/expected {sd:.4f}, mean {err.mean().item():+.4f}")  # fmt: skip
            tse = math.sqrt(0.0455 * (1 - 0.0455) / n)
            check("noise P(|z| > 2) = 0.0455", path, abs(tail - 0.0455) < 5 * tse, f"{tail:.4f}")
    if "kernel" in paths:
        kernel_checks(check, device, min(n, 200_000))
    if xb is not None:
        dev = xb.device_model
        tol = 1e-6 * dev.g_max_us
        for what, g in (("cells", xb.g_us), ("references", xb.ref_g_us)):
            if g.numel():
                lo, hi = g.min().item(), g.max().item()
                inside = lo >= dev.g_min_us - tol and hi <= dev.g_max_us + tol
                check(f"memorial {what}' G inside [{dev.g_min_us:g}, {dev.g_max_us:g}] uS",
                      "device", inside, f"{lo:.3f} .. {hi:.3f} uS")  # fmt: skip
    return check.failed


def kernel_checks(check: Checks, device: torch.device, n: int) -> None:
    """The kernel on ``device`` against its same-key reference on the CPU, and across block
    sizes (bit for bit)."""
    g = torch.Generator().manual_seed(1)
    old = torch.randn(n, generator=g)
    new = old + (torch.rand(n, generator=g) - 0.5) * 6 * SD_US * RWG
    new[3], new[17] = math.nan, math.inf
    bad = torch.zeros(n, dtype=torch.bool)
    bad[5] = True
    th, sd = SD_US * RWG, SD_US * RWG
    outs = {}
    for block in (256, 1024, 4096):
        p = new.to(device, copy=True)  # (on the CPU .to would return new itself)
        gen = torch.Generator(device=device).manual_seed(4)
        item = triton_step.WriteItem(p, old.to(device), bad.to(device), th, sd, 0)
        [row] = triton_step.write([item], generator=gen, block=block)
        outs[block] = (p.cpu(), None if row is None else row.cpu())
    gen = torch.Generator(device=device).manual_seed(4)
    key = int(torch.randint(0, 2**62, (1,), generator=gen, device=device, dtype=torch.int64))
    rule, noise = triton_step.item_keys(key, 0)
    ref, written, skipped = triton_step.reference_write(
        new, old, bad, threshold=th, noise_sd=sd, rule_key=rule, noise_key=noise
    )
    out, row = outs[1024]
    same = torch.equal(out != old, ref != old)
    diff = (out - ref).abs().max().item()
    check("kernel = same-key reference (decisions)", "kernel", same,
          f"written {int((out != old).sum())} of {n}")  # fmt: skip
    check("kernel = same-key reference (values)", "kernel", diff < 1e-5, f"max diff {diff:.1e}")
    counts = None if row is None else row.tolist()
    want = [int(written), int(written), 0, 0, int(skipped), 0]
    check("kernel's ledger row = reference counts", "kernel", counts == want, f"{counts}")
    blocks_equal = all(torch.equal(outs[b][0], out) for b in outs)
    check("kernel independent of block size (256, 1024, 4096)", "kernel", blocks_equal, "")


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per round (30; cpu 2)")
    ap.add_argument("--rounds", type=int, default=None, help="(5; cpu 2)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps each (5; cpu 2)")
    ap.add_argument("--batch-size", type=int, default=None, help="(128; cpu 8)")
    ap.add_argument("--width", type=int, default=None, help="first-stage channels (64; cpu 4)")
    ap.add_argument("--cells", type=int, default=None, help="cells per statistics draw (1M)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--optimizers", default=ALL, help=f"comma-separated, of: {ALL}")
    ap.add_argument("--skip-speed", action="store_true", help="only the statistics")
    ap.add_argument(
        "--budget-s",
        type=float,
        default=240.0,
        help="seconds for part 1: fewer steps per round where the warm-up says it runs over",
    )
    args = ap.parse_args(argv)
    if args.device is None and not torch.cuda.is_available():
        print(
            "gpu_resnet.py: no CUDA device here (torch.cuda.is_available() is False); for a "
            "check of the script's logic on the CPU: --device cpu",
            file=sys.stderr,
        )
        return 2
    device = torch.device(args.device or "cuda")
    cpu = device.type == "cpu"
    for key, gpu_value, cpu_value in (("steps", 30, 2), ("rounds", 5, 2), ("warmup", 5, 2),
                                      ("batch_size", 128, 8), ("width", 64, 4),
                                      ("cells", 1_000_000, 100_000)):  # fmt: skip
        if getattr(args, key) is None:
            setattr(args, key, cpu_value if cpu else gpu_value)
    for key in ("steps", "rounds", "warmup", "batch_size", "width", "cells"):
        if getattr(args, key) < 1:
            print(f"gpu_resnet.py: --{key.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    names = [s.strip() for s in args.optimizers.split(",") if s.strip()]
    for name in names:
        if name not in ALL.split(","):
            print(f"gpu_resnet.py: unknown optimizer {name!r}; available: {ALL}", file=sys.stderr)
            return 2
    if "Adam" not in names:
        names.insert(0, "Adam")  # the reference of the ratios
    t0 = time.perf_counter()
    xb, goals = (None, None) if args.skip_speed else speed(args, device, names)
    t1 = time.perf_counter()
    failed = statistics_checks(device, args.cells, xb)
    t2 = time.perf_counter()
    said = {None: "not measured", True: "met", False: "not all met"}[goals]
    print(
        f"{failed} check(s) failed; goals {said}; {t1 - t0:.0f} s speed, "
        f"{t2 - t1:.0f} s statistics, {t2 - t0:.0f} s in all"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
