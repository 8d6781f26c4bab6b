"""`MeasuredDevice`: a device kind defined by measured tables instead of the soft-bound
formula (what `eapu.devices.fit` fits from pulse trains)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .. import validate
from .core import CellParams, Device
from .physics import interp

__all__ = ["MeasuredDevice"]


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
    tolerance, faults and drift are the base fields. `eapu.devices.fit` fits one from pulse
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

    def pulse_step_linear(
        self, polarity: Tensor, params: CellParams
    ) -> tuple[Tensor, Tensor, Tensor] | None:
        """None: a measured step is a table over G, not the soft bound's affine form."""
        return None

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
