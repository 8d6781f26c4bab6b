"""The examples in docstrings run as written (so the documentation cannot rot)."""

from __future__ import annotations

import doctest
import importlib
import pathlib
import pkgutil
import re

import pytest

import eapu

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(eapu.__path__, "eapu.")
    if m.name not in ("eapu.__main__",)
)
README = pathlib.Path(__file__).parent.parent / "README.md"


@pytest.mark.parametrize("name", MODULES)
def test_module_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    source = pathlib.Path(module.__file__ or "").read_text()
    examples = len(re.findall(r"^\s*>>> ", source, flags=re.M))
    skipped = len(re.findall(r"doctest: \+SKIP", source))
    # every example written in the module ran (none is lost to a finder that skips it)
    assert result.attempted >= examples - skipped


def test_readme_python_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
