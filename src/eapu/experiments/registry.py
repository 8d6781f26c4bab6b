"""Tasks and methods by name: what ``eapu run TASK --method METHOD`` may say.

A *task* names the data, the network, the input corruption, the loss and the metrics (its
``kind``, one of `eapu.experiments.kinds.KINDS`). A *method* names how the weights are
written: in software, at weight level (the paper's simulation: abstract write noise), or at
device level (tiles on a simulated crossbar with a programming scheme). Installed packages
add tasks and methods under the ``eapu.tasks`` and ``eapu.methods`` entry points.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..registry import Registry

__all__ = [
    "METHODS",
    "TASKS",
    "MethodInfo",
    "TaskInfo",
    "get_method",
    "get_task",
    "list_methods",
    "list_tasks",
]


@dataclass(frozen=True)
class TaskInfo:
    """A registered experiment and its defaults (the paper's settings where it gives them)."""

    name: str
    kind: str  # a name in eapu.experiments.kinds.KINDS: "denoise", "sr", "anomaly", "classify"
    description: str
    model: str
    data: str
    steps: int
    batch_size: int
    lr: float
    eval_every: int
    data_kw: dict[str, Any] = field(default_factory=dict)
    model_kw: dict[str, Any] = field(default_factory=dict)
    noise_sigma: float = 0.3
    scale: int = 2
    anomaly_data: str | None = None  # the data set whose images count as anomalies


@dataclass(frozen=True)
class MethodInfo:
    """How a run writes its weights."""

    name: str
    description: str
    level: str  # "software", "weight" or "device"
    rule: str | None = None  # "eapu" or "exact" for in-situ methods
    scheme: str | None = None  # programming scheme at device level
    algorithm: str | None = None  # a registered eapu.algorithms optimizer (eapu list algorithms)
    load_scheme: str | None = None  # writes the initial weights (None: the Crossbar's default)
    optimizer: str | None = None  # the base optimizer it is defined with (None: any)
    hardware_aware: bool = False  # trains in software with weight noise of sd_us (eapu.hwa)

    @property
    def in_situ(self) -> bool:
        """Trains on the crossbar (as opposed to in software, then programmed once)."""
        return self.level == "device" and (self.rule is not None or self.algorithm is not None)

    @property
    def programmed_once(self) -> bool:
        """Trained in software, then programmed onto the crossbar (ex-situ, hwa)."""
        return self.level == "device" and not self.in_situ


#: The registered tasks, in registration order (the paper's first).
TASKS: Registry[TaskInfo] = Registry("task", entry_point_group="eapu.tasks", sort=False)
#: The registered methods, in registration order.
METHODS: Registry[MethodInfo] = Registry("method", entry_point_group="eapu.methods", sort=False)

for _t in (
    TaskInfo(
        "denoise",
        "denoise",
        "denoising autoencoder (135 weights), Gaussian noise "
        "σ=0.3 on the input, MSE, batch 64, 1100 mini-batches, evaluate every 200",
        "denoise_ae",
        "mnist",
        1100,
        64,
        1e-2,
        200,
    ),
    TaskInfo(
        "sr2",
        "sr",
        "SRNet×2 (369 weights), bicubic ×0.5 input, L1, batch 256, 4 epochs of 100 mini-batches",
        "srnet2",
        "mnist",
        400,
        256,
        1e-2,
        100,
        scale=2,
    ),
    TaskInfo(
        "sr4",
        "sr",
        "SRNet×4, bicubic ×0.25 input, L1, batch 256, 400 mini-batches",
        "srnet4",
        "mnist",
        400,
        256,
        1e-2,
        100,
        scale=4,
    ),
    TaskInfo(
        "anomaly",
        "anomaly",
        "denoising autoencoder trained on one data set; its reconstruction error flags "
        "images of another (accuracy at the 95th percentile of training errors, ROC-AUC)",
        "denoise_ae",
        "mnist",
        1100,
        64,
        1e-2,
        200,
        anomaly_data="photos",
    ),
    TaskInfo(
        "classify",
        "classify",
        "image classification, cross-entropy, accuracy",
        "small_cnn",
        "digits",
        600,
        64,
        1e-2,
        100,
    ),
):
    TASKS.add(_t.name, _t)

for _m in (
    MethodInfo(
        "software", "float training in software, no device (the noise-free bound)", "software"
    ),
    MethodInfo(
        "ex-situ",
        "trained in software, then programmed once by write-verify",
        "device",
        None,
        "write_verify",
    ),
    MethodInfo(
        "eapu+mp",
        "EaPU over memorial programming (the paper's method)",
        "device",
        "eapu",
        "memorial",
    ),
    MethodInfo("eapu+fp", "EaPU over fast programming (two-pulse)", "device", "eapu", "two_pulse"),
    MethodInfo(
        "eapu+pt",
        "EaPU over open-loop trains of identical pulses (devices without a gate-controlled "
        "SET, e.g. aihwkit's; set the threshold with --threshold-us)",
        "device",
        "eapu",
        "pulse_train",
    ),
    MethodInfo(
        "mp", "BP over memorial programming (every update written)", "device", "exact", "memorial"
    ),
    MethodInfo(
        "wu",
        "BP over write-verify without memory (RESET, then a verified ramp; fitted to "
        "the paper's 66 pulses per update)",
        "device",
        "exact",
        "write_verify_reset",
    ),
    MethodInfo(
        "wu-inc",
        "BP over incremental write-verify from the present conductance",
        "device",
        "exact",
        "write_verify",
    ),
    MethodInfo("tp", "BP over the two-pulse scheme", "device", "exact", "two_pulse"),
    MethodInfo(
        "su", "BP over the sign-based scheme (one pulse per update)", "device", "exact", "sign"
    ),
    MethodInfo(
        "mixed-precision",
        "digital accumulator written in whole device steps (Nandakumar 2020)",
        "device",
        None,
        "sign",
        algorithm="mixed-precision",
    ),
    MethodInfo(
        "ttv2",
        "Tiki-Taka v2: fast array A, digital buffer H, slow array C (Gokmen 2021); on plain "
        "SGD: A takes the raw gradient, and its auto-scaled rate assumes it",
        "device",
        None,
        "sign",
        algorithm="ttv2",
        optimizer="sgd",
    ),
    MethodInfo(
        "cttv2",
        "chopped Tiki-Taka v2 (Rasch et al. 2024); on plain SGD, as ttv2",
        "device",
        None,
        "sign",
        algorithm="cttv2",
        optimizer="sgd",
    ),
    MethodInfo(
        "agad",
        "AGAD: chopped TTv2 read against a running mean of A, no symmetry-point "
        "calibration (Rasch et al. 2024); on plain SGD, as ttv2",
        "device",
        None,
        "sign",
        algorithm="agad",
        optimizer="sgd",
    ),
    MethodInfo(
        "hwa",
        "hardware-aware training in software (weight noise of sd_us), then "
        "programmed once by write-verify",
        "device",
        None,
        "write_verify",
        hardware_aware=True,
    ),
    MethodInfo(
        "eapu+gaussian",
        "EaPU over the abstract gaussian write (target + N(0, the device's relaxation SD)), "
        "initial weights written the same way: the paper's simulation on a device window",
        "device",
        "eapu",
        "gaussian",
        load_scheme="gaussian",
    ),
    MethodInfo(
        "bp+gaussian",
        "BP over the abstract gaussian write, initial weights written the same way",
        "device",
        "exact",
        "gaussian",
        load_scheme="gaussian",
    ),
    MethodInfo(
        "noisy-bp", "weight level: every update written with N(0, sd_us) noise", "weight", "exact"
    ),
    MethodInfo(
        "eapu", "weight level: EaPU, written updates get N(0, sd_us) noise", "weight", "eapu"
    ),
):
    METHODS.add(_m.name, _m)
del _t, _m


def get_task(name: str) -> TaskInfo:
    """The task registered as ``name``."""
    return TASKS.get(name)


def get_method(name: str) -> MethodInfo:
    """The method registered as ``name``."""
    return METHODS.get(name)


def list_tasks(pattern: str = "*") -> list[str]:
    """Names of the registered tasks matching ``pattern``, in registration order."""
    return TASKS.names(pattern)


def list_methods(pattern: str = "*") -> list[str]:
    """Names of the registered methods matching ``pattern``, in registration order."""
    return METHODS.names(pattern)
