"""Kept for old imports: everything here lives in `eapu.experiments` now.

>>> from eapu.tasks import RunConfig, run   # the same objects as eapu.experiments'
"""

from __future__ import annotations

from .experiments import (
    METHODS,
    OPTIMIZERS,
    SCHEDULES,
    SPREAD_KEYS,
    TASKS,
    MethodInfo,
    RunConfig,
    TaskInfo,
    analog_layers,
    compare,
    energy_figures,
    get_method,
    get_task,
    image_metrics,
    list_methods,
    list_tasks,
    load_run,
    retention,
    run,
)

__all__ = [
    "METHODS",
    "OPTIMIZERS",
    "SCHEDULES",
    "SPREAD_KEYS",
    "TASKS",
    "MethodInfo",
    "RunConfig",
    "TaskInfo",
    "analog_layers",
    "compare",
    "energy_figures",
    "get_method",
    "get_task",
    "image_metrics",
    "list_methods",
    "list_tasks",
    "load_run",
    "retention",
    "run",
]
