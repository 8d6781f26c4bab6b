"""What the commands print: comparison tables (rich and Markdown), progress bars, JSON."""

from __future__ import annotations

import json
import math
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ..formatting import format_value
from .app import console

__all__ = [
    "COLUMNS",
    "dump_json",
    "markdown_table",
    "metric_cell",
    "metric_columns",
    "metrics_table",
    "progress_bar",
    "rows_table",
]


def progress_bar(where: Console | None = None) -> Progress:
    """The bar of a training command (its texts are shown as they are, not as markup)."""
    return Progress(
        TextColumn("{task.description:<10}", markup=False),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}", markup=False),
        TextColumn("{task.fields[info]}", markup=False),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=where or console,
        transient=False,
    )


COLUMNS = [
    "method",
    "ssim",
    "psnr",
    "accuracy",
    "roc_auc",
    "rup",
    "nup",
    "ncell",
    "pulses",
    "threshold_us",
    "update_energy_uj_180nm",
    "wall_s",
]


def metric_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The comparison's columns: the method, what tuning chose and its budget, the metrics."""
    tuned = sorted({k for r in rows for k in r if k.startswith("tuned_")})
    cols = [c for c in COLUMNS if any(c in r for r in rows)]
    cols[1:1] = [*tuned, *(["tune_budget", "tune_scores"] if tuned else [])]
    return cols


def metric_cell(r: dict[str, Any], c: str) -> str:
    """One value of a comparison row: mean ± SD over seeds, validation scores as v: score."""
    return format_value(r.get(c)) + (f" ± {format_value(r[c + '_sd'])}" if c + "_sd" in r else "")


def metrics_table(rows: list[dict[str, Any]], title: str) -> Table:
    cols = metric_columns(rows)
    t = Table(title=title)
    for c in cols:
        t.add_column(c, justify="left" if c == "method" else "right")
    for r in rows:
        t.add_row(*[metric_cell(r, c) for c in cols])
    return t


def rows_table(rows: list[dict[str, Any]], title: str) -> Table:
    """Every key of the rows as a column (for results that are not run metrics)."""
    t = Table(title=title)
    for c in rows[0]:
        t.add_column(c, justify="left" if c == "method" else "right")
    for r in rows:
        t.add_row(*[format_value(r.get(c)) for c in rows[0]])
    return t


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The comparison table as Markdown, mean ± SD where several seeds ran."""
    cols = [c for c in metric_columns(rows) if c != "wall_s"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(metric_cell(r, c) for c in cols) + " |")
    return "\n".join(lines)


def dump_json(obj: Any) -> None:
    """Machine-readable output: JSON on stdout, nothing else there.

    Valid JSON: a NaN or an infinity (a metric that diverged) is ``null``, as JSON has no
    such numbers (Python's ``NaN`` would break every other reader).
    """
    print(json.dumps(_finite(obj), indent=2, default=str, allow_nan=False))


def _finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (lists, tuples, dicts walked)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:  # numpy / torch scalars
        return _finite(obj.item())
    return obj
