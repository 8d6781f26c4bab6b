"""The figures of a run's update statistics (`eapu.experiments.stats`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..files import save_figure

__all__ = ["plot_update_stats"]


def plot_update_stats(
    names: list[str],
    frac: Tensor,
    rup: Tensor,
    summary: dict[str, Any],
    frac_path: Path,
    rup_path: Path,
) -> None:
    """The written fraction per layer and step (``frac``, steps × layers) and Rup per step,
    titled with ``summary``'s ``rup_mean``, ``nup``, ``scheme`` and ``ncell_step``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    steps = torch.arange(1, frac.shape[0] + 1).numpy()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    n = len(names)
    cmap = plt.get_cmap("viridis")
    for j, name in enumerate(names):
        y = frac[:, j].numpy().copy()
        y[y <= 0] = float("nan")  # a step that wrote nothing has no place on a log axis
        ax.plot(steps, y, lw=0.8, color=cmap(j / max(n - 1, 1)), label=name)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("fraction of the layer's cells written")
    if n <= 12:
        ax.legend(fontsize="x-small", ncol=2)
    else:  # too many layers for a legend: colour by depth
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(1, n))
        fig.colorbar(sm, ax=ax, label="layer (input → output)")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    save_figure(fig, frac_path)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    y = rup.numpy().copy()
    y[y <= 0] = float("nan")
    ax.plot(steps, y * 1e3, lw=0.8, label="Rup")
    ax.axhline(
        summary["rup_mean"] * 1e3,
        color="k",
        ls="--",
        lw=0.8,
        label=f"mean {summary['rup_mean'] * 1e3:.3g} ‰",
    )
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("Rup (‰ of cells written)")
    ax.set_title(
        f"Nup ≈ {summary['nup']:.3g} ({summary['scheme']}, Ncell "
        f"{summary['ncell_step']:.3g} step-to-step)",
        fontsize="small",
    )
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    save_figure(fig, rup_path)
    plt.close(fig)
