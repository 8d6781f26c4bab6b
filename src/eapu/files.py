"""Result files written atomically (a reader never sees half a file), and the bounded
readers of what users give: TOML (`read_toml`) and text (`read_text`) with a size limit, a
nesting limit and an error that names the file.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "run.toml")
>>> atomic_write(path, b"steps = 3\\n")
>>> read_toml(path)
{'steps': 3}
"""

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

__all__ = [
    "MAX_TOML_BYTES",
    "MAX_TOML_DEPTH",
    "atomic_write",
    "load_checkpoint",
    "read_json",
    "read_text",
    "read_toml",
    "save_figure",
    "write_json",
]

#: The largest TOML file eapu reads (a run config, a device file and a node table are a few
#: kB): a bound no real file reaches, so that a hostile one cannot take the memory.
MAX_TOML_BYTES = 1 << 20
#: The deepest nesting of tables, arrays and dotted keys a TOML file may have (real ones: 3).
#: `tomllib` recurses on nested arrays (3000 levels: RecursionError) and a long dotted key
#: costs it memory quadratic in its length; the limit is checked before it parses.
MAX_TOML_DEPTH = 64


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same directory and ``os.replace``.

    The file gets the mode a plain ``open(path, "w")`` would give it (0666 less the umask),
    so a group or a web server can read results as the user's umask allows. The temp file is
    named ``.NAME.<random>.tmp``; `eapu.rundir.clean_stale` removes those a killed writer left.

    Raises:
        OSError: the write failed (``ENOSPC``, ``EROFS``, ``EACCES``, ...); its ``filename`` is
            ``path``, and ``path`` is as it was before.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        # One cleanup around the whole write: a SIGTERM (raised as `Terminated` by the command
        # line's handler) can land between ``os.open`` creating the file and any later line.
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except FileExistsError:  # O_EXCL: the name is another writer's; leave its file alone
            raise
        except BaseException:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            raise
    except OSError as e:  # a full disk, a read-only file system: name the file meant
        if e.filename in (None, str(tmp)) and e.errno is not None:
            raise OSError(e.errno, e.strerror or os.strerror(e.errno), str(path)) from None
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
    except (PermissionError, IsADirectoryError):
        raise
    except (Exception, MemoryError) as e:  # a corrupt file fails in many ways inside torch
        first = str(e).splitlines()[0][:200] if str(e) else ""
        why = f"truncated or corrupt ({type(e).__name__}{': ' + first if first else ''})"
    if why is None:
        why = _checkpoint_problem(ck)
    if why is not None:
        raise ValueError(
            f"{path} is not a valid eapu checkpoint: {why}; remove it (the run then starts "
            "again) or restore it from a copy"
        )
    return ck  # type: ignore[no-any-return]


#: The entries of an eapu checkpoint and their types (what `runner.save_checkpoint` writes).
_CHECKPOINT: dict[str, type | tuple[type, ...]] = {
    "config": dict,
    "step": int,
    "model": dict,
    "crossbar": dict,
    "optimizer": dict,
    "scheduler": dict,
    "history": list,
    "wall_s": (int, float),
}


def _checkpoint_problem(ck: Any) -> str | None:
    """Why ``ck`` is not an eapu checkpoint's contents, or None."""
    if not (isinstance(ck, dict) and "step" in ck and "model" in ck):
        return "it lacks the step and model entries an eapu checkpoint has"
    for key, kind in _CHECKPOINT.items():
        if key in ck and (not isinstance(ck[key], kind) or isinstance(ck[key], bool)):
            return f"its {key} is a {type(ck[key]).__name__}"
    if ck["step"] < 0 or not all(isinstance(r, dict) for r in ck.get("history", [])):
        return "its step or history is malformed"
    return None


def _size_limit(n: int) -> str:
    return f"{n / (1 << 20):g} MiB" if n >= 1 << 20 else f"{n / 1024:g} kiB"


def read_text(path: str | Path, *, max_bytes: int, what: str = "file") -> str:
    """The UTF-8 text of ``path`` (a byte-order mark is dropped), at most ``max_bytes``.

    Args:
        path: the file.
        max_bytes: refuse a larger file (read no further than one byte past the limit).
        what: what the file is, in messages (``"--config file"``).

    Raises:
        FileNotFoundError, IsADirectoryError, PermissionError: as ``open`` raises them.
        ValueError: the file is larger than ``max_bytes`` or is not UTF-8 text; the message
            names it, says where and what to do.
    """
    path = Path(path)
    with path.open("rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(
            f"{what} {path} is larger than {_size_limit(max_bytes)}, more than eapu reads "
            "from such a file; give the right file"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ValueError(
            f"{what} {path} is not UTF-8 text (byte 0x{data[e.start]:02x} on line {line}); "
            "save it as UTF-8"
        ) from None


def _toml_depth(text: str, limit: int) -> tuple[int, int] | None:
    """The line and depth where ``text`` first nests deeper than ``limit``; None if never.

    A scan without recursion (tomllib recurses) that skips strings and comments and counts
    the depth of the value or key being read: a table header's dotted parts, a key's dotted
    parts within its table or inline table, one level per array. Syntax is left to tomllib:
    the count only has to be at least the nesting of a valid file.
    """
    stack: list[tuple[str, int]] = []  # ("[" array | "{" inline table, its depth)
    mode = "key"  # "key" (a key or a header), "value", "done" (a header read)
    table = 0  # depth of the current [table]
    base, parts, depth = 0, 1, 0  # the key's container depth and parts; a value's depth
    line_start = True
    line, i, n = 1, 0, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            if not stack:
                mode, base, parts, line_start = "key", table, 1, True
            i += 1
            continue
        if c in " \t\r":
            i += 1
            continue
        first, line_start = line_start, False
        if c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if c in "\"'":
            triple = text.startswith(c * 3, i)
            quote = c * 3 if triple else c
            j = i + len(quote)
            while True:  # to the closing quote (a basic string's backslash escapes one char)
                k = text.find(quote, j)
                if k < 0:
                    return None  # unterminated: tomllib says so
                if c == "'" or not _escaped(text, k):
                    break
                j = k + 1
            if triple:  # up to two more quotes belong to the string
                while text.startswith(c, k + 3):
                    k += 1
            line += text.count("\n", i, k)
            i = k + len(quote)
            continue
        if mode == "key" and first and not stack and c == "[":
            mode, base, parts = "header", 0, 1
            i += 2 if text.startswith("[[", i) else 1
        elif mode == "header" and c == "]":
            table, mode = parts, "done"
            i += 2 if text.startswith("]]", i) else 1
        elif mode in ("key", "header") and c == ".":
            parts += 1
            i += 1
        elif mode == "key" and c == "=":
            mode, depth = "value", base + parts
            i += 1
        elif mode == "value" and c == "[":
            stack.append(("[", depth))
            depth += 1
            i += 1
        elif mode == "value" and c == "{":
            stack.append(("{", depth))
            mode, base, parts = "key", depth, 1
            i += 1
        elif c == "," and stack:
            kind, d = stack[-1]
            if kind == "{":
                mode, base, parts = "key", d, 1
            else:
                mode, depth = "value", d + 1
            i += 1
        elif c in "]}" and stack and mode in ("key", "value"):
            mode, depth = "value", stack.pop()[1]
            i += 1
        else:
            i += 1
            continue
        if max(depth, base + parts) > limit:
            return line, max(depth, base + parts)
    return None


def _escaped(text: str, k: int) -> bool:
    """Whether the quote at ``text[k]`` is escaped (an odd run of backslashes before it)."""
    j = k
    while j > 0 and text[j - 1] == "\\":
        j -= 1
    return (k - j) % 2 == 1


def read_toml(
    path: str | Path,
    *,
    what: str = "TOML file",
    max_bytes: int = MAX_TOML_BYTES,
    max_depth: int = MAX_TOML_DEPTH,
) -> dict[str, Any]:
    """The TOML document in ``path``, bounded in size and nesting.

    Args:
        path: the file.
        what: what the file is, in messages (``"--config file"``, ``"device file"``).
        max_bytes: the largest file read (`MAX_TOML_BYTES`).
        max_depth: the deepest nesting of tables, arrays and dotted keys (`MAX_TOML_DEPTH`).

    Raises:
        FileNotFoundError, IsADirectoryError, PermissionError: as ``open`` raises them.
        ValueError: too large, nested too deep, not UTF-8 or not TOML; the message names the
            file, the line where it can, and the limit.
    """
    import tomllib

    text = read_text(path, max_bytes=max_bytes, what=what)
    deep = _toml_depth(text, max_depth)
    if deep is not None:
        raise ValueError(
            f"{what} {path}: line {deep[0]} nests {deep[1]} levels deep (tables, arrays or "
            f"dotted keys); eapu reads at most {max_depth}"
        )
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{what} {path} is not valid TOML: {e}") from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise ValueError(f"{what} {path} nests too deep") from None
