"""Where a network's weights sit: dense placement of weight matrices on fixed-size arrays
(`Placement`), the matrix a weight tensor is laid out as (`matrix_shape`), and the
conductance range a mapping needs (`operating_range`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .. import validate
from ..devices import Device

__all__ = ["MAPPINGS", "Block", "Placement", "matrix_shape", "operating_range"]

MAPPINGS = ("reference_column", "differential")


def matrix_shape(weight_shape: tuple[int, ...], transposed: bool = False) -> tuple[int, int]:
    """(rows, cols) of a weight tensor on a crossbar: rows are inputs, columns outputs."""
    if len(weight_shape) < 2:
        raise ValueError(f"a tile needs a weight of dim >= 2, got shape {weight_shape}")
    if transposed:  # ConvTranspose: (in, out, kh, kw); each input drives out·kh·kw outputs
        return weight_shape[0], math.prod(weight_shape[1:])
    return math.prod(weight_shape[1:]), weight_shape[0]


@dataclass(frozen=True)
class Block:
    """A rectangle of one weight matrix placed on one array."""

    layer: str
    array: int
    row0: int  # first matrix row of the block
    col0: int  # first matrix column of the block
    rows: int
    cols: int
    array_col: int  # first array column the block occupies
    new_ref_rows: int = 0  # reference cells the block added to its array (rows beyond before)


@dataclass
class Placement:
    """Dense placement of weight matrices onto arrays of ``rows × cols`` cells.

    First fit: a block goes into the lowest-numbered array with room for its columns. The
    arrays with room are kept in one bucket per free width, so placing a block costs
    O(array columns), not O(arrays): a ResNet places in linear time.
    """

    array_rows: int
    array_cols: int
    mapping: str
    blocks: list[Block] = field(default_factory=list)
    used_cols: list[int] = field(default_factory=list)  # per array
    used_rows: list[int] = field(default_factory=list)  # per array
    _by_free: dict[int, set[int]] = field(default_factory=dict, repr=False)
    _ref_rows: list[list[int]] = field(default_factory=list, repr=False)  # per array
    _n_refs: int = field(default=0, repr=False)

    @property
    def arrays(self) -> int:
        return len(self.used_cols)

    @property
    def weight_cells(self) -> int:
        per = 2 if self.mapping == "differential" else 1
        return per * sum(b.rows * b.cols for b in self.blocks)

    @property
    def reference_cells(self) -> int:
        return sum(self.used_rows) if self.mapping == "reference_column" else 0

    @property
    def cells(self) -> int:
        """Every cell the network occupies: weight cells plus reference cells."""
        return self.weight_cells + self.reference_cells

    def _capacity(self) -> int:
        ref = 1 if self.mapping == "reference_column" else 0
        return self.array_cols - ref

    def _first_with(self, need: int) -> int:
        """The lowest array with at least ``need`` free columns (a new one if none)."""
        best = None
        for free in range(need, self._capacity() + 1):
            arrays = self._by_free.get(free)
            if arrays:
                low = min(arrays)
                best = low if best is None else min(best, low)
        if best is not None:
            return best
        self.used_cols.append(0)
        self.used_rows.append(0)
        self._ref_rows.append([])
        self._by_free.setdefault(self._capacity(), set()).add(self.arrays - 1)
        return self.arrays - 1

    def add(self, layer: str, rows: int, cols: int, row_unit: int = 1) -> list[Block]:
        """Split a ``rows × cols`` matrix into blocks and place each in the first array with
        room (first fit, blocks side by side from row 0).

        Row blocks hold whole multiples of ``row_unit`` rows where one fits (a convolution's
        kh·kw window: an input channel's kernel is not cut across arrays).
        """
        per = 2 if self.mapping == "differential" else 1
        max_cols = self._capacity() // per
        max_rows = self.array_rows
        if 1 < row_unit <= self.array_rows:
            max_rows = self.array_rows // row_unit * row_unit
        out = []
        for r0 in range(0, rows, max_rows):
            for c0 in range(0, cols, max_cols):
                nr, nc = min(max_rows, rows - r0), min(max_cols, cols - c0)
                a = self._first_with(per * nc)
                free = self._capacity() - self.used_cols[a]
                self._by_free[free].discard(a)
                b = Block(
                    layer, a, r0, c0, nr, nc, self.used_cols[a], max(0, nr - self.used_rows[a])
                )
                self.used_cols[a] += per * nc
                if nr > self.used_rows[a]:
                    self._ref_rows[a] += range(self._n_refs, self._n_refs + b.new_ref_rows)
                    self._n_refs += b.new_ref_rows
                    self.used_rows[a] = nr
                self._by_free.setdefault(free - per * nc, set()).add(a)
                self.blocks.append(b)
                out.append(b)
        return out

    def reference_index(self, array: int, row: int) -> int:
        """Index of the reference cell of ``row`` of ``array`` in the crossbar's reference
        list: reference cells are numbered in the order their rows first hold a weight."""
        return self._ref_rows[array][row]

    def reference_indices(self, array: int, rows: int) -> list[int]:
        """`reference_index` of rows ``0 .. rows - 1`` of ``array``."""
        return self._ref_rows[array][:rows]

    def render(self) -> str:
        """A text map: one character per cell, a letter per layer, R reference, . empty."""
        layers = list(dict.fromkeys(b.layer for b in self.blocks))
        sym = {name: chr(ord("A") + i % 26) for i, name in enumerate(layers)}
        per = 2 if self.mapping == "differential" else 1
        lines = [
            f"{self.arrays} array(s) of {self.array_rows}x{self.array_cols}, {self.mapping}: "
            f"{self.weight_cells} weight cells + {self.reference_cells} reference cells "
            f"= {self.cells} cells"
        ]
        lines += [f"  {sym[n]} = {n}" for n in layers]
        by_array: dict[int, list[Block]] = {}
        for b in self.blocks:
            by_array.setdefault(b.array, []).append(b)
        for a in range(self.arrays):
            grid = [["."] * self.array_cols for _ in range(self.array_rows)]
            for b in by_array.get(a, []):
                for r in range(b.rows):
                    for c in range(per * b.cols):
                        grid[r][b.array_col + c] = sym[b.layer]
            if self.mapping == "reference_column":
                for r in range(self.used_rows[a]):
                    grid[r][self.array_cols - 1] = "R"
            lines.append(f"array {a}:")
            lines += ["  " + "".join(row) for row in grid]
        return "\n".join(lines)


def operating_range(
    device: Device,
    mapping: str,
    rwg_per_us: float,
    w_max: float = 1.0,
    g_ref_us: float | None = None,
) -> tuple[float, float]:
    """The conductance range (lo, hi) in µS in which cells hold weights of |W| <= ``w_max``.

    Gmax = w_max / rwg_per_us. ``reference_column``: [g_ref − Gmax, g_ref + Gmax] with
    g_ref = ``g_min_us + Gmax`` unless given; ``differential``: [g_min_us, g_min_us + Gmax].

    Raises:
        ValueError: when the range does not fit the device window; the message names
            ``rwg_per_us`` (``--rwg``) and the smallest Rwg the device can hold.
    """
    validate.number("rwg_per_us", rwg_per_us, low=0, low_open=True)
    validate.number("w_max", w_max, low=0, low_open=True)
    validate.choice("mapping", mapping, MAPPINGS)
    g_max = w_max / rwg_per_us
    per = 2 if mapping == "reference_column" else 1  # the range spans 2·Gmax or Gmax
    span = device.g_max_us - device.g_min_us
    if per * g_max > span * (1 + 1e-9):
        raise ValueError(
            f"Invalid rwg_per_us (--rwg): {rwg_per_us:g}; with w_max={w_max:g} the {mapping} "
            f"mapping needs a conductance range of {per * g_max:g} µS, but device "
            f"{device.name!r} spans {span:g} µS ({device.g_min_us:g}-{device.g_max_us:g}); "
            f"allowed: rwg_per_us >= {per * w_max / span:g} µS⁻¹ (1/{span / (per * w_max):g})"
        )
    if mapping == "differential":
        if g_ref_us is not None:
            raise ValueError("Invalid g_ref_us: the differential mapping has no reference")
        return device.g_min_us, min(device.g_min_us + g_max, device.g_max_us)
    if g_ref_us is None:
        g_ref_us = device.g_min_us + g_max
    lo, hi = g_ref_us - g_max, g_ref_us + g_max
    tol = 1e-9 * span
    if lo < device.g_min_us - tol or hi > device.g_max_us + tol:
        raise ValueError(
            f"Invalid g_ref_us: {g_ref_us:g}; the operating range g_ref ± {g_max:g} µS "
            f"(w_max / rwg_per_us) must lie in the device window "
            f"[{device.g_min_us:g}, {device.g_max_us:g}] µS; allowed: "
            f"[{device.g_min_us + g_max:g}, {device.g_max_us - g_max:g}]"
        )
    return max(lo, device.g_min_us), min(hi, device.g_max_us)
