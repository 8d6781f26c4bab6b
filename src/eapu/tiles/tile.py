"""`Tile`: one weight tensor's cells on a `Crossbar`, the simulator's implementation of the
seam (`eapu.seam.AnalogTile`)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..devices import CellParams, read, symmetry_point_us
from ..ledger import FIELDS
from ..programming import CellState, get_scheme, positions
from ..runtime import sync_free
from ..seam import AnalogTile
from .placement import Block, matrix_shape

if TYPE_CHECKING:
    from .crossbar import Crossbar

__all__ = ["Tile", "siblings"]

_W, _P, _R, _F, _ROWS = (FIELDS.index(f) for f in ("written", "pulses", "reads", "failed", "rows"))


class Tile:
    """One weight tensor's cells on a `Crossbar`: the simulator's `eapu.seam.AnalogTile`.

    The cells are views into the crossbar's flat buffers, in the weight's own shape (a
    leading axis of 2 for the differential mapping: G⁺, G⁻).
    """

    def __init__(
        self,
        crossbar: Crossbar,
        name: str,
        shape: tuple[int, ...],
        blocks: list[Block],
        *,
        transposed: bool = False,
        offset: int,
        weights_offset: int,
        segment_offset: int,
    ) -> None:
        """A tile whose cells the crossbar has placed (`Crossbar.add_tiles`): they start at
        ``offset`` of its flat cell buffers, its weights at ``weights_offset`` of its
        per-weight buffers, its row segments at ``segment_offset``."""
        self.crossbar = crossbar
        self.name = name
        self.shape = tuple(shape)
        self.blocks = blocks
        self.transposed = transposed
        self.index = len(crossbar.tiles)
        self.cell_shape = ((2,) if crossbar.mapping == "differential" else ()) + self.shape
        self.offset = offset
        self.size = math.prod(self.cell_shape)
        self._weights_offset = weights_offset
        self.segment_offset = segment_offset
        self.segments = sum(self._rows_in().values())
        self.ref_cells = (
            sum(b.new_ref_rows for b in blocks) if crossbar.mapping == "reference_column" else 0
        )
        self.load_record = torch.zeros(len(FIELDS), dtype=torch.int64)
        self._published: int | None = None
        self._refs = (0, 0)  # the span of reference cells it is read against (`layout`)

    # --------------------------------------------------------------- layout
    def layout(self, ref_index: Tensor, segment: Tensor) -> None:
        """Write the tile's layout into the crossbar's buffers: per cell (``segment``, its
        flat slice) its row segment, one of the tile's array rows, numbered from
        ``segment_offset``; per weight (``ref_index``) the index of its row's reference cell
        (reference_column; else 0).

        The blocks of one band of matrix rows (`Placement.add` cuts a matrix into a grid)
        share the band's rows, so a band is written at once: its blocks' row segments, each
        repeated over the block's columns. A segment is one array row, so its reference cell
        is looked up per segment.
        """
        rows_in = self._rows_in()
        base: dict[int, int] = {}  # each array's first segment, in order of first use
        first = self.segment_offset
        for array, rows in rows_in.items():
            base[array], first = first, first + rows
        bands: dict[tuple[int, int], list[Block]] = {}
        for b in self.blocks:
            bands.setdefault((b.row0, b.rows), []).append(b)
        n = math.prod(self.shape)
        on = segment.device
        seg_m = self._as_matrix(segment[:n])
        for (row0, rows), band in bands.items():
            band.sort(key=lambda b: b.col0)
            starts = torch.tensor([base[b.array] for b in band], device=on)
            widths = torch.tensor([b.cols for b in band], device=on)
            seg = starts.unsqueeze(0) + torch.arange(rows, device=on).unsqueeze(1)
            seg_m[row0 : row0 + rows] = seg.repeat_interleave(widths, dim=1)
        if self.crossbar.mapping == "reference_column":
            pl = self.crossbar.placement
            per_segment = [i for a, r in rows_in.items() for i in pl.reference_indices(a, r)]
            self._refs = (min(per_segment), max(per_segment) + 1)
            table = torch.tensor(per_segment, dtype=ref_index.dtype, device=on)
            torch.index_select(table, 0, segment[:n] - self.segment_offset, out=ref_index)
        else:
            ref_index.zero_()
        if self.crossbar.mapping == "differential":  # a pair sits side by side in one row
            segment[n:].copy_(segment[:n])

    def _rows_in(self) -> dict[int, int]:
        """Per array the tile uses (in order of first use), the array rows its blocks there
        take (they all start at row 0): the tile's row segments."""
        rows: dict[int, int] = {}
        for b in self.blocks:
            rows[b.array] = max(rows.get(b.array, 0), b.rows)
        return rows

    def _as_matrix(self, flat: Tensor) -> Tensor:
        """A flat tensor of the weight's size viewed as its matrix (rows = inputs, cols =
        outputs), without a copy."""
        rows, cols = matrix_shape(self.shape, self.transposed)
        if self.transposed:
            return flat.view(rows, cols)
        return flat.view(cols, rows).t()

    # --------------------------------------------------------------- views
    def _flat(self, buf: Tensor) -> Tensor:
        return buf[self.offset : self.offset + self.size]

    @property
    def state(self) -> CellState:
        """The cells' conductances and gate levels (views of the crossbar's buffers)."""
        xb = self.crossbar
        xb.flush()
        return CellState(
            g_us=self._flat(xb.g_us).view(self.cell_shape),
            gate=self._flat(xb.gate).view(self.cell_shape),
        )

    @state.setter
    def state(self, state: CellState) -> None:
        self.crossbar.flush()
        self._flat(self.crossbar.g_us).copy_(state.g_us.reshape(-1))
        self._flat(self.crossbar.gate).copy_(state.gate.reshape(-1))

    @property
    def params(self) -> CellParams:
        """The cells' device-to-device draw (views of the crossbar's buffers)."""
        return self.crossbar.cell_params.select(slice(self.offset, self.offset + self.size)).view(
            self.cell_shape
        )

    @property
    def writes(self) -> Tensor:
        """Writes per cell since the start (a view)."""
        self.crossbar.flush()
        return self._flat(self.crossbar.writes).view(self.cell_shape)

    @property
    def ref_index(self) -> Tensor:
        """For each weight, the index of its row's reference cell (reference_column)."""
        n = math.prod(self.shape)
        return self.crossbar.weight_ref_index[self._weights_offset : self._weights_offset + n].view(
            self.shape
        )

    @property
    def cells(self) -> int:
        """Cells the tile occupies: weight cells and the reference cells it added."""
        return self.size + self.ref_cells

    @property
    def scheme(self) -> str:
        return self.crossbar.scheme

    @property
    def cells_per_weight(self) -> int:
        return 2 if self.crossbar.mapping == "differential" else 1

    @property
    def rwg_per_us(self) -> float:
        return self.crossbar.rwg_per_us

    @property
    def sd_us(self) -> float:
        return self.crossbar.sd_us

    @property
    def pulse_step_us(self) -> float:
        return self.crossbar.device_model.step_up_us

    @property
    def noisy_reads(self) -> bool:
        return self.crossbar.device_model.read_noise_sd_us > 0

    @property
    def clipped(self) -> int:
        self.crossbar.flush()
        return int(self.crossbar.tile_clipped[self.index])

    # --------------------------------------------------------------- values
    def _g_ref(self, ref: Tensor | None = None) -> Tensor:
        """Per weight, its reference cell's value in ``ref`` (default: the conductances)."""
        ref = self.crossbar.ref_g_us if ref is None else ref
        return ref.index_select(0, self.ref_index.reshape(-1)).view(self.shape)

    def weight(self) -> Tensor:
        """The weight the cells hold now (noise-free)."""
        g = self.state.g_us
        if self.crossbar.mapping == "differential":
            return (g[0] - g[1]) * self.rwg_per_us
        return (g - self._g_ref()) * self.rwg_per_us

    def read(self, *, evaluation: bool = False) -> Tensor:
        """The weight as one VMM sees it: every cell, and the reference cells of its rows,
        read once with read noise."""
        xb = self.crossbar
        gen = xb.eval_generator if evaluation else xb.reading_generator
        dev = xb.device_model
        g = self.state.g_us
        if xb.mapping == "differential":
            # G+ - G- read: the two reads' noises sum to one normal of sqrt(2) times the SD.
            noise = torch.randn(self.shape, generator=gen, device=g.device, dtype=g.dtype)
            w = torch.sub(g[0], g[1]).add_(noise, alpha=math.sqrt(2) * dev.read_noise_sd_us)
            return w.mul_(self.rwg_per_us)
        # Only this tile's reference cells are read (a layer's VMM reads its arrays' column).
        lo, hi = self._refs
        refs = torch.empty_like(xb.ref_g_us)
        refs[lo:hi] = read(xb.ref_g_us[lo:hi], dev, generator=gen)
        return read(g, dev, generator=gen).sub_(self._g_ref(refs)).mul_(self.rwg_per_us)

    def conductances(self) -> Tensor:
        return self.state.g_us

    def set_conductances(self, g_us: Tensor) -> None:
        """Overwrite the cells' conductances (the simulator's drift; a real chip drifts by
        itself)."""
        self.crossbar.flush()
        self._flat(self.crossbar.g_us).copy_(g_us.reshape(-1))

    def reference_conductances(self) -> Tensor:
        if self.crossbar.mapping == "differential":
            return torch.zeros(self.shape, device=self.crossbar.torch_device)
        return self._g_ref()

    def write_counts(self) -> Tensor:
        return self.writes

    def symmetry_point(self) -> Tensor:
        g_sp = symmetry_point_us(self.crossbar.device_model, self.params)
        move = (g_sp - self.state.g_us) * self.rwg_per_us
        if self.crossbar.mapping == "differential":
            return self.weight() + (move[0] - move[1]).to(torch.float32)
        return self.weight() + move.to(torch.float32)

    def sibling(self, suffix: str, weight: Tensor) -> Tile:
        """A tile of the same shape on the same crossbar, named ``name + suffix`` (the
        siblings of several tiles at once: `eapu.tiles.siblings`)."""
        return self.crossbar.add_tile(self.name + suffix, weight, transposed=self.transposed)

    # ------------------------------------------------------------ parameter
    def publish(self, parameter: Any, value: Tensor | None = None) -> None:
        """Copy ``value`` (default: `weight`) into the layer's parameter and remember its
        version, so that `check` sees a change made behind the tile's back."""
        with torch.no_grad():
            parameter.copy_(self.weight() if value is None else value)
        self._published = parameter._version

    def check(self, parameter: Any) -> None:
        """Refuse a parameter that changed since the tile last published it (an in-place
        edit, an optimizer that does not write through the tile)."""
        if self._published is not None and parameter._version != self._published:
            raise RuntimeError(
                f"the weight of analog layer {self.name!r} was changed behind its tile (a "
                "plain torch optimizer, or an in-place edit): its cells still hold the old "
                "values. Train it with an in-situ optimizer (eapu.optim.AdamEaPU, SGDEaPU, "
                "eapu.algorithms ...), program new values with tile.load(weights), or make "
                "the model digital again with eapu.nn.to_digital"
            )

    # ------------------------------------------------------------ programming
    def _targets(self, w_or_dw: Tensor, absolute: bool) -> tuple[Tensor, Tensor | None]:
        """Target conductances and the mask of cells to write (None: every cell)."""
        dg = w_or_dw.to(self.crossbar.g_us.dtype) / self.rwg_per_us
        g = self._flat(self.crossbar.g_us).view(self.cell_shape)  # no flush: its own cells
        if self.crossbar.mapping == "differential":
            if absolute:
                mid = self.crossbar.g_center_us
                return torch.stack([mid + dg / 2, mid - dg / 2]), None
            target = torch.stack([g[0] + dg / 2, g[1] - dg / 2])
            mask = (dg != 0).expand_as(g)
            return target, mask
        if absolute:
            return self._g_ref() + dg, None
        return g + dg, dg != 0

    def flush(self) -> None:
        self.crossbar.flush()

    def check_load(self, weight: Tensor) -> Tensor:
        """``weight`` as `load` programs it (float32 on the crossbar's device); `ValueError`
        for a wrong shape or a NaN / Inf entry."""
        if tuple(weight.shape) != self.shape:
            raise ValueError(f"weight has shape {tuple(weight.shape)}, the tile holds {self.shape}")
        weight = weight.detach().to(self.crossbar.torch_device, torch.float32)
        if not bool(weight.isfinite().all()):  # set-up time: a check may wait for the device
            raise ValueError(f"Invalid weight: tile {self.name!r} got NaN or Inf to load")
        return weight

    def load(self, weight: Tensor) -> Tensor:
        """Program absolute weights (initial or pre-trained) with the crossbar's load scheme.

        Returns the ledger row of the load (written, pulses, reads, failed, skipped, rows).
        The write joins the crossbar's queue as `program`'s do, so the loads of several tiles
        run in one call of the scheme; the row is filled in then (any read of the cells runs
        the queue), and weights beyond what the device holds are counted in `clipped` and
        warned about (`warn_clipped`).
        """
        weight = self.check_load(weight)
        target, mask = self._targets(weight, absolute=True)
        return self.crossbar.enqueue(self, target, mask, self.crossbar.load_scheme, load=weight)

    def warn_clipped(self, n: int, target: Tensor, weight: Tensor) -> None:
        """Warn that ``n`` weights of a load of ``weight`` (targets ``target``, µS) lay beyond
        the device window (they land at its edge)."""
        xb = self.crossbar
        why = ""
        ref = xb.ref_params
        if xb.mapping == "reference_column" and ref is not None:
            # A stuck reference cell offsets every weight read against it: its row's
            # targets move by (stuck value - g_ref) and half of them leave the window.
            out = xb.beyond_window(target.view(self.cell_shape))
            n_ref = int((out & ~ref.free[self.ref_index]).sum())
            if n_ref:
                why = (
                    f"; {n_ref} of them are read against a stuck reference cell, which "
                    "offsets every weight of its array row"
                )
        warnings.warn(
            f"tile {self.name!r}: {n} weight(s) beyond what device "
            f"{xb.device_model.name!r} holds at rwg_per_us={xb.rwg_per_us:g} "
            f"(max |W| {float(weight.abs().max()):.3g}){why}; they land at the window's "
            "edge (counted in Tile.clipped)",
            stacklevel=4,
        )

    def program(self, dwn: Tensor, *, scheme: str | None = None) -> Tensor:
        """Write the update ΔWn (zero entries are not written) with the crossbar's update
        scheme, or with ``scheme`` (e.g. the fast array of Tiki-Taka).

        The write joins the crossbar's queue: the writes of one optimizer step to several
        tiles go to the scheme together (`Crossbar.flush`), and the ledger row returned is
        filled in then (any read of the cells flushes first). A NaN or Inf entry is not
        written; it is counted in the row's ``skipped``.
        """
        if tuple(dwn.shape) != self.shape:
            raise ValueError(f"dwn has shape {tuple(dwn.shape)}, the tile holds {self.shape}")
        if scheme is not None:
            get_scheme(scheme)  # raises with the available names
        xb = self.crossbar
        xb.flush_if_pending(self)  # its targets start from its present cells
        dwn = dwn.detach().to(xb.torch_device)
        scheme = scheme or xb.scheme
        if sync_free(dwn):  # whole tensors, masked
            finite = dwn.isfinite()  # a non-finite update is never written: skipped, counted
            target, mask = self._targets(torch.where(finite, dwn, 0.0), absolute=False)
            return xb.enqueue(self, target, mask, scheme, skipped=~finite)
        # Host-checked: only the cells to write and their targets (EaPU writes a few percent).
        flat = dwn.reshape(-1)
        skipped = None
        # A NaN or Inf makes the sum non-finite (so may an overflow: then nothing is skipped);
        # a sum is a twentieth of the time of isfinite over every entry.
        if not bool(flat.sum().isfinite()) and not bool(flat.isfinite().all()):
            finite = flat.isfinite()
            skipped, flat = ~finite, torch.where(finite, flat, 0.0)
        at = positions(flat != 0)
        dg = flat.index_select(0, at).to(xb.g_us.dtype) / self.rwg_per_us
        g = self._flat(xb.g_us)  # no flush: its own cells
        if xb.mapping == "differential":  # the change split between the pair
            n = math.prod(self.shape)
            cells = torch.cat([at, at + n])
            target = g.index_select(0, cells) + torch.cat([dg / 2, -dg / 2])
        else:
            cells, target = at, g.index_select(0, at) + dg
        return xb.enqueue(self, target, None, scheme, skipped=skipped, cells=cells)

    # ----------------------------------------------------------------- state
    def state_tensors(self) -> dict[str, Tensor]:
        """The tile's own cells as a dict of tensors (copies): a checkpoint of one tile."""
        out = {
            "g_us": self.state.g_us.clone(),
            "gate": self.state.gate.clone(),
            "writes": self.writes.clone(),
            "clipped": self.crossbar.tile_clipped[self.index].clone(),
        }
        out.update({f"cell_{k}": v for k, v in self.params.state_dict().items()})
        return out

    def load_state_tensors(self, state: dict[str, Tensor]) -> None:
        """Restore `state_tensors` output (or an older checkpoint's per-tile state)."""
        xb = self.crossbar
        on = xb.torch_device
        self._flat(xb.g_us).copy_(state["g_us"].reshape(-1).to(on))
        self._flat(xb.gate).copy_(state["gate"].reshape(-1).to(on))
        self._flat(xb.writes).copy_(state["writes"].reshape(-1).to(on))
        if "clipped" in state:
            xb.tile_clipped[self.index] = state["clipped"].to(on)
        for f in xb.cell_fields:
            self._flat(getattr(xb, f"cell_{f}")).copy_(state[f"cell_{f}"].reshape(-1).to(on))


def siblings(
    tiles: Sequence[AnalogTile],
    suffix: str,
    weights: Sequence[Tensor] | Callable[[AnalogTile], Tensor],
) -> list[AnalogTile]:
    """`AnalogTile.sibling` of several tiles at once (Tiki-Taka's fast arrays), in the order
    of ``tiles``: the siblings of the simulator's tiles on one crossbar are placed together
    and loaded in one call of the load scheme (`Crossbar.add_tiles`); a tile of another
    implementation of the seam makes its own.

    ``weights``: the weight each sibling is loaded with, or a function of the placed sibling
    that gives it (its cells' symmetry point): the simulator's siblings are then loaded once,
    with it; a sibling of another implementation is made with zeros (as `AnalogTile.sibling`
    asks for a weight), then loaded with it.
    """
    if not callable(weights) and len(weights) != len(tiles):
        raise ValueError(
            f"Invalid weights: {len(weights)} for {len(tiles)} tiles; allowed: one each"
        )

    def first_weight(k: int, tile: AnalogTile) -> Tensor:
        return torch.zeros(tile.shape) if callable(weights) else weights[k]

    out: list[AnalogTile | None] = [None] * len(tiles)
    groups: dict[int, list[tuple[int, Tile]]] = {}
    for k, tile in enumerate(tiles):
        if isinstance(tile, Tile):
            groups.setdefault(id(tile.crossbar), []).append((k, tile))
            continue
        made = tile.sibling(suffix, first_weight(k, tile))
        if callable(weights):
            made.load(weights(made))
        out[k] = made
    for members in groups.values():
        xb = members[0][1].crossbar
        specs = [(t.name + suffix, first_weight(k, t), t.transposed) for k, t in members]
        placed = xb.add_tiles(specs, load=not callable(weights))
        if callable(weights):  # every weight first (reading cells runs the queue), then loads
            for new, w in [(new, weights(new)) for new in placed]:
                new.load_record = new.load(w)  # queued: one call of the load scheme for all
            xb.flush()
        for (k, _), new in zip(members, placed, strict=True):
            out[k] = new
    return [t for t in out if t is not None]
