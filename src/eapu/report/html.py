"""HTML building blocks: one self-contained page (CSS inline, PNGs as base64), tables of
values, images."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import validate
from ..formatting import format_value
from .runs import ordered_keys

__all__ = ["html_cell", "html_image", "html_page", "html_table"]


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


def html_cell(v: Any) -> str:
    """One ``<td>`` of a value (numbers right-aligned, formatted with `format_value`)."""
    cls = ' class="num"' if validate.is_number(v, finite=False) else ""
    return f"<td{cls}>{html.escape(format_value(v))}</td>"


def html_table(d: Mapping[str, Any], *, exact: bool = False) -> str:
    """A two-column table of ``d`` (formatted with `format_value` unless ``exact``)."""
    rows = []
    for k in list(d) if exact else ordered_keys(list(d)):
        v = d[k]
        text = (
            ("–" if v is None else json.dumps(v) if isinstance(v, (dict, list)) else str(v))
            if exact
            else format_value(v)
        )
        cls = ' class="num"' if validate.is_number(v, finite=False) else ""
        rows.append(f"<tr><th>{html.escape(str(k))}</th><td{cls}>{html.escape(text)}</td></tr>")
    return f'<div class="scroll"><table>{"".join(rows)}</table></div>'


def html_image(path: str | Path, alt: str) -> str:
    """An ``<img>`` with the PNG at ``path`` embedded as base64."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def html_page(title: str, subtitle: str, body: list[str]) -> str:
    """A self-contained HTML page (inline CSS) with ``body``'s HTML fragments in order."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<h1>{html.escape(title)}</h1>\n<p class="sub">{html.escape(subtitle)}</p>\n'
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
