"""The figures of a run or a comparison: training curves, sample images, bars of the final
metrics, the energy breakdown. matplotlib's object API only (nothing global is touched)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..files import save_figure
from ..formatting import format_value
from .runs import (
    BASE_COLUMNS,
    BASELINE,
    SAMPLE_ROWS,
    History,
    as_number,
    main_metric,
    metric_label,
    read_history,
    read_samples,
)

__all__ = [
    "ENERGY_CATEGORIES",
    "plot_compare",
    "plot_energy",
    "plot_history",
    "plot_samples",
    "save_png",
]


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


def save_png(fig: Figure, path: Path) -> Path:
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
    """Stacked bars of a run's energy by category (`eapu.experiments.energy_figures` output):
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
    return save_png(fig, Path(path))


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
        k for k in cols if k not in BASE_COLUMNS and k != "loss_test" and np.isfinite(cols[k]).any()
    ]
    # "<m>_baseline" (what the network must beat: the noisy input, bicubic upscaling) is drawn
    # as a reference line in the panel of <m>, not in a panel of its own.
    evals = [k for k in evals if not (k.endswith(BASELINE) and k[: -len(BASELINE)] in evals)]
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
        base = cols.get(name + BASELINE)
        if base is not None:
            bx, by = _finite(step, np.asarray(base, dtype=float))
            if bx.size:
                ax.plot(bx, by, "--", color="0.45", lw=1.2, label="baseline")
                ax.legend(fontsize=8)
        ax.set(xlabel="step", ylabel=metric_label(name), title=metric_label(name).split(" (")[0])

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
    return save_png(fig, Path(path))


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
    rows = [(k, label) for k, label in SAMPLE_ROWS if k in arrays and len(arrays[k])]
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
    return save_png(fig, Path(path))


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
    metric = main_metric(rows)
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
        (b for r in rows if (b := as_number(r.get(f"{metric}{BASELINE}"))) is not None), None
    )
    for ax, panel in zip(axes, panels, strict=True):
        if panel == "metric":
            assert metric is not None
            _bars(ax, names, [as_number(r.get(metric)) for r in rows], log=False)
            ax.set(
                ylabel=metric_label(metric), title=f"final {metric_label(metric).split(' (')[0]}"
            )
            if baseline is not None:
                ax.axhline(baseline, ls="--", color="0.45", lw=1.2, label="baseline")
                ax.set_ylim(top=max(ax.get_ylim()[1], baseline * 1.15 if baseline > 0 else 0))
                ax.legend(fontsize=8, loc="lower right")
        elif panel == "nup":
            _bars(ax, names, [as_number(r.get("nup")) for r in rows], log=True)
            ax.set(ylabel=metric_label("nup"), title="Nup (log scale)")
        else:
            assert metric is not None
            for m, h in curves.items():
                x, y = _finite(np.asarray(h["step"], float), np.asarray(h[metric], float))
                ax.plot(x, y, "o-", ms=3, lw=1.2, color=colour.get(m), label=m)
            if baseline is not None:
                ax.axhline(baseline, ls="--", color="0.45", lw=1.2, label="baseline")
            ax.set(
                xlabel="step",
                ylabel=metric_label(metric),
                title=f"{metric_label(metric).split(' (')[0]} during training",
            )
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3, axis="y" if panel != "curves" else "both")
    return save_png(fig, Path(path))
