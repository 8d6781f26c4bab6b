"""Technology nodes: per-operation costs (`Node`), read from ``energy_nodes.toml`` (shipped)
and a user's own TOML (`load_nodes`, `get_node`)."""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .. import validate
from ..files import read_toml

__all__ = ["PERIPHERY_FIELDS", "Node", "get_node", "load_nodes"]

#: The `Node` costs of the periphery around the cells (converters, drivers, sense
#: overhead): all estimates, which `scale_periphery` varies together.
PERIPHERY_FIELDS = ("e_dac_j", "e_adc_j", "e_pulse_driver_j", "e_verify_j")
_KINDS = ("analog", "digital")


@dataclass(frozen=True, kw_only=True)
class Node:
    """Per-operation costs of one technology node (SI units; see ``energy_nodes.toml``)."""

    name: str
    """The node's key in the TOML file (``"180nm"``)."""
    kind: str = "analog"
    """``"analog"`` (crossbars + digital periphery) or ``"digital"`` (a GPU reference)."""
    description: str = ""
    """One line on what the node is."""
    v_read_v: float = 0.0
    """Read voltage across a cell during a VMM or verify read (V): a cell read costs
    ``v_read_v² · G · t_read_s``."""
    t_read_s: float = 0.0
    """Integration time of one read: how long the read voltage is applied (s); it sets both
    the cells' read energy and a VMM's duration."""
    v_write_v: float = 0.0
    """Amplitude of a programming pulse (V)."""
    i_write_a: float = 0.0
    """Programming current (A); 0 means the pulse energy is v_write_v²·G·t_pulse_s."""
    t_pulse_s: float = 0.0
    """Width of one programming pulse (s)."""
    e_pulse_driver_j: float = 0.0
    """Fixed energy of the periphery per programming pulse (drivers, pumps, gate DAC) (J)."""
    e_verify_j: float = 0.0
    """Overhead of one verify read beyond the cell read and its ADC conversion (J)."""
    e_dac_j: float = 0.0
    """Energy of one input (DAC / word-line driver) conversion (J)."""
    t_dac_s: float = 0.0
    """Duration of one DAC conversion not hidden in t_read_s (s)."""
    e_adc_j: float = 0.0
    """Energy of one ADC conversion (J)."""
    t_adc_s: float = 0.0
    """Duration of one ADC conversion (s)."""
    e_mac_j: float = 0.0
    """Energy of one digital multiply-accumulate (J)."""
    e_op_j: float = 0.0
    """Energy of one other digital operation (add, compare, one FLOP on a GPU) (J)."""
    e_rand_j: float = 0.0
    """Energy of one random number (EaPU's Bernoulli draw) (J)."""
    e_byte_j: float = 0.0
    """Energy of moving one byte to or from memory (J)."""
    digital_ops_per_s: float = 0.0
    """Digital throughput: MACs, ops and random draws per second."""
    bytes_per_s: float = 0.0
    """Memory bandwidth (bytes per second)."""
    arrays_parallel: float = 1.0
    """Arrays computing a VMM at the same time."""
    dacs_parallel: float = 1.0
    """DAC conversions at the same time."""
    adcs_parallel: float = 1.0
    """ADC conversions at the same time."""
    write_parallel: float = 1.0
    """Cells receiving a programming pulse at the same time (with ``row_cells`` > 0: rows)."""
    row_cells: int = 0
    """Cells of one array row that one programming pulse serves at once (row-parallel
    programming: a NOR Flash row, 64 cells). With ``row_cells`` > 0 a write step takes one
    pulse time per pulse round of every row holding a written cell (`Counts.row_pulses`),
    ``write_parallel`` rows at a time, however many of its cells are written; 0: the cells
    are programmed one by one, ``write_parallel`` at a time (``pulses · t_pulse_s /
    write_parallel``)."""
    verify_parallel: float = 1.0
    """Cells verified at the same time."""

    _ANALOG_POSITIVE = (
        "v_read_v",
        "t_read_s",
        "v_write_v",
        "t_pulse_s",
        "t_adc_s",
        "digital_ops_per_s",
        "bytes_per_s",
    )
    _DIGITAL_POSITIVE = ("e_op_j", "e_mac_j", "e_byte_j", "digital_ops_per_s", "bytes_per_s")
    _PARALLEL = (
        "arrays_parallel",
        "dacs_parallel",
        "adcs_parallel",
        "write_parallel",
        "verify_parallel",
    )

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Invalid name: {self.name!r}; allowed: a non-empty string")
        owner = f"{self.name}."
        validate.choice(f"{owner}kind", self.kind, _KINDS)
        if not isinstance(self.description, str):
            raise ValueError(f"Invalid {owner}description: {self.description!r}; allowed: a string")
        for f in _numeric_fields():
            value = getattr(self, f)
            if f == "row_cells":
                validate.integer(f"{owner}{f}", value, low=0)
            elif f in self._PARALLEL:
                validate.number(f"{owner}{f}", value, low=1.0)
            else:
                validate.number(f"{owner}{f}", value, low=0.0)
        positive = self._ANALOG_POSITIVE if self.kind == "analog" else self._DIGITAL_POSITIVE
        for f in positive:
            validate.number(f"{owner}{f}", getattr(self, f), low=0.0, low_open=True)

    def read_energy_j(self, g_us: float) -> float:
        """Energy of reading one cell of conductance ``g_us`` once (J): v_read²·G·t_read."""
        return self.v_read_v**2 * g_us * 1e-6 * self.t_read_s

    def pulse_energy_j(self, g_us: float) -> float:
        """Energy of one programming pulse on a cell of conductance ``g_us`` (J)."""
        if self.i_write_a > 0:
            cell = self.v_write_v * self.i_write_a * self.t_pulse_s
        else:
            cell = self.v_write_v**2 * g_us * 1e-6 * self.t_pulse_s
        return cell + self.e_pulse_driver_j


def _numeric_fields() -> tuple[str, ...]:
    """Names of the numeric fields of `Node` (the keys a TOML node may set besides
    ``kind`` and ``description``)."""
    return tuple(f.name for f in fields(Node) if f.name not in ("name", "kind", "description"))


def _toml_loads(text: str, source: str) -> dict[str, Any]:
    try:
        import tomllib as toml  # Python >= 3.11
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as toml  # type: ignore[no-redef]
        except ModuleNotFoundError as err:
            raise ModuleNotFoundError(
                "reading the energy nodes needs Python >= 3.11 (tomllib) or the 'tomli' "
                "package on older Pythons"
            ) from err
    try:
        return toml.loads(text)
    except toml.TOMLDecodeError as err:
        raise ValueError(f"{source} is not valid TOML: {err}") from err


def _shipped_text() -> str:
    return importlib.resources.files("eapu.energy").joinpath("energy_nodes.toml").read_text("utf-8")


def _check_table(table: dict[str, Any], source: str) -> None:
    allowed = {"kind", "description", *_numeric_fields()}
    for name, entries in table.items():
        if not isinstance(entries, dict):
            raise ValueError(f"{source}: node {name!r} must be a table, got {entries!r}")
        unknown = sorted(set(entries) - allowed)
        if unknown:
            raise ValueError(
                f"{source}: unknown key(s) {unknown} in node {name!r}; allowed: "
                f"{', '.join(sorted(allowed))}"
            )


def load_nodes(path: str | Path | None = None, *, merge: bool = True) -> dict[str, Node]:
    """The technology nodes, by name.

    Args:
        path: a user TOML file of ``[node]`` tables. With ``merge`` (default) its values
            override the shipped ones key by key and new tables add nodes; without, it
            replaces the shipped file.
        merge: see ``path``.

    Raises:
        ValueError: a value out of range (the message names node, key and value), an
            unknown key, or a file that is not TOML.
    """
    table: dict[str, dict[str, Any]] = {}
    if path is None or merge:
        shipped = _toml_loads(_shipped_text(), "energy_nodes.toml")
        _check_table(shipped, "energy_nodes.toml")
        table = {k: dict(v) for k, v in shipped.items()}
    if path is not None:
        p = Path(path)
        user = read_toml(p, what="node file")
        _check_table(user, str(p))
        for name, entries in user.items():
            table.setdefault(name, {}).update(entries)
    return {name: Node(name=name, **entries) for name, entries in table.items()}


def get_node(name: str, path: str | Path | None = None) -> Node:
    """One node by name (``"180nm"``, ``"16nm"``, ``"flash"``, ``"gpu"`` or a user's)."""
    nodes = load_nodes(path)
    if name not in nodes:
        raise ValueError(f"unknown node {name!r}; available: {', '.join(sorted(nodes))}")
    return nodes[name]
