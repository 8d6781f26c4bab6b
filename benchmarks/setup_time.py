"""Time the set-up of a network on a crossbar: `eapu.nn.convert` and Tiki-Taka's fast arrays.

    python benchmarks/setup_time.py [--widths 8 16 32 64] [--rounds 3] [--threads 1]
                                    [--clock wall]

PreActResNet-18 (``get_model("preact_resnet18", width=w)``, CIFAR-shaped) on ``taox_1t1r``, at
each width ``w`` (64 is the full network, 11.2 M weights; the weights grow as w²):

- ``convert, memorial``: `eapu.nn.convert` onto the crossbar of EaPU + MP (``eapu+mp``):
  placement, the device-to-device draw, the reference cells, and every weight loaded by
  memorial programming (a binary search over the gate levels per fresh cell);
- ``convert, sign``: onto the crossbar of Tiki-Taka's method (``ttv2``: sign updates, so the
  weights are loaded by write-verify, tens of identical pulses per fresh cell);
- ``ttv2 fast arrays``: then `TikiTakaV2` built on it, which places one fast array A per
  layer on the same crossbar (the cells doubled), loads it at 0 and then at its cells'
  symmetry points.

Every round builds every width once, in an order rotated per round (a slow spell of the
machine hits all widths alike); a row is the median over rounds (min-max in brackets), with
µs per weight, weights per second, and µs per weight over the smallest width's (1.00 at
every width: the set-up is linear in the weights). ``--clock cpu`` times the process's CPU
time (on one thread, what the scheduler gave the set-up) instead of the wall clock.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch

from eapu.algorithms import TikiTakaV2
from eapu.models import get_model
from eapu.nn import convert

ROWS = ("convert, memorial", "convert, sign", "ttv2 fast arrays")


def _clock(kind: str) -> Callable[[], float]:
    return time.process_time if kind == "cpu" else time.perf_counter


def build(width: int, clock: Callable[[], float]) -> dict[str, float]:
    """Seconds of each row's set-up at ``width``."""
    out = {}
    model = get_model("preact_resnet18", width=width, seed=0)
    t = clock()
    convert(model, device="taox_1t1r", scheme="memorial", seed=0)
    out[ROWS[0]] = clock() - t
    del model
    model = get_model("preact_resnet18", width=width, seed=0)
    t = clock()
    convert(model, device="taox_1t1r", scheme="sign", seed=0)
    out[ROWS[1]] = clock() - t
    t = clock()
    TikiTakaV2(model.parameters(), lr=0.01, seed=0)
    out[ROWS[2]] = clock() - t
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    clock = _clock(a.clock)
    weights = {
        w: sum(p.numel() for p in get_model("preact_resnet18", width=w).parameters() if p.dim() > 1)
        for w in a.widths
    }
    load = os.getloadavg()
    print(
        f"PreActResNet-18 set-up on taox_1t1r, {a.threads} thread(s), {a.clock} clock, "
        f"median (min-max) of {a.rounds} rounds; load average {load[0]:.2f} {load[1]:.2f}"
    )
    times: dict[tuple[int, str], list[float]] = {}
    for r in range(a.rounds):
        k = r % len(a.widths)
        for w in a.widths[k:] + a.widths[:k]:
            for row, s in build(w, clock).items():
                times.setdefault((w, row), []).append(s)
    print(
        f"{'row':<18} {'width':>5} {'weights':>10} {'s':>7} {'(min-max)':>15} "
        f"{'µs/weight':>9} {'weights/s':>10} {'× linear':>8}"
    )
    for row in ROWS:
        first = None
        for w in a.widths:
            ts = times[(w, row)]
            s = statistics.median(ts)
            per = s / weights[w] * 1e6
            first = per if first is None else first
            spread = f"({min(ts):.2f}-{max(ts):.2f})"
            print(
                f"{row:<18} {w:>5} {weights[w]:>10,} {s:>7.2f} {spread:>15} {per:>9.3f} "
                f"{weights[w] / s:>10.3g} {per / first:>8.2f}"
            )
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f}")


if __name__ == "__main__":
    main()
