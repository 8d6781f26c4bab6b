"""Device physics of one memristive cell, as frozen dataclasses and pure tensor functions.

A `Device` describes a technology (window, pulse response, gate-controlled SET, noise,
faults); `Device.sample` draws the device-to-device spread of a tensor of cells once
(`CellParams`); the pure functions `pulse`, `gate_set`, `relax` and `read` apply one
physical operation to every cell of a tensor at once. Programming schemes
(`eapu.programming`) combine these into writes; `eapu.programming.characterize` measures
SD(εcell) of a device under a scheme, which is the default EaPU threshold.

A device kind is a `Device` subclass: the pulse response and the gate curve go through the
two methods `Device.pulse_step_us` and `Device.gate_curve_us` (the physics seam), so every
scheme drives every kind alike; `eapu.measured.MeasuredDevice` is the kind defined by
measured tables instead of the soft-bound formula.

>>> import torch
>>> dev = get_device("taox_1t1r")
>>> gen = torch.Generator().manual_seed(0)
>>> cells = dev.sample((4, 4), generator=gen)
>>> g = initial_conductance((4, 4), dev, cells)
>>> g2 = pulse(g, torch.ones(4, 4), dev, cells, generator=gen)   # one SET pulse each
>>> bool((g2 >= g).all())
True

Conductance is in µS, voltage in V, time in s. Every random draw takes an explicit
``torch.Generator`` on the tensors' device.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from . import validate
from .registry import Registry

__all__ = [
    "DEVICES",
    "DEVICE_KINDS",
    "PCM_DRIFT_NU",
    "STUCK_FREE",
    "STUCK_OFF",
    "STUCK_ON",
    "CellParams",
    "Device",
    "DeviceInfo",
    "MeasuredDevice",
    "device_toml",
    "gate_curve",
    "gate_set",
    "gaussian",
    "get_device",
    "get_device_info",
    "ideal",
    "initial_conductance",
    "interp",
    "is_device_file",
    "land",
    "list_devices",
    "load_device",
    "neurram",
    "pcm",
    "pulse",
    "pulse_rounds",
    "read",
    "register_device",
    "relax",
    "save_device",
    "stuck_values",
    "taox_1t1r",
]

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

    # --- the physics seam: a device kind overrides these two ------------------------------

    def pulse_step_us(
        self, g_us: Tensor, polarity: Tensor, params: CellParams, z: Tensor
    ) -> Tensor:
        """Signed conductance change of one identical pulse per cell, before the window clamp.

        This is the soft-bound model: step = step·scale_cell·max(0, 1 ∓ nl·(2x - 1)) times
        ``max(0, 1 + c2c_sd·z)``, so a step never changes sign. `pulse` calls it and adds
        the clamp, the stuck cells and the cells without a pulse.

        Args:
            g_us: present conductance (µS).
            polarity: +1 SET, -1 RESET, 0 none, in ``g_us``'s dtype.
            params: the cells' device-to-device draw.
            z: standard normal draw per cell (the cycle-to-cycle noise).
        """
        x = (g_us - self.g_min_us) / self.span_us
        bias = 2 * x - 1
        up = self.step_up_us * params.step_up_scale * (1 - self.nonlinearity_up * bias).clamp(min=0)
        down = (
            self.step_down_us
            * params.step_down_scale
            * (1 + self.nonlinearity_down * bias).clamp(min=0)
        )
        noise = (1 + self.c2c_sd * z).clamp(min=0)
        return (
            torch.where(polarity > 0, up, torch.where(polarity < 0, -down, torch.zeros_like(up)))
            * noise
        )

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
    """Device-to-device draw of a tensor of cells; every field has the cell shape."""

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

    _FIELDS = ("step_up_scale", "step_down_scale", "gate_v_th_v", "gate_gain", "stuck")

    def __post_init__(self) -> None:
        shapes = {f: tuple(getattr(self, f).shape) for f in self._FIELDS}
        if len(set(shapes.values())) != 1:
            raise ValueError(f"CellParams fields must share one shape, got {shapes}")
        if self.stuck.dtype != torch.int8:
            raise ValueError(f"stuck must be int8, got {self.stuck.dtype}")

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
        return CellParams(**{f: getattr(self, f).reshape(-1)[key] for f in self._FIELDS})

    @classmethod
    def cat(cls, parts: Sequence[CellParams]) -> CellParams:
        """The flattened cells of ``parts``, one after another (e.g. a reference column grown
        as layers are placed)."""
        if not parts:
            raise ValueError("CellParams.cat needs at least one part")
        return cls(
            **{f: torch.cat([getattr(p, f).reshape(-1) for p in parts]) for f in cls._FIELDS}
        )

    def to(self, device: torch.device | str) -> CellParams:
        """A copy on another torch device."""
        return CellParams(**{f: getattr(self, f).to(device) for f in self._FIELDS})

    def state_dict(self) -> dict[str, Tensor]:
        """The parameters as a dict of tensors (copies), for checkpoints."""
        return {f: getattr(self, f).clone() for f in self._FIELDS}

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> CellParams:
        """Rebuild from `state_dict` output."""
        missing = [f for f in cls._FIELDS if f not in state]
        if missing:
            raise ValueError(f"state is missing CellParams fields {missing}; has {sorted(state)}")
        return cls(**{f: state[f].clone() for f in cls._FIELDS})


# --------------------------------------------------------------------------------------
# a device kind defined by measured tables
# --------------------------------------------------------------------------------------


def _table(name: str, values: Any, *, low: float | None = 0.0) -> tuple[float, ...]:
    """A table field as a tuple of finite floats (>= ``low``), so the device stays hashable."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}")
    out = tuple(float(v) for v in values)
    for i, v in enumerate(out):
        if not math.isfinite(v) or (low is not None and v < low):
            rng = "a finite number" + ("" if low is None else f" >= {low}")
            raise ValueError(f"{name}[{i}] must be {rng}, got {v}")
    return out


def _grid(name: str, values: Any) -> tuple[float, ...]:
    out = _table(name, values, low=None)
    if len(out) < 2:
        raise ValueError(f"{name} needs at least 2 points, got {len(out)}")
    for i in range(1, len(out)):
        if out[i] <= out[i - 1]:
            raise ValueError(
                f"{name} must be strictly increasing, got {out[i - 1]} then {out[i]} at [{i}]"
            )
    return out


def interp(x: Tensor, xp: tuple[float, ...], fp: tuple[float, ...]) -> Tensor:
    """Piecewise-linear ``fp(x)`` through the points ``(xp, fp)``, constant beyond the ends.

    ``xp`` strictly increasing; the result has ``x``'s shape, dtype and torch device.
    """
    xs = torch.tensor(xp, dtype=x.dtype, device=x.device)
    fs = torch.tensor(fp, dtype=x.dtype, device=x.device)
    i = torch.searchsorted(xs, x.contiguous()).clamp(1, len(xp) - 1)
    x0, x1, f0, f1 = xs[i - 1], xs[i], fs[i - 1], fs[i]
    w = ((x - x0) / (x1 - x0)).clamp(0.0, 1.0)
    return f0 + w * (f1 - f0)


_PARAMETRIC_PULSE_FIELDS = (
    "step_up_us",
    "step_down_us",
    "nonlinearity_up",
    "nonlinearity_down",
    "c2c_sd",
    "set_g_us",
    "set_step_us",
    "set_c2c_us",
    "reset_g_us",
    "reset_step_us",
    "reset_c2c_us",
    "gate_v_v",
    "gate_g_us",
)


@dataclass(frozen=True, kw_only=True)
class MeasuredDevice(Device):
    """A device kind defined by measured tables instead of the soft-bound formula.

    The mean conductance change of one identical SET (RESET) pulse and its cycle-to-cycle SD
    are tables over the present conductance, interpolated linearly (constant beyond the
    measured ends); one pulse changes a cell by ``scale_cell·(mean(G) + sd(G)·z)``, never of
    the wrong sign, with ``scale_cell`` the device-to-device draw of ``dtod_sd``. The
    gate-controlled SET is the base kind's curve, or the table ``gate_v_v`` → ``gate_g_us``
    (a RESET + SET at each gate voltage, nominal cell) when given; the device-to-device
    threshold and gain spread then shift and scale that table. Relaxation, read noise,
    tolerance, faults and drift are the base fields. `eapu.devicefit` fits one from pulse
    trains; a device file (`save_device`, `load_device`) holds one.

    ``step_up_us`` / ``step_down_us`` are derived (the tables at the window centre, the step
    `eapu.algorithms` takes as a device's granularity); ``nonlinearity_*`` and ``c2c_sd``
    do not apply (they are 0).

    >>> dev = MeasuredDevice(name="cell", g_min_us=5, g_max_us=100,
    ...     set_g_us=(5, 100), set_step_us=(2.0, 0.5), set_c2c_us=(0.4, 0.2),
    ...     reset_g_us=(5, 100), reset_step_us=(0.5, 2.0), reset_c2c_us=(0.2, 0.4))
    >>> dev.step_up_us
    1.25
    """

    set_g_us: tuple[float, ...]
    """Conductances at which the SET tables are given (µS), strictly increasing."""
    set_step_us: tuple[float, ...]
    """Mean conductance increase of one SET pulse at each ``set_g_us`` (µS, >= 0)."""
    set_c2c_us: tuple[float, ...]
    """Cycle-to-cycle SD of that increase at each ``set_g_us`` (µS, >= 0)."""
    reset_g_us: tuple[float, ...]
    """Conductances at which the RESET tables are given (µS), strictly increasing."""
    reset_step_us: tuple[float, ...]
    """Mean conductance decrease of one RESET pulse at each ``reset_g_us`` (µS, >= 0)."""
    reset_c2c_us: tuple[float, ...]
    """Cycle-to-cycle SD of that decrease at each ``reset_g_us`` (µS, >= 0)."""
    gate_v_v: tuple[float, ...] = ()
    """Gate voltages of the measured SET-after-RESET curve (V), strictly increasing; empty:
    the base kind's parametric curve."""
    gate_g_us: tuple[float, ...] = ()
    """Conductance a RESET + SET lands at for each ``gate_v_v`` (µS), non-decreasing."""
    step_up_us: float = field(default=1.0, init=False)
    step_down_us: float = field(default=1.0, init=False)
    nonlinearity_up: float = field(default=0.0, init=False)
    nonlinearity_down: float = field(default=0.0, init=False)
    c2c_sd: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        for side in ("set", "reset"):
            grid = _grid(f"{side}_g_us", getattr(self, f"{side}_g_us"))
            object.__setattr__(self, f"{side}_g_us", grid)
            for what in ("step", "c2c"):
                name = f"{side}_{what}_us"
                tab = _table(name, getattr(self, name))
                if len(tab) != len(grid):
                    raise ValueError(
                        f"{name} has {len(tab)} values, {side}_g_us has {len(grid)} points"
                    )
                object.__setattr__(self, name, tab)
        gv = _table("gate_v_v", self.gate_v_v, low=None)
        gg = _table("gate_g_us", self.gate_g_us)
        if gv or gg:
            gv = _grid("gate_v_v", gv)
            if len(gg) != len(gv):
                raise ValueError(f"gate_g_us has {len(gg)} values, gate_v_v has {len(gv)} points")
            for i in range(1, len(gg)):
                if gg[i] < gg[i - 1]:
                    raise ValueError(
                        f"gate_g_us must be non-decreasing, got {gg[i - 1]} then {gg[i]} at [{i}]"
                    )
        object.__setattr__(self, "gate_v_v", gv)
        object.__setattr__(self, "gate_g_us", gg)
        mid = torch.tensor([(self.g_min_us + self.g_max_us) / 2], dtype=torch.float64)
        for side, attr in (("set", "step_up_us"), ("reset", "step_down_us")):
            centre = float(
                interp(mid, getattr(self, f"{side}_g_us"), getattr(self, f"{side}_step_us"))
            )
            if centre <= 0:
                raise ValueError(
                    f"{side}_step_us must be > 0 at the window centre {float(mid):g} µS "
                    f"(a pulse there must move the cell), got {centre}"
                )
            object.__setattr__(self, attr, centre)
        super().__post_init__()

    @classmethod
    def from_device(cls, device: Device, *, points: int = 33, gate: bool = True) -> MeasuredDevice:
        """``device``'s pulse response (and gate curve) as tables of ``points`` points over
        its window: the same physics up to the linear interpolation, in the measured kind.

        The soft-bound step becomes the mean table and ``c2c_sd·mean`` the SD table; every
        other field is kept. ``gate=False`` keeps the parametric gate curve.
        """
        validate.integer("points", points, low=2)
        g = torch.linspace(device.g_min_us, device.g_max_us, points, dtype=torch.float64)
        ones = torch.ones(points, dtype=torch.float64)
        nominal = CellParams(
            step_up_scale=ones,
            step_down_scale=ones,
            gate_v_th_v=ones * device.gate_v_th_v,
            gate_gain=ones,
            stuck=torch.zeros(points, dtype=torch.int8),
        )
        zero = torch.zeros(points, dtype=torch.float64)
        up = device.pulse_step_us(g, ones, nominal, zero)
        down = -device.pulse_step_us(g, -ones, nominal, zero)
        keep = {
            f.name: getattr(device, f.name)
            for f in dataclasses.fields(device)
            if f.init and f.name not in _PARAMETRIC_PULSE_FIELDS
        }
        grid = tuple(g.tolist())
        tables: dict[str, Any] = {
            "set_g_us": grid,
            "set_step_us": tuple(up.tolist()),
            "set_c2c_us": tuple((device.c2c_sd * up).tolist()),
            "reset_g_us": grid,
            "reset_step_us": tuple(down.tolist()),
            "reset_c2c_us": tuple((device.c2c_sd * down).tolist()),
        }
        if gate:
            v = torch.linspace(
                device.v_gate_min_v, device.v_gate_max_v, points, dtype=torch.float64
            )
            tables["gate_v_v"] = tuple(v.tolist())
            tables["gate_g_us"] = tuple(device.gate_curve_us(v, None).tolist())
        return cls(**{**keep, **tables})

    def pulse_step_us(
        self, g_us: Tensor, polarity: Tensor, params: CellParams, z: Tensor
    ) -> Tensor:
        """Signed change of one pulse: ``±scale_cell·max(0, mean(G) + sd(G)·z)`` from the
        tables (see the class)."""
        up = interp(g_us, self.set_g_us, self.set_step_us)
        up = (up + interp(g_us, self.set_g_us, self.set_c2c_us) * z).clamp(min=0)
        down = interp(g_us, self.reset_g_us, self.reset_step_us)
        down = (down + interp(g_us, self.reset_g_us, self.reset_c2c_us) * z).clamp(min=0)
        up = up * params.step_up_scale
        down = down * params.step_down_scale
        return torch.where(polarity > 0, up, torch.where(polarity < 0, -down, torch.zeros_like(up)))

    def gate_curve_us(self, v_gate_v: Tensor, params: CellParams | None) -> Tensor:
        """The measured gate table when given (shifted by the cell's threshold offset, its
        rise above ``g_reset_us`` scaled by the cell's gain), else the base kind's curve."""
        if not self.gate_v_v:
            return super().gate_curve_us(v_gate_v, params)
        if params is None:
            return interp(v_gate_v, self.gate_v_v, self.gate_g_us)
        g = interp(
            v_gate_v - (params.gate_v_th_v - self.gate_v_th_v), self.gate_v_v, self.gate_g_us
        )
        return self.g_reset_us + (g - self.g_reset_us) * params.gate_gain


# --------------------------------------------------------------------------------------
# pure physics
# --------------------------------------------------------------------------------------


def _check_shape(name: str, t: Tensor, params: CellParams) -> None:
    if t.shape != params.shape:
        raise ValueError(
            f"{name} has shape {tuple(t.shape)} but params has shape {tuple(params.shape)}"
        )


def _hold_stuck(g_new: Tensor, g_old: Tensor, params: CellParams) -> Tensor:
    return torch.where(params.stuck == STUCK_FREE, g_new, g_old)


def stuck_values(g: Tensor, device: Device, params: CellParams) -> Tensor:
    """``g`` with the stuck cells set to their bound (off: ``g_min_us``, on: ``g_max_us``)."""
    g = torch.where(params.stuck == STUCK_OFF, torch.full_like(g, device.g_min_us), g)
    return torch.where(params.stuck == STUCK_ON, torch.full_like(g, device.g_max_us), g)


def _randn_like(x: Tensor, generator: torch.Generator) -> Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def initial_conductance(
    shape: tuple[int, ...] | torch.Size,
    device: Device,
    params: CellParams,
    *,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Conductance of a fresh array: free cells at ``g_reset_us``, stuck cells at their bound.

    The tensor lives on the params' torch device.
    """
    shape = torch.Size(shape)
    if shape != params.shape:
        raise ValueError(f"shape {tuple(shape)} does not match params shape {tuple(params.shape)}")
    g = torch.full(shape, device.g_reset_us, dtype=dtype, device=params.stuck.device)
    return stuck_values(g, device, params)


def pulse(
    g_us: Tensor,
    polarity: Tensor,
    device: Device,
    params: CellParams,
    *,
    generator: torch.Generator,
) -> Tensor:
    """Apply one identical pulse per cell: +1 SET, -1 RESET, 0 none.

    The step is the device's `Device.pulse_step_us` (for the base kind
    ``step·scale_cell·(1 + c2c_sd·z)``, never of the wrong sign, with the soft bound of
    `Device.nonlinearity_up` / ``_down``). Cells with polarity 0 and stuck cells are
    returned bit-exact; the rest is clamped to the window. Noise is drawn for every cell.
    """
    _check_shape("g_us", g_us, params)
    _check_shape("polarity", polarity, params)
    z = _randn_like(g_us, generator)
    pol = polarity.to(g_us.dtype)
    step = device.pulse_step_us(g_us, pol, params, z)
    g_new = (g_us + step).clamp(device.g_min_us, device.g_max_us)
    g_new = torch.where(pol == 0, g_us, g_new)
    return _hold_stuck(g_new, g_us, params)


def pulse_rounds(
    g_us: Tensor,
    polarity: Tensor,
    device: Device,
    params: CellParams,
    rounds: list[int],
    *,
    generator: torch.Generator,
) -> Tensor:
    """Trains of identical pulses, one after another: in round k, `pulse` on the first
    ``rounds[k]`` cells (so the cells come sorted by train length, longest first, and
    ``rounds`` is non-increasing). Returns the conductances after the last round.

    For the base kind's step (`Device.pulse_step_us` not overridden) the step's per-cell
    factors are computed once per train instead of once per pulse: the same draws in the
    same order, the same result up to float rounding (tested against the generic loop), a
    fraction of the tensor operations per round. Tiki-Taka's fast array takes trains of
    hundreds of pulses, so this loop is most of its cost. Any other kind takes `pulse` round
    by round.
    """
    g = g_us.clone()
    if type(device).pulse_step_us is not Device.pulse_step_us:
        for c in rounds:
            cells = params.select(slice(0, c))
            g[:c] = pulse(g[:c], polarity[:c], device, cells, generator=generator)
        return g
    up = polarity > 0
    base = torch.where(
        up,
        device.step_up_us * params.step_up_scale,
        -device.step_down_us * params.step_down_scale,
    )
    step = torch.where(params.free, base, 0.0).to(g.dtype)  # a stuck cell does not move
    slope = torch.where(up, -device.nonlinearity_up, device.nonlinearity_down).to(g.dtype)
    # The soft bound 1 + slope·(2x - 1), x = (g - g_min) / span, as a + b·g per cell.
    b = slope * (2 / device.span_us)
    a = 1 + slope * (-2 * device.g_min_us / device.span_us - 1)
    for c in rounds:
        z = torch.randn(c, generator=generator, dtype=g.dtype, device=g.device)
        gc = g[:c]
        soft = torch.addcmul(a[:c], gc, b[:c]).clamp_(min=0).mul_(step[:c])
        noise = torch.add(1, z, alpha=device.c2c_sd).clamp_(min=0)
        gc.addcmul_(soft, noise).clamp_(device.g_min_us, device.g_max_us)
    return g


def _gate_voltage(level: Tensor, device: Device, dtype: torch.dtype) -> Tensor:
    dv = (device.v_gate_max_v - device.v_gate_min_v) / (device.gate_levels - 1)
    return device.v_gate_min_v + level.to(dtype) * dv


def gate_curve(level: Tensor, device: Device, params: CellParams | None = None) -> Tensor:
    """Noiseless conductance a RESET + gate-controlled SET at ``level`` lands at (µS).

    With ``params`` None the nominal curve (no device-to-device spread) is returned; the
    result is clipped to the window and monotone non-decreasing in the level.
    """
    dtype = params.gate_gain.dtype if params is not None else torch.float32
    v = _gate_voltage(level, device, level.dtype if level.dtype.is_floating_point else dtype)
    return device.gate_curve_us(v, params).clamp(device.g_min_us, device.g_max_us)


def _check_levels(level: Tensor, device: Device) -> None:
    if level.dtype.is_floating_point or level.dtype == torch.bool:
        raise ValueError(f"level must be an integer tensor, got dtype {level.dtype}")
    if level.numel():
        lo, hi = int(level.min()), int(level.max())
        if lo < 0 or hi > device.gate_levels - 1:
            raise ValueError(
                f"level must be in [0, {device.gate_levels - 1}] (gate_levels="
                f"{device.gate_levels}), got values in [{lo}, {hi}]"
            )


def gate_set(
    level: Tensor,
    device: Device,
    params: CellParams,
    *,
    generator: torch.Generator,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """RESET then SET at integer gate ``level`` per cell; returns the landed conductance.

    Landed G = `gate_curve` of the cell + N(0, gate_c2c_sd_us), clamped to the window;
    stuck cells return their stuck value. ``dtype`` defaults to the params' dtype.
    """
    _check_shape("level", level, params)
    _check_levels(level, device)
    return land(level, device, params, generator=generator, dtype=dtype)


def land(
    level: Tensor,
    device: Device,
    params: CellParams,
    *,
    generator: torch.Generator,
    dtype: torch.dtype | None = None,
    any_stuck: bool = True,
) -> Tensor:
    """`gate_set` without its checks, for the schemes' pulse loops (levels known valid).

    ``any_stuck=False`` (the caller knows no cell is stuck) skips the stuck-value pass.
    """
    dtype = dtype or params.gate_gain.dtype
    g = gate_curve(level, device, params).to(dtype)
    if device.gate_c2c_sd_us > 0:
        g = g + device.gate_c2c_sd_us * _randn_like(g, generator)
    else:
        _randn_like(g, generator)  # same stream advance whatever the noise level
    g = g.clamp(device.g_min_us, device.g_max_us)
    return stuck_values(g, device, params) if any_stuck else g


def relax(
    g_us: Tensor,
    device: Device,
    params: CellParams,
    *,
    generator: torch.Generator,
    mask: Tensor | None = None,
) -> Tensor:
    """Add the post-write relaxation N(0, relaxation_sd_us) to the cells in ``mask`` (all).

    Stuck cells and cells outside the mask are returned bit-exact; the rest is clamped.
    """
    _check_shape("g_us", g_us, params)
    g_new = (g_us + device.relaxation_sd_us * _randn_like(g_us, generator)).clamp(
        device.g_min_us, device.g_max_us
    )
    if mask is not None:
        g_new = torch.where(mask, g_new, g_us)
    return _hold_stuck(g_new, g_us, params)


def read(g_us: Tensor, device: Device, *, generator: torch.Generator) -> Tensor:
    """One noisy read: ``g_us + N(0, read_noise_sd_us)``; not clamped, state unchanged."""
    return g_us + device.read_noise_sd_us * _randn_like(g_us, generator)


# --------------------------------------------------------------------------------------
# registry and presets
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceInfo:
    """A registered device preset."""

    name: str
    factory: Callable[..., Device]
    description: str
    source: str


def _device_from_entry_point(name: str, factory: Any) -> DeviceInfo:
    if not callable(factory):
        raise TypeError(f"device plugin {name!r} is {factory!r}, not a factory of Device")
    lines = (factory.__doc__ or "").strip().splitlines()
    return DeviceInfo(name, factory, lines[0] if lines else "", "")


#: Every device preset; installed packages add theirs under the ``eapu.devices`` entry points.
DEVICES: Registry[DeviceInfo] = Registry(
    "device", entry_point_group="eapu.devices", from_entry_point=_device_from_entry_point
)


def register_device(
    fn: Callable[..., Device] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    source: str = "",
) -> Any:
    """Register a device factory, as ``@register_device`` or ``@register_device(source=...)``.

    The name defaults to the function's, the description to its docstring's first line.
    """

    def deco(f: Callable[..., Device]) -> Callable[..., Device]:
        key = name or f.__name__
        lines = (f.__doc__ or "").strip().splitlines()
        DEVICES.add(key, DeviceInfo(key, f, description or (lines[0] if lines else ""), source))
        return f

    return deco(fn) if fn is not None else deco


def get_device_info(name: str) -> DeviceInfo:
    """The registration record of preset ``name``."""
    try:
        return DEVICES.get(name)
    except ValueError as e:
        raise ValueError(f"{e}, or a device file (*.toml)") from None


def get_device(name: str, **kwargs: Any) -> Device:
    """Build preset ``name`` (keyword arguments go to its factory), or read the device file
    ``name`` (a path ending in ``.toml``; keyword arguments replace its fields)."""
    if isinstance(name, str) and is_device_file(name):
        dev = load_device(name)
        return dataclasses.replace(dev, **kwargs) if kwargs else dev
    return get_device_info(name).factory(**kwargs)


def list_devices(pattern: str = "*") -> list[str]:
    """Sorted names of the registered presets matching the fnmatch ``pattern``."""
    return DEVICES.names(pattern)


# --------------------------------------------------------------------------------------
# device files
# --------------------------------------------------------------------------------------

DEVICE_KINDS: dict[str, type[Device]] = {"parametric": Device, "measured": MeasuredDevice}
"""Device kinds a device file may name in ``[device] kind``."""


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"a device file holds finite numbers only, got {v}")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(v, (tuple, list)):
        items = [_toml_value(x) for x in v]
        if len(items) <= 6:
            return "[" + ", ".join(items) + "]"
        rows = [", ".join(items[i : i + 6]) for i in range(0, len(items), 6)]
        return "[\n    " + ",\n    ".join(rows) + ",\n]"
    raise ValueError(f"a device file cannot hold {v!r}")


def device_toml(device: Device, *, extra: dict[str, dict[str, Any]] | None = None) -> str:
    """The text of a device file: ``[device]`` (``kind`` and every field) and, for people,
    the tables of ``extra`` (e.g. ``{"fit": {...}}``), which `load_device` ignores."""
    kind = next((k for k, c in DEVICE_KINDS.items() if type(device) is c), None)
    if kind is None:
        raise ValueError(f"device kind {type(device).__name__} has no file form")
    lines = [
        "# eapu device file: `eapu device fit` writes it, `--device FILE.toml` reads it.",
        "# [device] takes any field of eapu.devices." + type(device).__name__ + " (units in the",
        "# names: _us µS, _v V, _sd relative); other tables are for people and are not read.",
        "",
        "[device]",
        f"kind = {_toml_value(kind)}",
    ]
    for f in dataclasses.fields(device):
        if f.init:
            lines.append(f"{f.name} = {_toml_value(getattr(device, f.name))}")
    for table, values in (extra or {}).items():
        lines += ["", f"[{table}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def save_device(
    device: Device, path: str | Path, *, extra: dict[str, dict[str, Any]] | None = None
) -> None:
    """Write ``device`` as a device file (TOML, atomically; see `device_toml`)."""
    from .files import atomic_write

    atomic_write(path, device_toml(device, extra=extra).encode())


def load_device(path: str | Path) -> Device:
    """Read a device file (see `device_toml`); errors name the file and the field."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(f"device file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"device file {str(path)!r} is not valid TOML: {e}") from None
    table = doc.get("device")
    if not isinstance(table, dict):
        raise ValueError(f"device file {str(path)!r} has no [device] table")
    table = dict(table)
    kind = table.pop("kind", "parametric")
    cls = DEVICE_KINDS.get(kind)
    if cls is None:
        raise ValueError(
            f"device file {str(path)!r}: unknown kind {kind!r}; allowed: {', '.join(DEVICE_KINDS)}"
        )
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(
            f"device file {str(path)!r}: unknown [device] fields {unknown} for kind {kind!r}"
        )
    try:
        return cls(**table)
    except (TypeError, ValueError) as e:
        raise ValueError(f"device file {str(path)!r}: {e}") from None


def is_device_file(name: str) -> bool:
    """Whether ``name`` names a device file rather than a registered device (``*.toml``)."""
    return name.endswith(".toml")


@register_device(
    source=(
        "Liu et al., Nat. Commun. 16, 11494 (2025): tolerance 1 µS, relaxation SD ~2 µS, "
        "SD(εcell) 2-3 µS, Rwg = 1/80 µS^-1, write-verify ~66 pulses/update. Window, pulse "
        "steps, gate curve, spreads and read noise are estimates."
    )
)
def taox_1t1r(**overrides: Any) -> Device:
    """The paper's 180 nm TiN/TaOx/HfOy/TiN 1T1R cell (measured noise, estimated rest).

    Measured in the paper: verify tolerance 1 µS, relaxation SD about 2 µS (hence
    SD(εcell) 2-3 µS), weight 1 <-> 80 µS above a reference column. Estimates: a 5-165 µS
    window (80 µS either side of a centre reference); SET/RESET steps of 2.0/2.4 µS, so that
    write-verify from an arbitrary state takes tens of pulses (about 25 here, inside a
    100-pulse budget; the paper reports ~66 per update);
    a 128-level gate DAC with a convex curve and d2d threshold/gain spread (the reasons
    memorial programming exists); SET landing c2c noise of 1.5 µS; read noise 0.1 µS.
    """
    base = Device(
        name="taox_1t1r",
        g_min_us=5.0,
        g_max_us=165.0,
        step_up_us=2.0,
        step_down_us=2.4,
        nonlinearity_up=0.4,
        nonlinearity_down=0.4,
        c2c_sd=0.3,
        dtod_sd=0.2,
        gate_levels=128,
        v_gate_min_v=0.6,
        v_gate_max_v=1.8,
        gate_v_th_v=0.7,
        gate_gamma=1.6,
        gate_g_top_us=180.0,
        gate_dtod_sd_v=0.03,
        gate_gain_dtod_sd=0.05,
        gate_c2c_sd_us=1.5,
        g_reset_us=5.0,
        program_tolerance_us=1.0,
        relaxation_sd_us=2.0,
        read_noise_sd_us=0.1,
        default_scheme="write_verify",
    )
    return dataclasses.replace(base, **overrides)


@register_device(source="textbook ideal cell; no source needed")
def ideal(**overrides: Any) -> Device:
    """Noise-free, fault-free, linear cell with a wide window and a fine exact gate DAC.

    0-1000 µS, 0.1 µS pulse steps with 0.05 µS tolerance, 2**16 linear gate levels
    (0.015 µS apart).
    """
    base = Device(
        name="ideal",
        g_min_us=0.0,
        g_max_us=1000.0,
        step_up_us=0.1,
        step_down_us=0.1,
        gate_levels=2**16,
        v_gate_min_v=0.0,
        v_gate_max_v=1.0,
        gate_v_th_v=0.0,
        gate_gamma=1.0,
        gate_g_top_us=1000.0,
        g_reset_us=0.0,
        program_tolerance_us=0.05,
        default_scheme="two_pulse",
    )
    return dataclasses.replace(base, **overrides)


@register_device(
    source=(
        "Liu et al. (2025), simulation code github.com/LJinchang/Experiment_EaPU: written "
        "cells get N(0, noise-std) with noise-std 2 µS by default"
    )
)
def gaussian(sd_us: float = 2.0, **overrides: Any) -> Device:
    """Weight-level abstraction: a written cell lands at target + N(0, sd_us).

    The ideal device with ``relaxation_sd_us = sd_us``, programmed by the ``gaussian``
    scheme by default.
    """
    validate.number("sd_us", sd_us, low=0.0)
    base = ideal(name="gaussian", relaxation_sd_us=float(sd_us), default_scheme="gaussian")
    return dataclasses.replace(base, **overrides)


@register_device(
    source=(
        "Wan et al., Nature 608, 504 (2022) (NeuRRAM): write-verify SD ~1.6-2.3 µS over a "
        "~40 µS window. Steps, gate curve, spreads and read noise are estimates."
    )
)
def neurram(**overrides: Any) -> Device:
    """HfOx 1T1R RRAM of the NeuRRAM chip: 1-41 µS window, εcell SD about 2 µS.

    Relaxation SD 1.8 µS with 0.5 µS tolerance and 0.1 µS read noise give SD(εcell) in the
    published 1.6-2.3 µS range; all other numbers are estimates.
    """
    base = Device(
        name="neurram",
        g_min_us=1.0,
        g_max_us=41.0,
        step_up_us=0.4,
        step_down_us=0.5,
        nonlinearity_up=0.5,
        nonlinearity_down=0.5,
        c2c_sd=0.3,
        dtod_sd=0.2,
        gate_levels=64,
        v_gate_min_v=0.8,
        v_gate_max_v=2.0,
        gate_v_th_v=0.9,
        gate_gamma=1.5,
        gate_g_top_us=45.0,
        gate_dtod_sd_v=0.03,
        gate_gain_dtod_sd=0.05,
        gate_c2c_sd_us=0.8,
        g_reset_us=1.0,
        program_tolerance_us=0.5,
        relaxation_sd_us=1.8,
        read_noise_sd_us=0.1,
        default_scheme="write_verify",
    )
    return dataclasses.replace(base, **overrides)


@register_device(
    source=(
        "Nandakumar et al., J. Appl. Phys. 124, 152135 (2018) and aihwkit PCMPresetDevice / "
        "PCMLikeNoiseModel: g_max 25 µS, programming noise ~1 µS, drift nu ~0.05. Pulse "
        "response and gate curve are estimates."
    )
)
def pcm(**overrides: Any) -> Device:
    """PCM-like cell: gradual SET, abrupt RESET, strong drift (nu 0.05), 0.1-25 µS window."""
    base = Device(
        name="pcm",
        g_min_us=0.1,
        g_max_us=25.0,
        step_up_us=0.75,
        step_down_us=12.0,
        nonlinearity_up=0.6,
        nonlinearity_down=0.0,
        c2c_sd=0.5,
        dtod_sd=0.3,
        gate_levels=64,
        v_gate_min_v=0.0,
        v_gate_max_v=1.0,
        gate_v_th_v=0.1,
        gate_gamma=1.3,
        gate_g_top_us=27.0,
        gate_dtod_sd_v=0.02,
        gate_gain_dtod_sd=0.1,
        gate_c2c_sd_us=0.6,
        g_reset_us=0.1,
        program_tolerance_us=0.5,
        relaxation_sd_us=1.0,
        read_noise_sd_us=0.1,
        drift_nu=PCM_DRIFT_NU,
        default_scheme="write_verify",
    )
    return dataclasses.replace(base, **overrides)
