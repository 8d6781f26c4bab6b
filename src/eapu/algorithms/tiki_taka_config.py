"""Tiki-Taka's knobs as frozen, validated records: `TikiTakaConfig` and `ChoppedTTv2Config`.

An optimizer of the Tiki-Taka family (`eapu.algorithms.TikiTakaV2`, `ChoppedTTv2`, `AGAD`)
holds one of these as ``opt.config`` and saves it in ``state_dict``; a state saved with other
knobs is refused on load, so a resume cannot silently change the algorithm half-way. The
defaults are aihwkit 1.2.0's ``TTv2ReRamSBPreset`` / ``ChoppedTTv2ReRamSBPreset`` (sources in
`eapu.algorithms.TikiTakaV2`'s docstring, which also explains every field).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .. import validate
from ..programming import get_scheme

__all__ = ["FAST_LR", "ChoppedTTv2Config", "TikiTakaConfig", "config_mismatch"]

#: A's own rate by default: aihwkit 1.2.0's TTv2 / c-TTv2 / AGAD ReRamSB presets.
FAST_LR = 0.5

_FAST_SCHEMES = ("pulsed",)
_TRANSFER_UNITS = ("samples", "steps")


@dataclass(frozen=True)
class TikiTakaConfig:
    """Tiki-Taka v2's options (the fields are `eapu.algorithms.TikiTakaV2`'s keyword
    arguments of the same names); validated on construction, ``transfer_every`` rounded to
    whole samples or steps. Build a variant with ``dataclasses.replace(config, fast_lr=0.05)``.

    Attributes:
        fast_lr: A's own learning rate (> 0), kept when ``lr`` is scheduled; None writes the
            base's ΔW onto A as it is (aihwkit's ``fast_lr = 0``).
        auto_scale: scale fast_lr by desired_bl · ε_A / (m_x · m_d) (needs ``watch``).
        auto_momentum: momentum of the m_x, m_d averages, in [0, 1).
        desired_bl: aihwkit's pulse-train length of the update onto A (pulses per sample).
        transfer_every: samples (or steps) between transfers (> 0; rounded to a whole number).
        transfer_unit: ``"samples"`` (aihwkit's ``units_in_mbatch=False``, needs ``watch``)
            or ``"steps"``.
        n_reads_per_transfer: consecutive input lines read at each transfer.
        transfer_lr: gain from a read of A into H, times ``lr`` (aihwkit's
            ``scale_transfer_lr``).
        buffer_granularity: H's granularity in units of ε_A (aihwkit's, default 1).
        auto_granularity: expected samples for a read to cross the buffer (0: off).
        transfer_pulses: at most this many pulses onto C per weight and read (aihwkit's
            transfer ``desired_bl``, 1).
        forget_buffer: after a transfer set H to momentum·H (True) or subtract (1 -
            momentum)·n (False).
        momentum: the fraction of H kept after a transfer, in [0, 1].
        subtract_symmetry_point: read A relative to its cells' symmetry point.
        gamma: weight of A in the forward pass, in [0, 1].
        chopper_probability: probability that c_j flips after a read of line j, in [0, 1].
        chopper_every: flip c_j deterministically after every ``chopper_every``-th read of
            line j (None: random switching); give one of the two.
        fast_scheme: ``"pulsed"`` or a registered programming scheme, for writes onto A.
        fast_max_pulses: pulse budget per cell and step of the ``"pulsed"`` A update (None:
            desired_bl per sample of the step, or desired_bl when counting steps).
    """

    fast_lr: float | None = FAST_LR
    auto_scale: bool = True
    auto_momentum: float = 0.99
    desired_bl: int = 31
    transfer_every: float = 1.0
    transfer_unit: str = "samples"
    n_reads_per_transfer: int = 1
    transfer_lr: float = 1.0
    buffer_granularity: float = 1.0
    auto_granularity: float = 1000.0
    transfer_pulses: int = 1
    forget_buffer: bool = True
    momentum: float = 0.0
    subtract_symmetry_point: bool = True
    gamma: float = 0.0
    chopper_probability: float = 0.0
    chopper_every: int | None = None
    fast_scheme: str = "pulsed"
    fast_max_pulses: int | None = None

    def __post_init__(self) -> None:
        if self.fast_lr is not None:
            validate.number("fast_lr", self.fast_lr, low=0, low_open=True)
        for name in ("auto_scale", "forget_buffer", "subtract_symmetry_point"):
            flag = getattr(self, name)
            if not isinstance(flag, bool):
                raise ValueError(f"Invalid {name}: {flag!r}; allowed: True or False")
        if self.auto_scale and self.fast_lr is None:
            raise ValueError("Invalid fast_lr: None with auto_scale=True; allowed: a number > 0")
        validate.fraction("auto_momentum", self.auto_momentum, high_open=True)
        validate.integer("desired_bl", self.desired_bl, low=1)
        validate.number("transfer_every", self.transfer_every, low=0, low_open=True)
        if round(self.transfer_every) < 1:
            raise ValueError(
                f"Invalid transfer_every: {self.transfer_every!r}; allowed: a number >= 0.5 "
                "(it is rounded to whole samples or steps)"
            )
        validate.choice("transfer_unit", self.transfer_unit, _TRANSFER_UNITS)
        validate.integer("n_reads_per_transfer", self.n_reads_per_transfer, low=1)
        validate.number("transfer_lr", self.transfer_lr, low=0, low_open=True)
        validate.number("buffer_granularity", self.buffer_granularity, low=0, low_open=True)
        validate.number("auto_granularity", self.auto_granularity, low=0)
        validate.integer("transfer_pulses", self.transfer_pulses, low=1)
        validate.fraction("momentum", self.momentum)
        validate.fraction("gamma", self.gamma)
        validate.fraction("chopper_probability", self.chopper_probability)
        validate.integer("chopper_every", self.chopper_every, low=1, allow_none=True)
        if self.chopper_every is not None and self.chopper_probability > 0:
            raise ValueError(
                f"Invalid chopper_every: {self.chopper_every!r} with chopper_probability "
                f"{self.chopper_probability!r}; allowed: one of the two (random or regular "
                "flips)"
            )
        if self.fast_scheme not in _FAST_SCHEMES:
            try:
                get_scheme(self.fast_scheme)
            except ValueError:
                raise ValueError(
                    f"Invalid fast_scheme: {self.fast_scheme!r}; allowed: 'pulsed' or a "
                    "registered programming scheme"
                ) from None
        validate.integer("fast_max_pulses", self.fast_max_pulses, low=1, allow_none=True)
        # Normalised once, so that equal knobs compare equal (and save) as one value.
        for name in (
            "auto_momentum",
            "transfer_lr",
            "buffer_granularity",
            "auto_granularity",
            "momentum",
            "gamma",
            "chopper_probability",
        ):
            object.__setattr__(self, name, float(getattr(self, name)))
        if self.fast_lr is not None:
            object.__setattr__(self, "fast_lr", float(self.fast_lr))
        object.__setattr__(self, "transfer_every", round(self.transfer_every))

    @property
    def chopped(self) -> bool:
        """Whether the input choppers flip (randomly or regularly)."""
        return self.chopper_probability > 0 or self.chopper_every is not None

    @property
    def needs_watch(self) -> bool:
        """Whether steps need the layers' samples (``opt.watch(model)``)."""
        return self.auto_scale or self.transfer_unit == "samples"

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The option names this record holds."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TikiTakaConfig:
        """The record `to_state` wrote (its ``"kind"`` must be this class's name)."""
        fields = dict(state)
        kind = fields.pop("kind", cls.__name__)
        if kind != cls.__name__:
            raise ValueError(f"Invalid state: a {kind}; allowed: a {cls.__name__}")
        return cls(**fields)

    def to_state(self) -> dict[str, Any]:
        """The record as plain values (``state_dict``-safe: loads with ``weights_only``),
        with the record's class name under ``"kind"``."""
        return {"kind": type(self).__name__, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class ChoppedTTv2Config(TikiTakaConfig):
    """`TikiTakaConfig` with aihwkit 1.2.0's ``ChoppedTTv2ReRamSBPreset`` chopper: random
    flips with probability 0.01 per read of a line. A chopper is required."""

    chopper_probability: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.chopped:
            raise ValueError(
                f"Invalid chopper_probability: {self.chopper_probability!r} with chopper_every "
                "None; allowed: a probability in (0, 1] or chopper_every >= 1 (use TikiTakaV2 "
                "for no chopper)"
            )


def config_mismatch(saved: dict[str, Any], config: TikiTakaConfig) -> str | None:
    """What differs between a saved `TikiTakaConfig.to_state` and ``config`` (None: nothing),
    as ``"name: saved → here"`` items."""
    here = config.to_state()
    diffs = [
        f"{k}: {saved.get(k, '(absent)')!r} saved, {here.get(k, '(absent)')!r} here"
        for k in sorted(set(saved) | set(here))
        if saved.get(k, "(absent)") != here.get(k, "(absent)")
    ]
    return "; ".join(diffs) or None
