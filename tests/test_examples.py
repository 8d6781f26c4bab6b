"""The scripts in examples/ run as documented and print what they promise (short runs), and
the Python blocks of the documentation pages run as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from eapu.devices import get_device

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PAGES = sorted(p.name for p in (ROOT / "docs").glob("*.md") if "```python" in p.read_text())
# Each page's Python blocks, one after the other in a fresh interpreter (a block may register
# a scheme or a device, which must not leak into the other tests).
RUN_BLOCKS = """
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
for block in re.findall(r"```python\\n(.*?)```", text, flags=re.S):
    exec(compile(block, sys.argv[1], "exec"), {})
"""


def run_python(args: list[str], cwd: Path) -> str:
    """Run ``python ARGS`` in a fresh interpreter on this checkout's eapu, return stdout."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def run_example(name: str, *args: str | Path, cwd: Path) -> str:
    """Run ``examples/<name>`` as a user would, return its stdout."""
    return run_python([str(EXAMPLES / name), *map(str, args)], cwd)


def test_docs_pages_with_code_are_found() -> None:
    assert {"getting-started.md", "devices.md"} <= set(PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_docs_page_python_blocks_run(page: str, tmp_path: Path) -> None:
    run_python(["-c", RUN_BLOCKS, str(ROOT / "docs" / page)], tmp_path)


def numbers(pattern: str, text: str) -> list[float]:
    """Every number the pattern's groups capture, in order."""
    return [float(x) for m in re.finditer(pattern, text) for x in m.groups()]


def test_every_example_is_tested() -> None:
    tested = {"weight_level.py", "crossbar.py", "own_device.py", "compare_methods.py", "energy.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_weight_level(tmp_path: Path) -> None:
    out = run_example("weight_level.py", "--steps", "150", cwd=tmp_path)
    acc = dict(re.findall(r"^(\S+).*test accuracy\s+([\d.]+) %", out, flags=re.M))
    assert set(acc) == {"Adam", "AdamNoise", "AdamEaPU"}
    assert float(acc["Adam"]) > 80
    rup = numbers(r"\(Rup\)\s+([\d.]+) %", out)  # AdamNoise, then AdamEaPU
    assert len(rup) == 2
    assert rup[0] > 80 and rup[1] < 20  # noisy BP writes nearly every weight, EaPU few


def test_crossbar(tmp_path: Path) -> None:
    out = run_example(
        "crossbar.py", "--steps", "60", "--eval-every", "30", "--out", "xb", cwd=tmp_path
    )
    assert "reference_column" in out
    steps = re.findall(r"step\s+(\d+)\s+test accuracy", out)
    assert steps == ["0", "30", "60"]
    rup, nup = numbers(r"\(Rup\) ([\d.]+) %, pulses per cell and step \(Nup\) ([\d.]+)", out)[:2]
    assert 0 < rup < 50 and nup > 0
    saved = torch.load(tmp_path / "xb" / "best.pt", weights_only=True)
    # one state_dict: the layers' parameters and every cell of the crossbar they share
    assert "0.eapu_crossbar.g_us" in saved and "2.weight" in saved
    # the reloaded model reads its cells exactly as the saved one does
    reloaded, again = numbers(r"reloaded: ([\d.]+) % \(the best copy read again: ([\d.]+) %", out)
    assert reloaded == again


def test_own_device(tmp_path: Path) -> None:
    out = run_example("own_device.py", "--steps", "50", "--out", "dev", cwd=tmp_path)
    for f in ("SET.csv", "RESET.csv", "my-cell.toml"):
        assert (tmp_path / "dev" / f).is_file()
    cell = get_device(str(tmp_path / "dev" / "my-cell.toml"))
    assert cell.name == "my-cell"
    # the example trains come from taox_1t1r: the fit recovers its spread and its εcell
    dtod = numbers(r"spread ([\d.]+) \(SET\) / ([\d.]+) \(RESET\)", out)
    assert len(dtod) == 2 and all(0.1 < d < 0.3 for d in dtod)
    mine, preset = numbers(r"SD\(εcell\) under write-verify, \S+\s*: ([\d.]+) µS", out)
    assert abs(mine - preset) < 0.1 * preset
    assert "trained on my-cell.toml: test accuracy" in out


def test_compare_then_energy(tmp_path: Path) -> None:
    out = run_example("compare_methods.py", "--steps", "20", "--out", "cmp", cwd=tmp_path)
    doc = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    rows = {r["method"]: r for r in doc["rows"]}
    assert list(rows) == ["software", "eapu+mp", "mp"]
    assert rows["eapu+mp"]["nup"] < rows["mp"]["nup"]  # EaPU writes fewer pulses than BP
    for method in rows:
        assert re.search(rf"^{re.escape(method)}\s+[\d.]+\s+[\d.]+", out, flags=re.M)

    energy = run_example("energy.py", "cmp", cwd=tmp_path)
    table = {line.split()[0] for line in energy.splitlines()[2:5]}
    assert table == {"software", "eapu+mp", "mp"}
    as_run, every = numbers(r"programming\s+([\d.]+) nJ", energy)
    assert every > as_run > 0  # writing every cell costs more programming energy
