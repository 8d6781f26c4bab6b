"""AGAD (Rasch et al., Nat. Commun. 15, 7133, 2024): chopped Tiki-Taka whose reference is a
running mean of the fast array's own reads, on eapu's tiles."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from .. import validate
from ..ledger import FIELDS
from .base import granularity, register_algorithm
from .tiki_taka import FAST_LR, TikiTakaV2

__all__ = ["AGAD"]

_R = FIELDS.index("reads")


@register_algorithm(
    "agad",
    "AGAD: chopped transfers read against a running mean of A (dynamic reference; "
    "Rasch et al. 2024)",
    options={"fast_lr": FAST_LR},
)
class AGAD(TikiTakaV2):
    """AGAD, chopped Tiki-Taka with a dynamic reference (Rasch, Carta, Fagbohungbe, Gokmen,
    Nat. Commun. 15, 7133, 2024): aihwkit 1.2.0's ``DynamicTransferCompound``.

    `TikiTakaV2`'s fast array A, buffer H and slow array C, with input choppers c_j that
    flip regularly, every ``chopper_every``-th read of a line; what is transferred is not
    A's read but its change since the end of the last chopper period, measured against a
    past mean P that the algorithm keeps itself. Per read of input line j (the pseudocode of
    aihwkit's ``DynamicTransferRPUDevice::readAndUpdate``, ``rpu_dynamic_transfer_device.cpp``
    lines 197-344)::

        v   = read(A[:, j]) - A_sp[:, j]          (A_sp = 0 unless subtract_symmetry_point)
        k   = passes mod n + 1                    (the read's place in its period, n reads)
        if line j switched its chopper at its last read:   P[:, j] ← M[:, j]
        H[:, j] ← H[:, j] + c_j · (v - P[:, j]) · transfer_lr · lr / g_H   (/ min(k, 1/ε_A)
                                                   with correct_accumulation)
        n_i = trunc(H), |n_i| <= transfer_pulses, where |H| >= 1; H forgotten or reduced
              (and with buffer_cap, clipped to ±buffer_cap·transfer_pulses)
        M[:, j] ← (1 - m) · M[:, j] + m · v       (m = min(tail_weightening / n, 1))
        C[:, j] ← C[:, j] + n pulses of ε_C       only once passes > n (the write gate)
        if k == n: c_j flips
        after the last line: passes ← passes + 1

    M is an exponential running mean of A's reads, never reset; P, frozen for a whole
    period, is M as the last period ended, i.e. where A stood then. A's drift towards its
    symmetry point keeps its sign while the chopper flips, so it alternates in sign in H and
    averages out; the gradient, written onto A chopped, is de-chopped by c_j and accumulates.
    AGAD thus needs no programmed reference and no calibrated symmetry point: A is read raw
    (``subtract_symmetry_point=False``, the default here) and its offset is P's business.
    H receives each read's (v - P), so a gradient that reached A early in a period is
    counted once per remaining read of that period (a triangular weighting; aihwkit's
    ``experimental_correct_accumulation`` divides the k-th read by k). During the first n + 1
    passes C takes no pulse (H still accumulates and is still reduced when it crosses 1).

    Defaults (aihwkit 1.2.0, ``aihwkit/simulator/presets/configs.py``
    ``AGADReRamSBPreset``, line 1251, and the ``DynamicTransferCompound`` defaults of
    ``aihwkit/simulator/configs/compounds.py`` lines 875-1054): fast_lr 0.5 with
    auto-scaling, 31 pulses per sample (``update.desired_bl``), one line read per sample,
    transfer_lr 1 scaled by the SGD learning rate, auto_granularity 1000, buffer_granularity
    1, one pulse per transfer (``transfer_update.desired_bl``), buffer forgotten after a pulse
    (momentum 0), chopper period n = 50 reads (``in_chop_prob`` 0.02, n = max(ceil(1/p), 2)),
    regular switching (``in_chop_random`` False), tail_weightening 5 (m = 0.1), no
    correct_accumulation, no buffer cap, gamma 0. The other AGAD presets differ in fast_lr,
    auto_granularity, tail_weightening and n (ES: as SB; Capacitor 0.1 / 1000 / 20 / 100;
    EcRam 0.1 / 750 / 50 / 200; EcRamMO and Idealized 0.1 / 500 / 50 / 200, with 100 pulses
    per sample). One choice differs from ``AGADReRamSBPreset``: that preset's ReRAM device
    subtracts every cell's exact symmetry point (``subtract_symmetry_point=True``), while
    the ES, Capacitor, ECRAM and Idealized AGAD presets read A raw; here A is read raw by
    default (AGAD's point), and ``subtract_symmetry_point=True`` gives the SB preset.

    Not modelled (aihwkit's own options left out): random chopper switches on top of the
    regular ones (``in_chop_random``; aihwkit's k is then wrong, its code says so), output
    choppers (AGAD ignores ``out_chop_prob`` on aihwkit's CPU path), the C++-only fast-lr
    feedback. The simplifications of `TikiTakaV2` (A written once per step, samples counted
    per image of a convolution, the transfer read without ADC or output noise) hold here
    too; with them the period and the write gate count reads of eapu's schedule.

    Args:
        params: parameters or groups; tile-backed ones are analog, the rest digital.
        lr: learning rate (> 0) of the base optimizer and the scale of the transfer into H.
        chopper_every: the chopper period n in reads of a line (>= 2; aihwkit's
            in_chop_prob p gives n = max(ceil(1/p), 2)).
        tail_weightening: the running mean's momentum is m = min(tail_weightening / n, 1)
            per read (> 0).
        correct_accumulation: divide the k-th read of a period by min(k, 1/ε_A) (aihwkit's
            ``experimental_correct_accumulation``).
        buffer_cap: with ``forget_buffer=False``, clip H to ±buffer_cap · transfer_pulses
            after a pulse (0: no cap; aihwkit's default).
        subtract_symmetry_point: read A relative to its cells' symmetry point (False: raw).
        **kwargs: `TikiTakaV2`'s other options (fast_lr, auto_scale, desired_bl,
            transfer_every, transfer_lr, auto_granularity, transfer_pulses, forget_buffer,
            momentum, gamma, fast_scheme, base, seed ...).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.01,
        *,
        chopper_every: int = 50,
        tail_weightening: float = 5.0,
        correct_accumulation: bool = False,
        buffer_cap: float = 0.0,
        subtract_symmetry_point: bool = False,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("chopper_probability"):
            raise ValueError(
                f"Invalid chopper_probability: {kwargs['chopper_probability']!r}; allowed: 0 "
                "(AGAD switches its choppers regularly, every chopper_every reads)"
            )
        kwargs.pop("chopper_probability", None)
        validate.integer("chopper_every", chopper_every, low=2)
        validate.number("tail_weightening", tail_weightening, low=0, low_open=True)
        if not isinstance(correct_accumulation, bool):
            raise ValueError(
                f"Invalid correct_accumulation: {correct_accumulation!r}; allowed: True or False"
            )
        validate.number("buffer_cap", buffer_cap, low=0)
        if buffer_cap > 0 and kwargs.get("forget_buffer", True):
            raise ValueError(
                f"Invalid buffer_cap: {buffer_cap!r} with forget_buffer=True; allowed: 0, or "
                "forget_buffer=False (a forgotten buffer needs no cap)"
            )
        self.tail_weightening = float(tail_weightening)
        self.correct_accumulation = correct_accumulation
        self.buffer_cap = float(buffer_cap)
        super().__init__(
            params,
            lr,
            chopper_every=chopper_every,
            subtract_symmetry_point=subtract_symmetry_point,
            **kwargs,
        )

    @property
    def period(self) -> int:
        """The chopper period n in reads of a line."""
        assert self.chopper_every is not None
        return self.chopper_every

    @property
    def mean_momentum(self) -> float:
        """m = min(tail_weightening / n, 1): the running mean's weight of a new read."""
        return min(self.tail_weightening / self.period, 1.0)

    def running_mean(self, p: Tensor) -> Tensor:
        """M: the running mean of A's reads (weight units, less A's symmetry point if
        subtracted)."""
        return self._slot(p)["M"]  # type: ignore[no-any-return]

    def past_mean(self, p: Tensor) -> Tensor:
        """P: the reference of the present period, M as the last period ended."""
        return self._slot(p)["P"]  # type: ignore[no-any-return]

    def passes(self, p: Tensor) -> int:
        """Full passes over ``p``'s input lines so far (aihwkit's ``transfer_counter_``)."""
        return int(self._slot(p)["passes"])

    def _slot(self, p: Tensor) -> dict[str, Any]:
        slot = super()._slot(p)
        if "M" not in slot:
            shape = slot["H"].shape
            on = slot["H"].device
            slot["M"] = torch.zeros(shape, dtype=torch.float32, device=on)
            slot["P"] = torch.zeros(shape, dtype=torch.float32, device=on)
            slot["switched"] = torch.zeros(slot["c"].numel(), dtype=torch.bool, device=on)
            slot["passes"] = 0
        return slot

    def _reads(
        self, p: Tensor, slot: dict[str, Any], n_reads: int, lr: float
    ) -> tuple[Tensor, list[Tensor]]:
        """``n_reads`` line reads of A into H against the past mean, in read order: the
        reads' ledger row and, per round, the whole pulses H sends to C once the write gate
        is open (written afterwards, `TikiTakaV2._after_updates`; see the class)."""
        fast = slot["A"]
        on = slot["H"].device
        row = torch.zeros(len(FIELDS), dtype=torch.int64, device=on)
        lines = slot["c"].numel()
        start = slot["next"]
        slot["next"] = (start + n_reads) % lines
        offsets = start + torch.arange(n_reads, device=on)
        order = offsets % lines
        passes = slot["passes"] + torch.div(offsets, lines, rounding_mode="floor")
        slot["passes"] += (start + n_reads) // lines
        n = self.period
        m = self.mean_momentum
        gain = self.buffer_gain(p, lr)
        tp = self.transfer_pulses
        cap = self.buffer_cap * tp
        line_of = slot["line_of"]
        h, mean, past = slot["H"], slot["M"], slot["P"]
        eps_a = granularity(fast)
        trains = []
        # A is written once per step, so reads of distinct lines commute: one round per
        # repeated visit of a line; the pass of each read is kept (the write gate and the
        # chopper period count passes).
        for r in range(math.ceil(n_reads / lines)):
            idx = order[r * lines : (r + 1) * lines]
            pass_at = passes[r * lines : (r + 1) * lines]
            sel = torch.zeros(lines, dtype=torch.bool, device=on)
            sel[idx] = True
            read_lines = sel[line_of]
            line_pass = torch.zeros(lines, dtype=torch.int64, device=on)
            line_pass[idx] = pass_at
            v = fast.read() - slot["ref"]
            row[_R] += read_lines.sum() * fast.cells_per_weight
            past.copy_(torch.where(read_lines & slot["switched"][line_of], mean, past))
            scale: Tensor | float = gain
            if self.correct_accumulation:
                k = (line_pass % n + 1).to(torch.float32).clamp(max=1.0 / eps_a)
                scale = gain / k[line_of]
            h.add_(torch.where(read_lines, slot["c"][line_of] * (v - past) * scale, 0.0))
            steps = torch.trunc(h).clamp(-tp, tp)
            steps = torch.where(read_lines & (h.abs() >= 1), steps, 0.0)
            moved = steps != 0
            if self.forget_buffer:
                h.copy_(torch.where(moved, h * self.momentum, h))
            else:
                h.sub_((1 - self.momentum) * steps)
                if cap > 0:
                    h.copy_(torch.where(moved, h.clamp(-cap, cap), h))
            mean.copy_(torch.where(read_lines, (1 - m) * mean + m * v, mean))
            trains.append(torch.where((line_pass > n)[line_of], steps, 0.0).to(torch.int64))
            slot["reads"][idx] += 1
            flip = pass_at % n == n - 1
            slot["switched"][idx] = flip
            slot["c"][idx] = torch.where(flip, -slot["c"][idx], slot["c"][idx])
        return row, trains

    def _slot_state(self, slot: dict[str, Any]) -> dict[str, Any]:
        return {
            **super()._slot_state(slot),
            "M": slot["M"].clone(),
            "P": slot["P"].clone(),
            "switched": slot["switched"].clone(),
            "passes": int(slot["passes"]),
        }

    def _load_slot_state(self, slot: dict[str, Any], state: dict[str, Any]) -> None:
        super()._load_slot_state(slot, state)
        slot["M"].copy_(state["M"])
        slot["P"].copy_(state["P"])
        slot["switched"].copy_(state["switched"])
        slot["passes"] = int(state["passes"])
