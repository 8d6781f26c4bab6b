"""Your own model at weight level: EaPU on any PyTorch training loop.

A small MLP on scikit-learn's 8×8 digits, trained three ways with the same loop:

- ``Adam``: plain software training (every weight updated exactly);
- ``AdamNoise``: backpropagation on noisy cells (every weight written, each write lands
  with the cell's write noise Rwg · N(0, SD εcell)): what naive in-situ training does;
- ``AdamEaPU``: the error-aware probabilistic update on the same noisy cells: updates below
  ΔWth = SD εcell · Rwg are written as ±ΔWth with probability |ΔW| / ΔWth, or not at all.

Nothing here is specific to eapu but the optimizer: bring your own model and data.

    python examples/weight_level.py --steps 600 --sd-us 8
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_digits

from eapu import AdamEaPU, AdamNoise


def digits(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """The 1797 digits as (train x, train y, test x, test y): 64 pixels in [0, 1], 20 % test."""
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    test, train = perm[:360], perm[360:]
    return x[train], y[train], x[test], y[test]


def mlp(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="mini-batches of 64")
    parser.add_argument("--sd-us", type=float, default=4.0, help="SD of the write noise (µS)")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x, y, x_test, y_test = digits()
    noise = {"sd_us": args.sd_us, "rwg_per_us": 1 / 80, "seed": args.seed}  # the paper's Rwg
    optimizers = {
        "Adam (software)": lambda p: torch.optim.Adam(p, lr=args.lr),
        "AdamNoise (noisy BP)": lambda p: AdamNoise(p, lr=args.lr, **noise),
        "AdamEaPU": lambda p: AdamEaPU(p, lr=args.lr, **noise),
    }
    print(f"MLP 64-32-10 on digits, {args.steps} steps, write noise SD {args.sd_us} µS")
    for name, make in optimizers.items():
        model = mlp(args.seed)
        opt = make(model.parameters())
        batches = torch.Generator().manual_seed(args.seed)
        for _ in range(args.steps):
            idx = torch.randint(len(y), (64,), generator=batches)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        with torch.no_grad():
            accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
        line = f"{name:22s} test accuracy {100 * accuracy:5.1f} %"
        if hasattr(opt, "ledger"):  # the in-situ optimizers count what they wrote
            line += f"   weights written per step (Rup) {100 * opt.ledger.summary().rup:5.1f} %"
        print(line)


if __name__ == "__main__":
    main()
