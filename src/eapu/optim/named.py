"""The named in-situ optimizers: `AdamEaPU`, `SGDEaPU` and the noisy-BP baselines
`AdamNoise`, `SGDNoise`, one body (`NamedInSitu`) with a base optimizer and a rule each."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.optim import Optimizer

from .base import materialize
from .insitu import InSituOptimizer

__all__ = ["AdamEaPU", "AdamNoise", "NamedInSitu", "SGDEaPU", "SGDNoise"]


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


class NamedInSitu(InSituOptimizer):
    """The one body of the named optimizers: a fixed base optimizer (``base_class``) and rule
    (``rule_name``), torch's fused kernel for the base where it applies.

    Args:
        params: parameters or parameter groups (any in-situ option may be set per group).
        lr: the base optimizer's learning rate (default 1e-3).
        sd_us: SD of εcell in µS at weight level (default 2.0). A weight on a tile has its
            device's characterised SD(εcell); an ``sd_us`` given for it is refused.
        rwg_per_us: Rwg = Wmax / Gmax in µS⁻¹ at weight level (default 1/80, the paper's);
            a tile has its crossbar's.
        threshold: ΔWth in weight units (default: SD(εcell)·Rwg). The exact rule of the
            noisy-BP baselines writes every update whatever the threshold.
        threshold_us: ΔWth in µS, ΔWth = threshold_us·Rwg (default None): how a device-level
            threshold is set.
        analog: predicate choosing the analog parameters (default ``p.dim() > 1``).
        seed: seeds the rule and the write noise (default None: drawn from torch's global
            generator, so ``torch.manual_seed`` governs).
        **base_kwargs: passed to the base optimizer (``betas``, ``eps``, ``momentum``,
            ``weight_decay``, ...); torch's fused kernel is used where it applies.
    """

    base_class: ClassVar[type[Optimizer]]
    rule_name: ClassVar[str]

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        *,
        sd_us: float | None = None,
        rwg_per_us: float | None = None,
        threshold: float | None = None,
        threshold_us: float | None = None,
        analog: Callable[[Tensor], bool] | None = None,
        seed: int | None = None,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(
            _named(params, base_kwargs),
            self.base_class,
            rule=self.rule_name,
            sd_us=sd_us,
            rwg_per_us=rwg_per_us,
            threshold=threshold,
            threshold_us=threshold_us,
            analog=analog,
            seed=seed,
            lr=lr,
            **base_kwargs,
        )


class AdamEaPU(NamedInSitu):
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
    Arguments: `NamedInSitu`'s (``lr``, ``sd_us``, ``rwg_per_us``, ``threshold``,
    ``threshold_us``, ``analog``, ``seed``, and ``torch.optim.Adam``'s own).
    """

    base_class = torch.optim.Adam
    rule_name = "eapu"


class SGDEaPU(NamedInSitu):
    """SGD proposes ΔW = -lr·grad (momentum, Nesterov, weight decay as torch's SGD); EaPU
    (the paper's formula 4) decides what is written, as in `AdamEaPU`.

    A written cell receives ΔWn plus its write error (N(0, ``sd_us``)·Rwg at weight level,
    its tile's device and scheme at device level); digital parameters take SGD's update.
    Arguments: `NamedInSitu`'s, and ``torch.optim.SGD``'s own.
    """

    base_class = torch.optim.SGD
    rule_name = "eapu"


class AdamNoise(NamedInSitu):
    """Noisy BP, the baseline the paper compares EaPU against: every Adam update is written
    (ΔWn = ΔW, the ``exact`` rule), and every written cell gets its write error
    (N(0, ``sd_us``)·Rwg at weight level, its tile's device and scheme at device level).
    Arguments: `NamedInSitu`'s, and ``torch.optim.Adam``'s own.
    """

    base_class = torch.optim.Adam
    rule_name = "exact"


class SGDNoise(NamedInSitu):
    """Noisy BP with SGD: every SGD update is written (ΔWn = ΔW, the ``exact`` rule), and
    every written cell gets its write error (N(0, ``sd_us``)·Rwg at weight level, its
    tile's device and scheme at device level).
    Arguments: `NamedInSitu`'s, and ``torch.optim.SGD``'s own.
    """

    base_class = torch.optim.SGD
    rule_name = "exact"
