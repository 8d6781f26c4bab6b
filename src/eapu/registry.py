"""One registry for every kind of named thing: devices, schemes, rules, models, data sets,
tasks, methods and algorithms.

>>> from eapu.registry import Registry
>>> colours = Registry("colour", entry_point_group=None)
>>> @colours.register("teal")
... def teal() -> str:
...     return "#008080"
>>> colours.get("teel")
Traceback (most recent call last):
...
ValueError: unknown colour 'teel'; did you mean 'teal'? available: teal

A registry maps a name to a record (an ``*Info`` dataclass, or the registered object itself).
`get` fails with the names that exist and the closest match (`difflib`), `names` filters
with a shell pattern (`fnmatch`). Installed packages add entries through entry points: a
distribution that declares, in its ``entry_points.txt``,

    [eapu.devices]
    my_rram = my_package.devices:my_rram

is loaded the first time the registry is looked up or listed: ``load()`` of each entry point
imports the module, whose own ``@register_device`` (or other decorator) registers the entry.
An entry point that names a plain callable not registered by its import is registered under
the entry point's name with ``from_entry_point``. A plugin that fails to import is reported
(a `RuntimeWarning` naming it), never silently dropped, and never breaks the built-in names.
"""

from __future__ import annotations

import difflib
import fnmatch
import warnings
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Named records of one kind.

    Args:
        kind: what an entry is, in messages (``"device"``: "unknown device 'x'").
        entry_point_group: the entry-point group plugins use (``"eapu.devices"``); None for
            none.
        from_entry_point: turns an entry point's loaded object into a record, for entry
            points whose import did not register themselves (None: such an object is an
            error).
        sort: list names sorted (True) or in registration order (False).
    """

    def __init__(
        self,
        kind: str,
        *,
        entry_point_group: str | None,
        from_entry_point: Callable[[str, Any], T] | None = None,
        sort: bool = True,
    ) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._from_entry_point = from_entry_point
        self._sort = sort
        self._items: dict[str, T] = {}
        self._plugins_loaded = entry_point_group is None

    # ------------------------------------------------------------------ adding
    def add(self, name: str, record: T) -> T:
        """Register ``record`` as ``name``; a name registered twice is an error."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"Invalid {self.kind} name: {name!r}; allowed: a non-empty string")
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = record
        return record

    def register(self, name: str | None = None) -> Callable[[Callable[..., Any]], Any]:
        """Decorator: register the decorated object itself (``name``: its ``__name__``).

        Registries of ``*Info`` records keep their module's own decorator
        (`eapu.devices.register_device`, ...), which builds the record and calls `add`.
        """

        def deco(obj: Any) -> Any:
            self.add(name or obj.__name__, obj)
            return obj

        return deco

    def description(self, name: str) -> str:
        """One line about ``name``: its record's ``description``, else its docstring's first."""
        rec = self.get(name)
        desc = getattr(rec, "description", None)
        if isinstance(desc, str):
            return desc
        lines = (getattr(rec, "__doc__", None) or "").strip().splitlines()
        return lines[0] if lines else ""

    # ---------------------------------------------------------------- plugins
    def load_plugins(self) -> None:
        """Load the entry points of this registry's group (once; later calls do nothing)."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        assert self.entry_point_group is not None
        for ep in metadata.entry_points(group=self.entry_point_group):
            if ep.name in self._items:
                continue  # a built-in, or a plugin module that registered it on import
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not hide the built-in names
                warnings.warn(
                    f"eapu: could not load {self.kind} plugin {ep.name!r} ({ep.value}): {exc}",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            if ep.name in self._items:  # its import registered it
                continue
            if self._from_entry_point is None:
                warnings.warn(
                    f"eapu: {self.kind} plugin {ep.name!r} ({ep.value}) did not register "
                    f"itself on import",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            self._items[ep.name] = self._from_entry_point(ep.name, obj)

    # ----------------------------------------------------------------- lookup
    def get(self, name: str) -> T:
        """The record of ``name``; an unknown name raises ``ValueError`` saying what exists."""
        self.load_plugins()
        try:
            return self._items[name]
        except (KeyError, TypeError):
            pass
        names = self.names()
        close = difflib.get_close_matches(str(name), names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(
            f"unknown {self.kind} {name!r}; {hint}available: {', '.join(names)}"
        ) from None

    def names(self, pattern: str = "*") -> list[str]:
        """Names matching the shell-style ``pattern`` (sorted, or in registration order)."""
        self.load_plugins()
        out = [n for n in self._items if fnmatch.fnmatch(n, pattern)]
        return sorted(out) if self._sort else out

    def __contains__(self, name: object) -> bool:
        self.load_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def items(self) -> list[tuple[str, T]]:
        """(name, record) pairs in `names` order."""
        return [(n, self._items[n]) for n in self.names()]
