"""Figures and a self-contained HTML page for a run directory or a comparison directory.

>>> from eapu.report import write_run_report, write_compare_report
>>> write_run_report("runs/denoise-eapu+mp")        # doctest: +SKIP
PosixPath('runs/denoise-eapu+mp/report.html')
>>> write_compare_report("runs/denoise-compare")     # doctest: +SKIP
PosixPath('runs/denoise-compare/report.html')

A run directory holds ``config.json``, ``metrics.json``, ``history.csv`` and, optionally,
``samples.npz`` and ``placement.txt`` (see :mod:`eapu.tasks`). A comparison directory holds
``compare.json`` and one run directory per method. The pages embed their PNGs as base64 and
carry their CSS inline, so a report is one file that opens anywhere without a network.

Figures use matplotlib's object API (``Figure`` + ``FigureCanvasAgg``): nothing global (the
pyplot backend, its figure registry) is touched. Every file is written atomically.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from . import validate
from .files import atomic_write, read_json, save_figure
from .formatting import format_value

__all__ = [
    "html_image",
    "html_page",
    "html_table",
    "plot_compare",
    "plot_energy",
    "plot_history",
    "plot_samples",
    "read_history",
    "read_samples",
    "write_compare_report",
    "write_run_report",
]

History = Mapping[str, np.ndarray]

#: Columns every history has; the others are evaluation columns (empty between evaluations).
_BASE_COLUMNS = ("step", "loss", "rup", "nup")
#: The metric a comparison ranks by: the first one present.
_MAIN_METRICS = ("ssim", "accuracy", "psnr")
#: Metrics listed first (in this order) in tables; the rest follow in file order.
_PREFERRED = (
    "ssim",
    "psnr",
    "accuracy",
    "loss",
    "loss_test",
    "rup",
    "nup",
    "ncell",
    "pulses",
    "energy_uj",
    "cells",
    "written",
    "steps",
    "wall_s",
)
_LABELS = {
    "ssim": "SSIM",
    "psnr": "PSNR (dB)",
    "accuracy": "accuracy",
    "loss": "training loss",
    "loss_test": "test loss",
    "rup": "Rup (fraction of cells written)",
    "nup": "Nup (pulses per cell)",
    "energy_uj": "energy (µJ)",
}
_BASELINE = "_baseline"
_SAMPLE_ROWS = (("inputs", "input"), ("outputs", "output"), ("targets", "target"))


# --------------------------------------------------------------------------------------------
# files


def _read_json_dict(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, None if the file is missing; ValueError if it is not one."""
    if not path.is_file():
        return None
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(obj).__name__}")
    return obj


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def read_history(path: str | Path) -> dict[str, np.ndarray]:
    """Columns of a ``history.csv`` as float arrays; empty cells (no evaluation) become NaN.

    Raises:
        ValueError: the file has no header or no ``step`` column.
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path} has no header row")
        header = [h.strip() for h in header]
        if "step" not in header:
            raise ValueError(f"{path} has no 'step' column; columns: {', '.join(header)}")
        rows = [r for r in reader if any(c.strip() for c in r)]
    cols: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        cols[name] = np.array(
            [_to_float(r[j]) if j < len(r) else math.nan for r in rows], dtype=float
        )
    return cols


def read_samples(path: str | Path) -> dict[str, np.ndarray]:
    """``inputs``/``outputs``/``targets`` of a ``samples.npz`` as N×C×H×W float arrays.

    Arrays of shape N×H×W are taken as one channel; missing keys are left out.

    Raises:
        ValueError: the file is not a readable npz or an array has the wrong rank.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            raw = {k: np.asarray(z[k]) for k, _ in _SAMPLE_ROWS if k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e
    out: dict[str, np.ndarray] = {}
    for k, a in raw.items():
        if a.ndim == 3:
            a = a[:, None]
        if a.ndim != 4 or a.shape[1] not in (1, 3):
            raise ValueError(f"{path}: {k!r} must be N×C×H×W with C = 1 or 3, got shape {a.shape}")
        out[k] = a.astype(float)
    return out


# --------------------------------------------------------------------------------------------
# formatting


def _ordered_keys(keys: Sequence[str]) -> list[str]:
    first = [k for k in _PREFERRED if k in keys]
    return first + [k for k in keys if k not in first]


def _label(name: str) -> str:
    return _LABELS.get(name, name)


def _finite(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = np.isfinite(x) & np.isfinite(y)
    return x[m], y[m]


def _set_positive_scale(ax: Axes, values: np.ndarray) -> None:
    """Log scale when every value is positive, symlog when some are zero, else linear."""
    v = values[np.isfinite(values)]
    if v.size == 0 or (v < 0).any():
        return
    pos = v[v > 0]
    if pos.size == v.size:
        ax.set_yscale("log")
    elif pos.size:
        ax.set_yscale("symlog", linthresh=float(pos.min()))


def _running_mean(y: np.ndarray, window: int) -> np.ndarray:
    k = np.ones(window) / window
    return np.convolve(y, k, mode="valid")


# --------------------------------------------------------------------------------------------
# figures


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    return save_figure(fig, path, dpi=110)


def _grid(n: int, width: float, height: float, title: str | None) -> tuple[Figure, list[Axes]]:
    ncols = n if n <= 3 else math.ceil(n / 2)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]
    if title:
        fig.suptitle(title)
    return fig, axes


ENERGY_CATEGORIES = ("vmm_read", "adc_dac", "digital", "rng", "programming", "verify")


def plot_energy(figures: Mapping[str, Any], path: str | Path) -> Path:
    """Stacked bars of a run's energy by category (`eapu.tasks.energy_figures` output):
    inference per sample and training per run on the node, training on the GPU reference."""
    panels = [
        (k, label, scale)
        for k, label, scale in (
            ("inference", "inference (µJ / sample)", 1e6),
            ("training", "training (mJ / run)", 1e3),
        )
        if k in figures
    ]
    fig, axes = _grid(len(panels) or 1, 4.2, 3.4, f"energy on {figures.get('node', '?')}")
    for ax, (key, label, scale) in zip(axes, panels, strict=False):
        bars = [(figures.get("node", "node"), figures[key])]
        if key == "training" and "gpu_training" in figures:
            bars.append(("GPU (FP32)", figures["gpu_training"]))
        bottom = np.zeros(len(bars))
        for cat in ENERGY_CATEGORIES:
            vals = np.array([b[1].get(cat, 0.0) * scale for b in bars])
            ax.bar([b[0] for b in bars], vals, bottom=bottom, label=cat)
            bottom += vals
        if key == "training" and len(bars) > 1 and bottom[0] > 0:
            ax.set_yscale("log")
        ax.set_title(label)
        ax.grid(axis="y", alpha=0.3)
    if panels:
        axes[0].legend(fontsize=8)
    return _save(fig, Path(path))


def plot_history(
    history: str | Path | History, path: str | Path, *, title: str | None = None
) -> Path:
    """Training curves of one run; returns the PNG path written.

    Panels: training loss vs step (log y; the test loss as markers where evaluated), one
    panel per evaluation metric (only the evaluated steps, markers; a ``<metric>_baseline``
    column as a dashed reference line in it), and Rup and Nup vs step
    (log y when positive). Noisy per-step curves get a running mean on top.

    Args:
        history: a ``history.csv`` path or columns as from :func:`read_history`.
        path: the PNG to write.
        title: the figure title.
    """
    cols = read_history(history) if isinstance(history, (str, Path)) else dict(history)
    step = np.asarray(cols.get("step", np.array([])), dtype=float)
    n = step.size
    evals = [
        k
        for k in cols
        if k not in _BASE_COLUMNS and k != "loss_test" and np.isfinite(cols[k]).any()
    ]
    # "<m>_baseline" (what the network must beat: the noisy input, bicubic upscaling) is drawn
    # as a reference line in the panel of <m>, not in a panel of its own.
    evals = [k for k in evals if not (k.endswith(_BASELINE) and k[: -len(_BASELINE)] in evals)]
    has_ledger = any(k in cols and np.isfinite(cols[k]).any() for k in ("rup", "nup"))
    fig, axes = _grid(1 + len(evals) + int(has_ledger), 4.4, 3.2, title)
    window = max(1, n // 50)

    ax = axes[0]
    drawn = False
    if "loss" in cols:
        x, y = _finite(step, np.asarray(cols["loss"], dtype=float))
        if x.size:
            ax.plot(x, y, lw=0.8, alpha=0.4 if window > 1 else 1.0, color="C0", label="train")
            if window > 1 and x.size > window:
                ax.plot(
                    x[window - 1 :],
                    _running_mean(y, window),
                    lw=1.6,
                    color="C0",
                    label=f"train (mean of {window})",
                )
            drawn = True
    if "loss_test" in cols:
        x, y = _finite(step, np.asarray(cols["loss_test"], dtype=float))
        if x.size:
            ax.plot(x, y, "o-", ms=4, color="C3", label="test")
            drawn = True
    if drawn:
        vals = np.concatenate(
            [np.asarray(cols[k], dtype=float) for k in ("loss", "loss_test") if k in cols]
        )
        _set_positive_scale(ax, vals)
        ax.legend(fontsize=8)
    else:
        ax.text(
            0.5, 0.5, "no training steps recorded", ha="center", va="center", transform=ax.transAxes
        )
    ax.set(xlabel="step", ylabel="loss", title="loss")

    for ax, name in zip(axes[1:], evals, strict=False):
        x, y = _finite(step, np.asarray(cols[name], dtype=float))
        ax.plot(x, y, "o-", ms=4, color="C2", label="network")
        base = cols.get(name + _BASELINE)
        if base is not None:
            bx, by = _finite(step, np.asarray(base, dtype=float))
            if bx.size:
                ax.plot(bx, by, "--", color="0.45", lw=1.2, label="baseline")
                ax.legend(fontsize=8)
        ax.set(xlabel="step", ylabel=_label(name), title=_label(name).split(" (")[0])

    if has_ledger:
        ax = axes[-1]
        for i, name in enumerate(("rup", "nup")):
            if name not in cols:
                continue
            x, y = _finite(step, np.asarray(cols[name], dtype=float))
            if not x.size:
                continue
            label = {"rup": "Rup (fraction written)", "nup": "Nup (pulses/cell)"}[name]
            smooth = window > 1 and x.size > window
            ax.plot(
                x,
                y,
                lw=0.8,
                alpha=0.4 if smooth else 1.0,
                color=f"C{i}",
                label="_nolegend_" if smooth else label,
            )
            if smooth:
                ax.plot(
                    x[window - 1 :],
                    _running_mean(y, window),
                    lw=1.6,
                    color=f"C{i}",
                    label=f"{label}, mean of {window}",
                )
        vals = np.concatenate(
            [np.asarray(cols[k], dtype=float) for k in ("rup", "nup") if k in cols]
        )
        _set_positive_scale(ax, vals)
        ax.set(xlabel="step", ylabel="per step", title="cell updates")
        ax.legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    return _save(fig, Path(path))


def _as_image(a: np.ndarray) -> tuple[np.ndarray, str | None]:
    """C×H×W in [0, 1] -> what ``imshow`` takes, and its colour map."""
    a = np.clip(np.nan_to_num(a), 0.0, 1.0)
    if a.shape[0] == 1:
        return a[0], "gray"
    return np.transpose(a, (1, 2, 0)), None


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def plot_samples(
    samples: str | Path | Mapping[str, np.ndarray], path: str | Path, *, title: str | None = None
) -> Path:
    """An image grid: one row each for input, output and target, one column per sample.

    Images are shown at their own resolution with nearest interpolation, so the
    low-resolution inputs of super-resolution look blocky rather than resampled. Where an
    input or output has the target's shape its PSNR against the target is printed under it.

    Args:
        samples: a ``samples.npz`` path or arrays as from :func:`read_samples`.
        path: the PNG to write.
        title: the figure title.

    Raises:
        ValueError: there are no images to show.
    """
    arrays = read_samples(samples) if isinstance(samples, (str, Path)) else dict(samples)
    rows = [(k, label) for k, label in _SAMPLE_ROWS if k in arrays and len(arrays[k])]
    if not rows:
        raise ValueError("no sample images to plot (need 'inputs', 'outputs' or 'targets')")
    n = min(len(arrays[k]) for k, _ in rows)
    target = arrays.get("targets")
    cell = 1.5
    fig = Figure(
        figsize=(cell * n + 0.6, cell * len(rows) + (0.5 if title else 0.2)), layout="constrained"
    )
    if title:
        fig.suptitle(title)
    for i, (key, label) in enumerate(rows):
        for j in range(n):
            ax = fig.add_subplot(len(rows), n, i * n + j + 1)
            img, cmap = _as_image(arrays[key][j])
            ax.imshow(img, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(label, fontsize=11)
            if i == 0:
                ax.set_title(f"#{j}", fontsize=9)
            if key != "targets" and target is not None and arrays[key][j].shape == target[j].shape:
                ax.set_xlabel(f"PSNR {_psnr(arrays[key][j], target[j]):.1f} dB", fontsize=8)
    return _save(fig, Path(path))


def _main_metric(rows: Sequence[Mapping[str, Any]]) -> str | None:
    for m in _MAIN_METRICS:
        if any(_number(r.get(m)) is not None for r in rows):
            return m
    return None


def _number(v: Any) -> float | None:
    return float(v) if validate.is_number(v) else None


def _bars(ax: Axes, names: list[str], values: list[float | None], *, log: bool) -> None:
    x = np.arange(len(names))
    heights = [v if v is not None else 0.0 for v in values]
    ax.bar(x, heights, color=[f"C{i % 10}" for i in range(len(names))])
    positive = [v for v in values if v is not None and v > 0]
    if log and positive:
        ax.set_yscale("log")
        lo, hi = min(positive), max(positive)
        ax.set_ylim(lo / 3, hi * 3)
    elif positive:
        ax.set_ylim(0, max(positive) * 1.15)
    for xi, v in zip(x, values, strict=True):
        if v is None:
            text, bottom = "n/a", True
        elif v == 0 or (log and v <= 0):
            text, bottom = "0", True
        else:
            text, bottom = format_value(v), False
        if bottom:  # nothing to stand on: put the label just above the axis
            ax.annotate(
                text,
                (xi, 0),
                xycoords=("data", "axes fraction"),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=8,
            )
        else:
            ax.annotate(
                text,
                (xi, v),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=8,
            )
    ax.set_xticks(x, names, rotation=30, ha="right")


def plot_compare(
    rows: Sequence[Mapping[str, Any]],
    histories: Mapping[str, History],
    path: str | Path,
    *,
    title: str | None = None,
) -> Path:
    """A comparison of methods; returns the PNG path written.

    Panels: the main metric per method (SSIM if any row has it, else accuracy, else PSNR;
    ``<metric>_baseline``, if the rows carry it, as a dashed line), Nup per method (log
    scale; zero is a labelled empty bar, a missing value reads "n/a"), and the main metric vs
    step of every method's history overlaid.

    Args:
        rows: one mapping per method, with at least ``method``.
        histories: columns of each method's ``history.csv`` by method name (may be partial).
        path: the PNG to write.
        title: the figure title.
    """
    names = [str(r.get("method", f"#{i}")) for i, r in enumerate(rows)]
    metric = _main_metric(rows)
    curves = {
        m: h
        for m, h in histories.items()
        if metric is not None
        and metric in h
        and "step" in h
        and _finite(np.asarray(h["step"], float), np.asarray(h[metric], float))[0].size
    }
    panels = ["metric"] if metric else []
    panels.append("nup")
    if curves:
        panels.append("curves")
    fig, axes = _grid(len(panels), max(4.2, 0.7 * len(names) + 1.5), 3.6, title)
    colour = {m: f"C{i % 10}" for i, m in enumerate(names)}
    # The baseline depends on the data only, so every row carries the same one.
    baseline = next(
        (b for r in rows if (b := _number(r.get(f"{metric}{_BASELINE}"))) is not None), None
    )
    for ax, panel in zip(axes, panels, strict=True):
        if panel == "metric":
            assert metric is not None
            _bars(ax, names, [_number(r.get(metric)) for r in rows], log=False)
            ax.set(ylabel=_label(metric), title=f"final {_label(metric).split(' (')[0]}")
            if baseline is not None:
                ax.axhline(baseline, ls="--", color="0.45", lw=1.2, label="baseline")
                ax.set_ylim(top=max(ax.get_ylim()[1], baseline * 1.15 if baseline > 0 else 0))
                ax.legend(fontsize=8, loc="lower right")
        elif panel == "nup":
            _bars(ax, names, [_number(r.get("nup")) for r in rows], log=True)
            ax.set(ylabel=_label("nup"), title="Nup (log scale)")
        else:
            assert metric is not None
            for m, h in curves.items():
                x, y = _finite(np.asarray(h["step"], float), np.asarray(h[metric], float))
                ax.plot(x, y, "o-", ms=3, lw=1.2, color=colour.get(m), label=m)
            if baseline is not None:
                ax.axhline(baseline, ls="--", color="0.45", lw=1.2, label="baseline")
            ax.set(
                xlabel="step",
                ylabel=_label(metric),
                title=f"{_label(metric).split(' (')[0]} during training",
            )
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y" if panel != "curves" else "both")
    return _save(fig, Path(path))


# --------------------------------------------------------------------------------------------
# HTML

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;
max-width:1200px;padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.8em;
border-bottom:1px solid #ddd;padding-bottom:.2em}
.sub{color:#666;margin-top:0}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f4f4f4}tr:nth-child(even) td{background:#fafafa}
img{max-width:100%;height:auto;display:block;margin:.5em 0}
pre{background:#f7f7f7;border:1px solid #ddd;padding:.6em;overflow:auto;font-size:.8em;
line-height:1.15}
.note{color:#666;font-style:italic}
"""


def _td(v: Any) -> str:
    cls = ' class="num"' if validate.is_number(v, finite=False) else ""
    return f"<td{cls}>{html.escape(format_value(v))}</td>"


def _kv_table(d: Mapping[str, Any], *, exact: bool = False) -> str:
    rows = []
    for k in list(d) if exact else _ordered_keys(list(d)):
        v = d[k]
        text = (
            ("–" if v is None else json.dumps(v) if isinstance(v, (dict, list)) else str(v))
            if exact
            else format_value(v)
        )
        cls = ' class="num"' if validate.is_number(v, finite=False) else ""
        rows.append(f"<tr><th>{html.escape(str(k))}</th><td{cls}>{html.escape(text)}</td></tr>")
    return f'<div class="scroll"><table>{"".join(rows)}</table></div>'


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _page(title: str, subtitle: str, body: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<h1>{html.escape(title)}</h1>\n<p class="sub">{html.escape(subtitle)}</p>\n'
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def write_run_report(run_dir: str | Path) -> Path:
    """Write ``history.png``, ``samples.png`` and ``report.html`` for one run directory.

    Sections whose files are missing (``samples.npz``, ``placement.txt``, even ``config.json``
    or ``history.csv``) are left out.

    Returns:
        The path of ``run_dir/report.html``.

    Raises:
        FileNotFoundError: the directory holds none of the run files.
        ValueError: a JSON, CSV or npz file is malformed (the message names it).
    """
    d = Path(run_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"no run directory at {d}")
    config = _read_json_dict(d / "config.json")
    metrics = _read_json_dict(d / "metrics.json")
    hist_path, samples_path, placement_path = (
        d / "history.csv",
        d / "samples.npz",
        d / "placement.txt",
    )
    if config is None and metrics is None and not hist_path.is_file():
        raise FileNotFoundError(f"{d} holds none of config.json, metrics.json, history.csv")
    info = {**(metrics or {}), **(config or {})}
    name = " · ".join(str(info[k]) for k in ("task", "method") if info.get(k) is not None)
    title = f"Run: {name}" if name else f"Run: {d.name}"
    sub = ", ".join(f"{k} {info[k]}" for k in ("device", "seed", "steps") if k in info)
    # Read (and so validate) everything before drawing anything: a bad file fails fast.
    cols = read_history(hist_path) if hist_path.is_file() else None
    arrays = read_samples(samples_path) if samples_path.is_file() else None
    body: list[str] = []

    if metrics is not None:
        body += ["<h2>Final metrics</h2>", _kv_table(metrics)]
    if cols is not None:
        body.append("<h2>Training history</h2>")
        if cols["step"].size:
            png = plot_history(cols, d / "history.png", title=name or None)
            body.append(_img(png, "training history"))
        else:
            body.append('<p class="note">history.csv has no rows.</p>')
    if arrays is not None:
        if any(len(a) for a in arrays.values()):
            png = plot_samples(arrays, d / "samples.png")
            body += ["<h2>Samples</h2>", _img(png, "input, output and target samples")]
    if placement_path.is_file():
        text = placement_path.read_text(encoding="utf-8", errors="replace").rstrip()
        body += ["<h2>Placement on the crossbar arrays</h2>", f"<pre>{html.escape(text)}</pre>"]
    if config is not None:
        body += ["<h2>Configuration</h2>", _kv_table(config, exact=True)]

    out = d / "report.html"
    atomic_write(out, _page(title, sub or str(d), body).encode("utf-8"))
    return out


def _method_dir(root: Path, method: str) -> Path | None:
    """``root/method`` if it is a directory directly inside ``root`` (no path tricks); for a
    comparison over several seeds, its first ``seed=*`` run directory."""
    p = root / method
    try:
        if p.is_dir() and p.resolve().parent == root.resolve():
            seeds = sorted(p.glob("seed=*"))
            return seeds[0] if seeds and not (p / "metrics.json").exists() else p
    except OSError:
        return None
    return None


def write_compare_report(compare_dir: str | Path) -> Path:
    """Write ``compare.png`` and ``report.html`` for a comparison directory.

    Each method's run directory gets its own report first if it has none, and the page links
    to it relatively, so the directory can be moved or archived as a whole.

    Returns:
        The path of ``compare_dir/report.html``.

    Raises:
        FileNotFoundError: there is no ``compare.json``.
        ValueError: ``compare.json`` (or a method's file) is malformed; the message names it.
    """
    d = Path(compare_dir)
    spec_path = d / "compare.json"
    if not spec_path.is_file():
        raise FileNotFoundError(f"no compare.json in {d}")
    spec = _read_json_dict(spec_path)
    assert spec is not None
    rows_in = spec.get("rows", [])
    methods_in = spec.get("methods", [])
    if not isinstance(rows_in, list) or not all(isinstance(r, dict) for r in rows_in):
        raise ValueError(f"{spec_path}: 'rows' must be a list of objects")
    if not isinstance(methods_in, list):
        raise ValueError(f"{spec_path}: 'methods' must be a list")
    rows = [dict(r) for r in rows_in]
    known = {str(r.get("method")) for r in rows}
    rows += [{"method": str(m)} for m in methods_in if str(m) not in known]
    names = [str(r.get("method", f"#{i}")) for i, r in enumerate(rows)]
    task = spec.get("task")

    histories: dict[str, History] = {}
    links: list[str] = []
    for m in names:
        md = _method_dir(d, m)
        if md is None:
            links.append(f'<li>{html.escape(m)}: <span class="note">no run directory</span></li>')
            continue
        if (md / "history.csv").is_file():
            histories[m] = read_history(md / "history.csv")
        report = md / "report.html"
        if not report.is_file():
            try:
                write_run_report(md)
            except FileNotFoundError:
                pass
        if report.is_file():
            rel = md.relative_to(d).as_posix()
            href = quote(rel, safe="+-_.~/=") + "/report.html"
            links.append(f'<li><a href="{html.escape(href)}">{html.escape(m)}</a></li>')
        else:
            links.append(f'<li>{html.escape(m)}: <span class="note">no run files</span></li>')

    skip = {"method", "task"}
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in skip and k not in keys]
    keys = _ordered_keys(keys)
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ["method", *keys])
    trs = []
    for m, r in zip(names, rows, strict=True):
        cells = "".join(_td(r.get(k)) for k in keys)
        trs.append(f"<tr><th>{html.escape(m)}</th>{cells}</tr>")
    table = f'<div class="scroll"><table><tr>{head}</tr>{"".join(trs)}</table></div>'

    title = f"Comparison: {task}" if task else f"Comparison: {d.name}"
    devices = {str(r["device"]) for r in rows if r.get("device") is not None}
    sub = f"{len(rows)} methods" + (f" on {', '.join(sorted(devices))}" if devices else "")
    body = ["<h2>Results</h2>", table]
    if rows:
        png = plot_compare(rows, histories, d / "compare.png", title=str(task) if task else None)
        body += ["<h2>Figures</h2>", _img(png, "comparison of methods")]
    body += ["<h2>Runs</h2>", f"<ul>{''.join(links)}</ul>"]
    out = d / "report.html"
    atomic_write(out, _page(title, sub, body).encode("utf-8"))
    return out


# --------------------------------------------------------------------------------------------
# building blocks for other pages (e.g. `eapu.device_report`)


def html_page(title: str, subtitle: str, body: list[str]) -> str:
    """A self-contained HTML page (inline CSS) with ``body``'s HTML fragments in order."""
    return _page(title, subtitle, body)


def html_image(path: str | Path, alt: str) -> str:
    """An ``<img>`` with the PNG at ``path`` embedded as base64."""
    return _img(Path(path), alt)


def html_table(values: Mapping[str, Any], *, exact: bool = False) -> str:
    """A two-column table of ``values`` (formatted with `format_value` unless ``exact``)."""
    return _kv_table(values, exact=exact)
