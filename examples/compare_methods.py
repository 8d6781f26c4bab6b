"""Comparing methods: the paper's denoising experiment, trained by several methods at once.

`eapu.experiments.compare` is what ``eapu compare`` runs: one task (here ``denoise``: the
paper's 135-weight autoencoder on MNIST digits with Gaussian noise of SD 0.3), each method
in its own run directory under ``--out``, and ``compare.json`` with one row per method.
The methods below are software training, EaPU over memorial programming (the paper's
EaPU + MP) and backpropagation over the same programming (BP + MP), all on ``taox_1t1r``.

The paper's run is 1100 mini-batches; a few dozen show the difference in what is written
(Rup, Nup), not yet in quality. Run directories resume: run it again with more ``--steps``
into a new ``--out``, or see ``eapu compare --help`` for the full options.

    python examples/compare_methods.py --steps 1100 --out runs/example-compare
"""

from __future__ import annotations

import argparse
from pathlib import Path

from eapu.experiments import compare

METHODS = ["software", "eapu+mp", "mp"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100, help="mini-batches of 64")
    parser.add_argument("--out", type=Path, default=Path("runs/example-compare"))
    args = parser.parse_args()

    rows = compare(
        "denoise",
        METHODS,
        args.out,
        steps=args.steps,
        eval_every=args.steps,  # evaluate at the start and at the end only
        eval_samples=256,  # test images per evaluation
    )
    print(f"denoise, {args.steps} mini-batches of 64, taox_1t1r; run directories in {args.out}")
    print(f"{'method':10s} {'SSIM':>6s} {'PSNR dB':>8s} {'Rup':>7s} {'Nup':>7s} {'pulses':>8s}")
    for r in rows:
        written = r.get("rup") is not None
        print(
            f"{r['method']:10s} {r['ssim']:6.3f} {r['psnr']:8.2f} "
            + (f"{r['rup']:7.3f} {r['nup']:7.3f} {r['pulses']:8d}" if written else f"{'-':>7s}" * 2)
        )
    print(f"table: {args.out / 'compare.json'}; energy: python examples/energy.py {args.out}")


if __name__ == "__main__":
    main()
