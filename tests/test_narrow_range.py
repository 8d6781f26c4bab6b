"""Tests of eapu.narrow_range: the paper's Rwg 1/40 (EaPU) vs 1/4000 (BP) comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import eapu.experiments.runner as runner
from eapu.experiments.narrow_range import PAPER, narrow_range_comparison
from eapu.files import read_json
from eapu.rundir import is_finished

FAST: dict[str, Any] = {"steps": 2, "eval_samples": 8}


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("narrow")
    return narrow_range_comparison(out_dir=out, **FAST), out


def test_bp_at_1_4000_reads_100x_the_conductance_of_eapu_at_1_40(
    compared: tuple[dict[str, Any], Path],
) -> None:
    res = compared[0]
    eapu, bp = res["rows"]
    assert (eapu["method"], bp["method"]) == ("eapu", "bp")
    assert eapu["g_range_us"] == pytest.approx([5.0, 85.0])
    assert bp["g_range_us"] == pytest.approx([5.0, 8005.0])
    # Gmax = w_max / Rwg: 40 µS against 4000 µS above the 5 µS floor
    above = (bp["g_mean_us"] - 5.0) / (eapu["g_mean_us"] - 5.0)
    assert above == pytest.approx(100.0, rel=0.1)
    cells = bp["inference_j"]["vmm_read"] / eapu["inference_j"]["vmm_read"]
    assert cells == pytest.approx((bp["g_mean_us"]) / eapu["g_mean_us"], rel=1e-6)
    assert 1.0 < res["ratio"] <= res["ratio_analog"] < cells
    assert res["paper"]["ratio"] == pytest.approx(35.51, abs=0.01) == PAPER["ratio"]
    f = res["periphery_factor_for_paper_ratio"]
    assert f is not None and f > 0
    by = {row["factor"]: row["ratio_analog"] for row in res["ratio_analog_by_periphery"]}
    assert by[1.0] == pytest.approx(res["ratio_analog"])
    assert by[f] == pytest.approx(PAPER["ratio"], rel=1e-9)  # the fitted factor gives the paper's
    assert by[0.0] == pytest.approx(cells, rel=1e-6)  # no periphery: the cells' ratio alone
    assert eapu["clipped"] == bp["clipped"] == 0
    # the read integration time at which the crossbar-scope ratio is the paper's
    import dataclasses

    from eapu.energy import Counts, energy, get_node

    t = res["t_read_s_for_paper_ratio"]
    assert t is not None and t > get_node("180nm").t_read_s
    node = dataclasses.replace(get_node("180nm"), t_read_s=t)
    e = [
        energy(
            Counts(**read_json(Path(r["run_dir"]) / "energy.json")["inference_per_sample"]), node
        )
        for r in res["rows"]
    ]
    assert e[1].scope("crossbar") / e[0].scope("crossbar") == pytest.approx(PAPER["ratio"])
    fitted = res["fitted_node"]
    assert fitted["node"] == "180nm-fit" and fitted["ratio_crossbar"] > res["ratio_analog"]


def test_the_two_runs_are_run_directories_that_a_rerun_does_not_train_again(
    compared: tuple[dict[str, Any], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    res, out = compared
    for row, method, rwg in (("eapu", "eapu+gaussian", 1 / 40), ("bp", "bp+gaussian", 1 / 4000)):
        d = out / row
        assert is_finished(d) and (d / "energy.json").exists() and (d / "checkpoint.pt").exists()
        cfg = read_json(d / "config.json")
        assert (cfg["method"], cfg["rwg_per_us"], cfg["steps"]) == (method, rwg, 2)
        assert cfg["device"] == str((d / "device.toml").resolve())
        metrics, acc = read_json(d / "metrics.json"), read_json(d / "energy.json")
        r = next(x for x in res["rows"] if x["method"] == row)
        assert (r["ssim"], r["g_mean_us"]) == (metrics["ssim"], acc["g_mean_us"])

    def no_training(*args: Any) -> runner.StepFn:
        def step_fn(*a: Any) -> float:
            raise AssertionError("a finished run was trained again")

        return step_fn

    monkeypatch.setattr(runner, "local_step", no_training)
    again = narrow_range_comparison(out_dir=out, **FAST)
    assert again["rows"] == res["rows"] and again["ratio"] == res["ratio"]
    # the same directory with another device is refused before anything is written
    before = (out / "eapu" / "device.toml").read_text()
    with pytest.raises(ValueError, match=r"Invalid out_dir: .* another device"):
        narrow_range_comparison(out_dir=out, sd_us=3.0, **FAST)
    assert (out / "eapu" / "device.toml").read_text() == before


def test_bad_rwg_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Invalid bp_rwg_per_us: 0"):
        narrow_range_comparison(bp_rwg_per_us=0, steps=1, out_dir=tmp_path)
    with pytest.raises(ValueError, match="Invalid task: 'classify'"):
        narrow_range_comparison(task="classify", steps=1, out_dir=tmp_path)
    with pytest.raises(ValueError, match="Invalid w_max: 2"):
        narrow_range_comparison(w_max=2.0, steps=1, out_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_cli_refuses_a_bad_rwg_as_a_usage_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from eapu.cli import app

    args = ["narrow-range", "--bp-rwg", "0", "--steps", "1", "--runs", str(tmp_path)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and "bp_rwg_per_us" in r.output, r.output
