"""Safe on a shared machine and against odd files (issue #26): nothing written outside
``--out`` or over another tool's files, bounded inputs, names printed as text, broken
plugins skipped, faults (a full disk, a read-only file system, SIGINT, SIGTERM) as one line
with the run left resumable. The one-message-and-exit-2 cases are in test_bad_input.py."""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from eapu import files, rundir
from eapu.cli import app
from eapu.devices import get_device, save_device
from eapu.experiments import RunConfig, run
from eapu.registry import Registry

SRC = Path(__file__).resolve().parents[1] / "src"
TINY = dict(task="denoise", method="eapu", steps=4, eval_every=2, eval_samples=8)


def _tree(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


# ----------------------------------------------------------------------- names and paths
def test_name_part_never_leaves_its_directory_and_never_collides() -> None:
    rng = random.Random(0)
    alphabet = "aZ09._-+/\\ ~*?[]{}$`'\"\n\x00é€"
    values: set[str] = {"", ".", "..", "../..", "/", "a/../b", ".hidden", "x" * 500}
    values |= {
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80))) for _ in range(3000)
    }
    names: dict[str, str] = {}
    for v in values:
        n = rundir.name_part(v)
        assert n and len(n) <= rundir.MAX_NAME_PART, (v, n)
        assert "/" not in n and "\\" not in n and "\x00" not in n and ".." not in n, (v, n)
        assert not n.startswith("."), (v, n)
        assert (Path("/base") / f"k={n}").resolve().parent == Path("/base")
        # only "_" / "-" may merge two values (grids and tuning refuse such repeats)
        key = v.replace("_", "-")
        assert names.setdefault(n, key) == key, (v, names[n], n)
    assert rundir.name_part("taox_1t1r") == "taox-1t1r"  # as sweeps always named it
    assert rundir.name_part(2.0) == rundir.name_part(2) == "2"
    assert rundir.name_part(10**30) != rundir.name_part(10**30 + 1)
    assert rundir.name_part("../../x/y.toml") == rundir.name_part("../../x/y.toml")  # stable


def test_compare_tune_writes_nothing_outside_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--tune device=../../../../x.toml`` named a directory four levels above --out."""
    deep = tmp_path / "w" / "a" / "b" / "c" / "d" / "e"
    deep.mkdir(parents=True)
    save_device(get_device("ideal"), tmp_path / "x.toml")
    monkeypatch.chdir(deep)
    out = tmp_path / "o" / "o" / "o"
    before = _tree(tmp_path)
    r = CliRunner().invoke(
        app,
        [
            "compare",
            "classify",
            "--methods",
            "software",
            "--steps",
            "1",
            "--eval-samples",
            "8",
            "--tune",
            "device=ideal,../../../../../../x.toml",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    new = _tree(tmp_path) - before
    outside = sorted(str(p) for p in new if not p.is_relative_to(out) and p not in out.parents)
    assert not outside, outside
    tuned = sorted(p.name for p in (out / "tune" / "software").iterdir())
    assert tuned[0] == "device=ideal" and tuned[1].startswith("device=x.toml~"), tuned


# ------------------------------------------------------------------ another tool's files
def test_another_tools_directory_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "config.json").write_text('{"theme": "dark"}')
    (theirs / "history.csv").write_text("their,data\n")
    with pytest.raises(ValueError, match="not empty and was not written by eapu"):
        run(RunConfig(**TINY), theirs)
    assert sorted(p.name for p in theirs.iterdir()) == ["config.json", "history.csv"]
    assert (theirs / "config.json").read_text() == '{"theme": "dark"}'
    # eapu's own directories are taken: new, empty, a run, an interrupted comparison
    run(RunConfig(**TINY), tmp_path / "new")
    run(RunConfig(**TINY), tmp_path / "new")  # finished: returned as recorded
    (tmp_path / "cmp" / "eapu").mkdir(parents=True)
    (tmp_path / "cmp" / "eapu" / rundir.LOCK_NAME).touch()
    assert rundir.is_eapu_dir(tmp_path / "cmp")
    assert not rundir.is_eapu_dir(theirs)


# ------------------------------------------------------------------------ bounded inputs
@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("a = 1\nb.c.d = [1.5, 2.5, [3]]\n[x.y]\nz = {q = 1, r.s = [{t = 2}]}\n", True),
        ('s = "a.b.c[[[[\\"[["\nk = 1\n', True),
        ("m = '''[[[[\n]]]'''\nk.k = 1\n", True),
        ("x = [\n [1,\n  2], # [[[[\n]\n", True),
        ("[[arr]]\nname = 1\n[[arr]]\nname = 2\n", True),
        ("a = " + "[" * 65 + "]" * 65 + "\n", False),
        (".".join(["a"] * 65) + " = 1\n", False),
        ("[" + ".".join(["a"] * 65) + "]\n", False),
        ("a = " + "{b = " * 40 + "1" + "}" * 40 + "\n", True),
        ("a = " + "{b = " * 70 + "1" + "}" * 70 + "\n", False),
    ],
)
def test_toml_nesting_is_bounded_before_parsing(tmp_path: Path, text: str, ok: bool) -> None:
    import tomllib

    p = tmp_path / "x.toml"
    p.write_text(text)
    if ok:
        assert files.read_toml(p) == tomllib.loads(text)
    else:
        with pytest.raises(ValueError, match=r"x\.toml: line 1 nests 65 levels deep"):
            files.read_toml(p)


def test_a_hostile_toml_costs_neither_time_nor_memory(tmp_path: Path) -> None:
    """3000-deep arrays (RecursionError in tomllib) and a 100 kB dotted key (7 GB there)."""
    p = tmp_path / "x.toml"
    for text in ("a = " + "[" * 3000 + "]" * 3000, ".".join(["a"] * 50_000) + " = 1"):
        p.write_text(text)
        t0 = time.perf_counter()
        with pytest.raises(ValueError, match="levels deep"):
            files.read_toml(p)
        assert time.perf_counter() - t0 < 2.0  # a bound, not a benchmark: the scan is linear
    p.write_bytes(b"\n" * (files.MAX_TOML_BYTES + 1))
    with pytest.raises(ValueError, match="larger than 1 MiB"):
        files.read_toml(p)


def test_a_pulse_train_file_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import eapu.devices.fit as fit

    p = tmp_path / "SET.csv"
    p.write_text("ramp1,ramp2\n" + "1,2\n" * 300)
    monkeypatch.setattr(fit, "MAX_CSV_BYTES", 1024)
    with pytest.raises(ValueError, match=r"SET\.csv is larger than 1 kiB"):
        fit.read_pulse_trains(p, units="uS", polarity="set")


def test_an_error_echoes_at_most_200_characters_of_a_value(tmp_path: Path) -> None:
    from eapu import validate

    with pytest.raises(ValueError) as e:
        validate.number("lr", "x" * 10_000_000)
    assert len(str(e.value)) < 400 and "(10000000 characters)" in str(e.value)
    with pytest.raises(ValueError) as e:
        get_device("d" * 1_000_000)
    assert len(str(e.value)) < 1000


# --------------------------------------------------------------------------- images
def test_an_image_folder_stays_inside_its_tree(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from eapu.data import ImageFolder

    outside = tmp_path / "outside"
    outside.mkdir()
    Image.fromarray(np.full((8, 8), 200, dtype=np.uint8)).save(outside / "secret.png")
    root = tmp_path / "data"
    (root / "cat").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(root / "cat" / "a.png")
    (root / "cat" / "b.png").symlink_to(root / "cat" / "a.png")  # inside: followed
    assert len(ImageFolder(root, size=8)) == 2
    (root / "cat" / "c.png").symlink_to(outside / "secret.png")
    with pytest.raises(ValueError, match=r"c\.png is a symbolic link to .*secret\.png, outside"):
        ImageFolder(root, size=8)
    (root / "cat" / "c.png").unlink()
    (root / "dog").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match=r"dog is a symbolic link .* outside the data directory"):
        ImageFolder(root, size=8)
    assert len(ImageFolder(root, size=8, follow_links=True)) == 3  # asked to


def test_a_bomb_or_broken_image_is_named_and_nothing_is_decoded(tmp_path: Path) -> None:
    from test_bad_input import _png_header

    from eapu.data import ImageFolder

    root = tmp_path / "data"
    (root / "cat").mkdir(parents=True)
    (root / "cat" / "bomb.png").write_bytes(_png_header(100_000, 100_000))
    with pytest.raises(ValueError, match=r"bomb\.png claims more pixels .*10000000000 pixels"):
        ImageFolder(root, size=8).to_memory()
    (root / "cat" / "bomb.png").write_bytes(_png_header(10_000, 10_000))  # under Pillow's 2x
    with pytest.raises(ValueError, match=r"bomb\.png claims more pixels .*100000000 pixels"):
        ImageFolder(root, size=8).to_memory()
    (root / "cat" / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(ValueError, match=r"bomb\.png cannot be read as an image"):
        ImageFolder(root, size=8).to_memory()


# ------------------------------------------------------------------- markup and JSON
def test_names_are_printed_as_text_not_markup(tmp_path: Path) -> None:
    """A ``[/x]`` in a device name crashed the command after its work was done; a
    ``[link=...]`` would have put a hyperlink in the terminal."""
    name = "evil [/x] [link=http://example.invalid]click[/link]"
    dev = tmp_path / "evil.toml"
    save_device(dataclasses.replace(get_device("ideal"), name=name), dev)
    r = CliRunner().invoke(app, ["characterize", str(dev), "--cells", "64"])
    assert r.exit_code == 0, r.output
    assert "[/x]" in r.output and "[link=http://example.invalid]" in r.output
    assert "\x1b]8;" not in r.output  # no OSC 8 hyperlink escape


def test_json_output_is_valid_json_without_nan(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    run(RunConfig(**TINY), run_dir)
    m = json.loads((run_dir / "metrics.json").read_text())
    (run_dir / "metrics.json").write_text(json.dumps({**m, "ssim": math.nan, "psnr": -math.inf}))
    r = CliRunner().invoke(app, ["report", str(run_dir), "--json"])
    assert r.exit_code == 0, r.output

    def no_constants(c: str) -> Any:
        raise AssertionError(f"{c} in --json output")

    doc = json.loads(r.stdout, parse_constant=no_constants)
    assert doc["metrics"]["ssim"] is None and doc["metrics"]["psnr"] is None
    assert doc["metrics"]["steps"] == 4


# ------------------------------------------------------------------- silently wrong
def test_a_batch_larger_than_the_training_set_is_refused(tmp_path: Path) -> None:
    """It trained on the 1438 images but billed energy for the 5000 asked."""
    with pytest.raises(ValueError, match="Invalid batch_size: 5000; allowed: at most the 1438"):
        run(RunConfig(task="classify", method="software", steps=1, batch_size=5000), tmp_path)


def test_retention_refuses_a_negative_seed_and_an_unfinished_run(tmp_path: Path) -> None:
    from eapu.experiments import retention

    run(RunConfig(**TINY), tmp_path / "r")
    with pytest.raises(ValueError, match="Invalid seed: -1"):
        retention(tmp_path / "r", [0.0], seed=-1)
    (tmp_path / "r" / rundir.COMPLETION_MARKER).unlink()
    with pytest.raises(ValueError, match="unfinished run"):
        retention(tmp_path / "r", [0.0])


# ----------------------------------------------------------------------------- faults
def _failing_writes(monkeypatch: pytest.MonkeyPatch, name: str, err: int) -> None:
    """Writes of ``name`` through `eapu.files.atomic_write` fail with ``err`` (a full disk,
    a read-only file system) the way the kernel fails them: on write or on create."""
    real_fdopen, real_open = os.fdopen, os.open

    def fdopen(fd: int, *a: Any, **k: Any) -> Any:
        f = real_fdopen(fd, *a, **k)
        if f"/.{name}." in os.readlink(f"/proc/self/fd/{fd}"):

            def write(data: bytes) -> int:
                raise OSError(err, os.strerror(err))

            f.write = write
        return f

    def open_(path: Any, *a: Any, **k: Any) -> int:
        if err == errno.EROFS and f"/.{name}." in str(path):
            raise OSError(err, os.strerror(err), str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(files.os, "fdopen", fdopen)
    monkeypatch.setattr(files.os, "open", open_)


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize(
    ("err", "says"),
    [(errno.ENOSPC, "No space left on device"), (errno.EROFS, "Read-only file system")],
)
def test_a_full_disk_or_read_only_fs_is_one_line_and_the_run_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int, says: str
) -> None:
    out = tmp_path / "r"
    argv = ["run", "denoise", "--method", "eapu", "--steps", "4", "--eval-every", "2"]
    argv += ["--eval-samples", "8", "--out", str(out)]
    with monkeypatch.context() as m:
        _failing_writes(m, "history.csv", err)  # written at the end, after the checkpoints
        r = CliRunner().invoke(app, argv)
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith(f"Error: {says}: {out / 'history.csv'}; "), r.stderr
    assert "Traceback" not in r.output and len(r.stderr.splitlines()) == 2
    assert not list(out.glob(".*.tmp")) and not rundir.is_finished(out)
    ck = files.load_checkpoint(out / "checkpoint.pt")  # intact: the one of step 2
    assert ck["step"] == 2
    again = CliRunner().invoke(app, argv)  # space again: the same command finishes it
    assert again.exit_code == 0, again.output
    assert rundir.is_finished(out)
    whole = run(RunConfig(**TINY), tmp_path / "whole")
    done = json.loads((out / "metrics.json").read_text())
    assert done["ssim"] == whole["ssim"] and done["pulses"] == whole["pulses"]


def test_an_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("mine")
    with pytest.raises(ValueError, match="is an existing file"):
        run(RunConfig(**TINY), tmp_path / "f")
    assert (tmp_path / "f").read_text() == "mine"


def _env(extra_path: Path | None = None) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(SRC), *([str(extra_path)] if extra_path else []), env.get("PYTHONPATH", "")]
    )
    return env


INTERRUPTED = (
    "Interrupted by {}: stopped; every run directory keeps its last checkpoint, and the same "
    "command resumes it."
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_stops_cleanly_in_one_line_and_the_run_resumes(tmp_path: Path) -> None:
    """A real process and a real signal: the handler the command line installs."""
    out = tmp_path / "r"
    argv = ["run", "denoise", "--method", "eapu", "--steps", "100000", "--eval-every", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "eapu", *argv, "--eval-samples", "8", "--out", str(out)],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.1)
        assert (out / "checkpoint.pt").exists(), "no checkpoint was written"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 143, err
    assert [ln for ln in err.splitlines() if ln.strip()] == [INTERRUPTED.format("SIGTERM")], err
    assert not list(out.glob(".*.tmp"))
    assert files.load_checkpoint(out / "checkpoint.pt")["step"] >= 1
    with rundir.hold(out):  # the lock was released
        pass


def test_ctrl_c_stops_cleanly_in_one_line_and_the_run_resumes_to_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import eapu.experiments.runner as runner

    real = runner.save_checkpoint

    def then_ctrl_c(*a: Any, **k: Any) -> None:
        real(*a, **k)
        raise KeyboardInterrupt  # as Python raises it on SIGINT, just after the checkpoint

    out = tmp_path / "r"
    argv = ["run", "denoise", "--method", "eapu", "--steps", "4", "--eval-every", "2"]
    argv += ["--eval-samples", "8", "--out", str(out)]
    with monkeypatch.context() as m:
        m.setattr(runner, "save_checkpoint", then_ctrl_c)
        r = CliRunner().invoke(app, argv)
    assert r.exit_code == 130, r.output
    assert r.stderr.splitlines() == [INTERRUPTED.format("SIGINT")], r.stderr
    assert files.load_checkpoint(out / "checkpoint.pt")["step"] == 2
    assert CliRunner().invoke(app, argv).exit_code == 0
    whole = run(RunConfig(**TINY), tmp_path / "whole")
    assert json.loads((out / "metrics.json").read_text())["ssim"] == whole["ssim"]


# ---------------------------------------------------------------------------- plugins
def _broken_plugins(root: Path) -> Path:
    """A distribution ``badplug`` whose device entry points fail in every way."""
    dist = root / "badplug-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: badplug\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[eapu.devices]\n"
        "exits = badplug_exit:dev\n"
        "raises = badplug_raise:dev\n"
        "notfactory = badplug_ok:CONST\n"
        "wrongtype = badplug_ok:wrong\n"
        "[eapu.tasks]\n"
        "exits_too = badplug_exit:dev\n"
    )
    (root / "badplug_exit.py").write_text("import sys\nsys.exit(3)\n")
    (root / "badplug_raise.py").write_text("raise RuntimeError('boom at import')\n")
    (root / "badplug_ok.py").write_text(
        "CONST = 3\n\ndef wrong(**kw):\n    'A device factory returning a string.'\n"
        "    return 'not a device'\n"
    )
    return root


def test_broken_plugins_are_skipped_with_one_warning_each(tmp_path: Path) -> None:
    """On main, ``eapu --version`` exited 3 without a word (a plugin's sys.exit)."""
    root = _broken_plugins(tmp_path / "plugins")
    r = subprocess.run(
        [sys.executable, "-m", "eapu", "--version"],
        env=_env(root),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and r.stdout.startswith("eapu "), r
    warned = r.stderr.splitlines()  # the CLI's options list every registry: all are loaded
    assert len(warned) == 4 and all(ln.startswith("warning: skipped ") for ln in warned), r.stderr
    for plugin, why in (
        ("device plugin 'exits'", "sys.exit(3)"),
        ("device plugin 'raises'", "RuntimeError: boom at import"),
        ("device plugin 'notfactory'", "names the int 3, not a factory"),
        ("task plugin 'exits_too'", "sys.exit(3)"),
    ):
        assert any(plugin in ln and "package badplug 1.0" in ln and why in ln for ln in warned), (
            plugin,
            r.stderr,
        )


def test_a_plugin_device_of_the_wrong_type_is_named_before_a_run() -> None:
    from eapu.experiments.config import usable_device

    with pytest.raises(ValueError, match="device 'wrongtype' gives 'not a device', not a Device"):
        usable_device("not a device", "wrongtype")
    dev = get_device("ideal")
    assert usable_device(dev, "ideal") is dev


def test_a_registry_guards_what_a_plugin_factory_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "plugins"
    dist = root / "thingplug-2.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thingplug\nVersion: 2.0\n")
    (dist / "entry_points.txt").write_text(
        "[eapu_test.things]\ngood = thingplug:good\nwrong = thingplug:wrong\n"
        "fails = thingplug:fails\n"
    )
    (root / "thingplug.py").write_text(
        "def good():\n    return 1.5\n\ndef wrong():\n    return 'x'\n\n"
        "def fails():\n    raise KeyError('inside')\n"
    )
    monkeypatch.syspath_prepend(str(root))
    things: Registry[Any] = Registry(
        "thing",
        entry_point_group="eapu_test.things",
        from_entry_point=lambda n, f: f,
        returns=float,
    )
    things.add("builtin", lambda: 0.5)
    assert things.names() == ["builtin", "fails", "good", "wrong"]
    assert things.get("good")() == 1.5
    with pytest.raises(
        ValueError,
        match=r"thing plugin 'wrong' \(thingplug:wrong of package "
        r"thingplug 2\.0\) returned the str 'x', not a float",
    ):
        things.get("wrong")()
    with pytest.raises(ValueError, match=r"thing plugin 'fails' .* failed: KeyError"):
        things.get("fails")()
    assert torch.is_tensor(torch.zeros(1))  # nothing global was touched


@pytest.mark.parametrize(
    ("registry", "kind"),
    [
        ("eapu.devices:DEVICES", "Device"),
        ("eapu.models:MODELS", "Module"),
        ("eapu.data:DATASETS", "Dataset"),
    ],
)
def test_the_real_registries_say_what_a_plugin_must_return(registry: str, kind: str) -> None:
    """A plugin device, model or data set factory of the wrong type is refused by name, in
    the registry, before a run builds it (it used to fail later with a traceback)."""
    import importlib

    module, name = registry.split(":")
    reg = getattr(importlib.import_module(module), name)
    assert reg.returns is not None and reg.returns.__name__ == kind
