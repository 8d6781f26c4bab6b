"""`InSituBase`: the skeleton every in-situ optimizer shares (`InSituOptimizer` and the
algorithms of `eapu.algorithms`), and the parameter checks they share."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from .. import validate
from ..ledger import FIELDS, Ledger
from ..seam import AnalogTile

__all__ = [
    "CLOSURE_BASES",
    "InSituBase",
    "check_params",
    "default_seed",
    "ledger_row",
    "materialize",
    "tile_of",
]


def tile_of(p: Tensor) -> AnalogTile | None:
    """The tile backing ``p`` (set by the `eapu.nn` layers as ``p.eapu_tile``), or None."""
    return getattr(p, "eapu_tile", None)


def ledger_row(row: Any, device: torch.device | None = None) -> Tensor:
    """One ledger row as an int64 tensor of ``len(FIELDS)`` (a shorter row, e.g. the fused
    kernel's, is padded with zeros)."""
    t = torch.as_tensor(row, dtype=torch.int64, device=device)
    if t.numel() < len(FIELDS):
        t = torch.nn.functional.pad(t, (0, len(FIELDS) - t.numel()))
    return t


def default_seed(seed: int | None) -> int:
    """``seed`` validated, or (None) a seed drawn from torch's global generator, so that
    ``torch.manual_seed`` governs an optimizer built without one."""
    seed = validate.integer("seed", seed, low=0, allow_none=True)
    if seed is None:
        return int(torch.randint(0, 2**62, (1,)).item())
    return seed


#: Bases whose ``step`` needs the closure (they evaluate the loss several times).
CLOSURE_BASES: tuple[type[Optimizer], ...] = (torch.optim.LBFGS,)


class InSituBase(Optimizer):
    """The skeleton every in-situ optimizer shares (`InSituOptimizer` and the algorithms of
    `eapu.algorithms`): a wrapped base optimizer proposes ΔW over the same ``param_groups``
    (one list and one state, so LR schedulers work), a `Ledger` records one row per analog
    parameter and step, and ``state_dict`` holds the base's state plus the optimizer's own
    under `STATE_KEY`.

    A subclass says which parameters are analog (`is_analog`), how many cells each has
    (`cells_of`), what a step does with the proposals (`_apply`), and what its own state is
    (`_own_state`, `_load_own_state`).

    Args:
        params: parameters or parameter groups.
        base: the optimizer class that proposes ΔW.
        defaults: the subclass's per-group options and their defaults.
        base_kwargs: passed to ``base``.
        seed: seeds the optimizer's randomness; None draws it from torch's global generator.
    """

    #: The key of the optimizer's own entry in ``state_dict``.
    STATE_KEY = "insitu"

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base: type[Optimizer],
        *,
        defaults: dict[str, Any],
        base_kwargs: dict[str, Any],
        seed: int | None,
    ) -> None:
        if not (isinstance(base, type) and issubclass(base, Optimizer)):
            raise TypeError(f"Invalid base: {base!r}; allowed: a torch.optim.Optimizer subclass")
        param_list = materialize(params)
        if not param_list:
            raise ValueError("Invalid params: the parameter list is empty; give at least one")
        self._base: Optimizer | None = None
        self._seed = default_seed(seed)
        self.ledger = Ledger()
        self._layout: list[int] | None = None
        super().__init__(param_list, defaults)
        self._base = base(self.param_groups, **base_kwargs)
        # Both write analog weights through their tiles (`eapu.nn` refuses other optimizers).
        self.eapu_in_situ = True
        self._base.eapu_in_situ = True  # type: ignore[attr-defined]
        # One list of groups and one state for both: schedulers see what the base uses.
        self.param_groups = self._base.param_groups
        self.state = self._base.state
        self.defaults = {**self._base.defaults, **self.defaults}

    @property
    def base(self) -> Optimizer:
        """The wrapped optimizer that proposes ΔW."""
        assert self._base is not None
        return self._base

    @property
    def seed(self) -> int:
        """The seed of the optimizer's randomness (drawn from torch's if none was given)."""
        return self._seed

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        for key in self._own_keys():
            param_group.setdefault(key, self.defaults[key])
        self._check_group(param_group)
        ps = param_group["params"]
        param_group["params"] = ps = [ps] if isinstance(ps, Tensor) else list(ps)
        check_params(ps)
        if self._base is None:
            super().add_param_group(param_group)
        else:
            self._base.add_param_group(param_group)
        self._layout = None

    def _own_keys(self) -> tuple[str, ...]:
        """The per-group options of the subclass (filled in from its defaults)."""
        return ()

    def _check_group(self, group: dict[str, Any]) -> None:
        """Validate a parameter group's own options (subclasses that have any)."""

    # ---------------------------------------------------------------- to implement
    def is_analog(self, p: Tensor, group: dict[str, Any]) -> bool:
        """Whether ``p`` is written in situ (an analog parameter)."""
        raise NotImplementedError

    def cells_of(self, p: Tensor) -> int:
        """Cells the ledger counts for analog parameter ``p``."""
        tile = tile_of(p)
        return int(tile.cells) if tile is not None else p.numel()

    def _apply(
        self, work: list[tuple[dict[str, Any], Tensor]], digital: list[Tensor], propose: Any
    ) -> dict[int, Any]:
        """Call ``propose()`` (the base's step) and write the analog parameters of ``work``
        (group, parameter) and the ``digital`` ones; returns ledger rows by ``id(p)``."""
        raise NotImplementedError

    def _own_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _load_own_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _step_fused(self, analog: list[Tensor]) -> dict[int, list[int]]:
        """Step what a fused kernel can (base, rule and write in one pass per parameter)
        before the base steps the rest; returns their ledger rows by ``id``. None here."""
        return {}

    # ----------------------------------------------------------------------- shared
    def analog_parameters(self) -> list[Tensor]:
        """The analog parameters, in the order the ledger records them."""
        return [p for g in self.param_groups for p in g["params"] if self.is_analog(p, g)]

    def _sync_layout(self, analog: list[Tensor]) -> None:
        if self._layout is not None and [id(p) for p in analog] == self._layout:
            return
        self.ledger.set_layout(
            [f"param{i}:{tuple(p.shape)}" for i, p in enumerate(analog)],
            [self.cells_of(p) for p in analog],
        )
        self._layout = [id(p) for p in analog]

    @torch.compiler.disable
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Take one in-situ step; returns the closure's loss if a closure was given.

        A base that needs the closure (``torch.optim.LBFGS``) gets it, and evaluates it as
        often as it needs; the closure is also evaluated once first, for the gradients
        that choose the parameters of this step. ``torch.compile(opt.step)`` runs it as it
        is (compiled code would not see the tiles' state): compile the model instead.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        analog_all = self.analog_parameters()
        for p in analog_all:  # nothing changed a tile's weight behind its back
            tile = tile_of(p)
            if tile is not None:
                tile.check(p)
        self._sync_layout(analog_all)
        base = self.base
        # Parameters a fused kernel stepped already (base optimizer, rule and write in one
        # pass each): their gradients are hidden from the base while it steps the rest.
        fused_rows = self._step_fused(analog_all)
        hidden = [(p, p.grad) for p in analog_all if id(p) in fused_rows]
        for p, _ in hidden:
            p.grad = None
        try:
            work: list[tuple[dict[str, Any], Tensor]] = []  # analog params with gradients
            digital: list[Tensor] = []
            for g in self.param_groups:
                for p in g["params"]:
                    if p.grad is None:
                        continue
                    if p.grad.is_sparse:
                        raise RuntimeError("in-situ optimizers do not support sparse gradients")
                    (work.append((g, p)) if self.is_analog(p, g) else digital.append(p))

            def propose() -> Any:
                if closure is not None and isinstance(base, CLOSURE_BASES):
                    with torch.enable_grad():
                        return base.step(closure)
                return base.step()

            rows = dict(fused_rows)
            if work or digital or not fused_rows:
                rows.update(self._apply(work, digital, propose))
        finally:
            for p, grad in hidden:
                p.grad = grad
        if analog_all:
            table = [rows.get(id(p), [0]) for p in analog_all]
            on = next((r.device for r in table if isinstance(r, Tensor)), None)  # type: ignore[attr-defined]
            self.ledger.record(torch.stack([ledger_row(r, on) for r in table]))
        return loss

    # ------------------------------------------------------------------- state_dict
    def state_dict(self) -> dict[str, Any]:
        sd = self.base.state_dict()
        sd[self.STATE_KEY] = self._own_state()
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        own = state_dict.pop(self.STATE_KEY, None)
        self.base.load_state_dict(state_dict)
        self.param_groups = self.base.param_groups
        self.state = self.base.state
        self._layout = None
        if own is not None:
            self._load_own_state(own)


def materialize(params: Iterable[Any]) -> list[Any]:
    """``params`` as a list in which every group's ``"params"`` is a list too.

    torch accepts a generator (``model.parameters()``) as a group's ``"params"``; anything
    that looks at the parameters before the optimizer stores them must not consume it.
    """
    out: list[Any] = []
    for x in params:
        if isinstance(x, dict) and "params" in x:
            ps = x["params"]
            x = {**x, "params": [ps] if isinstance(ps, Tensor) else list(ps)}
        out.append(x)
    return out


def check_params(params: list[Any]) -> None:
    """Refuse what no in-situ optimizer can step: a parameter listed twice in one group
    (torch would step it twice), a complex one (a cell holds a real conductance) or one
    without storage (the meta device)."""
    seen: set[int] = set()
    for k, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"Invalid params: item {k} is a {type(p).__name__}, not a Tensor")
        where = f"the parameter at position {k} (shape {tuple(p.shape)}, {p.dtype})"
        if id(p) in seen:
            raise ValueError(f"Invalid params: {where} appears twice in one group; list it once")
        if not p.is_floating_point():
            raise ValueError(
                f"Invalid params: {where} is not real floating point; cells hold real weights"
            )
        if p.is_meta:
            raise ValueError(
                f"Invalid params: {where} is on the meta device and has no values to write; "
                "materialise the model first (e.g. model.to_empty(device='cpu'))"
            )
        seen.add(id(p))
