"""The programming seam: what every scheme takes and returns (`CellState`,
`ProgramResult`), its first and last lines (`prepare_write`, `finish_write`), the usual option
checks, and the registry of schemes (`SCHEMES`, `register_scheme`, `get_scheme`)."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from torch import Tensor

from .. import validate
from ..devices import CellParams, Device, initial_conductance, relax
from ..registry import Registry
from ..runtime import round_done, sync_free

__all__ = [
    "MIN_BUDGET",
    "SCHEMES",
    "CellState",
    "ProgramResult",
    "SchemeInfo",
    "WorkingSet",
    "check_budget",
    "check_tolerance",
    "default_budget",
    "finish_write",
    "full_swing_pulses",
    "get_scheme",
    "list_schemes",
    "positions",
    "prepare_write",
    "register_scheme",
    "zero_counts",
]


@dataclass
class CellState:
    """What a controller knows of a tensor of cells."""

    g_us: Tensor
    """Present conductance of each cell (µS)."""
    gate: Tensor
    """int32 gate level of each cell's last gate-controlled SET; -1 if unknown."""

    def __post_init__(self) -> None:
        if self.g_us.shape != self.gate.shape:
            raise ValueError(
                f"gate has shape {tuple(self.gate.shape)}, g_us has {tuple(self.g_us.shape)}"
            )

    @classmethod
    def initial(
        cls, device: Device, params: CellParams, *, dtype: torch.dtype = torch.float32
    ) -> CellState:
        """A fresh array: `initial_conductance` and unknown gate positions."""
        g = initial_conductance(params.shape, device, params, dtype=dtype)
        return cls(g_us=g, gate=torch.full(g.shape, -1, dtype=torch.int32, device=g.device))

    def clone(self) -> CellState:
        """A deep copy."""
        return CellState(g_us=self.g_us.clone(), gate=self.gate.clone())

    def state_dict(self) -> dict[str, Tensor]:
        """The state as a dict of tensors (copies), for checkpoints."""
        return {"g_us": self.g_us.clone(), "gate": self.gate.clone()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> CellState:
        """Rebuild from `state_dict` output."""
        return cls(g_us=state["g_us"].clone(), gate=state["gate"].clone())


@dataclass
class ProgramResult:
    """Outcome of programming a tensor of cells."""

    state: CellState
    """Cells after programming and relaxation."""
    pulses: Tensor
    """int32 programming pulses per cell (a RESET + SET pair counts 2)."""
    reads: Tensor
    """int32 verify reads per cell."""
    failed: Tensor
    """bool per cell: a verified scheme ended outside tolerance (judged on the programmed
    value before relaxation, without read noise); always False for unverified schemes."""
    g_programmed_us: Tensor
    """Conductance right after programming, before relaxation (µS)."""


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def prepare_write(
    state: CellState, target_us: Tensor, mask: Tensor, device: Device, params: CellParams
) -> Tensor:
    """Validate a scheme's common arguments; return the target clamped to the window.

    The first line of every scheme: shapes must match the state, ``mask`` must be bool and
    the masked targets finite (else `ValueError`); cells outside the mask get their present
    conductance as target, so a scheme that writes where ``target != g`` leaves them alone.
    """
    shape = state.g_us.shape
    for name, t in (("target_us", target_us), ("mask", mask)):
        if t.shape != shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, state has {tuple(shape)}")
    if params.shape != shape:
        raise ValueError(f"params has shape {tuple(params.shape)}, state has {tuple(shape)}")
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor, got dtype {mask.dtype}")
    bad = ~torch.isfinite(target_us) & mask
    if not sync_free(bad) and bool(bad.any()):  # (sync-free: the caller masks them out)
        raise ValueError(
            f"target_us must be finite where mask is set; got {int(bad.sum())} NaN/Inf values"
        )
    t = torch.where(mask, target_us.to(state.g_us.dtype), state.g_us)
    return t.clamp(device.g_min_us, device.g_max_us)


def check_tolerance(tolerance_us: float | None, device: Device) -> float:
    """A verify tolerance option (µS): ``device.program_tolerance_us`` when None, else a
    finite number > 0 (`ValueError` otherwise)."""
    tol = device.program_tolerance_us if tolerance_us is None else tolerance_us
    return validate.number("tolerance_us", tol, low=0, low_open=True)


def check_budget(max_pulses: int | None, device: Device | None = None) -> int:
    """A pulse budget option: an int >= 0 (`ValueError` otherwise); None, with ``device``,
    its `default_budget`."""
    if max_pulses is None and device is not None:
        return default_budget(device)
    return validate.integer("max_pulses", max_pulses, low=0)


@functools.lru_cache(maxsize=64)
def full_swing_pulses(device: Device) -> int:
    """Identical pulses a nominal cell (no spread, no noise) takes to cross 98 % of the window,
    in its slower direction (SET from g_min, or RESET from g_max): what write-verify from an
    arbitrary state to an arbitrary target needs at most."""
    one = torch.ones(1, dtype=torch.float64)
    cell = CellParams(
        step_up_scale=one,
        step_down_scale=one,
        gate_v_th_v=one * device.gate_v_th_v,
        gate_gain=one,
        stuck=torch.zeros(1, dtype=torch.int8),
    )
    zero = torch.zeros(1, dtype=torch.float64)
    worst = 0
    for pol, start, stop in ((1.0, 0.0, 0.99), (-1.0, 1.0, 0.01)):
        g = float(device.g_min_us + start * device.span_us)
        end = device.g_min_us + stop * device.span_us
        n = 0
        while (g < end if pol > 0 else g > end) and n < _SWING_CAP:
            step = float(
                device.pulse_step_us(torch.tensor([g], dtype=torch.float64), one * pol, cell, zero)
            )
            if step == 0.0:  # the cell halts short of the far end: its swing is what it has
                break
            g = min(max(g + step, device.g_min_us), device.g_max_us)
            n += 1
        worst = max(worst, n)
    return worst


#: No device's default budget exceeds this many pulses per write.
_SWING_CAP = 20_000
#: The smallest default budget (the paper's controllers: tens of pulses per update).
MIN_BUDGET = 100


def default_budget(device: Device) -> int:
    """The pulse budget of a write-verify write when none is given: 1.2 full swings of the
    device (`full_swing_pulses`), and at least `MIN_BUDGET` (100 on the paper's cell, whose
    swing is 83 pulses; a fitted device whose ramps take 170 pulses gets 204)."""
    return max(MIN_BUDGET, math.ceil(1.2 * full_swing_pulses(device)))


def zero_counts(like: Tensor) -> Tensor:
    """int32 zero counters (pulses, reads) shaped like ``like``, on its device."""
    return torch.zeros(like.shape, dtype=torch.int32, device=like.device)


S = TypeVar("S")


class WorkingSet(Generic[S]):
    """The cells a pulse loop still works on, and its per-cell state over them.

    ``state`` is a dataclass whose fields are the loop's per-cell values: tensors shaped like
    the cells, `CellParams` (or other dataclasses of such tensors, or None), and a bool tensor
    ``active`` (the cells the next round works on).
    The loop reads and assigns the fields of `cells`, runs a round, and asks `done` last (no
    tensor of the round is used after it: the cells may have been gathered anew); `result`
    gives back ``state`` with every cell's final values in the fields named in ``results``
    (default: all; the others are the loop's own).

    Host-checked path (`eapu.runtime`): `cells` holds only the cells given as ``cells``,
    gathered (1-D); after a round in which at most half of them are still active (and at
    least `_MIN_GONE` are not), the others leave (their results are written into ``state``)
    and the rest are gathered anew. A round
    then costs what the cells still being written need, not a round of every cell until the
    slowest one is done (a load by memorial programming: about 7 rounds of every cell instead
    of some 50). Sync-free path: `cells` is ``state`` itself, every cell throughout, and
    `done` is `eapu.runtime.round_done` (fixed shapes, masked work). Both paths run the same
    loop, so its masks must leave an inactive cell untouched, as on the sync-free path.

    ``state``'s tensors are the loop's own: the cells leaving are written into them in place.
    """

    def __init__(self, state: S, cells: Tensor, results: Sequence[str] | None = None) -> None:
        self._state = state
        names = [f.name for f in dataclasses.fields(state)]  # type: ignore[arg-type]
        self._results = names if results is None else list(results)
        self._sync_free = sync_free(cells)
        self._ids: Tensor | None = None  # the working cells' flat positions (None: all)
        self.cells: S = state
        if not self._sync_free:
            if bool(cells.all()):  # every cell works: views, no copy
                parts = _gather(state, None, names)
            else:
                self._ids = positions(cells)
                parts = _gather(state, self._ids, names)
            self.cells = dataclasses.replace(state, **parts)  # type: ignore[type-var]

    def done(self, rnd: int) -> bool:
        """Whether the loop can stop after round ``rnd`` (0-based): no cell is active. The
        last call of a round: the fields of `cells` may be gathered anew (the object stays)."""
        active: Tensor = self.cells.active  # type: ignore[attr-defined]
        if self._sync_free:
            return round_done(active, rnd)
        left = int(active.sum())
        if left == 0:
            return True
        gone = active.numel() - left
        if 2 * left <= active.numel() and gone >= _MIN_GONE:
            out = positions(~active)
            ids = out if self._ids is None else self._ids.index_select(0, out)
            _scatter(self._state, ids, _gather(self.cells, out, self._results))
            kept = positions(active)
            names = [f.name for f in dataclasses.fields(self.cells)]  # type: ignore[arg-type]
            for name, part in _gather(self.cells, kept, names).items():
                setattr(self.cells, name, part)
            self._ids = kept if self._ids is None else self._ids.index_select(0, kept)
        return False

    def result(self) -> S:
        """``state`` with the final values of every cell (call once, after the loop)."""
        if self._sync_free:
            return self._state
        parts = _gather(self.cells, None, self._results)
        if self._ids is None:  # every cell stayed: the loop's tensors are the result
            for name, part in parts.items():
                old = getattr(self._state, name)
                setattr(self._state, name, part.view(old.shape))
        else:
            _scatter(self._state, self._ids, parts)
        return self._state


#: Fewer cells than this do not leave a working set: their rounds cost less than gathering
#: the others anew (a round of a pulse loop costs some 15 ns per cell, a gathering some 30
#: tensor operations of a few µs each).
_MIN_GONE = 4096


def positions(mask: Tensor) -> Tensor:
    """The flat positions (int64) of the set entries of a bool tensor.

    On the CPU numpy's ``flatnonzero``: torch's CPU ``nonzero`` branches per element, and a
    mask of random bits costs it about 6 ns per element, against 0.5 ns (torch 2.13, one
    core).
    """
    if mask.device.type != "cpu":
        return mask.reshape(-1).nonzero().squeeze(1)
    return torch.from_numpy(np.flatnonzero(mask.reshape(-1).numpy()))


def _gather(state: Any, idx: Tensor | None, names: Sequence[str]) -> dict[str, Any]:
    """The fields ``names`` of ``state`` (a dataclass of per-cell tensors, `CellParams`,
    dataclasses of per-cell tensors, None) at the flat cells ``idx`` (None: all of them, flat
    views)."""
    parts: dict[str, Any] = {}
    for name in names:
        v = getattr(state, name)
        if v is None:
            parts[name] = None
        elif isinstance(v, CellParams):
            parts[name] = _select_params(v, idx)
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):  # e.g. `SoftBound`
            own = [f.name for f in dataclasses.fields(v)]
            parts[name] = dataclasses.replace(v, **_gather(v, idx, own))
        else:
            flat = v.reshape(-1)
            parts[name] = flat if idx is None else flat.index_select(0, idx)
    return parts


def _select_params(params: CellParams, idx: Tensor | None) -> CellParams:
    """``params`` at the flat cells ``idx`` (None: all), by ``index_select`` (a quarter of the
    time of advanced indexing on the CPU)."""

    def take(t: Tensor) -> Tensor:
        return t.reshape(-1) if idx is None else t.reshape(-1).index_select(0, idx)

    std = {f: take(getattr(params, f)) for f in CellParams.FIELDS}
    return CellParams(**std, extra={k: take(v) for k, v in params.extra.items()})


def _scatter(state: Any, idx: Tensor, parts: dict[str, Any]) -> None:
    """Write ``parts``' tensors into ``state``'s at the flat cells ``idx``, in place."""
    for name, part in parts.items():
        getattr(state, name).view(-1).index_copy_(0, idx, part)


def finish_write(
    g_programmed_us: Tensor,
    gate: Tensor,
    pulses: Tensor,
    device: Device,
    params: CellParams,
    *,
    generator: torch.Generator,
    reads: Tensor | None = None,
    failed: Tensor | None = None,
) -> ProgramResult:
    """The last line of every scheme: relax the cells that got at least one pulse and pack
    the result.

    Args:
        g_programmed_us: conductance right after the pulses (µS).
        gate: int32 gate level per cell (-1 where a pulse made it unknown).
        pulses: int32 programming pulses per cell.
        device, params: the device and its cells.
        generator: source of the relaxation draw.
        reads: int32 verify reads per cell (default none).
        failed: bool per cell, ended outside tolerance (default none failed).
    """
    g = relax(g_programmed_us, device, params, generator=generator, mask=pulses > 0)
    return ProgramResult(
        state=CellState(g_us=g, gate=gate),
        pulses=pulses,
        reads=zero_counts(pulses) if reads is None else reads,
        failed=torch.zeros_like(pulses, dtype=torch.bool) if failed is None else failed,
        g_programmed_us=g_programmed_us,
    )


# --------------------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchemeInfo:
    """A registered programming scheme; calling it calls ``fn``."""

    name: str
    fn: Callable[..., ProgramResult]
    description: str
    verified: bool
    """True if the scheme reads back and reports failures."""

    def __call__(self, *args: Any, **kwargs: Any) -> ProgramResult:
        return self.fn(*args, **kwargs)


def _scheme_from_entry_point(name: str, fn: Any) -> SchemeInfo:
    if not callable(fn):
        raise TypeError(f"scheme plugin {name!r} is {fn!r}, not a scheme function")
    lines = (fn.__doc__ or "").strip().splitlines()
    return SchemeInfo(name, fn, lines[0] if lines else "", False)


#: Every programming scheme; installed packages add theirs under ``eapu.schemes``.
SCHEMES: Registry[SchemeInfo] = Registry(
    "scheme", entry_point_group="eapu.schemes", from_entry_point=_scheme_from_entry_point
)


def register_scheme(
    fn: Callable[..., ProgramResult] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    verified: bool = False,
) -> Any:
    """Register a scheme, as ``@register_scheme`` or ``@register_scheme(verified=True)``.

    The name defaults to the function's, the description to its docstring's first line.
    """

    def deco(f: Callable[..., ProgramResult]) -> Callable[..., ProgramResult]:
        key = name or f.__name__
        lines = (f.__doc__ or "").strip().splitlines()
        SCHEMES.add(key, SchemeInfo(key, f, description or (lines[0] if lines else ""), verified))
        return f

    return deco(fn) if fn is not None else deco


def get_scheme(name: str) -> SchemeInfo:
    """The registered scheme ``name`` (callable like the scheme function)."""
    return SCHEMES.get(name)


def list_schemes(pattern: str = "*") -> list[str]:
    """Sorted names of the registered schemes matching the fnmatch ``pattern``."""
    return SCHEMES.names(pattern)
