"""Energy and latency of inference and in-situ training, per technology node.

Costs per operation live in data (``energy_nodes.toml``, shipped with the package; a user's
own TOML overrides single values or adds nodes); this module turns operation `Counts` into
an energy or latency `Breakdown`, linearly in the counts.

>>> nodes = load_nodes()
>>> layers = [AnalogLayer("fc1", rows=64, cols=32), AnalogLayer("fc2", rows=32, cols=10)]
>>> c = inference_counts(layers, g_mean_us=85.0)
>>> e = energy(c, nodes["180nm"])
>>> e.total > 0 and e.programming == 0.0
True

The analog physics: one cell read costs ``v_read_v² · G · t_read_s`` (so a narrower
conductance window is cheaper), one programming pulse ``v_write_v² · G · t_pulse_s`` (or
``v_write_v · i_write_a · t_pulse_s``) plus a driver overhead; conductances enter the counts
as sums over the operations (``read_g_us`` etc.), which keeps energy linear in the counts.
Latency is a throughput model: each count times its duration, divided by the units that
work in parallel; it ignores overlap between categories (an upper bound of a pipelined
system) and the scatter of sparse writes over rows.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from . import validate

__all__ = [
    "CATEGORIES",
    "PERIPHERY_FIELDS",
    "SCOPES",
    "AnalogLayer",
    "Breakdown",
    "Counts",
    "EnduranceReport",
    "Node",
    "StepWrites",
    "endurance_report",
    "energy",
    "get_node",
    "gpu_reference",
    "inference_counts",
    "latency",
    "layer_blocks",
    "load_nodes",
    "periphery_sweep",
    "scale_periphery",
    "training_step_counts",
]

#: Categories of a `Breakdown`, in order.
CATEGORIES = ("vmm_read", "adc_dac", "digital", "rng", "programming", "verify")
#: Scopes of a `Breakdown` (`Breakdown.scope`): the categories each one sums. ``analog`` is
#: the crossbar side (cell reads, DAC/ADC, programming and its verify reads), what the
#: paper's Fig. 6 counts as far as its text says; ``programming`` the writes alone.
SCOPES: dict[str, tuple[str, ...]] = {
    "total": CATEGORIES,
    "analog": ("vmm_read", "adc_dac", "programming", "verify"),
    "programming": ("programming", "verify"),
}
#: The `Node` costs of the periphery around the cells (converters, drivers, sense
#: overhead): all estimates, which `scale_periphery` varies together.
PERIPHERY_FIELDS = ("e_dac_j", "e_adc_j", "e_pulse_driver_j", "e_verify_j")
_KINDS = ("analog", "digital")
_MAPPINGS = ("reference_column", "differential")


# --------------------------------------------------------------------------------------
# technology nodes
# --------------------------------------------------------------------------------------


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
    """Read voltage across a cell during a VMM or verify read (V)."""
    t_read_s: float = 0.0
    """Duration of one read (integration window) (s)."""
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
    """Cells receiving a programming pulse at the same time."""
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
            if f in self._PARALLEL:
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
    return importlib.resources.files("eapu").joinpath("energy_nodes.toml").read_text("utf-8")


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
        user = _toml_loads(p.read_text("utf-8"), str(p))
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


# --------------------------------------------------------------------------------------
# counts
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """Operations of a workload; each field may be fractional (a mean per sample or step).

    Conductances enter as sums over the operations (µS), so that `energy` stays linear:
    ``read_g_us = Σ G`` over the cell reads, i.e. ``cell_reads · mean G``.
    """

    vmms: float = 0.0
    """Array activations: one input vector applied to one array."""
    cell_reads: float = 0.0
    """Cells read during VMMs (one cell in one VMM counts once)."""
    read_g_us: float = 0.0
    """Sum of the read cells' conductances over all cell reads (µS)."""
    dac_conversions: float = 0.0
    """Input conversions (one row driven in one VMM)."""
    adc_conversions: float = 0.0
    """Output conversions (one column converted in one VMM)."""
    pulses: float = 0.0
    """Programming pulses."""
    pulse_g_us: float = 0.0
    """Sum of the pulsed cells' conductances over all pulses (µS)."""
    verify_reads: float = 0.0
    """Single-cell verify reads of the programming scheme."""
    verify_g_us: float = 0.0
    """Sum of the verified cells' conductances over all verify reads (µS)."""
    digital_macs: float = 0.0
    """Digital multiply-accumulates (backpropagation, weight gradients)."""
    digital_ops: float = 0.0
    """Other digital operations (partial sums, activations, optimizer)."""
    random_draws: float = 0.0
    """Random numbers drawn (EaPU's Bernoulli decisions)."""
    bytes_moved: float = 0.0
    """Bytes moved to or from memory."""

    def __post_init__(self) -> None:
        for f in fields(self):
            validate.number(f"Counts.{f.name}", getattr(self, f.name), low=0.0)

    @property
    def analog(self) -> bool:
        """Whether any crossbar operation is counted."""
        return any(
            getattr(self, f) > 0
            for f in (
                "vmms",
                "cell_reads",
                "read_g_us",
                "dac_conversions",
                "adc_conversions",
                "pulses",
                "pulse_g_us",
                "verify_reads",
                "verify_g_us",
            )
        )

    def __add__(self, other: Counts) -> Counts:
        if not isinstance(other, Counts):
            return NotImplemented
        return Counts(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    def __mul__(self, k: float) -> Counts:
        validate.number("scale", k, low=0.0)
        return Counts(**{f.name: getattr(self, f.name) * k for f in fields(self)})

    __rmul__ = __mul__

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class AnalogLayer:
    """A weight matrix on crossbars: ``rows`` inputs (fan-in) × ``cols`` outputs.

    ``vmms_per_sample`` is how often the matrix is applied per input sample (1 for a linear
    layer, the output positions H_out·W_out for a convolution). ``row_unit`` is the number of
    rows the placement keeps on one array (a convolution's kh·kw window), as in
    `eapu.tiles.Placement.add`.
    """

    name: str
    rows: int
    cols: int
    vmms_per_sample: float = 1.0
    row_unit: int = 1

    def __post_init__(self) -> None:
        for f in ("rows", "cols", "row_unit"):
            validate.integer(f"AnalogLayer.{f}", getattr(self, f), low=1)
        validate.number("AnalogLayer.vmms_per_sample", self.vmms_per_sample, low=0.0)

    @property
    def weights(self) -> int:
        return self.rows * self.cols


@dataclass(frozen=True)
class StepWrites:
    """What the programming scheme did in one training step (means are fine)."""

    written: float
    """Cells written."""
    pulses: float
    """Programming pulses."""
    reads: float
    """Verify reads."""

    def __post_init__(self) -> None:
        for f in ("written", "pulses", "reads"):
            validate.number(f"StepWrites.{f}", getattr(self, f), low=0.0)

    @classmethod
    def from_summary(cls, summary: Any) -> StepWrites:
        """Per-step means from a `eapu.ledger.LedgerSummary` (or anything with ``steps``,
        ``written``, ``pulses`` and ``reads`` totals)."""
        steps = max(int(summary.steps), 1)
        return cls(summary.written / steps, summary.pulses / steps, summary.reads / steps)


def layer_blocks(
    layer: AnalogLayer, array_rows: int, array_cols: int, mapping: str
) -> tuple[int, int]:
    """(row blocks, column blocks) of ``layer`` as `eapu.tiles.Placement` cuts it.

    The geometry is the placement's own: a fresh `Placement` places the layer, so energy
    counts the arrays a crossbar really uses (e.g. a 63-row convolution of 3×3 windows on
    32-row arrays takes three row blocks of 27 + 27 + 9 rows, not two).
    """
    from .tiles import Placement

    per = 2 if mapping == "differential" else 1
    ref = 1 if mapping == "reference_column" else 0
    if (array_cols - ref) // per < 1:
        raise ValueError(f"Invalid array_cols: {array_cols}; allowed: >= {ref + per}")
    blocks = Placement(array_rows, array_cols, mapping).add(
        layer.name, layer.rows, layer.cols, row_unit=layer.row_unit
    )
    return len({b.row0 for b in blocks}), len({b.col0 for b in blocks})


def _geometry(
    layer: AnalogLayer, array_rows: int, array_cols: int, mapping: str
) -> tuple[int, int, int, int]:
    br, bc = layer_blocks(layer, array_rows, array_cols, mapping)
    per = 2 if mapping == "differential" else 1
    ref = 1 if mapping == "reference_column" else 0
    return br, bc, per, ref


def _check_layout(
    layers: Sequence[AnalogLayer], g_mean_us: float, array_rows: int, array_cols: int, mapping: str
) -> None:
    if not layers or not all(isinstance(x, AnalogLayer) for x in layers):
        raise ValueError(f"Invalid layers: {layers!r}; allowed: a non-empty list of AnalogLayer")
    validate.number("g_mean_us", g_mean_us, low=0.0)
    validate.choice("mapping", mapping, _MAPPINGS)
    for name, v in (("array_rows", array_rows), ("array_cols", array_cols)):
        validate.integer(name, v, low=1)


def inference_counts(
    layers: Sequence[AnalogLayer],
    *,
    g_mean_us: float,
    array_rows: int = 32,
    array_cols: int = 32,
    mapping: str = "reference_column",
    bytes_per_value: float = 1.0,
) -> Counts:
    """Operations of the forward pass of one sample through the analog layers.

    Each matrix is cut into blocks as `eapu.tiles.Placement` places it (`layer_blocks`), one
    array activation each. Per VMM: every weight cell is read (two for ``differential``),
    plus the reference cells of each column block (``reference_column``); each input is
    driven once per column block; each output column is converted once per row block, plus
    the reference column once per block (subtracted digitally); a differential pair is
    subtracted in the analog domain (one conversion). One digital op per converted output
    accumulates the partial sums, subtracts the reference and applies the activation.

    Args:
        layers: the analog layers.
        g_mean_us: mean conductance of the read cells (µS), reference cells included.
        array_rows, array_cols: array size (cells).
        mapping: ``"reference_column"`` or ``"differential"``.
        bytes_per_value: bytes of one activation read or written by the digital side.
    """
    _check_layout(layers, g_mean_us, array_rows, array_cols, mapping)
    validate.number("bytes_per_value", bytes_per_value, low=0.0)
    c = dict.fromkeys(("vmms", "cell_reads", "dac", "adc", "ops", "bytes"), 0.0)
    for layer in layers:
        br, bc, per, ref = _geometry(layer, array_rows, array_cols, mapping)
        n = layer.vmms_per_sample
        c["vmms"] += n * br * bc
        c["cell_reads"] += n * (per * layer.rows * layer.cols + ref * layer.rows * bc)
        c["dac"] += n * layer.rows * bc
        c["adc"] += n * br * (layer.cols + ref * bc)
        c["ops"] += n * br * layer.cols
        c["bytes"] += n * (layer.rows + layer.cols) * bytes_per_value
    return Counts(
        vmms=c["vmms"],
        cell_reads=c["cell_reads"],
        read_g_us=c["cell_reads"] * g_mean_us,
        dac_conversions=c["dac"],
        adc_conversions=c["adc"],
        digital_ops=c["ops"],
        bytes_moved=c["bytes"],
    )


def training_step_counts(
    layers: Sequence[AnalogLayer],
    writes: StepWrites | Any,
    *,
    batch_size: int,
    g_mean_us: float,
    g_write_us: float | None = None,
    array_rows: int = 32,
    array_cols: int = 32,
    mapping: str = "reference_column",
    backward_macs_per_weight_use: float = 2.0,
    optimizer_ops_per_weight: float = 10.0,
    optimizer_bytes_per_weight: float = 24.0,
    random_draws: float | None = None,
    bytes_per_value: float = 4.0,
) -> Counts:
    """Operations of one in-situ training step (the paper's Fig. 2b split).

    Forward: ``batch_size`` times `inference_counts` on the crossbars. Backward, digital:
    ``backward_macs_per_weight_use`` MACs per weight per VMM (input error and weight
    gradient; the first layer's input error is counted too, a small overestimate), the
    saved activations and errors read back (``bytes_per_value`` each). Optimizer, digital:
    ``optimizer_ops_per_weight`` ops (Adam ~10, SGD ~2) and ``optimizer_bytes_per_weight``
    bytes (gradient and moments, read and written) per weight. EaPU: one random draw per
    weight unless ``random_draws`` says otherwise (only |ΔW| < ΔWth needs one, so that is
    an upper bound). Programming: the pulses and verify reads of ``writes``.

    Args:
        layers: the analog layers.
        writes: a `StepWrites`, or a `eapu.ledger.LedgerSummary` (per-step means are taken).
        batch_size: samples per step.
        g_mean_us: mean conductance of the read cells (µS).
        g_write_us: mean conductance of the programmed cells (default ``g_mean_us``).
    """
    validate.integer("batch_size", batch_size, low=1)
    w = writes if isinstance(writes, StepWrites) else StepWrites.from_summary(writes)
    g_write_us = g_mean_us if g_write_us is None else g_write_us
    validate.number("g_write_us", g_write_us, low=0.0)
    for name, v in (
        ("backward_macs_per_weight_use", backward_macs_per_weight_use),
        ("optimizer_ops_per_weight", optimizer_ops_per_weight),
        ("optimizer_bytes_per_weight", optimizer_bytes_per_weight),
        ("bytes_per_value", bytes_per_value),
    ):
        validate.number(name, v, low=0.0)
    fwd = (
        inference_counts(
            layers,
            g_mean_us=g_mean_us,
            array_rows=array_rows,
            array_cols=array_cols,
            mapping=mapping,
            bytes_per_value=bytes_per_value,
        )
        * batch_size
    )
    weights = sum(x.weights for x in layers)
    uses = sum(x.weights * x.vmms_per_sample for x in layers)
    saved = sum(x.vmms_per_sample * (x.rows + x.cols) for x in layers)
    draws = float(weights) if random_draws is None else random_draws
    validate.number("random_draws", draws, low=0.0)
    step = Counts(
        digital_macs=batch_size * uses * backward_macs_per_weight_use,
        digital_ops=weights * optimizer_ops_per_weight,
        random_draws=draws,
        bytes_moved=batch_size * saved * bytes_per_value + weights * optimizer_bytes_per_weight,
        pulses=w.pulses,
        pulse_g_us=w.pulses * g_write_us,
        verify_reads=w.reads,
        verify_g_us=w.reads * g_write_us,
    )
    return fwd + step


# --------------------------------------------------------------------------------------
# energy and latency
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Breakdown:
    """Energy (``unit="J"``) or latency (``unit="s"``) per category; ``total`` sums them.

    ``rng`` is EaPU's random-number cost, kept apart from ``digital`` to show its overhead.
    """

    vmm_read: float = 0.0
    adc_dac: float = 0.0
    digital: float = 0.0
    rng: float = 0.0
    programming: float = 0.0
    verify: float = 0.0
    unit: str = "J"

    def __post_init__(self) -> None:
        validate.choice("unit", self.unit, ("J", "s"))
        for f in CATEGORIES:
            validate.number(f"Breakdown.{f}", getattr(self, f), low=0.0)

    @property
    def total(self) -> float:
        return sum(getattr(self, f) for f in CATEGORIES)

    def scope(self, name: str) -> float:
        """The sum of the categories of scope ``name`` (see `SCOPES`)."""
        validate.choice("scope", name, tuple(SCOPES))
        return sum(getattr(self, f) for f in SCOPES[name])

    def __add__(self, other: Breakdown) -> Breakdown:
        if not isinstance(other, Breakdown):
            return NotImplemented
        if other.unit != self.unit:
            raise ValueError(f"cannot add a Breakdown in {other.unit} to one in {self.unit}")
        return Breakdown(
            **{f: getattr(self, f) + getattr(other, f) for f in CATEGORIES}, unit=self.unit
        )

    def __mul__(self, k: float) -> Breakdown:
        validate.number("scale", k, low=0.0)
        return Breakdown(**{f: getattr(self, f) * k for f in CATEGORIES}, unit=self.unit)

    __rmul__ = __mul__

    def as_dict(self) -> dict[str, float]:
        """The categories, ``total``, and ``scope_analog`` / ``scope_programming``."""
        out = {f: getattr(self, f) for f in CATEGORIES}
        out["total"] = self.total
        out["scope_analog"] = self.scope("analog")
        out["scope_programming"] = self.scope("programming")
        return out


def _check_node(counts: Counts, node: Node) -> None:
    if not isinstance(counts, Counts):
        raise ValueError(f"Invalid counts: {counts!r}; allowed: a Counts")
    if not isinstance(node, Node):
        raise ValueError(f"Invalid node: {node!r}; allowed: a Node (see get_node)")
    if node.kind == "digital" and counts.analog:
        raise ValueError(
            f"node {node.name!r} is digital but the counts hold crossbar operations; "
            "use gpu_reference for a GPU, or an analog node"
        )


def energy(counts: Counts, node: Node) -> Breakdown:
    """Energy of ``counts`` on ``node`` (J per category); linear in the counts."""
    _check_node(counts, node)
    read_per_us = node.v_read_v**2 * node.t_read_s * 1e-6  # J per µS of summed conductance
    if node.i_write_a > 0:
        cells = counts.pulses * node.v_write_v * node.i_write_a * node.t_pulse_s
    else:
        cells = counts.pulse_g_us * node.v_write_v**2 * node.t_pulse_s * 1e-6
    return Breakdown(
        vmm_read=counts.read_g_us * read_per_us,
        adc_dac=counts.adc_conversions * node.e_adc_j + counts.dac_conversions * node.e_dac_j,
        digital=(
            counts.digital_macs * node.e_mac_j
            + counts.digital_ops * node.e_op_j
            + counts.bytes_moved * node.e_byte_j
        ),
        rng=counts.random_draws * node.e_rand_j,
        programming=cells + counts.pulses * node.e_pulse_driver_j,
        verify=(
            counts.verify_g_us * read_per_us
            + counts.verify_reads * (node.e_adc_j + node.e_verify_j)
        ),
        unit="J",
    )


def latency(counts: Counts, node: Node) -> Breakdown:
    """Latency of ``counts`` on ``node`` (s per category, no overlap); linear in the counts."""
    _check_node(counts, node)
    return Breakdown(
        vmm_read=counts.vmms * node.t_read_s / node.arrays_parallel,
        adc_dac=(
            counts.adc_conversions * node.t_adc_s / node.adcs_parallel
            + counts.dac_conversions * node.t_dac_s / node.dacs_parallel
        ),
        digital=(
            (counts.digital_macs + counts.digital_ops) / node.digital_ops_per_s
            + counts.bytes_moved / node.bytes_per_s
        ),
        rng=counts.random_draws / node.digital_ops_per_s,
        programming=counts.pulses * node.t_pulse_s / node.write_parallel,
        verify=counts.verify_reads * (node.t_read_s + node.t_adc_s) / node.verify_parallel,
        unit="s",
    )


def gpu_reference(flops: float, bytes_moved: float, node: Node) -> tuple[Breakdown, Breakdown]:
    """(energy, latency) of a workload of ``flops`` and ``bytes_moved`` on a GPU node.

    Energy is ``flops·e_op_j + bytes·e_byte_j``; latency is the roofline
    ``max(flops / digital_ops_per_s, bytes / bytes_per_s)``. Both land in ``digital``.
    """
    if not isinstance(node, Node) or node.kind != "digital":
        raise ValueError(f"Invalid node: {node!r}; allowed: a digital Node (e.g. 'gpu')")
    validate.number("flops", flops, low=0.0)
    validate.number("bytes_moved", bytes_moved, low=0.0)
    e = Breakdown(digital=flops * node.e_op_j + bytes_moved * node.e_byte_j, unit="J")
    t = Breakdown(
        digital=max(flops / node.digital_ops_per_s, bytes_moved / node.bytes_per_s), unit="s"
    )
    return e, t


def scale_periphery(node: Node, factor: float) -> Node:
    """``node`` with every periphery cost (`PERIPHERY_FIELDS`) multiplied by ``factor``."""
    validate.number("factor", factor, low=0.0)
    if node.kind != "analog":
        raise ValueError(f"Invalid node: {node.name!r} is {node.kind}; allowed: an analog node")
    return dataclasses.replace(node, **{f: getattr(node, f) * factor for f in PERIPHERY_FIELDS})


def periphery_sweep(counts: Counts, node: Node, factors: Sequence[float]) -> list[dict[str, float]]:
    """Energy of ``counts`` by scope as the periphery estimate varies.

    The cell costs (V²·G·t) follow the conductances; the periphery costs in
    ``energy_nodes.toml`` are estimates. Each row scales them by one factor and gives the
    energy by scope (J) and the cells' share of the analog energy (``cell_share``: cell reads
    and the cells' part of the pulses, over the analog scope).
    """
    if not factors:
        raise ValueError("Invalid factors: empty; allowed: one or more numbers >= 0")
    cells_only = scale_periphery(node, 0.0)
    rows = []
    for f in factors:
        e = energy(counts, scale_periphery(node, f))
        analog = e.scope("analog")
        cell = energy(counts, cells_only).scope("analog")
        rows.append(
            {
                "factor": float(f),
                "total": e.total,
                "analog": analog,
                "programming": e.scope("programming"),
                "cell_share": cell / analog if analog > 0 else 0.0,
            }
        )
    return rows


# --------------------------------------------------------------------------------------
# endurance
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnduranceReport:
    """Wear of the cells after a run of ``steps`` steps."""

    cells: int
    """Cells counted."""
    steps: int
    """Steps of the run the write counts cover."""
    endurance_cycles: float
    """Writes a cell survives."""
    bin_edges: tuple[float, ...]
    """Edges of the write-count histogram."""
    counts: tuple[int, ...]
    """Cells per histogram bin."""
    max_writes: int
    """Writes of the most-written cell."""
    max_index: int
    """Flat index of the most-written cell (into the concatenation of the flattened tensors)."""
    mean_writes: float
    """Mean writes per cell."""
    never_written: float
    """Fraction of cells never written."""
    runs_to_endurance: float
    """Runs of ``steps`` steps until the most-written cell reaches ``endurance_cycles``
    (inf if no cell was written)."""
    steps_to_endurance: float
    """The same in steps."""


def endurance_report(
    writes: Tensor | Iterable[Tensor],
    steps: int,
    endurance_cycles: float = 1e6,
    *,
    bins: int = 20,
) -> EnduranceReport:
    """Histogram of per-cell write counts and the projected lifetime of the most-worn cell.

    Args:
        writes: per-cell write counts (e.g. ``tile.writes``), or several such tensors.
        steps: steps of the run that produced them.
        endurance_cycles: writes a cell survives (RRAM ~1e6, Flash ~1e4-1e5).
        bins: histogram bins over [0, max writes].
    """
    if isinstance(writes, Tensor):
        flat = writes.detach().reshape(-1)
    else:
        parts = [w.detach().reshape(-1).cpu() for w in writes]
        if not parts:
            raise ValueError("Invalid writes: an empty sequence; allowed: one or more tensors")
        flat = torch.cat(parts)
    flat = flat.cpu().to(torch.float64)
    if flat.numel() == 0:
        raise ValueError("Invalid writes: no cells; allowed: a non-empty tensor")
    if not torch.isfinite(flat).all() or (flat < 0).any():
        raise ValueError("Invalid writes: allowed: finite counts >= 0")
    validate.integer("steps", steps, low=1)
    validate.number("endurance_cycles", endurance_cycles, low=0.0, low_open=True)
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"Invalid bins: {bins!r}; allowed: an int >= 1")
    top = float(flat.max())
    hist = torch.histc(flat, bins=bins, min=0.0, max=max(top, 1.0))
    edges = torch.linspace(0.0, max(top, 1.0), bins + 1, dtype=torch.float64)
    runs = endurance_cycles / top if top > 0 else math.inf
    return EnduranceReport(
        cells=flat.numel(),
        steps=steps,
        endurance_cycles=float(endurance_cycles),
        bin_edges=tuple(edges.tolist()),
        counts=tuple(int(v) for v in hist.tolist()),
        max_writes=int(top),
        max_index=int(flat.argmax()),
        mean_writes=float(flat.mean()),
        never_written=float((flat == 0).double().mean()),
        runs_to_endurance=runs,
        steps_to_endurance=runs * steps,
    )
