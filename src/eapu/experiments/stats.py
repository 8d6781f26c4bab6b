"""Update statistics of a training run: which cells were written, when, and at what cost.

>>> from eapu.experiments.stats import write_update_stats
>>> paths = write_update_stats("runs/denoise-eapu", scheme="memorial")   # doctest: +SKIP

From an `InSituOptimizer`'s ledger (or a run directory / ``checkpoint.pt`` holding one):

- the written fraction per layer and step (the paper's Fig. 5d, e): ``written_fraction.csv``
  (long format: step, layer, cells, the ledger's counts, written_fraction) and
  ``written_fraction.png`` (a line per layer, log y);
- Rup over training (``rup.csv``, ``rup.png``) with the measured Nup (pulses the write
  model counted; one per written cell at weight level);
- Nup of a programming scheme estimated as Ncell × Rup (``update_stats.json``), where Ncell
  comes from the device-level characterisation. Two Ncell are measured and both reported:
  ``ncell_random`` (`eapu.programming.characterize`: a write from a random conductance and an
  unknown gate position, i.e. memorial programming's binary search) and ``ncell_step``
  (`step_to_step_pulses`: writes of ±``delta_us`` from the state the previous write left,
  what an in-situ update is). ``nup`` uses ``ncell_step``: every in-situ update starts from
  the previous one, and for memorial programming that is the step-to-step cost the paper
  describes (a few pulses), not the binary search.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import validate
from ..files import atomic_write, load_checkpoint, write_json
from ..ledger import FIELDS, Ledger
from ..report.stats import plot_update_stats
from ..rundir import RunDir

__all__ = [
    "StepCost",
    "UpdateStats",
    "load_update_stats",
    "nup_estimate",
    "step_to_step_pulses",
    "write_update_stats",
]


# ----------------------------------------------------------------------------- the ledger
@dataclass(frozen=True)
class UpdateStats:
    """A ledger's table with names: ``table`` is int64 (steps, parameters, `FIELDS`)."""

    names: list[str]
    cells: list[int]
    table: Tensor

    def count(self, field: str) -> Tensor:
        """One field, (steps, parameters)."""
        return self.table[:, :, FIELDS.index(field)]

    def written_fraction(self) -> Tensor:
        """Fraction of each layer's cells written in each step, float64 (steps, parameters)."""
        return self.count("written").double() / torch.tensor(self.cells, dtype=torch.float64)

    def rup(self) -> Tensor:
        """Fraction of all analog cells written, per step (float64)."""
        return self.count("written").sum(1).double() / max(sum(self.cells), 1)

    def nup(self) -> Tensor:
        """Pulses per cell as the write model counted them, per step (float64)."""
        return self.count("pulses").sum(1).double() / max(sum(self.cells), 1)


def _ledger_names(
    ledger: Ledger, model: nn.Module | None, params: list[Tensor] | None
) -> list[str]:
    if model is None or params is None:
        return list(ledger.names)
    by_id = {id(p): n for n, p in model.named_parameters()}
    return [by_id.get(id(p), ledger.names[i]) for i, p in enumerate(params)]


def _names_from_state(names: list[str], state: dict[str, Tensor]) -> list[str]:
    """Map the ledger's ``param<i>:<shape>`` labels to state-dict keys by shape, in order."""
    keys = [(k, tuple(v.shape)) for k, v in state.items() if torch.is_tensor(v) and v.dim() > 1]
    out, pos = [], 0
    for label in names:
        m = re.fullmatch(r"param\d+:\((.*)\)", label)
        if m is None:
            out.append(label)
            continue
        shape = tuple(int(s) for s in m.group(1).split(",") if s.strip())
        j = next((j for j in range(pos, len(keys)) if keys[j][1] == shape), None)
        if j is None:
            out.append(label)
            continue
        out.append(keys[j][0])
        pos = j + 1
    return out


#: Where an optimizer's ``state_dict`` keeps its ledger: `InSituOptimizer` under
#: ``"insitu"``, the `eapu.algorithms` optimizers under ``"algorithm"``.
LEDGER_KEYS = ("insitu", "algorithm")


def _checkpoint_ledger(opt_state: dict[str, Any]) -> dict[str, Any] | None:
    for key in LEDGER_KEYS:
        own = opt_state.get(key)
        if isinstance(own, dict) and "ledger" in own:
            return own["ledger"]  # type: ignore[no-any-return]
    return None


def load_update_stats(source: Any, *, model: nn.Module | None = None) -> UpdateStats:
    """The update statistics of an `InSituOptimizer`, a `Ledger`, a ``checkpoint.pt`` or a
    run directory. Layer names come from ``model`` (with an optimizer) or from the
    checkpoint's model state (matched by shape), else the ledger's own labels."""
    from ..algorithms import TileAlgorithm
    from ..optim import InSituOptimizer

    if isinstance(source, (InSituOptimizer, TileAlgorithm)):
        led = source.ledger
        names = _ledger_names(led, model, source.analog_parameters())
        return UpdateStats(names, list(led.cells), led.table())
    if isinstance(source, Ledger):
        return UpdateStats(list(source.names), list(source.cells), source.table())
    path = Path(source)
    if path.is_dir():
        path = RunDir(path).checkpoint
    if not path.exists():
        raise ValueError(
            f"{path} does not exist; give a run directory, a checkpoint.pt, an "
            "InSituOptimizer or a Ledger"
        )
    ck = load_checkpoint(path, map_location="cpu")
    saved = _checkpoint_ledger(ck.get("optimizer", {}))
    if saved is None:
        method = ck.get("config", {}).get("method", "?")
        raise ValueError(f"{path} holds no ledger: method {method!r} does not train in situ")
    names = _names_from_state(list(saved["names"]), ck.get("model", {}))
    return UpdateStats(names, list(saved["cells"]), saved["table"].to(torch.int64))


# ------------------------------------------------------------------------ pulses per write
@dataclass(frozen=True)
class StepCost:
    """Programming pulses per written cell of a device under a scheme, two ways."""

    device: str
    scheme: str
    ncell_random: float
    """From `eapu.programming.characterize`: a random start and an unknown gate position."""
    ncell_step: float
    """From `step_to_step_pulses`: updates of ±``delta_us`` from the previous write's state."""
    delta_us: float
    sd_us: float
    """SD(εcell) the characterisation measured (µS)."""


def step_to_step_pulses(
    device: Any,
    scheme: str | None = None,
    *,
    delta_us: float = 2.0,
    n_cells: int = 2048,
    rounds: int = 8,
    seed: int = 0,
) -> StepCost:
    """Measure pulses per written cell for in-situ updates of size ``delta_us``.

    Cells (with device-to-device spread) are loaded to targets uniform over the window less
    the characterisation's margin (memorial programming does its binary search here), then
    take ``rounds`` updates of ±``delta_us`` µS of random sign from the state the previous
    write left (gate positions included), as EaPU writes ±ΔWth / Rwg. Only the update
    rounds are counted; stuck cells are excluded. The default ``delta_us`` = 2 µS is the
    paper's SD(εcell) and so its default threshold.

    Args:
        device: a `Device` or a registered device name.
        scheme: a registered scheme; default ``device.default_scheme``.
    """
    from ..devices import get_device
    from ..programming import CellState, characterize, get_scheme

    dev = get_device(device) if isinstance(device, str) else device
    validate.number("delta_us", delta_us, low=0, low_open=True)
    validate.integer("rounds", rounds, low=1)
    validate.integer("n_cells", n_cells, low=2)
    name = scheme or dev.default_scheme
    fn = get_scheme(name).fn
    char = characterize(dev, name, n_cells=n_cells, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    dtype = torch.float64
    params = dev.sample((n_cells,), generator=gen, dtype=dtype)
    state = CellState.initial(dev, params, dtype=dtype)
    tol = dev.program_tolerance_us
    margin = min(2 * tol + 3 * dev.relaxation_sd_us, 0.25 * dev.span_us)
    lo, hi = dev.g_min_us + margin, dev.g_max_us - margin
    target = lo + (hi - lo) * torch.rand(n_cells, generator=gen, dtype=dtype)
    mask = torch.ones(n_cells, dtype=torch.bool)
    state = fn(state, target, mask, dev, params, generator=gen).state
    pulses = torch.zeros(n_cells, dtype=torch.int64)
    for _ in range(rounds):
        sign = torch.where(torch.rand(n_cells, generator=gen) < 0.5, -1.0, 1.0).to(dtype)
        step = sign * delta_us
        # Turn back at the window's edges so that every update is a full ±delta.
        step = torch.where((target + step < lo) | (target + step > hi), -step, step)
        target = target + step
        res = fn(state, target, mask, dev, params, generator=gen)
        state = res.state
        pulses += res.pulses.to(torch.int64)
    free = params.free
    n_free = int(free.sum())
    ncell = float(pulses[free].double().sum()) / (rounds * n_free) if n_free else math.nan
    return StepCost(
        device=dev.name,
        scheme=name,
        ncell_random=char.pulses_per_write,
        ncell_step=ncell,
        delta_us=float(delta_us),
        sd_us=char.sd_us,
    )


def nup_estimate(rup: float, cost: StepCost, *, mode: str = "step") -> float:
    """Nup = Ncell × Rup for a scheme: ``mode="step"`` (in-situ updates, the default) or
    ``"random"`` (the characterisation's writes from a random state)."""
    validate.choice("mode", mode, ("step", "random"))
    return rup * (cost.ncell_step if mode == "step" else cost.ncell_random)


# --------------------------------------------------------------------------------- outputs
def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    atomic_write(path, buf.getvalue().encode())


def write_update_stats(
    source: Any,
    out_dir: str | Path | None = None,
    *,
    model: nn.Module | None = None,
    device: str | None = None,
    scheme: str | None = None,
    delta_us: float = 2.0,
    seed: int = 0,
) -> dict[str, Path]:
    """Write ``written_fraction.csv/.png``, ``rup.csv/.png`` and ``update_stats.json``.

    Args:
        source: an `InSituOptimizer`, a `Ledger`, a ``checkpoint.pt`` or a run directory.
        out_dir: where to write (default: the run directory; required for an optimizer).
        model: names the layers of an optimizer's parameters.
        device: device preset for the Nup estimate (default: the run's, else ``taox_1t1r``).
        scheme: programming scheme for the Nup estimate (default: the run's method's scheme,
            else ``memorial``); Nup = Ncell (step-to-step) × Rup, see `step_to_step_pulses`.
        delta_us: update size of the step-to-step measurement (µS).
        seed: seed of the device-level measurement.

    Returns:
        The paths written, by kind (``"csv"``, ``"plot"``, ``"rup_csv"``, ``"rup_plot"``,
        ``"json"``).
    """
    st = load_update_stats(source, model=model)
    cfg: dict[str, Any] = {}
    if not hasattr(source, "ledger") and not isinstance(source, Ledger):
        p = Path(source)
        run_dir = p if p.is_dir() else p.parent
        if (RunDir(run_dir).config).exists():
            cfg = json.loads((RunDir(run_dir).config).read_text())
        out_dir = out_dir if out_dir is not None else run_dir
    if out_dir is None:
        raise ValueError("out_dir is required when the source is an optimizer or a ledger")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if scheme is None and cfg.get("method"):
        from .registry import get_method

        scheme = get_method(cfg["method"]).scheme
    scheme = scheme or "memorial"
    device = device or cfg.get("device") or "taox_1t1r"

    steps = st.table.shape[0]
    frac = st.written_fraction()
    rows: list[list[Any]] = []
    for s in range(steps):
        for j, name in enumerate(st.names):
            counts = [int(c) for c in st.table[s, j]]
            rows.append([s + 1, name, st.cells[j], *counts, float(frac[s, j])])
    paths = {
        "csv": out / "written_fraction.csv",
        "plot": out / "written_fraction.png",
        "rup_csv": out / "rup.csv",
        "rup_plot": out / "rup.png",
        "json": out / "update_stats.json",
    }
    _write_csv(paths["csv"], ["step", "layer", "cells", *FIELDS, "written_fraction"], rows)

    cost = step_to_step_pulses(device, scheme, delta_us=delta_us, seed=seed)
    rup, nup = st.rup(), st.nup()
    _write_csv(
        paths["rup_csv"],
        ["step", "written", "pulses", "rup", "nup_measured", f"nup_{scheme}_step"],
        [
            [
                s + 1,
                int(st.count("written")[s].sum()),
                int(st.count("pulses")[s].sum()),
                float(rup[s]),
                float(nup[s]),
                float(rup[s]) * cost.ncell_step,
            ]
            for s in range(steps)
        ],
    )
    rup_mean = float(rup.mean()) if steps else 0.0
    summary = {
        "steps": steps,
        "cells": sum(st.cells),
        "layers": len(st.names),
        "rup_mean": rup_mean,
        "rup_max": float(rup.max()) if steps else 0.0,
        "nup_measured": float(nup.mean()) if steps else 0.0,
        "device": cost.device,
        "scheme": cost.scheme,
        "delta_us": cost.delta_us,
        "sd_us": cost.sd_us,
        "ncell_random": cost.ncell_random,
        "ncell_step": cost.ncell_step,
        "nup": nup_estimate(rup_mean, cost),
        "nup_random": nup_estimate(rup_mean, cost, mode="random"),
        "nup_uses": "ncell_step",
    }
    write_json(paths["json"], summary)
    plot_update_stats(st.names, frac, rup, summary, paths["plot"], paths["rup_plot"])
    return paths
