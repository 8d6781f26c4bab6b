"""eapu.validate: one message style, bools refused, NaN/inf, open/closed bounds, None."""

from __future__ import annotations

import math
import re

import pytest

from eapu import validate
from eapu.cli import user_message


def _msg(fn, *args, **kw) -> str:
    with pytest.raises(ValueError) as info:
        fn(*args, **kw)
    return str(info.value)


@pytest.mark.parametrize(
    ("kw", "bad", "allowed"),
    [
        ({}, math.nan, "a finite number"),
        ({"low": 0}, -1.5, "a finite number >= 0"),
        ({"low": 0, "low_open": True}, 0, "a finite number > 0"),
        ({"high": 2}, 3, "a finite number <= 2"),
        ({"high": 2, "high_open": True}, 2.0, "a finite number < 2"),
        ({"low": 0, "high": 1}, 1.5, "a finite number in [0, 1]"),
        ({"low": 0, "high": 1, "low_open": True}, 0.0, "a finite number in (0, 1]"),
        ({"low": 0, "high": 1, "high_open": True}, 1, "a finite number in [0, 1)"),
        ({"low": 0, "allow_none": True}, -1, "None or a finite number >= 0"),
        ({"low": 0, "allow_inf": True}, -math.inf, "a number >= 0"),
    ],
)
def test_number_message_names_argument_value_and_range(kw, bad, allowed) -> None:
    assert (
        _msg(validate.number, "sd_us", bad, **kw) == f"Invalid sd_us: {bad!r}; allowed: {allowed}"
    )


@pytest.mark.parametrize(
    ("kw", "good"),
    [
        ({"low": 0}, 0),
        ({"low": 0, "high": 1}, 1),
        ({"low": 0, "high": 1, "high_open": True}, 0.999),
        ({"low": 0, "low_open": True}, 1e-300),
        ({"high": 0}, -7),
        ({"allow_inf": True, "low": 0}, math.inf),
    ],
)
def test_number_accepts_values_inside_the_bounds_and_returns_a_float(kw, good) -> None:
    out = validate.number("x", good, **kw)
    assert out == good and type(out) is float


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, True, False, "1", None, [1]])
def test_number_refuses_non_numbers_bools_nan_and_inf(bad) -> None:
    assert _msg(validate.number, "x", bad).startswith(f"Invalid x: {bad!r}; allowed: ")


def test_nan_is_refused_even_with_allow_inf() -> None:
    with pytest.raises(ValueError, match=r"^Invalid x: nan; allowed: a number$"):
        validate.number("x", math.nan, allow_inf=True)


def test_none_passes_only_when_allowed() -> None:
    assert validate.number("x", None, allow_none=True) is None
    assert validate.integer("n", None, allow_none=True) is None
    assert validate.fraction("p", None, allow_none=True) is None
    with pytest.raises(ValueError, match=r"^Invalid n: None; allowed: an integer >= 1$"):
        validate.integer("n", None, low=1)


def test_integer_refuses_bools_floats_and_out_of_range() -> None:
    assert validate.integer("n", 3, low=1, high=3) == 3
    for bad in (True, 3.0, 0, 4, "2"):
        msg = _msg(validate.integer, "n", bad, low=1, high=3)
        assert msg == f"Invalid n: {bad!r}; allowed: an integer in [1, 3]"
    assert _msg(validate.integer, "n", -1, low=0, allow_none=True) == (
        "Invalid n: -1; allowed: None or an integer >= 0"
    )
    assert _msg(validate.integer, "n", 2.5) == "Invalid n: 2.5; allowed: an integer"


def test_fraction_is_a_number_in_the_unit_interval() -> None:
    assert validate.fraction("p", 0) == 0.0 and validate.fraction("p", 1) == 1.0
    assert (
        _msg(validate.fraction, "p", 1.01) == "Invalid p: 1.01; allowed: a finite number in [0, 1]"
    )
    assert _msg(validate.fraction, "p", 0.0, low_open=True) == (
        "Invalid p: 0.0; allowed: a finite number in (0, 1]"
    )
    assert (
        _msg(validate.fraction, "p", True) == "Invalid p: True; allowed: a finite number in [0, 1]"
    )


def test_choice_lists_the_allowed_values() -> None:
    assert validate.choice("split", "train", ("train", "test")) == "train"
    assert _msg(validate.choice, "split", "val", ("train", "test")) == (
        "Invalid split: 'val'; allowed: 'train', 'test'"
    )


def test_is_number() -> None:
    assert validate.is_number(1) and validate.is_number(-2.5)
    assert not any(validate.is_number(v) for v in (True, math.nan, math.inf, "1", None))
    assert validate.is_number(math.inf, finite=False)
    assert validate.is_number(math.nan, finite=False)
    assert not any(validate.is_number(v, finite=False) for v in (True, "1", None))


def test_the_cli_turns_the_name_into_the_flag() -> None:
    err = ValueError(_msg(validate.number, "eval_samples", -1, low=0))
    text = user_message(err, {"eval_samples": "--eval-samples"})
    assert re.fullmatch(r"--eval-samples: -1; allowed: a finite number >= 0", text)
