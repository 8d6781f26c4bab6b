"""A run directory has one writer at a time, and says when it is finished.

What a run directory guarantees (``eapu run``, ``eapu compare``, sweep points, DDP runs):

- **One writer.** The writer holds an exclusive lock on ``<dir>/.lock`` (an OS file lock via
  `filelock`, released by the kernel when the process dies, also on ``kill -9``) for the
  whole run; a second writer is refused at once with `RunDirBusy`.
- **Atomic files.** Every file is written through a temporary file and ``os.replace``
  (`eapu.files`), so a reader never sees half a file. Temporary files a killed writer left
  behind are removed by the next writer (`clean_stale`).
- **Completion marker last.** ``metrics.json`` is written after every other file, the final
  checkpoint included: a directory with ``metrics.json`` is finished (`is_finished`), one
  without it resumes from its checkpoint.

>>> import tempfile
>>> d = tempfile.mkdtemp()
>>> with hold(d):
...     is_finished(d)
False
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

__all__ = [
    "COMPLETION_MARKER",
    "LOCK_NAME",
    "RunDirBusy",
    "clean_stale",
    "hold",
    "is_finished",
    "name_part",
]

#: Written last: its presence means the run finished and every other file is final.
COMPLETION_MARKER = "metrics.json"
#: The lock file a writer holds for the whole run.
LOCK_NAME = ".lock"


class RunDirBusy(ValueError):
    """Another process is writing the run directory."""


def clean_stale(run_dir: str | Path) -> list[Path]:
    """Remove the temporary files (``.NAME.*.tmp``) a killed writer left; returns them.

    Call it only while holding the directory's lock: then no writer is mid-write.
    """
    stale = sorted(Path(run_dir).glob(".*.tmp"))
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


@contextmanager
def hold(run_dir: str | Path) -> Iterator[Path]:
    """Create ``run_dir`` if needed and hold its writer lock for the ``with`` block.

    Raises:
        RunDirBusy: another process (or another ``hold`` in this one) holds it.
    """
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunDirBusy(
            f"run directory {out} is being written by another eapu process (it holds "
            f"{out / LOCK_NAME}); wait for it to finish or choose another --out"
        ) from None
    try:
        clean_stale(out)
        yield out
    finally:
        lock.release()


def is_finished(run_dir: str | Path) -> bool:
    """Whether the run in ``run_dir`` finished (its completion marker exists)."""
    return (Path(run_dir) / COMPLETION_MARKER).exists()


def name_part(v: Any) -> str:
    """A value as it appears in a directory name: ``2.0`` -> ``2``, ``1/80`` -> ``0.0125``."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"grid values must be finite, got {v!r}")
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    if isinstance(v, str):
        return re.sub(r"[^A-Za-z0-9.+-]", "-", v) or "empty"
    raise ValueError(f"grid values must be numbers, strings or None, got {v!r}")
