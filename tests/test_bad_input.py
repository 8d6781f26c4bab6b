"""The bad-input table: every user mistake gets one clean message naming the flag, argument or
file that fixes it, exit status 2 on the command line (no traceback), and the promised
exception type in the API."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from eapu.cli import app
from eapu.experiments import RunConfig, run

# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny finished device-level run, broken copies of it, and bad config/data files."""
    root = tmp_path_factory.mktemp("bad")
    good = root / "good"
    run(
        RunConfig(task="denoise", method="eapu+mp", steps=2, eval_every=2, eval_samples=8),
        good,
    )
    out: dict[str, Path] = {"root": root, "good": good}

    def broken(name: str, file: str, data: bytes) -> None:
        d = root / name
        shutil.copytree(good, d)
        (d / file).write_bytes(data)
        out[name] = d

    broken("truncated_metrics", "metrics.json", b'{"ssim": 0.')
    broken("nonjson_metrics", "metrics.json", b"not json at all")
    broken("list_metrics", "metrics.json", b"[1, 2]")
    broken("truncated_energy", "energy.json", b'{"node')
    broken("nonjson_energy", "energy.json", b"\x00\x01binary")
    broken("corrupt_ckpt", "checkpoint.pt", b"PK\x03\x04 this is no checkpoint")
    broken("empty_ckpt", "checkpoint.pt", b"")
    hostile = root / "hostile"
    shutil.copytree(good, hostile)
    torch.save({"step": 1, "model": object()}, hostile / "checkpoint.pt")  # needs pickle
    out["hostile"] = hostile
    empty = root / "empty"
    empty.mkdir()
    out["empty"] = empty
    other = root / "other_model"
    run(
        RunConfig(
            task="classify", method="software", model="fc", steps=2, eval_every=2, eval_samples=8
        ),
        other,
    )
    out["other_model"] = other

    def text(name: str, data: bytes) -> None:
        p = root / name
        p.write_bytes(data)
        out[name] = p

    text("bad.toml", b"steps = = 3\n")
    text("latin1.toml", "# Gr\xfc\xdfe\nsteps = 3\n".encode("latin-1"))
    text("seed_true.toml", b"seed = true\n")
    text("data_dir_int.toml", b"data_dir = 5\n")
    text("lr_string.toml", b'lr = "fast"\n')
    text("unknown_key.toml", b"stepz = 3\n")
    text("every_float.toml", b"eval_every = 2.5\n")
    text("nodes_bad.toml", b"[mynode\n")
    # IDX files: a header whose dimensions overflow, and a gzip bomb
    mn = root / "mnist_overflow"
    mn.mkdir()
    hdr = struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">III", 2**31, 2**31, 2**31)
    for f in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        (mn / f).write_bytes(hdr)
    for f in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        (mn / f).write_bytes(struct.pack(">HBB", 0, 0x08, 1) + struct.pack(">I", 2**31))
    out["mnist_overflow"] = mn
    bomb = root / "mnist_bomb"
    bomb.mkdir()
    big = struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">III", 60000, 28, 28)
    for f in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        with gzip.open(bomb / f"{f}.gz", "wb") as g:
            g.write(big)
            g.write(bytes(1 << 27))  # 128 MiB of zeros past what the header declares
    for f in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        (bomb / f).write_bytes(struct.pack(">HBB", 0, 0x08, 1) + struct.pack(">I", 60000))
    out["mnist_bomb"] = bomb
    _safety_files(root, good, out)
    cifar = root / "cifar-10-batches-bin"
    cifar.mkdir()
    rec = bytes([201]) + bytes(3072)
    for f in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (cifar / f).write_bytes(rec * 2)
    out["cifar_bad_labels"] = root
    return out


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` × ``height`` pixels and holds none (a bomb's header)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _safety_files(root: Path, good: Path, out: dict[str, Path]) -> None:
    """The files of the safety cases (issue #26): hostile sizes and nesting, foreign
    directories, unfinished runs, broken sweeps, odd images and devices."""
    import zipfile

    from eapu.devices import get_device, save_device
    from eapu.experiments.sweep import save_manifest

    def text(name: str, data: bytes) -> None:
        p = root / name
        p.write_bytes(data)
        out[name] = p

    text("deep.toml", b"steps = " + b"[" * 3000 + b"]" * 3000 + b"\n")
    text("dotted.toml", b".".join([b"a"] * 50_000) + b" = 1\n")  # 100 kB; gigabytes in tomllib
    text("big.toml", b"# " + b"x" * (1 << 20) + b"\nsteps = 3\n")
    text("long_value.toml", b'method = "' + b"m" * 100_000 + b'"\n')
    text("lr.toml", b"lr = 0.01\n")
    text("method.toml", b'method = "eapu"\n')
    text("seed.toml", b"seed = 3\n")
    text("deep_nodes.toml", b"[n]\nv_read_v = " + b"[" * 3000 + b"]" * 3000 + b"\n")
    text("latin1_nodes.toml", "[n] # Gr\xfc\xdfe\n".encode("latin-1"))
    text("latin1.csv", "ramp1,ramp2\n1,2\n3,4 # \xb5S\n".encode("latin-1"))
    dev = root / "dev_scheme.toml"
    save_device(get_device("ideal"), dev)
    toml = re.sub(r'default_scheme = "\w+"', 'default_scheme = "wv"', dev.read_text())
    assert '"wv"' in toml
    dev.write_text(toml)
    out["dev_scheme.toml"] = dev
    text("dev_latin1.toml", "[device] # \xb5S\n".encode("latin-1"))
    text("dev_deep.toml", b"[device]\nset_step_us = " + b"[" * 3000 + b"]" * 3000 + b"\n")
    text("a_file", b"not a directory")
    # a checkpoint whose pickle is corrupt so that torch raises a KeyError (a bad memo)
    with zipfile.ZipFile(root / "memo.pt", "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02h\x2e.")
        z.writestr("archive/version", b"3\n")
        z.writestr("archive/byteorder", b"little")
    memo = root / "memo_ckpt"
    shutil.copytree(good, memo)
    shutil.copy(root / "memo.pt", memo / "checkpoint.pt")
    (memo / "metrics.json").unlink()
    out["memo_ckpt"] = memo
    # another tool's directory, full of its own files
    foreign = root / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text('{"theme": "dark"}')
    (foreign / "report.html").write_text("<p>mine</p>")
    out["foreign"] = foreign
    unfinished = root / "unfinished"  # killed before its completion marker
    shutil.copytree(good, unfinished)
    (unfinished / "metrics.json").unlink()
    out["unfinished"] = unfinished
    unf_compare = root / "unfinished_compare"  # a comparison killed before compare.json
    shutil.copytree(good, unf_compare / "software")
    (unf_compare / "software" / "metrics.json").unlink()
    out["unfinished_compare"] = unf_compare
    nan_run = root / "nan_run"
    shutil.copytree(good, nan_run)
    metrics = json.loads((nan_run / "metrics.json").read_text())
    (nan_run / "metrics.json").write_text(json.dumps({**metrics, "ssim": float("nan")}))
    out["nan_run"] = nan_run
    # sweeps: finished (written by hand: nothing trains), corrupt, not a manifest
    sw = root / "sweep"
    base = {"method": "eapu", "steps": 1, "eval_samples": 8}
    save_manifest("classify", base, {"sd_us": [1]}, sw)
    point = sw / "sd_us=1" / "seed=0"
    point.mkdir(parents=True)
    cfg = RunConfig(task="classify", seed=0, sd_us=1, **base).resolved()
    (point / "config.json").write_text(json.dumps(cfg.as_dict()))
    (point / "metrics.json").write_text(json.dumps({"accuracy": 0.5, "loss": 1.0}))
    out["sweep"] = sw
    for name, data in (("sweep_corrupt", b'{"task": '), ("sweep_nomanifest", b'{"task": "x"}')):
        d = root / name
        d.mkdir()
        (d / "sweep.json").write_bytes(data)
        out[name] = d
    sw_bad_point = root / "sweep_bad_point"
    shutil.copytree(sw, sw_bad_point)
    (sw_bad_point / "sd_us=1" / "seed=0" / "metrics.json").write_text("[1, 2]")
    out["sweep_bad_point"] = sw_bad_point
    # image folders: a bomb, an unreadable image, a class folder linked out of the tree
    for name, data in (("bomb", _png_header(30_000, 30_000)), ("garbage", b"GIF89a nothing")):
        for split in ("train", "test"):
            d = root / f"img_{name}" / split / "cat"
            d.mkdir(parents=True)
            (d / "a.png").write_bytes(data)
        out[f"img_{name}"] = root / f"img_{name}"
    linked = root / "img_linked"
    for split in ("train", "test"):
        (linked / split).mkdir(parents=True)
        (linked / split / "etc").symlink_to("/etc", target_is_directory=True)
    out["img_linked"] = linked


# ------------------------------------------------------------------------------ the table
# (argv, what the message must name). {name} is replaced by the fixture file's path.
R = ["run", "denoise", "--steps", "1"]
C = ["compare", "denoise", "--steps", "1"]
S = ["sweep", "classify", "--steps", "1", "--method", "eapu"]
CLI_CASES: list[tuple[list[str], str]] = [
    # run: numbers out of range
    ([*R, "--batch-size", "0"], "--batch-size"),
    ([*R, "--batch-size", "-3"], "--batch-size"),
    (["run", "denoise", "--steps", "0"], "--steps"),
    (["run", "denoise", "--steps", "-2"], "--steps"),
    ([*R, "--lr", "0"], "--lr"),
    ([*R, "--lr", "-1e-3"], "--lr"),
    ([*R, "--lr", "nan"], "--lr"),
    ([*R, "--lr", "inf"], "--lr"),
    ([*R, "--eval-every", "0"], "--eval-every"),
    ([*R, "--seed", "-1"], "--seed"),
    ([*R, "--sd-us", "-1"], "--sd-us"),
    ([*R, "--sd-us", "nan"], "--sd-us"),
    ([*R, "--rwg", "0"], "--rwg"),
    ([*R, "--rwg", "-0.1"], "--rwg"),
    ([*R, "--rwg", "inf"], "--rwg"),
    ([*R, "--threshold-us", "-1"], "--threshold-us"),
    ([*R, "--threshold-us", "nan"], "--threshold-us"),
    ([*R, "--width", "0"], "--width"),
    (["run", "classify", "--model", "fc", "--width", "3", "--steps", "1"], "--width"),
    ([*R, "--eval-samples", "0"], "--eval-samples"),
    ([*R, "--eval-samples", "-5"], "--eval-samples"),
    ([*R, "--stuck-off", "1.5"], "--stuck-off"),
    ([*R, "--stuck-off", "-0.1"], "--stuck-off"),
    ([*R, "--stuck-on", "2"], "--stuck-on"),
    ([*R, "--stuck-off", "0.6", "--stuck-on", "0.6"], "--stuck-off"),
    ([*R, "--stuck-off", "1.0"], "--stuck-off"),
    ([*R, "--method", "eapu", "--stuck-off", "0.1"], "--stuck-off"),
    # run: names that do not exist
    ([*R, "--method", "magic"], "--method"),
    ([*R, "--method", ""], "--method"),
    (["run", "nosuchtask", "--steps", "1"], "TASK"),
    ([*R, "--device", "unobtainium"], "--device"),
    ([*R, "--model", "gpt5"], "--model"),
    ([*R, "--data", "imagenet22k"], "--data"),
    ([*R, "--optimizer", "lion"], "--optimizer"),
    ([*R, "--method", "ttv2", "--optimizer", "adam"], "--optimizer"),
    ([*R, "--method", "eapu", "--fast-lr", "0.1"], "--fast-lr"),
    ([*R, "--method", "ttv2", "--fast-lr", "0"], "--fast-lr"),
    ([*R, "--method", "cttv2", "--fast-lr", "inf"], "--fast-lr"),
    ([*R, "--schedule", "wild"], "--schedule"),
    ([*R, "--device-type", "tpu"], "--device-type"),
    ([*R, "--anomaly-data", "nothing"], "--anomaly-data"),
    # run: type errors the parser catches
    ([*R, "--batch-size", "many"], "--batch-size"),
    ([*R, "--lr", "fast"], "--lr"),
    ([*R, "--seed", "1.5"], "--seed"),
    ([*R, "--stuck-off", "some"], "--stuck-off"),
    ([*R, "--no-such-flag", "1"], "--no-such-flag"),
    # run: files and directories
    ([*R, "--config", "{root}/nothing.toml"], "nothing.toml"),
    ([*R, "--config", "{bad.toml}"], "bad.toml"),
    ([*R, "--config", "{latin1.toml}"], "latin1.toml"),
    ([*R, "--config", "{seed_true.toml}"], "seed"),
    ([*R, "--config", "{data_dir_int.toml}"], "data_dir"),
    ([*R, "--config", "{lr_string.toml}"], "lr"),
    ([*R, "--config", "{unknown_key.toml}"], "stepz"),
    ([*R, "--config", "{every_float.toml}"], "--eval-every"),
    ([*R, "--config", "{root}"], "--config"),
    ([*R, "--init-from", "{root}/nowhere"], "--init-from"),
    ([*R, "--init-from", "{other_model}"], "--init-from"),
    ([*R, "--init-from", "{corrupt_ckpt}"], "checkpoint"),
    ([*R, "--data", "cifar100"], "--data-dir"),
    ([*R, "--data", "mnist", "--data-dir", "{root}/nowhere"], "--data-dir"),
    ([*R, "--data", "mnist", "--data-dir", "{mnist_overflow}"], "idx3-ubyte"),
    ([*R, "--data", "mnist", "--data-dir", "{mnist_bomb}"], "idx3-ubyte.gz"),
    (["run", "classify", "--steps", "1", "--data", "cifar10", "--data-dir", "{root}"], "label 201"),
    (["run", "classify", "--steps", "1", "--data", "cifar10"], "--data-dir"),
    (["run", "classify", "--steps", "1", "--data", "svhn"], "--data-dir"),
    (["run", "denoise", "--steps", "1", "--model", "cnn"], "--model"),
    (["run", "denoise", "--steps", "1", "--model", "small_cnn"], "does not fit task"),
    (["run", "sr2", "--steps", "1", "--model", "srnet4"], "does not fit task"),
    ([*R, "--out", "{good}", "--lr", "0.5"], "--out"),  # another config's run directory
    ([*R, "--out", "{hostile}"], "checkpoint"),
    ([*R, "--out", "{corrupt_ckpt}", "--method", "eapu+mp", "--steps", "2"], "checkpoint"),
    ([*R, "--out", "{empty_ckpt}"], "checkpoint"),
    # compare
    ([*C, "--methods", ""], "--methods"),
    ([*C, "--methods", ","], "--methods"),
    ([*C, "--methods", "software,software"], "--methods"),
    ([*C, "--methods", "software,magic"], "--methods"),
    ([*C, "--seeds", "0,0"], "--seeds"),
    ([*C, "--seeds", "a,b"], "--seeds"),
    ([*C, "--seeds", ""], "--seeds"),
    ([*C, "--seeds", "-1"], "--seeds"),
    ([*C, "--seeds", "0,1", "--seed", "3"], "--seed"),
    ([*C, "--lr", "-1"], "--lr"),
    ([*C, "--device", "unobtainium"], "--device"),
    ([*C, "--rwg", "0"], "--rwg"),
    ([*C, "--eval-samples", "-5"], "--eval-samples"),
    # sweep
    ([*S, "--grid", "sd_us=1", "--grid", "sd_us=2"], "--grid"),
    ([*S, "--grid", "sd_us"], "--grid"),
    ([*S, "--grid", "sd_us="], "--grid"),
    ([*S, "--grid", "sd_us=1,,2"], "--grid"),
    ([*S, "--grid", "nokey=1,2"], "--grid"),
    ([*S, "--grid", "sd_us=1,1"], "--grid"),
    ([*S, "--grid", "sd_us=1", "--seeds", "a"], "--seeds"),
    ([*S, "--grid", "sd_us=1", "--seeds", "0,0"], "--seeds"),
    ([*S, "--grid", "sd_us=1", "--workers", "-1"], "--workers"),
    ([*S, "--grid", "sd_us=1", "--lr", "0"], "--lr"),
    ([*S, "--grid", "sd_us=-1"], "sd_us"),
    # report
    (["report", "{root}/nowhere"], "nowhere"),
    (["report", "{empty}"], "empty"),
    (["report", "{truncated_metrics}"], "metrics.json"),
    (["report", "{nonjson_metrics}"], "metrics.json"),
    (["report", "{list_metrics}"], "metrics.json"),
    # energy
    (["energy", "{root}/nowhere"], "nowhere"),
    (["energy", "{good}", "--node", "3nm"], "--node"),
    (["energy", "{good}", "--nodes", "{root}/none.toml"], "none.toml"),
    (["energy", "{good}", "--nodes", "{nodes_bad.toml}"], "nodes_bad.toml"),
    (["energy", "{truncated_energy}"], "energy.json"),
    (["energy", "{nonjson_energy}"], "energy.json"),
    (["energy", "{empty}"], "energy.json"),
    # retention
    (["retention", "{good}", "--hours", "a"], "--hours"),
    (["retention", "{good}", "--hours", "-1"], "--hours"),
    (["retention", "{good}", "--hours", ""], "--hours"),
    (["retention", "{good}", "--drift", "sram"], "--drift"),
    (["retention", "{root}/nowhere"], "nowhere"),
    (["retention", "{corrupt_ckpt}"], "checkpoint"),
    (["retention", "{hostile}"], "checkpoint"),
    (["retention", "{other_model}"], "device-level"),
    # stats
    (["stats", "{root}/nowhere"], "nowhere"),
    (["stats", "{corrupt_ckpt}"], "checkpoint"),
    (["stats", "{empty_ckpt}"], "checkpoint"),
    (["stats", "{good}", "--scheme", "telepathy"], "--scheme"),
    (["stats", "{good}", "--device", "unobtainium"], "--device"),
    (["stats", "{good}", "--delta-us", "-1"], "--delta-us"),
    # eapu device
    (["device", "report", "taox_1t1r", "--out", "{root}/dr", "--seeds", "a"], "--seeds"),
    (["device", "report", "taox_1t1r", "--out", "{root}/dr", "--methods", "mp,mp"], "--methods"),
    # safety (issue #26): bounded inputs, another tool's files, silently wrong results
    ([*R, "--config", "{deep.toml}"], "deep.toml"),
    ([*R, "--config", "{dotted.toml}"], "levels"),
    ([*R, "--config", "{big.toml}"], "1 MiB"),
    ([*R, "--config", "{long_value.toml}"], "--method"),
    ([*R, "--device", "{dev_scheme.toml}"], "default_scheme"),
    ([*R, "--device", "{dev_latin1.toml}"], "dev_latin1.toml"),
    ([*R, "--device", "{dev_deep.toml}"], "levels"),
    (["run", "classify", "--steps", "1", "--batch-size", "5000"], "--batch-size"),
    ([*R, "--out", "{foreign}"], "not empty"),
    ([*R, "--out", "{a_file}"], "existing file"),
    ([*R, "--out", "{memo_ckpt}"], "checkpoint"),
    ([*R, "--data", "imagefolder", "--data-dir", "{img_bomb}"], "a.png"),
    ([*R, "--data", "imagefolder", "--data-dir", "{img_garbage}"], "a.png"),
    ([*R, "--data", "imagefolder", "--data-dir", "{img_linked}"], "symbolic link"),
    ([*C, "--methods", "software", "--out", "{foreign}"], "not empty"),
    ([*C, "--tune", "=1,2"], "no key of the options"),
    ([*C, "--tune", "foo=1,2"], "'foo' is not one of the options"),
    ([*C, "--tune", "lr=1,1.0"], "--tune"),
    ([*C, "--tune", "eval_split=test,validation"], "--tune"),
    ([*C, "--tune", "lr=0.1,0.2", "--config", "{lr.toml}"], "--config"),
    ([*C, "--tune", "lr=0.1,0.2", "--lr", "0.3"], "--lr"),
    ([*C, "--config", "{method.toml}"], "--methods"),
    ([*C, "--seeds", "0,1", "--config", "{seed.toml}"], "--config"),
    ([*S, "--grid", "=1,2"], "no key of the options"),
    ([*S, "--grid", "foo=1,2"], "'foo' is not one of the options"),
    ([*S, "--grid", "sd_us=1,2", "--sd-us", "3"], "--sd-us"),
    ([*S, "--grid", "sd_us=1,2", "--config", "{seed.toml}"], "--seeds"),
    ([*S, "--out", "{foreign}"], "not empty"),
    (["sweep", "classify", "--collect", "--out", "{sweep_corrupt}"], "sweep.json"),
    (["sweep", "classify", "--collect", "--out", "{sweep_nomanifest}"], "sweep.json"),
    (["sweep", "denoise", "--collect", "--out", "{sweep}"], "classify"),
    (["sweep", "classify", "--collect", "--out", "{sweep}", "--metric", "nosuch"], "--metric"),
    (["sweep", "classify", "--collect", "--out", "{sweep_bad_point}"], "metrics.json"),
    (["report", "{unfinished}"], "same eapu run command"),
    (["report", "{unfinished_compare}"], "same eapu compare command"),
    (["retention", "{unfinished}"], "finish it first"),
    (["retention", "{good}", "--seed", "-1"], "--seed"),
    (["stats", "{unfinished}"], "finish it by"),
    (["energy", "{good}", "--nodes", "{deep_nodes.toml}"], "levels"),
    (["energy", "{good}", "--nodes", "{latin1_nodes.toml}"], "latin1_nodes.toml"),
    (["device", "fit", "{latin1.csv}", "--units", "uS", "--out", "{root}/f.toml"], "latin1.csv"),
    (["device", "example", "{root}/ex", "--ramps", "1000000"], "--ramps"),
    (["device", "example", "{root}/ex", "--pulses", "0"], "--pulses"),
    (["device", "report", "{dev_scheme.toml}", "--out", "{root}/dr2"], "default_scheme"),
    (["device", "report", "taox_1t1r", "--out", "{foreign}"], "not empty"),
    (["characterize", "{dev_scheme.toml}"], "default_scheme"),
    (["characterize", "taox_1t1r", "--cells", "100000000000"], "--cells"),
    ([*R, "--seed", "99999999999999999999999"], "--seed"),
    (
        ["run", "classify", "--steps", "1", "--model", "preact_resnet18", "--width", "10000000"],
        "out of memory",
    ),
    ([*C, "--tune", "lr=1,nan"], "--tune lr=nan"),
    # list, characterize
    (["list", "nothing"], "WHAT"),
    (["characterize", "unobtainium"], "DEVICE"),
    (["characterize", "taox_1t1r", "--scheme", "telepathy"], "--scheme"),
    (["characterize", "taox_1t1r", "--cells", "0"], "--cells"),
    (["characterize", "taox_1t1r", "--seed", "-1"], "--seed"),
]


def _fill(argv: list[str], files: dict[str, Path]) -> list[str]:
    out = []
    for a in argv:
        for k, v in files.items():
            a = a.replace("{" + k + "}", str(v))
        out.append(a)
    return out


@pytest.mark.parametrize(("argv", "names"), CLI_CASES, ids=[" ".join(a) for a, _ in CLI_CASES])
def test_cli_bad_input_is_one_clean_message_and_exit_2(
    argv: list[str], names: str, files: dict[str, Path], tmp_path: Path
) -> None:
    argv = _fill(argv, files)
    if "--out" not in argv and argv[0] in ("run", "compare", "sweep"):
        argv += ["--out", str(tmp_path / "out")]
    r = CliRunner().invoke(app, argv)
    text = r.output
    assert r.exit_code == 2, f"exit {r.exit_code}: {text}\n{r.exception!r}"
    assert "Traceback" not in text and not isinstance(r.exception, AssertionError)
    assert names.lower() in text.lower(), text
    assert "weights_only=False" not in text
    assert len([ln for ln in text.splitlines() if ln.strip()]) <= 8, text
    assert len(text) < 3000, text[:3000]  # a long value is echoed cut (validate.shown)


# ------------------------------------------------------------------------------ the API
def _api_cases() -> list[tuple[str, Callable[[], Any], type[Exception], str]]:
    from eapu.devices import Device, get_device
    from eapu.experiments import get_method, get_task
    from eapu.nn import convert
    from eapu.optim import AdamEaPU, InSituOptimizer
    from eapu.programming import get_scheme
    from eapu.rules import get_rule

    w = torch.nn.Parameter(torch.randn(3, 3))
    return [
        ("lr<0", lambda: AdamEaPU([w], lr=-1), ValueError, "learning rate"),
        ("sd_us<0", lambda: AdamEaPU([w], sd_us=-1), ValueError, "sd_us"),
        ("rwg=0", lambda: AdamEaPU([w], rwg_per_us=0), ValueError, "rwg_per_us"),
        ("threshold nan", lambda: AdamEaPU([w], threshold=float("nan")), ValueError, "threshold"),
        ("seed<0", lambda: AdamEaPU([w], seed=-1), ValueError, "seed"),
        ("seed bool", lambda: AdamEaPU([w], seed=True), ValueError, "seed"),
        ("empty params", lambda: AdamEaPU([]), ValueError, "params"),
        ("twice", lambda: AdamEaPU([w, w]), ValueError, "params"),
        ("rule", lambda: InSituOptimizer([w], rule="magic"), ValueError, "rule"),
        ("base", lambda: InSituOptimizer([w], base=dict), TypeError, "base"),  # type: ignore[arg-type]
        ("analog", lambda: InSituOptimizer([w], analog=3), TypeError, "analog"),  # type: ignore[arg-type]
        (
            "complex",
            lambda: AdamEaPU([torch.nn.Parameter(torch.randn(2, 2, dtype=torch.cfloat))]),
            ValueError,
            "params",
        ),
        (
            "meta",
            lambda: AdamEaPU([torch.nn.Parameter(torch.empty(2, 2, device="meta"))]),
            ValueError,
            "params",
        ),
        ("device", lambda: get_device("unobtainium"), ValueError, "device"),
        ("scheme", lambda: get_scheme("telepathy"), ValueError, "scheme"),
        ("rule name", lambda: get_rule("magic"), ValueError, "rule"),
        ("task", lambda: get_task("nosuch"), ValueError, "task"),
        ("method", lambda: get_method("nosuch"), ValueError, "method"),
        ("window", lambda: Device(name="x", g_min_us=10, g_max_us=5), ValueError, "g_max_us"),
        ("steps", lambda: RunConfig(steps=0), ValueError, "steps"),
        ("eval_samples", lambda: RunConfig(eval_samples=0), ValueError, "eval_samples"),
        ("data_dir", lambda: RunConfig(data_dir=5), ValueError, "data_dir"),  # type: ignore[arg-type]
        ("seed true", lambda: RunConfig(seed=True), ValueError, "seed"),
        ("stuck", lambda: RunConfig(stuck_off=2), ValueError, "stuck_off"),
        ("bare layer", lambda: convert(torch.nn.Linear(4, 4)), ValueError, "bare Linear"),
        (
            "zero-size",
            lambda: convert(torch.nn.Sequential(torch.nn.Linear(0, 3))),
            ValueError,
            "weight",
        ),
    ]


API_CASES = _api_cases()


@pytest.mark.parametrize(
    ("call", "exc", "name"), [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES]
)
def test_api_bad_input_raises_the_promised_error(
    call: Callable[[], Any], exc: type[Exception], name: str
) -> None:
    with pytest.raises(exc) as info:
        call()
    assert name in str(info.value)


def test_the_table_is_at_least_a_hundred_cases() -> None:
    assert len(CLI_CASES) + len(API_CASES) >= 100


def test_a_bug_still_shows_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only user errors are shortened: an internal error keeps its exception."""
    import eapu.programming

    def broken(*a: Any, **k: Any) -> Any:
        raise KeyError("internal")

    monkeypatch.setattr(eapu.programming, "characterize", broken)
    r = CliRunner().invoke(app, ["characterize", "taox_1t1r"])
    assert r.exit_code == 1 and isinstance(r.exception, KeyError)


def test_metrics_json_errors_name_the_file(files: dict[str, Path]) -> None:
    from eapu.report import write_run_report

    with pytest.raises(ValueError, match=r"metrics\.json"):
        write_run_report(files["truncated_metrics"])
    assert json.loads((files["good"] / "metrics.json").read_text())["steps"] == 2
