"""The experiments package: one flag table, task kinds, registries with plugins, and
randomness that evaluation cannot touch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from eapu import registry
from eapu.cli import app
from eapu.devices import DEVICES, get_device, list_devices
from eapu.experiments import FLAGS, KINDS, TASKS, RunConfig, run

FAST = {"batch_size": 8, "eval_samples": 16}
SRC = Path(__file__).resolve().parents[1] / "src" / "eapu"


def test_evaluating_more_often_does_not_change_what_a_device_level_run_trains(
    tmp_path: Path,
) -> None:
    """The paper's cell (read noise 0.1 µS) under EaPU + memorial programming: evaluating
    every 3 or every 6 steps ends with the same weights, bit for bit, while the evaluations
    themselves did draw read noise (their generator ends elsewhere)."""
    ends = {}
    for every in (3, 6):
        out = tmp_path / f"every{every}"
        run(RunConfig(task="denoise", method="eapu+mp", steps=12, eval_every=every, **FAST), out)
        ends[every] = torch.load(out / "checkpoint.pt", weights_only=True)
    a, b = ends[3], ends[6]
    assert get_device("taox_1t1r").read_noise_sd_us > 0
    for k, v in a["model"].items():
        if torch.is_tensor(v):
            assert torch.equal(v, b["model"][k]), k
    key = next(k for k in a["model"] if k.endswith("eapu_crossbar._extra_state"))
    xa, xb = a["model"][key], b["model"][key]
    assert torch.equal(xa["generator"], xb["generator"])  # programming: same draws
    assert torch.equal(xa["read_generator"], xb["read_generator"])  # training reads: same
    assert not torch.equal(xa["eval_generator"], xb["eval_generator"])  # 4 vs 2 evaluations
    assert len([r for r in a["history"] if "ssim" in r]) == 5
    assert len([r for r in b["history"] if "ssim" in r]) == 3


def test_a_checkpoint_from_before_the_generator_split_still_resumes(tmp_path: Path) -> None:
    cfg = RunConfig(task="denoise", method="eapu+mp", steps=4, eval_every=2, **FAST)
    out = tmp_path / "old"

    def stop(step: int, steps: int, row: dict) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(cfg, out, progress=stop)
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck["step"] == 2
    key = next(k for k in ck["model"] if k.endswith("eapu_crossbar._extra_state"))
    extra = ck["model"][key]
    del extra["read_generator"], extra["eval_generator"]  # what older eapu wrote
    torch.save(ck, out / "checkpoint.pt")
    m = run(cfg, out)
    assert m["steps"] == 4 and 0 <= m["ssim"] <= 1


def test_every_run_config_field_but_the_task_has_one_flag() -> None:
    fields = [f for f in RunConfig.__dataclass_fields__ if f != "task"]
    assert sorted(f.field for f in FLAGS) == sorted(fields)
    names = [f.name for f in FLAGS]
    assert len(set(names)) == len(names)
    assert dict((f.field, f.name) for f in FLAGS)["rwg_per_us"] == "--rwg"


def test_tiki_taka_runs_on_plain_sgd_and_says_so_in_its_config() -> None:
    # Adam's step is not a gradient: A's auto-scaled rate would saturate A (issue 11).
    assert RunConfig(task="classify", method="ttv2").resolved().optimizer == "sgd"
    assert RunConfig(task="classify", method="cttv2", optimizer="sgd").resolved().optimizer
    assert RunConfig(task="classify", method="eapu+mp").resolved().optimizer == "adam"
    with pytest.raises(ValueError, match=r"Invalid optimizer: 'momentum' for method 'ttv2'"):
        RunConfig(task="classify", method="ttv2", optimizer="momentum")


def test_fast_lr_sets_tiki_takas_rate_onto_a(tmp_path) -> None:
    # A lower rate onto the fast array sends fewer pulses: the same 3 steps, 10x lower.
    pulses = {}
    for fast_lr in (0.05, 0.5):
        cfg = RunConfig(task="classify", method="ttv2", steps=3, eval_every=3, fast_lr=fast_lr)
        m = run(cfg, tmp_path / str(fast_lr))
        pulses[fast_lr] = m["nup"]
        ck = torch.load(tmp_path / str(fast_lr) / "checkpoint.pt", weights_only=True)
        assert ck["config"]["fast_lr"] == fast_lr
    assert 0 < pulses[0.05] < pulses[0.5] / 3
    assert RunConfig(task="classify", method="cttv2").resolved().fast_lr is None  # 0.5
    with pytest.raises(ValueError, match=r"Invalid fast_lr: method 'eapu\+mp' has no fast array"):
        RunConfig(task="classify", method="eapu+mp", fast_lr=0.1)


def test_every_task_kind_of_every_task_is_registered() -> None:
    for name in TASKS.names():
        assert TASKS.get(name).kind in KINDS


def test_registry_suggests_the_closest_name_and_filters_by_pattern() -> None:
    with pytest.raises(ValueError, match="did you mean 'taox_1t1r'"):
        get_device("taox_1tr1")
    assert list_devices("*pcm*") == [n for n in list_devices() if "pcm" in n]
    r: registry.Registry[int] = registry.Registry("number", entry_point_group=None)
    r.add("one", 1)
    with pytest.raises(ValueError, match="already registered"):
        r.add("one", 2)


def _install_plugin(tmp_path: Path) -> Path:
    """A package 'eapu_plugin_demo' with a dist-info declaring an eapu.devices entry."""
    site = tmp_path / "site"
    pkg = site / "eapu_plugin_demo"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            '''
            import dataclasses

            from eapu.devices import get_device


            def demo_rram():
                """A plugin device: the ideal cell with a 400 µS window."""
                return dataclasses.replace(get_device("ideal"), g_max_us=400.0)
            '''
        )
    )
    info = site / "eapu_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: eapu-plugin-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[eapu.devices]\ndemo_rram = eapu_plugin_demo:demo_rram\n"
    )
    return site


def test_an_installed_plugin_device_is_listed_and_runs(tmp_path: Path) -> None:
    """Entry points load in a fresh process (the registry loads them once, lazily)."""
    site = _install_plugin(tmp_path)
    env_path = f"{site}:{SRC.parent}"
    code = textwrap.dedent(
        f"""
        import json, sys
        from typer.testing import CliRunner
        from eapu.cli import app
        r = CliRunner().invoke(app, ["list", "devices", "--json"])
        assert r.exit_code == 0, r.output
        listed = {{d["name"]: d["description"] for d in json.loads(r.stdout)}}
        r = CliRunner().invoke(app, ["run", "denoise", "--method", "eapu+mp", "--device",
            "demo_rram", "--steps", "2", "--eval-every", "2", "--batch-size", "8",
            "--eval-samples", "8", "--out", {str(tmp_path / "run")!r}])
        print(json.dumps({{"listed": listed, "exit": r.exit_code, "out": r.output}}))
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["listed"]["demo_rram"].startswith("A plugin device")
    assert got["exit"] == 0, got["out"]
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["device"] == "demo_rram"
    energy = json.loads((tmp_path / "run" / "energy.json").read_text())
    assert 0 < energy["g_mean_us"] <= 400.0  # the plugin's window, not ideal's 1000 µS
    # Not loaded in this process: the plugin's site directory is not on its path.
    assert "demo_rram" not in DEVICES


def test_cli_conventions(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.startswith("eapu ")
    r = runner.invoke(app, ["list", "methods", "eapu*", "--json"])
    assert r.exit_code == 0
    names = [m["name"] for m in json.loads(r.stdout)]
    assert names == ["eapu+mp", "eapu+fp", "eapu+pt", "eapu+gaussian", "eapu"]
    for bad in (["--method", "magic"], ["--optimizer", "lbfgs"], ["--device", "nowhere"]):
        r = runner.invoke(app, ["run", "denoise", *bad])
        assert r.exit_code == 2 and bad[0] in r.output, r.output
    r = runner.invoke(app, ["run", "nothing"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["compare", "denoise", "--methods", "eapu,magic"])
    assert r.exit_code == 2 and "magic" in r.output
    r = runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert "eapu+mp" in r.output and "taox_1t1r" in r.output  # choices listed
    assert "0.01 for every task" in r.output  # --lr's true default
    r = runner.invoke(app, ["compare", "--help"], env={"COLUMNS": "200"})
    assert "runs/TASK-compare" in r.output
    r = subprocess.run(
        [sys.executable, "-m", "eapu", "--version"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC.parent), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert r.returncode == 0 and r.stdout.startswith("eapu ")


def test_compare_and_report_print_json(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    args = ["compare", "denoise", "--methods", "software,eapu", "--steps", "2"]
    args += ["--eval-every", "2", "--batch-size", "8", "--eval-samples", "8"]
    r = CliRunner().invoke(app, [*args, "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [row["method"] for row in doc["rows"]] == ["software", "eapu"]
    r = CliRunner().invoke(app, ["report", str(out), "--json"])
    assert json.loads(r.stdout)["rows"] == doc["rows"]
    r = CliRunner().invoke(app, ["report", str(out / "eapu"), "--json"])
    assert json.loads(r.stdout)["metrics"]["method"] == "eapu"


def test_methods_name_registered_algorithms_and_options_come_from_their_declarations() -> None:
    """A method's ``algorithm`` is always a registered algorithm (hardware-aware training is
    its own kind), and the run options a method takes are those its algorithm declares."""
    from eapu.algorithms import ALGORITHMS, get_algorithm
    from eapu.experiments import get_method, list_methods
    from eapu.experiments.config import RunConfig, method_options, methods_taking

    for name in list_methods():
        m = get_method(name)
        assert m.algorithm is None or m.algorithm in ALGORITHMS, name
    assert get_method("hwa").hardware_aware and get_method("hwa").algorithm is None
    assert methods_taking("fast_lr") == ["ttv2", "cttv2", "agad"]
    assert method_options("agad") == {"fast_lr": 0.5} and method_options("eapu+mp") == {}
    for name in methods_taking("fast_lr"):  # the declaration is the class's own default
        cls = get_algorithm(get_method(name).algorithm)
        assert method_options(name)["fast_lr"] == cls.CONFIG().fast_lr, name
    with pytest.raises(ValueError, match=r"only Tiki-Taka has one \(ttv2, cttv2, agad\)"):
        RunConfig(task="classify", method="mixed-precision", fast_lr=0.1)
