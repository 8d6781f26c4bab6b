"""Where drawing candidates beats one draw per cell: time `eapu_sparse` both ways.

    python benchmarks/rule_sampler.py [--rates 0.04 0.1 0.2 0.25 0.3 0.4] [--threads 1]

ΔW on ResNet-18's weight shapes (11.7 M cells) with |ΔW| spread evenly below q·ΔWth, so
that q = max|ΔW| / ΔWth. For each q, the median of 7 calls over all tensors with the
candidate sampler forced on and forced off; ``rules._SPARSE_BELOW`` is set from this table.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from optim_step import SHAPES

from eapu import rules

TH = 0.025


def _time(fn, reps: int = 7) -> float:  # type: ignore[no-untyped-def]
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[0.04, 0.1, 0.2, 0.25, 0.3, 0.4])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    shapes = [s for s in SHAPES if len(s) > 1]
    print(f"{'q':>6} {'candidates (ms)':>16} {'per cell (ms)':>14} {'ratio':>6}")
    cutoff = rules._SPARSE_BELOW
    try:
        for q in a.rates:
            dws = [torch.rand(s, generator=g) * q * TH for s in shapes]

            def run(dws: list[torch.Tensor] = dws) -> None:
                for d in dws:
                    rules.eapu_sparse(d, threshold=TH, generator=g)

            rules._SPARSE_BELOW = 1.0
            sparse = _time(run)
            rules._SPARSE_BELOW = 0.0
            dense = _time(run)
            print(f"{q:>6.2f} {sparse:>16.1f} {dense:>14.1f} {dense / sparse:>6.2f}")
    finally:
        rules._SPARSE_BELOW = cutoff


if __name__ == "__main__":
    main()
