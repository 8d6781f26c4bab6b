"""The HTML report of a run directory and of a comparison directory."""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote

from ..files import atomic_write
from ..rundir import RunDir
from .figures import plot_compare, plot_history, plot_samples
from .html import html_cell, html_image, html_page, html_table
from .runs import History, ordered_keys, read_history, read_json_dict, read_samples

__all__ = ["write_compare_report", "write_run_report"]


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
    config = read_json_dict(RunDir(d).config)
    metrics = read_json_dict(RunDir(d).metrics)
    hist_path, samples_path, placement_path = (
        RunDir(d).history,
        RunDir(d).samples,
        RunDir(d).placement,
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
        body += ["<h2>Final metrics</h2>", html_table(metrics)]
    if cols is not None:
        body.append("<h2>Training history</h2>")
        if cols["step"].size:
            png = plot_history(cols, d / "history.png", title=name or None)
            body.append(html_image(png, "training history"))
        else:
            body.append('<p class="note">history.csv has no rows.</p>')
    if arrays is not None:
        if any(len(a) for a in arrays.values()):
            png = plot_samples(arrays, d / "samples.png")
            body += ["<h2>Samples</h2>", html_image(png, "input, output and target samples")]
    if placement_path.is_file():
        text = placement_path.read_text(encoding="utf-8", errors="replace").rstrip()
        body += ["<h2>Placement on the crossbar arrays</h2>", f"<pre>{html.escape(text)}</pre>"]
    if config is not None:
        body += ["<h2>Configuration</h2>", html_table(config, exact=True)]

    out = RunDir(d).report
    atomic_write(out, html_page(title, sub or str(d), body).encode("utf-8"))
    return out


def _method_dir(root: Path, method: str) -> Path | None:
    """``root/method`` if it is a directory directly inside ``root`` (no path tricks); for a
    comparison over several seeds, its first ``seed=*`` run directory."""
    p = root / method
    try:
        if p.is_dir() and p.resolve().parent == root.resolve():
            seeds = sorted(p.glob("seed=*"))
            return seeds[0] if seeds and not (RunDir(p).metrics).exists() else p
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
    spec_path = RunDir(d).compare
    if not spec_path.is_file():
        raise FileNotFoundError(f"no compare.json in {d}")
    spec = read_json_dict(spec_path)
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
        if (RunDir(md).history).is_file():
            histories[m] = read_history(RunDir(md).history)
        report = RunDir(md).report
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
    keys = ordered_keys(keys)
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ["method", *keys])
    trs = []
    for m, r in zip(names, rows, strict=True):
        cells = "".join(html_cell(r.get(k)) for k in keys)
        trs.append(f"<tr><th>{html.escape(m)}</th>{cells}</tr>")
    table = f'<div class="scroll"><table><tr>{head}</tr>{"".join(trs)}</table></div>'

    title = f"Comparison: {task}" if task else f"Comparison: {d.name}"
    devices = {str(r["device"]) for r in rows if r.get("device") is not None}
    sub = f"{len(rows)} methods" + (f" on {', '.join(sorted(devices))}" if devices else "")
    body = ["<h2>Results</h2>", table]
    if rows:
        png = plot_compare(rows, histories, d / "compare.png", title=str(task) if task else None)
        body += ["<h2>Figures</h2>", html_image(png, "comparison of methods")]
    body += ["<h2>Runs</h2>", f"<ul>{''.join(links)}</ul>"]
    out = RunDir(d).report
    atomic_write(out, html_page(title, sub, body).encode("utf-8"))
    return out
