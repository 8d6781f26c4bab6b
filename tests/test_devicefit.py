"""Tests of eapu.devices.fit and `eapu device`: a known device's pulse trains are fitted back,
the published CSV form is read, and bad files say where they are bad."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from eapu.cli import app
from eapu.devices import MeasuredDevice, get_device, interp, save_device
from eapu.devices.fit import (
    PulseDataError,
    PulseTrains,
    fit_device,
    read_pulse_trains,
    simulate_pulse_trains,
    write_pulse_trains,
)
from eapu.programming import characterize

RAMPS, PULSES = 200, 40


def _trains(seed: int = 0) -> tuple[PulseTrains, PulseTrains]:
    """SET ramps up from g_min and RESET ramps down from g_max on the paper's cell, with its
    c2c noise (30 %), d2d spread (20 %) and read noise (0.1 µS); short enough to stay off the
    window's edges."""
    dev = get_device("taox_1t1r")
    gen = torch.Generator().manual_seed(seed)
    up = simulate_pulse_trains(
        dev, np.full(RAMPS, dev.g_min_us), np.ones(PULSES + 1), generator=gen
    )
    down = simulate_pulse_trains(
        dev, np.full(RAMPS, dev.g_max_us), -np.ones(PULSES + 1), generator=gen
    )
    return up, down


def write_sample(folder: Path) -> tuple[Path, Path]:
    """The README's sample (`eapu device example`): SET.csv and RESET.csv of a known cell."""
    r = CliRunner().invoke(app, ["device", "example", str(folder)])
    assert r.exit_code == 0, r.output
    return folder / "SET.csv", folder / "RESET.csv"


def test_fit_recovers_a_known_device_within_ten_percent(tmp_path: Path) -> None:
    set_csv, reset_csv = write_sample(tmp_path)
    trains = [
        read_pulse_trains(set_csv, units="uS", polarity="set"),
        read_pulse_trains(reset_csv, units="uS", polarity="reset"),
    ]
    fit = fit_device(trains, name="fit", relaxation_sd_us=2.0, read_noise_sd_us=0.1)
    dev = fit.device
    truth = MeasuredDevice.from_device(get_device("taox_1t1r"))
    for side in ("set", "reset"):
        grid = getattr(dev, f"{side}_g_us")
        g = torch.tensor(grid, dtype=torch.float64)
        true_step = interp(g, getattr(truth, f"{side}_g_us"), getattr(truth, f"{side}_step_us"))
        true_c2c = interp(g, getattr(truth, f"{side}_g_us"), getattr(truth, f"{side}_c2c_us"))
        step = torch.tensor(getattr(dev, f"{side}_step_us"), dtype=torch.float64)
        c2c = torch.tensor(getattr(dev, f"{side}_c2c_us"), dtype=torch.float64)
        # the step-size curve, point by point
        assert torch.all((step / true_step - 1).abs() < 0.10), (side, step / true_step)
        # its cycle-to-cycle spread, over the curve
        assert float(c2c.mean() / true_c2c.mean()) == pytest.approx(1.0, abs=0.10)
        assert fit.stats[f"{side}_ramps"] == RAMPS and fit.stats[f"{side}_pulses"] == RAMPS * PULSES
    # the device-to-device spread of the curve
    assert dev.dtod_sd == pytest.approx(0.2, rel=0.10)
    # and what EaPU is derived from: SD(εcell) under the device's default scheme
    sd_true = characterize(get_device("taox_1t1r"), "write_verify", n_cells=2048).sd_us
    sd_fit = characterize(dev, "write_verify", n_cells=2048).sd_us
    assert sd_fit == pytest.approx(sd_true, rel=0.10)


def test_simulated_trains_match_the_measured_ones(tmp_path: Path) -> None:
    up, _ = _trains()
    sim = simulate_pulse_trains(
        get_device("taox_1t1r"), up.g_us[0], up.polarity, generator=torch.Generator()
    )
    assert sim.g_us.shape == up.g_us.shape
    # same physics: the mean final conductance agrees within a few standard errors
    se = up.g_us[-1].std() / np.sqrt(RAMPS)
    assert abs(sim.g_us[-1].mean() - up.g_us[-1].mean()) < 4 * np.sqrt(2) * se


def test_published_form_with_polarity_column_and_siemens(tmp_path: Path) -> None:
    """A small LTP/LTD file: 3 cycles (columns), 4 SET then 4 RESET pulses, in siemens,
    with a pulse-number column the reader skips."""
    rows = ["pulse,polarity,cycle1,cycle2,cycle3"]
    g = np.array([10e-6, 11e-6, 12e-6])
    rows.append("0,set," + ",".join(f"{v:.3e}" for v in g))
    for k in range(1, 9):
        pol = "set" if k <= 4 else "reset"
        g = g + (2e-6 if pol == "set" else -2e-6) * np.array([1.0, 1.1, 0.9])
        rows.append(f"{k},{pol}," + ",".join(f"{v:.3e}" for v in g))
    path = tmp_path / "ltp_ltd.csv"
    path.write_text("\n".join(rows) + "\n")
    t = read_pulse_trains(path, units="S")
    assert t.ramps == 3 and t.pulses == 8 and t.columns == ("cycle1", "cycle2", "cycle3")
    assert t.g_us[0, 0] == pytest.approx(10.0)
    assert list(t.polarity) == [1, 1, 1, 1, 1, -1, -1, -1, -1]
    fit = fit_device([t], name="ltp", bins=2)
    assert fit.device.set_step_us == pytest.approx((2.0, 2.0), rel=1e-3)
    assert fit.device.reset_step_us == pytest.approx((2.0, 2.0), rel=1e-3)
    assert fit.device.dtod_sd > 0  # the columns differ by ±10 %
    out = tmp_path / "ltp.toml"
    r = CliRunner().invoke(
        app, ["device", "fit", str(path), "--units", "S", "--out", str(out), "--bins", "2"]
    )
    assert r.exit_code == 0, r.output
    assert get_device(str(out)).set_step_us == pytest.approx((2.0, 2.0), rel=1e-3)


BAD = [
    ("ramp1,ramp2\n1.0,2.0\n1.5\n", "", "column 2 ('ramp2')", "1 value(s); a ramp needs"),
    ("ramp1,ramp2\n1.0,2.0\n1.5,nan\n", "", "column 2 ('ramp2')", "1 value(s); a ramp needs"),
    ("a,b\n1.0,2.0\n1.5,\n2.0,3.0\n", "row 3", "column 2 ('b')", "an empty cell inside"),
    ("a,b,c\n1.0,2.0\n1.5,2.5,3,4\n", "row 3", None, "4 fields, the header has 3"),
    ("ramp1,ramp2\n1.0,2.0\n-1.5,2.5\n", "row 3", "column 1 ('ramp1')", "negative conductance"),
    ("ramp1,ramp2\n1.0,2.0\n1.5,abc\n", "row 3", "column 2 ('ramp2')", "is not a number"),
    ("a,b\n10,20\n20,40\n30,35\n", "row 4", "column 2 ('b')", "non-monotone SET ramp"),
    ("a,b\n10,20\n5,30\n", "row 3", "column 1 ('a')", "falls overall"),
    ("a,b\n1e-9,2e-9\n2e-9,3e-9\n", "row 3", "column 2 ('b')", "look like siemens"),
]


@pytest.mark.parametrize(("text", "row", "column", "problem"), BAD)
def test_bad_files_name_file_row_and_column(
    tmp_path: Path, text: str, row: str, column: str | None, problem: str
) -> None:
    path = tmp_path / "SET.csv"
    path.write_text(text)
    with pytest.raises(PulseDataError) as e:
        read_pulse_trains(path, units="uS", polarity="set")
    msg = str(e.value)
    assert msg.startswith(str(path)) and row in msg and problem in msg, msg
    if column is not None:
        assert column in msg, msg


def test_values_in_microsiemens_read_as_siemens_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "SET.csv"
    path.write_text("a\n10\n20\n")
    with pytest.raises(PulseDataError, match=r"SET.csv: row 2, column 1 .*look like µS"):
        read_pulse_trains(path, units="S", polarity="set")
    with pytest.raises(ValueError, match="Invalid units: 'V'"):
        read_pulse_trains(path, units="V", polarity="set")


def test_cli_fit_then_device_path_everywhere(tmp_path: Path) -> None:
    set_csv, reset_csv = write_sample(tmp_path)
    out = tmp_path / "my-cell.toml"
    runner = CliRunner()
    args = ["device", "fit", str(set_csv), str(reset_csv), "--units", "uS", "--out", str(out)]
    r = runner.invoke(app, [*args, "--relaxation-sd-us", "2", "--read-noise-sd-us", "0.1"])
    assert r.exit_code == 0, r.output
    assert out.is_file() and out.with_suffix(".png").stat().st_size > 1000
    text = out.read_text()
    assert 'kind = "measured"' in text and "[fit]" in text and "relaxation_sd_us = 2.0" in text
    # every command that takes a device takes the file
    r = runner.invoke(app, ["characterize", str(out), "--cells", "512"])
    assert r.exit_code == 0, r.output
    assert "SD(εcell)" in r.output


def test_cli_bad_file_is_one_message_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "SET.csv"
    bad.write_text("a,b\n1,2\n2,\n3,4\n")
    good = tmp_path / "RESET.csv"
    good.write_text("a,b\n9,9\n8,8\n")
    r = CliRunner().invoke(
        app,
        ["device", "fit", str(bad), str(good), "--units", "uS", "--out", str(tmp_path / "x.toml")],
    )
    assert r.exit_code == 2
    assert "SET.csv: row 3, column 2 ('b'): an empty cell inside" in r.output
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_device_report_end_to_end(tmp_path: Path) -> None:
    dev = MeasuredDevice.from_device(get_device("taox_1t1r"), gate=False)
    path = tmp_path / "cell.toml"
    save_device(dev, path)
    out = tmp_path / "rep"
    r = CliRunner().invoke(
        app,
        [
            "device",
            "report",
            str(path),
            "--out",
            str(out),
            "--steps",
            "4",
            "--methods",
            "eapu+mp,mp",
            "--cells",
            "256",
            "--eval-every",
            "4",
        ],
    )
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "device_report.json").read_text())
    schemes = {c["scheme"] for c in doc["characterization"]}
    assert {"memorial", "write_verify", "two_pulse", "sign", "gaussian"} <= schemes
    th = doc["threshold"]
    assert th["threshold"] == pytest.approx(th["sd_us"] * th["rwg_per_us"])
    assert [row["method"] for row in doc["rows"]] == ["eapu+mp", "mp"]
    page = (out / "report.html").read_text()
    assert "EaPU + MP reaches SSIM" in page and "data:image/png;base64" in page
    assert json.loads((out / "compare" / "eapu+mp" / "config.json").read_text())["device"] == str(
        out / "device.toml"
    )


def test_ramps_of_different_lengths_are_read_and_fitted_like_the_ramps_they_hold(
    tmp_path: Path,
) -> None:
    """The common published form: ramps of unequal length, trailing cells empty or nan. The
    fit uses each ramp's pulses and no more: cutting the long ramps to the short ones' length
    by hand gives the same tables."""
    dev = get_device("taox_1t1r")
    gen = torch.Generator().manual_seed(0)
    sets = simulate_pulse_trains(dev, np.full(6, 10.0), np.ones(61, dtype=np.int64), generator=gen)
    resets = simulate_pulse_trains(
        dev, np.full(6, 150.0), -np.ones(61, dtype=np.int64), generator=gen
    )
    ragged = sets.g_us.copy()
    ragged[41:, 3:] = np.nan  # ramps 4-6 stop after 40 pulses
    path = tmp_path / "SET.csv"
    lines = ["Pulse #,r1,r2,r3,r4,r5,r6"]  # an index column under a name of its own
    for k, row in enumerate(ragged):
        cells = ["" if math.isnan(v) else f"{v:.8g}" for v in row]
        while cells and cells[-1] == "":  # trailing cells left out, not even commas
            cells.pop()
        lines.append(",".join([str(k), *cells]))
    path.write_text("\n".join(lines) + "\n")
    read = read_pulse_trains(path, units="uS", polarity="set")
    assert read.columns == ("r1", "r2", "r3", "r4", "r5", "r6")
    assert int(np.isfinite(read.g_us).sum()) == 3 * 61 + 3 * 41
    reset_path = tmp_path / "RESET.csv"
    write_pulse_trains(reset_path, resets)
    fit = fit_device([read, read_pulse_trains(reset_path, units="uS", polarity="reset")], name="c")
    x, d, _ = read.steps(1)
    assert x.size == 3 * 60 + 3 * 40 and np.isfinite(d).all()
    assert fit.device.set_step_us[0] > fit.device.set_step_us[-1] > 0  # the soft bound, fitted
    assert 0.3 < fit.stats["ramp_end_sd_ratio"] < 3.0  # whole ramps reproduced, roughly


def test_siemens_read_as_millisiemens_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "SET.csv"
    path.write_text("a,b\n1.6e-4,1.7e-4\n2.0e-4,2.2e-4\n2.5e-4,2.6e-4\n")  # siemens
    with pytest.raises(PulseDataError, match="look like siemens: pass units S"):
        read_pulse_trains(path, units="mS", polarity="set")
    assert read_pulse_trains(path, units="S", polarity="set").g_us.max() == pytest.approx(260)


def test_a_window_narrower_than_the_tolerance_is_refused() -> None:
    g = np.array([[0.10, 0.11], [0.15, 0.17], [0.20, 0.21]])
    sets = PulseTrains(g, np.ones(3, dtype=np.int64), "s", ("a", "b"))
    resets = PulseTrains(g[::-1].copy(), -np.ones(3, dtype=np.int64), "r", ("a", "b"))
    with pytest.raises(ValueError, match="Invalid tolerance_us: 1 µS for a measured window"):
        fit_device([sets, resets], name="tiny")


def test_a_narrow_fitted_window_takes_the_largest_rwg_it_holds(tmp_path: Path) -> None:
    """1/80 needs 160 µS with a reference column; a 50 µS cell gets Rwg 2/50 (its whole
    window), said in the run's output; an Rwg it cannot hold is refused before anything is
    characterised, and no partial report directory is left."""
    from eapu.experiments import RunConfig, default_rwg
    from eapu.experiments.device_report import device_report

    dev = MeasuredDevice.from_device(get_device("taox_1t1r", g_min_us=10.0, g_max_us=60.0))
    path = tmp_path / "narrow.toml"
    save_device(dev, path)
    rwg, why = default_rwg(str(path))
    assert rwg == pytest.approx(2 / 50) and "largest conductance range" in why
    assert RunConfig(task="denoise", device=str(path)).resolved().rwg_per_us == rwg
    assert RunConfig(task="denoise", device="taox_1t1r").resolved().rwg_per_us == 1 / 80
    out = tmp_path / "report"
    with pytest.raises(ValueError, match="Invalid rwg_per_us"):
        device_report(dev, out, rwg_per_us=1 / 80)
    assert not out.exists()
