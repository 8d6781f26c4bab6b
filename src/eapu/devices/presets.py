"""The device registry (`DEVICES`, `register_device`, `get_device`) and the presets, each
citing its source."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import validate
from ..registry import Registry
from .core import PCM_DRIFT_NU, Device
from .files import is_device_file, load_device

__all__ = [
    "DEVICES",
    "DeviceInfo",
    "gaussian",
    "get_device",
    "get_device_info",
    "ideal",
    "list_devices",
    "neurram",
    "pcm",
    "register_device",
    "taox_1t1r",
]


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
    "device",
    entry_point_group="eapu.devices",
    from_entry_point=_device_from_entry_point,
    returns=Device,
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
    fields: dict[str, Any] = dict(
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
        program_tolerance_us=1.0,
        relaxation_sd_us=2.0,
        read_noise_sd_us=0.1,
        default_scheme="write_verify",
    )
    return Device(**{**fields, **overrides})


@register_device(source="textbook ideal cell; no source needed")
def ideal(**overrides: Any) -> Device:
    """Noise-free, fault-free, linear cell with a wide window and a fine exact gate DAC.

    0-1000 µS, 0.1 µS pulse steps with 0.05 µS tolerance, 2**16 linear gate levels
    (0.015 µS apart).
    """
    fields: dict[str, Any] = dict(
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
        program_tolerance_us=0.05,
        default_scheme="two_pulse",
    )
    return Device(**{**fields, **overrides})


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
    fields = dict(name="gaussian", relaxation_sd_us=float(sd_us), default_scheme="gaussian")
    return ideal(**{**fields, **overrides})


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
    fields: dict[str, Any] = dict(
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
        program_tolerance_us=0.5,
        relaxation_sd_us=1.8,
        read_noise_sd_us=0.1,
        default_scheme="write_verify",
    )
    return Device(**{**fields, **overrides})


@register_device(
    source=(
        "Nandakumar et al., J. Appl. Phys. 124, 152135 (2018) and aihwkit PCMPresetDevice / "
        "PCMLikeNoiseModel: g_max 25 µS, programming noise ~1 µS, drift nu ~0.05. Pulse "
        "response and gate curve are estimates."
    )
)
def pcm(**overrides: Any) -> Device:
    """PCM-like cell: gradual SET, abrupt RESET, strong drift (nu 0.05), 0.1-25 µS window."""
    fields: dict[str, Any] = dict(
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
        program_tolerance_us=0.5,
        relaxation_sd_us=1.0,
        read_noise_sd_us=0.1,
        drift_nu=PCM_DRIFT_NU,
        default_scheme="write_verify",
    )
    return Device(**{**fields, **overrides})
