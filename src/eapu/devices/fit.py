"""Fit a measured device (`eapu.devices.MeasuredDevice`) to pulse trains of a real cell.

Input is the common published form of a pulse-response measurement: a CSV file with one
column per ramp (a cell, or a cycle of one cell) and one row per pulse, each value the
conductance read after that row's pulse (row 1 the state before the first). Either one file
per polarity (``read_pulse_trains(path, units="uS", polarity="set")``) or one file with a
``polarity`` column (``set``/``reset`` or ``+1``/``-1`` per row: a potentiation-depression
cycle per column). A header row is optional; a leading ``pulse`` / ``index`` column is
ignored.

`fit_device` turns the trains into tables over the conductance:

- mean step ``m(G)``: the mean change of one pulse in bins of the conductance before it;
- device-to-device spread ``dtod_sd``: each ramp's scale ``s_r = Σ ΔG / Σ m(G)``, whose SD,
  less the part the cycle-to-cycle noise of a finite ramp explains, is the relative spread of
  the curve between ramps (treated as cells);
- cycle-to-cycle SD ``σ(G)``: the SD per bin of ``ΔG/s_r − m(G)``, less the ``2·σ_read²``
  that reading before and after a pulse adds (read noise is a flag, in µS).

Relaxation after a write, read noise and the verify tolerance are not in pulse trains: they
are arguments (flags of ``eapu device fit``) with their units. The gate-controlled SET is
not fitted: the device keeps the parametric gate curve over its window (edit the file's
``gate_*`` fields, or give ``gate_v_v`` / ``gate_g_us``, to use measured values).

`simulate_pulse_trains` drives a device with the same pulses (same ramps, same starting
states), for the figure `fit_figure` writes beside the device file and for tests.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import validate
from .core import Device
from .measured import MeasuredDevice
from .physics import pulse, read, stuck_values

__all__ = [
    "MAX_CSV_BYTES",
    "UNITS",
    "DeviceFit",
    "PulseDataError",
    "PulseTrains",
    "fit_device",
    "fit_figure",
    "ramp_check",
    "read_pulse_trains",
    "simulate_pulse_trains",
    "write_example_trains",
    "write_pulse_trains",
]

UNITS = {"S": 1e6, "mS": 1e3, "uS": 1.0, "µS": 1.0}
"""Conductance units a pulse-train file may be in, and their factor to µS."""

#: Above this a value in siemens is implausible for one cell (10 mS): the file is in µS.
_MAX_SIEMENS = 1e-2
#: Below this a whole file in µS is implausible (10 pS at most): the file is in siemens.
_MIN_MAX_MICROSIEMENS = 1e-2
#: Below this (µS) a whole file in mS is implausible: siemens read as mS (1000× too small).
_MIN_MAX_MILLI_AS_US = 1.0

#: Names of a leading pulse-index column, compared without case, spaces or punctuation
#: (``Pulse #``, ``pulse_no``, ``Index`` ...).
_INDEX_COLUMNS = (
    "pulse",
    "pulses",
    "pulsenumber",
    "pulseno",
    "pulseindex",
    "index",
    "n",
    "no",
    "number",
    "step",
    "",
)
_POLARITY = {"set": 1, "+1": 1, "1": 1, "reset": -1, "-1": -1}


class PulseDataError(ValueError):
    """A pulse-train file is malformed; ``file``, ``row`` (line of the file, 1-based) and
    ``column`` (1-based, with its header name where there is one) say where."""

    def __init__(self, file: str, row: int | None, column: str | None, problem: str) -> None:
        self.file, self.row, self.column, self.problem = file, row, column, problem
        where = ", ".join(
            x for x in (f"row {row}" if row else "", f"column {column}" if column else "") if x
        )
        super().__init__(f"{file}: {where + ': ' if where else ''}{problem}")


#: The largest pulse-train CSV read: a measured device is some thousand ramps of some
#: hundred pulses (a few MB); the bound keeps a wrong file from taking the memory.
MAX_CSV_BYTES = 32 << 20


@dataclass(frozen=True)
class PulseTrains:
    """Pulse trains in µS: ``g_us[k, r]`` is ramp r's conductance read after pulse k
    (row 0: before the first), ``polarity[k]`` the pulse that led to row k (+1 SET, -1
    RESET; row 0 repeats row 1's)."""

    g_us: np.ndarray
    polarity: np.ndarray
    source: str
    columns: tuple[str, ...]
    lines: tuple[int, ...] = field(default=())
    """Line of the file of each row (for messages)."""

    @property
    def ramps(self) -> int:
        return int(self.g_us.shape[1])

    @property
    def pulses(self) -> int:
        return int(self.g_us.shape[0]) - 1

    def steps(self, polarity: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(G before, signed ΔG times ``polarity``, ramp index) of every pulse of
        ``polarity``, flattened (a ramp that ended early contributes its pulses only)."""
        k = np.nonzero(self.polarity[1:] == polarity)[0] + 1
        before = self.g_us[k - 1]
        delta = (self.g_us[k] - before) * polarity
        ramp = np.broadcast_to(np.arange(self.ramps), before.shape)
        ok = np.isfinite(before) & np.isfinite(delta)
        return before[ok], delta[ok], ramp[ok]

    def last(self) -> np.ndarray:
        """Each ramp's last measured conductance (µS)."""
        n = np.isfinite(self.g_us).sum(0) - 1
        return self.g_us[n, np.arange(self.ramps)]


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def read_pulse_trains(
    path: str | Path,
    *,
    units: str,
    polarity: str | None = None,
    max_reverse: float = 0.25,
) -> PulseTrains:
    """Read a pulse-train CSV (see the module) into µS, checking it thoroughly.

    Args:
        path: the CSV file.
        units: ``"S"``, ``"mS"`` or ``"uS"`` (``"µS"``): the unit of the values.
        polarity: ``"set"`` or ``"reset"`` for a file of one polarity; None for a file
            with a ``polarity`` column.
        max_reverse: a ramp may step against its polarity (noise) by at most this fraction
            of its net change in one pulse; more is a non-monotone ramp.

    Ramps may be of different lengths: a ramp that ends early leaves its later cells empty
    (or ``nan``), the common published form; a gap inside a ramp is refused.

    Raises:
        PulseDataError: a row longer than the header, a non-number, a negative conductance, a
            gap in a ramp, values implausible in ``units``, or a non-monotone ramp, naming
            file, row and column.
    """
    name = str(path)
    validate.choice("units", units, UNITS)
    validate.choice("polarity", polarity, ("set", "reset", None))
    validate.fraction("max_reverse", max_reverse, low_open=True)
    from ..files import read_text

    try:
        text = read_text(path, max_bytes=MAX_CSV_BYTES, what="pulse-train file")
    except FileNotFoundError:
        raise PulseDataError(name, None, None, "no such file") from None
    except OSError as e:
        raise PulseDataError(name, None, None, e.strerror or str(e)) from None
    rows = [(i + 1, r) for i, r in enumerate(csv.reader(io.StringIO(text))) if any(r)]
    if not rows:
        raise PulseDataError(name, None, None, "the file is empty")
    first = [c.strip() for c in rows[0][1]]
    header = [c or f"{j + 1}" for j, c in enumerate(first)]
    if all(_number(c) is not None for c in first):
        header = [f"{j + 1}" for j in range(len(first))]
    else:
        rows = rows[1:]
    width = len(header)
    for line, r in rows:
        if len(r) > width:
            raise PulseDataError(
                name, line, None, f"{len(r)} fields, the header has {width} columns"
            )
        r.extend([""] * (width - len(r)))  # a ramp that ended early: its cells are empty
    lower = [h.lower() for h in header]
    pol_col = lower.index("polarity") if "polarity" in lower else None
    if polarity is None and pol_col is None:
        raise PulseDataError(
            name, None, None, "no 'polarity' column: give the polarity of the whole file"
        )
    skip = {pol_col} if pol_col is not None else set()
    has_header = header != [f"{j + 1}" for j in range(width)]
    if has_header and re.sub(r"[^a-z]", "", lower[0]) in _INDEX_COLUMNS:
        skip.add(0)
    cols = [j for j in range(width) if j not in skip]
    if not cols:
        raise PulseDataError(name, None, None, "no ramp columns")
    if len(rows) < 2:
        raise PulseDataError(name, None, None, f"{len(rows)} data row(s); a ramp needs >= 2")

    def col_name(j: int) -> str:
        return f"{j + 1}" if header[j] == f"{j + 1}" else f"{j + 1} ({header[j]!r})"

    values = np.empty((len(rows), len(cols)))
    pol = np.empty(len(rows), dtype=np.int64)
    for i, (line, r) in enumerate(rows):
        if pol_col is not None:
            p = _POLARITY.get(r[pol_col].strip().lower())
            if p is None:
                raise PulseDataError(
                    name, line, col_name(pol_col), f"polarity {r[pol_col]!r} is not set/reset"
                )
            pol[i] = p
        else:
            pol[i] = 1 if polarity == "set" else -1
        for c, j in enumerate(cols):
            cell = r[j].strip()
            v = math.nan if cell == "" else _number(cell)
            if v is None:
                raise PulseDataError(
                    name, line, col_name(j), f"{r[j]!r} is not a number{_index_hint(j, header)}"
                )
            if math.isinf(v):
                raise PulseDataError(name, line, col_name(j), f"conductance is {v}")
            if v < 0:
                raise PulseDataError(name, line, col_name(j), f"negative conductance {v:g}")
            values[i, c] = v
    lines = tuple(line for line, _ in rows)
    for c, j in enumerate(cols):
        have = np.isfinite(values[:, c])
        n = int(have.sum())
        if n < 2:
            raise PulseDataError(name, None, col_name(j), f"{n} value(s); a ramp needs at least 2")
        if not have[0] or not have[:n].all():
            gap = int(np.argmin(have[:n])) if have[0] else 0
            raise PulseDataError(
                name,
                lines[gap],
                col_name(j),
                "an empty cell inside the ramp (a ramp may end early, with empty cells after "
                "its last value, but not skip a row)",
            )
    values = np.where(np.isfinite(values), values, np.nan)
    peak = float(np.nanmax(values))
    if units == "S" and (values > _MAX_SIEMENS).any():
        i, c = (int(v) for v in np.argwhere(values > _MAX_SIEMENS)[0])
        raise PulseDataError(
            name,
            lines[i],
            col_name(cols[c]),
            f"{values[i, c]:g} S is implausible for one cell (> {_MAX_SIEMENS:g} S); "
            "the values look like µS: pass units uS",
        )
    if units == "mS" and peak * UNITS["mS"] < _MIN_MAX_MILLI_AS_US:
        i, c = (int(v) for v in np.unravel_index(np.nanargmax(values), values.shape))
        raise PulseDataError(
            name,
            lines[i],
            col_name(cols[c]),
            f"the largest value is {values[i, c]:g} mS = {peak * UNITS['mS']:g} µS "
            f"(< {_MIN_MAX_MILLI_AS_US:g} µS for the whole window); the values look like "
            "siemens: pass units S",
        )
    if units in ("uS", "µS") and peak < _MIN_MAX_MICROSIEMENS:
        i, c = (int(v) for v in np.unravel_index(np.nanargmax(values), values.shape))
        raise PulseDataError(
            name,
            lines[i],
            col_name(cols[c]),
            f"the largest value is {values[i, c]:g} µS (< {_MIN_MAX_MICROSIEMENS:g} µS); "
            "the values look like siemens: pass units S",
        )
    g = values * UNITS[units]
    pol[0] = pol[1]
    _check_monotone(g, pol, name, lines, [col_name(j) for j in cols], max_reverse)
    return PulseTrains(g, pol, name, tuple(header[j] for j in cols), lines)


def _index_hint(j: int, header: list[str]) -> str:
    """A hint when the first column is a pulse index under a name not recognised as one."""
    if j == 0 and header[0] != "1":
        return (
            f" (column 1, {header[0]!r}, looks like a pulse index: name it 'pulse' or "
            "'index', or drop it)"
        )
    return ""


def _check_monotone(
    g: np.ndarray,
    pol: np.ndarray,
    name: str,
    lines: tuple[int, ...],
    cols: list[str],
    max_reverse: float,
) -> None:
    """Each run of one polarity must move its way overall, and no pulse may step back by
    more than ``max_reverse`` of the run's net change."""
    k = 1
    while k < len(pol):
        end = k
        while end + 1 < len(pol) and pol[end + 1] == pol[k]:
            end += 1
        p = int(pol[k])
        word = "SET" if p > 0 else "RESET"
        for c in range(g.shape[1]):
            seg_c = g[k - 1 : end + 1, c] * p  # rising for either polarity
            seg_c = seg_c[np.isfinite(seg_c)]  # a ramp that ended early: the rows it has
            if seg_c.size < 2:
                continue
            net_c = seg_c[-1] - seg_c[0]
            if net_c <= 0:
                raise PulseDataError(
                    name,
                    lines[end],
                    cols[c],
                    f"the {word} ramp of rows {lines[k - 1]}-{lines[end]} "
                    f"{'falls' if p > 0 else 'rises'} overall by {abs(net_c):.4g} µS "
                    f"(a {word} ramp must {'rise' if p > 0 else 'fall'}; wrong polarity?)",
                )
            back = -np.diff(seg_c)
            worst = int(np.argmax(back))
            if back[worst] > max_reverse * net_c:
                raise PulseDataError(
                    name,
                    lines[k + worst],
                    cols[c],
                    f"non-monotone {word} ramp: one pulse moves it back by {back[worst]:.4g} µS, "
                    f"more than {max_reverse:g} of its net change {net_c:.4g} µS",
                )
        k = end + 1


def write_pulse_trains(
    path: str | Path, trains: PulseTrains, *, units: str = "uS", polarity_column: bool = False
) -> None:
    """Write ``trains`` in the published form (header ``ramp1..``, one row per pulse)."""
    from ..files import atomic_write

    validate.choice("units", units, UNITS)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = [f"ramp{r + 1}" for r in range(trains.ramps)]
    w.writerow((["polarity"] if polarity_column else []) + head)
    for k in range(trains.g_us.shape[0]):
        pol = ["set" if trains.polarity[k] > 0 else "reset"] if polarity_column else []
        w.writerow(pol + [f"{v / UNITS[units]:.8g}" for v in trains.g_us[k]])
    atomic_write(path, buf.getvalue().encode())


# --------------------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceFit:
    """A fitted device and the statistics of its fit (the device file's ``[fit]`` table)."""

    device: MeasuredDevice
    stats: dict[str, Any]


def _bins(x: np.ndarray, bins: int, min_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin index of every x over ``bins`` equal bins, and the bins with >= min_count."""
    edges = np.linspace(x.min(), x.max(), bins + 1)
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    counts = np.bincount(idx, minlength=bins)
    return idx, np.nonzero(counts >= min_count)[0]


def _fit_side(
    trains: list[PulseTrains], polarity: int, bins: int, read_noise_sd_us: float
) -> dict[str, Any]:
    xs, ds, rs = [], [], []
    offset = 0
    for t in trains:
        x, d, r = t.steps(polarity)
        xs.append(x)
        ds.append(d)
        rs.append(r + offset)
        offset += t.ramps
    x, d, r = np.concatenate(xs), np.concatenate(ds), np.concatenate(rs)
    word = "SET" if polarity > 0 else "RESET"
    if x.size < 8:
        raise ValueError(f"{x.size} {word} pulses in the data; a fit needs at least 8")
    idx, used = _bins(x, bins, min_count=max(4, x.size // (4 * bins)))
    if used.size < 2:
        raise ValueError(f"the {word} pulses cover too narrow a conductance range to fit")
    n_ramps = offset
    scale = np.ones(n_ramps)
    for _ in range(3):  # mean curve of the scaled steps, then each ramp's scale, twice over
        ds_scaled = d / scale[r]
        grid = np.array([x[idx == b].mean() for b in used])
        mean = np.array([ds_scaled[idx == b].mean() for b in used])
        m = np.interp(x, grid, mean)
        num = np.bincount(r, weights=d, minlength=n_ramps)
        den = np.bincount(r, weights=m, minlength=n_ramps)
        ok = den > 0
        scale = np.where(ok, num / np.where(ok, den, 1.0), 1.0)
        scale = np.clip(scale / scale[ok].mean(), 0.1, None)
    resid = d / scale[r] - m
    # Each ramp's fitted scale absorbs one degree of freedom of its residuals.
    ramps_used = int((np.bincount(r, minlength=n_ramps) > 0).sum())
    dof = x.size / max(x.size - ramps_used, 1)
    var = dof * np.array([resid[idx == b].var(ddof=1) for b in used])
    c2c = np.sqrt(np.clip(var - 2 * read_noise_sd_us**2, 0.0, None))
    # The scale of a finite ramp scatters by its own noise too: remove that part.
    noise_var = np.bincount(r, weights=np.interp(x, grid, var), minlength=n_ramps)
    noise_var = noise_var / np.where(den > 0, den, np.inf) ** 2
    dtod_var = float(scale[ok].var(ddof=1) - noise_var[ok].mean()) if ramps_used > 1 else 0.0
    return {
        "g_us": grid,
        "step_us": np.clip(mean, 0.0, None),
        "c2c_us": c2c,
        "dtod_var": max(dtod_var, 0.0),
        "pulses": int(x.size),
        "ramps": ramps_used,
        "bins": int(used.size),
        "g_range_us": (float(x.min()), float(x.max())),
    }


def fit_device(
    trains: list[PulseTrains],
    *,
    name: str,
    bins: int = 16,
    relaxation_sd_us: float = 0.0,
    read_noise_sd_us: float = 0.0,
    tolerance_us: float = 1.0,
    seed: int = 0,
    **device_fields: Any,
) -> DeviceFit:
    """Fit a `MeasuredDevice` to pulse trains holding both SET and RESET pulses.

    Args:
        trains: one or more `PulseTrains` (e.g. a SET file and a RESET file).
        name: the device's name.
        bins: conductance bins of the tables (bins with too few pulses are left out).
        relaxation_sd_us: SD of the conductance shift after a write (µS): not in pulse
            trains, measure it by programming and re-reading.
        read_noise_sd_us: SD of one read (µS); also removed from the fitted c2c spread.
        tolerance_us: the verify tolerance of write-verify and memorial programming (µS).
        seed: seeds the simulated ramps that check the fit (`ramp_check`).
        **device_fields: any other `Device` field (e.g. ``gate_levels``, ``stuck_off_fraction``).
    """
    if not trains:
        raise ValueError("fit_device needs at least one PulseTrains")
    validate.integer("bins", bins, low=2)
    validate.number("relaxation_sd_us", relaxation_sd_us, low=0)
    validate.number("read_noise_sd_us", read_noise_sd_us, low=0)
    lo = min(float(np.nanmin(t.g_us)) for t in trains)
    hi = max(float(np.nanmax(t.g_us)) for t in trains)
    if hi - lo < 4 * tolerance_us:
        raise ValueError(
            f"Invalid tolerance_us: {tolerance_us:g} µS for a measured window of {hi - lo:.3g} µS "
            f"({lo:.3g}-{hi:.3g} µS): a write would find most targets already within tolerance "
            "and never pulse. Check the units (data in siemens read as mS is 1000x too small) "
            "or give a tolerance well below the window"
        )
    sides = {}
    for p, word in ((1, "set"), (-1, "reset")):
        if not any((t.polarity[1:] == p).any() for t in trains):
            raise ValueError(
                f"no {word.upper()} pulses in {', '.join(t.source for t in trains)}; "
                "a device needs both SET and RESET pulse trains"
            )
        sides[word] = _fit_side(trains, p, bins, float(read_noise_sd_us))
    dtod = math.sqrt((sides["set"]["dtod_var"] + sides["reset"]["dtod_var"]) / 2)
    fields: dict[str, Any] = {
        "name": name,
        "g_min_us": lo,
        "g_max_us": hi,
        "dtod_sd": min(dtod, 1.0),
        "relaxation_sd_us": float(relaxation_sd_us),
        "read_noise_sd_us": float(read_noise_sd_us),
        "program_tolerance_us": float(tolerance_us),
    }
    for word, s in sides.items():
        fields[f"{word}_g_us"] = tuple(float(v) for v in s["g_us"])
        fields[f"{word}_step_us"] = tuple(float(v) for v in s["step_us"])
        fields[f"{word}_c2c_us"] = tuple(float(v) for v in s["c2c_us"])
    device = MeasuredDevice(**{**fields, **device_fields})
    stats: dict[str, Any] = {"sources": [t.source for t in trains]}
    for word, s in sides.items():
        stats[f"{word}_ramps"] = s["ramps"]
        stats[f"{word}_pulses"] = s["pulses"]
        stats[f"{word}_bins"] = s["bins"]
        stats[f"{word}_dtod_sd"] = math.sqrt(s["dtod_var"])
        stats[f"{word}_g_range_us"] = list(s["g_range_us"])
    stats["relaxation_sd_us"] = "given (not in pulse trains)"
    stats["read_noise_sd_us"] = "given (removed from the c2c spread)"
    stats.update(ramp_check(trains, device, seed=seed))
    return DeviceFit(device, stats)


def ramp_check(trains: list[PulseTrains], device: Device, *, seed: int = 0) -> dict[str, Any]:
    """How well ``device`` reproduces whole ramps, not only single pulses: the same pulses
    from the same starting states (`simulate_pulse_trains`), then the SD over ramps of the
    last conductance, measured and simulated, their ratio, and the fraction of ramps that
    end at the window's edge. A step that depends on G alone (a lookup table of mean steps,
    as every such model has) cannot carry a ramp-to-ramp memory, so its ramps may end
    spread far wider (or narrower) than measured: a ratio far from 1 says so."""
    gen = torch.Generator().manual_seed(seed)
    measured, simulated = [], []
    for t in trains:
        sim = simulate_pulse_trains(device, t.g_us[0], t.polarity, generator=gen)
        g = np.where(np.isfinite(t.g_us), sim.g_us, np.nan)
        measured.append(t.last())
        simulated.append(PulseTrains(g, t.polarity, sim.source, t.columns).last())
    m, sim_last = np.concatenate(measured), np.concatenate(simulated)
    edge = 1e-3 * device.span_us

    def at_edge(x: np.ndarray) -> float:
        return float(((x <= device.g_min_us + edge) | (x >= device.g_max_us - edge)).mean())

    sd_m = float(m.std(ddof=1)) if m.size > 1 else 0.0
    sd_s = float(sim_last.std(ddof=1)) if sim_last.size > 1 else 0.0
    return {
        "ramp_end_sd_us_measured": sd_m,
        "ramp_end_sd_us_simulated": sd_s,
        "ramp_end_sd_ratio": sd_s / sd_m if sd_m > 0 else math.inf if sd_s > 0 else 1.0,
        "ramp_end_at_edge_measured": at_edge(m),
        "ramp_end_at_edge_simulated": at_edge(sim_last),
    }


# --------------------------------------------------------------------------------------
# simulation and figure
# --------------------------------------------------------------------------------------


def simulate_pulse_trains(
    device: Device,
    g0_us: np.ndarray | torch.Tensor,
    polarity: np.ndarray | torch.Tensor,
    *,
    generator: torch.Generator,
    read_noise: bool = True,
) -> PulseTrains:
    """Drive fresh cells of ``device`` (one per ramp, device-to-device spread drawn) from
    ``g0_us`` with the pulses ``polarity[1:]``, reading after each (with read noise unless
    ``read_noise=False``): the pulse trains a measurement of that device would give."""
    g0 = torch.as_tensor(np.asarray(g0_us, dtype=np.float64))
    pol = np.asarray(polarity, dtype=np.int64)
    if g0.dim() != 1 or pol.ndim != 1 or pol.size < 2:
        raise ValueError(
            f"g0_us must be a vector and polarity a vector of >= 2 rows, got shapes "
            f"{tuple(g0.shape)} and {pol.shape}"
        )
    params = device.sample(tuple(g0.shape), generator=generator, dtype=torch.float64)
    g = stuck_values(g0.clamp(device.g_min_us, device.g_max_us), device, params)

    def look(x: torch.Tensor) -> torch.Tensor:
        return read(x, device, generator=generator) if read_noise else x

    out = [look(g)]
    for p in pol[1:]:
        g = pulse(g, torch.full_like(g, float(p)), device, params, generator=generator)
        out.append(look(g))
    values = torch.stack(out).numpy()
    cols = tuple(f"ramp{r + 1}" for r in range(values.shape[1]))
    return PulseTrains(values, pol.copy(), f"simulated {device.name}", cols)


def fit_figure(
    measured: list[PulseTrains], device: Device, path: str | Path, *, seed: int = 0
) -> list[PulseTrains]:
    """Measured pulse trains beside the same pulses on ``device`` (same ramps, same starting
    states), one panel per file, and the fitted step tables over the measured steps; PNG,
    written atomically. Returns the simulated trains."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..files import atomic_write

    gen = torch.Generator().manual_seed(seed)
    sims = [simulate_pulse_trains(device, t.g_us[0], t.polarity, generator=gen) for t in measured]
    fig = Figure(figsize=(4.2 * (len(measured) + 1), 3.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(measured) + 1)
    for ax, t, s in zip(axes, measured, sims, strict=False):
        k = np.arange(t.g_us.shape[0])
        ax.plot(k, t.g_us, color="0.6", lw=0.6, alpha=0.5)
        ax.plot(k, s.g_us, color="tab:red", lw=0.6, alpha=0.25)
        # mean and 10th / 90th percentile over the ramps: the two sets overlap where it fits
        for g, color, label in (
            (t.g_us, "black", f"measured ({t.ramps} ramps)"),
            (s.g_us, "tab:red", f"simulated {device.name}"),
        ):
            ax.plot(k, g.mean(axis=1), color=color, lw=1.8, label=f"{label}: mean, 10/90 %")
            for q in (10, 90):
                ax.plot(k, np.percentile(g, q, axis=1), color=color, lw=1.2, ls="--")
        ax.set_title(Path(t.source).name, fontsize=9)
        ax.set_xlabel("pulse")
        ax.set_ylabel("G (µS)")
        ax.legend(fontsize=7, loc="best")
    ax = axes[-1]
    for p, color, word in ((1, "tab:blue", "SET"), (-1, "tab:orange", "RESET")):
        xs = [t.steps(p) for t in measured]
        x = np.concatenate([a[0] for a in xs])
        d = np.concatenate([a[1] for a in xs])
        ax.scatter(x, d, s=2, color=color, alpha=0.25)
        if isinstance(device, MeasuredDevice):
            side = "set" if p > 0 else "reset"
            grid = np.array(getattr(device, f"{side}_g_us"))
            m = np.array(getattr(device, f"{side}_step_us"))
            sd = np.array(getattr(device, f"{side}_c2c_us"))
            ax.plot(grid, m, color="black", lw=2.2, zorder=3)
            ax.plot(grid, m, color=color, lw=1.4, zorder=4, label=f"{word} mean ± c2c SD")
            ax.fill_between(grid, m - sd, m + sd, color=color, alpha=0.35, zorder=2)
    ax.set_xlabel("G before the pulse (µS)")
    ax.set_ylabel("|ΔG| per pulse (µS)")
    ax.set_title("step tables", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write(path, buf.getvalue())
    return sims


def write_example_trains(
    folder: str | Path,
    device: Device | str = "taox_1t1r",
    *,
    ramps: int = 200,
    pulses: int = 40,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write ``SET.csv`` and ``RESET.csv`` (µS, published form) of a known device into
    ``folder``: ``ramps`` SET ramps up from ``g_min_us`` and as many RESET ramps down from
    ``g_max_us``, ``pulses`` pulses each, read with the device's read noise. Something to
    try `eapu device fit` on, whose answer is known."""
    from .presets import get_device

    dev = get_device(device) if isinstance(device, str) else device
    for arg, v in (("ramps", ramps), ("pulses", pulses)):
        validate.integer(arg, v, low=1)
    gen = torch.Generator().manual_seed(seed)
    rows = np.ones(pulses + 1)
    up = simulate_pulse_trains(dev, np.full(ramps, dev.g_min_us), rows, generator=gen)
    down = simulate_pulse_trains(dev, np.full(ramps, dev.g_max_us), -rows, generator=gen)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    write_pulse_trains(out / "SET.csv", up)
    write_pulse_trains(out / "RESET.csv", down)
    return out / "SET.csv", out / "RESET.csv"
