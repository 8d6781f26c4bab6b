"""Sweeps: grid expansion, directory names, skip and resume, sweep.csv, plots, commands."""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path

import pytest
import torch

from eapu.experiments import RunConfig, sweep
from eapu.experiments.sweep import (
    collect,
    expand_grid,
    plan,
    point_name,
    print_commands,
    run_sweep,
)
from eapu.report.sweep import plot_sweep


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: threads only add overhead
    yield
    torch.set_num_threads(n)


FAST = {"method": "eapu", "steps": 2, "eval_every": 2, "batch_size": 8, "eval_samples": 16}


def test_expand_grid_is_the_cartesian_product_in_grid_order() -> None:
    pts = expand_grid({"method": "eapu"}, {"sd_us": [1, 2], "threshold_us": [0.5, 1, 2]})
    assert len(pts) == 6
    assert pts[0] == {"method": "eapu", "sd_us": 1, "threshold_us": 0.5}
    assert pts[1] == {"method": "eapu", "sd_us": 1, "threshold_us": 1}
    assert [p["sd_us"] for p in pts] == [1, 1, 1, 2, 2, 2]
    assert expand_grid({"lr": 0.1}, {}) == [{"lr": 0.1}]


@pytest.mark.parametrize(
    ("base", "grid", "msg"),
    [
        ({}, {"sdus": [1]}, "unknown grid key"),
        ({"bogus": 1}, {}, "unknown base key"),
        ({}, {"seed": [0, 1]}, "unknown grid key"),
        ({}, {"sd_us": []}, "empty"),
        ({}, {"sd_us": 2.0}, "must be a list"),
        ({}, {"sd_us": [2, 2.0]}, "repeats a value"),
    ],
)
def test_bad_grids_raise(base: dict, grid: dict, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        expand_grid(base, grid)


def test_point_names_are_stable_and_readable() -> None:
    assert point_name({"sd_us": 2.0, "threshold_us": 1}) == "sd_us=2_threshold_us=1"
    assert point_name({"rwg_per_us": 1 / 80}) == "rwg_per_us=0.0125"
    assert point_name({"threshold_us": None, "method": "eapu+mp"}) == (
        "threshold_us=none_method=eapu+mp"
    )
    assert point_name({}) == "base"
    pts = plan("denoise", FAST, {"sd_us": [1, 2]}, "out", seeds=[0, 3])
    assert [str(p.run_dir) for p in pts] == [
        "out/sd_us=1/seed=0",
        "out/sd_us=1/seed=3",
        "out/sd_us=2/seed=0",
        "out/sd_us=2/seed=3",
    ]


def test_plan_validates_every_point_before_running() -> None:
    with pytest.raises(ValueError, match="Invalid sd_us"):
        plan("denoise", FAST, {"sd_us": [1, -1]}, "out")
    with pytest.raises(ValueError, match="device-level method"):
        plan("denoise", FAST, {"stuck_off": [0.0, 0.1]}, "out")  # weight-level method


def test_fault_keys_are_run_config_fields() -> None:
    (p,) = plan("denoise", {**FAST, "method": "eapu+mp"}, {"stuck_off": [0.1]}, "out")
    cfg = p.config("denoise")
    assert (cfg.stuck_off, cfg.stuck_on) == (0.1, 0.0)
    assert p.name == "stuck_off=0.1"


def test_sweep_runs_once_then_skips_finished_points(tmp_path: Path, monkeypatch) -> None:
    grid = {"sd_us": [1.0, 4.0]}
    out = tmp_path / "sw"
    res = run_sweep("denoise", FAST, grid, out, workers=2, seeds=[0])  # a spawned pool
    assert sorted(res.trained) == ["sd_us=1/seed=0", "sd_us=4/seed=0"] and not res.failed
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json")}
    assert len(mtimes) == 2

    calls: list[str] = []
    monkeypatch.setattr(sweep, "_run_point", lambda *a: calls.append(a[3]) or {})
    res2 = run_sweep("denoise", FAST, grid, out, workers=0, seeds=[0])
    assert calls == [] and res2.trained == [] and len(res2.skipped) == 2
    assert {p: p.stat().st_mtime_ns for p in out.rglob("metrics.json")} == mtimes

    # sweep.csv: one row per point and seed, the grid values then the run's metrics.
    with open(out / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["point"], r["seed"], float(r["sd_us"])) for r in rows] == [
        ("sd_us=1", "0", 1.0),
        ("sd_us=4", "0", 4.0),
    ]
    for r in rows:
        m = json.loads((Path(r["run_dir"]) / "metrics.json").read_text())
        assert float(r["ssim"]) == pytest.approx(m["ssim"])
        assert float(r["rup"]) == pytest.approx(m["rup"])
    assert res.figures and all(p.exists() for p in res.figures)
    assert not list(out.glob(".sweep.csv.*"))  # no temporaries left behind

    # A run of another config in a point's directory is refused, not silently reused.
    with pytest.raises(ValueError, match="another config"):
        run_sweep("denoise", {**FAST, "lr": 0.5}, grid, out, workers=0)


def test_sweep_resumes_an_interrupted_point_and_plots_lines(tmp_path: Path) -> None:
    from eapu.experiments import run

    out = tmp_path / "sw"
    grid = {"method": ["eapu", "noisy-bp"], "sd_us": [1.0, 2.0]}
    base = {**FAST, "steps": 4}
    cfg = RunConfig(task="denoise", seed=0, **{**base, "sd_us": 1.0})
    pdir = out / "method=eapu_sd_us=1" / "seed=0"

    class Stop(Exception):
        pass

    def stop(step: int, steps: int, row: dict) -> None:
        if step == 3:
            raise Stop

    with pytest.raises(Stop):  # a killed run: a checkpoint at step 2 of 4, no metrics.json
        run(cfg, pdir, progress=stop)
    assert (pdir / "checkpoint.pt").exists() and not (pdir / "metrics.json").exists()
    res = run_sweep("denoise", base, grid, out, workers=0, seeds=[0])
    assert len(res.trained) == 4 and "method=eapu_sd_us=1/seed=0" in res.trained
    want = run(cfg, tmp_path / "uninterrupted")
    got = json.loads((pdir / "metrics.json").read_text())
    assert got["loss"] == pytest.approx(want["loss"]) and got["rup"] == want["rup"]
    assert [p.name for p in res.figures] == ["sweep_ssim_vs_sd_us.png"]  # a line per method
    again = collect(out)
    assert len(again.rows) == 4 and again.csv_path.read_text() == res.csv_path.read_text()


def test_heat_map_for_two_numeric_keys(tmp_path: Path) -> None:
    rows = [
        {"point": f"{a}_{b}", "seed": s, "sd_us": a, "threshold_us": b, "ssim": a * b + s}
        for a in (1, 2)
        for b in (0.5, 1.0, 2.0)
        for s in (0, 1)
    ]
    paths = plot_sweep(rows, ["sd_us", "threshold_us"], tmp_path, metrics=["ssim"])
    assert [p.name for p in paths] == ["sweep_ssim_sd_us_x_threshold_us.png"]


def _parse(line: str) -> tuple[str, dict[str, str]]:
    args = shlex.split(line)
    assert args[:2] == ["eapu", "run"]
    task, rest = args[2], args[3:]
    assert len(rest) % 2 == 0 and all(a.startswith("--") for a in rest[::2])
    return task, dict(zip(rest[::2], rest[1::2], strict=True))


def test_print_commands_parse_back_to_the_plan(tmp_path: Path) -> None:
    base = {**FAST, "eval_samples": 512, "device": "taox_1t1r"}  # defaults: left out
    grid = {"sd_us": [1.0, 2.5], "rwg_per_us": [1 / 80, 1 / 20]}
    lines = list(print_commands("denoise", base, grid, tmp_path / "o w", seeds=[0, 1]))
    pts = plan("denoise", base, grid, tmp_path / "o w", seeds=[0, 1])
    assert len(lines) == len(pts) == 8
    for line, p in zip(lines, pts, strict=True):
        task, flags = _parse(line)
        assert task == "denoise"
        assert flags["--out"] == str(p.run_dir)
        assert int(flags["--seed"]) == p.seed and flags["--method"] == "eapu"
        assert float(flags["--sd-us"]) == p.values["sd_us"]
        assert float(flags["--rwg"]) == p.values["rwg_per_us"]  # repr round-trips floats
        assert int(flags["--steps"]) == FAST["steps"]
        assert int(flags["--batch-size"]) == FAST["batch_size"]
        assert "--eval-samples" not in flags and "--device" not in flags


def test_print_commands_parse_with_the_real_cli_into_the_same_config(tmp_path: Path) -> None:
    """Every option a sweep may set has a flag of ``eapu run`` (one table builds both), and
    the printed line parses back, through the CLI's own parser, into the point's config."""
    import typer

    from eapu.cli import app
    from eapu.experiments import FLAGS

    run_cmd = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    base = {**FAST, "optimizer": "momentum", "device": "ideal", "stuck_off": 0.01}
    grid = {"threshold_us": [0.5, 1.0], "method": ["eapu+mp", "mp"]}
    pts = plan("denoise", base, grid, tmp_path, seeds=[3])
    lines = list(print_commands("denoise", base, grid, tmp_path, seeds=[3]))
    for line, p in zip(lines, pts, strict=True):
        ctx = run_cmd.make_context("run", shlex.split(line)[2:])
        given = {f.field: ctx.params[f.field] for f in FLAGS if ctx.params[f.field] is not None}
        assert RunConfig(task="denoise", **given) == p.config("denoise")
    assert {f.field for f in FLAGS} <= set(run_cmd.make_context("run", ["denoise"]).params)
