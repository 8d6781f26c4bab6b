"""`characterize`: SD(εcell) of a device under a scheme, by a write/read sweep (the default
EaPU threshold at device level)."""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import validate
from ..devices import Device, read, stuck_values
from .core import CellState, default_budget, get_scheme

__all__ = ["Characterization", "characterize"]


@dataclass(frozen=True)
class Characterization:
    """Result of a write/read sweep (`characterize`); εcell = read G - target."""

    device: str
    """Name of the device characterised."""
    scheme: str
    """Programming scheme used."""
    sd_us: float
    """Overall SD of εcell over the free cells (µS): the default EaPU threshold / Rwg."""
    mean_us: float
    """Mean of εcell (bias, µS)."""
    g_centers_us: tuple[float, ...]
    """Centres of the target-conductance bins (µS)."""
    sd_by_g_us: tuple[float, ...]
    """SD of εcell per target bin (µS; NaN for a bin with fewer than two cells)."""
    pulses_per_write: float
    """Mean programming pulses per written free cell."""
    reads_per_write: float
    """Mean verify reads per written free cell."""
    fail_rate: float
    """Fraction of free cells the scheme reported as failed."""
    stuck_fraction: float = field(default=0.0)
    """Fraction of cells that were stuck (excluded from the statistics above)."""
    max_pulses: int | None = None
    """The scheme's pulse budget per write (None: the scheme has none)."""
    budget_limited: float = 0.0
    """Fraction of free cells that failed having spent the whole budget: where this is not
    small, SD(εcell) measures the budget, not the device (raise ``max_pulses``)."""


def characterize(
    device: Device,
    scheme: str | None = None,
    *,
    n_cells: int = 4096,
    seed: int = 0,
    bins: int = 8,
    **options: Any,
) -> Characterization:
    """Measure εcell of ``device`` programmed by ``scheme``, as a write/read sweep.

    Fresh cells (with device-to-device spread) start from conductances uniform over the
    window and an unknown gate position (the state an earlier write left), get targets
    uniform over the window less a margin of 2·tolerance + 3·relaxation SD at either edge,
    are programmed with the scheme (which relaxes them), and read once with read noise.
    Stuck cells are excluded from the statistics.

    Args:
        device: the device to measure.
        scheme: a registered scheme name; default ``device.default_scheme``.
        n_cells: number of cells in the sweep.
        seed: seed of the sweep's generator (CPU).
        bins: number of target bins of ``sd_by_g_us``.
        **options: passed to the scheme (e.g. ``tolerance_us``, ``max_pulses``).
    """
    validate.integer("n_cells", n_cells, low=2)
    validate.integer("bins", bins, low=1)
    name = scheme or device.default_scheme
    info = get_scheme(name)
    gen = torch.Generator().manual_seed(seed)
    dtype = torch.float64
    params = device.sample((n_cells,), generator=gen, dtype=dtype)
    g0 = device.g_min_us + device.span_us * torch.rand(n_cells, generator=gen, dtype=dtype)
    g0 = stuck_values(g0, device, params)
    tol = float(options.get("tolerance_us") or device.program_tolerance_us)
    margin = min(2 * tol + 3 * device.relaxation_sd_us, 0.25 * device.span_us)
    lo, hi = device.g_min_us + margin, device.g_max_us - margin
    target = lo + (hi - lo) * torch.rand(n_cells, generator=gen, dtype=dtype)
    state = CellState(g_us=g0, gate=torch.full((n_cells,), -1, dtype=torch.int32))
    mask = torch.ones(n_cells, dtype=torch.bool)
    res = info.fn(state, target, mask, device, params, generator=gen, **options)
    budget = _budget(info.fn, device, options)
    g_read = read(res.state.g_us, device, generator=gen)
    free = params.free
    err = (g_read - target)[free]
    tgt = target[free]
    edges = torch.linspace(lo, hi, bins + 1, dtype=dtype)
    idx = torch.bucketize(tgt, edges[1:-1])
    sd_by_g = []
    for b in range(bins):
        e = err[idx == b]
        sd_by_g.append(float(e.std()) if e.numel() > 1 else math.nan)
    centers = ((edges[:-1] + edges[1:]) / 2).tolist()
    n_free = int(free.sum())
    return Characterization(
        device=device.name,
        scheme=name,
        sd_us=float(err.std()) if n_free > 1 else math.nan,
        mean_us=float(err.mean()) if n_free else math.nan,
        g_centers_us=tuple(centers),
        sd_by_g_us=tuple(sd_by_g),
        pulses_per_write=float(res.pulses[free].double().mean()) if n_free else math.nan,
        reads_per_write=float(res.reads[free].double().mean()) if n_free else math.nan,
        fail_rate=float(res.failed[free].double().mean()) if n_free else math.nan,
        stuck_fraction=1.0 - n_free / n_cells,
        max_pulses=budget,
        budget_limited=(
            float((res.failed & (res.pulses >= budget - 1))[free].double().mean())
            if budget is not None and n_free
            else 0.0
        ),
    )


def _budget(fn: Any, device: Device, options: dict[str, Any]) -> int | None:
    """The pulse budget ``fn`` ran with: the option, else its default (None: the device's)."""
    if "max_pulses" in options:
        return int(options["max_pulses"])
    param = inspect.signature(fn).parameters.get("max_pulses")
    if param is None:
        return None
    return default_budget(device) if param.default is None else int(param.default)
