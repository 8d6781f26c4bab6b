"""One epoch of PreActResNet-34 on CIFAR-shaped data: AdamEaPU vs torch Adam (foreach, fused).

    python benchmarks/gpu_resnet.py                       # CUDA if available, one epoch
    python benchmarks/gpu_resnet.py --steps 3             # CPU smoke test, seconds
    python benchmarks/gpu_resnet.py --data-dir ~/data     # real CIFAR-10 if it is there

Batch 128, 50 000 images (the CIFAR-10 training set, or synthetic 3×32×32 when
``--data-dir`` holds no ``cifar-10-batches-bin``), cross-entropy, fp32. Every optimizer
trains a fresh copy of the same network (same seed) for ``--warmup`` untimed steps, then
the timed steps (an epoch: 390 full batches, or ``--steps``). Reported per optimizer: time
per step and per epoch (extrapolated when ``--steps`` is smaller), images/s, the
optimizer step's own share (CUDA events around ``step()``), peak GPU memory
(``torch.cuda.max_memory_allocated``, reset per optimizer) and ratios against torch Adam
(foreach) measured in the same run.
"""

from __future__ import annotations

import argparse
import math
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


def bench(
    name: str, args: argparse.Namespace, data: tuple[torch.Tensor, ...], device: torch.device
) -> dict[str, float]:
    from eapu.models import get_model

    x_all, y_all = data[0], data[1]
    model = get_model("preact_resnet34", seed=0, num_classes=10, width=args.width).to(device)
    opt = make_optimizer(name, list(model.parameters()))
    bs, cuda = args.batch_size, device.type == "cuda"
    batches = len(x_all) // bs  # batches in the data held (fewer in a CPU smoke test)
    per_epoch = EPOCH_IMAGES // bs
    mean = torch.tensor([0.49, 0.48, 0.45], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.25, 0.24, 0.26], device=device).view(1, 3, 1, 1)

    def step(i: int) -> Any:
        """One training step; returns the optimizer step's time (s, or CUDA events)."""
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
            return e0, e1
        t = time.perf_counter()
        opt.step()
        return time.perf_counter() - t

    for i in range(args.warmup):
        step(i)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    steps = args.steps or per_epoch
    t0 = time.perf_counter()
    opt_times = [step(args.warmup + i) for i in range(steps)]
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    if cuda:
        opt_s = sum(e0.elapsed_time(e1) for e0, e1 in opt_times) / 1e3
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        opt_s, peak = sum(opt_times), math.nan
    return {
        "step_ms": wall / steps * 1e3,
        "epoch_s": wall / steps * per_epoch,
        "img_s": steps * bs / wall,
        "opt_ms": opt_s / steps * 1e3,
        "peak_mib": peak,
        "steps": steps,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default: an epoch)")
    ap.add_argument("--warmup", type=int, default=5)
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
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        print(
            "note: no CUDA device; running on the CPU (quick check: --steps 3 --width 8 "
            "--batch-size 32)"
        )
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    n = (
        EPOCH_IMAGES
        if device.type == "cuda" or args.steps is None
        else min(EPOCH_IMAGES, (args.steps + args.warmup) * args.batch_size)
    )
    data = load_data(args.data_dir, n, device)
    names = [s.strip() for s in args.optimizers.split(",") if s.strip()]
    if "torch Adam" not in names:
        names.insert(0, "torch Adam")  # the reference of the ratios
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"PreActResNet-34 (width {args.width}), {data[2]} data {tuple(data[0].shape)}, "
        f"batch {args.batch_size}, {dev_name}, torch {torch.__version__}"
    )
    res = {}
    for name in names:
        res[name] = bench(name, args, data, device)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    ref = res["torch Adam"]
    cols = (
        "optimizer",
        "steps",
        "step ms",
        "epoch s",
        "img/s",
        "opt ms",
        "peak MiB",
        "× step",
        "× opt",
        "× mem",
    )
    print(" | ".join(f"{c:>16}" if i == 0 else f"{c:>9}" for i, c in enumerate(cols)))
    for name, r in res.items():
        vals = [
            r["steps"],
            f"{r['step_ms']:.1f}",
            f"{r['epoch_s']:.1f}",
            f"{r['img_s']:.0f}",
            f"{r['opt_ms']:.2f}",
            f"{r['peak_mib']:.0f}",
            f"{r['step_ms'] / ref['step_ms']:.2f}",
            f"{r['opt_ms'] / ref['opt_ms']:.2f}",
            f"{r['peak_mib'] / ref['peak_mib']:.2f}",
        ]
        print(" | ".join([f"{name:>16}"] + [f"{v:>9}" for v in vals]))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
