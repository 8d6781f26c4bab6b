"""Reading a run directory for its report: ``history.csv``, ``samples.npz``, JSON files, and
which metrics a table or a comparison shows first."""

from __future__ import annotations

import csv
import math
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import validate
from ..files import read_json

__all__ = [
    "BASELINE",
    "BASE_COLUMNS",
    "SAMPLE_ROWS",
    "History",
    "as_number",
    "main_metric",
    "metric_label",
    "ordered_keys",
    "read_history",
    "read_json_dict",
    "read_samples",
]


History = Mapping[str, np.ndarray]

#: Columns every history has; the others are evaluation columns (empty between evaluations).
BASE_COLUMNS = ("step", "loss", "rup", "nup")
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
BASELINE = "_baseline"
SAMPLE_ROWS = (("inputs", "input"), ("outputs", "output"), ("targets", "target"))


def read_json_dict(path: Path) -> dict[str, Any] | None:
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
            raw = {k: np.asarray(z[k]) for k, _ in SAMPLE_ROWS if k in z.files}
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


def ordered_keys(keys: Sequence[str]) -> list[str]:
    first = [k for k in _PREFERRED if k in keys]
    return first + [k for k in keys if k not in first]


def metric_label(name: str) -> str:
    return _LABELS.get(name, name)


def main_metric(rows: Sequence[Mapping[str, Any]]) -> str | None:
    for m in _MAIN_METRICS:
        if any(as_number(r.get(m)) is not None for r in rows):
            return m
    return None


def as_number(v: Any) -> float | None:
    return float(v) if validate.is_number(v) else None
