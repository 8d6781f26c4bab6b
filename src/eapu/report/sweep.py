"""The figures of a parameter sweep (`eapu.experiments.sweep`): mean ± SD over seeds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import validate
from ..files import save_figure
from ..rundir import name_part

__all__ = ["plot_sweep"]


def _mean_sd(xs: list[Any]) -> tuple[float, float]:
    xs = [x for x in xs if validate.is_number(x)]
    if not xs:
        return math.nan, math.nan
    mean = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return mean, sd


def plot_sweep(
    rows: list[dict[str, Any]],
    keys: list[str],
    out_dir: str | Path,
    *,
    metrics: Sequence[str],
) -> list[Path]:
    """Figures of a sweep, mean ± SD over seeds: a heat map per metric for two swept
    numeric keys, metric-vs-value lines for one (a line per value of the swept string keys,
    e.g. the method). Other shapes get no figure. Returns the files written.

    ``metrics``: the columns to plot (a metric no row has is skipped)."""
    if not rows:
        return []
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    swept = [k for k in keys if len({name_part(r[k]) for r in rows}) > 1]
    groups = [k for k in swept if all(isinstance(r[k], str) for r in rows)]
    axes = [k for k in swept if k not in groups]
    out = Path(out_dir)
    written: list[Path] = []

    def order(k: str) -> list[Any]:
        vals = {name_part(r[k]): r[k] for r in rows}
        return sorted(
            vals.values(),
            key=lambda v: (v is None, v if validate.is_number(v, finite=False) else 0, str(v)),
        )

    group_vals = [tuple(r[k] for k in groups) for r in rows]
    group_list = list(dict.fromkeys(group_vals))

    def label(g: tuple[Any, ...]) -> str:
        return ", ".join(f"{k}={v}" for k, v in zip(groups, g, strict=True)) or "all"

    for metric in metrics:
        if not any(validate.is_number(r.get(metric), finite=False) for r in rows):
            continue
        if len(axes) == 1:
            (k,) = axes
            xs = order(k)
            fig, ax = plt.subplots(figsize=(5.5, 4))
            numeric = all(validate.is_number(x, finite=False) for x in xs)
            for g in group_list:
                stats = [
                    _mean_sd(
                        [
                            r.get(metric)
                            for r, gv in zip(rows, group_vals, strict=True)
                            if gv == g and name_part(r[k]) == name_part(x)
                        ]
                    )
                    for x in xs
                ]
                pos = xs if numeric else list(range(len(xs)))
                ax.errorbar(
                    pos,
                    [s[0] for s in stats],
                    yerr=[s[1] for s in stats],
                    marker="o",
                    capsize=3,
                    label=label(g),
                )
            if numeric and min(xs) > 0 and max(xs) / min(xs) >= 100:
                ax.set_xscale("log")
            if not numeric:
                ax.set_xticks(range(len(xs)), [name_part(x) for x in xs])
            ax.set_xlabel(k)
            ax.set_ylabel(f"{metric} (mean ± SD over seeds)")
            if len(group_list) > 1:
                ax.legend(fontsize="small")
            ax.grid(alpha=0.3)
            path = out / f"sweep_{metric}_vs_{k}.png"
        elif len(axes) == 2:
            ky, kx = axes
            ys, xs = order(ky), order(kx)
            n = len(group_list)
            fig, axs = plt.subplots(
                1, n, figsize=(1.2 + 1.1 * len(xs) * n, 1.0 + 0.8 * len(ys)), squeeze=False
            )
            for ax, g in zip(axs[0], group_list, strict=True):
                grid = [
                    [
                        _mean_sd(
                            [
                                r.get(metric)
                                for r, gv in zip(rows, group_vals, strict=True)
                                if gv == g
                                and name_part(r[ky]) == name_part(y)
                                and name_part(r[kx]) == name_part(x)
                            ]
                        )
                        for x in xs
                    ]
                    for y in ys
                ]
                im = ax.imshow(
                    [[c[0] for c in row] for row in grid],
                    origin="lower",
                    aspect="auto",
                    cmap="viridis",
                )
                for i, row in enumerate(grid):
                    for j, (mu, sd) in enumerate(row):
                        if math.isfinite(mu):
                            txt = f"{mu:.3g}" + (f"\n±{sd:.2g}" if sd else "")
                            light = im.norm(mu) > 0.6  # dark text on viridis' yellow end
                            ax.text(
                                j,
                                i,
                                txt,
                                ha="center",
                                va="center",
                                fontsize=7,
                                color="k" if light else "w",
                            )
                ax.set_xticks(range(len(xs)), [name_part(x) for x in xs])
                ax.set_yticks(range(len(ys)), [name_part(y) for y in ys])
                ax.set_xlabel(kx)
                ax.set_ylabel(ky)
                if groups:
                    ax.set_title(label(g), fontsize="small")
                fig.colorbar(im, ax=ax, label=metric)
            path = out / f"sweep_{metric}_{ky}_x_{kx}.png"
        else:
            continue
        fig.tight_layout()
        save_figure(fig, path)
        plt.close(fig)
        written.append(path)
    return written
