"""`InSituOptimizer`: any torch optimizer proposes ΔW, a rule makes ΔWn, the cells are written
(at weight level, or through the parameter's tile at device level)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from .. import validate
from ..ledger import FIELDS
from ..rules import RuleInfo, get_rule, max_abs, max_abs_each, to_dense
from ..runtime import sync_free
from . import fused, triton_step
from .base import InSituBase, tile_of

__all__ = ["WEIGHT_LEVEL_RWG_PER_US", "WEIGHT_LEVEL_SD_US", "InSituOptimizer"]

_NOISE_SEED_OFFSET = 0x9E3779B9  # the write noise and the rule draw from different streams


#: SD(εcell) of a weight-level write when none is given (µS): the paper's simulations.
WEIGHT_LEVEL_SD_US = 2.0
#: Rwg of a weight-level write when none is given (µS⁻¹): the paper's 1/80.
WEIGHT_LEVEL_RWG_PER_US = 1 / 80


def _validate_insitu(group: dict[str, Any]) -> None:
    get_rule(group["rule"])  # raises with the available names
    validate.number("sd_us", group["sd_us"], low=0, allow_none=True)
    validate.number("rwg_per_us", group["rwg_per_us"], low=0, low_open=True, allow_none=True)
    validate.number("threshold", group["threshold"], low=0, allow_none=True)
    validate.number("threshold_us", group["threshold_us"], low=0, allow_none=True)
    if group["threshold"] is not None and group["threshold_us"] is not None:
        raise ValueError(
            f"Give threshold ({group['threshold']}) or threshold_us ({group['threshold_us']}), "
            "not both"
        )
    if group["analog"] not in (None, True, False):
        raise ValueError(f"Invalid analog: {group['analog']!r}; allowed: None, True or False")


def _default_analog(p: Tensor) -> bool:
    return p.dim() > 1


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
        sd_us: SD of the write noise εcell in µS at weight level (default 2.0). A parameter
            on a tile has its device's SD(εcell) instead (characterised): giving ``sd_us``
            for it is refused; set its threshold with ``threshold_us`` or ``threshold``.
        rwg_per_us: Rwg = Wmax / Gmax in µS⁻¹ at weight level (default 1/80). A tile has its
            crossbar's Rwg: a different one given for it is refused.
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
        sd_us: float | None = None,
        rwg_per_us: float | None = None,
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

    def is_analog(self, p: Tensor, group: dict[str, Any]) -> bool:
        """Whether ``p`` is written through the rule (an analog parameter)."""
        if tile_of(p) is not None:
            return True
        return bool(group["analog"]) if group["analog"] is not None else self._analog_pred(p)

    def write_model(self, p: Tensor, group: dict[str, Any]) -> tuple[float, float, str]:
        """(SD(εcell) in µS, Rwg in µS⁻¹, where the SD comes from) of parameter ``p``.

        At weight level the group's ``sd_us`` and ``rwg_per_us`` (default 2.0 and 1/80); on a
        tile its device's characterised SD(εcell) and its crossbar's Rwg. An ``sd_us``, or an
        Rwg other than the crossbar's, given for a parameter on a tile is refused (the
        optimizer cannot change the device; its threshold is set with ``threshold_us``).
        """
        tile = tile_of(p)
        sd, rwg = group["sd_us"], group["rwg_per_us"]
        if tile is None:
            sd = WEIGHT_LEVEL_SD_US if sd is None else float(sd)
            rwg = WEIGHT_LEVEL_RWG_PER_US if rwg is None else float(rwg)
            return sd, rwg, "sd_us (weight level)"
        if rwg is not None and not math.isclose(float(rwg), tile.rwg_per_us, rel_tol=1e-9):
            raise ValueError(
                f"Invalid rwg_per_us: {rwg:g}; the weight of analog layer {tile.name!r} sits on "
                f"a crossbar mapped at Rwg {tile.rwg_per_us:g} µS⁻¹ (its conductance range), "
                "which an optimizer cannot change; leave rwg_per_us out at device level (or "
                "convert with rwg_per_us=...)"
            )
        if sd is not None:
            raise ValueError(
                f"Invalid sd_us: {sd:g}; analog layer {tile.name!r} is on a device whose "
                f"SD(εcell) is its own ({tile.sd_us:.3g} µS, characterised); at device level "
                "set the EaPU threshold with threshold_us (µS) or threshold (weight units)"
            )
        return tile.sd_us, tile.rwg_per_us, "the device's SD(εcell), characterised"

    def threshold_for(self, p: Tensor, group: dict[str, Any]) -> float:
        """ΔWth in weight units for parameter ``p`` (derived from the device by default)."""
        sd, rwg, _ = self.write_model(p, group)
        if group["threshold"] is not None:
            return float(group["threshold"])
        if group["threshold_us"] is not None:
            return float(group["threshold_us"]) * rwg
        return sd * rwg

    def thresholds(self) -> list[dict[str, Any]]:
        """The threshold each analog parameter is written with, and where it comes from:
        ``name``, ``threshold`` (weight units), ``threshold_us`` (µS), ``sd_us``,
        ``rwg_per_us``, ``source``."""
        out = []
        for i, (p, group) in enumerate(
            (p, g) for g in self.param_groups for p in g["params"] if self.is_analog(p, g)
        ):
            sd, rwg, source = self.write_model(p, group)
            th = self.threshold_for(p, group)
            if group["threshold"] is not None:
                source = "threshold"
            elif group["threshold_us"] is not None:
                source = "threshold_us"
            tile = tile_of(p)
            name = tile.name if tile is not None else f"param{i}:{tuple(p.shape)}"
            out.append(
                dict(
                    name=name,
                    threshold=th,
                    threshold_us=th / rwg,
                    sd_us=sd,
                    rwg_per_us=rwg,
                    source=source,
                )
            )
        return out

    def __repr__(self) -> str:
        lines = [super().__repr__()]
        seen: dict[tuple[float, str], list[str]] = {}
        for t in self.thresholds():
            seen.setdefault((t["threshold_us"], t["source"]), []).append(t["name"])
        for (th_us, source), names in seen.items():
            some = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            lines.append(f"threshold {th_us:.4g} µS ({source}): {some}")
        return "\n".join(lines)

    def _check_group(self, group: dict[str, Any]) -> None:
        _validate_insitu(group)
        for p in group["params"]:  # an sd_us or Rwg a tile cannot follow is refused now
            if tile_of(p) is not None:
                self.write_model(p, group)

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
        """Step the analog parameters that `eapu.optim.fused` supports in one pass each; returns
        their ledger rows by ``id``. Where the fused path cannot be used, nothing."""
        index = {id(p): i for i, p in enumerate(analog)}
        items = []
        for g in self.param_groups:
            if g["rule"] != "eapu":
                continue
            for p in g["params"]:
                if p.grad is None or tile_of(p) is not None or id(p) not in index:
                    continue
                if sync_free(p):  # the fused kernel is the CPU's, host-checked
                    continue
                th = self.threshold_for(p, g)
                if th > 0 and fused.supports(self.base, g, p):
                    sd_us, rwg, _ = self.write_model(p, g)
                    sd_w = sd_us * rwg
                    items.append(fused.FusedItem(g, p, th, sd_w, index[id(p)]))
        if not items or not fused.available():  # (a CUDA-only model never builds the kernel)
            return {}
        rows = fused.step(self.base, items, generator=self._generator(torch.device("cpu")))
        return {id(it.param): row for it, row in zip(items, rows, strict=True)}

    def _apply(
        self, work: list[tuple[dict[str, Any], Tensor]], digital: list[Tensor], propose: Any
    ) -> dict[int, Any]:
        with_grad = [p for _, p in work] + digital
        if with_grad and sync_free(with_grad[0]):
            return self._apply_sync_free(work, digital, propose)
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
        inplace = [tile_of(p) is None and p.is_contiguous() for p in params]
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
        self._publish: list[tuple[Any, Tensor]] = []
        rows = {id(w.p): self._write(w) for w in plans}
        # The tiles' writes went to their crossbars' queues: every parameter then takes its
        # cells' values (the first read runs the queued writes, all at once).
        for tile, p in self._publish:
            tile.publish(p)
        return rows

    def _apply_sync_free(
        self, work: list[tuple[dict[str, Any], Tensor]], digital: list[Tensor], propose: Any
    ) -> dict[int, Any]:
        """The step without a host synchronisation (GPUs; `eapu.runtime`): whole-tensor
        masked work, the rule's dense form, every count a tensor.

        Non-finite gradient cells are zeroed before the base steps and then kept at their old
        value (counted as skipped), as on the host-checked path; the base optimizer steps the
        parameters themselves, and the analog ones are put back and written by the rule.
        """
        params = [p for _, p in work]
        with_grad = params + digital
        bad = [~p.grad.isfinite() for p in with_grad]  # type: ignore[union-attr]
        for p, b in zip(with_grad, bad, strict=True):
            p.grad.masked_fill_(b, 0)  # type: ignore[union-attr]
        olds = [p.detach().clone() for p in with_grad]
        propose()
        rows: dict[int, Any] = self._write_triton(work, olds, bad)
        self._publish = []
        for k, (group, p) in enumerate(work):
            if id(p) in rows:  # written by the Triton kernel
                continue
            old = olds[k]
            dw = p.detach() - old
            skip = bad[k] | ~dw.isfinite()
            dw = torch.where(skip, 0.0, dw)
            th = self.threshold_for(p, group)
            rule = get_rule(group["rule"])
            dwn = (
                dw
                if rule.passthrough or th == 0
                else rule.fn(dw, threshold=th, generator=self._generator(p.device))
            )
            p.copy_(old)
            tile = tile_of(p)
            if tile is not None:
                row = tile.program(dwn)
                row[FIELDS.index("skipped")] += skip.sum()
                self._publish.append((tile, p))
            else:
                written = dwn != 0
                sd_us, rwg, _ = self.write_model(p, group)
                noise = torch.randn(
                    p.shape,
                    generator=self._generator(p.device, noise=True),
                    device=p.device,
                    dtype=p.dtype,
                )
                p.add_(torch.where(written, dwn + noise * (sd_us * rwg), 0.0))
                n = written.sum()
                zero = torch.zeros_like(n)
                row = torch.stack([n, n, zero, zero, skip.sum(), zero])
            rows[id(p)] = row
        for tile, p in self._publish:
            tile.publish(p)
        for i, p in enumerate(digital):  # digital cells with a non-finite gradient stay put
            keep = bad[len(params) + i] | ~p.isfinite()
            torch.where(keep, olds[len(params) + i], p, out=p)
        return rows

    def _write_triton(
        self, work: list[tuple[dict[str, Any], Tensor]], olds: list[Tensor], bad: list[Tensor]
    ) -> dict[int, Tensor]:
        """On the sync-free path, write the weight-level EaPU parameters of ``work`` (their
        base's proposal in place, ``olds`` and ``bad`` by position) that
        `eapu.optim.triton_step` supports, in one kernel launch; returns their ledger rows by
        ``id``. The others (and all where triton is unavailable): nothing."""
        if not triton_step.available():
            return {}
        items = []
        for k, (group, p) in enumerate(work):
            if group["rule"] != "eapu" or tile_of(p) is not None:
                continue
            th = self.threshold_for(p, group)
            if th > 0 and triton_step.supports(p, olds[k], bad[k]):
                sd_us, rwg, _ = self.write_model(p, group)
                items.append(triton_step.WriteItem(p, olds[k], bad[k], th, sd_us * rwg, k))
        rows = triton_step.write(items, generator=self._generator)
        return {id(it.param): r for it, r in zip(items, rows, strict=True) if r is not None}

    def _write(self, plan: _Write) -> list[int] | Tensor:
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
        tile = tile_of(p)
        if tile is not None:
            if vals is None:
                dwn = new - old  # zero where nothing changed
            else:
                assert idx is not None
                dwn = to_dense(idx, vals, p)
            row = tile.program(dwn)  # filled in when the step's writes are flushed
            self._publish.append((tile, p))
            row[FIELDS.index("skipped")] += nskip
            return row
        # Weight level: a written cell gets old + ΔWn (the proposal itself when every update
        # passes) and its write noise Rwg · N(0, SD εcell); the others keep their old value.
        target = new if vals is None else old
        flat = target.view(-1) if p.is_contiguous() else target.contiguous().view(-1)
        sd_us, rwg, _ = self.write_model(p, group)
        sd_w = sd_us * rwg
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
