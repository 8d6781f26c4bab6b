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
the entry point's name with ``from_entry_point``.

A broken plugin never takes the command line down (``eapu --version``, the built-in names and
the other plugins keep working): one whose import raises or calls ``sys.exit``, whose entry
point is not a factory, or whose record cannot be made is skipped, with one `RuntimeWarning`
naming the plugin, its entry point and the package that installed it. A plugin factory is
called through a guard: if it raises or (where the registry says what it returns) gives
something else, the command that asked for it gets a `ValueError` naming the plugin and its
package, not a traceback from deep inside a run.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import inspect
import warnings
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any, Generic, TypeVar

from .validate import shown

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
        returns: the type a plugin factory must return (``Device`` for devices); a plugin
            factory returning anything else raises a `ValueError` naming the plugin. None:
            not checked (a factory that raises is still named).
    """

    def __init__(
        self,
        kind: str,
        *,
        entry_point_group: str | None,
        from_entry_point: Callable[[str, Any], T] | None = None,
        sort: bool = True,
        returns: type | None = None,
    ) -> None:
        self.kind = kind
        self.returns = returns
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
        """Load the entry points of this registry's group (once; later calls do nothing).

        A plugin that cannot be loaded is skipped with one `RuntimeWarning` naming it and its
        package; the built-in names and the other plugins stay.
        """
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        assert self.entry_point_group is not None
        try:
            eps = list(metadata.entry_points(group=self.entry_point_group))
        except Exception as exc:  # an installed package's metadata is broken
            self._skip("plugins", f"the installed packages' entry points: {exc}")
            return
        for ep in eps:
            if ep.name in self._items:
                continue  # a built-in, or a plugin module that registered it on import
            try:
                obj = ep.load()
                if ep.name in self._items:  # its import registered it
                    continue
                if self._from_entry_point is None:
                    self._skip_plugin(ep, "its import did not register it")
                    continue
                if not callable(obj):
                    self._skip_plugin(ep, f"it names {_short(obj)}, not a factory")
                    continue
                record = self._from_entry_point(ep.name, self._guard(ep, obj))
            except SystemExit as exc:  # sys.exit at import: the plugin's, not ours to obey
                self._skip_plugin(ep, f"its import called sys.exit({exc.code!r})")
                continue
            except Exception as exc:  # a broken plugin must not hide the other names
                self._skip_plugin(ep, f"{type(exc).__name__}: {exc}")
                continue
            self._items[ep.name] = record

    def _skip(self, what: str, why: str) -> None:
        warnings.warn(
            f"eapu: skipped {self.kind} {what} ({why[:300]})", RuntimeWarning, stacklevel=4
        )

    def _skip_plugin(self, ep: metadata.EntryPoint, why: str) -> None:
        self._skip(f"plugin {ep.name!r}", f"{_origin(ep)}; {why}")

    def _guard(self, ep: metadata.EntryPoint, obj: Any) -> Any:
        """``obj`` (a plugin factory) called through a check naming the plugin (a class is
        left as it is: callers test it with ``issubclass``)."""
        if inspect.isclass(obj):
            return obj
        kind, returns, origin = self.kind, self.returns, _origin(ep)

        @functools.wraps(obj)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                out = obj(*args, **kwargs)
            except SystemExit as exc:
                raise ValueError(
                    f"{kind} plugin {ep.name!r} ({origin}) called sys.exit({exc.code!r}); "
                    "fix or uninstall that package"
                ) from None
            except (ValueError, OSError):
                raise  # the factory's own check of its arguments, a missing file
            except Exception as exc:
                raise ValueError(
                    f"{kind} plugin {ep.name!r} ({origin}) failed: {type(exc).__name__}: "
                    f"{str(exc)[:300]}; fix or uninstall that package"
                ) from exc
            if returns is not None and not isinstance(out, returns):
                raise ValueError(
                    f"{kind} plugin {ep.name!r} ({origin}) returned {_short(out)}, not a "
                    f"{returns.__name__}; fix or uninstall that package"
                )
            return out

        return guarded

    # ----------------------------------------------------------------- lookup
    def get(self, name: str) -> T:
        """The record of ``name``; an unknown name raises ``ValueError`` saying what exists."""
        self.load_plugins()
        try:
            return self._items[name]
        except (KeyError, TypeError):
            pass
        names = self.names()
        close = difflib.get_close_matches(str(name)[:100], names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(
            f"unknown {self.kind} {shown(name)}; {hint}available: {', '.join(names)}"
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


def _origin(ep: metadata.EntryPoint) -> str:
    """``module:attr of package NAME VERSION`` for messages."""
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) if dist is not None else None
    if name is None and dist is not None:
        name = dist.metadata["Name"] if dist.metadata else None
    version = getattr(dist, "version", "") if dist is not None else ""
    package = f"package {name} {version}".strip() if name else "an unknown package"
    return f"{ep.value} of {package}"


def _short(obj: Any) -> str:
    """What ``obj`` is, briefly: ``the str 'x'``, ``None``."""
    if obj is None:
        return "None"
    return f"the {type(obj).__name__} {repr(obj)[:60]}"
