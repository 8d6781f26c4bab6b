"""PreActResNet-34 on CIFAR-shaped data: AdamEaPU against torch's Adam (default, fused).

    python benchmarks/gpu_resnet.py                       # CUDA: a few minutes at most
    python benchmarks/gpu_resnet.py --device cpu --steps 2 --rounds 1 --width 8 --batch-size 16
    python benchmarks/gpu_resnet.py --data-dir ~/data     # real CIFAR-10 if it is there

Batch 128, random 3×32×32 images and labels (or the CIFAR-10 training set when
``--data-dir`` holds ``cifar-10-batches-bin``), cross-entropy, fp32. Every optimizer trains
its own copy of the same network (same seed); after ``--warmup`` untimed steps each, the
optimizers take turns: ``--rounds`` rounds of ``--steps`` timed steps each (order rotated per
round), so a slow spell of the machine hits all of them. Reported per optimizer: time per
training step and per optimizer step (CUDA events around ``step()``; medians over rounds),
an epoch (390 steps) extrapolated, images/s, peak GPU memory
(``torch.cuda.max_memory_allocated`` over its own steps), and ratios to torch's Adam in its
default implementation (on CUDA: foreach) and to its fused Adam, taken per round (median).
On CUDA AdamEaPU steps its base with torch's fused Adam and then the EaPU rule's tensor
passes (eapu.optim.fused's one-pass kernel is CPU-only): the "× fused" column of the optimizer
step is what the EaPU write costs on top of torch's fastest Adam. Without CUDA the script
says so and exits with status 2 unless ``--device cpu`` is given (a CPU check of the logic).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

EPOCH_IMAGES = 50_000


def load_data(data_dir: str | None, n: int, device: torch.device) -> tuple[torch.Tensor, ...]:
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


def make_optimizer(name: str, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    from eapu.optim import AdamEaPU, AdamNoise

    if name == "torch Adam":
        return torch.optim.Adam(params, lr=1e-3, foreach=True)
    if name == "torch Adam fused":
        return torch.optim.Adam(params, lr=1e-3, fused=True)
    if name == "AdamEaPU":
        return AdamEaPU(params, lr=1e-3, sd_us=2.0, rwg_per_us=1 / 80)
    if name == "AdamNoise":
        return AdamNoise(params, lr=1e-3, sd_us=2.0, rwg_per_us=1 / 80)
    raise ValueError(f"unknown optimizer {name!r}")


def build(name: str, args: argparse.Namespace, device: torch.device) -> tuple[Any, Any]:
    from eapu.models import get_model

    model = get_model("preact_resnet34", seed=0, num_classes=10, width=args.width).to(device)
    return model, make_optimizer(name, list(model.parameters()))


def run_steps(
    model: Any,
    opt: torch.optim.Optimizer,
    args: argparse.Namespace,
    data: tuple[torch.Tensor, ...],
    device: torch.device,
    start: int,
    n: int,
) -> tuple[float, float]:
    """``n`` training steps from batch ``start``; (wall s, optimizer-step s)."""
    x_all, y_all = data[0], data[1]
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--width", type=int, default=64, help="first-stage channels (paper: 64)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    ap.add_argument(
        "--optimizers",
        default="torch Adam,torch Adam fused,AdamEaPU",
        help="comma-separated: torch Adam, torch Adam fused, AdamEaPU, AdamNoise",
    )
    args = ap.parse_args(argv)
    if args.device is None and not torch.cuda.is_available():
        print(
            "gpu_resnet.py: no CUDA device here (torch.cuda.is_available() is False); for a "
            "CPU check of the script: --device cpu --steps 2 --rounds 1 --width 8 --batch-size 16",
            file=sys.stderr,
        )
        raise SystemExit(2)
    device = torch.device(args.device or "cuda")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    n = min(EPOCH_IMAGES, (args.warmup + args.rounds * args.steps) * args.batch_size)
    data = load_data(args.data_dir, n, device)
    names = [s.strip() for s in args.optimizers.split(",") if s.strip()]
    if "torch Adam" not in names:
        names.insert(0, "torch Adam")  # the reference of the ratios
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"PreActResNet-34 (width {args.width}), {data[2]} data {tuple(data[0].shape)}, "
        f"batch {args.batch_size}, {dev_name}, torch {torch.__version__}"
    )
    cuda = device.type == "cuda"
    built = {}
    peak: dict[str, str] = {}  # '-' on CPU: no peak is tracked there
    for name in names:  # build and warm up each; peak memory over its own warm-up steps
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        built[name] = build(name, args, device)
        run_steps(*built[name], args, data, device, 0, args.warmup)
        peak[name] = f"{torch.cuda.max_memory_allocated() / 2**20:.0f}" if cuda else "-"
    step_ms: dict[str, list[float]] = {n: [] for n in names}
    opt_ms: dict[str, list[float]] = {n: [] for n in names}
    start = args.warmup
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            wall, opt_s = run_steps(*built[name], args, data, device, start, args.steps)
            step_ms[name].append(wall / args.steps * 1e3)
            opt_ms[name].append(opt_s / args.steps * 1e3)
        start += args.steps

    def ratio(xs: dict[str, list[float]], name: str, ref: str) -> str:
        if ref not in xs:
            return "-"
        return f"{statistics.median(a / b for a, b in zip(xs[name], xs[ref], strict=True)):.2f}"

    cols = [
        "optimizer",
        "step ms",
        "epoch s",
        "img/s",
        "opt ms",
        "peak MiB",
        "x Adam",
        "x fused",
        "opt x Adam",
        "opt x fused",
    ]
    print(f"median over {args.rounds} interleaved rounds of {args.steps} steps each")
    print(" | ".join(f"{c:>16}" if i == 0 else f"{c:>11}" for i, c in enumerate(cols)))
    for name in names:
        ms = statistics.median(step_ms[name])
        vals = [
            f"{ms:.1f}",
            f"{ms * (EPOCH_IMAGES // args.batch_size) / 1e3:.1f}",
            f"{args.batch_size / ms * 1e3:.0f}",
            f"{statistics.median(opt_ms[name]):.2f}",
            peak[name],
            ratio(step_ms, name, "torch Adam"),
            ratio(step_ms, name, "torch Adam fused"),
            ratio(opt_ms, name, "torch Adam"),
            ratio(opt_ms, name, "torch Adam fused"),
        ]
        print(" | ".join([f"{name:>16}"] + [f"{v:>11}" for v in vals]))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
