"""The examples in module docstrings run as written (so the documentation cannot rot)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "rules",
    "optim",
    "nn",
    "devices",
    "programming",
    "energy",
    "algorithms",
    "ledger",
    "validate",
    "formatting",
]


@pytest.mark.parametrize("name", MODULES)
def test_module_examples_run(name: str) -> None:
    module = importlib.import_module(f"eapu.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_readme_python_examples_run() -> None:
    import pathlib
    import re

    text = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
