"""In-situ optimizers: any torch optimizer proposes ΔW, a rule makes ΔWn, the cells are written.

>>> import torch
>>> from eapu.optim import AdamEaPU
>>> model = torch.nn.Linear(4, 2)
>>> opt = AdamEaPU(model.parameters(), lr=1e-3, sd_us=2.0, rwg_per_us=1 / 80)
>>> model(torch.randn(8, 4)).pow(2).mean().backward()
>>> opt.step(); opt.zero_grad()

Analog parameters (by default those with ``dim() > 1``: the weights that sit on crossbars)
go through the rule and a write model; the others (biases, norms) are updated digitally
exactly as the base optimizer says. Two write models share one seam:

- weight level (the paper's simulation): a written cell gets ΔWn + Rwg · N(0, SD εcell);
  a cell the rule leaves at ΔWn = 0 is untouched.
- device level: a parameter backed by a tile (``eapu.nn`` layers set ``param.eapu_tile``)
  is written by ``tile.program(ΔWn)``, and the parameter then reads ``tile.weight()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor
from torch.optim import Optimizer

from . import fused, validate
from .ledger import FIELDS, Ledger
from .rules import RuleInfo, get_rule, max_abs, max_abs_each, to_dense

__all__ = [
    "CLOSURE_BASES",
    "AdamEaPU",
    "AdamNoise",
    "InSituBase",
    "InSituOptimizer",
    "Programmable",
    "SGDEaPU",
    "SGDNoise",
    "WriteRecord",
    "check_params",
    "default_seed",
    "materialize",
]

_NOISE_SEED_OFFSET = 0x9E3779B9  # the write noise and the rule draw from different streams


@runtime_checkable
class Programmable(Protocol):
    """The seam a device-level tile implements to receive ΔWn from the optimizer."""

    rwg_per_us: float
    sd_us: float  # SD of εcell of the tile's device and scheme: the default EaPU threshold

    def program(self, dwn: Tensor) -> Tensor:
        """Write ΔWn (weight units, zero = leave the cell alone).

        Returns an int64 tensor of ``len(FIELDS)`` counts for this write (written cells,
        pulses, verify reads, cells that failed to reach tolerance, skipped = 0).
        """
        ...

    def weight(self) -> Tensor:
        """The weight the cells now hold (noise-free value of the programmed state)."""
        ...


WriteRecord = Tensor  # int64, shape (len(FIELDS),); see eapu.ledger.FIELDS


def _validate_insitu(group: dict[str, Any]) -> None:
    get_rule(group["rule"])  # raises with the available names
    validate.number("sd_us", group["sd_us"], low=0)
    validate.number("rwg_per_us", group["rwg_per_us"], low=0, low_open=True)
    validate.number("threshold", group["threshold"], low=0, allow_none=True)
    validate.number("threshold_us", group["threshold_us"], low=0, allow_none=True)
    if group["threshold"] is not None and group["threshold_us"] is not None:
        raise ValueError(
            f"Give threshold ({group['threshold']}) or threshold_us ({group['threshold_us']}), "
            "not both"
        )
    if group["analog"] not in (None, True, False):
        raise ValueError(f"Invalid analog: {group['analog']!r}; allowed: None, True or False")


def _tile(p: Tensor) -> Any:
    """The tile backing ``p`` (set by the `eapu.nn` layers), or None."""
    return getattr(p, "eapu_tile", None)


def _default_analog(p: Tensor) -> bool:
    return p.dim() > 1


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
        tile = _tile(p)
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

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Take one in-situ step; returns the closure's loss if a closure was given.

        A base that needs the closure (``torch.optim.LBFGS``) gets it, and evaluates it as
        often as it needs; the closure is also evaluated once first, for the gradients
        that choose the parameters of this step.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        analog_all = self.analog_parameters()
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
            zero = [0] * len(FIELDS)
            table = [rows.get(id(p), zero) for p in analog_all]
            if all(isinstance(r, list) for r in table):
                self.ledger.record(torch.tensor(table, dtype=torch.int64))
            else:
                self.ledger.record(torch.stack([torch.as_tensor(r).cpu() for r in table]))
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


@dataclass
class _Write:
    """One analog parameter's write in a step: what `InSituOptimizer._write` needs."""

    p: Tensor
    old: Tensor
    dw: Tensor  # ΔW, or the proposal itself when ``passthrough``
    amax: float  # max |dw|
    group: dict[str, Any]
    threshold: float
    rule: RuleInfo
    passthrough: bool  # every update written as proposed (the rule's, or a threshold of 0)
    bad: Tensor | None  # cells whose gradient was not finite


class InSituOptimizer(InSituBase):
    """Wraps a torch optimizer class so that analog parameters are written the in-situ way.

    The base optimizer is built over the same ``param_groups`` (one list, shared), so LR
    schedulers, ``zero_grad``, ``add_param_group`` and per-group options behave as usual.
    The in-situ options below may also be set per parameter group.

    Args:
        params: parameters or parameter groups, as for any torch optimizer.
        base: the optimizer class that proposes ΔW (``torch.optim.Adam``, ``SGD``, ``LBFGS``
            (it gets the closure) ...).
        rule: ``"eapu"`` (formula 4) or ``"exact"`` (plain BP, every update written), or any
            registered rule (`eapu.rules.list_rules`).
        sd_us: SD of the write noise εcell in µS (weight level; a tile brings its own).
        rwg_per_us: Rwg = Wmax / Gmax in µS⁻¹ (weight level; a tile brings its own).
        threshold: ΔWth in weight units; default SD εcell · Rwg.
        threshold_us: ΔWth in µS (the reference code's ``clip_value``); ΔWth = this · Rwg.
        analog: predicate choosing the analog parameters; default ``p.dim() > 1``. A group's
            ``analog`` key (True / False) overrides it for that group.
        seed: seeds the rule's generator and the weight-level write noise; default (None):
            drawn from torch's global generator at construction (``torch.manual_seed``
            governs).
        **base_kwargs: passed to ``base`` (``lr``, ``betas``, ``momentum``, ...).
    """

    STATE_KEY = "insitu"
    _KEYS = ("rule", "sd_us", "rwg_per_us", "threshold", "threshold_us", "analog")

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base: type[Optimizer] = torch.optim.Adam,
        *,
        rule: str = "eapu",
        sd_us: float = 2.0,
        rwg_per_us: float = 1 / 80,
        threshold: float | None = None,
        threshold_us: float | None = None,
        analog: Callable[[Tensor], bool] | None = None,
        seed: int | None = None,
        **base_kwargs: Any,
    ) -> None:
        if analog is not None and not callable(analog):
            raise TypeError(f"Invalid analog: {analog!r}; allowed: a callable (Tensor) -> bool")
        defaults = dict(
            rule=rule,
            sd_us=sd_us,
            rwg_per_us=rwg_per_us,
            threshold=threshold,
            threshold_us=threshold_us,
            analog=None,
        )
        _validate_insitu(defaults)
        self._analog_pred = analog or _default_analog
        self._generators: dict[str, torch.Generator] = {}
        self._buffers: dict[tuple[torch.device, torch.dtype], Tensor] = {}
        super().__init__(params, base, defaults=defaults, base_kwargs=base_kwargs, seed=seed)

    # ----------------------------------------------------------------- groups
    def _own_keys(self) -> tuple[str, ...]:
        return self._KEYS

    def _check_group(self, group: dict[str, Any]) -> None:
        _validate_insitu(group)

    def is_analog(self, p: Tensor, group: dict[str, Any]) -> bool:
        """Whether ``p`` is written through the rule (an analog parameter)."""
        if _tile(p) is not None:
            return True
        return bool(group["analog"]) if group["analog"] is not None else self._analog_pred(p)

    def threshold_for(self, p: Tensor, group: dict[str, Any]) -> float:
        """ΔWth in weight units for parameter ``p`` (derived from the device by default)."""
        tile = _tile(p)
        rwg = tile.rwg_per_us if tile is not None else group["rwg_per_us"]
        if group["threshold"] is not None:
            return float(group["threshold"])
        if group["threshold_us"] is not None:
            return float(group["threshold_us"]) * rwg
        sd = tile.sd_us if tile is not None else group["sd_us"]
        return float(sd) * rwg

    # ------------------------------------------------------------- randomness
    def _generator(self, device: torch.device, *, noise: bool = False) -> torch.Generator:
        key = f"{'noise' if noise else 'rule'}:{device}"
        g = self._generators.get(key)
        if g is None:
            g = torch.Generator(device=device)
            g.manual_seed(self._seed + (_NOISE_SEED_OFFSET if noise else 0))
            self._generators[key] = g
        return g

    @torch.no_grad()
    def _sanitize(self, params: list[Tensor]) -> dict[int, Tensor]:
        """Zero non-finite gradient entries; return the bad-cell masks by parameter index."""
        grads = [p.grad for p in params if p.grad is not None]
        norms = torch._foreach_norm(grads)
        finite = torch.stack([n.isfinite() for n in norms]).cpu()
        bad: dict[int, Tensor] = {}
        for i in (~finite).nonzero().flatten().tolist():
            mask = ~grads[i].isfinite()
            grads[i].masked_fill_(mask, 0)
            bad[i] = mask
        return bad

    def _workspace(self, params: list[Tensor]) -> list[Tensor]:
        """Views shaped like ``params`` into one buffer per device and dtype.

        On CPU the buffer is kept between steps (not state: never saved) because fresh
        memory costs a page fault per 4 KiB, at ResNet-18 size more than the whole EaPU
        rule. Elsewhere torch's caching allocator already reuses the memory, so
        the buffer lives for the step only.
        """
        need: dict[tuple[torch.device, torch.dtype], int] = {}
        for p in params:
            key = (p.device, p.dtype)
            need[key] = need.get(key, 0) + p.numel()
        bufs = {}
        for (device, dtype), n in need.items():
            buf = self._buffers.get((device, dtype))
            if buf is None or buf.numel() < n:
                buf = torch.empty(n, device=device, dtype=dtype)
                if device.type == "cpu":
                    self._buffers[(device, dtype)] = buf
            bufs[(device, dtype)] = buf
        offset = dict.fromkeys(need, 0)
        views = []
        for p in params:
            key = (p.device, p.dtype)
            views.append(bufs[key][offset[key] : offset[key] + p.numel()].view(p.shape))
            offset[key] += p.numel()
        return views

    def _step_fused(self, analog: list[Tensor]) -> dict[int, list[int]]:
        """Step the analog parameters that `eapu.fused` supports in one pass each; returns
        their ledger rows by ``id``. Where the fused path cannot be used, nothing."""
        index = {id(p): i for i, p in enumerate(analog)}
        items = []
        for g in self.param_groups:
            if g["rule"] != "eapu":
                continue
            for p in g["params"]:
                if p.grad is None or _tile(p) is not None or id(p) not in index:
                    continue
                th = self.threshold_for(p, g)
                if th > 0 and fused.supports(self.base, g, p):
                    sd_w = g["sd_us"] * g["rwg_per_us"]
                    items.append(fused.FusedItem(g, p, th, sd_w, index[id(p)]))
        if not items or not fused.available():  # (a CUDA-only model never builds the kernel)
            return {}
        rows = fused.step(self.base, items, generator=self._generator(torch.device("cpu")))
        return {id(it.param): row for it, row in zip(items, rows, strict=True)}

    def _apply(
        self, work: list[tuple[dict[str, Any], Tensor]], digital: list[Tensor], propose: Any
    ) -> dict[int, Any]:
        with_grad = [p for _, p in work] + digital
        finite = not with_grad or fused.all_finite(
            [p.grad for p in with_grad if p.grad is not None]
        )
        bad = {} if finite else self._sanitize(with_grad)
        params = [p for _, p in work]
        keep = {i: with_grad[i].clone() for i in bad if i >= len(params)}  # digital, rare
        # Weight-level parameters in plain layout: the base optimizer steps copies in the
        # workspace while the parameters keep their memory and old values, so afterwards a
        # cell that is not written needs no restoring. Others (tiles, other layouts) keep a
        # copy of the old values instead.
        inplace = [_tile(p) is None and p.is_contiguous() for p in params]
        fast = [p for p, f in zip(params, inplace, strict=True) if f]
        news = self._workspace(fast)
        if fast:
            torch._foreach_copy_(news, fast)
        olds = iter([p.detach().clone() for p, f in zip(params, inplace, strict=True) if not f])
        saved = [p.data for p in fast]
        for p, n in zip(fast, news, strict=True):
            p.data = n
        try:
            propose()
            for p, n in zip(fast, news, strict=True):
                if p.data_ptr() != n.data_ptr():  # a base that assigns ``p.data = ...``
                    n.copy_(p.data)
        finally:
            for p, old in zip(fast, saved, strict=True):
                p.data = old

        for i, old in keep.items():  # digital cells with a non-finite gradient stay put
            torch.where(bad[i], old, with_grad[i], out=with_grad[i])
        # (old, new) per analog parameter; afterwards the old tensor is the parameter's.
        pairs = []
        new_it = iter(news)
        for p, f in zip(params, inplace, strict=True):
            pairs.append((p, next(new_it)) if f else (next(olds), p))
        # The proposals ΔW, in place where the rule needs them (``new`` is not needed as
        # such any more); a pass exempt from a rule only looks for non-finite proposals.
        plans = []
        for k, (group, p) in enumerate(work):
            old, new = pairs[k]
            th = self.threshold_for(p, group)
            rule = get_rule(group["rule"])
            passthrough = rule.passthrough or th == 0
            dw = new if passthrough else new.sub_(old)
            plans.append(_Write(p, old, dw, 0.0, group, th, rule, passthrough, bad.get(k)))
        # One pass and one host sync give every max |ΔW| and every non-finite proposal.
        for plan, amax in zip(plans, max_abs_each([w.dw for w in plans]), strict=True):
            plan.amax = amax
        return {id(w.p): self._write(w) for w in plans}

    def _write(self, plan: _Write) -> list[int]:
        """Write one analog parameter; returns its ledger row.

        ``plan.dw`` is ΔW, or when every update is written as proposed (``plan.passthrough``:
        the rule's property, or a threshold of 0) the proposal itself; ``plan.amax`` is
        max |dw|. Cells with a non-finite gradient (``plan.bad``) or proposal are skipped:
        they keep their old value.
        """
        p, old, dw, amax, group = plan.p, plan.old, plan.dw, plan.amax, plan.group
        th, rule, passthrough = plan.threshold, plan.rule, plan.passthrough
        skip = plan.bad
        if not math.isfinite(amax):
            skip = ~dw.isfinite() if skip is None else skip | ~dw.isfinite()
        nskip = 0
        if skip is not None:
            nskip = int(skip.sum())
            if passthrough:
                torch.where(skip, old, dw, out=dw)
            else:
                dw.masked_fill_(skip, 0.0)
                amax = max_abs(dw)
        idx: Tensor | None  # None: every cell
        if passthrough:  # every nonzero update is written; the cell takes the proposal
            new, vals = dw, None
            changed = (new != old).reshape(-1)
            idx = None if bool(changed.all()) else changed.nonzero().squeeze(1)
        else:
            gen = self._generator(p.device)
            idx, vals = rule.sparse(dw, threshold=th, generator=gen, amax=amax)
        tile = _tile(p)
        if tile is not None:
            if vals is None:
                dwn = new - old  # zero where nothing changed
            else:
                assert idx is not None
                dwn = to_dense(idx, vals, p)
            record = tile.program(dwn)
            p.copy_(tile.weight())
            row = [int(v) for v in record.tolist()]
            row[FIELDS.index("skipped")] += nskip
            return row
        # Weight level: a written cell gets old + ΔWn (the proposal itself when every update
        # passes) and its write noise Rwg · N(0, SD εcell); the others keep their old value.
        target = new if vals is None else old
        flat = target.view(-1) if p.is_contiguous() else target.contiguous().view(-1)
        sd_w = group["sd_us"] * group["rwg_per_us"]
        n = flat.numel() if idx is None else idx.numel()
        if vals is not None or sd_w > 0:
            # Noisy BP writes every cell: then no gathering (cells ascending: idx = arange).
            part = idx if idx is not None and n < flat.numel() else None
            w = flat if part is None else flat.index_select(0, part)
            if vals is not None:
                w.add_(vals)
            if sd_w > 0:
                g = self._generator(p.device, noise=True)
                noise = torch.randn(n, generator=g, device=p.device, dtype=p.dtype)
                w.add_(noise, alpha=sd_w)
            if part is not None:
                flat.index_copy_(0, part, w)
        if flat.data_ptr() != p.data_ptr():
            p.copy_(flat.view(p.shape))
        return [n, n, 0, 0, nskip]

    # ------------------------------------------------------------ state_dict
    def _own_state(self) -> dict[str, Any]:
        return {
            "seed": self._seed,
            "generators": {k: g.get_state() for k, g in self._generators.items()},
            "ledger": self.ledger.state_dict(),
        }

    def _load_own_state(self, state: dict[str, Any]) -> None:
        self._seed = int(state["seed"])
        self._generators = {}
        for key, st in state["generators"].items():
            kind, dev = key.split(":", 1)
            g = self._generator(torch.device(dev), noise=kind == "noise")
            g.set_state(st)
        self.ledger.load_state_dict(state["ledger"])


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


def _fused_ok(params: list[Any], kwargs: dict[str, Any]) -> bool:
    """Whether the named optimizers may take torch's fused kernel: the caller chose no
    implementation, and every parameter is floating point on CPU or CUDA. ``params`` must
    come through `materialize` (a group's generator would be consumed here)."""
    if any(k in kwargs for k in ("fused", "foreach", "differentiable")):
        return False
    tensors = [t for x in params for t in (x["params"] if isinstance(x, dict) else [x])]
    return all(
        isinstance(t, Tensor) and t.is_floating_point() and t.device.type in ("cpu", "cuda")
        for t in tensors
    )


def _named(
    params: Iterable[Tensor] | Iterable[dict[str, Any]], base_kwargs: dict[str, Any]
) -> list[Any]:
    """The parameter list of a named optimizer, groups' iterators made lists (they are read
    twice), and torch's fused kernel chosen where it applies."""
    param_list = materialize(params)
    if _fused_ok(param_list, base_kwargs):
        base_kwargs["fused"] = True
    return param_list


class AdamEaPU(InSituOptimizer):
    r"""Adam proposes ΔW; EaPU (the paper's formula 4) decides what is written.

    For every analog parameter (``p.dim() > 1`` by default, or backed by a tile) Adam's
    proposed update ΔW becomes

    .. math::
        ΔW_n = \begin{cases} ΔW & |ΔW| \ge ΔW_{th} \\
            \operatorname{sign}(ΔW)\,ΔW_{th} & \text{with probability } |ΔW| / ΔW_{th} \\
            0 & \text{otherwise} \end{cases}

    so E[ΔWn] = ΔW while most cells are not written at all. A written cell receives
    ΔWn plus the write error Rwg·εcell, εcell ~ N(0, ``sd_us``) at weight level, or whatever
    its tile's device and scheme produce at device level. Digital parameters (biases,
    norms) take Adam's update as it is. The threshold defaults to ΔWth = SD(εcell)·Rwg.

    Args:
        params: parameters or parameter groups (any in-situ option may be set per group).
        lr: Adam's learning rate (default 1e-3).
        sd_us: SD of εcell in µS at weight level (default 2.0; a tile brings its own).
        rwg_per_us: Rwg = Wmax / Gmax in µS⁻¹ (default 1/80, the paper's).
        threshold: ΔWth in weight units (default: SD(εcell)·Rwg).
        threshold_us: ΔWth in µS, ΔWth = threshold_us·Rwg (default None).
        analog: predicate choosing the analog parameters (default ``p.dim() > 1``).
        seed: seeds the rule and the write noise (default None: drawn from torch's global
            generator, so ``torch.manual_seed`` governs).
        **base_kwargs: passed to ``torch.optim.Adam`` (``betas``, ``eps``,
            ``weight_decay``, ...); torch's fused kernel is used where it applies.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        *,
        sd_us: float = 2.0,
        rwg_per_us: float = 1 / 80,
        threshold: float | None = None,
        threshold_us: float | None = None,
        analog: Callable[[Tensor], bool] | None = None,
        seed: int | None = None,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(
            _named(params, base_kwargs),
            torch.optim.Adam,
            rule="eapu",
            sd_us=sd_us,
            rwg_per_us=rwg_per_us,
            threshold=threshold,
            threshold_us=threshold_us,
            analog=analog,
            seed=seed,
            lr=lr,
            **base_kwargs,
        )


class SGDEaPU(InSituOptimizer):
    r"""SGD proposes ΔW = -lr·grad (momentum, Nesterov, weight decay as torch's SGD); EaPU
    (the paper's formula 4) decides what is written.

    .. math::
        ΔW_n = \begin{cases} ΔW & |ΔW| \ge ΔW_{th} \\
            \operatorname{sign}(ΔW)\,ΔW_{th} & \text{with probability } |ΔW| / ΔW_{th} \\
            0 & \text{otherwise} \end{cases}

    A written cell receives ΔWn plus its write error (N(0, ``sd_us``)·Rwg at weight level,
    its tile's device and scheme at device level); digital parameters take SGD's update.

    Args:
        params: parameters or parameter groups (any in-situ option may be set per group).
        lr: SGD's learning rate (default 1e-3).
        sd_us: SD of εcell in µS at weight level (default 2.0; a tile brings its own).
        rwg_per_us: Rwg = Wmax / Gmax in µS⁻¹ (default 1/80, the paper's).
        threshold: ΔWth in weight units (default: SD(εcell)·Rwg).
        threshold_us: ΔWth in µS, ΔWth = threshold_us·Rwg (default None).
        analog: predicate choosing the analog parameters (default ``p.dim() > 1``).
        seed: seeds the rule and the write noise (default None: drawn from torch's global
            generator, so ``torch.manual_seed`` governs).
        **base_kwargs: passed to ``torch.optim.SGD`` (``momentum``, ``nesterov``,
            ``weight_decay``, ...); torch's fused kernel is used where it applies.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        *,
        sd_us: float = 2.0,
        rwg_per_us: float = 1 / 80,
        threshold: float | None = None,
        threshold_us: float | None = None,
        analog: Callable[[Tensor], bool] | None = None,
        seed: int | None = None,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(
            _named(params, base_kwargs),
            torch.optim.SGD,
            rule="eapu",
            sd_us=sd_us,
            rwg_per_us=rwg_per_us,
            threshold=threshold,
            threshold_us=threshold_us,
            analog=analog,
            seed=seed,
            lr=lr,
            **base_kwargs,
        )


class AdamNoise(InSituOptimizer):
    """Noisy BP, the baseline the paper compares EaPU against: every Adam update is written
    (ΔWn = ΔW, the ``exact`` rule), and every written cell gets its write error
    (N(0, ``sd_us``)·Rwg at weight level, its tile's device and scheme at device level).

    Args:
        params: parameters or parameter groups (any in-situ option may be set per group).
        lr: Adam's learning rate (default 1e-3).
        sd_us: SD of εcell in µS at weight level (default 2.0; a tile brings its own).
        rwg_per_us: Rwg = Wmax / Gmax in µS⁻¹ (default 1/80, the paper's).
        threshold: with a threshold the exact rule still writes every update; kept so the
            four optimizers take the same arguments (default None).
        threshold_us: as ``threshold``, in µS (default None).
        analog: predicate choosing the analog parameters (default ``p.dim() > 1``).
        seed: seeds the write noise (default None: drawn from torch's global generator).
        **base_kwargs: passed to ``torch.optim.Adam``; its fused kernel where it applies.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        *,
        sd_us: float = 2.0,
        rwg_per_us: float = 1 / 80,
        threshold: float | None = None,
        threshold_us: float | None = None,
        analog: Callable[[Tensor], bool] | None = None,
        seed: int | None = None,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(
            _named(params, base_kwargs),
            torch.optim.Adam,
            rule="exact",
            sd_us=sd_us,
            rwg_per_us=rwg_per_us,
            threshold=threshold,
            threshold_us=threshold_us,
            analog=analog,
            seed=seed,
            lr=lr,
            **base_kwargs,
        )


class SGDNoise(InSituOptimizer):
    """Noisy BP with SGD: every SGD update is written (ΔWn = ΔW, the ``exact`` rule), and
    every written cell gets its write error (N(0, ``sd_us``)·Rwg at weight level, its
    tile's device and scheme at device level).

    Args:
        params: parameters or parameter groups (any in-situ option may be set per group).
        lr: SGD's learning rate (default 1e-3).
        sd_us: SD of εcell in µS at weight level (default 2.0; a tile brings its own).
        rwg_per_us: Rwg = Wmax / Gmax in µS⁻¹ (default 1/80, the paper's).
        threshold: with a threshold the exact rule still writes every update; kept so the
            four optimizers take the same arguments (default None).
        threshold_us: as ``threshold``, in µS (default None).
        analog: predicate choosing the analog parameters (default ``p.dim() > 1``).
        seed: seeds the write noise (default None: drawn from torch's global generator).
        **base_kwargs: passed to ``torch.optim.SGD`` (``momentum``, ...); its fused kernel
            where it applies.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        *,
        sd_us: float = 2.0,
        rwg_per_us: float = 1 / 80,
        threshold: float | None = None,
        threshold_us: float | None = None,
        analog: Callable[[Tensor], bool] | None = None,
        seed: int | None = None,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(
            _named(params, base_kwargs),
            torch.optim.SGD,
            rule="exact",
            sd_us=sd_us,
            rwg_per_us=rwg_per_us,
            threshold=threshold,
            threshold_us=threshold_us,
            analog=analog,
            seed=seed,
            lr=lr,
            **base_kwargs,
        )
