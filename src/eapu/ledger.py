"""What was written to the analog cells, step by step: Rup, Nup, Ncell and friends.

The optimizer appends one small integer tensor per step (one row per analog parameter),
kept on the parameters' device, so leaving the ledger on costs no host synchronisation.
Everything is summed only when a metric is asked for.

Definitions (Liu et al. 2025, Methods):
- Rup  = cells written in a step / cells in the network, averaged over steps.
- Nup  = pulses applied in a step / cells in the network, averaged over steps.
- Ncell = pulses per written cell, so Nup = Ncell · Rup (step averages; exact when the
  ratios are taken over the totals, which is what `summary` reports).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["FIELDS", "Ledger", "LedgerSummary"]

#: Columns of one row: one analog parameter (or tile) in one step. ``rows``: the array row
#: segments (one layer's cells in one array row) holding at least one written cell, for a
#: latency that is charged per row; 0 at weight level, which has no arrays.
FIELDS = ("written", "pulses", "reads", "failed", "skipped", "rows")


@dataclass(frozen=True)
class LedgerSummary:
    """Totals and the paper's ratios over all recorded steps."""

    steps: int
    cells: int
    written: int
    pulses: int
    reads: int
    failed: int
    skipped: int
    rows: int
    rup: float
    nup: float
    ncell: float

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


class Ledger:
    """Per-step, per-parameter counters of writes, pulses, verify reads and skipped cells.

    Args:
        names: a label for each analog parameter, in the order rows are recorded.
        cells: the number of cells each parameter occupies (weights, or the cells of its tile).
    """

    def __init__(self, names: list[str] | None = None, cells: list[int] | None = None) -> None:
        self.names: list[str] = list(names or [])
        self.cells: list[int] = list(cells or [])
        self._rows: list[Tensor] = []

    def set_layout(self, names: list[str], cells: list[int]) -> None:
        """Name the parameters the next rows describe (called when parameters change)."""
        if len(names) != len(cells):
            raise ValueError(f"names has {len(names)} entries but cells has {len(cells)}")
        if any(c <= 0 for c in cells):
            raise ValueError(f"cells must all be > 0, got {cells}")
        self.names, self.cells = list(names), list(cells)

    def record(self, row: Tensor) -> None:
        """Append one step: an integer tensor of shape (n_parameters, len(FIELDS))."""
        if row.dim() != 2 or row.shape[1] != len(FIELDS) or row.shape[0] != len(self.cells):
            raise ValueError(
                f"row must have shape ({len(self.cells)}, {len(FIELDS)}), got {tuple(row.shape)}"
            )
        self._rows.append(row)

    def __len__(self) -> int:
        return len(self._rows)

    def table(self) -> Tensor:
        """All steps as an int64 CPU tensor (steps, parameters, fields); synchronises once."""
        if not self._rows:
            return torch.zeros(0, len(self.cells), len(FIELDS), dtype=torch.int64)
        width = max(r.shape[0] for r in self._rows)
        rows = [r.to("cpu", torch.int64) for r in self._rows]
        rows = [torch.nn.functional.pad(r, (0, 0, 0, width - r.shape[0])) for r in rows]
        return torch.stack(rows)

    def per_step(self, field: str = "written") -> Tensor:
        """One field summed over parameters, per step (int64, length = steps)."""
        return self.table()[:, :, FIELDS.index(field)].sum(1)

    def rup(self) -> Tensor:
        """Fraction of cells written, per step (float64)."""
        return self.per_step("written").double() / max(sum(self.cells), 1)

    def nup(self) -> Tensor:
        """Pulses per cell, per step (float64)."""
        return self.per_step("pulses").double() / max(sum(self.cells), 1)

    def rup_by_parameter(self) -> Tensor:
        """Fraction of each parameter's cells written, per step: (steps, parameters)."""
        t = self.table()[:, :, FIELDS.index("written")].double()
        return t / torch.tensor(self.cells, dtype=torch.float64)

    def summary(self) -> LedgerSummary:
        """Totals over all steps and the paper's Rup, Nup, Ncell."""
        t = self.table().sum((0, 1)) if self._rows else torch.zeros(len(FIELDS), dtype=torch.int64)
        tot = dict(zip(FIELDS, (int(v) for v in t), strict=True))
        steps, cells = len(self._rows), sum(self.cells)
        denom = max(steps * cells, 1)
        return LedgerSummary(
            steps=steps,
            cells=cells,
            rup=tot["written"] / denom,
            nup=tot["pulses"] / denom,
            ncell=tot["pulses"] / tot["written"] if tot["written"] else 0.0,
            **tot,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "cells": list(self.cells), "table": self.table()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.names, self.cells = list(state["names"]), list(state["cells"])
        table = state["table"]
        if table.shape[-1] < len(FIELDS):  # a ledger from before the later columns: zeros
            table = torch.nn.functional.pad(table, (0, len(FIELDS) - table.shape[-1]))
        self._rows = list(table.unbind(0))
