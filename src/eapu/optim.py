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
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor
from torch.optim import Optimizer

from . import fused
from .ledger import FIELDS, Ledger
from .rules import RuleInfo, get_rule, max_abs, max_abs_each, to_dense

__all__ = [
    "AdamEaPU",
    "AdamNoise",
    "InSituOptimizer",
    "Programmable",
    "SGDEaPU",
    "SGDNoise",
    "WriteRecord",
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


def _finite_nonneg(name: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"Invalid {name}: {value!r}; allowed: a finite number >= 0")
    if value < 0:
        raise ValueError(f"Invalid {name}: {value!r}; allowed: a finite number >= 0")


def _validate_insitu(group: dict[str, Any]) -> None:
    get_rule(group["rule"])  # raises with the available names
    _finite_nonneg("sd_us", group["sd_us"])
    rwg = group["rwg_per_us"]
    if (
        isinstance(rwg, bool)
        or not isinstance(rwg, (int, float))
        or not (math.isfinite(rwg) and rwg > 0)
    ):
        raise ValueError(f"Invalid rwg_per_us: {rwg!r}; allowed: a finite number > 0")
    _finite_nonneg("threshold", group["threshold"], allow_none=True)
    _finite_nonneg("threshold_us", group["threshold_us"], allow_none=True)
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


class InSituOptimizer(Optimizer):
    """Wraps a torch optimizer class so that analog parameters are written the in-situ way.

    The base optimizer is built over the same ``param_groups`` (one list, shared), so LR
    schedulers, ``zero_grad``, ``add_param_group`` and per-group options behave as usual.
    The in-situ options below may also be set per parameter group.

    Args:
        params: parameters or parameter groups, as for any torch optimizer.
        base: the optimizer class that proposes ΔW (``torch.optim.Adam``, ``SGD``, ...).
        rule: ``"eapu"`` (formula 4) or ``"exact"`` (plain BP, every update written).
        sd_us: SD of the write noise εcell in µS (weight level; a tile brings its own).
        rwg_per_us: Rwg = Wmax / Gmax in µS⁻¹ (weight level; a tile brings its own).
        threshold: ΔWth in weight units; default SD εcell · Rwg.
        threshold_us: ΔWth in µS (the reference code's ``clip_value``); ΔWth = this · Rwg.
        analog: predicate choosing the analog parameters; default ``p.dim() > 1``. A group's
            ``analog`` key (True / False) overrides it for that group.
        seed: seeds the rule's generator and the weight-level write noise.
        **base_kwargs: passed to ``base`` (``lr``, ``betas``, ``momentum``, ...).
    """

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
        seed: int = 0,
        **base_kwargs: Any,
    ) -> None:
        if not (isinstance(base, type) and issubclass(base, Optimizer)):
            raise TypeError(f"Invalid base: {base!r}; allowed: a torch.optim.Optimizer subclass")
        if analog is not None and not callable(analog):
            raise TypeError(f"Invalid analog: {analog!r}; allowed: a callable (Tensor) -> bool")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"Invalid seed: {seed!r}; allowed: an integer >= 0")
        param_list: list[Any] = list(params)
        if not param_list:
            raise ValueError("Invalid params: the parameter list is empty; give at least one")
        defaults = dict(
            rule=rule,
            sd_us=sd_us,
            rwg_per_us=rwg_per_us,
            threshold=threshold,
            threshold_us=threshold_us,
            analog=None,
        )
        _validate_insitu(defaults)
        self._base: Optimizer | None = None
        self._analog_pred = analog or _default_analog
        self._seed = seed
        self._generators: dict[str, torch.Generator] = {}
        self._buffers: dict[tuple[torch.device, torch.dtype], Tensor] = {}
        super().__init__(param_list, defaults)
        self._base = base(self.param_groups, **base_kwargs)
        # One list of groups and one state for both: schedulers see what the base uses.
        self.param_groups = self._base.param_groups
        self.state = self._base.state
        self.defaults = {**self._base.defaults, **self.defaults}
        self.ledger = Ledger()
        self._layout: list[int] | None = None

    # ----------------------------------------------------------------- groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        for key, value in self.defaults.items():
            if key in ("rule", "sd_us", "rwg_per_us", "threshold", "threshold_us", "analog"):
                param_group.setdefault(key, value)
        _validate_insitu(param_group)
        if self._base is None:
            super().add_param_group(param_group)
        else:
            self._base.add_param_group(param_group)
        self._layout = None

    @property
    def base(self) -> Optimizer:
        """The wrapped optimizer that proposes ΔW."""
        assert self._base is not None
        return self._base

    def is_analog(self, p: Tensor, group: dict[str, Any]) -> bool:
        """Whether ``p`` is written through the rule (an analog parameter)."""
        if _tile(p) is not None:
            return True
        return bool(group["analog"]) if group["analog"] is not None else self._analog_pred(p)

    def analog_parameters(self) -> list[Tensor]:
        """The analog parameters, in the order the ledger records them."""
        return [p for g in self.param_groups for p in g["params"] if self.is_analog(p, g)]

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

    # ------------------------------------------------------------------- step
    def _sync_layout(self, analog: list[Tensor]) -> None:
        if self._layout is not None and [id(p) for p in analog] == self._layout:
            return
        self.ledger.set_layout(
            [f"param{i}:{tuple(p.shape)}" for i, p in enumerate(analog)],
            [_tile(p).cells if _tile(p) is not None else p.numel() for p in analog],
        )
        self._layout = [id(p) for p in analog]

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

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Take one in-situ step; returns the closure's loss if a closure was given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        base = self.base
        analog_all = self.analog_parameters()
        self._sync_layout(analog_all)
        fused_rows = self._step_fused(analog_all)  # stepped already: hidden from the base
        work: list[tuple[dict[str, Any], Tensor]] = []  # analog params with gradients
        digital: list[Tensor] = []
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None or id(p) in fused_rows:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("in-situ optimizers do not support sparse gradients")
                (work.append((g, p)) if self.is_analog(p, g) else digital.append(p))

        with_grad = [p for _, p in work] + digital
        grads = [p.grad for p in with_grad if p.grad is not None]
        bad = self._sanitize(with_grad) if grads and not fused.all_finite(grads) else {}
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
        hidden = [(p, p.grad) for p in analog_all if id(p) in fused_rows]
        for p, _ in hidden:
            p.grad = None
        try:
            if with_grad:
                base.step()
            for p, n in zip(fast, news, strict=True):
                if p.data_ptr() != n.data_ptr():  # a base that assigns ``p.data = ...``
                    n.copy_(p.data)
        finally:
            for p, old in zip(fast, saved, strict=True):
                p.data = old
            for p, grad in hidden:
                p.grad = grad

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
            passthrough = rule.name == "exact" or th == 0
            dw = new if passthrough else new.sub_(old)
            plans.append((group, p, old, dw, th, rule, passthrough))
        # One pass and one host sync give every max |ΔW| and every non-finite proposal.
        amaxes = max_abs_each([plan[3] for plan in plans])
        rows: dict[int, list[int]] = dict(fused_rows)
        for k, (group, p, old, dw, th, rule, passthrough) in enumerate(plans):
            rows[id(p)] = self._write(
                p, old, dw, amaxes[k], group, th, rule, passthrough, bad.get(k)
            )
        if analog_all:
            zero = [0] * len(FIELDS)
            table = [rows.get(id(p), zero) for p in analog_all]
            self.ledger.record(torch.tensor(table, dtype=torch.int64))
        return loss

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

    def _write(
        self,
        p: Tensor,
        old: Tensor,
        dw: Tensor,
        amax: float,
        group: dict[str, Any],
        th: float,
        rule: RuleInfo,
        passthrough: bool,
        bad: Tensor | None,
    ) -> list[int]:
        """Write one analog parameter; returns its ledger row.

        ``dw`` is ΔW, or when every update is written as proposed (``passthrough``: the
        exact rule, or a threshold of 0) the proposal itself; ``amax`` is max |dw|. Cells
        with a non-finite gradient (``bad``) or proposal are skipped: they keep their old
        value.
        """
        skip = bad
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
    def state_dict(self) -> dict[str, Any]:
        sd = self.base.state_dict()
        sd["insitu"] = {
            "seed": self._seed,
            "generators": {k: g.get_state() for k, g in self._generators.items()},
            "ledger": self.ledger.state_dict(),
        }
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        insitu = state_dict.pop("insitu", None)
        self.base.load_state_dict(state_dict)
        self.param_groups = self.base.param_groups
        self.state = self.base.state
        self._layout = None
        if insitu is not None:
            self._seed = int(insitu["seed"])
            self._generators = {}
            for key, st in insitu["generators"].items():
                kind, dev = key.split(":", 1)
                g = self._generator(torch.device(dev), noise=kind == "noise")
                g.set_state(st)
            self.ledger.load_state_dict(insitu["ledger"])


def _fused_ok(params: list[Any], kwargs: dict[str, Any]) -> bool:
    """Whether the named optimizers may take torch's fused kernel: the caller chose no
    implementation, and every parameter is floating point on CPU or CUDA."""
    if any(k in kwargs for k in ("fused", "foreach", "differentiable")):
        return False
    tensors = [t for x in params for t in (x["params"] if isinstance(x, dict) else [x])]
    return all(
        isinstance(t, Tensor) and t.is_floating_point() and t.device.type in ("cpu", "cuda")
        for t in tensors
    )


def _make(base: type[Optimizer], rule: str, doc: str) -> type[InSituOptimizer]:
    class _Named(InSituOptimizer):
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
            seed: int = 0,
            **base_kwargs: Any,
        ) -> None:
            param_list: list[Any] = list(params)
            if _fused_ok(param_list, base_kwargs):
                base_kwargs["fused"] = True
            super().__init__(
                param_list,
                base,
                rule=rule,
                sd_us=sd_us,
                rwg_per_us=rwg_per_us,
                threshold=threshold,
                threshold_us=threshold_us,
                analog=analog,
                seed=seed,
                lr=lr,
                **base_kwargs,
            )

    _Named.__doc__ = doc
    return _Named


AdamEaPU = _make(torch.optim.Adam, "eapu", "Adam proposes ΔW, EaPU decides what is written.")
SGDEaPU = _make(torch.optim.SGD, "eapu", "SGD (momentum etc. as keywords) with EaPU.")
AdamNoise = _make(torch.optim.Adam, "exact", "Noisy BP baseline: every Adam update is written.")
SGDNoise = _make(torch.optim.SGD, "exact", "Noisy BP baseline: every SGD update is written.")
for _cls, _name in (
    (AdamEaPU, "AdamEaPU"),
    (SGDEaPU, "SGDEaPU"),
    (AdamNoise, "AdamNoise"),
    (SGDNoise, "SGDNoise"),
):
    _cls.__name__ = _cls.__qualname__ = _name
del _cls, _name
