"""Mixed-precision in-situ training (Nandakumar et al., Front. Neurosci. 14, 406, 2020)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from .. import validate
from .base import (
    TileAlgorithm,
    analog_tile,
    granularity,
    pulse_train_on,
    register_algorithm,
)

__all__ = ["MixedPrecision"]


@register_algorithm(
    "mixed-precision",
    "mixed-precision accumulator, written in whole pulses (Nandakumar et al. 2020)",
)
class MixedPrecision(TileAlgorithm):
    """Mixed-precision in-situ training (Nandakumar et al., Front. Neurosci. 14, 406, 2020).

    A digital accumulator χ per analog weight gathers the proposed updates; the device is
    written only in whole multiples of its granularity ε (one pulse's mean step)::

        χ ← χ + ΔW                                  (ΔW = -lr·grad, or the base's proposal)
        n = min(floor(|χ| / ε), max_pulses)
        program ΔWn = n·ε·sign(χ) onto the tile     (cells with n = 0 are not written)
        χ ← χ - n·ε·sign(χ)

    The deterministic cousin of EaPU: EaPU writes ΔWth·sign(ΔW) with probability |ΔW|/ΔWth,
    mixed precision writes when the accumulated update reaches ε. χ subtracts the *intended*
    update; the device's actual error is not fed back (as in the paper).

    Writing: with the crossbar's ``sign`` scheme the n steps are n identical pulses (applied
    in rounds); any other scheme (``gaussian``, ``two_pulse``, ``write_verify``,
    ``memorial``) is asked once for the target n·ε and spends what it needs (Nandakumar et al.
    apply n pulses without verify: the ``sign`` scheme is the faithful choice).

    Args:
        params: parameters or groups; tile-backed ones are analog, the rest digital.
        lr: learning rate of the base optimizer (> 0).
        granularity_us: ε in µS (ε in weight units = granularity_us · Rwg); default the
            device's ``step_up_us``.
        max_pulses: at most this many steps of ε per cell and step (the rest stays in χ).
        base: the optimizer that proposes ΔW (default ``torch.optim.SGD``).
        seed: seeds the optimizer's generator (unused by this deterministic rule, kept for a
            uniform interface and state); None: drawn from torch's global generator.
        **base_kwargs: passed to ``base`` (``momentum``, ...).
    """

    _OWN_KEYS = ("granularity_us", "max_pulses")

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.01,
        *,
        granularity_us: float | None = None,
        max_pulses: int = 100,
        base: type[Optimizer] = torch.optim.SGD,
        seed: int | None = None,
        **base_kwargs: Any,
    ) -> None:
        validate.number("lr", lr, low=0, low_open=True)
        if granularity_us is not None:
            validate.number("granularity_us", granularity_us, low=0, low_open=True)
        validate.integer("max_pulses", max_pulses, low=1)
        super().__init__(
            params,
            base,
            seed=seed,
            defaults=dict(granularity_us=granularity_us, max_pulses=max_pulses),
            base_kwargs=dict(lr=lr, **base_kwargs),
        )

    def epsilon(self, p: Tensor) -> float:
        """ε of analog parameter ``p`` in weight units."""
        tile = analog_tile(p)
        g_us = self._group_of(p)["granularity_us"]
        return granularity(tile) if g_us is None else float(g_us) * tile.rwg_per_us

    def _slot(self, p: Tensor) -> dict[str, Any]:
        slot = self._slots.get(id(p))
        if slot is None:
            slot = self._slots[id(p)] = {
                "chi": torch.zeros_like(p, memory_format=torch.contiguous_format)
            }
        return slot

    def _update(self, p: Tensor, dw: Tensor | None, group: dict[str, Any]) -> list[Tensor]:
        if dw is None:
            return []
        tile = analog_tile(p)
        chi = self._slot(p)["chi"]
        chi.add_(dw)
        eps = self.epsilon(p)
        n = torch.floor(chi.abs() / eps).clamp(max=group["max_pulses"])
        n = (n * torch.sign(chi)).to(torch.int64)
        chi.sub_(n.to(chi.dtype) * eps)
        # queued: the step's writes to the crossbar run together
        return [pulse_train_on(tile, n, eps, tile.scheme, flush=False)]

    def _slot_state(self, slot: dict[str, Any]) -> dict[str, Any]:
        return {"chi": slot["chi"].clone()}

    def _load_slot_state(self, slot: dict[str, Any], state: dict[str, Any]) -> None:
        slot["chi"].copy_(state["chi"])
