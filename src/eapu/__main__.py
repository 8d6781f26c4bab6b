"""``python -m eapu``: the ``eapu`` command."""

from __future__ import annotations

from .cli import app

app(prog_name="eapu")
