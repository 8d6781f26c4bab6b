"""Tests of eapu.narrow_range: the paper's Rwg 1/40 (EaPU) vs 1/4000 (BP) comparison."""

from __future__ import annotations

import pytest

from eapu.narrow_range import PAPER, narrow_range_comparison


def test_bp_at_1_4000_reads_100x_the_conductance_of_eapu_at_1_40() -> None:
    res = narrow_range_comparison(steps=2, eval_samples=8)
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


def test_bad_rwg_is_refused() -> None:
    with pytest.raises(ValueError, match="Invalid bp_rwg_per_us: 0"):
        narrow_range_comparison(bp_rwg_per_us=0, steps=1)
    with pytest.raises(ValueError, match="Invalid task: 'classify'"):
        narrow_range_comparison(task="classify", steps=1)


def test_cli_refuses_a_bad_rwg_as_a_usage_error() -> None:
    from typer.testing import CliRunner

    from eapu.cli import app

    r = CliRunner().invoke(app, ["narrow-range", "--bp-rwg", "0", "--steps", "1"])
    assert r.exit_code == 2 and "bp_rwg_per_us" in r.output, r.output
