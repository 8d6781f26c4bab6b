"""Class-balanced subsets of a data set: what a run evaluates on, and its validation split.

A data set stored sorted by class (the packaged MNIST sample is) loses whole classes to a
prefix: its first 512 test images are the digits 0-5, never 6-9. `balanced_indices` takes
the same number of images from every class instead (as far as each class has them), chosen
by a permutation seeded with `SUBSET_SEED`, so that every run, method and seed evaluates on
the same images::

    >>> import torch
    >>> labels = torch.arange(10).repeat_interleave(100)  # sorted by class, 100 per class
    >>> idx = balanced_indices(labels, 25)
    >>> torch.bincount(labels[idx], minlength=10).tolist()
    [3, 3, 3, 3, 3, 2, 2, 2, 2, 2]
    >>> torch.equal(idx, balanced_indices(labels, 25))  # fixed: the same on every call
    True

`stratified_split` holds out a fraction of every class (the validation split of
``eval_split="validation"``), so the training part keeps the classes' proportions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import validate

__all__ = ["SUBSET_SEED", "balanced_indices", "stratified_split"]

#: Seeds the one permutation every balanced subset and stratified split is chosen by.
SUBSET_SEED = 0xBA1A


def _class_ranks(labels: Tensor, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """(permutation, class index, rank within its class) of each image, in the order of a
    permutation seeded with ``seed``: an image's rank is how many of its class precede it."""
    if not isinstance(labels, Tensor) or labels.dim() != 1:
        raise ValueError(f"Invalid labels: {labels!r}; allowed: a 1-D tensor of class labels")
    validate.integer("seed", seed, low=0)
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    _, cls = torch.unique(labels.cpu()[perm], return_inverse=True)
    order = torch.argsort(cls, stable=True)  # by class, permutation order within each
    counts = torch.bincount(cls)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(cls)
    rank[order] = torch.arange(len(cls)) - starts[cls[order]]
    return perm, cls, rank


def balanced_indices(labels: Tensor, n: int, *, seed: int = SUBSET_SEED) -> Tensor:
    """Indices of ``n`` images with the same number from every class where possible.

    Round robin over the classes (in the order of their labels), each class's images in the
    order of a permutation seeded with ``seed``: every class gives ``n // k`` images of
    ``k`` classes, the first ``n % k`` classes one more, and a class that runs out leaves its
    share to the others. Any prefix of the result is balanced the same way (the first ``k``
    images are one of each class). With ``n`` at least ``len(labels)``, every image, in that
    order.

    Args:
        labels: the class label of each image (1-D).
        n: how many images (>= 1).
        seed: seeds the permutation (default `SUBSET_SEED`, the same for every run).
    """
    validate.integer("n", n, low=1)
    perm, cls, rank = _class_ranks(labels, seed)
    k = int(cls.max()) + 1 if len(cls) else 1
    key = rank * k + cls  # rank 0 of every class, then rank 1, ...: unique per image
    return perm[torch.argsort(key)[:n]]


def stratified_split(
    labels: Tensor, fraction: float, *, seed: int = SUBSET_SEED
) -> tuple[Tensor, Tensor]:
    """(held out, the rest): ``round(len(labels) · fraction)`` images held out, the same
    fraction of every class (largest remainders, ties to the lower label), each class's
    images chosen in the order of a permutation seeded with ``seed``.

    Args:
        labels: the class label of each image (1-D).
        fraction: the fraction held out, in (0, 1).
        seed: seeds the permutation.
    """
    validate.number("fraction", fraction, low=0, high=1, low_open=True, high_open=True)
    perm, cls, rank = _class_ranks(labels, seed)
    counts = torch.bincount(cls).double()
    want = counts * fraction
    quota = torch.floor(want).long()
    short = round(len(labels) * fraction) - int(quota.sum())
    if short > 0:  # largest remainders first; a stable sort keeps ties in label order
        quota[torch.argsort(-(want - quota), stable=True)[:short]] += 1
    held = rank < quota[cls]
    return perm[held], perm[~held]
