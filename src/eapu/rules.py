"""Update rules: pure functions that turn a proposed update ΔW into the update ΔWn to write.

A rule knows nothing of devices or optimizers. It takes the base optimizer's proposal and
returns what should be written to the analog cells; a cell whose ΔWn is exactly 0 is not
written at all (no pulse, no write noise).

>>> import torch
>>> g = torch.Generator().manual_seed(1)
>>> dw = torch.tensor([0.5, -0.02, 0.0])
>>> eapu(dw, threshold=0.025, generator=g)  # big passes; -0.02 -> -0.025 w.p. 0.8, else 0
tensor([ 0.5000, -0.0250,  0.0000])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "RuleInfo",
    "eapu",
    "eapu_foreach",
    "exact",
    "exact_foreach",
    "get_rule",
    "list_rules",
]


def _check_threshold(threshold: float) -> None:
    if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"Invalid threshold: {threshold!r}; allowed: a finite number >= 0")


def exact(
    dw: Tensor, *, threshold: float = 0.0, generator: torch.Generator | None = None
) -> Tensor:
    """Plain backpropagation: every proposed update is written as it is (ΔWn = ΔW).

    ``threshold`` and ``generator`` are accepted so that every rule has one signature.
    """
    return dw


def eapu(dw: Tensor, *, threshold: float, generator: torch.Generator | None = None) -> Tensor:
    """The error-aware probabilistic update, formula (4) of Liu et al. (2025).

    ``|ΔW| >= threshold`` passes unchanged. Below the threshold, ΔWn = sign(ΔW)·threshold
    with probability ``|ΔW| / threshold``, else exactly 0, so that E[ΔWn] = ΔW.

    One uniform draw per element from ``generator`` (in the tensor's memory order) decides;
    the draw is made for every element, so the stream advances by ``dw.numel()`` whatever
    the values are. A threshold of 0 returns ``dw`` unchanged and draws nothing.

    Args:
        dw: proposed update, any shape, floating point.
        threshold: ΔWth in weight units (the paper: SD(εcell) · Rwg), >= 0.
        generator: source of the Bernoulli draws (on ``dw``'s device).
    """
    _check_threshold(threshold)
    if threshold == 0:
        return dw
    u = torch.rand(dw.shape, generator=generator, device=dw.device, dtype=dw.dtype)
    # One comparison decides both branches: for |ΔW| >= th it always holds (u < 1);
    # below it, it holds with probability |ΔW| / th. ΔW = 0 is never written.
    adw = dw.abs()
    unwritten = adw <= u.mul_(threshold)
    # A written cell gets sign(ΔW)·max(|ΔW|, th): ΔW itself, bit for bit, when |ΔW| >= th.
    return adw.clamp_(min=threshold).copysign_(dw).masked_fill_(unwritten, 0.0)


def exact_foreach(
    dws: Sequence[Tensor],
    *,
    thresholds: Sequence[float] | float = 0.0,
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """`exact` over a list of tensors."""
    return list(dws)


def eapu_foreach(
    dws: Sequence[Tensor],
    *,
    thresholds: Sequence[float] | float,
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """`eapu` over a list of tensors with per-tensor thresholds, using ``torch._foreach_*``.

    Draws are made tensor by tensor in list order, so the result equals
    ``[eapu(dw, threshold=t, generator=g) for dw, t in zip(dws, thresholds)]`` exactly.
    """
    dws = list(dws)
    ths = (
        [float(thresholds)] * len(dws) if isinstance(thresholds, (int, float)) else list(thresholds)
    )
    if len(ths) != len(dws):
        raise ValueError(f"thresholds has {len(ths)} entries for {len(dws)} tensors; need one each")
    for t in ths:
        _check_threshold(t)
    out: list[Tensor] = list(dws)
    idx = [i for i, t in enumerate(ths) if t > 0]
    if not idx:
        return out
    sel = [dws[i] for i in idx]
    th = [ths[i] for i in idx]
    us = [torch.rand(d.shape, generator=generator, device=d.device, dtype=d.dtype) for d in sel]
    torch._foreach_mul_(us, th)
    adws = torch._foreach_abs(sel)
    signs = torch._foreach_sign(sel)
    torch._foreach_mul_(signs, th)
    for k, i in enumerate(idx):
        unwritten = adws[k] <= us[k]
        out[i] = torch.where(adws[k] >= th[k], sel[k], signs[k]).masked_fill_(unwritten, 0.0)
    return out


@dataclass(frozen=True)
class RuleInfo:
    """A registered update rule."""

    name: str
    fn: Callable[..., Tensor]
    foreach: Callable[..., list[Tensor]]
    description: str


_RULES: dict[str, RuleInfo] = {
    "exact": RuleInfo("exact", exact, exact_foreach, "plain BP: write every update as proposed"),
    "eapu": RuleInfo(
        "eapu", eapu, eapu_foreach, "error-aware probabilistic update (Liu et al. 2025, eq. 4)"
    ),
}


def get_rule(name: str) -> RuleInfo:
    """The registered rule called ``name``."""
    try:
        return _RULES[name]
    except KeyError:
        raise ValueError(f"unknown rule {name!r}; available: {', '.join(_RULES)}") from None


def list_rules() -> list[str]:
    """Names of the registered rules."""
    return list(_RULES)
