"""The same model on a crossbar: device-level in-situ training with EaPU.

`eapu.nn.convert` puts the MLP's weights on simulated 1T1R arrays (the paper's TaOx cell,
``taox_1t1r``): every weight is a cell read against a reference column, every write is a
pulse sequence of memorial programming on a device with a bounded window, device-to-device
and cycle-to-cycle spread, relaxation after the write and read noise. The training loop is
the ordinary one; only evaluation changes: it runs inside ``xbar.evaluation()``, so its read
noise comes from its own generator and how often you evaluate never changes what trains.

The best model so far is kept with ``copy.deepcopy`` (a copy of an analog model is analog,
with its own crossbar), saved with its crossbar's state, and loaded into a fresh one.

    python examples/crossbar.py --steps 300 --out runs/example-crossbar
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
from sklearn.datasets import load_digits

from eapu import AdamEaPU
from eapu.nn import convert, crossbar_of


def digits(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """The 1797 digits as (train x, train y, test x, test y): 64 pixels in [0, 1], 20 % test."""
    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    test, train = perm[:360], perm[360:]
    return x[train], y[train], x[test], y[test]


def analog_mlp(seed: int) -> torch.nn.Module:
    """The MLP of ``weight_level.py``, its two layers converted onto one crossbar."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(), torch.nn.Linear(32, 10))
    convert(model, device="taox_1t1r", scheme="memorial", seed=seed)
    return model


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Test accuracy, read as the chip would: evaluation mode, the evaluation read stream."""
    xbar = crossbar_of(model)
    assert xbar is not None
    model.eval()
    with torch.no_grad(), xbar.evaluation():
        acc = (model(x).argmax(1) == y).float().mean().item()
    model.train()
    return acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="mini-batches of 64")
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/example-crossbar"))
    args = parser.parse_args()

    x, y, x_test, y_test = digits()
    model = analog_mlp(args.seed)
    xbar = crossbar_of(model)
    assert xbar is not None
    print(xbar.placement.render().split("\n")[0])
    print(f"SD(εcell) of taox_1t1r under memorial programming: {xbar.sd_us:.2f} µS")
    opt = AdamEaPU(model.parameters(), lr=args.lr, seed=args.seed)  # ΔWth = SD(εcell) · Rwg
    batches = torch.Generator().manual_seed(args.seed)
    best, best_acc = copy.deepcopy(model), accuracy(model, x_test, y_test)
    print(f"step {0:4d}  test accuracy {100 * best_acc:5.1f} % (the weights as loaded)")
    for step in range(1, args.steps + 1):
        idx = torch.randint(len(y), (64,), generator=batches)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()  # EaPU chooses the cells; memorial programming pulses them
        if step % args.eval_every == 0 or step == args.steps:
            acc = accuracy(model, x_test, y_test)
            print(f"step {step:4d}  test accuracy {100 * acc:5.1f} %")
            if acc > best_acc:
                best, best_acc = copy.deepcopy(model), acc

    s = opt.ledger.summary()
    print(
        f"cells written per step (Rup) {100 * s.rup:.1f} %, pulses per cell and step (Nup) "
        f"{s.nup:.3f}, pulses per written cell (Ncell) {s.ncell:.2f}, verify reads {s.reads}"
    )

    # Save the best model: its state_dict holds every cell of its crossbar (the crossbar is a
    # submodule of the first analog layer), the reference column and the three generators.
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "best.pt"
    torch.save(best.state_dict(), path)
    loaded = analog_mlp(args.seed)  # the same architecture on a fresh crossbar
    loaded.load_state_dict(torch.load(path, weights_only=True))
    # The same cells and the same evaluation read stream: the same accuracy, read for read.
    print(f"best {100 * best_acc:.1f} %, saved to {path}")
    print(
        f"reloaded: {100 * accuracy(loaded, x_test, y_test):.1f} % "
        f"(the best copy read again: {100 * accuracy(best, x_test, y_test):.1f} %)"
    )


if __name__ == "__main__":
    main()
