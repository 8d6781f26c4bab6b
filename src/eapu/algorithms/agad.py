"""AGAD (Rasch et al., Nat. Commun. 15, 7133, 2024): chopped Tiki-Taka whose reference is a
running mean of the fast array's own reads, on eapu's tiles."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .. import validate
from ..ledger import FIELDS
from ..seam import AnalogTile
from .base import granularity, register_algorithm
from .tiki_taka import FastSlot, TikiTakaV2
from .tiki_taka_config import FAST_LR, TikiTakaConfig

__all__ = ["AGAD", "AGADConfig", "AGADSlot"]

_R = FIELDS.index("reads")


@dataclass(frozen=True)
class AGADConfig(TikiTakaConfig):
    """`TikiTakaConfig` with AGAD's own options and defaults (`AGAD`'s docstring: aihwkit
    1.2.0's ``AGADReRamSBPreset``): regular chopper switching every ``chopper_every`` (>= 2)
    reads, never random; A read raw; the running mean's ``tail_weightening``;
    ``correct_accumulation``; ``buffer_cap`` (only with ``forget_buffer=False``).

    Attributes:
        chopper_every: the chopper period n in reads of a line (>= 2; aihwkit's
            in_chop_prob p gives n = max(ceil(1/p), 2)).
        tail_weightening: the running mean's momentum is m = min(tail_weightening / n, 1)
            per read (> 0).
        correct_accumulation: divide the k-th read of a period by min(k, 1/ε_A) (aihwkit's
            ``experimental_correct_accumulation``).
        buffer_cap: with ``forget_buffer=False``, clip H to ±buffer_cap · transfer_pulses
            after a pulse (0: no cap; aihwkit's default).
        subtract_symmetry_point: read A relative to its cells' symmetry point (False: raw).
    """

    chopper_every: int | None = 50
    subtract_symmetry_point: bool = False
    tail_weightening: float = 5.0
    correct_accumulation: bool = False
    buffer_cap: float = 0.0

    def __post_init__(self) -> None:
        if self.chopper_probability:
            raise ValueError(
                f"Invalid chopper_probability: {self.chopper_probability!r}; allowed: 0 "
                "(AGAD switches its choppers regularly, every chopper_every reads)"
            )
        validate.integer("chopper_every", self.chopper_every, low=2)
        super().__post_init__()
        validate.number("tail_weightening", self.tail_weightening, low=0, low_open=True)
        if not isinstance(self.correct_accumulation, bool):
            raise ValueError(
                f"Invalid correct_accumulation: {self.correct_accumulation!r}; allowed: True "
                "or False"
            )
        validate.number("buffer_cap", self.buffer_cap, low=0)
        if self.buffer_cap > 0 and self.forget_buffer:
            raise ValueError(
                f"Invalid buffer_cap: {self.buffer_cap!r} with forget_buffer=True; allowed: 0, "
                "or forget_buffer=False (a forgotten buffer needs no cap)"
            )
        object.__setattr__(self, "tail_weightening", float(self.tail_weightening))
        object.__setattr__(self, "buffer_cap", float(self.buffer_cap))


@dataclass(kw_only=True)
class AGADSlot(FastSlot):
    """`FastSlot` with AGAD's own state: the running mean M, the past mean P, which lines
    switched their chopper at their last read, and the full passes over the lines."""

    mean: Tensor  #: M, the running mean of A's reads (weight units)
    past: Tensor  #: P, the reference of the present period
    switched: Tensor  #: per input line: its chopper flipped at its last read (bool)
    passes: int = 0  #: full passes over the input lines (aihwkit's ``transfer_counter_``)

    @classmethod
    def new(cls, fast: AnalogTile, ref: Tensor, line_of: Tensor, shape: Any) -> AGADSlot:
        """A fresh slot: `FastSlot.new`'s, with M = P = 0 and no line switched."""
        base = FastSlot.new(fast, ref, line_of, shape)
        on = line_of.device
        return cls(
            **{f.name: getattr(base, f.name) for f in dataclasses.fields(FastSlot)},
            mean=torch.zeros(shape, dtype=torch.float32, device=on),
            past=torch.zeros(shape, dtype=torch.float32, device=on),
            switched=torch.zeros(base.lines, dtype=torch.bool, device=on),
        )


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

    The options are an `AGADConfig` (``opt.config``, saved in ``state_dict``), given as
    keywords, as ``config=``, or both, as for `TikiTakaV2`.

    Args:
        params: parameters or groups; tile-backed ones are analog, the rest digital.
        lr: learning rate (> 0) of the base optimizer and the scale of the transfer into H.
        **kwargs: `TikiTakaV2`'s: ``config`` (an `AGADConfig`), its fields as keywords,
            ``base``, ``seed``.
    """

    CONFIG = AGADConfig
    SLOT = AGADSlot
    config: AGADConfig

    @property
    def period(self) -> int:
        """The chopper period n in reads of a line."""
        assert self.config.chopper_every is not None
        return self.config.chopper_every

    @property
    def mean_momentum(self) -> float:
        """m = min(tail_weightening / n, 1): the running mean's weight of a new read."""
        return min(self.config.tail_weightening / self.period, 1.0)

    def running_mean(self, p: Tensor) -> Tensor:
        """M: the running mean of A's reads (weight units, less A's symmetry point if
        subtracted)."""
        return self._slot(p).mean

    def past_mean(self, p: Tensor) -> Tensor:
        """P: the reference of the present period, M as the last period ended."""
        return self._slot(p).past

    def passes(self, p: Tensor) -> int:
        """Full passes over ``p``'s input lines so far (aihwkit's ``transfer_counter_``)."""
        return int(self._slot(p).passes)

    def _slot(self, p: Tensor) -> AGADSlot:
        return super()._slot(p)  # type: ignore[return-value]

    def _reads(  # type: ignore[override]  # (an AGAD's slots are AGADSlots)
        self, p: Tensor, slot: AGADSlot, n_reads: int, lr: float
    ) -> tuple[Tensor, list[Tensor]]:
        """``n_reads`` line reads of A into H against the past mean, in read order: the
        reads' ledger row and, per round, the whole pulses H sends to C once the write gate
        is open (written afterwards, `TikiTakaV2._after_updates`; see the class)."""
        fast = slot.fast
        on = slot.buffer.device
        row = torch.zeros(len(FIELDS), dtype=torch.int64, device=on)
        lines = slot.chopper.numel()
        start = slot.next_line
        slot.next_line = (start + n_reads) % lines
        offsets = start + torch.arange(n_reads, device=on)
        order = offsets % lines
        passes = slot.passes + torch.div(offsets, lines, rounding_mode="floor")
        slot.passes += (start + n_reads) // lines
        n = self.period
        m = self.mean_momentum
        gain = self.buffer_gain(p, lr)
        tp = self.config.transfer_pulses
        cap = self.config.buffer_cap * tp
        line_of = slot.line_of
        h, mean, past = slot.buffer, slot.mean, slot.past
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
            v = fast.read() - slot.ref
            row[_R] += read_lines.sum() * fast.cells_per_weight
            past.copy_(torch.where(read_lines & slot.switched[line_of], mean, past))
            scale: Tensor | float = gain
            if self.config.correct_accumulation:
                k = (line_pass % n + 1).to(torch.float32).clamp(max=1.0 / eps_a)
                scale = gain / k[line_of]
            h.add_(torch.where(read_lines, slot.chopper[line_of] * (v - past) * scale, 0.0))
            steps = torch.trunc(h).clamp(-tp, tp)
            steps = torch.where(read_lines & (h.abs() >= 1), steps, 0.0)
            moved = steps != 0
            if self.config.forget_buffer:
                h.copy_(torch.where(moved, h * self.config.momentum, h))
            else:
                h.sub_((1 - self.config.momentum) * steps)
                if cap > 0:
                    h.copy_(torch.where(moved, h.clamp(-cap, cap), h))
            mean.copy_(torch.where(read_lines, (1 - m) * mean + m * v, mean))
            trains.append(torch.where((line_pass > n)[line_of], steps, 0.0).to(torch.int64))
            slot.reads[idx] += 1
            flip = pass_at % n == n - 1
            slot.switched[idx] = flip
            slot.chopper[idx] = torch.where(flip, -slot.chopper[idx], slot.chopper[idx])
        return row, trains

    def _slot_state(self, slot: AGADSlot) -> dict[str, Any]:  # type: ignore[override]  # (an AGAD's slots are AGADSlots)
        return {
            **super()._slot_state(slot),
            "M": slot.mean.clone(),
            "P": slot.past.clone(),
            "switched": slot.switched.clone(),
            "passes": int(slot.passes),
        }

    def _load_slot_state(self, slot: AGADSlot, state: dict[str, Any]) -> None:  # type: ignore[override]  # (an AGAD's slots are AGADSlots)
        super()._load_slot_state(slot, state)
        slot.mean.copy_(state["M"])
        slot.past.copy_(state["P"])
        slot.switched.copy_(state["switched"])
        slot.passes = int(state["passes"])
