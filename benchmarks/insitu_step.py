"""Time one training step of LeNet-5 at device level against the same network's digital step.

    python benchmarks/insitu_step.py [--steps 30] [--rounds 5] [--batch 64] [--threads 1]

Each row is the median over ``--rounds`` interleaved rounds (so that a slow spell of the
machine hits every row alike) of the median over ``--steps`` steps (after 3 warm-up steps)
of forward, backward
and optimizer.step() on a 28x28 batch: torch Adam on the digital network (the reference),
the weight-level AdamEaPU, and AdamEaPU / Adam-BP on tiles of the taox_1t1r device with the
memorial and write-verify schemes. Ratios are against the digital step of the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from eapu.models import get_model
from eapu.nn import convert
from eapu.optim import AdamEaPU, AdamNoise


def bench(name: str, steps: int, batch: int) -> tuple[float, float]:
    model = get_model("lenet5", seed=0)
    if name.startswith("device"):
        scheme = name.split()[-1]
        convert(model, device="taox_1t1r", scheme=scheme, seed=0)
    if name == "digital Adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    elif "BP" in name:
        opt = AdamNoise(model.parameters(), lr=1e-3)
    else:
        opt = AdamEaPU(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    times, pulses = [], 0.0
    for i in range(3 + steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    if hasattr(opt, "ledger"):
        pulses = opt.ledger.summary().ncell
    return statistics.median(times) * 1e3, pulses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    names = [
        "digital Adam",
        "weight-level AdamEaPU",
        "device AdamEaPU memorial",
        "device AdamEaPU write_verify",
        "device BP memorial",
        "device BP write_verify",
    ]
    n = sum(p.numel() for p in get_model("lenet5").parameters() if p.dim() > 1)
    print(
        f"LeNet-5 ({n} weights), batch {a.batch}, {a.threads} thread(s), "
        f"median of {a.rounds} rounds of the median of {a.steps} steps"
    )
    times: dict[str, list[float]] = {name: [] for name in names}
    ncell: dict[str, float] = {}
    for _ in range(a.rounds):
        for name in names:
            ms, ncell[name] = bench(name, a.steps, a.batch)
            times[name].append(ms)
    print(f"{'step':<30} {'ms/step':>8} {'x digital':>9} {'pulses/written cell':>20}")
    ref = statistics.median(times[names[0]])
    for name in names:
        ms = statistics.median(times[name])
        print(f"{name:<30} {ms:>8.1f} {ms / ref:>9.2f} {ncell[name]:>20.2f}")


if __name__ == "__main__":
    main()
