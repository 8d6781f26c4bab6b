"""Device files: a `Device` as TOML (`save_device`, `load_device`, `device_toml`)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from .core import Device
from .measured import MeasuredDevice

__all__ = ["DEVICE_KINDS", "device_toml", "is_device_file", "load_device", "save_device"]

DEVICE_KINDS: dict[str, type[Device]] = {"parametric": Device, "measured": MeasuredDevice}
"""Device kinds a device file may name in ``[device] kind``."""


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"a device file holds finite numbers only, got {v}")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(v, (tuple, list)):
        items = [_toml_value(x) for x in v]
        if len(items) <= 6:
            return "[" + ", ".join(items) + "]"
        rows = [", ".join(items[i : i + 6]) for i in range(0, len(items), 6)]
        return "[\n    " + ",\n    ".join(rows) + ",\n]"
    raise ValueError(f"a device file cannot hold {v!r}")


def device_toml(device: Device, *, extra: dict[str, dict[str, Any]] | None = None) -> str:
    """The text of a device file: ``[device]`` (``kind`` and every field) and, for people,
    the tables of ``extra`` (e.g. ``{"fit": {...}}``), which `load_device` ignores."""
    kind = next((k for k, c in DEVICE_KINDS.items() if type(device) is c), None)
    if kind is None:
        raise ValueError(f"device kind {type(device).__name__} has no file form")
    lines = [
        "# eapu device file: `eapu device fit` writes it, `--device FILE.toml` reads it.",
        "# [device] takes any field of eapu.devices." + type(device).__name__ + " (units in the",
        "# names: _us µS, _v V, _sd relative); other tables are for people and are not read.",
        "",
        "[device]",
        f"kind = {_toml_value(kind)}",
    ]
    for f in dataclasses.fields(device):
        if f.init:
            lines.append(f"{f.name} = {_toml_value(getattr(device, f.name))}")
    for table, values in (extra or {}).items():
        lines += ["", f"[{table}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def save_device(
    device: Device, path: str | Path, *, extra: dict[str, dict[str, Any]] | None = None
) -> None:
    """Write ``device`` as a device file (TOML, atomically; see `device_toml`)."""
    from ..files import atomic_write

    atomic_write(path, device_toml(device, extra=extra).encode())


def load_device(path: str | Path) -> Device:
    """Read a device file (see `device_toml`); errors name the file and the field."""
    from ..files import read_toml

    path = Path(path)
    try:
        doc = read_toml(path, what="device file")
    except FileNotFoundError:
        raise ValueError(f"device file {str(path)!r} does not exist") from None
    except OSError as e:
        raise ValueError(f"device file {str(path)!r}: {e.strerror or e}") from None
    table = doc.get("device")
    if not isinstance(table, dict):
        raise ValueError(f"device file {str(path)!r} has no [device] table")
    table = dict(table)
    kind = table.pop("kind", "parametric")
    cls = DEVICE_KINDS.get(kind)
    if cls is None:
        raise ValueError(
            f"device file {str(path)!r}: unknown kind {kind!r}; allowed: {', '.join(DEVICE_KINDS)}"
        )
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(
            f"device file {str(path)!r}: unknown [device] fields {unknown} for kind {kind!r}"
        )
    try:
        return cls(**table)
    except (TypeError, ValueError) as e:
        raise ValueError(f"device file {str(path)!r}: {e}") from None


def is_device_file(name: str) -> bool:
    """Whether ``name`` names a device file rather than a registered device (``*.toml``)."""
    return name.endswith(".toml")
