"""What a run directory guarantees: one writer, atomic files with the user's mode, the
completion marker last, and sweep workers that end with their parent."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from eapu import rundir
from eapu.experiments import RunConfig, run
from eapu.files import atomic_write

TINY = dict(task="denoise", method="eapu", steps=4, eval_every=2, eval_samples=16)


def test_a_second_writer_is_refused_while_the_first_holds_the_directory(
    tmp_path: Path,
) -> None:
    out = tmp_path / "r"
    # The first writer is another process holding the lock, as a concurrent `eapu run` does.
    code = (
        "import sys, time; from eapu.rundir import hold\n"
        "with hold(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)\n"
    )
    first = subprocess.Popen(
        [sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "held"
        with pytest.raises(rundir.RunDirBusy, match=r"another eapu process.*--out"):
            run(RunConfig(**TINY), out)
        assert not (out / "config.json").exists()  # the refused writer wrote nothing
    finally:
        first.kill()
        first.wait()
    # The kernel released the killed writer's lock: the directory is usable again.
    metrics = run(RunConfig(**TINY), out)
    assert metrics["steps"] == 4


def test_the_completion_marker_is_written_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []
    real = os.replace

    def spy(src: str | Path, dst: str | Path) -> None:
        order.append(Path(dst).name)
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    run(RunConfig(**TINY), tmp_path)
    assert order[-1] == rundir.COMPLETION_MARKER
    assert "checkpoint.pt" in order[:-1] and "energy.json" in order[:-1]
    assert rundir.is_finished(tmp_path)


def test_a_run_killed_before_its_marker_resumes_and_finishes(tmp_path: Path) -> None:
    full = run(RunConfig(**TINY), tmp_path / "a")
    run(RunConfig(**TINY), tmp_path / "b")
    (tmp_path / "b" / rundir.COMPLETION_MARKER).unlink()  # killed just before the marker
    assert not rundir.is_finished(tmp_path / "b")
    again = run(RunConfig(**TINY), tmp_path / "b")
    assert rundir.is_finished(tmp_path / "b")
    assert again["ssim"] == full["ssim"] and again["pulses"] == full["pulses"]


def test_stale_temp_files_of_a_killed_writer_are_removed(tmp_path: Path) -> None:
    (tmp_path / rundir.LOCK_NAME).touch()  # the killed writer's directory
    (tmp_path / ".checkpoint.pt.deadbeef.tmp").write_bytes(b"half")
    (tmp_path / "keep.txt").write_text("mine")
    with rundir.hold(tmp_path):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "keep.txt"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_result_files_follow_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "report.html", b"<html></html>")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "report.html").stat().st_mode)
    assert mode == 0o666 & ~umask


def test_a_run_directory_is_readable_by_others_under_umask_022(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        run(RunConfig(**TINY), tmp_path)
    finally:
        os.umask(old)
    for name in ("config.json", "metrics.json", "checkpoint.pt", "history.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert json.loads((tmp_path / "metrics.json").read_text())["steps"] == 4
    torch.load(tmp_path / "checkpoint.pt", weights_only=True)


def _children(pid: int) -> list[int]:
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(d.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_killed_sweep_takes_its_workers_with_it(tmp_path: Path) -> None:
    eapu = Path(sys.executable).with_name("eapu")
    cmd = [str(eapu)] if eapu.exists() else [sys.executable, "-m", "eapu.cli"]
    parent = subprocess.Popen(
        [
            *cmd,
            "sweep",
            "denoise",
            "--method",
            "eapu",
            "--steps",
            "100000",
            "--grid",
            "sd_us=1,2",
            "--workers",
            "1",
            "--out",
            str(tmp_path / "sw"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while time.monotonic() < deadline and not workers:
            time.sleep(0.5)
            workers = [k for k in _children(parent.pid) if _is_pool_worker(k)]
        assert workers, "the sweep started no worker"
        time.sleep(2)  # the worker is training now
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.2)
        left = [w for w in workers if _alive(w)]
        for w in left:
            os.kill(w, signal.SIGKILL)
        assert not left, "a worker outlived its killed sweep"
    finally:
        parent.kill()
        parent.wait()


def _is_pool_worker(pid: int) -> bool:
    try:
        cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False
    return b"spawn_main" in cmdline and _alive(pid)


@pytest.mark.parametrize("method", ["ex-situ", "eapu+mp"])
def test_a_finished_run_is_returned_as_recorded_not_rebuilt(tmp_path: Path, method: str) -> None:
    """Rerunning a finished run (a comparison run again, say) returns its metrics and
    touches nothing; a programmed-once run's checkpoint holds analog layers a fresh digital
    network could not load."""
    cfg = RunConfig(**{**TINY, "method": method})
    first = run(cfg, tmp_path)
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    again = run(cfg, tmp_path)
    assert again == json.loads((tmp_path / "metrics.json").read_text())
    assert again["ssim"] == first["ssim"]
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == stamps
