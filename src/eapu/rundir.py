"""A run directory has one writer at a time, and says when it is finished.

What a run directory guarantees (``eapu run``, ``eapu compare``, sweep points, DDP runs):

- **One writer.** The writer holds an exclusive lock on ``<dir>/.lock`` (an OS file lock via
  `filelock`, released by the kernel when the process dies, also on ``kill -9``) for the
  whole run; a second writer is refused at once with `RunDirBusy`.
- **Atomic files.** Every file is written through a temporary file and ``os.replace``
  (`eapu.files`), so a reader never sees half a file. Temporary files a killed writer left
  behind are removed by the next writer (`clean_stale`).
- **Only its own directory.** A writer takes a new or empty directory, or one eapu wrote
  (`is_eapu_dir`: it holds ``.lock``, an eapu ``config.json``, ``compare.json`` or
  ``sweep.json``); a non-empty directory of another tool's files, or a file, is refused
  (`claim`) before anything is written, so nothing of it is overwritten.
- **Names from values are names.** Every directory name built from a user's value goes
  through `name_part`: no path separator, no ``..``, no leading dot, bounded length, and a
  hash suffix where the value had to be changed, so a value never writes outside ``--out``
  and two values never share a directory.
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

import hashlib
import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from filelock import FileLock, Timeout

__all__ = [
    "COMPLETION_MARKER",
    "LOCK_NAME",
    "MAX_NAME_PART",
    "RunDir",
    "RunDirBusy",
    "claim",
    "clean_stale",
    "hold",
    "is_eapu_dir",
    "is_finished",
    "name_part",
]

#: Written last: its presence means the run finished and every other file is final.
COMPLETION_MARKER = "metrics.json"
#: The lock file a writer holds for the whole run.
LOCK_NAME = ".lock"
#: Files only eapu writes at the top of its directories (runs, comparisons, sweeps).
MARKERS = (LOCK_NAME, "compare.json", "sweep.json")
#: How a device file eapu wrote begins (`eapu.devices.device_toml`).
DEVICE_FILE_HEADER = b"# eapu device file"
#: The longest directory name `name_part` gives.
MAX_NAME_PART = 64


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
    out = claim(run_dir)
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


def _eapu_config(path: Path) -> bool:
    """Whether ``path`` is a ``config.json`` eapu wrote (a run's resolved config)."""
    try:
        if path.stat().st_size > 1 << 20:
            return False
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and {"task", "method", "device", "seed", "steps"} <= set(doc)


def _starts(path: Path, head: bytes) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(len(head)) == head
    except OSError:
        return False


def is_eapu_dir(path: str | Path, *, depth: int = 3) -> bool:
    """Whether ``path`` is a directory eapu wrote: it holds one of `MARKERS`, an eapu
    ``config.json`` or an eapu ``device.toml``, or (a comparison or sweep interrupted before
    its own file) only directories, one of which is eapu's (looking ``depth`` levels down)."""
    d = Path(path)
    if any((d / m).exists() for m in MARKERS) or _eapu_config(d / "config.json"):
        return True
    if _starts(d / "device.toml", DEVICE_FILE_HEADER):  # a device report's, a narrow-range run's
        return True
    if depth <= 0 or not d.is_dir():
        return False
    subdirs = []
    for p in d.iterdir():
        if not p.is_dir() or p.is_symlink():
            return False
        subdirs.append(p)
    return any(is_eapu_dir(p, depth=depth - 1) for p in subdirs)


def claim(path: str | Path) -> Path:
    """Create ``path`` as a directory for eapu to write, or check that it may: a new or
    empty directory, or one eapu wrote (`is_eapu_dir`); returns it.

    Raises:
        ValueError: ``path`` is a file, or a non-empty directory of another tool's files
            (whose config.json, history.csv or report.html a run would overwrite).
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ValueError(
            f"{out} is an existing file, not a directory; give a new or empty directory as --out"
        )
    if out.is_dir() and next(out.iterdir(), None) is not None and not is_eapu_dir(out):
        raise ValueError(
            f"{out} is not empty and was not written by eapu (it has no {LOCK_NAME}, eapu "
            "config.json, compare.json or sweep.json); eapu would overwrite files there, "
            "so give a new or empty directory as --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


@dataclass(frozen=True)
class RunDir:
    """A run (or comparison) directory and the one place its files' names are written.

    >>> RunDir("runs/dae").metrics.as_posix()
    'runs/dae/metrics.json'
    """

    path: Path

    #: The files of a run directory; ``metrics.json`` is the completion marker, written last.
    FILES: ClassVar[dict[str, str]] = {
        "config": "config.json",
        "metrics": COMPLETION_MARKER,
        "history": "history.csv",
        "energy": "energy.json",
        "checkpoint": "checkpoint.pt",
        "samples": "samples.npz",
        "placement": "placement.txt",
        "compare": "compare.json",
        "report": "report.html",
    }

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    def _file(self, key: str) -> Path:
        return self.path / self.FILES[key]

    @property
    def config(self) -> Path:
        """``config.json``: the resolved config and the record of what produced the run."""
        return self._file("config")

    @property
    def metrics(self) -> Path:
        """``metrics.json``: the final metrics; written last, its presence means finished."""
        return self._file("metrics")

    @property
    def history(self) -> Path:
        """``history.csv``: one row per step, the evaluated ones with their metrics."""
        return self._file("history")

    @property
    def energy(self) -> Path:
        """``energy.json``: the operation counts of the run."""
        return self._file("energy")

    @property
    def checkpoint(self) -> Path:
        """``checkpoint.pt``: everything to resume (loads with ``weights_only=True``)."""
        return self._file("checkpoint")

    @property
    def samples(self) -> Path:
        """``samples.npz``: inputs, outputs and targets of a few test images."""
        return self._file("samples")

    @property
    def placement(self) -> Path:
        """``placement.txt``: the crossbar's map."""
        return self._file("placement")

    @property
    def compare(self) -> Path:
        """``compare.json``: a comparison directory's rows."""
        return self._file("compare")

    @property
    def report(self) -> Path:
        """``report.html``: the self-contained page."""
        return self._file("report")

    @property
    def finished(self) -> bool:
        """Whether the run finished (its completion marker exists)."""
        return self.metrics.exists()


def is_finished(run_dir: str | Path) -> bool:
    """Whether the run in ``run_dir`` finished (its completion marker exists)."""
    return RunDir(run_dir).finished


_CLEAN = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9._+-]*")


def name_part(v: Any) -> str:
    """A value as it appears in a directory name: ``2.0`` -> ``2``, ``1/80`` -> ``0.0125``.

    A string keeps its characters if they are letters, digits and ``._+-`` (``_`` becomes
    ``-``, as it always did: ``taox_1t1r`` -> ``taox-1t1r``), it does not start with a dot
    and holds no ``..``, and it is at most `MAX_NAME_PART` long. Any other value (a path,
    ``../x``, a space, a long string, a huge integer) is cut to its safe characters and gets
    ``~`` and 8 hex digits of its SHA-256: the name never leaves its directory, and two
    values give one name only where they differ by ``_`` / ``-`` or a number's form
    (``2`` and ``2.0``), which grids and tuning refuse as repeats.

    >>> name_part("../../x/y.toml")
    'x-y.toml~77594f14'
    """
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v) if abs(v) < 10**20 else _hashed("int", hex(v))
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"grid values must be finite, got {v!r}")
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    if isinstance(v, str):
        if not v:
            return "empty"
        if _CLEAN.fullmatch(v) and ".." not in v and len(v) <= MAX_NAME_PART:
            return v.replace("_", "-")
        return _hashed(v, v)
    raise ValueError(f"grid values must be numbers, strings or None, got {v!r:.200}")


def _hashed(text: str, value: str) -> str:
    """``text`` cut to safe characters and `MAX_NAME_PART`, with ``~`` and a hash of
    ``value`` (``~`` never appears in a name kept as it is)."""
    safe = re.sub(r"\.{2,}", "-", re.sub(r"[^A-Za-z0-9.+-]+", "-", text)).strip(".-")
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{safe[: MAX_NAME_PART - 9].rstrip('.') or 'x'}~{digest}"
