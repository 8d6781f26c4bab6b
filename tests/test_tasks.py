"""Experiments end to end on tiny budgets: run directories, resume, methods, compare, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from eapu.cli import app
from eapu.experiments import RunConfig, compare, get_method, list_methods, run

FAST = {"steps": 12, "eval_every": 6, "batch_size": 16, "eval_samples": 32}


def test_run_writes_a_complete_run_directory(tmp_path: Path) -> None:
    m = run(RunConfig(task="denoise", method="eapu+mp", **FAST), tmp_path)
    for name in (
        "config.json",
        "metrics.json",
        "history.csv",
        "checkpoint.pt",
        "samples.npz",
        "placement.txt",
    ):
        assert (tmp_path / name).exists(), name
    assert json.loads((tmp_path / "config.json").read_text())["steps"] == 12
    assert 0 <= m["ssim"] <= 1 and m["psnr"] > 0
    assert m["cells"] == 162 and 0 < m["rup"] < 1
    assert m["clipped"] == 0  # no target beyond the device window
    assert m["nup"] == pytest.approx(m["ncell"] * m["rup"])
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert len(rows) == 13  # step 0 (the untrained network as programmed) and 12 steps
    assert rows[0]["ssim"] != "" and rows[0]["loss"] == ""
    assert rows[6]["ssim"] != "" and rows[5]["ssim"] == ""
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ck["step"] == 12
    # no temporary files left behind; the writer's lock file is the only hidden file
    assert [p.name for p in tmp_path.glob(".*")] == [".lock"]


def test_interrupted_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    cfg = RunConfig(task="denoise", method="eapu+mp", seed=2, **FAST)
    ref = run(cfg, tmp_path / "ref")

    def stop(step: int, total: int, row: dict) -> None:
        if step == 9:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "cut", progress=stop)
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["step"] == 6
    again = run(cfg, tmp_path / "cut")
    for k in ("ssim", "psnr", "loss", "rup", "nup", "pulses"):
        assert again[k] == ref[k], k
    a = torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a if isinstance(a[k], torch.Tensor))


def test_a_checkpoint_of_another_config_is_refused(tmp_path: Path) -> None:
    run(RunConfig(task="denoise", method="software", **FAST), tmp_path)
    # The message says what differs, so a user knows which run is in the way.
    with pytest.raises(ValueError, match=r"another config \(seed 0, not 1\)"):
        run(RunConfig(task="denoise", method="software", seed=1, **FAST), tmp_path)


@pytest.mark.parametrize("method", list_methods())
def test_every_method_runs_on_every_kind_of_task(tmp_path: Path, method: str) -> None:
    for task in ("denoise", "classify"):
        m = run(RunConfig(task=task, method=method, **FAST), tmp_path / task)
        if task == "denoise":
            assert -1 <= m["ssim"] <= 1  # SSIM can be negative for a bad reconstruction
        else:
            assert 0 <= m["accuracy"] <= 1
        if get_method(method).level != "software":
            assert m["pulses"] >= 0 and "cells" in m


def test_anomaly_task_scores_another_data_set(tmp_path: Path) -> None:
    m = run(RunConfig(task="anomaly", method="software", steps=150, eval_every=150), tmp_path)
    assert 0.5 < m["roc_auc"] <= 1 and 0 <= m["accuracy"] <= 1
    assert m["error_anomaly"] > m["error_normal"]


def test_transfer_starts_from_another_runs_weights(tmp_path: Path) -> None:
    pre = run(RunConfig(task="classify", method="software", **FAST), tmp_path / "pre")
    cfg = RunConfig(task="classify", method="eapu", init_from=str(tmp_path / "pre"), **FAST)
    run(cfg, tmp_path / "fine")
    rows = list(csv.DictReader((tmp_path / "fine" / "history.csv").open()))
    assert float(rows[0]["accuracy"]) == pytest.approx(pre["accuracy"])  # step 0 = pre-trained


def test_sr2_runs_and_upsamples(tmp_path: Path) -> None:
    m = run(
        RunConfig(
            task="sr2", method="eapu+mp", steps=4, eval_every=2, batch_size=8, eval_samples=8
        ),
        tmp_path,
    )
    assert m["cells"] == 396
    s = __import__("numpy").load(tmp_path / "samples.npz")
    assert s["outputs"].shape[-1] == 2 * s["inputs"].shape[-1]


def test_compare_writes_one_row_per_method(tmp_path: Path) -> None:
    rows = compare("denoise", ["software", "su"], tmp_path, **FAST)
    assert [r["method"] for r in rows] == ["software", "su"]
    doc = json.loads((tmp_path / "compare.json").read_text())
    assert doc["methods"] == ["software", "su"] and len(doc["rows"]) == 2
    assert (tmp_path / "su" / "metrics.json").exists()


def test_compare_over_seeds_reports_mean_and_sd(tmp_path: Path) -> None:
    rows = compare("denoise", ["eapu+mp"], tmp_path, seeds=[0, 1], **FAST)
    a = json.loads((tmp_path / "eapu+mp" / "seed=0" / "metrics.json").read_text())
    b = json.loads((tmp_path / "eapu+mp" / "seed=1" / "metrics.json").read_text())
    assert rows[0]["seeds"] == 2
    assert rows[0]["ssim"] == pytest.approx((a["ssim"] + b["ssim"]) / 2)
    assert rows[0]["ssim_sd"] == pytest.approx(abs(a["ssim"] - b["ssim"]) / 2**0.5)
    with pytest.raises(ValueError, match="Invalid seeds"):
        compare("denoise", ["su"], tmp_path, seeds=[0], seed=1, **FAST)


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"steps": 0}, r"Invalid steps: 0; allowed: an integer >= 1"),
        ({"lr": -1.0}, r"Invalid lr: -1.0; allowed: a finite number > 0"),
        ({"sd_us": float("nan")}, r"Invalid sd_us: nan"),
        ({"method": "magic"}, r"unknown method 'magic'; available: software"),
        ({"task": "juggle"}, r"unknown task 'juggle'; available: denoise"),
        ({"seed": -3}, r"Invalid seed: -3"),
        ({"device_type": "tpu"}, r"Invalid device_type: 'tpu'; allowed: 'cpu', 'cuda'"),
        ({"stuck_off": 1.5, "method": "eapu+mp"}, r"Invalid stuck_off: 1.5"),
        ({"stuck_off": 0.1, "method": "eapu"}, r"need a device-level method"),
        ({"optimizer": "lbfgs"}, r"Invalid optimizer: 'lbfgs'; allowed: 'adam', 'sgd', 'momentum'"),
    ],
)
def test_bad_config_raises(kw: dict, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        RunConfig(**kw)


def test_cli_list_run_report_and_errors(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["list", "devices"])
    assert r.exit_code == 0 and "taox_1t1r" in r.output
    out = tmp_path / "run"
    toml = tmp_path / "opts.toml"
    toml.write_text("steps = 4\neval_every = 2\nbatch_size = 8\n")
    r = CliRunner().invoke(
        app,
        [
            "run",
            "denoise",
            "--method",
            "eapu+mp",
            "--out",
            str(out),
            "--config",
            str(toml),
            "--seed",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads((out / "config.json").read_text())["steps"] == 4
    assert (out / "report.html").exists()
    r = CliRunner().invoke(app, ["list", "nothing"])
    assert r.exit_code == 2 and "'devices'" in r.output  # the parser lists the choices
    r = CliRunner().invoke(app, ["run", "denoise", "--method", "magic"])
    assert r.exit_code != 0


def test_every_command_of_the_cli_works_on_a_run(tmp_path: Path) -> None:
    runner = CliRunner()
    names = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert names == {
        "run",
        "compare",
        "report",
        "energy",
        "retention",
        "sweep",
        "stats",
        "list",
        "characterize",
        "narrow-range",
    }
    out = tmp_path / "cmp"
    r = runner.invoke(
        app,
        [
            "compare",
            "denoise",
            "--methods",
            "software,eapu+mp",
            "--steps",
            "4",
            "--eval-every",
            "2",
            "--batch-size",
            "8",
            "--eval-samples",
            "16",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["report", str(out), "--markdown"])
    assert r.exit_code == 0 and "| eapu+mp |" in r.output
    run_dir = out / "eapu+mp"
    r = runner.invoke(app, ["energy", str(run_dir), "--node", "16nm"])
    assert r.exit_code == 0 and "verify" in r.output, r.output
    assert (run_dir / "energy-16nm.png").exists()
    r = runner.invoke(app, ["energy", str(run_dir), "--periphery", "0,1"])
    assert r.exit_code == 0 and "scope_crossbar" in r.output and "cell_share" in r.output, r.output
    r = runner.invoke(app, ["energy", str(run_dir), "--periphery", "-1"])
    assert r.exit_code == 2 and "--periphery" in r.output, r.output
    r = runner.invoke(app, ["retention", str(run_dir), "--hours", "0,60"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader((run_dir / "retention-rram.csv").open()))
    assert [float(x["hours"]) for x in rows] == [0.0, 60.0]
    r = runner.invoke(app, ["stats", str(run_dir)])
    assert r.exit_code == 0 and "Rup" in r.output, r.output
    r = runner.invoke(app, ["characterize", "gaussian", "--cells", "512"])
    assert r.exit_code == 0 and "SD(εcell)" in r.output
    r = runner.invoke(
        app,
        [
            "sweep",
            "denoise",
            "--method",
            "eapu",
            "--grid",
            "sd_us=1,4",
            "--print-commands",
            "--out",
            str(tmp_path / "sw"),
        ],
    )
    assert r.exit_code == 0 and r.output.count("eapu run denoise") == 2
    r = runner.invoke(app, ["retention", str(out / "software")])
    assert r.exit_code != 0  # a software run has no cells to drift
