"""`Experiment`: the data of one task, its mini-batch of each step, and its evaluation."""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor, nn

from ..data import ImageDataset, get_dataset
from ..nn import crossbar_of
from .config import ResolvedConfig
from .kinds import Metrics, Samples, TaskKind, get_kind
from .registry import TaskInfo
from .subsets import balanced_indices, stratified_split

__all__ = ["EVAL_KEY", "VALIDATION_FRACTION", "VALIDATION_SEED", "Experiment", "input_key"]

#: Seeds the one fixed corruption of the test set.
EVAL_KEY = 123_456_789
#: With ``eval_split="validation"``, this fraction of the training images (the same fraction
#: of every class, chosen by a permutation seeded with `VALIDATION_SEED`, the same for every
#: run, method and seed: `eapu.experiments.subsets.stratified_split`) is held out and
#: evaluated on; the run trains on the rest and never sees the test set.
VALIDATION_FRACTION = 0.2
VALIDATION_SEED = 0x5EA1


def input_key(seed: int, step: int) -> int:
    """Seeds the corruption of the training batch of ``step``."""
    return seed * 7_919 + step


class Experiment:
    """Data, corruption, loss and evaluation of one task, deterministic by step.

    Args:
        cfg: a resolved config (`RunConfig.resolved`).
        task: the task.
        device: where batches go (default: the config's ``device_type``).
    """

    def __init__(
        self, cfg: ResolvedConfig, task: TaskInfo, *, device: torch.device | None = None
    ) -> None:
        self.cfg, self.task = cfg, task
        self.kind: TaskKind = get_kind(task.kind)
        if device is None:
            if cfg.device_type == "cuda" and not torch.cuda.is_available():
                raise ValueError("Invalid device_type: 'cuda'; CUDA is not available here")
            device = torch.device(cfg.device_type)
        self.device = device
        kw = dict(task.data_kw) if cfg.data == task.data else {}
        if cfg.data == "imagefolder":  # tasks index tensors: load the folder into memory
            kw["in_memory"] = True
        self.train = self._load("train", kw)
        if cfg.eval_split == "validation":
            self.train, self.test = _hold_out(self.train)
        else:
            self.test = self._load("test", kw)
        # The evaluation images: ``eval_samples`` of them, as many of every class as it has
        # (a data set sorted by class loses whole classes to a prefix), chosen once by a
        # fixed seed: the same images for every evaluation, run, method and seed.
        idx = balanced_indices(self.test.labels, cfg.eval_samples)
        self.test_x = self.test.images[idx]
        self.test_y = self.test.labels[idx]
        # the anomaly task's evaluation data (`kinds._anomaly_prepare`): the anomalous
        # images and their labels, and the training images whose errors set the threshold
        self.anomalies: Tensor | None = None
        self.anomaly_labels: Tensor | None = None
        self.threshold_x: Tensor | None = None
        if self.kind.prepare is not None:
            self.kind.prepare(self)
        if cfg.batch_size > len(self.train.images):  # it would bill a batch never run
            raise ValueError(
                f"Invalid batch_size: {cfg.batch_size}; allowed: at most the "
                f"{len(self.train.images)} training images of this run ({cfg.data!r})"
            )

    def _load(self, split: str, kw: dict[str, Any]) -> ImageDataset:
        ds = get_dataset(self.cfg.data, data_dir=self.cfg.data_dir, split=split, **kw)
        if not isinstance(ds, ImageDataset):
            raise ValueError(
                f"Invalid data: {self.cfg.data!r} gives a {type(ds).__name__}; "
                "tasks need an ImageDataset"
            )
        return ds

    def batch(self, step: int) -> tuple[Tensor, Tensor]:
        """The mini-batch of ``step``: epochs are seeded permutations, so resume is exact."""
        n, bs = len(self.train.images), self.cfg.batch_size
        per_epoch = max(n // bs, 1)
        epoch, k = divmod(step, per_epoch)
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + epoch)
        idx = torch.randperm(n, generator=g)[k * bs : (k + 1) * bs]
        return self.train.images[idx].to(self.device), self.train.labels[idx].to(self.device)

    def inputs(self, x: Tensor, key: int) -> Tensor:
        """The network's input for the clean batch ``x`` (noise seeded by ``key``)."""
        return self.kind.inputs(self.task, x, key)

    def check_fits(self, model: nn.Module) -> None:
        """Refuse a network whose output cannot be this task's (before it trains).

        One forward pass of two training images in eval mode (no running statistics move,
        no generator is drawn from): image tasks need an image of the target's shape out,
        classification one score per class.
        """
        x = self.train.images[:2]
        inp = self.inputs(x, key=0)
        want = (2, int(self.train.labels.max()) + 1) if self.kind.classes else x.shape
        was = model.training
        model.eval()
        got: tuple[int, ...] | str
        try:
            with torch.no_grad():
                got = tuple(model(inp).shape)
        except RuntimeError as e:
            got = f"an error ({str(e).splitlines()[0]})"
        finally:
            model.train(was)
        if got != tuple(want):
            raise ValueError(
                f"Invalid model: {self.cfg.model!r} does not fit task {self.task.name!r} "
                f"on {self.cfg.data!r}: input {tuple(inp.shape)} gives {got}, the task "
                f"needs {tuple(want)} (its default model is {self.task.model!r})"
            )

    def loss(self, out: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """The task's loss of output ``out`` for the clean batch ``x`` and labels ``y``."""
        return self.kind.loss(out, x, y)

    def forward(self, model: nn.Module, x: Tensor) -> Tensor:
        """``model(x)`` in chunks of 256 on the experiment's device, back on the CPU."""
        return torch.cat(
            [model(x[i : i + 256].to(self.device)).cpu() for i in range(0, len(x), 256)]
        )

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> tuple[Metrics, Samples]:
        """Metrics (and sample images) of ``model`` on the test set.

        A crossbar's reads here draw from its evaluation stream, never from the streams of
        training (`eapu.tiles.Crossbar.evaluation`): how often a run is evaluated does not
        change what it trains.
        """
        xb = crossbar_of(model)
        ctx = xb.evaluation() if xb is not None else contextlib.nullcontext()
        with ctx:
            model.eval()
            inp = self.inputs(self.test_x, key=EVAL_KEY)  # one fixed corruption of the test set
            out = self.forward(model, inp)
            model.train()
            return self.kind.evaluate(self, model, inp, out)


def _hold_out(train: ImageDataset) -> tuple[ImageDataset, ImageDataset]:
    """(the rest, the validation split) of the training set: see `VALIDATION_FRACTION`."""
    n = len(train.images)
    n_val = round(n * VALIDATION_FRACTION)
    if not 1 <= n_val < n:
        raise ValueError(
            f"Invalid eval_split: 'validation' needs a training set of at least 2 images to "
            f"hold {VALIDATION_FRACTION:.0%} out, this one has {n}"
        )
    val, rest = stratified_split(train.labels, VALIDATION_FRACTION, seed=VALIDATION_SEED)

    def part(idx: Tensor, name: str) -> ImageDataset:
        return ImageDataset(
            train.images[idx], train.labels[idx], classes=train.classes, name=f"{train.name}:{name}"
        )

    return part(rest, "train"), part(val, "validation")
