"""Result files written atomically: a reader never sees half a file."""

from __future__ import annotations

import io
import json
import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["atomic_write", "save_figure", "write_json"]


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same directory and ``os.replace``.

    The file gets the mode a plain ``open(path, "w")`` would give it (0666 less the umask),
    so a group or a web server can read results as the user's umask allows. The temp file is
    named ``.NAME.<random>.tmp``; `eapu.rundir.clean_stale` removes those a killed writer left.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _jsonable(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    raise TypeError(f"not JSON serialisable: {x!r}")


def write_json(path: str | Path, obj: Any) -> None:
    """``obj`` as indented JSON (numpy scalars allowed), atomically."""
    atomic_write(path, (json.dumps(obj, indent=2, default=_jsonable) + "\n").encode())


def save_figure(fig: Any, path: str | Path, *, dpi: int = 120) -> Path:
    """A matplotlib figure as PNG at ``path``, atomically; returns ``path``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write(path, buf.getvalue())
    return Path(path)
