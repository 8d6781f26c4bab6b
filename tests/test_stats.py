"""Update statistics: per-layer written fraction, Rup, Nup = Ncell × Rup."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from eapu.experiments import RunConfig, run
from eapu.experiments.stats import (
    load_update_stats,
    nup_estimate,
    step_to_step_pulses,
    write_update_stats,
)
from eapu.ledger import FIELDS
from eapu.optim import AdamEaPU

FAST = {"steps": 4, "eval_every": 2, "batch_size": 8, "eval_samples": 16}


@pytest.fixture(scope="module")
def mp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    run(RunConfig(task="denoise", method="eapu+mp", **FAST), out)
    return out


def test_stats_of_a_run_directory(mp_run: Path) -> None:
    paths = write_update_stats(mp_run)
    assert all(p.exists() and p.stat().st_size > 0 for p in paths.values())
    st = load_update_stats(mp_run)
    assert st.names == ["encoder.weight", "decoder1.weight", "decoder2.weight"]
    with open(paths["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == FAST["steps"] * len(st.names)
    assert list(rows[0]) == ["step", "layer", "cells", *FIELDS, "written_fraction"]
    for r in rows:
        assert float(r["written_fraction"]) == pytest.approx(int(r["written"]) / int(r["cells"]))
        assert 0 <= float(r["written_fraction"]) <= 1
    # Rup per step is the cell-weighted mean of the layers' written fractions.
    frac = st.written_fraction()
    w = torch.tensor(st.cells, dtype=torch.float64)
    torch.testing.assert_close(st.rup(), (frac * w).sum(1) / w.sum())
    metrics = json.loads((mp_run / "metrics.json").read_text())
    summary = json.loads(paths["json"].read_text())
    assert summary["rup_mean"] == pytest.approx(metrics["rup"])
    assert summary["nup_measured"] == pytest.approx(metrics["nup"])
    assert summary["scheme"] == "memorial" and summary["nup_uses"] == "ncell_step"
    assert summary["nup"] == pytest.approx(summary["ncell_step"] * summary["rup_mean"])
    with open(paths["rup_csv"]) as f:
        rup_rows = list(csv.DictReader(f))
    assert [float(r["rup"]) for r in rup_rows] == pytest.approx(st.rup().tolist())


def test_stats_of_a_ttv2_run(tmp_path: Path) -> None:
    """The algorithms keep their ledger under their own checkpoint key: stats reads it."""
    out = tmp_path / "ttv2"
    metrics = run(RunConfig(task="denoise", method="ttv2", **FAST), out)
    paths = write_update_stats(out)
    st = load_update_stats(out)
    assert st.table.shape[0] == FAST["steps"]
    summary = json.loads(paths["json"].read_text())
    assert summary["rup_mean"] == pytest.approx(metrics["rup"])
    assert summary["nup_measured"] == pytest.approx(metrics["nup"])
    assert summary["scheme"] == "sign"


def test_stats_of_an_optimizer_name_the_layers(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    opt = AdamEaPU(model.parameters(), lr=1e-3)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 8)).pow(2).mean().backward()
        opt.step()
    st = load_update_stats(opt, model=model)
    assert st.names == ["0.weight", "2.weight"] and st.table.shape == (3, 2, len(FIELDS))
    torch.testing.assert_close(st.written_fraction(), opt.ledger.rup_by_parameter())
    with pytest.raises(ValueError, match="out_dir is required"):
        write_update_stats(opt)
    paths = write_update_stats(opt, tmp_path, model=model, scheme="write_verify")
    assert json.loads(paths["json"].read_text())["scheme"] == "write_verify"


def test_memorial_step_to_step_is_cheaper_than_its_binary_search() -> None:
    c = step_to_step_pulses("taox_1t1r", "memorial", n_cells=512, rounds=3)
    assert 0 < c.ncell_step < c.ncell_random
    assert nup_estimate(0.01, c) == pytest.approx(0.01 * c.ncell_step)
    assert nup_estimate(0.01, c, mode="random") == pytest.approx(0.01 * c.ncell_random)
    # One pulse per write for the sign scheme, whatever the start.
    s = step_to_step_pulses("taox_1t1r", "sign", n_cells=256, rounds=2)
    assert s.ncell_step == s.ncell_random == 1.0


def test_errors_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_update_stats(tmp_path / "nothing")
    sw = tmp_path / "sw"
    run(RunConfig(task="denoise", method="software", **FAST), sw)
    with pytest.raises(ValueError, match="no ledger"):
        load_update_stats(sw)
    with pytest.raises(ValueError, match="Invalid delta_us"):
        step_to_step_pulses("taox_1t1r", delta_us=0)
    with pytest.raises(ValueError, match="Invalid mode"):
        nup_estimate(0.1, step_to_step_pulses("taox_1t1r", "sign", n_cells=8, rounds=1), mode="x")
