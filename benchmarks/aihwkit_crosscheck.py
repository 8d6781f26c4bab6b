"""Cross-check eapu's Tiki-Taka v2, chopped TTv2 and AGAD against IBM's aihwkit on a classifier.

    python benchmarks/aihwkit_crosscheck.py [--epochs 30] [--seeds 0,...,9] [--only eapu]
                                            [--algorithms ttv2,cttv2,agad] [--fast-lr 0.5]

Both train the same MLP 64-32-10 (tanh) on scikit-learn's digits (seeded 80/20 split, pixels
scaled to [0, 1]) with SGD lr 0.1, batch 32, from the same initial weights and batches, and
print the final test accuracies side by side (mean ± SD over seeds). ``--fast-lr`` sets the
rate onto the fast array A in both (the presets' 0.5 by default):

- eapu: `eapu.algorithms.TikiTakaV2` / `ChoppedTTv2` / `AGAD` with their default settings
  (aihwkit 1.2.0's TTv2 / c-TTv2 / AGAD ReRAM-SB presets; eapu's AGAD reads A raw) on
  ``taox_1t1r`` (sign pulses onto C, biases digital).
- aihwkit 1.2.0: ``ChoppedTransferCompound`` as in ``TTv2ReRamSBPreset`` and
  ``ChoppedTTv2ReRamSBPreset``, ``DynamicTransferCompound`` as in ``AGADReRamSBPreset``
  (``aihwkit/simulator/presets/configs.py`` lines 808, 1030, 1251: the presets' algorithm
  settings and update pulse trains), on a soft-bounds device matched to ``taox_1t1r`` in
  weight units (Rwg 1/80 around the window's centre): SET / RESET steps 0.025 / 0.030 (2.0 /
  2.4 µS: ``dw_min`` 0.030 with ``up_down`` -1/6, which shrinks the up step only), soft
  bounds at ±2.5 (slope 0.4 per half window: the symmetry point at -0.227 as on taox),
  device-to-device spread of the steps 0.14 in their mean and in their asymmetry (taox: 0.2
  on each), cycle-to-cycle SD 1.04 steps (taox: 0.3 of a step, plus a 2 µS relaxation after
  every write, which aihwkit does not model), ideal periphery, digital biases. The fast array
  is read relative to its symmetry point for TTv2 and c-TTv2 (the presets'
  ``subtract_symmetry_point``), raw for AGAD (as eapu's AGAD reads it); the slow one never
  (taox's C is read against a reference column at the window's centre). The device draws
  are seeded on the compound (``construction_seed``: aihwkit ignores the sub-devices' own).

What the devices do not share: taox's hard window at ±1 (aihwkit's soft bounds run to ±2.5),
relaxation as an additive (not step-proportional) noise, read noise (0.1 µS on taox), and the
granularity: aihwkit's is ``dw_min`` = 0.030 (the larger, RESET step), eapu's the SET step
0.025 (`eapu.algorithms.granularity`), so aihwkit's auto-scaled rate onto A and its buffer
granularity are 1.2 times eapu's.

aihwkit is optional and builds from source (about 10 minutes, in its own virtual environment):
Python 3.11, ``pip install torch==2.13.0 torchvision==0.28.0 ninja scikit-build cmake pybind11
mypy scikit-learn``, ``apt-get install libopenblas-dev``, that environment's ``bin`` on PATH,
``pip download --no-deps --no-binary :all: --no-build-isolation aihwkit==1.2.0`` and
``pip wheel --no-build-isolation --no-deps aihwkit-1.2.0.tar.gz``; then run this script with
that Python and ``PYTHONPATH=src``. Where it is missing the script says so, runs eapu alone
with ``--only eapu``, and otherwise exits 0.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

LR, BATCH = 0.1, 32


def digits(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """scikit-learn digits in [0, 1], a seeded 80/20 split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target, dtype=torch.int64)
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(1234 + seed))
    n = int(0.8 * len(y))
    return x[idx[:n]], y[idx[:n]], x[idx[n:]], y[idx[n:]]


def mlp(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10))


def train(
    model: nn.Module, opt: torch.optim.Optimizer, seed: int, epochs: int
) -> tuple[float, float]:
    """SGD on fixed batches; returns (test accuracy in %, seconds)."""
    xtr, ytr, xte, yte = digits(seed)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(ytr), generator=gen)
        for i in range(0, len(ytr), BATCH):
            b = perm[i : i + BATCH]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xtr[b]), ytr[b]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = float((model(xte).argmax(1) == yte).float().mean()) * 100
    return acc, time.perf_counter() - t0


def run_eapu(algorithm: str, seed: int, epochs: int, fast_lr: float) -> tuple[float, float]:
    from eapu.algorithms import AGAD, ChoppedTTv2, TikiTakaV2
    from eapu.nn import convert

    model = mlp(seed)
    convert(model, device="taox_1t1r", scheme="sign", seed=seed)
    cls = {"ttv2": TikiTakaV2, "cttv2": ChoppedTTv2, "agad": AGAD}[algorithm]
    opt = cls(model.parameters(), lr=LR, seed=seed, fast_lr=fast_lr)
    opt.watch(model)
    return train(model, opt, seed, epochs)


def aihwkit_config(algorithm: str, fast_lr: float, seed: int) -> Any:
    """The TTv2 / c-TTv2 / AGAD ReRAM-SB preset's algorithm on a device matched to
    taox_1t1r; the devices' hidden parameters drawn from ``seed`` (the compound's
    ``construction_seed``, the one aihwkit uses for all its devices; 0 would draw them afresh
    each run). Its cycle-to-cycle generator cannot be seeded from Python in aihwkit 1.2.0, so
    an aihwkit run is not repeatable: the same seed moves by about a point between runs here,
    which is why the cross-check takes ten seeds."""
    from aihwkit.simulator.configs import (
        ChoppedTransferCompound,
        DynamicTransferCompound,
        IOParameters,
        SoftBoundsReferenceDevice,
        UnitCellRPUConfig,
        UpdateParameters,
    )
    from aihwkit.simulator.presets.utils import PresetUpdateParameters

    def device(subtract: bool) -> Any:
        return SoftBoundsReferenceDevice(
            dw_min=0.030,
            up_down=-1 / 6,  # scale_up = (1 - 1/6)·dw_min = 0.025, scale_down = 0.030
            w_max=2.5,
            w_min=-2.5,
            dw_min_dtod=0.14,
            up_down_dtod=0.14,
            w_max_dtod=0.0,
            w_min_dtod=0.0,
            dw_min_std=1.04,
            mult_noise=False,
            subtract_symmetry_point=subtract,
        )

    common: dict[str, Any] = dict(
        transfer_forward=IOParameters(is_perfect=True),
        transfer_update=UpdateParameters(
            desired_bl=1, update_bl_management=False, update_management=False
        ),
        units_in_mbatch=False,
        fast_lr=fast_lr,
        auto_scale=True,
        auto_granularity=1000,
        construction_seed=1000 + seed,
    )
    compound: Any
    if algorithm == "agad":  # AGADReRamSBPreset (configs.py:1251), A read raw
        compound = DynamicTransferCompound(
            unit_cell_devices=[device(False), device(False)],
            in_chop_prob=0.02,
            in_chop_random=False,
            tail_weightening=5.0,
            **common,
        )
    else:
        compound = ChoppedTransferCompound(
            unit_cell_devices=[device(True), device(False)],
            in_chop_prob=0.01 if algorithm == "cttv2" else 0.0,
            **common,
        )
    return UnitCellRPUConfig(
        device=compound,
        forward=IOParameters(is_perfect=True),
        backward=IOParameters(is_perfect=True),
        update=PresetUpdateParameters(desired_bl=31),
    )


def run_aihwkit(algorithm: str, seed: int, epochs: int, fast_lr: float) -> tuple[float, float]:
    from aihwkit.nn.conversion import convert_to_analog
    from aihwkit.optim import AnalogSGD

    model = convert_to_analog(mlp(seed), aihwkit_config(algorithm, fast_lr, seed))
    opt = AnalogSGD(model.parameters(), lr=LR)
    opt.regroup_param_groups(model)
    return train(model, opt, seed, epochs)


def have_aihwkit() -> bool:
    try:
        import aihwkit  # noqa: F401
    except ImportError:
        return False
    return True


def summary(accs: list[float]) -> str:
    sd = statistics.stdev(accs) if len(accs) > 1 else math.nan
    return f"{statistics.fmean(accs):5.1f} ± {sd:3.1f} %"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seeds", default="0,1,2,3,4,5,6,7,8,9")
    ap.add_argument("--algorithms", default="ttv2,cttv2,agad")
    ap.add_argument("--only", choices=["eapu", "aihwkit"], default=None)
    ap.add_argument("--fast-lr", type=float, default=0.5, help="rate onto the fast array A")
    a = ap.parse_args()
    if not (a.fast_lr > 0 and math.isfinite(a.fast_lr)):
        ap.error(f"--fast-lr: {a.fast_lr}; allowed: a finite number > 0")
    seeds = [int(s) for s in a.seeds.split(",")]
    algorithms = a.algorithms.split(",")
    unknown = sorted(set(algorithms) - {"ttv2", "cttv2", "agad"})
    if unknown:
        ap.error(f"--algorithms: {unknown}; allowed: ttv2, cttv2, agad")
    tools: dict[str, Callable[[str, int, int, float], tuple[float, float]]] = {}
    if a.only != "aihwkit":
        tools["eapu"] = run_eapu
    if a.only != "eapu":
        if not have_aihwkit():
            print(
                "aihwkit is not installed: skipping the cross-check. Build aihwkit 1.2.0 from "
                "source as this script's docstring says, or run it with --only eapu."
            )
            return
        tools["aihwkit 1.2.0"] = run_aihwkit
    torch.set_num_threads(1)
    print(
        f"digits MLP 64-32-10 (tanh), SGD lr {LR}, batch {BATCH}, {a.epochs} epochs, "
        f"fast_lr {a.fast_lr:g}, seeds {a.seeds}; final test accuracy"
    )
    header = f"{'algorithm':<8}" + "".join(f" {t:>24}" for t in tools)
    print(header)
    for alg in algorithms:
        cells = []
        for name, fn in tools.items():
            accs = []
            for s in seeds:
                acc, sec = fn(alg, s, a.epochs, a.fast_lr)
                accs.append(acc)
                print(f"  {name} {alg} seed {s}: {acc:.1f} % ({sec:.0f} s)", flush=True)
            cells.append(summary(accs))
        print(f"{alg:<8}" + "".join(f" {c:>24}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
