"""Device lifetime: writes per cell against a technology's endurance (`endurance_report`)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import validate

__all__ = ["EnduranceReport", "endurance_report"]


@dataclass(frozen=True)
class EnduranceReport:
    """Wear of the cells after a run of ``steps`` steps."""

    cells: int
    """Cells counted."""
    steps: int
    """Steps of the run the write counts cover."""
    endurance_cycles: float
    """Writes a cell survives."""
    bin_edges: tuple[float, ...]
    """Edges of the write-count histogram."""
    counts: tuple[int, ...]
    """Cells per histogram bin."""
    max_writes: int
    """Writes of the most-written cell."""
    max_index: int
    """Flat index of the most-written cell (into the concatenation of the flattened tensors)."""
    mean_writes: float
    """Mean writes per cell."""
    never_written: float
    """Fraction of cells never written."""
    runs_to_endurance: float
    """Runs of ``steps`` steps until the most-written cell reaches ``endurance_cycles``
    (inf if no cell was written)."""
    steps_to_endurance: float
    """The same in steps."""


def endurance_report(
    writes: Tensor | Iterable[Tensor],
    steps: int,
    endurance_cycles: float = 1e6,
    *,
    bins: int = 20,
) -> EnduranceReport:
    """Histogram of per-cell write counts and the projected lifetime of the most-worn cell.

    Args:
        writes: per-cell write counts (e.g. ``tile.writes``), or several such tensors.
        steps: steps of the run that produced them.
        endurance_cycles: writes a cell survives (RRAM ~1e6, Flash ~1e4-1e5).
        bins: histogram bins over [0, max writes].
    """
    if isinstance(writes, Tensor):
        flat = writes.detach().reshape(-1)
    else:
        parts = [w.detach().reshape(-1).cpu() for w in writes]
        if not parts:
            raise ValueError("Invalid writes: an empty sequence; allowed: one or more tensors")
        flat = torch.cat(parts)
    flat = flat.cpu().to(torch.float64)
    if flat.numel() == 0:
        raise ValueError("Invalid writes: no cells; allowed: a non-empty tensor")
    if not torch.isfinite(flat).all() or (flat < 0).any():
        raise ValueError("Invalid writes: allowed: finite counts >= 0")
    validate.integer("steps", steps, low=1)
    validate.number("endurance_cycles", endurance_cycles, low=0.0, low_open=True)
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"Invalid bins: {bins!r}; allowed: an int >= 1")
    top = float(flat.max())
    hist = torch.histc(flat, bins=bins, min=0.0, max=max(top, 1.0))
    edges = torch.linspace(0.0, max(top, 1.0), bins + 1, dtype=torch.float64)
    runs = endurance_cycles / top if top > 0 else math.inf
    return EnduranceReport(
        cells=flat.numel(),
        steps=steps,
        endurance_cycles=float(endurance_cycles),
        bin_edges=tuple(edges.tolist()),
        counts=tuple(int(v) for v in hist.tolist()),
        max_writes=int(top),
        max_index=int(flat.argmax()),
        mean_writes=float(flat.mean()),
        never_written=float((flat == 0).double().mean()),
        runs_to_endurance=runs,
        steps_to_endurance=runs * steps,
    )
