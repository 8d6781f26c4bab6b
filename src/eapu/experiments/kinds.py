"""Task kinds: how a task corrupts its inputs, scores its outputs and evaluates a network.

One `TaskKind` row per kind replaces the ``if kind == ...`` chains: the runner asks the row
of the task's ``kind`` for the inputs of a clean batch, the loss and the evaluation. A new
kind is a new row (``KINDS.add``); packages add theirs under ``eapu.task_kinds``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .. import metrics
from ..data import add_gaussian_noise, downscale_bicubic, upscale_bicubic
from ..registry import Registry
from .registry import TaskInfo
from .subsets import balanced_indices

if TYPE_CHECKING:
    from .experiment import Experiment

__all__ = ["KINDS", "Metrics", "Samples", "TaskKind", "get_kind", "image_metrics"]

Metrics = dict[str, float]
Samples = dict[str, np.ndarray]


@dataclass(frozen=True)
class TaskKind:
    """What a kind of task does with a batch.

    Attributes:
        name: the ``kind`` of a `TaskInfo`.
        inputs: ``inputs(task, x, key)``: the network's input for the clean batch ``x``;
            ``key`` seeds any corruption (the same on any device).
        loss: ``loss(output, x, y)`` against the clean batch ``x`` and labels ``y``.
        evaluate: ``evaluate(exp, model, inputs, outputs)``: metrics and samples of the test
            set, given its inputs and the network's outputs on them.
        metric: the main metric (what a sweep plots by default).
        classes: the network outputs one score per class (else an image like its target).
        model_kw: keyword arguments of the network that depend on the data.
        prepare: loads what the evaluation needs beyond the test set (anomalies).
        description: one line.
    """

    name: str
    inputs: Callable[[TaskInfo, Tensor, int], Tensor]
    loss: Callable[[Tensor, Tensor, Tensor], Tensor]
    evaluate: Callable[[Experiment, nn.Module, Tensor, Tensor], tuple[Metrics, Samples]]
    metric: str
    classes: bool = False
    model_kw: Callable[[Experiment], dict[str, Any]] = field(default=lambda exp: {})
    prepare: Callable[[Experiment], None] | None = None
    description: str = ""


def image_metrics(output: Tensor, target: Tensor) -> Metrics:
    """Mean SSIM and PSNR over images (N×C×H×W in [0, 1]; ``output`` clamped to [0, 1]).

    ``ssim`` is the standard SSIM (11×11 Gaussian window, σ = 1.5: Wang et al. 2004 and the
    authors' evaluation code, `eapu.metrics.ssim`); ``ssim_uniform7`` beside it is
    scikit-image's default 7×7 uniform window, what eapu reported as ``ssim`` before, so
    that earlier figures can be compared. ``psnr`` in dB.
    """
    out = output.detach().clamp(0, 1)
    tgt = target.detach()
    return {
        "ssim": metrics.ssim(out, tgt),
        "ssim_uniform7": metrics.ssim(out, tgt, window="uniform7"),
        "psnr": metrics.psnr(out, tgt),
    }


# ------------------------------------------------------------------------------- inputs
def _noisy(task: TaskInfo, x: Tensor, key: int) -> Tensor:
    g = torch.Generator().manual_seed(key)  # the same noise on any device
    return add_gaussian_noise(x.cpu(), task.noise_sigma, g).to(x.device)


def _downscaled(task: TaskInfo, x: Tensor, key: int) -> Tensor:
    return downscale_bicubic(x, task.scale)


def _clean(task: TaskInfo, x: Tensor, key: int) -> Tensor:
    return x


# ----------------------------------------------------------------------------- evaluate
def _image_evaluate(
    exp: Experiment, model: nn.Module, inp: Tensor, out: Tensor, baseline: Tensor
) -> tuple[Metrics, Samples]:
    x, y = exp.test_x, exp.test_y
    metrics = image_metrics(out, x)
    metrics["loss_test"] = float(exp.kind.loss(out, x, y))
    # What the network must beat: the noisy input itself, or bicubic upscaling.
    metrics.update({f"{k}_baseline": v for k, v in image_metrics(baseline, x).items()})
    k = min(8, len(x))
    samples = {
        "inputs": inp[:k].clamp(0, 1).numpy(),
        "outputs": out[:k].clamp(0, 1).numpy(),
        "targets": x[:k].numpy(),
    }
    return metrics, samples


def _denoise_evaluate(
    exp: Experiment, model: nn.Module, inp: Tensor, out: Tensor
) -> tuple[Metrics, Samples]:
    return _image_evaluate(exp, model, inp, out, inp)


def _sr_evaluate(
    exp: Experiment, model: nn.Module, inp: Tensor, out: Tensor
) -> tuple[Metrics, Samples]:
    return _image_evaluate(exp, model, inp, out, upscale_bicubic(inp, exp.task.scale))


def _classify_evaluate(
    exp: Experiment, model: nn.Module, inp: Tensor, out: Tensor
) -> tuple[Metrics, Samples]:
    return {"accuracy": float((out.argmax(1) == exp.test_y).double().mean())}, {}


def _anomaly_evaluate(
    exp: Experiment, model: nn.Module, inp: Tensor, out: Tensor
) -> tuple[Metrics, Samples]:
    """Reconstruction error (MSE per image) as the anomaly score: ROC-AUC, and accuracy on
    the balanced test set at the 95th percentile of the errors of 2048 training images (as
    many of every class as it has, `balanced_indices`)."""
    from sklearn.metrics import roc_auc_score

    def errors(x: Tensor) -> Tensor:
        return (exp.forward(model, x) - x).pow(2).flatten(1).mean(1)

    assert exp.anomalies is not None and exp.threshold_x is not None  # by _anomaly_prepare
    model.eval()
    normal, odd = errors(exp.test_x), errors(exp.anomalies)
    threshold = torch.quantile(errors(exp.threshold_x), 0.95)
    model.train()
    score = torch.cat([normal, odd]).numpy()
    truth = np.r_[np.zeros(len(normal)), np.ones(len(odd))]
    acc = float(((normal <= threshold).sum() + (odd > threshold).sum()) / len(score))
    return {
        "accuracy": acc,
        "roc_auc": float(roc_auc_score(truth, score)),
        "error_normal": float(normal.mean()),
        "error_anomaly": float(odd.mean()),
    }, {}


#: Training images whose reconstruction errors set the anomaly threshold.
THRESHOLD_SAMPLES = 2048


def _anomaly_prepare(exp: Experiment) -> None:
    """The same number of anomalies as test images, at the same size, as many of every class
    of the anomaly data set as it has (`balanced_indices`, fixed for every run); and the
    training images that set the threshold, likewise balanced."""
    from ..data import ImageDataset, get_dataset

    n, h = len(exp.test_x), exp.test_x.shape[-1]
    anomaly = exp.cfg.anomaly_data
    assert anomaly is not None  # the anomaly task has a default
    size_kw = {"patch_size": h} if anomaly == "photos" else {"size": h}
    other = get_dataset(anomaly, data_dir=exp.cfg.data_dir, split="test", **size_kw)
    assert isinstance(other, ImageDataset)
    idx = balanced_indices(other.labels, n)
    exp.anomalies = other.images[idx, : exp.test_x.shape[1]]
    exp.anomaly_labels = other.labels[idx]
    exp.threshold_x = exp.train.images[balanced_indices(exp.train.labels, THRESHOLD_SAMPLES)]


def _image_prepare(exp: Experiment) -> None:
    """Refuse images the SSIM window does not fit, before anything is trained."""
    h, w = exp.test_x.shape[-2:]
    if min(h, w) < metrics.WINDOW_SIZES["gaussian"]:
        side = metrics.WINDOW_SIZES["gaussian"]
        raise ValueError(
            f"Invalid data: {exp.cfg.data!r} has images of {h}×{w} pixels; allowed for "
            f"task {exp.task.name!r}: at least {side}×{side} (the SSIM's Gaussian window)"
        )


def _classify_model_kw(exp: Experiment) -> dict[str, Any]:
    x = exp.train.images
    return {
        "in_channels": x.shape[1],
        "num_classes": int(exp.train.labels.max()) + 1,
        "img_size": x.shape[-1],
    }


def _mse(out: Tensor, x: Tensor, y: Tensor) -> Tensor:
    return F.mse_loss(out, x)


def _l1(out: Tensor, x: Tensor, y: Tensor) -> Tensor:
    return F.l1_loss(out, x)


def _cross_entropy(out: Tensor, x: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(out, y)


#: The task kinds.
KINDS: Registry[TaskKind] = Registry("task kind", entry_point_group="eapu.task_kinds", sort=False)
for _k in (
    TaskKind(
        "denoise",
        _noisy,
        _mse,
        _denoise_evaluate,
        "ssim",
        prepare=_image_prepare,
        description="Gaussian noise on the input, MSE, SSIM / PSNR against the clean image",
    ),
    TaskKind(
        "sr",
        _downscaled,
        _l1,
        _sr_evaluate,
        "ssim",
        prepare=_image_prepare,
        description="bicubic downscaled input, L1, SSIM / PSNR against the original",
    ),
    TaskKind(
        "anomaly",
        _noisy,
        _mse,
        _anomaly_evaluate,
        "accuracy",
        prepare=_anomaly_prepare,
        description="denoiser whose reconstruction error flags images of another data set",
    ),
    TaskKind(
        "classify",
        _clean,
        _cross_entropy,
        _classify_evaluate,
        "accuracy",
        classes=True,
        model_kw=_classify_model_kw,
        description="cross-entropy, accuracy",
    ),
):
    KINDS.add(_k.name, _k)
del _k


def get_kind(name: str) -> TaskKind:
    """The task kind registered as ``name``."""
    return KINDS.get(name)
