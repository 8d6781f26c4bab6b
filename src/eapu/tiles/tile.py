"""`Tile`: one weight tensor's cells on a `Crossbar`, the simulator's implementation of the
seam (`eapu.seam.AnalogTile`)."""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..devices import CellParams, read, symmetry_point_us
from ..ledger import FIELDS
from ..programming import CellState, get_scheme
from .placement import Block, matrix_shape

if TYPE_CHECKING:
    from .crossbar import Crossbar

__all__ = ["Tile"]

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
        self.index = len(crossbar.tiles)
        dev = crossbar.device_model
        self.cell_shape = ((2,) if crossbar.mapping == "differential" else ()) + self.shape
        params = dev.sample(
            self.cell_shape, generator=crossbar.generator, device=crossbar.torch_device
        )
        state = CellState.initial(dev, params)
        self.offset = crossbar.append_cells(params, state)
        self.size = math.prod(self.cell_shape)
        self._weights_offset = crossbar.weight_ref_index.numel()
        ref_index, segment, self.segments = self._layout()
        self.segment_offset = crossbar.segments
        segment = segment + self.segment_offset
        crossbar.segments += self.segments
        crossbar.append_layout(
            ref_index.to(crossbar.torch_device), segment.to(crossbar.torch_device)
        )
        self.ref_cells = (
            sum(b.new_ref_rows for b in blocks) if crossbar.mapping == "reference_column" else 0
        )
        self.load_record = torch.zeros(len(FIELDS), dtype=torch.int64)
        self._published: int | None = None

    # --------------------------------------------------------------- layout
    def _layout(self) -> tuple[Tensor, Tensor, int]:
        """Per weight, its row's reference cell (reference_column); per cell, its row
        segment (one of this tile's array rows); the number of segments."""
        rows, cols = matrix_shape(self.shape, self.transposed)
        idx = torch.zeros(rows, cols, dtype=torch.long)
        seg = torch.zeros(rows, cols, dtype=torch.long)
        pl = self.crossbar.placement
        keys: dict[tuple[int, int], int] = {}
        for b in self.blocks:
            if self.crossbar.mapping == "reference_column":
                refs = [pl.reference_index(b.array, r) for r in range(b.rows)]
                idx[b.row0 : b.row0 + b.rows, b.col0 : b.col0 + b.cols] = torch.tensor(
                    refs
                ).unsqueeze(1)
            first = [keys.setdefault((b.array, r), len(keys)) for r in range(b.rows)]
            seg[b.row0 : b.row0 + b.rows, b.col0 : b.col0 + b.cols] = torch.tensor(first).unsqueeze(
                1
            )
        segment = self._from_matrix(seg)
        if self.crossbar.mapping == "differential":  # a pair sits side by side in one row
            segment = torch.stack([segment, segment])
        return self._from_matrix(idx), segment, len(keys)

    def _from_matrix(self, m: Tensor) -> Tensor:
        """Matrix (rows = inputs, cols = outputs) back to the weight's shape."""
        if self.transposed:
            return m.reshape(self.shape)
        return m.t().reshape(self.shape)

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
        ref = self.crossbar.ref_g_us if ref is None else ref
        return ref[self.ref_index]

    def weight(self) -> Tensor:
        """The weight the cells hold now (noise-free)."""
        g = self.state.g_us
        if self.crossbar.mapping == "differential":
            return (g[0] - g[1]) * self.rwg_per_us
        return (g - self._g_ref()) * self.rwg_per_us

    def read(self, *, evaluation: bool = False) -> Tensor:
        """The weight as one VMM sees it: every cell read once with read noise."""
        xb = self.crossbar
        gen = xb.eval_generator if evaluation else xb.reading_generator
        g = read(self.state.g_us, xb.device_model, generator=gen)
        if xb.mapping == "differential":
            return (g[0] - g[1]) * self.rwg_per_us
        return (g - self._g_ref(xb.read_reference(evaluation=evaluation))) * self.rwg_per_us

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
        """A tile of the same shape on the same crossbar, named ``name + suffix``."""
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
    def _targets(self, w_or_dw: Tensor, absolute: bool) -> tuple[Tensor, Tensor]:
        """Target conductances and the mask of cells to write."""
        dg = w_or_dw.to(self.crossbar.g_us.dtype) / self.rwg_per_us
        g = self._flat(self.crossbar.g_us).view(self.cell_shape)  # no flush: its own cells
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

    def flush(self) -> None:
        self.crossbar.flush()

    def load(self, weight: Tensor) -> Tensor:
        """Program absolute weights (initial or pre-trained) with the crossbar's load scheme.

        Returns the ledger row of the load (written, pulses, reads, failed, skipped, rows).
        """
        if tuple(weight.shape) != self.shape:
            raise ValueError(f"weight has shape {tuple(weight.shape)}, the tile holds {self.shape}")
        weight = weight.detach().to(self.crossbar.torch_device, torch.float32)
        if not bool(weight.isfinite().all()):  # set-up time: a check may wait for the device
            raise ValueError(f"Invalid weight: tile {self.name!r} got NaN or Inf to load")
        before = self.clipped
        target, mask = self._targets(weight, absolute=True)
        row = self.crossbar.enqueue(self, target, mask, self.crossbar.load_scheme)
        if self.clipped > before:
            xb = self.crossbar
            why = ""
            ref = xb.ref_params
            if xb.mapping == "reference_column" and ref is not None:
                # A stuck reference cell offsets every weight read against it: its row's
                # targets move by (stuck value - g_ref) and half of them leave the window.
                out = self.crossbar.beyond_window(target)
                n_ref = int((out & ~ref.free[self.ref_index]).sum())
                if n_ref:
                    why = (
                        f"; {n_ref} of them are read against a stuck reference cell, which "
                        "offsets every weight of its array row"
                    )
            warnings.warn(
                f"tile {self.name!r}: {self.clipped - before} weight(s) beyond what device "
                f"{xb.device_model.name!r} holds at rwg_per_us={xb.rwg_per_us:g} "
                f"(max |W| {float(weight.abs().max()):.3g}){why}; they land at the window's "
                "edge (counted in Tile.clipped)",
                stacklevel=3,
            )
        return row

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
        finite = dwn.isfinite()  # a non-finite update is never written: skipped, counted
        target, mask = self._targets(torch.where(finite, dwn, 0.0), absolute=False)
        return xb.enqueue(self, target, mask, scheme or xb.scheme, skipped=~finite)

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
