"""Evaluation subsets are class-balanced and fixed: every class in every default evaluation."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from eapu.experiments import RunConfig, get_task, list_tasks
from eapu.experiments.experiment import Experiment
from eapu.experiments.subsets import balanced_indices, stratified_split


def _counts(labels: torch.Tensor) -> list[int]:
    return torch.bincount(labels).tolist()


def test_balanced_indices_take_the_same_number_of_every_class() -> None:
    labels = torch.arange(10).repeat_interleave(100)  # sorted by class, as MNIST's sample
    idx = balanced_indices(labels, 512)
    assert len(idx) == len(set(idx.tolist())) == 512
    assert _counts(labels[idx]) == [52, 52] + [51] * 8  # 512 = 10·51 + 2, to the lowest labels
    for k in (1, 10, 37, 200):  # every prefix is balanced too
        c = torch.bincount(labels[idx[:k]], minlength=10)
        assert int(c.max() - c.min()) <= 1, k
    assert labels[idx[:10]].tolist() == list(range(10))
    assert torch.equal(idx, balanced_indices(labels, 512))  # fixed: the same on every call
    assert not torch.equal(idx, balanced_indices(labels, 512, seed=1))
    # within a class the images come from a permutation, not the stored order
    first_zeros = idx[labels[idx] == 0][:10]
    assert not torch.equal(first_zeros, torch.arange(10))


def test_a_short_class_leaves_its_share_to_the_others() -> None:
    labels = torch.cat([torch.zeros(3, dtype=torch.long), torch.ones(50), 2 * torch.ones(50)])
    labels = labels.long()
    idx = balanced_indices(labels, 30)
    assert _counts(labels[idx]) == [3, 14, 13]  # class 0 gives all it has
    every = balanced_indices(labels, 1000)  # more than there are: all of them
    assert sorted(every.tolist()) == list(range(103))


def test_labels_need_not_be_0_to_k() -> None:
    labels = torch.tensor([7, 7, 7, 3, 3, 3, 9, 9, 9])
    assert sorted(labels[balanced_indices(labels, 3)].tolist()) == [3, 7, 9]


def test_stratified_split_holds_out_the_same_fraction_of_every_class() -> None:
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate((101, 57, 300, 8))])
    held, rest = stratified_split(labels, 0.2)
    assert len(held) == round(len(labels) * 0.2)
    assert sorted(torch.cat([held, rest]).tolist()) == list(range(len(labels)))
    got = torch.bincount(labels[held], minlength=4).double()
    want = torch.bincount(labels).double() * 0.2
    assert torch.all((got - want).abs() < 1), (got, want)
    h2, _ = stratified_split(labels, 0.2)
    assert torch.equal(held, h2)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: balanced_indices(torch.zeros(4, dtype=torch.long), 0), "Invalid n: 0"),
        (lambda: balanced_indices(torch.zeros(2, 2, dtype=torch.long), 1), "Invalid labels"),
        (lambda: stratified_split(torch.zeros(4, dtype=torch.long), 1.0), "Invalid fraction"),
    ],
)
def test_bad_input_is_named(call: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def _experiment(**kw: Any) -> Experiment:
    """The task's Experiment with its default data, or a skip when that data is not here."""
    cfg = RunConfig(**kw).resolved()
    try:
        return Experiment(cfg, get_task(cfg.task))
    except (ValueError, FileNotFoundError) as e:
        if "not found" in str(e):
            pytest.skip(f"data set not installed: {e}")
        raise


def _balanced(labels: torch.Tensor, of: torch.Tensor) -> None:
    """``labels`` hold every class of ``of``, and as many of each as ``of`` allows."""
    classes = torch.unique(of)
    assert set(torch.unique(labels).tolist()) == set(classes.tolist())
    got = torch.stack([(labels == c).sum() for c in classes])
    have = torch.stack([(of == c).sum() for c in classes])
    full = got < have  # classes not exhausted: within one image of each other
    if full.any():
        assert int(got[full].max() - got[full].min()) <= 1
        assert int(got.max()) <= int(got[full].min()) + 1


@pytest.mark.parametrize("task", list_tasks())
def test_every_default_evaluation_holds_every_class(task: str) -> None:
    exp = _experiment(task=task)
    n = min(512, len(exp.test.labels))
    assert len(exp.test_y) == n
    _balanced(exp.test_y, exp.test.labels)
    if exp.kind.name == "anomaly":
        assert exp.anomalies is not None and exp.anomaly_labels is not None
        assert len(exp.anomalies) == n
        from eapu.data import get_dataset

        info = get_task(task)
        other = get_dataset(info.anomaly_data, split="test", **_size_kw(info.anomaly_data))
        _balanced(exp.anomaly_labels, other.labels)
        assert exp.threshold_x is not None and len(exp.threshold_x) == 2048


def _size_kw(name: str | None) -> dict[str, int]:
    return {"patch_size": 28} if name == "photos" else {"size": 28}


def test_anomalies_from_fashion_mnist_hold_every_class() -> None:
    exp = _experiment(task="anomaly", anomaly_data="fashion-mnist")
    assert exp.anomaly_labels is not None
    assert _counts(exp.anomaly_labels) == [52, 52] + [51] * 8


def test_the_validation_split_is_stratified_and_its_evaluation_balanced() -> None:
    exp = _experiment(task="denoise", eval_split="validation")
    _balanced(exp.test_y, exp.test.labels)
    val = torch.bincount(exp.test.labels).double()
    train = torch.bincount(exp.train.labels).double()
    assert torch.all((val / (val + train) - 0.2).abs() < 0.01)


def test_every_run_evaluates_on_the_same_images() -> None:
    a = _experiment(task="denoise", method="eapu+mp", seed=0)
    b = _experiment(task="denoise", method="software", seed=3)
    assert torch.equal(a.test_x, b.test_x) and torch.equal(a.test_y, b.test_y)
    assert torch.equal(a.test_x, _experiment(task="denoise", eval_samples=512).test_x)
