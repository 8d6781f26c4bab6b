"""The paper's experiments: a task (data, network, loss, metric) trained by a method.

>>> from eapu.tasks import RunConfig, run
>>> metrics = run(RunConfig(task="denoise", method="eapu+mp", steps=50), "runs/example")

A *task* names the data, the network, the input corruption, the loss and the metrics. A
*method* names how the weights are written: in software, at weight level (the paper's
simulation: abstract write noise), or at device level (tiles on a simulated crossbar with a
programming scheme). Every run writes a run directory: ``config.json``, ``metrics.json``,
``history.csv``, ``checkpoint.pt``, ``samples.npz``, ``placement.txt``; an interrupted run
resumes from its checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import io
import json
import math
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .algorithms import ALGORITHMS, TileAlgorithm, get_algorithm, hwa_noise
from .data import ImageDataset, add_gaussian_noise, downscale_bicubic, get_dataset, upscale_bicubic
from .files import atomic_write, write_json
from .models import get_model, model_info
from .nn import convert, crossbar_of
from .optim import InSituOptimizer

__all__ = [
    "METHODS",
    "TASKS",
    "MethodInfo",
    "RunConfig",
    "TaskInfo",
    "compare",
    "get_method",
    "get_task",
    "list_methods",
    "list_tasks",
    "run",
]


# ---------------------------------------------------------------------------- registries
@dataclass(frozen=True)
class TaskInfo:
    """A registered experiment and its defaults (the paper's settings where it gives them)."""

    name: str
    kind: str  # "denoise", "sr" or "classify"
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


TASKS: dict[str, TaskInfo] = {
    t.name: t
    for t in [
        TaskInfo(
            "denoise",
            "denoise",
            "denoising autoencoder (135 weights), Gaussian noise "
            "σ=0.3 on the input, MSE, batch 64, 1100 mini-batches, evaluate every 200",
            "denoise_ae",
            "digits",
            1100,
            64,
            1e-2,
            200,
            data_kw={"size": 16},
        ),
        TaskInfo(
            "sr2",
            "sr",
            "SRNet×2 (369 weights), bicubic ×0.5 input, L1, batch 256, "
            "4 epochs of 100 mini-batches",
            "srnet2",
            "photos",
            400,
            256,
            1e-2,
            100,
            data_kw={"patch_size": 16},
            scale=2,
        ),
        TaskInfo(
            "sr4",
            "sr",
            "SRNet×4, bicubic ×0.25 input, L1, batch 256, 400 mini-batches",
            "srnet4",
            "photos",
            400,
            256,
            1e-2,
            100,
            data_kw={"patch_size": 16},
            scale=4,
        ),
        TaskInfo(
            "anomaly",
            "anomaly",
            "denoising autoencoder trained on one data set; its reconstruction error flags "
            "images of another (accuracy at the 95th percentile of training errors, ROC-AUC)",
            "denoise_ae",
            "digits",
            1100,
            64,
            1e-2,
            200,
            data_kw={"size": 16},
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
    ]
}


@dataclass(frozen=True)
class MethodInfo:
    """How a run writes its weights."""

    name: str
    description: str
    level: str  # "software", "weight" or "device"
    rule: str | None = None  # "eapu" or "exact" for in-situ methods
    scheme: str | None = None  # programming scheme at device level
    algorithm: str | None = None  # an eapu.algorithms optimizer, or "hwa"

    @property
    def in_situ(self) -> bool:
        """Trains on the crossbar (as opposed to in software, then programmed once)."""
        return self.level == "device" and (self.rule is not None or self.algorithm in ALGORITHMS)

    @property
    def programmed_once(self) -> bool:
        """Trained in software, then programmed onto the crossbar (ex-situ, hwa)."""
        return self.level == "device" and not self.in_situ


METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in [
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
        MethodInfo(
            "eapu+fp", "EaPU over fast programming (two-pulse)", "device", "eapu", "two_pulse"
        ),
        MethodInfo(
            "mp",
            "BP over memorial programming (every update written)",
            "device",
            "exact",
            "memorial",
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
            "Tiki-Taka v2: fast array A, digital buffer H, slow array C (Gokmen 2021)",
            "device",
            None,
            "sign",
            algorithm="ttv2",
        ),
        MethodInfo(
            "cttv2",
            "chopped Tiki-Taka v2 (Rasch et al. 2024)",
            "device",
            None,
            "sign",
            algorithm="cttv2",
        ),
        MethodInfo(
            "hwa",
            "hardware-aware training in software (weight noise of sd_us), then "
            "programmed once by write-verify",
            "device",
            None,
            "write_verify",
            algorithm="hwa",
        ),
        MethodInfo(
            "noisy-bp",
            "weight level: every update written with N(0, sd_us) noise",
            "weight",
            "exact",
        ),
        MethodInfo(
            "eapu", "weight level: EaPU, written updates get N(0, sd_us) noise", "weight", "eapu"
        ),
    ]
}


def _lookup(table: dict[str, Any], kind: str, name: str) -> Any:
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown {kind} {name!r}; available: {', '.join(table)}") from None


def get_task(name: str) -> TaskInfo:
    return _lookup(TASKS, "task", name)  # type: ignore[no-any-return]


def get_method(name: str) -> MethodInfo:
    return _lookup(METHODS, "method", name)  # type: ignore[no-any-return]


def list_tasks() -> list[str]:
    return list(TASKS)


def list_methods() -> list[str]:
    return list(METHODS)


# ---------------------------------------------------------------------------------- config
#: Base optimizers by name: the class and its fixed keywords (the learning rate is separate).
OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]] = {
    "adam": (torch.optim.Adam, {}),
    "sgd": (torch.optim.SGD, {}),
    "momentum": (torch.optim.SGD, {"momentum": 0.9}),
}
#: Learning-rate schedules over the run: StepLR (÷10 at 50 % and 75 %, the paper's CIFAR-10
#: recipe) and cosine annealing (its CIFAR-100 recipe).
SCHEDULES = ("none", "step", "cosine")


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
    sd_us: float = 2.0
    rwg_per_us: float = 1 / 80
    threshold_us: float | None = None
    model: str | None = None
    data: str | None = None
    data_dir: str | None = None
    eval_samples: int = 512
    optimizer: str = "adam"
    schedule: str = "none"
    width: int | None = None
    stuck_off: float = 0.0
    stuck_on: float = 0.0
    anomaly_data: str | None = None
    device_type: str = "cpu"
    init_from: str | None = None

    def __post_init__(self) -> None:
        get_task(self.task)
        get_method(self.method)
        for name in ("steps", "batch_size", "eval_every"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ValueError(f"Invalid {name}: {v!r}; allowed: an integer >= 1")
        for name in ("lr", "sd_us", "rwg_per_us", "threshold_us"):
            v = getattr(self, name)
            if v is None and name in ("lr", "threshold_us"):
                continue
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if not ok or v < 0 or (v == 0 and name in ("lr", "rwg_per_us")):
                low = "> 0" if name in ("lr", "rwg_per_us") else ">= 0"
                raise ValueError(f"Invalid {name}: {v!r}; allowed: a finite number {low}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"Invalid seed: {self.seed!r}; allowed: an integer >= 0")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"Invalid optimizer: {self.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"Invalid schedule: {self.schedule!r}; allowed: {', '.join(SCHEDULES)}"
            )
        for name in ("stuck_off", "stuck_on"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0 <= v <= 1:
                raise ValueError(f"Invalid {name}: {v!r}; allowed: a fraction in [0, 1]")
        if self.stuck_off + self.stuck_on > 1:
            raise ValueError(
                f"Invalid stuck_off + stuck_on: {self.stuck_off + self.stuck_on}; allowed: <= 1"
            )
        if (self.stuck_off or self.stuck_on) and get_method(self.method).level != "device":
            raise ValueError(
                f"stuck_off / stuck_on need a device-level method, not {self.method!r}"
            )
        if self.device_type not in ("cpu", "cuda"):
            raise ValueError(f"Invalid device_type: {self.device_type!r}; allowed: cpu, cuda")
        if self.width is not None and (not isinstance(self.width, int) or self.width < 1):
            raise ValueError(f"Invalid width: {self.width!r}; allowed: None or an integer >= 1")

    def resolved(self) -> dict[str, Any]:
        """The config with the task's defaults filled in (what ``config.json`` records)."""
        t = get_task(self.task)
        d = dataclasses.asdict(self)
        for k in ("steps", "batch_size", "lr", "eval_every", "model", "data", "anomaly_data"):
            if d[k] is None:
                d[k] = getattr(t, k)
        return d


# ---------------------------------------------------------------------------------- metrics
def image_metrics(output: Tensor, target: Tensor) -> dict[str, float]:
    """Mean SSIM and PSNR over images (N×C×H×W in [0, 1]), by scikit-image."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    out = output.detach().clamp(0, 1).cpu().double().numpy()
    tgt = target.detach().cpu().double().numpy()
    ssim, psnr = [], []
    for o, t in zip(out, tgt, strict=True):
        win = min(7, *t.shape[-2:])
        win -= 1 - win % 2  # odd, at most 7 (scikit-image's default) and at most the image
        ssim.append(structural_similarity(t, o, data_range=1.0, channel_axis=0, win_size=win))
        psnr.append(peak_signal_noise_ratio(t, o, data_range=1.0))
    return {"ssim": float(np.mean(ssim)), "psnr": float(np.mean(psnr))}


# ------------------------------------------------------------------------------ the runner
class _Experiment:
    """Data, corruption, loss and evaluation of one task, deterministic by step."""

    def __init__(self, cfg: dict[str, Any], task: TaskInfo) -> None:
        self.cfg, self.task = cfg, task
        if cfg["device_type"] == "cuda" and not torch.cuda.is_available():
            raise ValueError("Invalid device_type: 'cuda'; CUDA is not available here")
        self.device = torch.device(cfg["device_type"])
        kw = dict(task.data_kw) if cfg["data"] == task.data else {}
        if cfg["data"] == "imagefolder":  # tasks index tensors: load the folder into memory
            kw["in_memory"] = True
        self.train = typing.cast(
            ImageDataset, get_dataset(cfg["data"], data_dir=cfg["data_dir"], split="train", **kw)
        )
        self.test = typing.cast(
            ImageDataset, get_dataset(cfg["data"], data_dir=cfg["data_dir"], split="test", **kw)
        )
        n = min(cfg["eval_samples"], len(self.test.images))
        self.test_x = self.test.images[:n]
        self.test_y = self.test.labels[:n]
        if task.kind == "anomaly":  # the same number of anomalies, at the same size
            h = self.test_x.shape[-1]
            size_kw = {"patch_size": h} if cfg["anomaly_data"] == "photos" else {"size": h}
            other = typing.cast(
                ImageDataset,
                get_dataset(cfg["anomaly_data"], data_dir=cfg["data_dir"], split="test", **size_kw),
            )
            self.anomalies = other.images[:n, : self.test_x.shape[1]]

    def batch(self, step: int) -> tuple[Tensor, Tensor]:
        """The mini-batch of ``step``: epochs are seeded permutations, so resume is exact."""
        n, bs = len(self.train.images), self.cfg["batch_size"]
        per_epoch = max(n // bs, 1)
        epoch, k = divmod(step, per_epoch)
        g = torch.Generator().manual_seed(self.cfg["seed"] * 1_000_003 + epoch)
        idx = torch.randperm(n, generator=g)[k * bs : (k + 1) * bs]
        return self.train.images[idx].to(self.device), self.train.labels[idx].to(self.device)

    def inputs(self, x: Tensor, key: int) -> Tensor:
        t = self.task
        if t.kind in ("denoise", "anomaly"):
            g = torch.Generator().manual_seed(key)  # the same noise on any device
            return add_gaussian_noise(x.cpu(), t.noise_sigma, g).to(x.device)
        if t.kind == "sr":
            return downscale_bicubic(x, t.scale)
        return x

    def loss(self, out: Tensor, x: Tensor, y: Tensor) -> Tensor:
        kind = self.task.kind
        if kind in ("denoise", "anomaly"):
            return F.mse_loss(out, x)
        if kind == "sr":
            return F.l1_loss(out, x)
        return F.cross_entropy(out, y)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        model.eval()
        x, y = self.test_x, self.test_y
        inp = self.inputs(x, key=123_456_789)  # one fixed corruption of the test set
        out = torch.cat(
            [model(inp[i : i + 256].to(self.device)).cpu() for i in range(0, len(inp), 256)]
        )
        model.train()
        if self.task.kind == "classify":
            metrics = {"accuracy": float((out.argmax(1) == y).double().mean())}
            return metrics, {}
        if self.task.kind == "anomaly":
            return self._anomaly_metrics(model), {}
        metrics = image_metrics(out, x)
        metrics["loss_test"] = float(self.loss(out, x, y))
        # What the network must beat: the noisy input itself, or bicubic upscaling.
        base = inp if self.task.kind == "denoise" else upscale_bicubic(inp, self.task.scale)
        metrics.update({f"{k}_baseline": v for k, v in image_metrics(base, x).items()})
        k = min(8, len(x))
        samples = {
            "inputs": inp[:k].clamp(0, 1).numpy(),
            "outputs": out[:k].clamp(0, 1).numpy(),
            "targets": x[:k].numpy(),
        }
        return metrics, samples

    def _anomaly_metrics(self, model: nn.Module) -> dict[str, float]:
        """Reconstruction error (MSE per image) as the anomaly score: ROC-AUC, and accuracy
        on the balanced test set at the 95th percentile of the training images' errors."""
        from sklearn.metrics import roc_auc_score

        def errors(x: Tensor) -> Tensor:
            out = torch.cat(
                [model(x[i : i + 256].to(self.device)).cpu() for i in range(0, len(x), 256)]
            )
            return (out - x).pow(2).flatten(1).mean(1)

        model.eval()
        normal, odd = errors(self.test_x), errors(self.anomalies)
        threshold = torch.quantile(errors(self.train.images[:2048]), 0.95)
        model.train()
        score = torch.cat([normal, odd]).numpy()
        truth = np.r_[np.zeros(len(normal)), np.ones(len(odd))]
        acc = float(((normal <= threshold).sum() + (odd > threshold).sum()) / len(score))
        return {
            "accuracy": acc,
            "roc_auc": float(roc_auc_score(truth, score)),
            "error_normal": float(normal.mean()),
            "error_anomaly": float(odd.mean()),
        }


def _model(cfg: dict[str, Any], exp: _Experiment) -> nn.Module:
    """The task's network, sized to the data where its class takes those arguments."""
    task = get_task(cfg["task"])
    kw: dict[str, Any] = dict(task.model_kw) if cfg["model"] == task.model else {}
    x = exp.train.images
    if task.kind == "classify":
        kw.update(
            in_channels=x.shape[1],
            num_classes=int(exp.train.labels.max()) + 1,
            img_size=x.shape[-1],
        )
    if cfg["width"] is not None:
        kw["width"] = cfg["width"]
    factory = model_info(cfg["model"]).factory
    cls = typing.get_type_hints(factory).get("return")
    accepted = inspect.signature(cls).parameters if isinstance(cls, type) else kw
    return get_model(
        cfg["model"], seed=cfg["seed"], **{k: v for k, v in kw.items() if k in accepted}
    )


def _device(cfg: dict[str, Any]) -> Any:
    """The run's device model: the preset with the run's stuck-cell fractions."""
    from .devices import get_device

    dev = get_device(cfg["device"])
    if cfg["stuck_off"] or cfg["stuck_on"]:
        dev = dataclasses.replace(
            dev, stuck_off_fraction=cfg["stuck_off"], stuck_on_fraction=cfg["stuck_on"]
        )
    return dev


def _convert(model: nn.Module, cfg: dict[str, Any], method: MethodInfo) -> Any:
    """Put the network on the run's crossbar (device, method's scheme, Rwg, seed)."""
    return convert(
        model,
        device=_device(cfg),
        scheme=method.scheme,
        rwg_per_us=cfg["rwg_per_us"],
        seed=cfg["seed"],
    )


def _build(cfg: dict[str, Any], method: MethodInfo, exp: _Experiment) -> tuple[Any, Any, Any, Any]:
    model = _model(cfg, exp)
    if cfg["init_from"]:  # transfer learning: start from another run's weights
        path = Path(cfg["init_from"])
        ck = torch.load(path / "checkpoint.pt" if path.is_dir() else path, weights_only=True)
        model.load_state_dict(
            {k: v for k, v in ck["model"].items() if not k.endswith("_extra_state")}
        )
    xb = None
    if method.in_situ:
        xb = _convert(model, cfg, method)
    model.to(exp.device)
    base: Any
    base, base_kw = OPTIMIZERS[cfg["optimizer"]]
    opt: torch.optim.Optimizer
    if method.algorithm in ALGORITHMS:  # built after convert: it places its own arrays
        algo: Any = get_algorithm(method.algorithm)
        opt = algo(model.parameters(), lr=cfg["lr"], base=base, seed=cfg["seed"], **base_kw)
        if hasattr(opt, "watch"):  # Tiki-Taka counts samples and scales A by the layers' data
            opt.watch(model)
    elif method.rule is None:
        opt = base(model.parameters(), lr=cfg["lr"], **base_kw)
    else:
        opt = InSituOptimizer(
            model.parameters(),
            base,
            rule=method.rule,
            sd_us=cfg["sd_us"],
            rwg_per_us=cfg["rwg_per_us"],
            threshold_us=cfg["threshold_us"],
            seed=cfg["seed"],
            lr=cfg["lr"],
            **base_kw,
        )
    steps = cfg["steps"]
    sched: Any = None
    if cfg["schedule"] == "step":
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, [steps // 2, steps * 3 // 4], 0.1)
    elif cfg["schedule"] == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    return model, xb, opt, sched


def run(
    config: RunConfig,
    out_dir: str | Path,
    *,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train ``config`` and write the run directory ``out_dir``; returns the final metrics.

    If ``out_dir`` holds a checkpoint of the same config, the run resumes from it; a
    finished run is not trained again.
    """
    cfg = config.resolved()
    task, method = get_task(cfg["task"]), get_method(cfg["method"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ck_path = out / "checkpoint.pt"
    torch.manual_seed(cfg["seed"])  # layers initialised outside get_model's seed, if any
    exp = _Experiment(cfg, task)
    model, xb, opt, sched = _build(cfg, method, exp)
    hwa = None
    if method.algorithm == "hwa":
        hwa = hwa_noise(
            model,
            cfg["sd_us"],
            cfg["rwg_per_us"],
            torch.Generator().manual_seed(cfg["seed"] + 0x5EED),
        )
    start, history, wall = _resume(ck_path, cfg, model, xb, opt, sched, hwa)
    write_json(out / "config.json", cfg)
    if xb is not None:
        atomic_write(out / "placement.txt", (xb.placement.render() + "\n").encode())

    t0 = time.perf_counter() - wall
    steps, every = cfg["steps"], cfg["eval_every"]
    samples: dict[str, np.ndarray] = {}
    if start == 0:  # the untrained network (as programmed): where every curve starts
        history.append({"step": 0, **exp.evaluate(model)[0]})
    for step in range(start, steps):
        x, y = exp.batch(step)
        inp = exp.inputs(x, key=cfg["seed"] * 7_919 + step)
        opt.zero_grad()
        loss = exp.loss(model(inp), x, y)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        row: dict[str, Any] = {"step": step + 1, "loss": float(loss.detach())}
        if (step + 1) % every == 0 or step + 1 == steps:
            metrics, samples = exp.evaluate(model)
            row.update(metrics)
            if step + 1 < steps:
                _checkpoint(
                    ck_path,
                    cfg,
                    model,
                    xb,
                    opt,
                    sched,
                    hwa,
                    step + 1,
                    [*history, row],
                    time.perf_counter() - t0,
                )
        history.append(row)
        if progress is not None:
            progress(step + 1, steps, row)

    final: dict[str, Any] = {k: v for k, v in history[-1].items() if k != "step"}
    if method.programmed_once:  # ex-situ, hwa: program the trained weights once, evaluate
        if hwa is not None:
            hwa.remove()
        xb = _convert(model, cfg, method)
        metrics, samples = exp.evaluate(model)
        final.update(metrics)
        final.update(
            {
                "pulses": sum(int(t.load_record[1]) for t in xb.tiles),
                "cells": xb.cells,
                "rup": 0.0,
                "nup": 0.0,
                "ncell": 0.0,
            }
        )
    ledger = opt.ledger if isinstance(opt, (InSituOptimizer, TileAlgorithm)) else None
    if ledger is not None:
        s = ledger.summary()
        final.update(
            {
                "rup": s.rup,
                "nup": s.nup,
                "ncell": s.ncell,
                "pulses": s.pulses,
                "written": s.written,
                "reads": s.reads,
                "failed": s.failed,
                "cells": s.cells,
            }
        )
        rup, nup = ledger.rup().tolist(), ledger.nup().tolist()
        for row, r, n in zip(history[1:], rup, nup, strict=True):
            row["rup"], row["nup"] = r, n
    if xb is not None and method.in_situ:
        final["load_pulses"] = sum(int(t.load_record[1]) for t in xb.tiles)
    xb = crossbar_of(model)
    summary = ledger.summary() if ledger is not None else None
    acc = _accounting(
        model, xb, exp, cfg, summary, int(final.get("load_pulses", final.get("pulses", 0)))
    )
    write_json(out / "energy.json", acc)
    for node in ("180nm", "16nm"):
        fig = energy_figures(acc, node)
        if "training" in fig:
            final[f"train_energy_uj_{node}"] = fig["training"]["total"] * 1e6
            final[f"update_energy_uj_{node}"] = (
                fig["training"]["programming"] + fig["training"]["verify"]
            ) * 1e6
        if "inference" in fig:
            final[f"infer_energy_nj_{node}"] = fig["inference"]["total"] * 1e9
    if "endurance" in acc:
        final["max_writes_per_cell"] = acc["endurance"]["max_writes"]
    final.update(
        {
            "task": cfg["task"],
            "method": cfg["method"],
            "steps": steps,
            "wall_s": time.perf_counter() - t0,
        }
    )
    _write_history(out / "history.csv", history)
    if samples:
        buf = io.BytesIO()
        np.savez(buf, **samples)  # type: ignore[arg-type]
        atomic_write(out / "samples.npz", buf.getvalue())
    write_json(out / "metrics.json", final)
    _checkpoint(ck_path, cfg, model, xb, opt, sched, hwa, steps, history, final["wall_s"])
    return final


def analog_layers(model: nn.Module, sample: Tensor) -> list[Any]:
    """The crossbar matrices of ``model`` with how often each is applied per sample.

    Every Linear / Conv2d / ConvTranspose2d (analog or not) counts: one VMM per output
    position of a convolution, per input position of a transposed convolution.
    """
    found: list[Any] = []
    handles = [
        mod.register_forward_hook(lambda m, i, o, name=name: _record(found, name, m, i, o))
        for name, mod in model.named_modules()
        if isinstance(mod, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))
    ]
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for h in handles:
            h.remove()
    return found


def _record(
    found: list[Any], name: str, mod: nn.Module, inp: tuple[Tensor, ...], out: Tensor
) -> None:
    from .energy import AnalogLayer
    from .tiles import matrix_shape

    transposed = isinstance(mod, nn.ConvTranspose2d)
    rows, cols = matrix_shape(tuple(mod.weight.shape), transposed)  # type: ignore[arg-type]
    if isinstance(mod, nn.Linear):
        n = inp[0].numel() // inp[0].shape[-1]
    else:
        n = (inp[0] if transposed else out)[0, 0].numel()
    found.append(AnalogLayer(name, rows, cols, float(n)))


def _accounting(
    model: nn.Module, xb: Any, exp: _Experiment, cfg: dict[str, Any], summary: Any, load_pulses: int
) -> dict[str, Any]:
    """Operation counts of the run for `eapu.energy`: per inference sample, per training
    step, the one-time load, and the cells' wear (``energy.json``)."""
    from .energy import StepWrites, endurance_report, inference_counts, training_step_counts

    layers = analog_layers(model, exp.test_x[:1])
    macs = sum(x.rows * x.cols * x.vmms_per_sample for x in layers)
    out: dict[str, Any] = {
        "steps": cfg["steps"],
        "batch_size": cfg["batch_size"],
        "macs_per_sample": macs,
        "layers": [dataclasses.asdict(x) for x in layers],
    }
    if xb is None:
        return out
    g = torch.cat([t.state.g_us.reshape(-1) for t in xb.tiles] + [xb.ref_g_us.reshape(-1)])
    g_mean = float(g.mean())
    kw = {
        "array_rows": xb.placement.array_rows,
        "array_cols": xb.placement.array_cols,
        "mapping": xb.mapping,
    }
    out["g_mean_us"] = g_mean
    out["inference_per_sample"] = inference_counts(layers, g_mean_us=g_mean, **kw).as_dict()
    writes = summary if summary is not None else StepWrites(0.0, 0.0, 0.0)
    step = training_step_counts(
        layers,
        writes,
        batch_size=cfg["batch_size"],
        g_mean_us=g_mean,
        random_draws=None if cfg["method"].startswith("eapu") else 0.0,
        **kw,
    )
    out["training_per_step"] = step.as_dict() if summary is not None else None
    out["load_pulses"] = load_pulses
    e = endurance_report([t.writes for t in xb.tiles], max(cfg["steps"], 1))
    out["endurance"] = {
        "max_writes": e.max_writes,
        "mean_writes": e.mean_writes,
        "never_written": e.never_written,
        "runs_to_1e6_writes": e.runs_to_endurance,
    }
    return out


def energy_figures(
    acc: dict[str, Any], node: str = "180nm", nodes_file: str | Path | None = None
) -> dict[str, Any]:
    """Energy and latency of a run from its ``energy.json`` counts on one technology node:
    inference per sample, training over the run (steps · per step + the one-time load),
    and the GPU reference for the same training in FP32."""
    from .energy import Counts, energy, get_node, gpu_reference, latency

    n = get_node(node, nodes_file)
    out: dict[str, Any] = {"node": node}
    if acc.get("inference_per_sample"):
        inf = Counts(**acc["inference_per_sample"])
        out["inference"] = energy(inf, n).as_dict()
        out["inference_latency"] = latency(inf, n).as_dict()
    if acc.get("training_per_step"):
        step = Counts(**acc["training_per_step"]) * acc["steps"]
        load = Counts(pulses=acc["load_pulses"], pulse_g_us=acc["load_pulses"] * acc["g_mean_us"])
        out["training"] = energy(step + load, n).as_dict()
        out["training_latency"] = latency(step + load, n).as_dict()
    gpu = get_node("gpu", nodes_file)
    flops = 6.0 * acc["macs_per_sample"] * acc["batch_size"] * acc["steps"]  # fwd + bwd
    e, t = gpu_reference(flops, 4.0 * flops / 2, gpu)  # one FP32 operand moved per MAC
    out["gpu_training"] = e.as_dict()
    out["gpu_training_latency"] = t.as_dict()
    return out


def load_run(run_dir: str | Path) -> tuple[nn.Module, Any, _Experiment, dict[str, Any]]:
    """Rebuild a finished run's network (and crossbar) from its checkpoint."""
    ck_path = Path(run_dir) / "checkpoint.pt"
    if not ck_path.exists():
        raise FileNotFoundError(f"no checkpoint.pt in {run_dir}; run the task first")
    ck = torch.load(ck_path, weights_only=True)
    cfg = ck["config"]
    method = get_method(cfg["method"])
    exp = _Experiment(cfg, get_task(cfg["task"]))
    model = _model(cfg, exp)
    xb = None
    if method.level == "device":
        xb = _convert(model, cfg, method)
        if method.algorithm in ALGORITHMS:  # its extra arrays, placed as in the run
            algo: Any = get_algorithm(method.algorithm)
            algo(model.parameters(), lr=cfg["lr"])
    model.load_state_dict(ck["model"])
    if xb is not None and ck["crossbar"]:
        xb.load_state_dict(ck["crossbar"])
    return model, xb, exp, cfg


def retention(
    run_dir: str | Path, hours: list[float], *, drift: str = "rram", seed: int = 0
) -> list[dict[str, Any]]:
    """Evaluate a device-level run after its cells drift for each of ``hours``, without and
    with compensation (mean offset for RRAM, global drift compensation for PCM)."""
    from .retention import HOUR_S, PcmDrift, RramDrift, apply_drift

    model, xb, exp, cfg = load_run(run_dir)
    if xb is None:
        raise ValueError(f"{run_dir} is a {cfg['method']} run: retention needs a device-level run")
    if drift not in ("rram", "pcm"):
        raise ValueError(f"Invalid drift: {drift!r}; allowed: rram, pcm")
    dmodel = RramDrift() if drift == "rram" else PcmDrift()
    comps = ["none", "mean_offset" if drift == "rram" else "gdc"]
    rows = []
    for h in hours:
        if not (isinstance(h, (int, float)) and math.isfinite(h) and h >= 0):
            raise ValueError(f"Invalid hours: {h!r}; allowed: finite numbers >= 0")
        row: dict[str, Any] = {"hours": h}
        for comp in comps:
            g = torch.Generator().manual_seed(seed)  # one trajectory for every time
            with apply_drift(xb, h * HOUR_S, dmodel, generator=g, compensation=comp, network=model):
                metrics, _ = exp.evaluate(model)
            row.update({f"{k}_{comp}": v for k, v in metrics.items() if "baseline" not in k})
        rows.append(row)
    return rows


def _resume(
    path: Path, cfg: dict[str, Any], model: nn.Module, xb: Any, opt: Any, sched: Any, hwa: Any
) -> tuple[int, list[dict[str, Any]], float]:
    """Load a run's checkpoint into its objects; (step, history, wall seconds) to go on from.

    A missing checkpoint means a fresh start; one written by another config is refused.
    """
    if not path.exists():
        return 0, [], 0.0
    ck = torch.load(path, weights_only=True)
    if ck["config"] != json.loads(json.dumps(cfg)):
        raise ValueError(f"{path} was written by another config; use another --out")
    model.load_state_dict(ck["model"])
    if xb is not None:
        xb.load_state_dict(ck["crossbar"])
    opt.load_state_dict(ck["optimizer"])
    if sched is not None:
        sched.load_state_dict(ck["scheduler"])
    if hwa is not None:
        hwa.load_state_dict(ck["hwa"])
    return ck["step"], ck["history"], ck["wall_s"]


def _checkpoint(
    path: Path,
    cfg: dict[str, Any],
    model: nn.Module,
    xb: Any,
    opt: Any,
    sched: Any,
    hwa: Any,
    step: int,
    history: list[dict[str, Any]],
    wall: float,
) -> None:
    buf = io.BytesIO()
    torch.save(
        {
            "config": json.loads(json.dumps(cfg)),
            "step": step,
            "model": model.state_dict(),
            "crossbar": xb.state_dict() if xb is not None else {},
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict() if sched is not None else {},
            "hwa": hwa.state_dict() if hwa is not None else {},
            "history": history,
            "wall_s": wall,
        },
        buf,
    )
    atomic_write(path, buf.getvalue())


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    cols = ["step", "loss", "rup", "nup"]
    for row in history:
        cols += [k for k in row if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, restval="")
    w.writeheader()
    w.writerows(history)
    atomic_write(path, buf.getvalue().encode())


def compare(
    task: str,
    methods: list[str],
    out_dir: str | Path,
    *,
    seeds: list[int] | None = None,
    progress: Callable[[str, int, int, dict[str, float]], None] | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Run ``task`` with each method and write ``compare.json`` (one row per method).

    One seed (``options["seed"]``, default 0) runs into ``out_dir/<method>``. Several
    ``seeds`` run into ``out_dir/<method>/seed=<s>``; a row then holds the mean over seeds of
    every number and ``<key>_sd``, their standard deviation, for the main metrics.
    """
    for m in methods:
        get_method(m)
    if seeds is not None and (not seeds or "seed" in options):
        raise ValueError(f"Invalid seeds: {seeds!r}; give a non-empty list, and no seed option")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for m in methods:
        runs = []
        for s in seeds or [options.get("seed", 0)]:
            cb = None if progress is None else (lambda st, n, r, m=m: progress(m, st, n, r))
            opts = {**options, "seed": s}
            run_dir = out / m / f"seed={s}" if seeds else out / m
            runs.append(run(RunConfig(task=task, method=m, **opts), run_dir, progress=cb))
        rows.append({"method": m, **_aggregate(runs)})
    doc: dict[str, Any] = {"task": task, "methods": methods, "rows": rows}
    if seeds:
        doc["seeds"] = list(seeds)
    write_json(out / "compare.json", doc)
    return rows


#: Metrics whose spread over seeds a multi-seed comparison reports as ``<key>_sd``.
SPREAD_KEYS = ("ssim", "psnr", "accuracy", "rup", "nup", "ncell")


def _aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's metrics, or the mean (and SD of the main metrics) over several."""
    first = {k: v for k, v in runs[0].items() if k != "method"}
    if len(runs) == 1:
        return first
    out: dict[str, Any] = {}
    for k, v in first.items():
        vals: list[Any] = [r.get(k) for r in runs]
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vals):
            out[k] = float(np.mean(vals))
            if k in SPREAD_KEYS:
                out[f"{k}_sd"] = float(np.std(vals, ddof=1))
        else:
            out[k] = v
    out["seeds"] = len(runs)
    return out
