"""Update rules: pure functions that turn a proposed update ΔW into the update ΔWn to write.

A rule knows nothing of devices or optimizers. It takes the base optimizer's proposal and
returns what should be written to the analog cells; a cell whose ΔWn is exactly 0 is not
written at all (no pulse, no write noise). Each rule has a dense form (ΔWn shaped like ΔW)
and a sparse one (the written cells' indices and ΔWn there), which the optimizer uses: EaPU
writes a few percent of the cells, and drawing only candidates keeps its cost near that.

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
from typing import Any

import torch
from torch import Tensor

from . import validate
from .registry import Registry
from .runtime import sync_free

__all__ = [
    "RULES",
    "RuleInfo",
    "bernoulli_positions",
    "eapu",
    "eapu_foreach",
    "eapu_sparse",
    "exact",
    "exact_foreach",
    "exact_sparse",
    "get_rule",
    "list_rules",
    "max_abs",
    "max_abs_each",
    "to_dense",
]


def exact(
    dw: Tensor, *, threshold: float = 0.0, generator: torch.Generator | None = None
) -> Tensor:
    """Plain backpropagation: every proposed update is written as it is (ΔWn = ΔW).

    ``threshold`` and ``generator`` are accepted so that every rule has one signature.
    """
    return dw


def exact_sparse(
    dw: Tensor,
    *,
    threshold: float = 0.0,
    generator: torch.Generator | None = None,
    amax: float | None = None,
) -> tuple[Tensor, Tensor]:
    """`exact` as (indices into ``dw.reshape(-1)``, ΔWn there): every nonzero update."""
    flat = dw.reshape(-1)
    idx = flat.nonzero().squeeze(1)
    return idx, flat.index_select(0, idx)


# Below this candidate rate, drawing the candidates' gaps beats one uniform draw per cell
# (`python benchmarks/rule_sampler.py`, CPU: 5.1x faster at q = 0.04, 1.05x at 0.2, 0.91x
# at 0.25, 0.67x at 0.4; the two are within 10 % of each other around the cutoff).
_SPARSE_BELOW = 0.25


def eapu_sparse(
    dw: Tensor,
    *,
    threshold: float,
    generator: torch.Generator | None = None,
    amax: float | None = None,
) -> tuple[Tensor, Tensor]:
    """The error-aware probabilistic update, formula (4) of Liu et al. (2025), as the
    written cells: (int64 indices into ``dw.reshape(-1)``, ascending; ΔWn at them).

    ``|ΔW| >= threshold`` passes unchanged. Below the threshold, ΔWn = sign(ΔW)·threshold
    with probability ``|ΔW| / threshold``, else the cell is not written, so E[ΔWn] = ΔW.

    How it draws (cells are independent either way): with q = max|ΔW| / threshold < 1/4,
    candidate cells are a Bernoulli(q) process drawn as geometric gaps (about q·n draws
    instead of n), and a candidate is written with probability |ΔW| / max|ΔW|; otherwise one
    uniform per cell decides. A threshold of 0 writes every nonzero update and draws nothing.

    Args:
        dw: proposed update, any shape, floating point, finite.
        threshold: ΔWth in weight units (the paper: SD(εcell) · Rwg), >= 0.
        generator: source of the draws (on ``dw``'s device).
        amax: ``dw.abs().max()`` if the caller already has it (saves a pass).
    """
    validate.number("threshold", threshold, low=0)
    if threshold == 0:
        return exact_sparse(dw)
    flat = dw.reshape(-1)
    if amax is None:
        amax = max_abs(flat)
    if not math.isfinite(amax):
        raise ValueError(f"Invalid dw: max |dw| is {amax}; allowed: finite values only")
    empty = flat.new_empty(0, dtype=torch.int64)
    q = amax / threshold
    if q == 0:
        return empty, flat.new_empty(0)
    # Uniforms in at least float32: a half-precision uniform would round the probabilities.
    udtype = torch.promote_types(flat.dtype, torch.float32)
    if q < _SPARSE_BELOW:
        pos = bernoulli_positions(flat.numel(), q, generator=generator, device=flat.device)
        d = flat.index_select(0, pos)
        u = torch.rand(pos.numel(), generator=generator, device=flat.device, dtype=udtype)
        written = u.mul_(amax) < d.abs()  # P = |ΔW| / max|ΔW|; times q: |ΔW| / threshold
        return pos.masked_select(written), d.masked_select(written).sign_().mul_(threshold)
    u = torch.rand(flat.numel(), generator=generator, device=flat.device, dtype=udtype)
    # Holds always for |ΔW| >= th (u < 1), with probability |ΔW| / th below; never for 0.
    idx = (flat.abs() > u.mul_(threshold)).nonzero().squeeze(1)
    d = flat.index_select(0, idx)
    return idx, torch.where(d.abs() >= threshold, d, d.sign().mul_(threshold))


def eapu(dw: Tensor, *, threshold: float, generator: torch.Generator | None = None) -> Tensor:
    """`eapu_sparse` as a dense tensor shaped like ``dw``: 0 where nothing is written.

    A threshold of 0 returns ``dw`` itself. On the sync-free path (`eapu.runtime`) it draws
    one uniform per cell instead of the candidates' gaps.
    """
    validate.number("threshold", threshold, low=0)
    if threshold == 0:
        return dw
    if sync_free(dw):
        # The GPU's form: one uniform per cell, fixed shapes (the candidates of the sparse
        # form have a data-dependent count). The same distribution, other numbers.
        a = dw.abs()
        u = torch.rand(dw.shape, generator=generator, device=dw.device, dtype=dw.dtype)
        lifted = torch.where(u * threshold < a, torch.sign(dw) * threshold, 0.0)
        return torch.where(a >= threshold, dw, lifted)
    idx, vals = eapu_sparse(dw, threshold=threshold, generator=generator)
    return to_dense(idx, vals, dw)


def max_abs(t: Tensor) -> float:
    """max |t| as a float (0 for an empty tensor; NaN if ``t`` holds a NaN)."""
    return max_abs_each([t])[0]


def max_abs_each(tensors: Sequence[Tensor]) -> list[float]:
    """`max_abs` of each tensor: one pass each (no |t| temporary) and one host sync."""
    out = [0.0] * len(tensors)
    live = [i for i, t in enumerate(tensors) if t.numel()]
    if live:
        ext = torch.stack([torch.stack(torch.aminmax(tensors[i])).double() for i in live])
        for i, (lo, hi) in zip(live, ext.tolist(), strict=True):
            out[i] = math.nan if math.isnan(lo) or math.isnan(hi) else max(-lo, hi)
    return out


def to_dense(idx: Tensor, vals: Tensor, like: Tensor) -> Tensor:
    """A sparse rule's (cells, ΔWn) as a tensor shaped like ``like``, 0 elsewhere."""
    out = torch.zeros(like.numel(), dtype=like.dtype, device=like.device)
    return out.index_copy_(0, idx, vals).view(like.shape)


def _gap_draws(mean: float) -> int:
    """Gaps to draw for ``mean`` expected positions: enough to pass the end almost always
    (6 SD over the mean); if not, `bernoulli_positions` draws on from where it stopped."""
    return int(mean + 6 * math.sqrt(mean) + 16)


def bernoulli_positions(
    n: int, q: float, *, generator: torch.Generator | None = None, device: Any = None
) -> Tensor:
    """Ascending positions in ``[0, n)``, each present independently with probability q.

    Drawn as i.i.d. geometric gaps G = 1 + floor(log V / log(1 - q)), V uniform on (0, 1]
    (float64, so P(G > k) = (1 - q)^k to within 2^-53): about q·n draws, not n.
    """
    if not 0 < q < 1:
        raise ValueError(f"Invalid q: {q!r}; allowed: 0 < q < 1")
    c = math.log1p(-q)
    chunks: list[Tensor] = []
    last = -1
    while True:
        k = _gap_draws((n - 1 - last) * q)
        v = torch.rand(k, generator=generator, device=device, dtype=torch.float64)
        gaps = v.neg_().log1p_().div_(c).clamp_(max=n).to(torch.int64).add_(1)
        pos = gaps.cumsum_(0).add_(last)
        end = int(torch.searchsorted(pos, n))
        chunks.append(pos[:end])
        if end < k:
            return chunks[0] if len(chunks) == 1 else torch.cat(chunks)
        last = int(pos[-1])


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
    """`eapu` over a list of tensors with per-tensor thresholds.

    The maxima of all tensors come from one pass each and one host sync; the draws are
    made tensor by tensor in list order, so the result equals
    ``[eapu(dw, threshold=t, generator=g) for dw, t in zip(dws, thresholds)]`` exactly.
    """
    dws = list(dws)
    ths = (
        [float(thresholds)] * len(dws) if isinstance(thresholds, (int, float)) else list(thresholds)
    )
    if len(ths) != len(dws):
        raise ValueError(f"thresholds has {len(ths)} entries for {len(dws)} tensors; need one each")
    for t in ths:
        validate.number("threshold", t, low=0)
    out: list[Tensor] = list(dws)
    idx = [i for i, t in enumerate(ths) if t > 0]
    for i, amax in zip(idx, max_abs_each([dws[i] for i in idx]), strict=True):
        cells, vals = eapu_sparse(dws[i], threshold=ths[i], generator=generator, amax=amax)
        out[i] = to_dense(cells, vals, dws[i])
    return out


@dataclass(frozen=True)
class RuleInfo:
    """A registered update rule.

    ``passthrough``: the rule writes every proposed update as it is (ΔWn = ΔW), so an
    optimizer may skip computing ΔW and write the proposal itself.
    """

    name: str
    fn: Callable[..., Tensor]
    foreach: Callable[..., list[Tensor]]
    sparse: Callable[..., tuple[Tensor, Tensor]]
    description: str
    passthrough: bool = False


#: Every update rule; installed packages add theirs (``RuleInfo`` objects) under ``eapu.rules``.
RULES: Registry[RuleInfo] = Registry("rule", entry_point_group="eapu.rules", sort=False)
RULES.add(
    "exact",
    RuleInfo(
        "exact",
        exact,
        exact_foreach,
        exact_sparse,
        "plain BP: write every update as proposed",
        passthrough=True,
    ),
)
RULES.add(
    "eapu",
    RuleInfo(
        "eapu",
        eapu,
        eapu_foreach,
        eapu_sparse,
        "error-aware probabilistic update (Liu et al. 2025, eq. 4)",
    ),
)


def get_rule(name: str) -> RuleInfo:
    """The registered rule called ``name``."""
    return RULES.get(name)


def list_rules() -> list[str]:
    """Names of the registered rules."""
    return RULES.names()
