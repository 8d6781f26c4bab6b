"""The paper's small networks: the fixed cost of a step, and of a device-level run.

    python benchmarks/small_nets.py [--rounds 7] [--steps 200] [--run-steps 300] [--threads 1]

Table 1, optimizer.step() alone on the denoising autoencoder (``denoise_ae``, 135 weights)
and the digits CNN (``small_cnn``): torch's Adam (default and fused) against AdamEaPU as
users get it (the fused EaPU step where a C compiler is at hand) and on the unfused path
(``EAPU_FUSED=0``), each on its own copy of the network with fixed random gradients. Every
round times ``--steps`` steps of each optimizer in turn (order rotated per round); a row is
the median over rounds of the round's median step, a ratio the median over rounds of the
round's ratio to torch's default Adam (min-max in brackets).

Table 2, whole runs: ``eapu run``'s training loop (`RunConfig(task="denoise")`) for
``--run-steps`` mini-batches, in software and at device level with EaPU over memorial
programming (EaPU + MP, ``taox_1t1r``), interleaved over ``--rounds``; wall time of the run
(training, the evaluations it makes, its files), median and min-max, ratio to software.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

from eapu.models import get_model
from eapu.optim import AdamEaPU

try:  # the runner's home after the experiments/ split; tasks.py before it
    from eapu.experiments import RunConfig, run  # type: ignore[import-not-found]
except ImportError:
    from eapu.experiments import RunConfig, run

NETS = {"denoise_ae": "denoising autoencoder", "small_cnn": "digits CNN"}
STEPPERS = ["torch Adam", "torch Adam fused", "AdamEaPU", "AdamEaPU unfused"]


def _stepper(name: str, model: torch.nn.Module) -> Callable[[], Any]:
    params = list(model.parameters())
    g = torch.Generator().manual_seed(1)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * 1e-2
    if name == "torch Adam":
        return torch.optim.Adam(params, lr=1e-2).step
    if name == "torch Adam fused":
        return torch.optim.Adam(params, lr=1e-2, fused=True).step
    opt = AdamEaPU(params, lr=1e-2)
    if name == "AdamEaPU":
        return opt.step

    def unfused() -> None:
        os.environ["EAPU_FUSED"] = "0"
        try:
            opt.step()
        finally:
            os.environ.pop("EAPU_FUSED")

    return unfused


def _spread(xs: list[float], fmt: str) -> str:
    return f"({min(xs):{fmt}}-{max(xs):{fmt}})"


def step_table(rounds: int, steps: int) -> None:
    print(
        f"optimizer.step(): median over {rounds} interleaved rounds of the median of {steps} "
        "steps; ratio to torch's default Adam per round, median (min-max)"
    )
    print(
        f"{'network':<30} {'optimizer':<17} {'µs/step':>8} {'(min-max)':>13} {'x Adam':>7} "
        f"{'(min-max)':>13}"
    )
    for net, label in NETS.items():
        steppers = {n: _stepper(n, get_model(net, seed=0)) for n in STEPPERS}
        for st in steppers.values():
            for _ in range(20):
                st()
        times: dict[str, list[float]] = {n: [] for n in STEPPERS}
        for r in range(rounds):
            for name in STEPPERS[r % len(STEPPERS) :] + STEPPERS[: r % len(STEPPERS)]:
                ts = []
                for _ in range(steps):
                    t = time.perf_counter()
                    steppers[name]()
                    ts.append(time.perf_counter() - t)
                times[name].append(statistics.median(ts) * 1e6)
        n = sum(p.numel() for p in get_model(net).parameters() if p.dim() > 1)
        for name in STEPPERS:
            ratios = [a / b for a, b in zip(times[name], times["torch Adam"], strict=True)]
            print(
                f"{f'{label} ({n} w)':<30} {name:<17} {statistics.median(times[name]):>8.0f} "
                f"{_spread(times[name], '.0f'):>13} {statistics.median(ratios):>7.2f} "
                f"{_spread(ratios, '.2f'):>13}"
            )


def run_table(rounds: int, run_steps: int) -> None:
    methods = ["software", "eapu+mp"]
    print(
        f"\ndenoise run of {run_steps} mini-batches (RunConfig(task='denoise')), wall s, "
        f"median over {rounds} interleaved rounds; ratio to software per round"
    )
    times: dict[str, list[float]] = {m: [] for m in methods}
    with tempfile.TemporaryDirectory() as tmp:
        run(RunConfig(task="denoise", method="eapu+mp", steps=2), os.path.join(tmp, "warm"))
        for r in range(rounds):
            for method in methods[r % 2 :] + methods[: r % 2]:
                out = os.path.join(tmp, f"{method}-{r}")
                t = time.perf_counter()
                run(RunConfig(task="denoise", method=method, steps=run_steps), out)
                times[method].append(time.perf_counter() - t)
    print(f"{'method':<10} {'s/run':>7} {'(min-max)':>13} {'x software':>10} {'(min-max)':>13}")
    for m in methods:
        ratios = [a / b for a, b in zip(times[m], times["software"], strict=True)]
        print(
            f"{m:<10} {statistics.median(times[m]):>7.2f} {_spread(times[m], '.2f'):>13} "
            f"{statistics.median(ratios):>10.2f} {_spread(ratios, '.2f'):>13}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=200, help="timed steps per optimizer per round")
    ap.add_argument("--run-steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", choices=["steps", "runs"], help="print one table only")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.only != "runs":
        step_table(a.rounds, a.steps)
    if a.only != "steps":
        run_table(a.rounds, a.run_steps)


if __name__ == "__main__":
    main()
