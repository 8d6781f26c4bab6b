"""`Crossbar`: the arrays of one network, their reference column, device and generators; it
holds every cell of its tiles in flat buffers, which follow ``model.to(device)``."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .. import validate
from ..devices import CellParams, Device, get_device, read
from ..ledger import FIELDS
from ..programming import CellState, characterize, get_scheme, positions
from ..runtime import sync_free
from .placement import MAPPINGS, Placement, matrix_shape, operating_range
from .tile import Tile

__all__ = ["Crossbar", "characterized_sd"]

# The read streams are seeded apart from the programming stream (and from each other).
_READ_SEED_OFFSET = 0x5EAD_0001
_EVAL_SEED_OFFSET = 0x5EAD_0002
_GENERATORS = ("generator", "read_generator", "eval_generator")
_FAILED, _SKIPPED, _ROWS = (FIELDS.index(f) for f in ("failed", "skipped", "rows"))
#: Cells per call of a scheme on the host-checked path (`Crossbar.flush`): 2**18 cells keep
#: a pulse loop's tensors (about 1 MiB each) near the core's cache; measured on taox_1t1r's
#: memorial load, 0.37 s per million cells against 0.48 s in one call and 0.45 s in chunks
#: of 2**16 (one core, torch 2.13).
_CHUNK = 1 << 18


@functools.lru_cache(maxsize=64)
def _characterize_cached(
    device: Device, scheme: str, options: tuple[tuple[str, Any], ...]
) -> float:
    return characterize(device, scheme, **dict(options)).sd_us


def characterized_sd(device: Device, scheme: str, **options: Any) -> float:
    """SD(εcell) in µS of ``device`` under ``scheme``, measured once and cached."""
    return _characterize_cached(device, scheme, tuple(sorted(options.items())))


def _target_device(fn: Callable[[Tensor], Tensor], like: Tensor) -> torch.device:
    """Where ``Module._apply``'s ``fn`` sends a tensor like ``like`` (``to``, ``cuda``...)."""
    return fn(torch.zeros((), dtype=like.dtype, device=like.device)).device


def _generator_on(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _seed_from_state(state: Tensor) -> int:
    """A seed derived from a generator's saved state (another device's generator type)."""
    digest = hashlib.sha256(state.cpu().numpy().tobytes()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


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
        sd_us: SD(εcell) used as the default EaPU threshold; default (None): measured when
            the crossbar is built (`characterized_sd` of the device under the load scheme,
            a verified write as the paper's; cached per device and scheme).
        scheme_options: keyword options of the scheme (``tolerance_us``, ``max_pulses``).
        seed: seeds the crossbar's three generators: ``generator`` (device-to-device draw
            and programming: write noise, relaxation, faults), ``read_generator`` (read noise
            of training passes) and ``eval_generator`` (read noise of evaluation: a layer in
            ``eval()`` mode, or inside `evaluation`). Reading never draws from the programming
            stream, and evaluating never from training's, so how often a run is evaluated
            cannot change what it trains. The generators live on the crossbar's device and
            move with it (a move to another kind of device re-seeds them from their state).
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
        else:
            # The device's εcell as a verified write leaves it (the paper's practice), also for
            # unverified update schemes, whose error is not a tolerance.
            sd_us = characterized_sd(dev, self.load_scheme, **self.scheme_options)
        self._sd_us = float(sd_us)
        self.placement = Placement(rows, cols, mapping)
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.read_generator = torch.Generator().manual_seed(seed + _READ_SEED_OFFSET)
        self.eval_generator = torch.Generator().manual_seed(seed + _EVAL_SEED_OFFSET)
        self._evaluating = False
        # Every weight cell, in tile order (a differential pair's G+ block, then its G-).
        self.g_us: Tensor
        self.gate: Tensor
        self.writes: Tensor
        self.register_buffer("g_us", torch.zeros(0))
        self.register_buffer("gate", torch.zeros(0, dtype=torch.int32))
        self.register_buffer("writes", torch.zeros(0, dtype=torch.int32))
        # The device-to-device draw: the standard fields and the device kind's own.
        self.cell_fields = CellParams.FIELDS + dev.extra_cell_fields
        for f in self.cell_fields:
            dtype = torch.int8 if f == "stuck" else torch.float32
            self.register_buffer(f"cell_{f}", torch.zeros(0, dtype=dtype))
        # The reference column of every array, in array order.
        self.ref_g_us: Tensor
        self.register_buffer("ref_g_us", torch.zeros(0))
        for f in self.cell_fields:
            dtype = torch.int8 if f == "stuck" else torch.float32
            self.register_buffer(f"ref_{f}", torch.zeros(0, dtype=dtype))
        self.tile_clipped: Tensor
        self.register_buffer("tile_clipped", torch.zeros(0, dtype=torch.int64))
        # Derived from the placement (not saved): each weight's reference cell, each cell's
        # row segment (one layer's cells in one array row), for the ledger's rows written.
        self.weight_ref_index: Tensor
        self.cell_segment: Tensor
        self.register_buffer(
            "weight_ref_index", torch.zeros(0, dtype=torch.int64), persistent=False
        )
        self.register_buffer("cell_segment", torch.zeros(0, dtype=torch.int64), persistent=False)
        self.tiles: list[Tile] = []
        self.segments = 0  # row segments of all tiles (the ledger's rows written)
        self._pending: list[_Write] = []
        self._pending_scheme: str | None = None
        self.ref_load_pulses = 0

    # ------------------------------------------------------------------- properties
    @property
    def sd_us(self) -> float:
        """SD(εcell) of the device under the update scheme (µS): the default threshold / Rwg."""
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
        self.flush()
        return int(self.tile_clipped.sum())

    @property
    def ref_params(self) -> CellParams | None:
        """The reference cells' device-to-device draw (None without a reference column)."""
        if not self.ref_g_us.numel():
            return None
        return self._params("ref")

    @property
    def cell_params(self) -> CellParams:
        """Every weight cell's device-to-device draw (flat, in tile order)."""
        return self._params("cell")

    def _params(self, kind: str) -> CellParams:
        std = {f: getattr(self, f"{kind}_{f}") for f in CellParams.FIELDS}
        extra = {f: getattr(self, f"{kind}_{f}") for f in self.device_model.extra_cell_fields}
        return CellParams(**std, extra=extra)

    @property
    def torch_device(self) -> torch.device:
        """The torch device the cells live on."""
        return self.g_us.device

    def extra_repr(self) -> str:
        return (
            f"device={self.device_model.name!r}, scheme={self.scheme!r}, mapping="
            f"{self.mapping!r}, rwg_per_us={self.rwg_per_us:g}, cells={self.cells}, "
            f"arrays={self.placement.arrays}"
        )

    # ------------------------------------------------------------------- generators
    def _generators(self) -> dict[str, torch.Generator]:
        return {name: getattr(self, name) for name in _GENERATORS}

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> Crossbar:
        """Follow ``model.to(device)``, keeping every buffer's dtype (a conductance stays
        float32 under ``model.half()``), and move the generators with the cells."""
        self.flush()
        where = _target_device(fn, self.g_us)
        for name, buf in list(self._buffers.items()):
            if buf is not None and buf.device != where:
                self._buffers[name] = buf.to(where)
        if self.generator.device != where:
            for name, gen in self._generators().items():
                # A generator's state belongs to its kind of device: the new one is seeded
                # from the old one's draw, so the same program moves to the same streams.
                seed = int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device))
                setattr(self, name, _generator_on(where, seed))
        return self

    @property
    def reading_generator(self) -> torch.Generator:
        """The generator training reads draw from: ``eval_generator`` inside `evaluation`,
        ``read_generator`` otherwise."""
        return self.eval_generator if self._evaluating else self.read_generator

    @contextlib.contextmanager
    def evaluation(self) -> Iterator[Crossbar]:
        """Every read inside this block draws its noise from ``eval_generator`` (layers in
        ``eval()`` mode do so anyway)."""
        before = self._evaluating
        self._evaluating = True
        try:
            yield self
        finally:
            self._evaluating = before

    def reference_conductances(self) -> Tensor:
        """The reference column's conductances (µS), in array order."""
        self.flush()
        return self.ref_g_us

    def set_reference_conductances(self, g_us: Tensor) -> None:
        """Overwrite the reference column (the simulator's drift)."""
        self.ref_g_us.copy_(g_us.to(self.ref_g_us))

    def read_reference(self, *, evaluation: bool = False) -> Tensor:
        """The reference cells as the periphery reads them (with read noise)."""
        gen = self.eval_generator if evaluation else self.reading_generator
        return read(self.ref_g_us, self.device_model, generator=gen)

    def _save_to_state_dict(self, destination: Any, prefix: str, keep_vars: bool) -> None:
        self.flush()
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def get_extra_state(self) -> dict[str, Any]:
        return {
            **{name: gen.get_state() for name, gen in self._generators().items()},
            "generator_device": str(self.generator.device),
            "ref_load_pulses": self.ref_load_pulses,
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        saved_on = torch.device(state.get("generator_device", "cpu"))
        for name, gen in self._generators().items():
            if name not in state:
                # A checkpoint from before the split holds one generator: the read streams
                # keep their seeded state (the resumed run's reads differ from the old code's).
                continue
            if saved_on.type == gen.device.type:
                gen.set_state(state[name].cpu() if gen.device.type == "cpu" else state[name])
            else:  # saved on another kind of device (map_location): a seed from its state
                setattr(self, name, _generator_on(gen.device, _seed_from_state(state[name])))
        self.ref_load_pulses = int(state.get("ref_load_pulses", self.ref_load_pulses))

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: Any,
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        key = prefix + "g_us"
        if key in state_dict and state_dict[key].numel() != self.g_us.numel():
            error_msgs.append(
                f"the checkpoint's crossbar holds {state_dict[key].numel()} weight cells, this "
                f"one {self.g_us.numel()}: build the same network and, for Tiki-Taka, its "
                "optimizer (which places the fast arrays) before loading the state"
            )
            return
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    # -------------------------------------------------------------------- placing
    def _scheme(
        self, state: CellState, target: Tensor, mask: Tensor, params: CellParams, scheme: str
    ) -> Any:
        return get_scheme(scheme).fn(
            state,
            target,
            mask,
            self.device_model,
            params,
            generator=self.generator,
            **self.scheme_options,
        )

    def add_tile(self, name: str, weight: Tensor, *, transposed: bool = False) -> Tile:
        """Place ``weight`` on the arrays, program the new reference cells, load the weight
        (`add_tiles` of one)."""
        return self.add_tiles([(name, weight, transposed)])[0]

    def add_tiles(
        self, specs: Sequence[tuple[str, Tensor, bool]], *, load: bool = True
    ) -> list[Tile]:
        """Place several weights at once: ``(name, weight, transposed)`` each, in order.
        ``load=False`` places them without loading the weights (only their shapes count): the
        cells stay fresh, for the caller to load (`eapu.tiles.siblings`).

        Every block is placed first; then the reference cells the new array rows need are
        drawn and programmed, the buffers grow once and the new weight cells' device-to-device
        draw is made, and every weight is loaded in one flush of the load scheme (cells in
        chunks of `_CHUNK`, each drawn and programmed in turn). A network's set-up is then
        linear in its weights (tile by tile, each tile grew every buffer: quadratic). The
        draws come in that order, so a seed gives the same crossbar for the same list of
        weights.
        """
        if not specs:
            return []
        self.flush()
        on = self.torch_device
        checked = []
        for name, weight, transposed in specs:
            rows, cols = matrix_shape(tuple(weight.shape), transposed)  # raises below 2-d
            w = weight.detach().to(on, torch.float32)
            if not bool(w.isfinite().all()):  # set-up time: a check may wait for the device
                raise ValueError(f"Invalid weight: tile {name!r} got NaN or Inf to load")
            checked.append((name, w, transposed, rows, cols))
        placed = []
        for name, w, transposed, rows, cols in checked:
            unit = 1 if transposed else math.prod(w.shape[2:])
            placed.append(self.placement.add(name, rows, cols, row_unit=unit))
        if self.mapping == "reference_column":
            need = self.placement.reference_cells - self.ref_g_us.numel()
            if need > 0:
                self._grow_reference(need)
        per = 2 if self.mapping == "differential" else 1
        sizes = [per * w.numel() for _, w, *_ in checked]
        offset = self._new_cells(sum(sizes), len(checked))
        n_weights = self.weight_ref_index.numel()
        ref_index = _grown(self.weight_ref_index, sum(w.numel() for _, w, *_ in checked))
        segment = _grown(self.cell_segment, sum(sizes))
        tiles = []
        for (name, w, transposed, *_), blocks, size in zip(checked, placed, sizes, strict=True):
            tile = Tile(
                self,
                name,
                tuple(w.shape),
                blocks,
                transposed=transposed,
                offset=offset,
                weights_offset=n_weights,
                segment_offset=self.segments,
            )
            tile.layout(
                ref_index[n_weights : n_weights + w.numel()], segment[offset : offset + size]
            )
            offset += size
            n_weights += w.numel()
            self.segments += tile.segments
            self.tiles.append(tile)
            tiles.append(tile)
        self.weight_ref_index, self.cell_segment = ref_index, segment
        if load:
            for tile, (_, w, *_) in zip(tiles, checked, strict=True):
                tile.load_record = tile.load(w)  # queued: one call of the load scheme for all
            self.flush()
        return tiles

    def _fresh_cells(self, n: int) -> Iterator[tuple[slice, CellParams, CellState]]:
        """The device-to-device draw and the fresh state of ``n`` new cells, in chunks of
        `_CHUNK` (no tensor of a whole network's cells is drawn at once)."""
        dev, on = self.device_model, self.torch_device
        for lo in range(0, n, _CHUNK):
            hi = min(n, lo + _CHUNK)
            params = dev.sample((hi - lo,), generator=self.generator, device=on)
            yield slice(lo, hi), params, CellState.initial(dev, params)

    def _grow_reference(self, n: int) -> None:
        """Draw and program ``n`` new reference cells (array rows fill in placement order,
        so they are appended)."""
        old = self.ref_g_us.numel()
        names = ["ref_g_us", *(f"ref_{f}" for f in self.cell_fields)]
        for name in names:
            setattr(self, name, _grown(getattr(self, name), n))
        for at, params, state in self._fresh_cells(n):
            target = torch.full((at.stop - at.start,), self.g_ref_us, device=self.torch_device)
            ones = torch.ones_like(target, dtype=torch.bool)
            res = self._scheme(state, target, ones, params, self.load_scheme)
            cells = slice(old + at.start, old + at.stop)
            self.ref_g_us[cells] = res.state.g_us
            for f, t in params.items():
                getattr(self, f"ref_{f}")[cells] = t
            self.ref_load_pulses += int(res.pulses.sum())

    def _new_cells(self, n: int, tiles: int) -> int:
        """Grow the buffers by ``n`` fresh cells of ``tiles`` new tiles (one after another)
        and draw them; returns the first one's offset."""
        offset = self.g_us.numel()
        names = ["g_us", "gate", "writes", *(f"cell_{f}" for f in self.cell_fields)]
        for name in names:
            setattr(self, name, _grown(getattr(self, name), n))
        self.writes[offset:].zero_()
        self.tile_clipped = torch.cat(
            [self.tile_clipped, torch.zeros(tiles, dtype=torch.int64, device=self.torch_device)]
        )
        for at, params, state in self._fresh_cells(n):
            cells = slice(offset + at.start, offset + at.stop)
            self.g_us[cells] = state.g_us
            self.gate[cells] = state.gate
            for f, t in params.items():
                getattr(self, f"cell_{f}")[cells] = t
        return offset

    # ------------------------------------------------------------------- writing
    def enqueue(
        self,
        tile: Tile,
        target: Tensor,
        mask: Tensor | None,
        scheme: str,
        *,
        skipped: Tensor | None = None,
        load: Tensor | None = None,
        cells: Tensor | None = None,
    ) -> Tensor:
        """Queue a write of ``tile``: its masked cells (None: all) to ``target`` (µS) with
        ``scheme``; or, with ``cells`` (the flat positions of the cells to write in the tile,
        and ``mask`` None), those cells to ``target`` (one value each).

        Returns the write's ledger row (int64, `eapu.ledger.FIELDS`), filled in by `flush`.
        Writes of one scheme to distinct tiles wait together (an optimizer step's writes go
        to the scheme at once); a write with another scheme, or to a tile already waiting,
        flushes the queue first. ``skipped``: cells left out of the write (non-finite updates),
        counted in the row. ``load``: the weight of a load (`Tile.load`), whose targets beyond
        the window are warned about when it runs.
        """
        if self._pending and (
            scheme != self._pending_scheme or any(w.tile is tile for w in self._pending)
        ):
            self.flush()
        row = torch.zeros(len(FIELDS), dtype=torch.int64, device=self.torch_device)
        if skipped is not None:
            row[_SKIPPED] = skipped.sum()
        flat = None if mask is None else mask.reshape(-1)
        self._pending.append(_Write(tile, target.reshape(-1), flat, row, load, cells))
        self._pending_scheme = scheme
        return row

    def flush_if_pending(self, tile: Tile) -> None:
        """Flush the queue if ``tile`` is waiting in it."""
        if any(w.tile is tile for w in self._pending):
            self.flush()

    def flush(self) -> None:
        """Run the queued writes: one call of the scheme for all of them.

        Host-checked (CPU): only the cells to write go to the scheme (EaPU writes a few
        percent), gathered from every queued tile. Sync-free (`eapu.runtime.sync_free`):
        the scheme gets the whole span of the queued tiles with a mask, so no shape depends
        on the data. Either way the cells written, their pulses, verify reads, failures and
        the row segments they touched are counted per write, as tensors.
        """
        if not self._pending:
            return
        writes, scheme = self._pending, self._pending_scheme
        self._pending, self._pending_scheme = [], None
        assert scheme is not None
        if sync_free(self.g_us):
            self._flush_masked(writes, scheme)
        else:
            self._flush_gathered(writes, scheme)

    def beyond_window(self, target: Tensor) -> Tensor:
        """Where a target conductance lies outside the device window. A weight at the edge
        (e.g. a Tiki-Taka symmetry point clamped there) misses it by float32 rounding, some
        1e-5 µS, after the round trip through weight units: a miss under 1e-6 of g_max is
        not beyond."""
        dev = self.device_model
        tol = 1e-6 * dev.g_max_us
        return (target < dev.g_min_us - tol) | (target > dev.g_max_us + tol)

    def _flush_gathered(self, writes: list[_Write], scheme: str) -> None:
        # Per write, the tile's cells to write (None: all of them, a load) and their targets.
        idx: list[Tensor | None] = []
        targets = []
        for w in writes:
            if w.cells is not None or w.mask is None:
                idx.append(w.cells)
                targets.append(w.target)
            else:
                listed = positions(w.mask)
                idx.append(listed)
                targets.append(w.target.index_select(0, listed))
        sizes = [w.tile.size if i is None else i.numel() for i, w in zip(idx, writes, strict=True)]
        if not sum(sizes):
            return
        on = self.torch_device
        every = self.cell_params
        # written, pulses, reads, failed, beyond the window, per write
        per = torch.zeros(len(writes), 5, dtype=torch.int64, device=on)
        hit = torch.zeros(self.segments, dtype=torch.int32, device=on)
        # The cells in chunks, one call of the scheme each: cells are independent, a chunk's
        # tensors stay in the cache through the rounds of its pulse loop, and no tensor of
        # the whole write (a network's load: every cell) is made.
        for pieces in _chunks(sizes, _CHUNK):
            pos = []
            for k, lo, hi in pieces:
                some = idx[k]
                at = torch.arange(lo, hi, device=on) if some is None else some[lo:hi]
                pos.append(at + writes[k].tile.offset)
            cells = torch.cat(pos)
            wanted = torch.cat([targets[k][lo:hi] for k, lo, hi in pieces])
            item = torch.repeat_interleave(
                torch.tensor([k for k, _, _ in pieces], device=on),
                torch.tensor([hi - lo for _, lo, hi in pieces], device=on),
            )
            params = CellParams(
                **{f: t.index_select(0, cells) for f, t in every.items() if f in CellParams.FIELDS},
                extra={f: t.index_select(0, cells) for f, t in every.extra.items()},
            )
            state = CellState(
                g_us=self.g_us.index_select(0, cells), gate=self.gate.index_select(0, cells)
            )
            ones = torch.ones_like(cells, dtype=torch.bool)
            res = self._scheme(state, wanted, ones, params, scheme)
            self.g_us.index_copy_(0, cells, res.state.g_us.to(self.g_us.dtype))
            self.gate.index_copy_(0, cells, res.state.gate.to(self.gate.dtype))
            # "written" counts the cells that took at least one pulse: a verified scheme may
            # find a requested cell already within tolerance and leave it alone. The device
            # cannot hold the targets beyond its window (its physics stops at the edge): they
            # are counted.
            pulsed = res.pulses > 0
            self.writes.index_add_(0, cells, pulsed.to(torch.int32))
            beyond = self.beyond_window(wanted)
            counts = torch.stack([pulsed, res.pulses, res.reads, res.failed, beyond], 1)
            per.index_add_(0, item, counts.to(torch.int64))
            hit.index_add_(0, self.cell_segment.index_select(0, cells), pulsed.to(torch.int32))
        tiles = torch.tensor([w.tile.index for w in writes], device=on)
        self.tile_clipped.index_add_(0, tiles, per[:, 4])
        self._warn_loads(writes, per[:, 4])
        self._fill(writes, per[:, :4], hit)

    def _flush_masked(self, writes: list[_Write], scheme: str) -> None:
        lo = min(w.tile.offset for w in writes)
        hi = max(w.tile.offset + w.tile.size for w in writes)
        g, gate = self.g_us[lo:hi], self.gate[lo:hi]
        target = g.clone()
        mask = torch.zeros_like(g, dtype=torch.bool)
        for w in writes:
            a, b = w.tile.offset - lo, w.tile.offset - lo + w.tile.size
            if w.cells is not None:  # the listed cells
                target.index_copy_(0, w.cells + a, w.target.to(g.dtype))
                mask[w.cells + a] = True
            elif w.mask is None:  # every cell (a load)
                target[a:b] = w.target.to(g.dtype)
                mask[a:b] = True
            else:
                target[a:b] = torch.where(w.mask, w.target.to(g.dtype), g[a:b])
                mask[a:b] = w.mask
        beyond = self.beyond_window(target) & mask
        if any(w.load is not None for w in writes):  # set-up: the warning may wait for the device
            per_write = [beyond[w.tile.offset - lo :][: w.tile.size].sum() for w in writes]
            self._warn_loads(writes, torch.stack(per_write))
        params = self.cell_params.select(slice(lo, hi))
        res = self._scheme(CellState(g_us=g, gate=gate), target, mask, params, scheme)
        g.copy_(res.state.g_us.to(g.dtype))
        gate.copy_(res.state.gate.to(gate.dtype))
        pulsed = res.pulses > 0
        self.writes[lo:hi] += pulsed.to(torch.int32)
        counts = torch.stack([pulsed, res.pulses, res.reads, res.failed, beyond], 1)
        counts = counts.to(torch.int64)
        per = torch.stack(
            [counts[w.tile.offset - lo : w.tile.offset - lo + w.tile.size].sum(0) for w in writes]
        )
        tiles = torch.tensor([w.tile.index for w in writes], device=g.device)
        self.tile_clipped.index_add_(0, tiles, per[:, 4])
        hit = torch.zeros(self.segments, dtype=torch.int32, device=g.device)
        hit.index_add_(0, self.cell_segment[lo:hi], pulsed.to(torch.int32))
        self._fill(writes, per[:, :4], hit)

    def _warn_loads(self, writes: list[_Write], beyond: Tensor) -> None:
        """Warn for each load among ``writes`` with targets beyond the window (``beyond``:
        their number per write)."""
        loads = [k for k, w in enumerate(writes) if w.load is not None]
        if not loads:
            return
        counts = beyond[loads].tolist()
        for k, n in zip(loads, counts, strict=True):
            if n:
                w = writes[k]
                assert w.load is not None
                w.tile.warn_clipped(int(n), w.target, w.load)

    def _fill(self, writes: list[_Write], per: Tensor, hit: Tensor) -> None:
        """Each write's row: its counts and the row segments of its tile that were hit."""
        touched = (hit > 0).to(torch.int64).cumsum(0)
        start = torch.tensor(
            [w.tile.segment_offset for w in writes], device=hit.device, dtype=torch.int64
        )
        end = start + torch.tensor([w.tile.segments for w in writes], device=hit.device)
        padded = torch.cat([touched.new_zeros(1), touched])
        rows_hit = padded[end] - padded[start]
        for k, w in enumerate(writes):
            w.row[: _FAILED + 1] = per[k]
            w.row[_ROWS] = rows_hit[k]


def _grown(buf: Tensor, n: int) -> Tensor:
    """``buf`` followed by room for ``n`` more elements (uninitialised)."""
    out = torch.empty(buf.numel() + n, dtype=buf.dtype, device=buf.device)
    out[: buf.numel()] = buf
    return out


def _chunks(sizes: list[int], chunk: int) -> Iterator[list[tuple[int, int, int]]]:
    """The cells of writes of ``sizes`` cells, one write after another, in chunks of at most
    ``chunk``: per chunk its pieces ``(write, first, stop)``."""
    pieces: list[tuple[int, int, int]] = []
    room = chunk
    for k, n in enumerate(sizes):
        lo = 0
        while lo < n:
            hi = min(n, lo + room)
            pieces.append((k, lo, hi))
            room -= hi - lo
            lo = hi
            if not room:
                yield pieces
                pieces, room = [], chunk
    if pieces:
        yield pieces


@dataclass
class _Write:
    """A queued write: the tile, its flat target (µS) and mask (None: every cell) or the
    cells it lists, and the row to fill."""

    tile: Tile
    target: Tensor
    mask: Tensor | None  # None: every cell of the tile
    row: Tensor
    load: Tensor | None = None  # the weight of a load
    cells: Tensor | None = None  # the flat positions of the cells to write (target: theirs)
