"""Device physics of one memristive cell, as frozen dataclasses and pure tensor functions.

A `Device` describes a technology (window, pulse response, gate-controlled SET, noise,
faults); `Device.sample` draws the device-to-device spread of a tensor of cells once
(`CellParams`); the pure functions `pulse`, `gate_set`, `relax` and `read` apply one
physical operation to every cell of a tensor at once. Programming schemes
(`eapu.programming`) combine these into writes; `eapu.programming.characterize` measures
SD(εcell) of a device under a scheme, which is the default EaPU threshold.

A device kind is a `Device` subclass: the pulse response and the gate curve go through the
two methods `Device.pulse_step_us` and `Device.gate_curve_us` (the physics seam), so every
scheme drives every kind alike; `MeasuredDevice` is the kind defined by
measured tables instead of the soft-bound formula, `AihwkitDevice` the kind of IBM aihwkit's
pulsed device models (with aihwkit 1.2.0's device presets registered as ``aihwkit_*``).

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

The package's rooms: `core` (`Device`, `CellParams`), `physics` (the pure functions),
`measured` (`MeasuredDevice`), `files` (device files), `presets` (the registry and the
presets), `aihwkit` (`AihwkitDevice` and aihwkit's presets), `fit` (a `MeasuredDevice`
fitted to pulse trains).
"""

from __future__ import annotations

from .aihwkit import (
    AIHWKIT_MODELS,
    AihwkitDevice,
)
from .core import (
    PCM_DRIFT_NU,
    STUCK_FREE,
    STUCK_OFF,
    STUCK_ON,
    CellParams,
    Device,
)
from .files import (
    DEVICE_KINDS,
    device_toml,
    is_device_file,
    load_device,
    save_device,
)
from .measured import (
    MeasuredDevice,
)
from .physics import (
    SoftBound,
    gate_curve,
    gate_set,
    initial_conductance,
    interp,
    land,
    pick,
    pulse,
    pulse_rounds,
    read,
    relax,
    stuck_values,
    symmetry_point_us,
)
from .presets import (
    DEVICES,
    DeviceInfo,
    gaussian,
    get_device,
    get_device_info,
    ideal,
    list_devices,
    neurram,
    pcm,
    register_device,
    taox_1t1r,
)

__all__ = [
    "AIHWKIT_MODELS",
    "DEVICES",
    "DEVICE_KINDS",
    "PCM_DRIFT_NU",
    "STUCK_FREE",
    "STUCK_OFF",
    "STUCK_ON",
    "AihwkitDevice",
    "CellParams",
    "Device",
    "DeviceInfo",
    "MeasuredDevice",
    "SoftBound",
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
    "pick",
    "pulse",
    "pulse_rounds",
    "read",
    "register_device",
    "relax",
    "save_device",
    "stuck_values",
    "symmetry_point_us",
    "taox_1t1r",
]
