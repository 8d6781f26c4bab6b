"""The examples in module docstrings run as written (so the documentation cannot rot)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["rules", "optim", "nn", "devices", "programming", "energy", "algorithms", "ledger"]


@pytest.mark.parametrize("name", MODULES)
def test_module_examples_run(name: str) -> None:
    module = importlib.import_module(f"eapu.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
