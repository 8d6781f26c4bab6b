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
with the floor the granularity for steps and 1 % of the nominal range for weights (where a
value is near 0 a relative difference means nothing), the same difference in standard
errors, and aihwkit's own run-to-run spread. aihwkit runs ``--aihwkit-runs`` times (3) on
the same cells (``construction_seed``) and is compared by its mean: its cycle-to-cycle
Gaussians come from a table of 32768 values drawn once per run (``rpucuda/rng.h``), whose
own mean (SD 1/√32768) biases every pulse of a run alike, so a ramp of 1000 pulses moves by
a few % from run to run. The SE counts the cells' sampling on both sides (of an SD: from the
sample kurtosis; cells near a bound of the wrong sign make the steps' tails heavy) and that
spread.

aihwkit 1.2.0 in its own environment (see benchmarks/aihwkit_crosscheck.py), run this with
that Python and ``PYTHONPATH=src``; without it, ``--only eapu`` prints eapu's side.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


# ------------------------------------------------------------------------------ eapu
class EapuSide:
    """One tile of ``cells`` cells of an eapu aihwkit preset, driven pulse by pulse."""

    def __init__(self, name: str, cells: int, seed: int) -> None:
        from eapu.devices import get_device

        self.dev = get_device(name)
        self.gen = torch.Generator().manual_seed(seed)
        self.params = self.dev.sample((cells,), generator=self.gen, dtype=torch.float64)
        self.g = torch.full((cells,), self.dev.g_zero_us, dtype=torch.float64)

    def draws(self) -> dict[str, torch.Tensor]:
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
        return out

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

    def draws(self) -> dict[str, torch.Tensor]:
        h = self.hidden()
        out = {
            "step up": h["dwmin_up"],
            "step down": h["dwmin_down"],
            "bound max": h["max_bound"],
            "bound min": h["min_bound"],
        }
        if "reference" in h:
            out["reference"] = h["reference"]
        return out

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
# A statistic: (value, its standard error over the cells). The SE of a mean is SD/√n; of an
# SD, SD·√((κ − 1)/(4n)) with κ the sample kurtosis (the cells' distributions are far from
# normal where a few cells sit near a bound of the wrong sign: their steps dominate the SD).
Stat = tuple[float, float]


def moments(x: torch.Tensor, what: str) -> dict[str, Stat]:
    n = x.numel()
    m, sd = float(x.mean()), float(x.std())
    kurt = float(((x - m) ** 4).mean()) / sd**4 if sd > 0 else 3.0
    return {
        f"{what} mean": (m, sd / math.sqrt(n)),
        f"{what} SD": (sd, sd * math.sqrt(max(kurt - 1, 0) / (4 * n))),
    }


def measure(
    side: Any, pulse: Callable[[bool], None], grid: list[float], n_ramp: int
) -> dict[str, Stat]:
    """Every statistic of one side, by key ("draws|step up mean", "pulse|w 0.250|up SD",
    "ramp|1500|w mean")."""
    out: dict[str, Stat] = {}
    for key, v in side.draws().items():
        out.update({f"draws|{k}": s for k, s in moments(v, key).items()})
    for w in grid:
        for up in (True, False):
            side.set_weights(w)
            before = side.weights().clone()
            pulse(up)
            d = side.weights() - before
            what = "up" if up else "down"
            out.update({f"pulse|w {w: .3f}|{k}": s for k, s in moments(d, what).items()})
    side.set_weights(-1e6)  # clipped to each cell's lower bound
    marks = {round(k * n_ramp / 5) for k in range(6)}
    for k in range(2 * n_ramp + 1):
        if k in marks or (k - n_ramp) in marks:
            out.update({f"ramp|{k:>5}|{m}": s for m, s in moments(side.weights(), "w").items()})
        if k < 2 * n_ramp:
            pulse(k < n_ramp)
    return out


def compare(name: str, cells: int, seed: int, only: str | None, runs: int) -> dict[str, float]:
    from eapu.devices import get_device

    dev = get_device(name)
    gran = dev.granularity_w()
    states = (dev.w_max - dev.w_min) / gran
    n_ramp = int(min(round(1.5 * states), 3000))
    grid = [dev.w_min + (dev.w_max - dev.w_min) * (i + 0.5) / 9 for i in range(9)]
    span = dev.w_max - dev.w_min
    t0 = time.perf_counter()
    got: dict[str, list[dict[str, Stat]]] = {}
    if only != "aihwkit":
        side = EapuSide(name, cells, seed)
        got["eapu"] = [measure(side, side.pulse, grid, n_ramp)]
    if only != "eapu":
        got["aihwkit"] = []
        for _ in range(runs):  # the same cells; aihwkit's noise is not seeded (a new run)
            a = AihwkitSide(name, cells, seed)
            got["aihwkit"].append(measure(a, lambda up, a=a: a.pulse(up, gran), grid, n_ramp))
    sec = time.perf_counter() - t0
    tools = list(got)
    print(
        f"\n== {name} ({dev.model}, dw_min {dev.dw_min:g}, granularity {gran:.5g}, "
        f"{states:.0f} states, {cells} cells, {n_ramp} ramp pulses, {sec:.0f} s)"
    )
    head = "eapu" if "eapu" in got else ""
    if "aihwkit" in got:
        head += ("  |  " if head else "") + f"aihwkit 1.2.0 (mean of {runs} runs: min - max)"
    print(f"  {'statistic':<34} {head}")
    worst: dict[str, float] = {}
    zs: dict[str, float] = {}
    own: dict[str, float] = {}
    section = ""
    for key in got[tools[0]][0]:
        table, label = key.split("|", 1)
        if table != section:
            section = table
            print(
                {
                    "draws": "  device-to-device draws (weight units)",
                    "pulse": "  one pulse: Δw at w (cells set to w, clipped to their bounds)",
                    "ramp": f"  ramp from the lower bound: {n_ramp} up, then {n_ramp} down",
                }[table]
            )
        parts = []
        if "eapu" in got:
            parts.append(f"{got['eapu'][0][key][0]: .4e}")
        if "aihwkit" in got:
            vals = [r[key][0] for r in got["aihwkit"]]
            parts.append(f"{sum(vals) / len(vals): .4e} ({min(vals): .3e} - {max(vals): .3e})")
        print(f"    {label:<32} " + "  |  ".join(parts))
        if len(tools) < 2:
            continue
        floor = gran if table == "pulse" or "step" in label else 0.01 * span
        e, e_se = got["eapu"][0][key]
        vals = [r[key][0] for r in got["aihwkit"]]
        a = sum(vals) / len(vals)
        a_se = got["aihwkit"][0][key][1]
        spread = statistics.stdev(vals) if len(vals) > 1 else 0.0
        se = math.sqrt(e_se**2 + a_se**2 + spread**2 / len(vals))
        worst[table] = max(worst.get(table, 0.0), rel(e, a, floor))
        zs[table] = max(zs.get(table, 0.0), abs(e - a) / se if se > 0 else 0.0)
        if len(vals) > 1:
            own[table] = max(own.get(table, 0.0), (max(vals) - min(vals)) / max(abs(a), floor))
    if worst:
        print(
            "  largest relative difference, eapu against aihwkit: "
            + ", ".join(f"{k} {v:.1%}" for k, v in worst.items())
        )
        print(
            "  the same in standard errors (cells' sampling and aihwkit's run-to-run spread): "
            + ", ".join(f"{k} {v:.1f}" for k, v in zs.items())
        )
        if own:
            print(
                "  aihwkit against itself (largest - smallest of its runs, relative): "
                + ", ".join(f"{k} {v:.1%}" for k, v in own.items())
            )
    return {
        **worst,
        **{f"z {k}": v for k, v in zs.items()},
        **{f"own {k}": v for k, v in own.items()},
    }


def rel(e: float, a: float, floor: float) -> float:
    """|e − a| relative to |a|, or to ``floor`` where a is near 0."""
    return abs(e - a) / max(abs(a), floor)


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
    ap.add_argument("--aihwkit-runs", type=int, default=3, help="aihwkit runs per preset")
    ap.add_argument("--only", choices=["eapu", "aihwkit"], default=None)
    a = ap.parse_args()
    names = a.presets.split(",")
    known = set(list_devices("aihwkit_*"))
    if set(names) - known:
        ap.error(f"--presets: {sorted(set(names) - known)}; allowed: {', '.join(sorted(known))}")
    if a.cells < 100:
        ap.error(f"--cells: {a.cells}; allowed: an integer >= 100")
    if a.aihwkit_runs < 1:
        ap.error(f"--aihwkit-runs: {a.aihwkit_runs}; allowed: an integer >= 1")
    if a.only != "eapu" and not have_aihwkit():
        print(
            "aihwkit is not installed: run with --only eapu, or with aihwkit's Python "
            "(see benchmarks/aihwkit_crosscheck.py)"
        )
        return
    torch.set_num_threads(1)
    summary = {n: compare(n, a.cells, a.seed, a.only, a.aihwkit_runs) for n in names}
    if a.only is None:
        keys = ["draws", "pulse", "ramp"]
        print(
            "\nlargest relative difference of eapu against aihwkit per preset (in standard "
            "errors; aihwkit against itself)"
        )
        print(f"  {'preset':<26} " + "".join(f"{k:>28}" for k in keys))
        for n, w in summary.items():
            cells = [
                f"{w[k]:>8.1%} ({w['z ' + k]:4.1f}; {w.get('own ' + k, math.nan):5.1%})"
                for k in keys
            ]
            print(f"  {n:<26} " + "".join(f"{c:>28}" for c in cells))
        print(
            f"  overall: {max(max(w[k] for k in keys) for w in summary.values()):.1%}, "
            f"{max(max(w['z ' + k] for k in keys) for w in summary.values()):.1f} SE"
        )


if __name__ == "__main__":
    main()
