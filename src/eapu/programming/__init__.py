"""Programming schemes: turn target conductances into pulses on a device, whole tensors at once.

See `eapu.programming.schemes` for the one signature every scheme has and the schemes
themselves; `core` holds the seam (`CellState`, `ProgramResult`, `prepare_write`,
`finish_write`) and the registry, `characterize` the write/read sweep.
"""

from __future__ import annotations

from .characterize import Characterization, characterize
from .core import (
    MIN_BUDGET,
    SCHEMES,
    CellState,
    ProgramResult,
    SchemeInfo,
    WorkingSet,
    check_budget,
    check_tolerance,
    default_budget,
    finish_write,
    full_swing_pulses,
    get_scheme,
    list_schemes,
    positions,
    prepare_write,
    register_scheme,
)
from .schemes import (
    RESET_RAMP_STEP_SCALE,
    gaussian,
    memorial,
    pulse_train,
    sign,
    two_pulse,
    write_verify,
    write_verify_reset,
)

__all__ = [
    "MIN_BUDGET",
    "RESET_RAMP_STEP_SCALE",
    "SCHEMES",
    "CellState",
    "Characterization",
    "ProgramResult",
    "SchemeInfo",
    "WorkingSet",
    "characterize",
    "check_budget",
    "check_tolerance",
    "default_budget",
    "finish_write",
    "full_swing_pulses",
    "gaussian",
    "get_scheme",
    "list_schemes",
    "memorial",
    "positions",
    "prepare_write",
    "pulse_train",
    "register_scheme",
    "sign",
    "two_pulse",
    "write_verify",
    "write_verify_reset",
]
