"""Cross-check eapu's Tiki-Taka v2 against IBM's aihwkit on the same small problem.

    python benchmarks/aihwkit_crosscheck.py [--steps 300]

Both learn y = A x (4 inputs, 2 outputs, a fixed A) with Tiki-Taka v2 on a soft-bounded
device (aihwkit: TransferCompound of two SoftBoundsDevice; eapu: TikiTakaV2 on an ideal-window
device with soft-bounded, symmetric pulses) and print the loss every 25 steps side by side.
The devices are matched in spirit (soft bounds, ~1 % of the range per pulse), not fitted, so
the curves should agree in shape, not number for number. aihwkit is optional and builds from
source slowly: where it is not installed the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch
from torch import nn

A = torch.tensor([[0.5, -0.3, 0.2, 0.1], [-0.2, 0.4, -0.1, 0.3]])


def batches(steps: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    xs = [torch.rand(16, 4, generator=g) for _ in range(steps)]
    return [(x, x @ A.t()) for x in xs]


def run_eapu(steps: int, lr: float) -> list[float]:
    from eapu.algorithms import TikiTakaV2
    from eapu.devices import get_device
    from eapu.nn import convert

    dev = dataclasses.replace(
        get_device("ideal"),
        g_min_us=0.0,
        g_max_us=160.0,
        step_up_us=1.6,
        step_down_us=1.6,
        nonlinearity_up=1.0,
        nonlinearity_down=1.0,
    )
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 2, bias=False))
    convert(model, device=dev, scheme="sign", load_scheme="gaussian")
    opt = TikiTakaV2(model.parameters(), lr=lr, transfer_every=2, gamma=0.0)
    return _train(model, opt, steps)


def run_aihwkit(steps: int, lr: float) -> list[float] | None:
    try:
        from aihwkit.nn import AnalogLinear
        from aihwkit.optim import AnalogSGD

        try:  # aihwkit >= 0.8
            from aihwkit.simulator.configs import (
                SoftBoundsDevice,
                TransferCompound,
                UnitCellRPUConfig,
            )
        except ImportError:  # older releases
            from aihwkit.simulator.configs import UnitCellRPUConfig
            from aihwkit.simulator.configs.devices import SoftBoundsDevice, TransferCompound
    except ImportError:
        return None
    cfg = UnitCellRPUConfig(
        device=TransferCompound(
            unit_cell_devices=[SoftBoundsDevice(), SoftBoundsDevice()],
            transfer_every=2,
            units_in_mbatch=True,
            gamma=0.0,
        )
    )
    torch.manual_seed(0)
    model = nn.Sequential(AnalogLinear(4, 2, bias=False, rpu_config=cfg))
    opt = AnalogSGD(model.parameters(), lr=lr)
    opt.regroup_param_groups(model)
    return _train(model, opt, steps)


def _train(model: nn.Module, opt: torch.optim.Optimizer, steps: int) -> list[float]:
    losses = []
    for x, y in batches(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=0.1)
    a = ap.parse_args()
    ref = run_aihwkit(a.steps, a.lr)
    if ref is None:
        print("aihwkit is not installed: skipping the cross-check (pip install aihwkit)")
        return
    ours = run_eapu(a.steps, a.lr)
    print(f"{'step':>6} {'aihwkit TTv2':>14} {'eapu TTv2':>12}")
    for i in range(0, a.steps, 25):
        print(f"{i + 1:>6} {ref[i]:>14.4g} {ours[i]:>12.4g}")


if __name__ == "__main__":
    main()
