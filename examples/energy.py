"""Energy of your own run: a run directory's operation counts priced on a technology node.

Every run directory holds ``energy.json``: the operations of one inference sample and of one
training step (VMMs, cell reads and their conductances, DAC/ADC conversions, programming
pulses, verify reads, digital work, EaPU's random draws) and the one-time load.
`eapu.experiments.energy_figures` prices them with `eapu.energy` on a node (``180nm``, the
paper's chip, or ``16nm``), with the GPU doing the same training beside them. This is what
``eapu energy RUN --node 180nm`` prints.

The second part prices counts of your own with `eapu.energy.energy` directly: one EaPU +
MP training step of the run, and the same step had it written every cell with as many
pulses per written cell (Rup 1 instead of the run's; BP writes nearly every cell).

    python examples/compare_methods.py --out runs/example-compare
    python examples/energy.py runs/example-compare --node 16nm
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from eapu.energy import CATEGORIES, Counts, energy, get_node
from eapu.experiments import energy_figures
from eapu.files import read_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, help="a run directory, or a directory of them")
    parser.add_argument("--node", default="180nm", help="180nm, 16nm or flash")
    args = parser.parse_args()

    files = [args.runs / "energy.json"] if (args.runs / "energy.json").exists() else []
    files = files or sorted(args.runs.glob("*/energy.json"))
    if not files:
        raise SystemExit(f"no energy.json in {args.runs} or below it; run a task first")
    print(f"training energy of each run on {args.node} (µJ per run)")
    print(f"{'run':10s} " + " ".join(f"{c:>11s}" for c in (*CATEGORIES, "total")) + "  GPU (µJ)")
    for path in files:
        fig = energy_figures(read_json(path), args.node)
        gpu = f"  {1e6 * fig['gpu_training']['total']:.4g}"
        if "training" not in fig:  # a software run: no crossbar, only the GPU reference
            print(f"{path.parent.name:10s} " + " ".join(f"{'-':>11s}" for _ in range(7)) + gpu)
            continue
        train = fig["training"]
        print(
            f"{path.parent.name:10s} "
            + " ".join(f"{1e6 * train[c]:11.4g}" for c in (*CATEGORIES, "total"))
            + gpu
        )

    # Counts of your own: one step of the first run that wrote cells, then every cell written.
    path = next((p for p in files if read_json(p).get("training_per_step", {}).get("pulses")), None)
    if path is None:
        return
    rup = read_json(path.parent / "metrics.json")["rup"]  # fraction of cells written per step
    step = Counts(**read_json(path)["training_per_step"])
    scale = 1 / rup
    every = dataclasses.replace(
        step,
        pulses=step.pulses * scale,
        pulse_g_us=step.pulse_g_us * scale,
        verify_reads=step.verify_reads * scale,
        verify_g_us=step.verify_g_us * scale,
    )
    node = get_node(args.node)
    print(f"{path.parent.name}, Rup {rup:.3f}:")
    for label, counts in (("as run", step), ("every cell written", every)):
        e = energy(counts, node)
        print(
            f"one training step, {label:18s}: programming {1e9 * e.programming:8.3f} nJ, "
            f"verify {1e9 * e.verify:8.3f} nJ, total {1e9 * e.total:10.1f} nJ"
        )


if __name__ == "__main__":
    main()
