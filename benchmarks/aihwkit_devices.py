"""Cross-check eapu's aihwkit device presets (`eapu.devices.AihwkitDevice`) against aihwkit.

    python benchmarks/aihwkit_devices.py [--presets aihwkit_reram_sb,...] [--cells 50000]
                                         [--seed 0] [--only eapu]

For every preset (default: all of ``eapu list devices 'aihwkit_*'``) it prints, eapu beside
aihwkit 1.2.0 (the same preset class, ``write_noise_std`` 0 on aihwkit's side since eapu does
not model it), over ``--cells`` cells of one tile in weight units:

1. the device-to-device draws: mean and SD of the up and down steps and of the bounds (and
   of the reference, for SoftBoundsReference);
2. one pulse's change as a function of the weight: cells set to w (aihwkit's
   ``set_weights``, which clips w to each cell's bounds; eapu clips the same way), then one
   up (or down) pulse each: mean and SD of Δw over the cells, at nine weights across the
   nominal range;
3. a ramp from the window's edge: cells set to their lower bound, then n up pulses and n
   down pulses (n = 1.5 times the states, at most 3000): mean and SD of w over the cells
   at eleven points of the ramp;

then the largest relative difference of each table, |eapu − aihwkit| / max(|aihwkit|, floor)
with the floor dw_min for steps and 1 % of the nominal range for weights (where a value is
near 0 a relative difference means nothing). Statistical noise sets the scale: the SE of a
mean step is its SD / √cells (for ReRamSB's additive 3.75-step noise and 50000 cells, 1.7 %
of a step). aihwkit's cycle-to-cycle Gaussians come from a table of 32768 values drawn once
per run, whose own mean biases a run's noise by up to ~0.5 % of its SD.

aihwkit 1.2.0 in its own environment (see benchmarks/aihwkit_crosscheck.py), run this with
that Python and ``PYTHONPATH=src``; without it, ``--only eapu`` prints eapu's side.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import torch

Stats = dict[str, tuple[float, float]]


# ------------------------------------------------------------------------------ eapu
class EapuSide:
    """One tile of ``cells`` cells of an eapu aihwkit preset, driven pulse by pulse."""

    def __init__(self, name: str, cells: int, seed: int) -> None:
        from eapu.devices import get_device

        self.dev = get_device(name)
        self.gen = torch.Generator().manual_seed(seed)
        self.params = self.dev.sample((cells,), generator=self.gen, dtype=torch.float64)
        self.g = torch.full((cells,), self.dev.g_zero_us, dtype=torch.float64)

    def draws(self) -> Stats:
        p, dw = self.params, self.dev.dw_min
        ex = p.extra
        out = {
            "step up": p.step_up_scale * dw,
            "step down": p.step_down_scale * dw,
            "bound max": ex["bound_max_w"],
            "bound min": ex["bound_min_w"],
        }
        if self.dev.model == "soft_bounds_reference":
            out["reference"] = ex["reference_w"]
        return {k: (float(v.mean()), float(v.std())) for k, v in out.items()}

    def _bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        ex = self.params.extra
        return ex["bound_min_w"], ex["bound_max_w"]

    def set_weights(self, w: float) -> None:
        lo, hi = self._bounds()  # aihwkit's set_weights clips the stored weight to the bounds
        wt = torch.full_like(self.g, w).clamp(min=lo).clamp(max=hi)
        self.g = self.dev.g_zero_us + wt * self.dev.us_per_weight

    def weights(self) -> torch.Tensor:
        return (self.g - self.dev.g_zero_us) / self.dev.us_per_weight

    def pulse(self, up: bool) -> None:
        from eapu.devices import pulse

        pol = torch.full_like(self.g, 1.0 if up else -1.0)
        self.g = pulse(self.g, pol, self.dev, self.params, generator=self.gen)


# --------------------------------------------------------------------------- aihwkit
class AihwkitSide:
    """One aihwkit tile (1 × cells) of the same preset class, one pulse per update."""

    def __init__(self, name: str, cells: int, seed: int) -> None:
        from aihwkit.simulator.configs import IOParameters, SingleRPUConfig, UpdateParameters
        from aihwkit.simulator.presets import devices as presets
        from aihwkit.simulator.tiles.analog import AnalogTile

        from eapu.devices.aihwkit import AIHWKIT_PRESETS

        cls_name = AIHWKIT_PRESETS[name][1]
        kw: dict[str, Any] = {"construction_seed": 1000 + seed}
        if hasattr(getattr(presets, cls_name)(), "write_noise_std"):
            kw["write_noise_std"] = 0.0  # not modelled by eapu
        self.dev = getattr(presets, cls_name)(**kw)
        cfg = SingleRPUConfig(
            device=self.dev,
            forward=IOParameters(is_perfect=True),
            backward=IOParameters(is_perfect=True),
            update=UpdateParameters(
                desired_bl=1, fixed_bl=True, update_bl_management=False, update_management=False
            ),
        )
        self.tile = AnalogTile(1, cells, cfg)
        self.cells = cells
        self.x = torch.ones(1, cells)

    def hidden(self) -> dict[str, torch.Tensor]:
        return {k: v.double().reshape(-1) for k, v in self.tile.get_hidden_parameters().items()}

    def draws(self) -> Stats:
        h = self.hidden()
        out = {
            "step up": h["dwmin_up"],
            "step down": h["dwmin_down"],
            "bound max": h["max_bound"],
            "bound min": h["min_bound"],
        }
        if "reference" in h:
            out["reference"] = h["reference"]
        return {k: (float(v.mean()), float(v.std())) for k, v in out.items()}

    def set_weights(self, w: float) -> None:
        self.tile.set_weights(torch.full((1, self.cells), w))

    def weights(self) -> torch.Tensor:
        return self.tile.get_weights()[0].double().reshape(-1)

    def pulse(self, up: bool, granularity: float) -> None:
        # lr = the weight granularity with |x| = |d| = 1 and BL 1: one pulse on every cell;
        # d < 0 is an up pulse (W ← W − lr·d·x)
        self.tile.set_learning_rate(granularity)
        self.tile.update(self.x, torch.full((1, 1), -1.0 if up else 1.0))


# ------------------------------------------------------------------------- the tables
def one_pulse_table(side: Any, grid: list[float], pulse: Callable[[bool], None]) -> list[Stats]:
    rows = []
    for w in grid:
        row: Stats = {}
        for up in (True, False):
            side.set_weights(w)
            before = side.weights().clone()
            pulse(up)
            d = side.weights() - before
            row["up" if up else "down"] = (float(d.mean()), float(d.std()))
        rows.append(row)
    return rows


def ramp_table(side: Any, n: int, pulse: Callable[[bool], None]) -> list[tuple[int, float, float]]:
    side.set_weights(-1e6)  # clipped to each cell's lower bound
    marks = {round(k * n / 5) for k in range(6)}
    out = []
    for k in range(2 * n + 1):
        if k in marks or (k - n) in marks:
            w = side.weights()
            out.append((k, float(w.mean()), float(w.std())))
        if k < 2 * n:
            pulse(k < n)
    return out


def rel(e: float, a: float, floor: float) -> float:
    return abs(e - a) / max(abs(a), floor)


def z_mean(e: tuple[float, float], a: tuple[float, float], n: int) -> float:
    """|difference of two means| in standard errors (each mean over n cells)."""
    se = math.sqrt((e[1] ** 2 + a[1] ** 2) / n)
    return abs(e[0] - a[0]) / se if se > 0 else (0.0 if e[0] == a[0] else math.inf)


def z_sd(e: tuple[float, float], a: tuple[float, float], n: int) -> float:
    """|difference of two SDs| in standard errors (SE of an SD ~ SD / sqrt(2n))."""
    se = math.sqrt((e[1] ** 2 + a[1] ** 2) / (2 * n))
    return abs(e[1] - a[1]) / se if se > 0 else (0.0 if e[1] == a[1] else math.inf)


def compare(name: str, cells: int, seed: int, only: str | None) -> dict[str, float]:
    from eapu.devices import get_device

    dev = get_device(name)
    gran = dev.granularity_w()
    states = (dev.w_max - dev.w_min) / gran
    n_ramp = int(min(round(1.5 * states), 3000))
    grid = [dev.w_min + (dev.w_max - dev.w_min) * (i + 0.5) / 9 for i in range(9)]
    span = dev.w_max - dev.w_min
    t0 = time.perf_counter()
    sides: dict[str, Any] = {}
    if only != "aihwkit":
        sides["eapu"] = EapuSide(name, cells, seed)
    if only != "eapu":
        sides["aihwkit"] = AihwkitSide(name, cells, seed)
    pulses: dict[str, Callable[[bool], None]] = {}
    for k, s in sides.items():
        pulses[k] = s.pulse if k == "eapu" else (lambda up, s=s: s.pulse(up, gran))
    draws = {k: s.draws() for k, s in sides.items()}
    steps = {k: one_pulse_table(s, grid, pulses[k]) for k, s in sides.items()}
    ramps = {k: ramp_table(s, n_ramp, pulses[k]) for k, s in sides.items()}
    sec = time.perf_counter() - t0
    tools = list(sides)
    print(
        f"\n== {name} ({dev.model}, dw_min {dev.dw_min:g}, granularity {gran:.5g}, "
        f"{states:.0f} states, {cells} cells, {sec:.0f} s)"
    )
    print("device-to-device draws (weight units): mean / SD  " + "  |  ".join(tools))
    worst: dict[str, float] = {}
    zs: dict[str, float] = {}
    for key in draws[tools[0]]:
        cells_txt = "  |  ".join(f"{draws[t][key][0]: .5f} / {draws[t][key][1]:.5f}" for t in tools)
        print(f"  {key:<10} {cells_txt}")
        if len(tools) == 2:
            floor = dev.dw_min if "step" in key else 0.01 * span
            e, a = draws["eapu"][key], draws["aihwkit"][key]
            worst["draws"] = max(
                worst.get("draws", 0.0), rel(e[0], a[0], floor), rel(e[1], a[1], floor)
            )
            zs["draws"] = max(zs.get("draws", 0.0), z_mean(e, a, cells))
    print("one pulse: Δw mean / SD at w   " + "  |  ".join(f"{t} up, down" for t in tools))
    for i, w in enumerate(grid):
        parts = []
        for t in tools:
            r = steps[t][i]
            parts.append(
                f"{r['up'][0]: .3e} / {r['up'][1]:.3e}, {r['down'][0]: .3e} / {r['down'][1]:.3e}"
            )
        print(f"  w {w: .3f}  " + "  |  ".join(parts))
        if len(tools) == 2:
            for d in ("up", "down"):
                e, a = steps["eapu"][i][d], steps["aihwkit"][i][d]
                worst["one pulse"] = max(
                    worst.get("one pulse", 0.0), rel(e[0], a[0], gran), rel(e[1], a[1], gran)
                )
                zs["one pulse"] = max(
                    zs.get("one pulse", 0.0), z_mean(e, a, cells), z_sd(e, a, cells)
                )
    print(
        f"ramp from the lower bound: {n_ramp} up, then {n_ramp} down; mean / SD of w  "
        + "  |  ".join(tools)
    )
    for i, (k, _, _) in enumerate(ramps[tools[0]]):
        parts = [f"{ramps[t][i][1]: .4f} / {ramps[t][i][2]:.4f}" for t in tools]
        print(f"  pulse {k:>5}  " + "  |  ".join(parts))
        if len(tools) == 2:
            e, a = ramps["eapu"][i], ramps["aihwkit"][i]
            worst["ramp"] = max(
                worst.get("ramp", 0.0), rel(e[1], a[1], 0.01 * span), rel(e[2], a[2], 0.01 * span)
            )
            zs["ramp"] = max(
                zs.get("ramp", 0.0), z_mean(e[1:], a[1:], cells), z_sd(e[1:], a[1:], cells)
            )
    if worst:
        print(
            "largest difference in standard errors of the cells' statistics: "
            + ", ".join(f"{k} {v:.1f}" for k, v in zs.items())
        )
        print(
            "largest relative difference, eapu against aihwkit: "
            + ", ".join(f"{k} {v:.1%}" for k, v in worst.items())
        )
    return {**worst, **{f"z {k}": v for k, v in zs.items()}}


def have_aihwkit() -> bool:
    try:
        import aihwkit  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    from eapu.devices import list_devices

    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--presets", default=",".join(list_devices("aihwkit_*")))
    ap.add_argument("--cells", type=int, default=50000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["eapu", "aihwkit"], default=None)
    a = ap.parse_args()
    names = a.presets.split(",")
    known = set(list_devices("aihwkit_*"))
    if set(names) - known:
        ap.error(f"--presets: {sorted(set(names) - known)}; allowed: {', '.join(sorted(known))}")
    if a.cells < 100:
        ap.error(f"--cells: {a.cells}; allowed: an integer >= 100")
    if a.only != "eapu" and not have_aihwkit():
        print(
            "aihwkit is not installed: run with --only eapu, or with aihwkit's Python "
            "(see benchmarks/aihwkit_crosscheck.py)"
        )
        return
    torch.set_num_threads(1)
    summary = {n: compare(n, a.cells, a.seed, a.only) for n in names}
    if a.only is None:
        keys = ["draws", "one pulse", "ramp"]
        print("\nlargest relative difference (in standard errors) per preset:")
        print(f"  {'preset':<26} " + "".join(f"{k:>18}" for k in keys))
        for n, w in summary.items():
            print(f"  {n:<26} " + "".join(f"{w[k]:>10.1%} ({w['z ' + k]:4.1f})" for k in keys))
        print(
            f"  overall: {max(max(w[k] for k in keys) for w in summary.values()):.1%}, "
            f"{max(max(w['z ' + k] for k in keys) for w in summary.values()):.1f} SE"
        )


if __name__ == "__main__":
    main()
