"""The device model: `Device` (the physics of one cell technology, a frozen dataclass) and
`CellParams` (the device-to-device draw of a tensor of cells).

A device kind is a `Device` subclass: the pulse response and the gate curve go through the
two methods `Device.pulse_step_us` and `Device.gate_curve_us` (the physics seam), so every
scheme drives every kind alike; `eapu.devices.MeasuredDevice` is the kind defined by
measured tables instead of the soft-bound formula.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from .. import validate

__all__ = ["PCM_DRIFT_NU", "STUCK_FREE", "STUCK_OFF", "STUCK_ON", "CellParams", "Device"]

STUCK_FREE = 0
"""`CellParams.stuck` code of a working cell."""
STUCK_OFF = 1
"""`CellParams.stuck` code of a cell stuck at ``g_min_us``."""
STUCK_ON = 2
"""`CellParams.stuck` code of a cell stuck at ``g_max_us``."""
PCM_DRIFT_NU = 0.05
"""Mean power-law drift exponent of PCM (aihwkit PCMLikeNoiseModel: 0.049-0.1; Nandakumar
et al. 2019): the `pcm` preset's ``drift_nu`` and `eapu.retention.PcmDrift`'s default."""


@dataclass(frozen=True, kw_only=True)
class Device:
    """Physics of one memristive cell technology (all conductances in µS).

    Make variants with ``dataclasses.replace(device, relaxation_sd_us=3.0)``; the result is
    validated again.
    """

    name: str
    """Short name of the technology (the registry key of a preset)."""

    # --- conductance window -------------------------------------------------------------
    g_min_us: float = 0.0
    """Lowest conductance a cell can take (µS); stuck-off cells sit here."""
    g_max_us: float = 100.0
    """Highest conductance a cell can take (µS); stuck-on cells sit here."""

    # --- identical-pulse response (sign and write-verify schemes) -------------------------
    step_up_us: float = 1.0
    """Mean conductance increase of one SET pulse at the window centre (µS)."""
    step_down_us: float = 1.0
    """Mean conductance decrease of one RESET pulse at the window centre (µS)."""
    nonlinearity_up: float = 0.0
    """Soft bound of SET, in [0, 1]: step = step_up_us·max(0, 1 - nl·(2x - 1)), with
    x = (G - g_min)/(g_max - g_min). 0 is a constant step; 1 halts at g_max, doubles at g_min."""
    nonlinearity_down: float = 0.0
    """Soft bound of RESET, in [0, 1]: step = step_down_us·max(0, 1 + nl·(2x - 1))."""
    c2c_sd: float = 0.0
    """Relative cycle-to-cycle SD of each pulse's step (a step never changes sign)."""
    dtod_sd: float = 0.0
    """Relative device-to-device SD of the step sizes, drawn once per cell (scale >= 0.1)."""

    # --- gate-controlled SET of a 1T1R cell (two-pulse and memorial schemes) -------------
    gate_levels: int = 128
    """Number of DAC levels of the gate voltage; level k is at v_min + k·(v_max-v_min)/(n-1)."""
    v_gate_min_v: float = 0.0
    """Gate voltage of level 0 (V)."""
    v_gate_max_v: float = 1.0
    """Gate voltage of the top level (V)."""
    gate_v_th_v: float = 0.0
    """Nominal threshold voltage of the SET-after-RESET curve (V): below it the SET
    leaves the cell at ``g_reset_us``."""
    gate_gamma: float = 1.0
    """Exponent of the curve G(v) = g_reset + (gate_g_top - g_reset)·gain·u**gamma,
    u = max(0, v - v_th)/(v_max - v_th_nominal); 1 is linear, > 1 convex."""
    gate_g_top_us: float = math.nan
    """Conductance the nominal curve reaches at ``v_gate_max_v`` (µS); may exceed
    ``g_max_us`` so that weak cells still reach the top (landed values are clipped).
    Default (NaN): ``g_max_us``."""
    gate_dtod_sd_v: float = 0.0
    """Device-to-device SD of the threshold voltage (V), drawn once per cell."""
    gate_gain_dtod_sd: float = 0.0
    """Relative device-to-device SD of the curve's gain, drawn once per cell (gain >= 0.1)."""
    gate_c2c_sd_us: float = 0.0
    """Cycle-to-cycle SD of the conductance a gate-controlled SET lands at (µS)."""
    g_reset_us: float = math.nan
    """Conductance a full RESET pulse leaves the cell at before the SET (µS); a fresh array
    starts here. Default (NaN): ``g_min_us``, the window's low end."""

    # --- programming, noise, faults -----------------------------------------------------
    program_tolerance_us: float = 1.0
    """Default verify tolerance (µS): a write is done when |read - target| <= tolerance."""
    relaxation_sd_us: float = 0.0
    """SD of the Gaussian conductance shift shortly after a write (µS), the main part of
    εcell in Liu et al. (2025)."""
    read_noise_sd_us: float = 0.0
    """SD of the Gaussian noise of one read (µS); a read does not change the state."""
    stuck_off_fraction: float = 0.0
    """Fraction of cells stuck at ``g_min_us``, drawn once per cell."""
    stuck_on_fraction: float = 0.0
    """Fraction of cells stuck at ``g_max_us``, drawn once per cell."""
    drift_nu: float = 0.0
    """Mean power-law drift exponent, G(t) = G(t0)·(t/t0)**-nu: the one source of the
    exponent, read by `eapu.retention.PcmDrift.for_device` (0: no power-law drift)."""
    default_scheme: str = "write_verify"
    """Name of the programming scheme `characterize` uses when none is given."""

    extra_cell_fields: ClassVar[tuple[str, ...]] = ()
    """Per-cell parameters this kind's ``sample`` draws beyond `CellParams.FIELDS` (a
    subclass's own; the crossbar keeps them beside the standard five)."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Invalid name: {self.name!r}; allowed: a non-empty string")
        validate.number("g_min_us", self.g_min_us, low=0.0)
        validate.number("g_max_us", self.g_max_us)
        if self.g_max_us <= self.g_min_us:
            raise ValueError(
                f"Invalid g_max_us: {self.g_max_us!r}; allowed: a finite number > g_min_us "
                f"({self.g_min_us})"
            )
        # Derived defaults (a frozen dataclass sets them once, here); `dataclasses.replace`
        # passes the derived values on, so a variant with a new window states them anew.
        if isinstance(self.g_reset_us, float) and math.isnan(self.g_reset_us):
            object.__setattr__(self, "g_reset_us", float(self.g_min_us))
        if isinstance(self.gate_g_top_us, float) and math.isnan(self.gate_g_top_us):
            object.__setattr__(self, "gate_g_top_us", float(self.g_max_us))
        validate.number("step_up_us", self.step_up_us, low=0, low_open=True)
        validate.number("step_down_us", self.step_down_us, low=0, low_open=True)
        validate.fraction("nonlinearity_up", self.nonlinearity_up)
        validate.fraction("nonlinearity_down", self.nonlinearity_down)
        validate.fraction("c2c_sd", self.c2c_sd)
        validate.fraction("dtod_sd", self.dtod_sd)
        validate.integer("gate_levels", self.gate_levels, low=2, high=2**24)
        validate.number("v_gate_min_v", self.v_gate_min_v)
        validate.number("v_gate_max_v", self.v_gate_max_v)
        if self.v_gate_max_v <= self.v_gate_min_v:
            raise ValueError(
                f"Invalid v_gate_max_v: {self.v_gate_max_v!r}; allowed: a finite number > "
                f"v_gate_min_v ({self.v_gate_min_v})"
            )
        validate.number("gate_v_th_v", self.gate_v_th_v)
        if self.gate_v_th_v >= self.v_gate_max_v:
            raise ValueError(
                f"Invalid gate_v_th_v: {self.gate_v_th_v!r}; allowed: a finite number < "
                f"v_gate_max_v ({self.v_gate_max_v})"
            )
        validate.number("gate_gamma", self.gate_gamma, low=0, low_open=True)
        validate.number("g_reset_us", self.g_reset_us, low=self.g_min_us, high=self.g_max_us)
        validate.number("gate_g_top_us", self.gate_g_top_us)
        if self.gate_g_top_us <= self.g_reset_us:
            raise ValueError(
                f"Invalid gate_g_top_us: {self.gate_g_top_us!r}; allowed: a finite number > "
                f"g_reset_us ({self.g_reset_us})"
            )
        validate.number("gate_dtod_sd_v", self.gate_dtod_sd_v, low=0.0)
        validate.fraction("gate_gain_dtod_sd", self.gate_gain_dtod_sd)
        validate.number("gate_c2c_sd_us", self.gate_c2c_sd_us, low=0.0)
        validate.number("program_tolerance_us", self.program_tolerance_us, low=0, low_open=True)
        validate.number("relaxation_sd_us", self.relaxation_sd_us, low=0.0)
        validate.number("read_noise_sd_us", self.read_noise_sd_us, low=0.0)
        validate.fraction("stuck_off_fraction", self.stuck_off_fraction)
        validate.fraction("stuck_on_fraction", self.stuck_on_fraction)
        total = self.stuck_off_fraction + self.stuck_on_fraction
        if total > 1.0:
            raise ValueError(
                f"Invalid stuck_on_fraction: {self.stuck_on_fraction!r}; allowed: at most "
                f"1 - stuck_off_fraction ({self.stuck_off_fraction}), the sum is {total}"
            )
        validate.number("drift_nu", self.drift_nu, low=0.0)
        if not isinstance(self.default_scheme, str) or not self.default_scheme:
            raise ValueError(
                f"Invalid default_scheme: {self.default_scheme!r}; allowed: a scheme name"
            )

    @property
    def span_us(self) -> float:
        """Width of the conductance window, g_max_us - g_min_us (µS)."""
        return self.g_max_us - self.g_min_us

    def crossbar_defaults(self) -> dict[str, Any]:
        """Crossbar options this device kind needs by default (`eapu.nn.convert`'s keywords,
        e.g. ``g_ref_us`` and ``load_scheme``); a run passes them unless the method names its
        own load scheme. The base kind needs none: ``{}``."""
        return {}

    # --- the physics seam: a device kind overrides these two ------------------------------

    def pulse_step_linear(
        self, polarity: Tensor, params: CellParams
    ) -> tuple[Tensor, Tensor, Tensor] | None:
        """The soft bound, written once: one identical pulse moves a cell by
        ``step·max(0, a + b·G)·max(0, 1 + c2c_sd·z)``; returns (step, a, b) per cell.

        step = ±step_up/down_us·scale_cell (0 where ``polarity`` is 0), and a + b·G =
        1 ∓ nl·(2x − 1) with x = (G − g_min)/(g_max − g_min): the SET step shrinks towards
        g_max, the RESET step towards g_min. `pulse_step_us` evaluates it; `pulse_rounds` and
        `symmetry_point_us` use the coefficients directly. A device kind whose step is not of
        this form (`MeasuredDevice`) returns None (and overrides `pulse_step_us`).

        Args:
            polarity: +1 SET, -1 RESET, 0 none (any real dtype).
            params: the cells' device-to-device draw.
        """
        up = polarity > 0
        step = torch.where(
            up,
            self.step_up_us * params.step_up_scale,
            -self.step_down_us * params.step_down_scale,
        )
        step = torch.where(polarity == 0, torch.zeros_like(step), step)
        slope = torch.where(up, -self.nonlinearity_up, self.nonlinearity_down).to(step.dtype)
        b = slope * (2 / self.span_us)
        a = 1 + slope * (-2 * self.g_min_us / self.span_us - 1)
        return step, a, b

    def pulse_step_us(
        self, g_us: Tensor, polarity: Tensor, params: CellParams, z: Tensor
    ) -> Tensor:
        """Signed conductance change of one identical pulse per cell, before the window clamp.

        The base kind: `pulse_step_linear`'s soft bound times the cycle-to-cycle factor
        ``max(0, 1 + c2c_sd·z)``, so a step never changes sign. `pulse` calls it and adds the
        clamp, the stuck cells and the cells without a pulse.

        Args:
            g_us: present conductance (µS).
            polarity: +1 SET, -1 RESET, 0 none, in ``g_us``'s dtype.
            params: the cells' device-to-device draw.
            z: standard normal draw per cell (the cycle-to-cycle noise).
        """
        lin = self.pulse_step_linear(polarity, params)
        assert lin is not None  # the base kind's step is affine in G
        step, a, b = lin
        soft = torch.addcmul(a.to(g_us.dtype), g_us, b.to(g_us.dtype)).clamp(min=0)
        return step.to(g_us.dtype) * soft * (1 + self.c2c_sd * z).clamp(min=0)

    def gate_curve_us(self, v_gate_v: Tensor, params: CellParams | None) -> Tensor:
        """Noiseless conductance a RESET + SET at gate voltage ``v_gate_v`` lands at (µS),
        before the window clamp; ``params`` None is the nominal cell.

        G = g_reset + (gate_g_top - g_reset)·gain·u**gamma with
        u = max(0, v - v_th)/(v_max - v_th_nominal). It must be non-decreasing in the voltage
        (the binary search of memorial programming relies on it).
        """
        v_th: Tensor | float = self.gate_v_th_v if params is None else params.gate_v_th_v
        gain: Tensor | float = 1.0 if params is None else params.gate_gain
        u = (v_gate_v - v_th).clamp(min=0) / (self.v_gate_max_v - self.gate_v_th_v)
        return self.g_reset_us + (self.gate_g_top_us - self.g_reset_us) * gain * u**self.gate_gamma

    def sample(
        self,
        shape: tuple[int, ...] | torch.Size,
        *,
        generator: torch.Generator,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> CellParams:
        """Draw the device-to-device parameters of a tensor of cells, once.

        Args:
            shape: shape of the cell tensor.
            generator: source of the draws; must live on ``device``.
            device: torch device of the returned tensors (default: the generator's).
            dtype: floating dtype of the returned parameters.
        """
        shape = torch.Size(shape)
        dev = torch.device(device) if device is not None else generator.device

        def randn() -> Tensor:
            return torch.randn(shape, generator=generator, device=dev, dtype=dtype)

        # Fixed draw order, so a seed gives the same cells whatever the parameters are.
        z_up, z_down, z_vth, z_gain = randn(), randn(), randn(), randn()
        u = torch.rand(shape, generator=generator, device=dev, dtype=dtype)
        stuck = torch.zeros(shape, dtype=torch.int8, device=dev)
        stuck[u < self.stuck_off_fraction] = STUCK_OFF
        on = (u >= self.stuck_off_fraction) & (u < self.stuck_off_fraction + self.stuck_on_fraction)
        stuck[on] = STUCK_ON
        return CellParams(
            step_up_scale=(1 + self.dtod_sd * z_up).clamp_(min=0.1),
            step_down_scale=(1 + self.dtod_sd * z_down).clamp_(min=0.1),
            gate_v_th_v=self.gate_v_th_v + self.gate_dtod_sd_v * z_vth,
            gate_gain=(1 + self.gate_gain_dtod_sd * z_gain).clamp_(min=0.1),
            stuck=stuck,
        )


@dataclass
class CellParams:
    """Device-to-device draw of a tensor of cells; every field has the cell shape.

    A device kind may draw more per-cell parameters than the five below: it names them in
    `Device.extra_cell_fields` and its ``sample`` puts them in ``extra``.
    """

    step_up_scale: Tensor
    """Per-cell multiplier of the SET step (1 = nominal)."""
    step_down_scale: Tensor
    """Per-cell multiplier of the RESET step (1 = nominal)."""
    gate_v_th_v: Tensor
    """Per-cell threshold voltage of the gate-controlled SET curve (V)."""
    gate_gain: Tensor
    """Per-cell gain of the gate-controlled SET curve (1 = nominal)."""
    stuck: Tensor
    """int8 fault code: 0 free, 1 stuck at g_min (off), 2 stuck at g_max (on)."""
    extra: dict[str, Tensor] = dataclasses.field(default_factory=dict)
    """A device kind's own per-cell parameters (`Device.extra_cell_fields`), by name."""

    FIELDS: ClassVar[tuple[str, ...]] = (
        "step_up_scale",
        "step_down_scale",
        "gate_v_th_v",
        "gate_gain",
        "stuck",
    )
    """The per-cell parameters every device kind has."""

    def __post_init__(self) -> None:
        shapes = {f: tuple(t.shape) for f, t in self.items()}
        if len(set(shapes.values())) != 1:
            raise ValueError(f"CellParams fields must share one shape, got {shapes}")
        if self.stuck.dtype != torch.int8:
            raise ValueError(f"stuck must be int8, got {self.stuck.dtype}")

    def items(self) -> list[tuple[str, Tensor]]:
        """(name, tensor) of every field, the five standard ones first, then ``extra``."""
        return [(f, getattr(self, f)) for f in self.FIELDS] + list(self.extra.items())

    def _new(self, fn: Any) -> CellParams:
        std = {f: fn(getattr(self, f)) for f in self.FIELDS}
        return CellParams(**std, extra={k: fn(v) for k, v in self.extra.items()})

    @property
    def shape(self) -> torch.Size:
        """Shape of the cell tensor."""
        return self.stuck.shape

    @property
    def free(self) -> Tensor:
        """Boolean mask of the working (not stuck) cells."""
        return self.stuck == STUCK_FREE

    def select(self, key: Tensor | slice) -> CellParams:
        """The cells at ``key`` (an index tensor or a slice) of the flattened cell tensor."""
        return self._new(lambda t: t.reshape(-1)[key])

    def view(self, shape: tuple[int, ...]) -> CellParams:
        """The same cells viewed in ``shape``."""
        return self._new(lambda t: t.view(shape))

    @classmethod
    def cat(cls, parts: Sequence[CellParams]) -> CellParams:
        """The flattened cells of ``parts``, one after another (e.g. a reference column grown
        as layers are placed)."""
        if not parts:
            raise ValueError("CellParams.cat needs at least one part")
        first = parts[0]
        std = {f: torch.cat([getattr(p, f).reshape(-1) for p in parts]) for f in cls.FIELDS}
        extra = {k: torch.cat([p.extra[k].reshape(-1) for p in parts]) for k in first.extra}
        return cls(**std, extra=extra)

    def to(self, device: torch.device | str) -> CellParams:
        """A copy on another torch device."""
        return self._new(lambda t: t.to(device))

    def state_dict(self) -> dict[str, Tensor]:
        """The parameters as a dict of tensors (copies), for checkpoints."""
        return {f: t.clone() for f, t in self.items()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> CellParams:
        """Rebuild from `state_dict` output."""
        missing = [f for f in cls.FIELDS if f not in state]
        if missing:
            raise ValueError(f"state is missing CellParams fields {missing}; has {sorted(state)}")
        extra = {k: v.clone() for k, v in state.items() if k not in cls.FIELDS}
        return cls(**{f: state[f].clone() for f in cls.FIELDS}, extra=extra)
