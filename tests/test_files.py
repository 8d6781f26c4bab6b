"""Atomic result files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from eapu.files import atomic_write, write_json


def test_atomic_write_leaves_no_temp_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "report.html"
    target.write_text("old")

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, b"new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


@pytest.mark.parametrize("where", ["after-open", "mid-write", "after-replace"])
def test_a_signal_anywhere_in_the_write_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """A SIGTERM raises `Terminated` (a KeyboardInterrupt) at whatever line runs: even just
    after ``os.open`` has created the temp file, nothing but the old file is left."""
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"old")
    real_open, real_fdopen, real_replace = os.open, os.fdopen, os.replace

    def open_then_signal(*args: object, **kw: object) -> int:
        fd = real_open(*args, **kw)  # type: ignore[arg-type]
        if where == "after-open":
            os.close(fd)
            raise KeyboardInterrupt
        return fd

    class Interrupting:
        def __init__(self, f: object) -> None:
            self.f = f

        def __enter__(self) -> Interrupting:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()  # type: ignore[attr-defined]

        def write(self, data: bytes) -> None:
            raise KeyboardInterrupt

    def replace_then_signal(src: str, dst: str) -> None:
        real_replace(src, dst)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "open", open_then_signal)
    if where == "mid-write":
        monkeypatch.setattr(os, "fdopen", lambda fd, mode: Interrupting(real_fdopen(fd, mode)))
    if where == "after-replace":
        monkeypatch.setattr(os, "replace", replace_then_signal)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    assert target.read_bytes() == (b"new" if where == "after-replace" else b"old")


def test_write_json_takes_numpy_scalars_and_refuses_the_rest(tmp_path: Path) -> None:
    write_json(tmp_path / "m.json", {"a": np.float32(0.5), "b": np.int64(3)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 0.5, "b": 3}
    with pytest.raises(TypeError, match="not JSON serialisable"):
        write_json(tmp_path / "bad.json", {"x": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]
