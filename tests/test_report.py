"""Reports of run and comparison directories: self-contained HTML, valid PNGs, tolerance."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from eapu.formatting import format_value
from eapu.report import (
    plot_compare,
    plot_history,
    plot_samples,
    read_history,
    write_compare_report,
    write_run_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


def _no_temp_files(d: Path) -> bool:
    return not [p for p in d.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


def _write_history(path: Path, cols: list[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, restval="")
        w.writeheader()
        w.writerows(rows)


def _make_run(
    d: Path,
    *,
    task: str = "denoise",
    method: str = "eapu+mp",
    steps: int = 60,
    every: int = 20,
    samples: str | None = "denoise",
    placement: bool = True,
    metrics: dict[str, Any] | None = None,
    ledger: bool = True,
) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(
        json.dumps(
            {
                "task": task,
                "method": method,
                "device": "taox_1t1r",
                "seed": 0,
                "lr": 0.001,
                "data_dir": None,
            }
        )
    )
    classify = task == "classify"
    final = (
        metrics
        if metrics is not None
        else (
            {
                "accuracy": 0.9123,
                "ssim": None,
                "loss": 0.25,
                "rup": 0.0612,
                "nup": 0.4049,
                "pulses": 12345,
                "cells": 396,
                "steps": steps,
            }
            if classify
            else {
                "ssim": 0.85123,
                "psnr": 19.234,
                "loss": 0.0104,
                "accuracy": None,
                "rup": 0.0612,
                "nup": 0.4049,
                "ncell": 6.1,
                "pulses": 12345,
                "cells": 162,
                "steps": steps,
                "wall_s": 30.2,
            }
        )
    )
    (d / "metrics.json").write_text(json.dumps(final))
    evals = ["accuracy"] if classify else ["ssim", "psnr", "loss_test", "ssim_baseline"]
    rng = np.random.default_rng(0)
    rows = []
    for s in range(1, steps + 1):
        row: dict[str, Any] = {"step": s, "loss": float(np.exp(-s / 20) + 0.01 * rng.random())}
        if ledger:
            row["rup"] = 0.0 if s % 7 == 0 else float(0.05 + 0.02 * rng.random())
            row["nup"] = 0.0 if s % 7 == 0 else float(0.3 + 0.2 * rng.random())
        if s % every == 0:
            for k in evals:
                row[k] = float(0.5 + 0.4 * s / steps) * (30 if k == "psnr" else 1)
            if "ssim_baseline" in row:  # the noisy input's SSIM: constant
                row["ssim_baseline"] = 0.6
        rows.append(row)
    _write_history(d / "history.csv", ["step", "loss", "rup", "nup", *evals], rows)
    if samples is not None:
        n, c = (4, 1) if samples == "denoise" else (3, 3)
        hw_in = 16 if samples == "denoise" else 8
        targets = rng.random((n, c, 16, 16))
        inputs = rng.random((n, c, hw_in, hw_in))
        outputs = np.clip(targets + 0.05 * rng.standard_normal(targets.shape), 0, 1)
        np.savez(d / "samples.npz", inputs=inputs, outputs=outputs, targets=targets)
    if placement:
        (d / "placement.txt").write_text("array 0 (64x64): <conv1> 135 + 27 ref\n")
    return d


def _html(path: Path) -> str:
    assert path.is_file()
    return path.read_text(encoding="utf-8")


def _assert_self_contained(text: str) -> None:
    assert "http://" not in text and "https://" not in text
    assert not re.search(r"""(src|href)=["'](//|[a-z]+:(?!image/png;base64))""", text)


def test_run_report_denoise(tmp_path: Path) -> None:
    d = _make_run(tmp_path / "denoise-eapu+mp")
    out = write_run_report(d)
    assert out == d / "report.html"
    text = _html(out)
    _assert_self_contained(text)
    assert text.count("data:image/png;base64,") == 2
    for value in ("0.851", "19.2", "0.0612", "0.405", "12345", "taox_1t1r", "eapu+mp"):
        assert value in text, value
    assert "<pre>array 0 (64x64): &lt;conv1&gt; 135 + 27 ref</pre>" in text
    assert _is_png(d / "history.png") and _is_png(d / "samples.png")
    assert _no_temp_files(d)


def test_run_report_super_resolution_samples(tmp_path: Path) -> None:
    d = _make_run(tmp_path / "sr2", task="sr2", method="wu", samples="sr", placement=False)
    text = _html(write_run_report(d))
    assert text.count("data:image/png;base64,") == 2
    assert "<pre>" not in text
    assert _is_png(d / "samples.png")


def test_run_report_classification_without_optional_files(tmp_path: Path) -> None:
    d = _make_run(tmp_path / "cls", task="classify", samples=None, placement=False)
    text = _html(write_run_report(d))
    _assert_self_contained(text)
    assert text.count("data:image/png;base64,") == 1  # history only
    assert "0.912" in text and "Samples" not in text
    assert _is_png(d / "history.png") and not (d / "samples.png").exists()


def test_run_report_only_metrics(tmp_path: Path) -> None:
    d = tmp_path / "bare"
    d.mkdir()
    (d / "metrics.json").write_text(json.dumps({"accuracy": 0.5, "note": "<b>x</b>"}))
    text = _html(write_run_report(d))
    assert "0.5" in text and "&lt;b&gt;x&lt;/b&gt;" in text and "<b>x</b>" not in text
    assert "data:image/png" not in text


def test_run_report_empty_history(tmp_path: Path) -> None:
    d = _make_run(tmp_path / "empty", samples=None, placement=False)
    _write_history(d / "history.csv", ["step", "loss", "rup", "nup"], [])
    text = _html(write_run_report(d))
    assert "no rows" in text and not (d / "history.png").exists()


def test_malformed_metrics_json_names_the_file(tmp_path: Path) -> None:
    d = _make_run(tmp_path / "bad", samples=None)
    (d / "metrics.json").write_text('{"ssim": 0.8,')
    with pytest.raises(ValueError, match=r"metrics\.json"):
        write_run_report(d)
    assert not (d / "report.html").exists()


def test_json_that_is_not_an_object_names_the_file(tmp_path: Path) -> None:
    d = _make_run(tmp_path / "list", samples=None)
    (d / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"config\.json"):
        write_run_report(d)


def test_missing_run_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_run_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"metrics\.json"):
        write_run_report(tmp_path / "empty")


def _make_compare(d: Path) -> Path:
    d.mkdir()
    methods = ["software", "eapu+mp", "wu", "exsitu"]
    rows = [
        {"method": "software", "ssim": 0.901, "psnr": 21.04, "loss": 0.008, "ssim_baseline": 0.6},
        {
            "method": "eapu+mp",
            "ssim": 0.85123,
            "psnr": 19.234,
            "rup": 0.0612,
            "nup": 0.4049,
            "pulses": 12345,
            "energy_uj": 1.23456,
        },
        {"method": "wu", "ssim": 0.6, "psnr": 15.0, "rup": 0.99, "nup": 66.2, "pulses": 987654},
        {"method": "exsitu", "ssim": 0.4, "psnr": 12.0, "rup": 0.0, "nup": 0.0, "pulses": 500},
    ]
    (d / "compare.json").write_text(
        json.dumps({"task": "denoise", "methods": methods, "rows": rows})
    )
    _make_run(d / "software", method="software", ledger=False, samples=None, placement=False)
    _make_run(d / "eapu+mp", samples=None)
    _make_run(d / "wu", method="wu", samples=None)
    # exsitu: a run directory without history (programmed once, never trained)
    (d / "exsitu").mkdir()
    (d / "exsitu" / "metrics.json").write_text(json.dumps(rows[3]))
    return d


def test_compare_report(tmp_path: Path) -> None:
    d = _make_compare(tmp_path / "cmp")
    (d / "wu" / "report.html").write_text("kept")  # an existing report is not rewritten
    text = _html(write_compare_report(d))
    _assert_self_contained(text)
    assert text.count("data:image/png;base64,") == 1
    assert _is_png(d / "compare.png")
    for value in ("0.901", "0.851", "19.2", "0.405", "66.2", "12345", "987654", "1.23"):
        assert value in text, value
    assert "–" in text  # software has no Nup
    for m in ("software", "eapu+mp", "wu", "exsitu"):
        assert f'href="{m}/report.html"' in text
        assert (d / m / "report.html").is_file()
    assert _is_png(d / "software" / "history.png")  # a history without Rup/Nup columns
    assert (d / "wu" / "report.html").read_text() == "kept"
    for sub in (d, *(p for p in d.iterdir() if p.is_dir())):
        assert _no_temp_files(sub)


def test_compare_report_missing_method_dir_and_row(tmp_path: Path) -> None:
    d = tmp_path / "cmp"
    d.mkdir()
    (d / "compare.json").write_text(
        json.dumps(
            {
                "task": "classify",
                "methods": ["eapu", "tp"],
                "rows": [{"method": "eapu", "accuracy": 0.8, "nup": 0.0}],
            }
        )
    )
    text = _html(write_compare_report(d))
    assert "no run directory" in text and "0.8" in text and "tp" in text
    assert _is_png(d / "compare.png")


def test_malformed_compare_json_names_the_file(tmp_path: Path) -> None:
    d = tmp_path / "cmp"
    d.mkdir()
    (d / "compare.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"compare\.json"):
        write_compare_report(d)
    with pytest.raises(FileNotFoundError):
        write_compare_report(tmp_path)


def test_plot_helpers_return_the_png_they_wrote(tmp_path: Path) -> None:
    d = _make_run(tmp_path / "run", samples="sr")
    assert plot_history(d / "history.csv", tmp_path / "h.png") == tmp_path / "h.png"
    assert plot_samples(d / "samples.npz", tmp_path / "s.png") == tmp_path / "s.png"
    rows = [{"method": "a", "accuracy": 0.9, "nup": 0.0}, {"method": "b", "accuracy": 0.7}]
    hist = {
        "a": {"step": np.array([1.0, 2.0]), "accuracy": np.array([np.nan, 0.9])},
        "b": {"step": np.array([], float), "accuracy": np.array([], float)},
    }
    assert plot_compare(rows, hist, tmp_path / "c.png") == tmp_path / "c.png"
    for name in ("h.png", "s.png", "c.png"):
        assert _is_png(tmp_path / name)
    assert _no_temp_files(tmp_path / "run")


def test_read_history_empty_cells_are_nan(tmp_path: Path) -> None:
    d = _make_run(tmp_path / "run", samples=None, steps=10, every=5)
    cols = read_history(d / "history.csv")
    assert cols["step"].tolist() == list(range(1, 11))
    assert np.isfinite(cols["ssim"]).sum() == 2
    (d / "history.csv").write_text("loss,rup\n0.1,0.2\n")
    with pytest.raises(ValueError, match="step"):
        read_history(d / "history.csv")


def test_malformed_samples_names_the_file(tmp_path: Path) -> None:
    d = _make_run(tmp_path / "run", samples=None)
    (d / "samples.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"samples\.npz"):
        write_run_report(d)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.851234, "0.851"),
        (19.234, "19.2"),
        (0.0612, "0.0612"),
        (12345, "12345"),
        (12345.6, "1.23e+04"),
        (1.5e-5, "1.50e-05"),
        (0.0, "0"),
        (None, "–"),
        (float("nan"), "–"),
        ("", "–"),
        ("eapu+mp", "eapu+mp"),
        (True, "yes"),
        ({"0.003": 0.76629, "0.01": 0.77004}, "0.003: 0.766 / 0.01: 0.77"),
        ([0.1234, 2], "0.123, 2"),
    ],
)
def test_format_value(value: Any, text: str) -> None:
    assert format_value(value) == text
