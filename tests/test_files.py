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


def test_write_json_takes_numpy_scalars_and_refuses_the_rest(tmp_path: Path) -> None:
    write_json(tmp_path / "m.json", {"a": np.float32(0.5), "b": np.int64(3)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 0.5, "b": 3}
    with pytest.raises(TypeError, match="not JSON serialisable"):
        write_json(tmp_path / "bad.json", {"x": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]
