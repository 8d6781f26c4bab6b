"""The paper's experiments: a task (data, network, loss, metric) trained by a method.

>>> from eapu.experiments import RunConfig, run
>>> metrics = run(RunConfig(task="denoise", method="eapu+mp", steps=50), "runs/example")

| module | holds |
| --- | --- |
| `registry` | tasks (`TaskInfo`) and methods (`MethodInfo`) by name |
| `config` | `RunConfig` and `FLAGS`, the one table of its options (CLI, sweeps, DDP) |
| `kinds` | `TaskKind` per kind of task: inputs, loss, evaluation, main metric |
| `experiment` | `Experiment`: the data of a task, the batch of each step, evaluation |
| `build` | the run's network, crossbar, optimizer and schedule (`build`, `load_run`) |
| `runner` | the one training loop (`train`, with a step function) and `run`; checkpoints |
| `accounting` | operation counts (``energy.json``) and their energy |
| `compare` | several methods on one task; a finished run after drift |
"""

from __future__ import annotations

from .accounting import accounting, analog_layers, energy_figures
from .build import Built, build, build_model, load_run, place, run_device
from .compare import SPREAD_KEYS, aggregate, compare, retention
from .config import (
    EVAL_SPLITS,
    FLAGS,
    OPTIMIZERS,
    SCHEDULES,
    Flag,
    RunConfig,
    default_rwg,
    flag_of,
    get_flag,
    upgrade,
)
from .experiment import Experiment
from .kinds import KINDS, TaskKind, get_kind, image_metrics
from .registry import (
    METHODS,
    TASKS,
    MethodInfo,
    TaskInfo,
    get_method,
    get_task,
    list_methods,
    list_tasks,
)
from .runner import StepFn, local_step, resume, run, save_checkpoint, train

__all__ = [
    "EVAL_SPLITS",
    "FLAGS",
    "KINDS",
    "METHODS",
    "OPTIMIZERS",
    "SCHEDULES",
    "SPREAD_KEYS",
    "TASKS",
    "Built",
    "Experiment",
    "Flag",
    "MethodInfo",
    "RunConfig",
    "StepFn",
    "TaskInfo",
    "TaskKind",
    "accounting",
    "aggregate",
    "analog_layers",
    "build",
    "build_model",
    "compare",
    "default_rwg",
    "energy_figures",
    "flag_of",
    "get_flag",
    "get_kind",
    "get_method",
    "get_task",
    "image_metrics",
    "list_methods",
    "list_tasks",
    "load_run",
    "local_step",
    "place",
    "resume",
    "retention",
    "run",
    "run_device",
    "save_checkpoint",
    "train",
    "upgrade",
]
