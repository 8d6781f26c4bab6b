"""What every in-situ algorithm of `eapu.algorithms` shares: `TileAlgorithm` (the skeleton
on `eapu.optim.InSituBase`), the writes onto a tile, and the registry (`ALGORITHMS`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from ..ledger import FIELDS
from ..optim import InSituBase, default_seed
from ..registry import Registry
from ..runtime import sync_free
from ..seam import AnalogTile
from ..tiles import matrix_shape

__all__ = [
    "ALGORITHMS",
    "AlgorithmInfo",
    "TileAlgorithm",
    "analog_tile",
    "get_algorithm",
    "granularity",
    "line_index",
    "list_algorithms",
    "program_with",
    "pulse_train_on",
    "register_algorithm",
]

_S = FIELDS.index("skipped")


def program_with(tile: AnalogTile, dw: Tensor, scheme: str, *, flush: bool = True) -> Tensor:
    """Write ΔW (weight units; 0 = untouched) to ``tile`` with ``scheme``; the ledger row,
    final when ``flush`` (else filled in when the tile's writes are flushed: the step's
    writes then go to the scheme together)."""
    row = tile.program(dw, scheme=scheme)
    if flush:
        tile.flush()
    return row


def pulse_train_on(
    tile: AnalogTile, n: Tensor, eps: float, scheme: str, *, flush: bool = True
) -> Tensor:
    """Move every cell by ``n`` (signed integer tensor) steps of ``eps`` weight units.

    With the ``sign`` scheme (one identical pulse per write) the n steps are n pulses of the
    device, whatever ``eps``, sent as one `eapu.programming.pulse_train`; any other scheme is
    asked once for the target ``n·eps`` and spends the pulses it needs. ``written`` counts
    distinct cells pulsed.
    """
    n = n.detach()
    if not sync_free(n) and not bool(n.any()):  # (sync-free: an all-zero train writes nothing)
        return torch.zeros(len(FIELDS), dtype=torch.int64, device=n.device)
    if scheme != "sign":
        return program_with(tile, n.to(torch.float32) * eps, scheme, flush=flush)
    # pulse_train counts a change in nominal SET steps; a differential pair splits a change
    # between its two cells, so each of them takes n pulses.
    pair = tile.cells_per_weight
    dw = n.to(torch.float32) * (granularity(tile) * pair)
    return program_with(tile, dw, "pulse_train", flush=flush)


def analog_tile(p: Tensor) -> AnalogTile:
    """The tile behind an analog parameter (set by `eapu.nn`)."""
    return getattr(p, "eapu_tile")  # noqa: B009 (a dynamic attribute: keeps mypy honest)


def granularity(tile: AnalogTile) -> float:
    """One SET pulse's mean step at the window centre, in weight units."""
    return tile.rwg_per_us * tile.pulse_step_us


def line_index(tile: AnalogTile) -> Tensor:
    """For each weight, the index of its input line (a row of the crossbar matrix).

    Reading line ``i`` is one forward read with the one-hot input e_i: for an ``nn.Linear``
    weight (out, in) it is the column W[:, i].
    """
    rows, cols = matrix_shape(tile.shape, tile.transposed)
    idx = torch.arange(rows).unsqueeze(1).expand(rows, cols)
    return idx.reshape(tile.shape) if tile.transposed else idx.t().reshape(tile.shape)


# ------------------------------------------------------------------------- the shared base
class TileAlgorithm(InSituBase):
    """A base optimizer proposes ΔW; subclasses decide how tile-backed parameters change.

    The skeleton is `eapu.optim.InSituBase`'s, the same as `InSituOptimizer`'s: shared
    ``param_groups`` and ``state`` (LR schedulers work), ``self.ledger``, the closure passed
    to a base that needs it, the optimizer's own state under ``state_dict()["algorithm"]``.
    It adds ``self.generator`` (CPU, seeded by ``seed``; None draws the seed from torch's
    global generator) and one slot of algorithm state per analog parameter; see the module
    docstring for the contract.

    Subclasses implement ``_slot(p)`` (create or return the slot), ``_update(p, dw, group)``
    (write ΔW, or None when ``p`` had no gradient; return its ledger rows), ``_slot_state``
    and ``_load_slot_state``, and may override ``_cells(p)``, `forward_weight` and
    ``_after_updates`` (writes that follow every parameter's update, e.g. Tiki-Taka's
    transfers). Rows may be filled in lazily: a step's writes to the crossbar wait in its
    queue and run together when the parameters take their new values, after every update.
    """

    STATE_KEY = "algorithm"
    _OWN_KEYS: tuple[str, ...] = ()

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base: type[Optimizer],
        *,
        seed: int | None,
        defaults: dict[str, Any],
        base_kwargs: dict[str, Any],
    ) -> None:
        seed = default_seed(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self._device_generators: dict[str, torch.Generator] = {}
        self._steps = 0
        self._slots: dict[int, Any] = {}  # id(param) -> algorithm state (a dict or a record)
        super().__init__(params, base, defaults=defaults, base_kwargs=base_kwargs, seed=seed)
        for p in self.analog_parameters():
            self._slot(p)

    def _own_keys(self) -> tuple[str, ...]:
        return self._OWN_KEYS

    def generator_for(self, device: torch.device) -> torch.Generator:
        """The optimizer's generator on ``device``: ``self.generator`` on the CPU, another
        seeded from the same seed elsewhere (saved in ``state_dict`` too)."""
        if device.type == "cpu":
            return self.generator
        key = str(device)
        g = self._device_generators.get(key)
        if g is None:
            g = torch.Generator(device=device).manual_seed(self._seed)
            self._device_generators[key] = g
        return g

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        if self._base is not None:
            for p in param_group["params"]:
                if getattr(p, "eapu_tile", None) is not None:
                    self._slot(p)

    def is_analog(self, p: Tensor, group: dict[str, Any]) -> bool:
        """Tile-backed parameters are analog; every other one is updated digitally."""
        return getattr(p, "eapu_tile", None) is not None

    def cells_of(self, p: Tensor) -> int:
        return self._cells(p)

    def _group_of(self, p: Tensor) -> dict[str, Any]:
        return next(g for g in self.param_groups if any(q is p for q in g["params"]))

    # -- to implement
    def _slot(self, p: Tensor) -> Any:
        raise NotImplementedError

    def _cells(self, p: Tensor) -> int:
        return int(analog_tile(p).cells)

    def _update(self, p: Tensor, dw: Tensor | None, group: dict[str, Any]) -> list[Tensor]:
        raise NotImplementedError

    def _after_updates(self, params: list[Tensor]) -> dict[int, list[Tensor]]:
        """More ledger rows by parameter id, from writes after every ``_update`` (none)."""
        return {}

    def _slot_state(self, slot: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _load_slot_state(self, slot: Any, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # -- the step
    def _apply(
        self, work: list[tuple[dict[str, Any], Tensor]], digital: list[Tensor], propose: Any
    ) -> dict[int, Any]:
        with_grad = [p for _, p in work] + digital
        checked = not (with_grad and sync_free(with_grad[0]))  # host-checked, or masked work
        bad: dict[int, Tensor] = {}
        for p in with_grad:
            assert p.grad is not None
            mask = ~p.grad.isfinite()
            if not checked or bool(mask.any()):  # such a cell keeps its value (skipped)
                p.grad.masked_fill_(mask, 0)
                bad[id(p)] = mask
        olds = {id(p): p.clone() for p in with_grad}
        propose()
        self._steps += 1
        lists: dict[int, list[Tensor]] = {}
        skipped_of: dict[int, Tensor | int] = {}
        analog = self.analog_parameters()
        for p in analog:
            dw: Tensor | None = None
            skipped: Tensor | int = 0
            if id(p) in olds:
                old = olds[id(p)]
                dw = p.sub(old)
                skip = ~dw.isfinite()
                if id(p) in bad:
                    skip |= bad[id(p)]
                dw.masked_fill_(skip, 0)
                skipped = skip.sum()
                p.copy_(old)
            lists[id(p)] = self._update(p, dw, self._group_of(p))
            skipped_of[id(p)] = skipped
        for key, more in self._after_updates(analog).items():
            lists[key] = lists[key] + more
        for p in analog:  # every parameter takes its cells' values: the queued writes run
            analog_tile(p).publish(p, self.forward_weight(p))
        rows: dict[int, Any] = {}
        for p in analog:
            row = torch.zeros(len(FIELDS), dtype=torch.int64, device=p.device)
            for r in lists[id(p)]:
                row += r.to(row.device)
            row[_S] += skipped_of[id(p)]
            rows[id(p)] = row
        for p in digital:  # digital cells with a non-finite gradient or proposal stay put
            keep = ~p.isfinite()
            if id(p) in bad:
                keep |= bad[id(p)]
            if not checked or bool(keep.any()):
                torch.where(keep, olds[id(p)], p, out=p)
        return rows

    # -- state_dict
    def _own_state(self) -> dict[str, Any]:
        return {
            "seed": self._seed,
            "generator": self.generator.get_state(),
            "device_generators": {k: g.get_state() for k, g in self._device_generators.items()},
            "steps": self._steps,
            "ledger": self.ledger.state_dict(),
            "slots": [self._slot_state(self._slots[id(p)]) for p in self.analog_parameters()],
        }

    def _load_own_state(self, algo: dict[str, Any]) -> None:
        analog = self.analog_parameters()
        if len(algo["slots"]) != len(analog):
            raise ValueError(
                f"state_dict holds {len(algo['slots'])} analog parameters, this "
                f"optimizer has {len(analog)}"
            )
        self._seed = int(algo["seed"])
        self.generator.set_state(algo["generator"])
        for key, st in algo.get("device_generators", {}).items():
            self.generator_for(torch.device(key)).set_state(st)
        self._steps = int(algo["steps"])
        self.ledger.load_state_dict(algo["ledger"])
        for p, st in zip(analog, algo["slots"], strict=True):
            self._load_slot_state(self._slot(p), st)
            analog_tile(p).publish(p, self.forward_weight(p))

    def forward_weight(self, p: Tensor) -> Tensor:
        """The value analog parameter ``p`` holds for the forward pass: its tile's weight
        (an algorithm with more than one array says how they combine)."""
        return analog_tile(p).weight()


# ------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class AlgorithmInfo:
    """A registered in-situ algorithm: its optimizer class, one line about it, and the run
    options it takes (``eapu run --fast-lr`` ...: each a keyword of ``cls`` with its
    default), which a run's config checks a method against."""

    name: str
    cls: type[TileAlgorithm]
    description: str
    options: Mapping[str, Any] = field(default_factory=dict)


#: The in-situ algorithms other than EaPU; packages add theirs under ``eapu.algorithms``.
ALGORITHMS: Registry[AlgorithmInfo] = Registry(
    "algorithm", entry_point_group="eapu.algorithms", sort=False
)


def register_algorithm(
    name: str, description: str, *, options: Mapping[str, Any] | None = None
) -> Callable[[type[TileAlgorithm]], Any]:
    """Register an optimizer class as algorithm ``name`` (a class decorator); ``options``
    names the run options it takes, each a keyword of the class, with its default."""

    def deco(cls: type[TileAlgorithm]) -> type[TileAlgorithm]:
        ALGORITHMS.add(name, AlgorithmInfo(name, cls, description, dict(options or {})))
        return cls

    return deco


def get_algorithm(name: str) -> type[TileAlgorithm]:
    """The optimizer class registered as ``name``."""
    return ALGORITHMS.get(name).cls


def list_algorithms() -> list[str]:
    """Names of the registered algorithms, in registration order."""
    return ALGORITHMS.names()
