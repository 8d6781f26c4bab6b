"""Argument checks with one message style: ``Invalid {name}: {value!r}; allowed: {range}``.

    >>> from eapu import validate
    >>> validate.number("threshold", 0.5, low=0)
    0.5
    >>> validate.number("rwg_per_us", 0, low=0, low_open=True)
    Traceback (most recent call last):
    ...
    ValueError: Invalid rwg_per_us: 0; allowed: a finite number > 0
    >>> validate.integer("batch_size", True, low=1)
    Traceback (most recent call last):
    ...
    ValueError: Invalid batch_size: True; allowed: an integer >= 1

Every function returns the checked value (``float``/``int``) and raises `ValueError` naming
the argument, its value and what is allowed. ``name`` is the argument's real name (a field,
keyword or option): the command line rewrites ``Invalid <name>:`` into the flag that sets it
(`eapu.cli.user_message`), so keep it a single identifier where a flag may set it.

A value is echoed as its ``repr``, cut to `SHOWN_CHARS` characters (`shown`): a 20 MB
string in a file is not printed whole.

Bools are not numbers (``True`` is refused where a number or an integer is asked for). NaN
is always refused; ±inf only with ``allow_inf=True``.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Collection
from typing import Any, Literal, TypeVar, overload

__all__ = [
    "SHOWN_CHARS",
    "choice",
    "float_list",
    "fraction",
    "int_list",
    "integer",
    "is_number",
    "name_list",
    "number",
    "shown",
]

T = TypeVar("T")

#: The most characters of a value an error message echoes.
SHOWN_CHARS = 200


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` as an error message echoes it: at most ``limit`` characters (of a
    string, of any other value's ``repr``), the cut said with the full length.

    >>> shown("x" * 1000)[-25:]
    "xxx'... (1000 characters)"
    """
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    return _cut(repr(value), limit)


def _cut(text: str, limit: int = SHOWN_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def is_number(value: Any, *, finite: bool = True) -> bool:
    """Whether ``value`` is an ``int`` or ``float`` (not a bool) and, if ``finite``, neither
    NaN nor ±inf. ``finite=False`` is the bare type test (a metric column that may hold NaN).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return not finite or math.isfinite(value)


def _bounds(
    low: float | None, high: float | None, low_open: bool, high_open: bool, *, lead: str
) -> str:
    if low is not None and high is not None:
        return f"{lead} in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{lead} {'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{lead} {'<' if high_open else '<='} {high}"
    return lead


def _inside(
    value: float, low: float | None, high: float | None, low_open: bool, high_open: bool
) -> bool:
    if low is not None and (value <= low if low_open else value < low):
        return False
    return high is None or (value < high if high_open else value <= high)


def _fail(name: str, value: Any, allowed: str, allow_none: bool) -> ValueError:
    return ValueError(
        f"Invalid {name}: {shown(value)}; allowed: {'None or ' if allow_none else ''}{allowed}"
    )


@overload
def number(
    name: str,
    value: Any,
    *,
    low: float | None = ...,
    high: float | None = ...,
    low_open: bool = ...,
    high_open: bool = ...,
    allow_none: Literal[False] = ...,
    allow_inf: bool = ...,
) -> float: ...
@overload
def number(
    name: str,
    value: Any,
    *,
    low: float | None = ...,
    high: float | None = ...,
    low_open: bool = ...,
    high_open: bool = ...,
    allow_none: bool,
    allow_inf: bool = ...,
) -> float | None: ...
def number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
    allow_inf: bool = False,
) -> float | None:
    """``value`` as a float if it is a number within the bounds (``low``/``high`` included
    unless ``low_open``/``high_open``; ``None`` = unbounded), else `ValueError`.

    Args:
        name: the argument's name, as the user spells it.
        value: what was passed.
        allow_none: accept ``None`` (returned as it is).
        allow_inf: accept ±inf (within the bounds); NaN is always refused.
    """
    if value is None and allow_none:
        return None
    ok = is_number(value) or (
        allow_inf and is_number(value, finite=False) and not math.isnan(value)
    )
    if not ok or not _inside(value, low, high, low_open, high_open):
        lead = "a number" if allow_inf else "a finite number"
        raise _fail(name, value, _bounds(low, high, low_open, high_open, lead=lead), allow_none)
    return float(value)


@overload
def integer(
    name: str,
    value: Any,
    *,
    low: int | None = ...,
    high: int | None = ...,
    allow_none: Literal[False] = ...,
) -> int: ...
@overload
def integer(
    name: str, value: Any, *, low: int | None = ..., high: int | None = ..., allow_none: bool
) -> int | None: ...
def integer(
    name: str,
    value: Any,
    *,
    low: int | None = None,
    high: int | None = None,
    allow_none: bool = False,
) -> int | None:
    """``value`` if it is an ``int`` (not a bool) in ``[low, high]`` (``None`` = unbounded),
    else `ValueError`; ``allow_none`` accepts ``None``. A float such as ``3.0`` is refused."""
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not _inside(value, low, high, False, False)
    ):
        raise _fail(name, value, _bounds(low, high, False, False, lead="an integer"), allow_none)
    return value


@overload
def fraction(
    name: str,
    value: Any,
    *,
    low_open: bool = ...,
    high_open: bool = ...,
    allow_none: Literal[False] = ...,
) -> float: ...
@overload
def fraction(
    name: str, value: Any, *, low_open: bool = ..., high_open: bool = ..., allow_none: bool
) -> float | None: ...
def fraction(
    name: str,
    value: Any,
    *,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
) -> float | None:
    """``value`` as a float if it is a number in [0, 1] (ends excluded with ``low_open`` /
    ``high_open``), else `ValueError`: a probability, a fraction of cells."""
    return number(
        name,
        value,
        low=0,
        high=1,
        low_open=low_open,
        high_open=high_open,
        allow_none=allow_none,
    )


def choice(name: str, value: T, allowed: Collection[T]) -> T:
    """``value`` if it is one of ``allowed``, else `ValueError` listing them (``repr`` each).

    >>> choice("split", "val", ("train", "test"))
    Traceback (most recent call last):
    ...
    ValueError: Invalid split: 'val'; allowed: 'train', 'test'
    """
    if value not in allowed:
        raise _fail(name, value, ", ".join(map(repr, allowed)), False)
    return value


def name_list(flag: str, text: str) -> list[str]:
    """A comma-separated list given to ``flag`` on the command line: non-empty, each item once.

    >>> name_list("--methods", "software,eapu")
    ['software', 'eapu']
    >>> name_list("--seeds", "0,0")
    Traceback (most recent call last):
    ValueError: --seeds '0,0': 0 given twice; list each once
    """
    items = [x.strip() for x in text.split(",")]
    if not text.strip() or any(not x for x in items):
        raise ValueError(f"{flag} {shown(text)}: expected a comma-separated list, e.g. a,b")
    counts = collections.Counter(items)
    dup = sorted(x for x, k in counts.items() if k > 1)
    if dup:
        raise ValueError(
            f"{flag} {shown(text)}: {_cut(', '.join(dup))} given twice; list each once"
        )
    return items


def int_list(flag: str, text: str) -> list[int]:
    """A comma-separated list of integers >= 0 given to ``flag`` (seeds), each once."""
    items = name_list(flag, text)
    bad = [x for x in items if not x.isdigit()]
    if bad:
        raise ValueError(
            f"{flag} {shown(text)}: {_cut(', '.join(bad))} is not an integer >= 0; "
            f"e.g. {flag} 0,1,2"
        )
    return [int(x) for x in items]


def float_list(flag: str, text: str) -> list[float]:
    """A comma-separated list of finite numbers >= 0 given to ``flag`` (hours, factors)."""
    out = []
    for x in name_list(flag, text):
        try:
            v = float(x)
        except ValueError:
            v = -1.0
        if not 0 <= v < math.inf:
            raise ValueError(f"{flag} {shown(text)}: {shown(x)} is not a finite number >= 0")
        out.append(v)
    return out
