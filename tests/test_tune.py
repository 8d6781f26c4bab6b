"""One tuning budget for every method: candidates chosen on a validation split of the
training data (never the test set), the choice and the budget reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from eapu.cli import app
from eapu.experiments import Experiment, RunConfig, compare, get_task, run
from eapu.experiments.experiment import VALIDATION_FRACTION

TINY = dict(steps=4, eval_every=2, eval_samples=32)


def _rows(x: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in x.reshape(len(x), -1)}


def test_the_validation_split_is_held_out_of_training_and_is_not_the_test_set() -> None:
    cfg = RunConfig(task="denoise", **TINY).resolved()
    plain = Experiment(cfg, get_task("denoise"))
    val = Experiment(cfg.replace(eval_split="validation"), get_task("denoise"))
    n = len(plain.train.images)
    assert len(val.test.images) == round(n * VALIDATION_FRACTION)
    assert len(val.train.images) + len(val.test.images) == n
    train, held, test = _rows(val.train.images), _rows(val.test.images), _rows(plain.test.images)
    assert not train & held  # trains on none of what it is scored on
    assert held <= _rows(plain.train.images) and not held & test  # never the test set
    # the same split for every seed and method, so candidates are compared on equal terms
    other = Experiment(cfg.replace(eval_split="validation", seed=7), get_task("denoise"))
    assert torch.equal(other.test.images, val.test.images)


def test_compare_tunes_each_method_on_validation_and_reports_the_choice(tmp_path: Path) -> None:
    rows = compare("denoise", ["software", "eapu"], tmp_path, tune={"lr": [0.003, 0.03]}, **TINY)
    doc = json.loads((tmp_path / "compare.json").read_text())
    assert doc["tune"] == {
        "field": "lr",
        "values": [0.003, 0.03],
        "metric": "ssim",
        "split": "validation",
    }
    for row in rows:
        m = row["method"]
        scores = {float(k): v for k, v in row["tune_scores"].items()}
        assert row["tuned_lr"] == max(scores, key=lambda v: scores[v])
        assert row["tune_budget"] == 2
        for v in (0.003, 0.03):
            tuned = json.loads((tmp_path / "tune" / m / f"lr={v}" / "config.json").read_text())
            assert tuned["eval_split"] == "validation" and tuned["lr"] == v
            assert (
                scores[v]
                == json.loads((tmp_path / "tune" / m / f"lr={v}" / "metrics.json").read_text())[
                    "ssim"
                ]
            )
        final = json.loads((tmp_path / m / "config.json").read_text())
        assert final["eval_split"] == "test" and final["lr"] == row["tuned_lr"]
    # The README's tables come from `eapu report --markdown`: the choice and budget are in it.
    out = CliRunner().invoke(app, ["report", str(tmp_path), "--markdown"]).output
    head, _, *lines = [x for x in out.splitlines() if x.startswith("|")]
    assert head.split(" | ")[1:4] == ["tuned_lr", "tune_budget", "tune_scores"]
    for row, line in zip(rows, lines, strict=True):
        cells = line.split(" | ")
        assert float(cells[1]) == row["tuned_lr"] and cells[2] == "2"
        assert cells[3].startswith("0.003: ") and " / 0.03: " in cells[3]


@pytest.mark.parametrize(
    ("tune", "match"),
    [
        ({"lr": [0.01]}, "at least two"),
        ({"lr": [0.01, 0.01]}, "each once"),
        ({"seed": [0, 1]}, "not task, method, seed or eval_split"),
        ({"eval_split": ["test", "validation"]}, "not task, method, seed or eval_split"),
        ({"lr": [1, 1.0]}, "1 and 1.0 are the same value"),
        ({"lr": [0.01, 0.1], "steps": [2, 4]}, "one RunConfig field"),
    ],
)
def test_a_bad_tuning_budget_is_refused(tmp_path: Path, tune: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        compare("denoise", ["software"], tmp_path, tune=tune, **TINY)


def test_tuning_a_field_that_is_also_set_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="do not also set it"):
        compare("denoise", ["software"], tmp_path, tune={"lr": [0.01, 0.1]}, lr=0.01, **TINY)


def test_the_command_takes_tune_and_refuses_a_bad_one(tmp_path: Path) -> None:
    base = ["compare", "denoise", "--methods", "software", "--steps", "2", "--eval-samples", "8"]
    r = CliRunner().invoke(app, [*base, "--tune", "lr", "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and "--tune" in r.output
    r = CliRunner().invoke(app, [*base, "--tune", "lr=0.01,-1", "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and "--tune lr=-1" in r.output
    r = CliRunner().invoke(app, [*base, "--tune", "lr=0.01,0.1", "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    assert "tuned_lr" in r.output


def test_a_run_written_before_eval_split_existed_still_resumes(tmp_path: Path) -> None:
    cfg = RunConfig(task="denoise", method="software", **TINY)
    first = run(cfg, tmp_path)
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    del ck["config"]["eval_split"]
    torch.save(ck, tmp_path / "checkpoint.pt")
    (tmp_path / "metrics.json").unlink()  # as if killed before the end: resumes from ck
    again = run(cfg, tmp_path)
    assert again["ssim"] == first["ssim"]


def test_compare_takes_an_option_only_some_methods_have(tmp_path: Path) -> None:
    # --fast-lr belongs to Tiki-Taka: a compare of Tiki-Taka methods takes it; with another
    # method it is refused, naming the flag, before anything trains.
    base = ["compare", "classify", "--steps", "2", "--eval-every", "2", "--eval-samples", "16"]
    ok = CliRunner().invoke(
        app, [*base, "--methods", "ttv2,cttv2", "--fast-lr", "0.05", "--out", str(tmp_path / "a")]
    )
    assert ok.exit_code == 0, ok.output
    for m in ("ttv2", "cttv2"):
        assert json.loads((tmp_path / "a" / m / "config.json").read_text())["fast_lr"] == 0.05
    bad = CliRunner().invoke(
        app, [*base, "--methods", "ttv2,eapu", "--fast-lr", "0.05", "--out", str(tmp_path / "b")]
    )
    assert bad.exit_code == 2 and "--fast-lr" in bad.output
    assert not (tmp_path / "b").exists()
