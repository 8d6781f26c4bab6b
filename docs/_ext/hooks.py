"""MkDocs hook: a full eapu path in single backticks on a page is a checked cross-reference.

On the pages as in the docstrings (``backtick_refs.py``), `eapu.devices.Device` links to its
API entry, and a name that does not exist fails the strict build. Code blocks are left alone,
and a span in double backticks (````eapu.tasks````, an entry-point group) is literal code.
"""

from __future__ import annotations

import re
from typing import Any

_SPAN = re.compile(r"(?<!`)`(eapu(?:\.[A-Za-z_]\w*)+)(\(\))?`(?!`)")
_FENCE = re.compile(r"^\s*(```|~~~)")


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Link every single-backtick ``eapu.…`` path outside fenced code blocks."""
    out: list[str] = []
    fenced = False
    for line in markdown.split("\n"):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            line = _SPAN.sub(lambda m: f"[`{m[1]}{m[2] or ''}`][{m[1]}]", line)
        out.append(line)
    return "\n".join(out)
