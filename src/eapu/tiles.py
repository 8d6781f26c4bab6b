"""Crossbar tiles: the conductances behind one weight tensor, their mapping and placement.

A `Crossbar` places the weight matrices of a network densely onto fixed-size arrays (32×32
by default) and owns what layers share: the reference column of each array, the device
model, the programming scheme and the generator of the device's randomness. A `Tile` is the
conductance state of one weight tensor on that crossbar; it implements the seam the
optimizer writes through (`program`, `weight`) and the read path (`read`).

Mappings (Liu et al. 2025, Methods):
- ``reference_column``: W = Rwg · (G − G_ref), one trainable cell per weight and one fixed
  reference cell per used row of each array, shared by every block in that array
  (the paper's autoencoder: 135 weights -> 162 cells).
- ``differential``: W = Rwg · (G⁺ − G⁻), two cells per weight, a change split between them.

Operating range (Eq. 1, Rwg = Wmax / Gmax): the crossbar holds weights up to ``w_max`` in
magnitude, so its cells work in a conductance range of Gmax = w_max / Rwg above and below the
reference (``reference_column``: [g_ref − Gmax, g_ref + Gmax], the reference at
``g_min_us + Gmax`` by default) or between ``g_min_us`` and ``g_min_us + Gmax``
(``differential``). A larger Rwg therefore means smaller conductances (cheaper reads). An Rwg
whose range the device's window cannot hold is refused; a target outside the device window is
counted (``Tile.clipped``), never clipped without a record.

A weight tensor is laid out as a matrix whose rows are the crossbar's inputs (fan-in:
``in_channels·kh·kw`` for a convolution, ``in_features`` for a linear layer, ``in_channels``
for a transposed convolution, whose kernel positions are outputs) and whose columns are its
outputs.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from . import validate
from .devices import CellParams, Device, get_device, read
from .ledger import FIELDS
from .programming import CellState, characterize, get_scheme

__all__ = [
    "MAPPINGS",
    "Block",
    "Crossbar",
    "Placement",
    "Tile",
    "characterized_sd",
    "operating_range",
]

# The read streams are seeded apart from the programming stream (and from each other).
_READ_SEED_OFFSET = 0x5EAD_0001
_EVAL_SEED_OFFSET = 0x5EAD_0002

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


@dataclass
class Placement:
    """Dense placement of weight matrices onto arrays of ``rows × cols`` cells."""

    array_rows: int
    array_cols: int
    mapping: str
    blocks: list[Block] = field(default_factory=list)
    used_cols: list[int] = field(default_factory=list)  # per array
    used_rows: list[int] = field(default_factory=list)  # per array

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

    def add(self, layer: str, rows: int, cols: int, row_unit: int = 1) -> list[Block]:
        """Split a ``rows × cols`` matrix into blocks and place each in the first array with
        room (first fit, blocks side by side from row 0).

        Row blocks hold whole multiples of ``row_unit`` rows where one fits (a convolution's
        kh·kw window: an input channel's kernel is not cut across arrays).
        """
        per = 2 if self.mapping == "differential" else 1
        ref = 1 if self.mapping == "reference_column" else 0
        max_cols = (self.array_cols - ref) // per
        max_rows = self.array_rows
        if 1 < row_unit <= self.array_rows:
            max_rows = self.array_rows // row_unit * row_unit
        out = []
        for r0 in range(0, rows, max_rows):
            for c0 in range(0, cols, max_cols):
                nr, nc = min(max_rows, rows - r0), min(max_cols, cols - c0)
                for a in range(self.arrays + 1):
                    if a == self.arrays:
                        self.used_cols.append(0)
                        self.used_rows.append(0)
                    if self.used_cols[a] + per * nc <= self.array_cols - ref:
                        break
                b = Block(layer, a, r0, c0, nr, nc, self.used_cols[a])
                self.used_cols[a] += per * nc
                self.used_rows[a] = max(self.used_rows[a], nr)
                self.blocks.append(b)
                out.append(b)
        return out

    def reference_offset(self, array: int) -> int:
        """Index of the first reference cell of ``array`` in the crossbar's reference list."""
        return sum(self.used_rows[:array])

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
        for a in range(self.arrays):
            grid = [["."] * self.array_cols for _ in range(self.array_rows)]
            for b in (b for b in self.blocks if b.array == a):
                for r in range(b.rows):
                    for c in range(per * b.cols):
                        grid[r][b.array_col + c] = sym[b.layer]
            if self.mapping == "reference_column":
                for r in range(self.used_rows[a]):
                    grid[r][self.array_cols - 1] = "R"
            lines.append(f"array {a}:")
            lines += ["  " + "".join(row) for row in grid]
        return "\n".join(lines)


@functools.lru_cache(maxsize=64)
def _characterize_cached(
    device: Device, scheme: str, options: tuple[tuple[str, Any], ...]
) -> float:
    return characterize(device, scheme, **dict(options)).sd_us


def characterized_sd(device: Device, scheme: str, **options: Any) -> float:
    """SD(εcell) in µS of ``device`` under ``scheme``, measured once and cached."""
    return _characterize_cached(device, scheme, tuple(sorted(options.items())))


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


class Crossbar(nn.Module):
    """Arrays of cells shared by the tiles of one network.

    Args:
        device: a `Device` or the name of a registered one (e.g. ``"taox_1t1r"``).
        scheme: the programming scheme for in-situ updates (e.g. ``"memorial"``).
        load_scheme: the scheme that loads initial weights (default: ``scheme``, except
            ``write_verify`` for the unverified ``sign`` / ``two_pulse`` / ``gaussian``).
        mapping: ``"reference_column"`` or ``"differential"``.
        rwg_per_us: Rwg = Wmax / Gmax (µS⁻¹); with ``w_max`` it sets the operating range.
        w_max: largest weight magnitude the operating range holds (the paper's Wmax; its chip:
            weight 1 <-> 80 µS at Rwg 1/80). Gmax = w_max / rwg_per_us.
        g_ref_us: conductance of the reference cells (default: ``g_min_us + Gmax``, so the
            operating range starts at the bottom of the device window).
        array_size: (rows, cols) of one array.
        sd_us: SD(εcell) used as the default EaPU threshold; default: characterised.
        scheme_options: keyword options of the scheme (``tolerance_us``, ``max_pulses``).
        seed: seeds the crossbar's three generators: ``generator`` (device-to-device draw
            and programming: write noise, relaxation, faults), ``read_generator`` (read noise
            of training passes) and ``eval_generator`` (read noise while `evaluation` is
            active). Reading never draws from the programming stream, and evaluating never
            from training's, so how often a run is evaluated cannot change what it trains.
    """

    def __init__(
        self,
        device: Device | str = "taox_1t1r",
        scheme: str = "memorial",
        *,
        load_scheme: str | None = None,
        mapping: str = "reference_column",
        rwg_per_us: float = 1 / 80,
        w_max: float = 1.0,
        g_ref_us: float | None = None,
        array_size: tuple[int, int] = (32, 32),
        sd_us: float | None = None,
        scheme_options: dict[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.device_model = get_device(device) if isinstance(device, str) else device
        if not isinstance(self.device_model, Device):
            raise TypeError(f"Invalid device: {device!r}; allowed: a Device or a device name")
        get_scheme(scheme)  # raises with the available names
        validate.choice("mapping", mapping, MAPPINGS)
        validate.number("rwg_per_us", rwg_per_us, low=0, low_open=True)
        rows, cols = array_size
        if not (isinstance(rows, int) and isinstance(cols, int) and rows >= 1 and cols >= 3):
            raise ValueError(f"Invalid array_size: {array_size!r}; allowed: (rows >= 1, cols >= 3)")
        validate.number("w_max", w_max, low=0, low_open=True)
        dev = self.device_model
        self.w_max = float(w_max)
        lo, hi = operating_range(dev, mapping, rwg_per_us, w_max, g_ref_us)
        self.g_range_us = (lo, hi)
        if g_ref_us is None:
            g_ref_us = (lo + hi) / 2
        self.scheme = scheme
        unverified = not get_scheme(scheme).verified
        self.load_scheme = load_scheme or ("write_verify" if unverified else scheme)
        get_scheme(self.load_scheme)
        self.mapping = mapping
        self.rwg_per_us = float(rwg_per_us)
        self.g_ref_us = float(g_ref_us)
        self.scheme_options = dict(scheme_options or {})
        if sd_us is not None:
            validate.number("sd_us", sd_us, low=0, low_open=True)
        self._sd_us = sd_us
        self.placement = Placement(rows, cols, mapping)
        self.generator = torch.Generator().manual_seed(seed)
        self.read_generator = torch.Generator().manual_seed(seed + _READ_SEED_OFFSET)
        self.eval_generator = torch.Generator().manual_seed(seed + _EVAL_SEED_OFFSET)
        self._reading = self.read_generator
        self.ref_g_us: Tensor
        self.register_buffer("ref_g_us", torch.zeros(0))
        self.ref_params: CellParams | None = None
        self.tiles: list[Tile] = []

    @property
    def sd_us(self) -> float:
        """SD(εcell) of the device under the update scheme (µS): the default threshold / Rwg."""
        if self._sd_us is None:
            # The device's εcell as a verified write leaves it (the paper's practice), also for
            # unverified update schemes, whose error is not a tolerance.
            self._sd_us = characterized_sd(
                self.device_model, self.load_scheme, **self.scheme_options
            )
        return self._sd_us

    @property
    def cells(self) -> int:
        return self.placement.cells

    @property
    def g_center_us(self) -> float:
        """Centre of the operating range (µS): the reference, or the differential pair's
        common level."""
        return (self.g_range_us[0] + self.g_range_us[1]) / 2

    @property
    def clipped(self) -> int:
        """Cells asked (at load or update) for a conductance outside the device window."""
        return sum(int(t.clipped) for t in self.tiles)

    def _program(
        self, state: CellState, target: Tensor, mask: Tensor, params: CellParams, scheme: str
    ) -> Any:
        fn = get_scheme(scheme).fn
        return fn(
            state,
            target,
            mask,
            self.device_model,
            params,
            generator=self.generator,
            **self.scheme_options,
        )

    def add_tile(self, name: str, weight: Tensor, *, transposed: bool = False) -> Tile:
        """Place ``weight`` on the arrays, program the new reference cells, load the weight."""
        rows, cols = matrix_shape(tuple(weight.shape), transposed)
        unit = 1 if transposed else math.prod(weight.shape[2:])
        blocks = self.placement.add(name, rows, cols, row_unit=unit)
        if self.mapping == "reference_column":
            need = self.placement.reference_cells - self.ref_g_us.numel()
            if need > 0:
                self._grow_reference(need)
        tile = Tile(self, name, weight, blocks, transposed=transposed)
        self.tiles.append(tile)
        return tile

    def _grow_reference(self, n: int) -> None:
        dev = self.device_model
        params = dev.sample((n,), generator=self.generator)
        state = CellState.initial(dev, params)
        target = torch.full((n,), self.g_ref_us)
        res = self._program(
            state, target, torch.ones(n, dtype=torch.bool), params, self.load_scheme
        )
        # Array rows fill in placement order, so the new reference cells are appended.
        old = self.ref_g_us
        self.ref_g_us = torch.cat([old, res.state.g_us.to(old.dtype)])
        self.ref_params = (
            params if self.ref_params is None else CellParams.cat([self.ref_params, params])
        )
        self.ref_load_pulses = int(res.pulses.sum()) + getattr(self, "ref_load_pulses", 0)

    @property
    def reading_generator(self) -> torch.Generator:
        """The generator reads draw from now: ``eval_generator`` inside `evaluation`,
        ``read_generator`` otherwise."""
        return self._reading

    @contextlib.contextmanager
    def evaluation(self) -> Iterator[Crossbar]:
        """Reads inside this block draw their noise from ``eval_generator``."""
        before = self._reading
        self._reading = self.eval_generator
        try:
            yield self
        finally:
            self._reading = before

    def read_reference(self) -> Tensor:
        """The reference cells as the periphery reads them (with read noise)."""
        return read(self.ref_g_us, self.device_model, generator=self.reading_generator)

    def get_extra_state(self) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "generator": self.generator.get_state(),
            "read_generator": self.read_generator.get_state(),
            "eval_generator": self.eval_generator.get_state(),
        }
        if self.ref_params is not None:
            extra["ref_params"] = self.ref_params.state_dict()
        return extra

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        # A checkpoint from before the split holds one generator: the read streams then
        # keep their seeded state (the resumed run's reads differ from the old code's).
        if "read_generator" in state:
            self.read_generator.set_state(state["read_generator"])
        if "eval_generator" in state:
            self.eval_generator.set_state(state["eval_generator"])
        if "ref_params" in state:
            self.ref_params = CellParams.from_state_dict(state["ref_params"])


class Tile:
    """The conductance state of one weight tensor on a `Crossbar` (the optimizer's seam).

    Cells are stored in the weight's own shape (a leading axis of 2 for the differential
    mapping: G⁺, G⁻). ``state_tensors()`` names the tensors a module must save.
    """

    def __init__(
        self,
        crossbar: Crossbar,
        name: str,
        weight: Tensor,
        blocks: list[Block],
        *,
        transposed: bool = False,
    ) -> None:
        self.crossbar = crossbar
        self.name = name
        self.shape = tuple(weight.shape)
        self.blocks = blocks
        self.transposed = transposed
        dev = crossbar.device_model
        cell_shape = ((2,) if crossbar.mapping == "differential" else ()) + self.shape
        self.params = dev.sample(cell_shape, generator=crossbar.generator)
        self.state = CellState.initial(dev, self.params)
        self.writes = torch.zeros(cell_shape, dtype=torch.int32)
        self.clipped = torch.zeros((), dtype=torch.int64)
        self.ref_index = self._reference_index()
        self.ref_cells = 0 if crossbar.mapping != "reference_column" else self._owned_refs()
        self.cells = math.prod(cell_shape) + self.ref_cells
        self.load_record = self.load(weight.detach().float())

    # --------------------------------------------------------------- layout
    def _reference_index(self) -> Tensor:
        """For each weight, the index of its row's reference cell (reference_column)."""
        rows, cols = matrix_shape(self.shape, self.transposed)
        idx = torch.zeros(rows, cols, dtype=torch.long)
        if self.crossbar.mapping == "reference_column":
            pl = self.crossbar.placement
            for b in self.blocks:
                base = pl.reference_offset(b.array)
                idx[b.row0 : b.row0 + b.rows, b.col0 : b.col0 + b.cols] = (
                    base + torch.arange(b.rows)
                ).unsqueeze(1)
        return self._from_matrix(idx)

    def _owned_refs(self) -> int:
        pl = self.crossbar.placement
        n = 0
        for b in self.blocks:
            earlier = [
                o
                for o in pl.blocks
                if o.array == b.array and pl.blocks.index(o) < pl.blocks.index(b)
            ]
            n += max(0, b.rows - max((o.rows for o in earlier), default=0))
        return n

    def _from_matrix(self, m: Tensor) -> Tensor:
        """Matrix (rows = inputs, cols = outputs) back to the weight's shape."""
        if self.transposed:
            return m.reshape(self.shape)
        return m.t().reshape(self.shape)

    # --------------------------------------------------------------- values
    @property
    def rwg_per_us(self) -> float:
        return self.crossbar.rwg_per_us

    @property
    def sd_us(self) -> float:
        return self.crossbar.sd_us

    def _g_ref(self, ref: Tensor | None = None) -> Tensor:
        ref = self.crossbar.ref_g_us if ref is None else ref
        return ref[self.ref_index]

    def weight(self) -> Tensor:
        """The weight the cells hold now (noise-free)."""
        g = self.state.g_us
        if self.crossbar.mapping == "differential":
            return (g[0] - g[1]) * self.rwg_per_us
        return (g - self._g_ref()) * self.rwg_per_us

    def read(self) -> Tensor:
        """The weight as one VMM sees it: every cell read once with read noise."""
        xb = self.crossbar
        g = read(self.state.g_us, xb.device_model, generator=xb.reading_generator)
        if xb.mapping == "differential":
            return (g[0] - g[1]) * self.rwg_per_us
        return (g - self._g_ref(xb.read_reference())) * self.rwg_per_us

    # ------------------------------------------------------------ programming
    def _targets(self, w_or_dw: Tensor, absolute: bool) -> tuple[Tensor, Tensor]:
        """Target conductances and the mask of cells to write."""
        dg = w_or_dw.to(self.state.g_us.dtype) / self.rwg_per_us
        g = self.state.g_us
        if self.crossbar.mapping == "differential":
            if absolute:
                mid = self.crossbar.g_center_us
                target = torch.stack([mid + dg / 2, mid - dg / 2])
                return target, torch.ones_like(g, dtype=torch.bool)
            target = torch.stack([g[0] + dg / 2, g[1] - dg / 2])
            mask = (dg != 0).expand_as(g)
            return target, mask
        if absolute:
            return self._g_ref() + dg, torch.ones_like(g, dtype=torch.bool)
        return g + dg, dg != 0

    def _beyond(self, target: Tensor) -> Tensor:
        """Where a target conductance lies outside the device window. A weight at the edge
        (e.g. a Tiki-Taka symmetry point clamped there) misses it by float32 rounding, some
        1e-5 µS, after the round trip through weight units: a miss under 1e-6 of g_max is
        not beyond."""
        dev = self.crossbar.device_model
        tol = 1e-6 * dev.g_max_us
        return (target < dev.g_min_us - tol) | (target > dev.g_max_us + tol)

    def _apply(self, target: Tensor, mask: Tensor, scheme: str) -> Tensor:
        """Program the masked cells; only they are handed to the scheme (EaPU writes few)."""
        idx = mask.reshape(-1).nonzero().squeeze(1)
        row = torch.zeros(len(FIELDS), dtype=torch.int64)
        if idx.numel() == 0:
            return row
        wanted = target.reshape(-1)[idx]
        # The device cannot hold these; its own physics stops at the window, so count them.
        self.clipped += self._beyond(wanted).sum()
        sub = lambda t: t.reshape(-1)[idx]  # noqa: E731
        params = self.params.select(idx)
        state = CellState(g_us=sub(self.state.g_us), gate=sub(self.state.gate))
        res = self.crossbar._program(
            state, sub(target), torch.ones_like(idx, dtype=torch.bool), params, scheme
        )
        g, gate = self.state.g_us.clone(), self.state.gate.clone()
        g.view(-1)[idx] = res.state.g_us.to(g.dtype)
        gate.view(-1)[idx] = res.state.gate.to(gate.dtype)
        self.state = CellState(g_us=g, gate=gate)
        # "written" counts the cells that took at least one pulse: a verified scheme may find
        # a requested cell already within tolerance and leave it alone.
        pulsed = res.pulses > 0
        self.writes.view(-1)[idx] += pulsed.to(torch.int32)
        row[:4] = torch.stack([pulsed.sum(), res.pulses.sum(), res.reads.sum(), res.failed.sum()])
        return row

    def load(self, weight: Tensor) -> Tensor:
        """Program absolute weights (initial or pre-trained) with the crossbar's load scheme.

        Returns the ledger row of the load (written, pulses, reads, failed, skipped).
        """
        if tuple(weight.shape) != self.shape:
            raise ValueError(f"weight has shape {tuple(weight.shape)}, the tile holds {self.shape}")
        target, mask = self._targets(weight, absolute=True)
        before = int(self.clipped)
        row = self._apply(target, mask, self.crossbar.load_scheme)
        if int(self.clipped) > before:
            xb = self.crossbar
            why = ""
            if xb.mapping == "reference_column" and xb.ref_params is not None:
                # A stuck reference cell offsets every weight read against it: its row's
                # targets move by (stuck value - g_ref) and half of them leave the window.
                out = self._beyond(target)
                n_ref = int((out & ~xb.ref_params.free[self.ref_index]).sum())
                if n_ref:
                    why = (
                        f"; {n_ref} of them are read against a stuck reference cell, which "
                        "offsets every weight of its array row"
                    )
            warnings.warn(
                f"tile {self.name!r}: {int(self.clipped) - before} weight(s) beyond what device "
                f"{xb.device_model.name!r} holds at rwg_per_us={xb.rwg_per_us:g} "
                f"(max |W| {float(weight.abs().max()):.3g}){why}; they land at the window's "
                "edge (counted in Tile.clipped)",
                stacklevel=2,
            )
        return row

    def program(self, dwn: Tensor, *, scheme: str | None = None) -> Tensor:
        """Write the update ΔWn (zero entries are not written) with the crossbar's update
        scheme, or with ``scheme`` (e.g. the fast array of Tiki-Taka)."""
        if tuple(dwn.shape) != self.shape:
            raise ValueError(f"dwn has shape {tuple(dwn.shape)}, the tile holds {self.shape}")
        if not torch.isfinite(dwn).all():
            raise ValueError("dwn holds NaN or Inf; a non-finite update is never written")
        if scheme is not None:
            get_scheme(scheme)  # raises with the available names
        target, mask = self._targets(dwn.detach().cpu(), absolute=False)
        return self._apply(target, mask, scheme or self.crossbar.scheme)

    # ----------------------------------------------------------------- state
    def state_tensors(self) -> dict[str, Tensor]:
        """Everything a checkpoint must hold to restore this tile exactly."""
        out = {
            "g_us": self.state.g_us,
            "gate": self.state.gate,
            "writes": self.writes,
            "clipped": self.clipped,
        }
        out.update({f"cell_{k}": v for k, v in self.params.state_dict().items()})
        return out

    def load_state_tensors(self, state: dict[str, Tensor]) -> None:
        self.state = CellState(g_us=state["g_us"].clone(), gate=state["gate"].clone())
        self.writes = state["writes"].clone()
        self.clipped = state.get("clipped", torch.zeros((), dtype=torch.int64)).clone()
        self.params = CellParams.from_state_dict(
            {k[5:]: v for k, v in state.items() if k.startswith("cell_")}
        )
