"""`AihwkitDevice`: IBM aihwkit's pulsed device models as an eapu device kind, and aihwkit
1.2.0's device presets as registered eapu devices (``aihwkit_*``).

Most published in-situ training results are on aihwkit's preset devices. This kind holds
aihwkit's own unitless parameters verbatim (the names of ``aihwkit.simulator.configs.devices``),
so a preset is a one-to-one transcription of aihwkit 1.2.0's
``src/aihwkit/simulator/presets/devices.py`` (MIT licence, (C) IBM), and reproduces its
per-cell draws (``PulsedRPUDevice::populate``, ``rpucuda/rpu_pulsed_device.cpp`` lines
593-733, and each model's own) and per-pulse rules (each model's ``doSparseUpdate``)
statistically; aihwkit itself is not needed at run time. Bit-exact agreement is neither
possible nor sought (aihwkit draws from ``std::default_random_engine``).

Weights and conductances. aihwkit's device weight w is the weight the layer multiplies
with; it has no conductance unit. Here ``G = g_zero_us + w·us_per_weight``: with the
paper's Rwg = 1/80 µS⁻¹ (``us_per_weight`` 80, the default) eapu's W = Rwg·(G − G_ref)
equals aihwkit's w when the crossbar's reference sits at ``g_zero_us`` (``convert(...,
g_ref_us=dev.g_zero_us)``; `crossbar_defaults`). aihwkit has no window, only per-cell
bounds drawn with unclipped Gaussian spread, so the eapu window [g_min_us, g_max_us] is an
envelope that no drawn bound should reach: the nominal bounds widened by ``envelope_sd``
(5) device-to-device SDs (plus the reference spread), symmetric about ``g_zero_us`` and
starting at 0 µS. Each cell's own bounds (``bound_min_w`` / ``bound_max_w``, weight units)
do the clipping, as in aihwkit; the window clamp of `eapu.devices.pulse` is then inactive
(a bound beyond 5 SD, about 3 cells in 10⁷, is clipped at the window instead).

What is not modelled, and said so in each preset:
- write noise (aihwkit's ``write_noise_std``: an apparent weight redrawn at every pulse over
  a persistent one) needs a second state per cell, which eapu's tiles do not hold (DESIGN:
  no persistent per-parameter state beyond the conductances); not a read noise either
  (aihwkit's stays put between pulses). The presets keep aihwkit's value in
  `WRITE_NOISE_NOT_MODELLED` for the record; cross-checks set it to 0 on aihwkit's side.
- decay (``lifetime``, Capacitor: once per mini-batch towards ``reset``), diffusion, drift,
  reset spread (``reset_dtod``, ``reset_std``), ``perfect_bias``,
  ``adjust_bounds_with_up_down``, LinearStep's ``reverse_up/down``, the PowStep and
  Piecewise models (no preset uses them).
- a gate-controlled SET: aihwkit's devices take identical pulses only. The gate fields keep
  eapu's defaults, so the gate-based schemes (``memorial``, ``two_pulse``) do not model
  these devices; pulse schemes (``sign``, ``pulse_train``, ``write_verify``) do.
- read noise: aihwkit's output noise belongs to the periphery (``read_noise_sd_us`` 0).

eapu's own choices: the verify tolerance of ``write_verify`` is one granularity step (aihwkit
has no verify), a fresh cell sits at w = ``reset`` (aihwkit starts its weights at 0 and resets
to ``reset``), and ``step_up_us`` = ``step_down_us`` = aihwkit's weight granularity
(``calcWeightGranularity``: ``dw_min``, for ExpStep the down step at w = 0) times
``us_per_weight``, the unit `eapu.algorithms.granularity` counts pulses in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch
from torch import Tensor

from .. import validate
from .core import STUCK_OFF, STUCK_ON, CellParams, Device
from .presets import register_device

__all__ = [
    "AIHWKIT_MODELS",
    "AIHWKIT_PRESETS",
    "AIHWKIT_SOURCE",
    "WRITE_NOISE_NOT_MODELLED",
    "AihwkitDevice",
]

AIHWKIT_MODELS = ("constant_step", "linear_step", "soft_bounds_reference", "exp_step")
"""aihwkit's device classes this kind implements: ``ConstantStepDevice``,
``LinearStepDevice`` (``SoftBoundsDevice`` is LinearStep with gamma 1, gamma dtod 0 and
``mean_bound_reference=False``), ``SoftBoundsReferenceDevice``, ``ExpStepDevice``."""

AIHWKIT_SOURCE = "aihwkit 1.2.0 (MIT), src/aihwkit/simulator/presets/devices.py"
"""The file the presets transcribe."""

WRITE_NOISE_NOT_MODELLED: dict[str, float] = {
    "aihwkit_reram_es": 75.0,
    "aihwkit_reram_sb": 56.0,
    "aihwkit_reram_array_om": 1.4113,
    "aihwkit_reram_array_hfo2": 0.5841,
}
"""aihwkit's ``write_noise_std`` (in units of ``dw_min``) of the presets that have one: not
modelled here (see the module docstring)."""

_EXTRA = ("bound_min_w", "bound_max_w", "reference_w", "slope_up", "slope_down")
_N_DRAWS = 9  # standard normal draws per cell, always all of them (a seed: the same cells)


@dataclass(frozen=True, kw_only=True)
class AihwkitDevice(Device):
    """aihwkit's pulsed device models (``model``), with aihwkit's own unitless parameters.

    Per cell (aihwkit's ``populate``; ξ standard normal, unclipped): bounds
    b_max = w_max·(1 + w_max_dtod·ξ), b_min = w_min·(1 + w_min_dtod·ξ); gain
    g = 1 + dw_min_dtod·ξ (or exp(dw_min_dtod·ξ), log-normal); r = up_down_dtod·ξ; up and
    down steps su = (up_bias + g + r)·dw_min, sd = (down_bias + g − r)·dw_min with
    up_bias = min(up_down, 0), down_bias = max(−up_down, 0) (``up_down`` only shrinks one
    direction); ``enforce_consistency`` takes |su|, |sd| and orders the bounds around 0; a
    cell is corrupt with ``corrupt_devices_prob`` (stuck anywhere in
    ±``corrupt_devices_range``). Per pulse (σ = ``dw_min_std``, ξ fresh; every rule ends
    with w clipped to the cell's bounds):

    - ``constant_step``: up w += su·(1 + σξ), down w −= sd·(1 + σξ).
    - ``linear_step``: slopes s_u = −g_u·su/w_max, s_d = −g_d·sd/w_min (the cell's bounds
      without ``mean_bound_reference``), g = |gamma + gamma_dtod·ξ|; ``mult_noise``: up
      w += (s_u·w + su)(1 + σξ), else w += s_u·w + su(1 + σξ); down likewise with −.
    - ``soft_bounds_reference``: b_max, b_min moved by the slope spreads; a per-cell
      reference ref = reference_mean + reference_std·ξ (+ the cell's symmetry point with
      ``subtract_symmetry_point``); on w_dev = w + ref: additive (default) up
      w_dev += su·(1 − w_dev/b_max + σξ), down w_dev −= sd·(1 − w_dev/b_min + σξ); the
      stored weight is w_dev − ref.
    - ``exp_step``: z = 2·a·w/(b_max − b_min) + b; up w += max(1 − A_up·e^(γ_up·z), 0)·
      (1 + σξ)·su, down w −= max(1 − A_down·e^(−γ_down·z), 0)·(1 + σξ)·sd; with
      ``dw_min_std_add`` or ``_slope`` the noise is σ·(|Δw| + add + slope·|w|)·ξ.

    The noise factor is not clipped (a step can go the wrong way, as in aihwkit). The
    conductance map, the window and what is not modelled: see the module docstring. Make
    variants with ``dataclasses.replace`` (the window and the steps are derived again).
    """

    model: str = "constant_step"
    """aihwkit's device class, one of `AIHWKIT_MODELS`."""
    us_per_weight: float = 80.0
    """µS per unit of aihwkit's weight (1/Rwg; the paper's Rwg 1/80)."""
    envelope_sd: float = 5.0
    """Half width of the window beyond the nominal bounds, in device-to-device SDs."""
    # --- PulsedDevice (aihwkit/simulator/configs/devices.py lines 66-296) -----------------
    dw_min: float = 0.001
    """Mean step of one pulse at w = 0 (weight units)."""
    up_down: float = 0.0
    """Relative up/down asymmetry: < 0 shrinks the up step, > 0 the down step."""
    up_down_dtod: float = 0.01
    """Device-to-device SD of the asymmetry r (relative to dw_min)."""
    dw_min_dtod: float = 0.3
    """Device-to-device SD of the step gain."""
    dw_min_dtod_log_normal: bool = False
    """Draw the gain log-normal, exp(dw_min_dtod·ξ), instead of 1 + dw_min_dtod·ξ."""
    dw_min_std: float = 0.3
    """Cycle-to-cycle SD of a step (relative to the step; absolute for additive noise)."""
    w_min: float = -0.6
    """Nominal lower bound (weight units, <= 0)."""
    w_max: float = 0.6
    """Nominal upper bound (weight units, >= 0)."""
    w_min_dtod: float = 0.3
    """Relative device-to-device SD of the lower bound."""
    w_max_dtod: float = 0.3
    """Relative device-to-device SD of the upper bound."""
    enforce_consistency: bool = True
    """Take |su|, |sd| and order each cell's bounds around 0 (aihwkit's Python default)."""
    corrupt_devices_prob: float = 0.0
    """Probability that a cell is corrupt: its bounds collapse to a value in
    ±``corrupt_devices_range``, its steps to 0."""
    corrupt_devices_range: float = 0.1
    """Range a corrupt cell's value is drawn from (weight units)."""
    reset: float = 0.0
    """Weight a fresh (reset) cell sits at."""
    # --- LinearStepDevice (lines 373-533) ------------------------------------------------
    gamma_up: float = 0.0
    """LinearStep: relative decrease of the up step at w_max; ExpStep: γ_up."""
    gamma_down: float = 0.0
    """LinearStep: relative decrease of the down step at w_min; ExpStep: γ_down."""
    gamma_up_dtod: float = 0.05
    """LinearStep: device-to-device SD of gamma_up."""
    gamma_down_dtod: float = 0.05
    """LinearStep: device-to-device SD of gamma_down."""
    allow_increasing: bool = False
    """LinearStep: allow negative gammas (no absolute value)."""
    mean_bound_reference: bool = True
    """LinearStep: the slopes refer to the nominal bounds, not the cell's."""
    mult_noise: bool = True
    """Multiplicative cycle-to-cycle noise (LinearStep default True, SoftBoundsReference
    default False: the presets say which)."""
    # --- SoftBoundsReferenceDevice (lines 683-783) ---------------------------------------
    slope_up_dtod: float = 0.0
    """SoftBoundsReference: device-to-device SD of the up slope (moves b_max)."""
    slope_down_dtod: float = 0.0
    """SoftBoundsReference: device-to-device SD of the down slope (moves b_min)."""
    reference_mean: float = 0.0
    """SoftBoundsReference: mean of the per-cell reference subtracted from the device."""
    reference_std: float = 0.0
    """SoftBoundsReference: SD of that reference."""
    subtract_symmetry_point: bool = False
    """SoftBoundsReference: add each cell's symmetry point to its reference."""
    # --- ExpStepDevice (lines 786-886) ---------------------------------------------------
    A_up: float = 0.00081
    """ExpStep: A_up."""
    A_down: float = 0.36833
    """ExpStep: A_down."""
    a: float = 0.244
    """ExpStep: a (z = 2·a·w/(b_max − b_min) + b)."""
    b: float = 0.2425
    """ExpStep: b."""
    dw_min_std_add: float = 0.0
    """ExpStep: additive part of the complex cycle-to-cycle noise."""
    dw_min_std_slope: float = 0.0
    """ExpStep: |w|-proportional part of the complex cycle-to-cycle noise."""
    # --- derived (the base fields in µS) -------------------------------------------------
    g_min_us: float = field(default=0.0, init=False)
    g_max_us: float = field(default=100.0, init=False)
    g_zero_us: float = field(default=50.0, init=False)
    """Conductance of aihwkit's w = 0 (µS): where the crossbar's reference belongs."""
    g_reset_us: float = field(default=math.nan, init=False)
    gate_g_top_us: float = field(default=math.nan, init=False)
    step_up_us: float = field(default=1.0, init=False)
    step_down_us: float = field(default=1.0, init=False)
    program_tolerance_us: float = field(default=1.0, init=False)
    nonlinearity_up: float = field(default=0.0, init=False)
    nonlinearity_down: float = field(default=0.0, init=False)
    c2c_sd: float = field(default=0.0, init=False)
    dtod_sd: float = field(default=0.0, init=False)
    relaxation_sd_us: float = field(default=0.0, init=False)
    read_noise_sd_us: float = field(default=0.0, init=False)

    extra_cell_fields: ClassVar[tuple[str, ...]] = _EXTRA

    def __post_init__(self) -> None:
        validate.choice("model", self.model, AIHWKIT_MODELS)
        validate.number("us_per_weight", self.us_per_weight, low=0, low_open=True)
        validate.number("envelope_sd", self.envelope_sd, low=0)
        validate.number("dw_min", self.dw_min, low=0, low_open=True)
        validate.number("w_min", self.w_min, high=0)
        validate.number("w_max", self.w_max, low=0)
        if self.w_max - self.w_min <= 0:
            raise ValueError(
                f"Invalid w_max: {self.w_max!r} with w_min {self.w_min!r}; allowed: a range "
                "around 0 of positive width"
            )
        for name in (
            "up_down",
            "gamma_up",
            "gamma_down",
            "reference_mean",
            "A_up",
            "A_down",
            "a",
            "b",
            "reset",
        ):
            validate.number(name, getattr(self, name))
        for name in (
            "up_down_dtod",
            "dw_min_dtod",
            "dw_min_std",
            "w_min_dtod",
            "w_max_dtod",
            "gamma_up_dtod",
            "gamma_down_dtod",
            "reference_std",
            "dw_min_std_add",
            "dw_min_std_slope",
            "corrupt_devices_range",
        ):
            validate.number(name, getattr(self, name), low=0)
        validate.fraction("corrupt_devices_prob", self.corrupt_devices_prob)
        for name in ("slope_up_dtod", "slope_down_dtod"):
            validate.number(name, getattr(self, name), low=0, high=1, high_open=True)
        for f in fields(self):
            if f.type in ("bool", bool) and not isinstance(getattr(self, f.name), bool):
                raise ValueError(
                    f"Invalid {f.name}: {getattr(self, f.name)!r}; allowed: True or False"
                )
        lo, hi = self.envelope_w()
        half = max(-lo, hi)
        u = self.us_per_weight
        gran = self.granularity_w()
        derived = {
            "g_min_us": 0.0,
            "g_max_us": 2 * half * u,
            "g_zero_us": half * u,
            "g_reset_us": min(max((half + self.reset) * u, 0.0), 2 * half * u),
            "gate_g_top_us": 2 * half * u,
            "step_up_us": gran * u,
            "step_down_us": gran * u,
            "program_tolerance_us": gran * u,
        }
        for k, v in derived.items():
            object.__setattr__(self, k, float(v))
        super().__post_init__()

    # --- derived quantities --------------------------------------------------------------
    def envelope_w(self) -> tuple[float, float]:
        """The weights (lo, hi) the window must hold: the stored weight of every cell within
        ``envelope_sd`` SDs of its draws (aihwkit's reference-subtracted weight)."""
        k = self.envelope_sd
        lo = self.w_min * (1 + k * self.w_min_dtod)
        hi = self.w_max * (1 + k * self.w_max_dtod)
        if self.model == "soft_bounds_reference":  # a slope spread moves the bound outwards
            lo /= max(1 - k * self.slope_down_dtod, 0.2)
            hi /= max(1 - k * self.slope_up_dtod, 0.2)
            ref = abs(self.reference_mean) + k * self.reference_std
            if self.subtract_symmetry_point:  # the symmetry point lies within the bounds
                return lo - hi - ref, hi - lo + ref
            return lo - ref, hi + ref
        return lo, hi

    def granularity_w(self) -> float:
        """aihwkit's ``calcWeightGranularity`` (``rpu_pulsed_device.h`` 418-441,
        ``rpu_expstep_device.h`` 43-54): ``dw_min``, for ExpStep the nominal down step at
        w = 0 (aihwkit averages the down step with itself)."""
        if self.model != "exp_step":
            return self.dw_min
        down_bias = -self.up_down if self.up_down > 0 else 0.0
        z = self.b
        down = (
            (down_bias + 1) * self.dw_min * max(1 - self.A_down * math.exp(-self.gamma_down * z), 0)
        )
        return down if down > 0 else self.dw_min

    @property
    def write_sd_us(self) -> float:
        """SD(εcell) in µS taken for this preset: one nominal pulse's cycle-to-cycle noise,
        ``dw_min_std · dw_min · us_per_weight`` (every rule's noise at the nominal step).

        eapu's assumption, not aihwkit's (aihwkit has no εcell): these presets have no
        verified write, their weights are set exactly (``gaussian`` with no relaxation), so
        the load scheme's characterised SD(εcell) is 0 µS, which as EaPU's threshold would
        turn EaPU into BP over the same scheme; and a write-verify sweep over the window
        measures the cells' own bounds (most targets lie outside them), not a write's error.
        The smallest write the device does is one pulse, and what it leaves is its noise.
        """
        return self.dw_min_std * self.dw_min * self.us_per_weight

    def crossbar_defaults(self) -> dict[str, Any]:
        """The crossbar options that make eapu's weight aihwkit's: the reference at
        ``g_zero_us``, Rwg = 1/us_per_weight, initial weights written exactly (``gaussian``
        with no relaxation: aihwkit's ``set_weights``), and SD(εcell) `write_sd_us` (the
        default EaPU threshold)."""
        return {
            "g_ref_us": self.g_zero_us,
            "rwg_per_us": 1.0 / self.us_per_weight,
            "load_scheme": "gaussian",
            "sd_us": self.write_sd_us,
        }

    # --- the physics seam ----------------------------------------------------------------
    def pulse_step_linear(
        self, polarity: Tensor, params: CellParams
    ) -> tuple[Tensor, Tensor, Tensor] | None:
        """None: the per-cell bounds and aihwkit's unclipped noise are not the base kind's
        affine soft bound (pulses then go one at a time through `pulse_step_us`)."""
        return None

    def _cell(self, params: CellParams, name: str, like: Tensor) -> Tensor:
        """One of the cell's draws (weight units); a params without it (a nominal cell)
        gets the nominal value."""
        t = params.extra.get(name)
        if t is None:
            nominal = {
                "bound_min_w": self.w_min,
                "bound_max_w": self.w_max,
                "reference_w": self.reference_mean,
                "slope_up": -self.gamma_up * self.dw_min / self.w_max if self.w_max else 0.0,
                "slope_down": -self.gamma_down * self.dw_min / self.w_min if self.w_min else 0.0,
            }
            return torch.full_like(like, nominal[name])
        return t if t.dtype == like.dtype else t.to(like.dtype)

    def pulse_step_us(
        self, g_us: Tensor, polarity: Tensor, params: CellParams, z: Tensor
    ) -> Tensor:
        """Signed conductance change of one pulse per cell: the model's rule (see the class)
        on w = (G − g_zero)/us_per_weight, clipped to the cell's bounds, back in µS."""
        u = self.us_per_weight
        w = (g_us - self.g_zero_us) / u
        up = polarity > 0
        sign = torch.where(up, 1.0, -1.0).to(w.dtype)
        scale = torch.where(up, params.step_up_scale, params.step_down_scale).to(w.dtype)
        step = scale * self.dw_min  # the magnitude su or sd
        noise = (self.dw_min_std * z).to(w.dtype)
        lo = self._cell(params, "bound_min_w", w)
        hi = self._cell(params, "bound_max_w", w)
        ref: Tensor | None = None
        if self.model == "constant_step":
            new = w + sign * step * (1 + noise)
        elif self.model == "linear_step":
            slope = torch.where(
                up, self._cell(params, "slope_up", w), self._cell(params, "slope_down", w)
            )
            if self.mult_noise:
                new = w + sign * (slope * w + step) * (1 + noise)
            else:
                new = w + sign * (slope * w + step * (1 + noise))
        elif self.model == "soft_bounds_reference":
            ref = self._cell(params, "reference_w", w)
            wd = w + ref
            bound = torch.where(up, hi, lo)  # the soft bound uses 0 for a bound of wrong sign
            ok = torch.where(up, hi > 0, lo < 0)
            a = torch.where(ok, wd / torch.where(ok, bound, 1), 0)
            if self.mult_noise:
                new = wd + sign * step * (1 - a) * (1 + noise)
            else:
                new = wd + sign * step * (1 - a + noise)
        else:  # exp_step
            span = hi - lo
            zz = 2 * w / torch.where(span > 0, span, 1) * self.a + self.b
            amp = torch.where(up, self.A_up, self.A_down)
            rate = torch.where(up, self.gamma_up, -self.gamma_down)
            y = (1 - amp * torch.exp(rate * zz)).clamp(min=0)
            if self.dw_min_std > 0 and (self.dw_min_std_add or self.dw_min_std_slope):
                dw = sign * y * step
                spread = dw.abs() + self.dw_min_std_add + self.dw_min_std_slope * w.abs()
                new = w + dw + spread * noise
            else:
                new = w + sign * y * (1 + noise) * step
            new = torch.where(span > 0, new, w)  # no update of a cell without a range
        new = new.clamp(min=lo).clamp(max=hi)
        if ref is not None:
            new = new - ref
        return torch.where(polarity == 0, 0, (new - w) * u)

    def sample(
        self,
        shape: tuple[int, ...] | torch.Size,
        *,
        generator: torch.Generator,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> CellParams:
        """aihwkit's per-cell draws (``populate``; see the class), plus eapu's stuck cells
        (``stuck_off_fraction`` / ``stuck_on_fraction``, at the window's edges)."""
        shape = torch.Size(shape)
        dev = torch.device(device) if device is not None else generator.device
        f64 = torch.float64
        xi = [
            torch.randn(shape, generator=generator, device=dev, dtype=f64) for _ in range(_N_DRAWS)
        ]
        u_corrupt, u_value, u_stuck = (
            torch.rand(shape, generator=generator, device=dev, dtype=f64) for _ in range(3)
        )
        b_max = self.w_max * (1 + self.w_max_dtod * xi[0])
        b_min = self.w_min * (1 + self.w_min_dtod * xi[1])
        if self.dw_min_dtod_log_normal:
            gain = torch.exp(self.dw_min_dtod * xi[2])
        else:
            gain = 1 + self.dw_min_dtod * xi[2]
        r = self.up_down_dtod * xi[3]
        up_bias = self.up_down if self.up_down < 0 else 0.0
        down_bias = -self.up_down if self.up_down > 0 else 0.0
        su = (up_bias + gain + r) * self.dw_min
        sd = (down_bias + gain - r) * self.dw_min
        if self.enforce_consistency:
            su, sd = su.abs(), sd.abs()
            b_min, b_max = torch.minimum(b_min, b_max), torch.maximum(b_min, b_max)
            b_max, b_min = b_max.abs(), -b_min.abs()
        else:  # a cell whose bounds cross is dead at their midpoint
            mid = (b_min + b_max) / 2
            crossed = b_min > b_max
            b_min, b_max = torch.where(crossed, mid, b_min), torch.where(crossed, mid, b_max)
        corrupt = self.corrupt_devices_prob > u_corrupt
        rng = abs(self.corrupt_devices_range)
        mn = torch.minimum(b_max, b_min).clamp(min=-rng)
        mx = torch.maximum(b_max, b_min).clamp(max=rng)
        value = mn + (mx - mn) * u_value
        b_min, b_max = torch.where(corrupt, value, b_min), torch.where(corrupt, value, b_max)
        su, sd = torch.where(corrupt, 0.0, su), torch.where(corrupt, 0.0, sd)
        ref = torch.zeros_like(su)
        slope_up, slope_down = torch.zeros_like(su), torch.zeros_like(su)
        if self.model == "linear_step":
            g_u = self.gamma_up + self.gamma_up_dtod * xi[4]
            g_d = self.gamma_down + self.gamma_down_dtod * xi[5]
            if not self.allow_increasing:
                g_u, g_d = g_u.abs(), g_d.abs()
            r_u = torch.full_like(su, self.w_max) if self.mean_bound_reference else b_max
            r_d = torch.full_like(su, self.w_min) if self.mean_bound_reference else b_min
            slope_up = torch.where(r_u != 0, -g_u * su / torch.where(r_u != 0, r_u, 1), 0.0)
            slope_down = torch.where(r_d != 0, -g_d * sd / torch.where(r_d != 0, r_d, 1), 0.0)
        elif self.model == "soft_bounds_reference":
            ok = (b_max > 0) & (b_min < 0)
            safe_max, safe_min = torch.where(ok, b_max, 1.0), torch.where(ok, b_min, -1.0)
            s_down = -sd / safe_min * (1 + self.slope_down_dtod * xi[6]).abs()
            s_up = su / safe_max * (1 + self.slope_up_dtod * xi[7]).abs()
            b_max = torch.where(ok & (s_up > 0), su / torch.where(s_up > 0, s_up, 1), b_max)
            b_min = torch.where(ok & (s_down > 0), -sd / torch.where(s_down > 0, s_down, 1), b_min)
            ref = self.reference_mean + self.reference_std * xi[8]
            if self.subtract_symmetry_point:
                ok = (b_max > 0) & (b_min < 0)
                den = su / torch.where(ok, b_max, 1.0) - sd / torch.where(ok, b_min, -1.0)
                sp = torch.where(ok & (den != 0), (su - sd) / torch.where(den != 0, den, 1), 0.0)
                ref = ref + sp
        stuck = torch.zeros(shape, dtype=torch.int8, device=dev)
        stuck[u_stuck < self.stuck_off_fraction] = STUCK_OFF
        on = (u_stuck >= self.stuck_off_fraction) & (
            u_stuck < self.stuck_off_fraction + self.stuck_on_fraction
        )
        stuck[on] = STUCK_ON
        ones = torch.ones(shape, device=dev, dtype=dtype)
        return CellParams(
            step_up_scale=(su / self.dw_min).to(dtype),
            step_down_scale=(sd / self.dw_min).to(dtype),
            gate_v_th_v=ones * self.gate_v_th_v,
            gate_gain=ones,
            stuck=stuck,
            extra={
                "bound_min_w": b_min.to(dtype),
                "bound_max_w": b_max.to(dtype),
                "reference_w": ref.to(dtype),
                "slope_up": slope_up.to(dtype),
                "slope_down": slope_down.to(dtype),
            },
        )


# ----------------------------------------------------------------------------- presets
# fmt: off
AIHWKIT_PRESETS: dict[str, tuple[int, str, str, str, str, dict[str, Any]]] = {
    # name: (line of presets/devices.py, aihwkit's class, what it is, the fit's source,
    #        what is not modelled beyond the module's list, aihwkit's field values)
    "aihwkit_reram_es": (
        21, "ReRamESPresetDevice", "ReRAM, exponential step, ~1000 states",
        "fit to Gong et al., Nat. Commun. 9, 2102 (2018)", "",
        dict(model="exp_step", dw_min=0.00135, up_down=0.259359, w_max=1.0, w_min=-1.0,
             a=-0.5, b=-0.5, gamma_up=5.0, gamma_down=5.0, A_up=-1.18445, A_down=-0.081404,
             dw_min_dtod=0.2, up_down_dtod=0.05, w_max_dtod=0.3, w_min_dtod=0.3,
             dw_min_std=5.0)),
    "aihwkit_reram_sb": (
        58, "ReRamSBPresetDevice", "ReRAM, soft bounds, 1000 states, additive c2c 3.75 steps",
        "loose fit to Gong et al., Nat. Commun. 9, 2102 (2018)", "",
        dict(model="soft_bounds_reference", dw_min=0.002, up_down=0.0, w_max=1.25,
             w_min=-0.75, mult_noise=False, dw_min_dtod=0.3, up_down_dtod=0.01,
             w_max_dtod=0.3 / 1.25, w_min_dtod=0.3 / 0.75, dw_min_std=3.75)),
    "aihwkit_capacitor": (
        93, "CapacitorPresetDevice", "capacitor cell, linear step, 400 states",
        "fit to Li et al., VLSI 2018", "leakage (lifetime 1e6 mini-batches) not modelled",
        dict(model="linear_step", dw_min=0.005, up_down=0.0, w_max=1.0, w_min=-1.0,
             mult_noise=False, gamma_up=0.05, gamma_down=0.05, dw_min_dtod=0.1,
             up_down_dtod=0.06, w_max_dtod=0.07, w_min_dtod=0.07, gamma_up_dtod=0.01,
             gamma_down_dtod=0.01, dw_min_std=0.3, mean_bound_reference=True)),
    "aihwkit_ecram": (
        148, "EcRamPresetDevice", "Li-based ECRAM, linear step, 1000 states",
        "fit to Tang et al., IEDM 2018", "",
        dict(model="linear_step", dw_min=0.002, up_down=0.0, w_max=1.1724, w_min=-0.8276,
             mult_noise=True, gamma_up=0.1153, gamma_down=0.5085, dw_min_dtod=0.1,
             up_down_dtod=0.01, w_max_dtod=0.05, w_min_dtod=0.05, gamma_up_dtod=0.05,
             gamma_down_dtod=0.05, dw_min_std=0.3, mean_bound_reference=True)),
    "aihwkit_ecram_mo": (
        189, "EcRamMOPresetDevice", "metal-oxide ECRAM, linear step, ~7000 states",
        "data of Kim et al., IEDM 2019", "",
        dict(model="linear_step", dw_min=2.8214e-4, up_down=0.0, w_max=1.1714, w_min=-0.8286,
             mult_noise=True, gamma_up=0.4152, gamma_down=0.7342, dw_min_dtod=0.1,
             up_down_dtod=0.01, w_max_dtod=0.05, w_min_dtod=0.05, gamma_up_dtod=0.05,
             gamma_down_dtod=0.05, dw_min_std=2.0, mean_bound_reference=True)),
    "aihwkit_idealized": (
        228, "IdealizedPresetDevice", "constant step, every cell symmetric, 10000 states",
        "Gokmen & Vlasov, Front. Neurosci. 10, 333 (2016), no asymmetry spread", "",
        dict(model="constant_step", dw_min=0.0002, dw_min_dtod=0.3, dw_min_std=0.3,
             up_down=0.0, up_down_dtod=0.0, w_max=1.0, w_min=-1.0, w_max_dtod=0.3,
             w_min_dtod=0.3)),
    "aihwkit_gokmen_vlasov": (
        265, "GokmenVlasovPresetDevice", "constant step, 1250 states",
        "Gokmen & Vlasov, Front. Neurosci. 10, 333 (2016), scaled to ±1", "",
        dict(model="constant_step", dw_min=0.0016, dw_min_dtod=0.3, dw_min_std=0.3,
             up_down=0.0, up_down_dtod=0.01, w_max=1.0, w_min=-1.0, w_max_dtod=0.3,
             w_min_dtod=0.3)),
    "aihwkit_pcm": (
        296, "PCMPresetDevice", "PCM, exponential step, complex noise, one-sided w in [0, 2]",
        "Nandakumar et al., Front. Neurosci. 14, 406 (2020)",
        "aihwkit pairs it with refresh (PCMPresetUnitCell), not reproduced; reset spread "
        "not modelled",
        dict(model="exp_step", dw_min=0.01, up_down=0.0, w_max=2.0, w_min=0.0, a=-1.0, b=0.0,
             gamma_up=2.5, gamma_down=2.5, A_up=-27.235, A_down=-2.235, dw_min_dtod=0.2,
             up_down_dtod=0.05, w_max_dtod=0.1, w_min_dtod=0.0, dw_min_std=0.6,
             dw_min_std_add=0.042, dw_min_std_slope=0.108, reset=0.01)),
    "aihwkit_reram_array_om": (
        354, "ReRamArrayOMPresetDevice", "measured ReRAM array, ~21 states, log-normal spread",
        "fit to the 'optimized material' array of Gong, Rasch et al., IEDM 2022", "",
        dict(model="soft_bounds_reference", enforce_consistency=True,
             dw_min_dtod_log_normal=True, dw_min=0.0949, up_down=0.0, w_max=1.0, w_min=-1.0,
             mult_noise=False, dw_min_dtod=0.7829, up_down_dtod=0.01, w_max_dtod=0.3499,
             w_min_dtod=0.5695, dw_min_std=0.4158, corrupt_devices_range=0.01,
             corrupt_devices_prob=0.0, subtract_symmetry_point=True, reference_std=0.05)),
    "aihwkit_reram_array_hfo2": (
        413, "ReRamArrayHfO2PresetDevice", "measured ReRAM array, ~4 states, log-normal spread",
        "fit to the 'baseline HfO2' array of Gong, Rasch et al., IEDM 2022", "",
        dict(model="soft_bounds_reference", enforce_consistency=True,
             dw_min_dtod_log_normal=True, dw_min=0.4622, up_down=0.0, w_max=1.0, w_min=-1.0,
             mult_noise=False, dw_min_dtod=0.7125, up_down_dtod=0.01, w_max_dtod=0.4295,
             w_min_dtod=0.5990, dw_min_std=0.2174, corrupt_devices_range=0.01,
             corrupt_devices_prob=0.0, subtract_symmetry_point=True, reference_std=0.05)),
}
"""aihwkit 1.2.0's device presets, by eapu name: (line of ``presets/devices.py``, aihwkit
class, description, the fit's source, what is not modelled, aihwkit's field values: those
its preset sets; the rest are the class defaults, as in aihwkit)."""
# fmt: on


def _factory(name: str, values: dict[str, Any], doc: str) -> Callable[..., AihwkitDevice]:
    def factory(**overrides: Any) -> AihwkitDevice:
        return AihwkitDevice(**{"name": name, **values, **overrides})

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = doc
    return factory


def _register_presets() -> None:
    for name, (line, cls, what, fit, omitted, values) in AIHWKIT_PRESETS.items():
        parts = [f"{AIHWKIT_SOURCE}:{line} {cls}; {fit}"]
        if name in WRITE_NOISE_NOT_MODELLED:
            parts.append(f"write_noise_std {WRITE_NOISE_NOT_MODELLED[name]:g} not modelled")
        if omitted:
            parts.append(omitted)
        parts.append("window: the bounds ± 5 SD at 80 µS per weight unit (eapu's choice)")
        doc = (
            f"aihwkit 1.2.0's {cls} ({what}); keyword arguments replace its fields.\n\n"
            f"Source: {'; '.join(parts)}."
        )
        register_device(
            name=name,
            description=f"{what} (aihwkit 1.2.0 {cls}, presets/devices.py:{line})",
            source="; ".join(parts),
        )(_factory(name, values, doc))


_register_presets()
