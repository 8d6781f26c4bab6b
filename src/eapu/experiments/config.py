"""`RunConfig`, everything a run depends on, and `FLAGS`, the one table of its options.

The command line (`eapu.cli`), the sweeps (`eapu.experiments.sweep`: grid keys, printed
command lines) and the DDP entry point (`eapu.experiments.distributed`) all derive their
options from `FLAGS`, so an option is declared once: a `RunConfig` field and its `Flag` row
beside it.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .. import validate
from ..data import dataset_info
from ..devices import get_device_info
from ..models import model_info
from .registry import get_method, get_task, list_methods, list_tasks

__all__ = [
    "DEFAULT_OPTIMIZER",
    "EVAL_SPLITS",
    "FLAGS",
    "LATER_FIELDS",
    "MAX_SEED",
    "OPTIMIZERS",
    "RECORD_KEY",
    "SCHEDULES",
    "Flag",
    "ResolvedConfig",
    "RunConfig",
    "default_rwg",
    "flag_of",
    "get_flag",
    "upgrade",
    "usable_device",
]

#: Base optimizers by name: the class and its fixed keywords (the learning rate is separate).
OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    "adam": (torch.optim.Adam, {}),
    "sgd": (torch.optim.SGD, {}),
    "momentum": (torch.optim.SGD, {"momentum": 0.9}),
}
#: The base optimizer of a method that does not fix one.
DEFAULT_OPTIMIZER = "adam"
#: Learning-rate schedules over the run: StepLR (÷10 at 50 % and 75 %, the paper's CIFAR-10
#: recipe) and cosine annealing (its CIFAR-100 recipe).
SCHEDULES = ("none", "step", "cosine")
#: The largest seed: runs derive torch seeds from it (``seed * 1_000_003 + epoch``), which
#: must stay below 2**64.
MAX_SEED = 2**32 - 1
#: Where the network runs.
DEVICE_TYPES = ("cpu", "cuda")
#: What a run evaluates on: the test set, or a validation split carved from the training
#: data (`eapu.experiments.experiment.VALIDATION_FRACTION`), for tuning without the test set.
EVAL_SPLITS = ("test", "validation")
#: Fields added to `RunConfig` after run directories were written without them, with the
#: value those runs had: `upgrade` fills them in, so an older run still resumes.
LATER_FIELDS: dict[str, Any] = {"eval_split": "test", "fast_lr": None}


#: The record of what produced a run, kept in ``config.json`` beside the config.
RECORD_KEY = "record"


def upgrade(written: dict[str, Any]) -> dict[str, Any]:
    """A ``config.json`` / checkpoint config as the present `RunConfig` writes it (without
    its `RECORD_KEY`): fields added later get the value older runs had, and a device-level
    in-situ run's ``sd_us``, which older eapu recorded as 2.0 without using it, is None."""
    cfg = {**LATER_FIELDS, **{k: v for k, v in written.items() if k != RECORD_KEY}}
    if _sd_unused(cfg.get("method", "")) and cfg.get("sd_us") == 2.0:
        cfg["sd_us"] = None
    return cfg


def _sd_unused(method: str) -> bool:
    """Whether ``method`` writes through a device whose SD(εcell) is its own (no sd_us)."""
    try:
        m = get_method(method)
    except ValueError:
        return False
    return m.level == "device" and m.in_situ


def default_rwg(device: Any) -> tuple[float, str]:
    """The Rwg a run on ``device`` (a `eapu.devices.Device`, a name or a device file) takes
    when none is given, and why: the paper's 1/80 where
    the window holds its range (2·80 µS with a reference column), else the smallest Rwg whose
    range the window holds (the whole window)."""
    from ..devices import get_device
    from ..optim import WEIGHT_LEVEL_RWG_PER_US

    dev = get_device(device) if isinstance(device, str) else device
    need = 2 / WEIGHT_LEVEL_RWG_PER_US  # µS, reference column, w_max 1
    if dev.span_us >= need * (1 - 1e-9):
        return WEIGHT_LEVEL_RWG_PER_US, "the paper's 1/80"
    return 2 / dev.span_us, (
        f"the largest conductance range device {dev.name!r} holds ({dev.span_us:g} µS: "
        f"1/80 needs {need:g} µS)"
    )


@dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on; ``None`` fields take the task's default."""

    task: str = "denoise"
    method: str = "eapu+mp"
    device: str = "taox_1t1r"
    seed: int = 0
    steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    eval_every: int | None = None
    sd_us: float | None = None
    rwg_per_us: float | None = None
    threshold_us: float | None = None
    model: str | None = None
    data: str | None = None
    data_dir: str | None = None
    eval_samples: int = 512
    optimizer: str | None = None
    schedule: str = "none"
    width: int | None = None
    stuck_off: float = 0.0
    stuck_on: float = 0.0
    anomaly_data: str | None = None
    device_type: str = "cpu"
    init_from: str | None = None
    eval_split: str = "test"
    fast_lr: float | None = None

    def __post_init__(self) -> None:
        get_task(self.task)
        get_method(self.method)
        for name in ("steps", "batch_size", "eval_every"):
            if getattr(self, name) is not None:  # None: the task's default
                validate.integer(name, getattr(self, name), low=1)
        if self.lr is not None:
            validate.number("lr", self.lr, low=0, low_open=True)
        validate.number("sd_us", self.sd_us, low=0, allow_none=True)
        validate.number("rwg_per_us", self.rwg_per_us, low=0, low_open=True, allow_none=True)
        if self.sd_us is not None and _sd_unused(self.method):
            raise ValueError(
                f"Invalid sd_us: {self.sd_us:g} with method {self.method!r}; at device level "
                "SD(εcell) is the device's own (characterised, and reported with the run); "
                "set the EaPU threshold with threshold_us (µS)"
            )
        if self.threshold_us is not None:
            validate.number("threshold_us", self.threshold_us, low=0)
        for name in ("device", "model", "data", "data_dir", "anomaly_data", "init_from"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise ValueError(f"Invalid {name}: {validate.shown(v)}; allowed: a string")
        # names resolve now, before anything is trained or written
        if self.model is not None:
            model_info(self.model)
        if self.anomaly_data is not None and get_task(self.task).kind != "anomaly":
            raise ValueError(
                f"Invalid anomaly_data: {self.anomaly_data!r}; only the anomaly task has "
                f"anomalies, not {self.task!r}"
            )
        for name in ("data", "anomaly_data"):
            if getattr(self, name) is not None:
                try:
                    dataset_info(getattr(self, name))
                except ValueError as e:
                    raise ValueError(f"Invalid {name}: {e}") from None
        if not self.device.endswith(".toml"):  # a device file is read when the run builds
            get_device_info(self.device)
        validate.integer("eval_samples", self.eval_samples, low=1)
        validate.integer("seed", self.seed, low=0, high=MAX_SEED)
        if self.optimizer is not None:
            validate.choice("optimizer", self.optimizer, OPTIMIZERS)
            fixed = get_method(self.method).optimizer
            if fixed is not None and self.optimizer != fixed:
                raise ValueError(
                    f"Invalid optimizer: {self.optimizer!r} for method {self.method!r}; "
                    f"allowed: {fixed!r}, the base it is defined on (eapu list methods says why)"
                )
        validate.choice("schedule", self.schedule, SCHEDULES)
        for name in ("stuck_off", "stuck_on"):
            validate.fraction(name, getattr(self, name))
        if self.stuck_off + self.stuck_on >= 1:
            raise ValueError(
                f"Invalid stuck_off: {self.stuck_off} with stuck_on {self.stuck_on} leaves no "
                "cell that can be written; allowed: stuck_off + stuck_on < 1"
            )
        if (self.stuck_off or self.stuck_on) and get_method(self.method).level != "device":
            raise ValueError(
                f"Invalid stuck_off: stuck cells need a device-level method, not "
                f"{self.method!r} (eapu list methods)"
            )
        validate.choice("eval_split", self.eval_split, EVAL_SPLITS)
        if self.fast_lr is not None:
            validate.number("fast_lr", self.fast_lr, low=0, low_open=True)
            if "fast_lr" not in method_options(self.method):
                raise ValueError(
                    f"Invalid fast_lr: method {self.method!r} has no fast array A; only "
                    f"Tiki-Taka has one ({', '.join(methods_taking('fast_lr'))})"
                )
        validate.choice("device_type", self.device_type, DEVICE_TYPES)
        validate.integer("width", self.width, low=1, allow_none=True)
        if get_method(self.method).level == "device":  # a Device, of a registered scheme
            from ..devices import get_device

            usable_device(get_device(self.device), self.device)
        if get_method(self.method).level == "device":
            from ..devices import get_device
            from ..tiles import operating_range

            # the operating range follows Rwg: refuse one the device cannot hold, up front
            rwg = self.rwg_per_us if self.rwg_per_us is not None else default_rwg(self.device)[0]
            operating_range(get_device(self.device), "reference_column", rwg)

    def resolved(self) -> ResolvedConfig:
        """The config with the task's defaults filled in (what ``config.json`` records)."""
        t = get_task(self.task)
        d = dataclasses.asdict(self)
        for k in ("steps", "batch_size", "lr", "eval_every", "model", "data", "anomaly_data"):
            if d[k] is None:
                d[k] = getattr(t, k)
        if d["optimizer"] is None:
            d["optimizer"] = get_method(self.method).optimizer or DEFAULT_OPTIMIZER
        if d["sd_us"] is None and not _sd_unused(self.method):
            from ..optim import WEIGHT_LEVEL_SD_US

            d["sd_us"] = WEIGHT_LEVEL_SD_US
        if d["rwg_per_us"] is None:
            if get_method(self.method).level == "device":
                d["rwg_per_us"] = default_rwg(self.device)[0]
            else:
                from ..optim import WEIGHT_LEVEL_RWG_PER_US

                d["rwg_per_us"] = WEIGHT_LEVEL_RWG_PER_US
        return ResolvedConfig(**d)


@dataclass(frozen=True)
class ResolvedConfig:
    """A `RunConfig` with every default filled in: what a run uses, and ``config.json``
    records (`as_dict`). Built by `RunConfig.resolved`; `from_dict` reads a recorded one."""

    task: str
    method: str
    device: str
    seed: int
    steps: int
    batch_size: int
    lr: float
    eval_every: int
    sd_us: float | None
    """SD(εcell) of a weight-level write (µS); None at device level (the device's own)."""
    rwg_per_us: float
    threshold_us: float | None
    model: str
    data: str
    data_dir: str | None
    eval_samples: int
    optimizer: str
    schedule: str
    width: int | None
    stuck_off: float
    stuck_on: float
    anomaly_data: str | None
    device_type: str
    init_from: str | None
    eval_split: str
    fast_lr: float | None

    def as_dict(self) -> dict[str, Any]:
        """The fields as plain JSON data (``config.json``)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def replace(self, **changes: Any) -> ResolvedConfig:
        """A copy with ``changes`` (e.g. another ``eval_split`` or ``seed``)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, written: dict[str, Any]) -> ResolvedConfig:
        """A recorded config (`upgrade` first: older runs lack later fields)."""
        cfg = upgrade(written)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"Invalid config: unknown fields {unknown}; allowed: {sorted(known)}")
        return cls(**cfg)


def usable_device(device: Any, name: str) -> Any:
    """``device`` (what ``name`` gave), checked before a run or a characterisation uses it:
    refused, naming it, if it is not a `eapu.devices.Device` (a broken plugin's factory) or
    its ``default_scheme`` is no registered scheme (a device file's typo).

    The scheme check lives here, not in `eapu.devices.load_device`: devices sit below the
    schemes.
    """
    from ..devices import Device
    from ..programming import list_schemes

    where = (
        f"device file {validate.shown(name)}"
        if name.endswith(".toml")
        else f"device {validate.shown(name)}"
    )
    if not isinstance(device, Device):
        raise ValueError(
            f"Invalid device: {where} gives {validate.shown(device)}, not a Device; fix or "
            "uninstall the package that registers it"
        )
    schemes = list_schemes()
    if device.default_scheme not in schemes:
        raise ValueError(
            f"Invalid device: {where} has default_scheme {validate.shown(device.default_scheme)}"
            f", which is no registered scheme; allowed: {', '.join(schemes)}"
        )
    return device


def method_options(method: str) -> dict[str, Any]:
    """The run options ``method``'s algorithm declares (`eapu.algorithms.AlgorithmInfo`
    ``options``), with their defaults; ``{}`` for a method without an algorithm."""
    from ..algorithms import ALGORITHMS

    algo = get_method(method).algorithm
    return dict(ALGORITHMS.get(algo).options) if algo is not None else {}


def methods_taking(option: str) -> list[str]:
    """The registered methods whose algorithm declares the run option ``option``."""
    return [m for m in list_methods() if option in method_options(m)]


def _option_default(option: str) -> Any:
    """The default of a declared run option (the first method's that takes it)."""
    return method_options(methods_taking(option)[0])[option]


def _devices() -> list[str]:
    from ..devices import list_devices

    return list_devices()


def _models() -> list[str]:
    from ..models import list_models

    return list_models()


def _datasets() -> list[str]:
    from ..data import list_datasets

    return list_datasets()


def _task_default(attr: str) -> str:
    """The built-in tasks' defaults of ``attr``, as a help text says them."""
    vals = {name: getattr(get_task(name), attr) for name in list_tasks()}
    if len(set(map(str, vals.values()))) == 1:
        return f"the task's: {next(iter(vals.values()))} for every task"
    return "the task's: " + ", ".join(f"{k} {v}" for k, v in vals.items())


@dataclass(frozen=True)
class Flag:
    """One option of a run: a `RunConfig` field as the command line spells it.

    ``choices`` lists the values the parser accepts (a registry's names); ``path_suffix``
    lets it accept a file of that suffix as well (a device file). ``default_help`` says
    what the field's ``None`` default means, for ``--help``.
    """

    field: str
    help: str
    flag: str = ""
    choices: Callable[[], list[str]] | None = None
    path_suffix: str | None = None
    default_help: Callable[[], str] | None = None

    @property
    def name(self) -> str:
        """The command-line name, ``--batch-size`` for ``batch_size`` unless given."""
        return self.flag or "--" + self.field.replace("_", "-")

    @property
    def type(self) -> Any:
        """The field's type without ``None`` (``int``, ``float`` or ``str``)."""
        hint = typing.get_type_hints(RunConfig)[self.field]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if args else hint

    @property
    def default(self) -> Any:
        """The `RunConfig` default."""
        return next(f.default for f in dataclasses.fields(RunConfig) if f.name == self.field)

    def describe(self) -> str:
        """The help text with the true default."""
        if self.default is None:
            said = self.default_help() if self.default_help is not None else "none"
        else:
            said = str(self.default)
        return f"{self.help} (default: {said})"


#: Every option of a run, in the order ``--help`` lists them (``task`` is an argument).
FLAGS: tuple[Flag, ...] = (
    Flag("method", "how the weights are written (eapu list methods)", choices=list_methods),
    Flag(
        "device",
        "device preset (eapu list devices) or a device file *.toml",
        choices=_devices,
        path_suffix=".toml",
    ),
    Flag("seed", "seed of everything random"),
    Flag("steps", "mini-batches", default_help=lambda: _task_default("steps")),
    Flag("batch_size", "mini-batch size", default_help=lambda: _task_default("batch_size")),
    Flag("lr", "learning rate of the base optimizer", default_help=lambda: _task_default("lr")),
    Flag(
        "eval_every",
        "evaluate every N mini-batches",
        default_help=lambda: _task_default("eval_every"),
    ),
    Flag(
        "sd_us",
        "SD of εcell in µS (weight-level methods and hwa; a device-level method has its "
        "device's own, characterised)",
        default_help=lambda: "2.0",
    ),
    Flag(
        "rwg_per_us",
        "Rwg in µS⁻¹",
        flag="--rwg",
        default_help=lambda: (
            "1/80, or on a device whose window cannot hold 1/80's range the smallest Rwg it holds"
        ),
    ),
    Flag(
        "threshold_us",
        "EaPU threshold in µS",
        default_help=lambda: "SD of εcell of the device and scheme, sd_us at weight level",
    ),
    Flag(
        "model",
        "network (eapu list models)",
        choices=_models,
        default_help=lambda: _task_default("model"),
    ),
    Flag(
        "data",
        "data set (eapu list datasets)",
        choices=_datasets,
        default_help=lambda: _task_default("data"),
    ),
    Flag("data_dir", "directory of a data set on disk", default_help=lambda: "embedded data"),
    Flag(
        "optimizer",
        "base optimizer",
        choices=lambda: list(OPTIMIZERS),
        default_help=lambda: f"{DEFAULT_OPTIMIZER}; sgd for ttv2 and cttv2",
    ),
    Flag("schedule", "learning-rate schedule", choices=lambda: list(SCHEDULES)),
    Flag("width", "channel width of the network (ResNets)", default_help=lambda: "the model's"),
    Flag("eval_samples", "test samples per evaluation"),
    Flag("stuck_off", "fraction of cells stuck at g_min"),
    Flag("stuck_on", "fraction of cells stuck at g_max"),
    Flag(
        "anomaly_data",
        "anomaly task: the data set of anomalies",
        choices=_datasets,
        default_help=lambda: "photos",
    ),
    Flag(
        "device_type",
        "where the network runs (tiles stay on cpu)",
        choices=lambda: list(DEVICE_TYPES),
    ),
    Flag(
        "init_from",
        "start from the weights of this run directory (transfer)",
        default_help=lambda: "the model's initialisation",
    ),
    Flag(
        "fast_lr",
        "Tiki-Taka methods: the fast array A's own learning rate, auto-scaled",
        default_help=lambda: f"{_option_default('fast_lr')}, aihwkit 1.2.0's TTv2 presets",
    ),
    Flag(
        "eval_split",
        "evaluate on the test set, or on a validation split of the training data (tuning)",
        choices=lambda: list(EVAL_SPLITS),
    ),
)


def get_flag(field: str) -> Flag:
    """The `Flag` of a `RunConfig` field."""
    for f in FLAGS:
        if f.field == field:
            return f
    raise ValueError(f"unknown option {field!r}; available: {', '.join(f.field for f in FLAGS)}")


def flag_of(field: str) -> str:
    """The command-line name of a `RunConfig` field (``rwg_per_us`` -> ``--rwg``)."""
    return get_flag(field).name
