"""Figures and a self-contained HTML page for a run directory or a comparison directory.

>>> from eapu.report import write_run_report, write_compare_report
>>> write_run_report("runs/denoise-eapu+mp")        # doctest: +SKIP
PosixPath('runs/denoise-eapu+mp/report.html')
>>> write_compare_report("runs/denoise-compare")     # doctest: +SKIP
PosixPath('runs/denoise-compare/report.html')

A run directory holds ``config.json``, ``metrics.json``, ``history.csv`` and, optionally,
``samples.npz`` and ``placement.txt`` (see `eapu.experiments.runner`). A comparison directory holds
``compare.json`` and one run directory per method. The pages embed their PNGs as base64 and
carry their CSS inline, so a report is one file that opens anywhere without a network.

Figures use matplotlib's object API (``Figure`` + ``FigureCanvasAgg``): nothing global (the
pyplot backend, its figure registry) is touched. Every file is written atomically.

The package's rooms: `runs` (reading a run directory), `figures`, `html` (building blocks),
`pages` (the run and comparison reports), `sweep` and `stats` (their figures).
"""

from __future__ import annotations

from .figures import plot_compare, plot_energy, plot_history, plot_samples
from .html import html_image, html_page, html_table
from .pages import write_compare_report, write_run_report
from .runs import read_history, read_samples

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
