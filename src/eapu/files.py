"""Result files written atomically: a reader never sees half a file."""

from __future__ import annotations

import io
import json
import os
import pickle
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["atomic_write", "load_checkpoint", "read_json", "save_figure", "write_json"]


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


def read_json(path: str | Path) -> Any:
    """The JSON document in ``path``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: it is not UTF-8 JSON (truncated by a crash, say); the message names it.
    """
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a valid JSON file ({e}); re-create it") from None


def load_checkpoint(path: str | Path, map_location: Any = None) -> dict[str, Any]:
    """An eapu checkpoint, loaded with ``weights_only=True`` (nothing is ever unpickled).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is truncated, corrupt, holds objects other than tensors and
            plain data, or is not an eapu checkpoint; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such checkpoint file", str(path))
    why = None
    try:
        ck = torch.load(path, weights_only=True, map_location=map_location)
    except pickle.UnpicklingError:
        why = "it holds objects other than tensors and plain data, which eapu never loads"
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        why = f"truncated or corrupt: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    if why is None and not (isinstance(ck, dict) and "step" in ck and "model" in ck):
        why = "it lacks the step and model entries an eapu checkpoint has"
    if why is not None:
        raise ValueError(f"{path} is not a valid eapu checkpoint: {why}")
    return ck  # type: ignore[no-any-return]
