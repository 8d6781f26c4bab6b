"""Will EaPU train on *my* cells? One page that answers it for a device (a preset or a file).

`device_report` characterises SD(εcell) of the device under every programming scheme,
derives EaPU's threshold from it (ΔWth = SD(εcell under memorial programming) · Rwg, as the
crossbar does), runs the denoise comparison on the device (EaPU over memorial programming
against plain BP over each scheme, and software as the bound), and writes
``report.html`` (self-contained) and ``device_report.json`` beside the comparison's own
directory ``compare/``:

>>> device_report("my-cell.toml", "runs/my-cell", steps=300)   # doctest: +SKIP
PosixPath('runs/my-cell/report.html')
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..devices import Device, get_device, is_device_file, save_device
from ..files import atomic_write, write_json
from ..formatting import format_value
from ..programming import characterize, list_schemes
from ..report import html_image, html_page, html_table, write_compare_report
from ..rundir import RunDir
from ..tiles import operating_range
from .config import default_rwg

__all__ = ["BP_METHODS", "DEFAULT_METHODS", "device_report"]

BP_METHODS = ("mp", "wu", "tp", "su")
"""Plain BP (every update written) over memorial, write-verify, two-pulse and sign."""
DEFAULT_METHODS = ("software", "eapu+mp", *BP_METHODS)
"""What the report compares: the software bound, EaPU + MP, and BP over each scheme."""
#: The scheme whose SD(εcell) sets EaPU + MP's threshold (the crossbar's load scheme).
THRESHOLD_SCHEME = "memorial"
_COLUMNS = (
    "ssim",
    "psnr",
    "rup",
    "nup",
    "pulses",
    "failed",
    "update_energy_uj_180nm",
    "train_energy_uj_180nm",
    "max_writes_per_cell",
)


def _table(rows: list[dict[str, Any]], keys: list[str]) -> str:
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = []
    for r in rows:
        cells = []
        for k in keys:
            v = r.get(k)
            text = format_value(v)
            if isinstance(r.get(f"{k}_sd"), float):
                text += f" ± {format_value(r[f'{k}_sd'])}"
            num = isinstance(v, (int, float)) and not isinstance(v, bool)
            cells.append(f"<td{' class=num' if num else ''}>{html.escape(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(body)}</table></div>'


def _verdict(rows: dict[str, dict[str, Any]], steps: int | None) -> list[str]:
    """Plain sentences: EaPU + MP's quality, pulses and energy against software and BP."""
    out: list[str] = []
    e = rows.get("eapu+mp")
    if e is None or "ssim" not in e:
        return ["EaPU + MP was not run; add it to the methods."]
    sw = rows.get("software", {}).get("ssim")
    bp = {m: rows[m] for m in BP_METHODS if m in rows and "ssim" in rows[m]}
    q = f"EaPU + MP reaches SSIM {format_value(e['ssim'])}"
    if isinstance(sw, float) and sw > 0:
        q += f" ({100 * e['ssim'] / sw:.0f} % of software's {format_value(sw)})"
    if bp:
        best = max(bp, key=lambda m: bp[m]["ssim"])
        q += f"; the best BP scheme is {best} with {format_value(bp[best]['ssim'])}"
    out.append(q + ".")
    if "mp" in bp and bp["mp"].get("pulses") and e.get("pulses"):
        ratio = bp["mp"]["pulses"] / max(e["pulses"], 1)
        out.append(
            f"It writes {format_value(e.get('rup'))} of the cells per step (Rup) with "
            f"{format_value(e['pulses'])} programming pulses in all, {ratio:.2g}× fewer than BP "
            f"over the same memorial programming ({format_value(bp['mp']['pulses'])})."
        )
    key = "update_energy_uj_180nm"
    if key in e:
        s = f"Update energy at 180 nm: {format_value(e[key])} µJ"
        if "mp" in bp and key in bp["mp"] and e[key] > 0:
            s += f" ({bp['mp'][key] / e[key]:.2g}× less than BP over MP)"
        out.append(s + ".")
    if steps is not None:
        out.append(
            f"These runs took {steps} mini-batches (the paper's setting is 1100): a short run "
            "ranks the methods but does not reach their final quality."
        )
    return out


def device_report(
    device: Device | str,
    out_dir: str | Path,
    *,
    methods: tuple[str, ...] | list[str] = DEFAULT_METHODS,
    steps: int | None = None,
    seeds: list[int] | None = None,
    n_cells: int = 4096,
    rwg_per_us: float | None = None,
    progress: Callable[[str, int, int, dict[str, float]], None] | None = None,
    **options: Any,
) -> Path:
    """Characterise ``device``, derive EaPU's threshold, run the denoise comparison on it and
    write ``out_dir/report.html``; returns its path.

    Args:
        device: a `Device`, a registered name, or a device file (``*.toml``).
        out_dir: the directory of the page, ``device_report.json``, ``device.toml`` (the device
            as run) and ``compare/`` (one run directory per method).
        methods: methods of `eapu.experiments.compare` (default: software, EaPU + MP, BP over
            every scheme).
        steps: mini-batches per run (default: the task's 1100).
        seeds: several seeds give mean ± SD (default: one run, seed 0).
        n_cells: cells of each characterisation sweep.
        rwg_per_us: Rwg (µS⁻¹) of the runs and of the threshold; default the paper's 1/80,
            or the largest conductance range the device holds where 1/80's does not fit
            (`eapu.experiments.default_rwg`). Checked before anything is characterised.
        progress: passed to `eapu.experiments.compare`.
        **options: other `eapu.experiments.RunConfig` fields (e.g. ``eval_every``).
    """
    from .compare import compare

    dev = get_device(device) if isinstance(device, str) else device
    out = Path(out_dir)
    dev_file = out / "device.toml"
    rwg_note = "given"
    if rwg_per_us is None:
        rwg_per_us, rwg_note = default_rwg(dev)
    # The runs' Rwg must fit the window: refused now, not after every characterisation.
    operating_range(dev, "reference_column", rwg_per_us)
    out.mkdir(parents=True, exist_ok=True)
    save_device(dev, dev_file)
    chars = [characterize(dev, s, n_cells=n_cells) for s in list_schemes()]
    sd = next(c.sd_us for c in chars if c.scheme == THRESHOLD_SCHEME)
    threshold = {
        "scheme": THRESHOLD_SCHEME,
        "sd_us": sd,
        "rwg_per_us": rwg_per_us,
        "rwg_source": rwg_note,
        "threshold": sd * rwg_per_us,
    }
    if steps is not None:
        options["steps"] = steps
    rows = compare(
        "denoise",
        list(methods),
        out / "compare",
        seeds=seeds,
        progress=progress,
        device=str(dev_file),
        rwg_per_us=rwg_per_us,
        **options,
    )
    write_compare_report(out / "compare")
    by_method = {str(r["method"]): r for r in rows}
    char_rows = [
        {
            "scheme": c.scheme,
            "sd_us": c.sd_us,
            "mean_us": c.mean_us,
            "pulses_per_write": c.pulses_per_write,
            "reads_per_write": c.reads_per_write,
            "fail_rate": c.fail_rate,
        }
        for c in chars
    ]
    verdict = _verdict(by_method, steps)
    write_json(
        out / "device_report.json",
        {
            "device": dev.name,
            "characterization": char_rows,
            "threshold": threshold,
            "verdict": verdict,
            "rows": rows,
        },
    )

    body = ["<h2>Answer</h2>", *(f"<p>{html.escape(s)}</p>" for s in verdict)]
    body += [
        "<h2>SD(εcell) by programming scheme</h2>",
        f'<p class="note">A write/read sweep of {n_cells} cells per scheme '
        "(`eapu.programming.characterize`): targets uniform over the window, one read.</p>",
        _table(char_rows, list(char_rows[0])),
        "<h2>EaPU's threshold</h2>",
        html_table(threshold),
        "<h2>Denoise comparison on this device</h2>",
        _table([{"method": m, **r} for m, r in by_method.items()], ["method", *_COLUMNS]),
    ]
    png = out / "compare" / "compare.png"
    if png.is_file():
        body.append(html_image(png, "comparison of methods"))
    body.append('<p><a href="compare/report.html">every run</a></p>')
    if isinstance(device, str) and is_device_file(device):
        fit_png = Path(device).with_suffix(".png")
        if fit_png.is_file():
            body += [
                "<h2>Measured against simulated pulse trains</h2>",
                html_image(fit_png, "measured and simulated pulse trains"),
            ]
    body += ["<h2>Device</h2>", html_table(vars(dev), exact=True)]
    if dev.relaxation_sd_us == 0:
        body.insert(
            2,
            '<p class="note">The device has no relaxation (relaxation_sd_us = 0): SD(εcell) '
            "and so the threshold are a lower bound. Measure it and give it to "
            "`eapu device fit --relaxation-sd-us`.</p>",
        )
    page = html_page(f"Device report: {dev.name}", f"denoise on {dev.name}", body)
    path = RunDir(out).report
    atomic_write(path, page.encode("utf-8"))
    return path
