"""Time one training step at device level against the same network's software step.

    python benchmarks/insitu_step.py [--nets lenet5 resnet18] [--rounds 5] [--steps 5]
                                     [--rows ...] [--threads 1] [--clock wall]

Networks: LeNet-5 (``lenet5``, 1x28x28, batch 64) and the full-width PreActResNet-18
(``resnet18``: ``preact_resnet18``, 3x32x32, batch 32), on fixed random batches. Each row is
built once per network (its crossbar and optimizer; `setup_time.py` times that), then in each
of ``--rounds`` rounds every row, in an order rotated per round, takes ``--steps`` steps of
forward, backward and ``optimizer.step()`` (after 2 warm-up steps in its first round). A
row's time is the median over rounds of the round's median step; its ratio is the median over
rounds of the round's ratio to the software step timed in the same round, with the min-max of
those ratios (a slow spell of the machine hits both sides of a ratio alike).

Rows (``--rows``, default all):

- ``software``: torch's Adam (default implementation) on the digital network, lr 1e-3: the
  reference of every ratio;
- ``software SGD``: torch's SGD, lr 0.01;
- ``weight-level AdamEaPU``: the paper's simulation (the fused EaPU step);
- ``AdamEaPU + memorial``: device level on ``taox_1t1r`` (``eapu+mp``), lr 1e-3;
- ``AdamEaPU + write-verify``: the same with incremental write-verify;
- ``ttv2``: Tiki-Taka v2 as ``eapu run --method ttv2`` builds it (SGD lr 0.01, sign updates on
  a crossbar loaded by write-verify, fast arrays, ``watch``);
- ``mixed-precision``: as ``--method mixed-precision`` (Adam lr 1e-3, sign updates).

``pulses/cell`` is the optimizer's ledger: pulses per written cell over the timed steps.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from eapu.algorithms import MixedPrecision, TikiTakaV2
from eapu.models import get_model
from eapu.nn import convert
from eapu.optim import AdamEaPU

NETS = {
    "lenet5": ("lenet5", {}, (1, 28, 28), 64),
    "resnet18": ("preact_resnet18", {}, (3, 32, 32), 32),
}
ROWS = (
    "software",
    "software SGD",
    "weight-level AdamEaPU",
    "AdamEaPU + memorial",
    "AdamEaPU + write-verify",
    "ttv2",
    "mixed-precision",
)


def build(net: str, row: str) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The network and optimizer of ``row`` (crossbar seed 0, optimizer seed 0)."""
    name, kw, _, _ = NETS[net]
    model = get_model(name, seed=0, **kw)
    params = model.parameters
    if row == "software":
        return model, torch.optim.Adam(params(), lr=1e-3)
    if row == "software SGD":
        return model, torch.optim.SGD(params(), lr=0.01)
    if row == "weight-level AdamEaPU":
        return model, AdamEaPU(params(), lr=1e-3, seed=0)
    if row.startswith("AdamEaPU + "):
        scheme = "memorial" if row.endswith("memorial") else "write_verify"
        convert(model, device="taox_1t1r", scheme=scheme, seed=0)
        return model, AdamEaPU(params(), lr=1e-3, seed=0)
    convert(model, device="taox_1t1r", scheme="sign", seed=0)
    if row == "ttv2":
        opt = TikiTakaV2(params(), lr=0.01, base=torch.optim.SGD, seed=0)
        opt.watch(model)
        return model, opt
    if row == "mixed-precision":
        return model, MixedPrecision(params(), lr=1e-3, base=torch.optim.Adam, seed=0)
    raise ValueError(f"Invalid row: {row!r}; allowed: {', '.join(ROWS)}")


def stepper(net: str, model: nn.Module, opt: torch.optim.Optimizer) -> Callable[[], None]:
    _, _, shape, batch = NETS[net]
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, *shape, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)

    def step() -> None:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def pulses_per_cell(opt: Any) -> float:
    ledger = getattr(opt, "ledger", None)
    if ledger is None:
        return float("nan")
    return float(ledger.summary().ncell)


def run(net: str, rows: list[str], rounds: int, steps: int, clock: Callable[[], float]) -> None:
    built = {row: build(net, row) for row in rows}
    steppers = {row: stepper(net, *built[row]) for row in rows}
    times: dict[str, list[float]] = {row: [] for row in rows}
    for r in range(rounds):
        k = r % len(rows)
        for row in rows[k:] + rows[:k]:
            if r == 0:
                for _ in range(2):
                    steppers[row]()
            ts = []
            for _ in range(steps):
                t = clock()
                steppers[row]()
                ts.append(clock() - t)
            times[row].append(statistics.median(ts))
    ref = times[rows[0]]
    name, _, shape, batch = NETS[net]
    n = sum(p.numel() for p in get_model(name).parameters() if p.dim() > 1)
    load = os.getloadavg()
    print(
        f"\n{name} ({n:,} weights), batch {batch} of {'x'.join(map(str, shape))}: median of "
        f"{rounds} rounds of the median of {steps} steps; × {rows[0]} per round, median "
        f"(min-max); load average {load[0]:.2f} {load[1]:.2f}"
    )
    print(f"{'row':<26} {'ms/step':>9} {'× ' + rows[0]:>12} {'(min-max)':>13} {'pulses/cell':>12}")
    for row in rows:
        ratios = [a / b for a, b in zip(times[row], ref, strict=True)]
        spread = f"({min(ratios):.2f}-{max(ratios):.2f})"
        print(
            f"{row:<26} {statistics.median(times[row]) * 1e3:>9.1f} "
            f"{statistics.median(ratios):>12.2f} {spread:>13} "
            f"{pulses_per_cell(built[row][1]):>12.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    clock = time.process_time if a.clock == "cpu" else time.perf_counter
    rows = a.rows if a.rows[0] == "software" else ["software", *a.rows]
    load = os.getloadavg()
    print(
        f"{a.threads} thread(s), {a.clock} clock; load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}"
    )
    for net in a.nets:
        run(net, list(dict.fromkeys(rows)), a.rounds, a.steps, clock)


if __name__ == "__main__":
    main()
