"""Operation counts (`Counts`) of inference and of a training step on a placed network."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from .. import validate

__all__ = [
    "BACKWARDS",
    "AnalogLayer",
    "Counts",
    "StepWrites",
    "inference_counts",
    "layer_blocks",
    "row_write_gain",
    "rows_written_estimate",
    "training_step_counts",
]

_MAPPINGS = ("reference_column", "differential")
#: Where a training step computes the input error δ·Wᵀ of the backward pass
#: (`training_step_counts`): ``"digital"`` (every backward MAC digital, eapu's full-system
#: model) or ``"crossbar"`` (a transposed VMM on the same arrays: the paper's Fig. 2b, where
#: the memristors perform the VMMs and digital computing the rest).
BACKWARDS = ("digital", "crossbar")


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
    rows_written: float = 0.0
    """Array rows holding at least one cell that received a programming pulse (each step
    counts its own)."""
    row_pulses: float = 0.0
    """Pulse rounds of the written rows: each written row counts as many as the most pulses
    one of its cells took (``rows_written`` when every written cell takes one pulse). What
    row-parallel programming spends time on (`Node.row_cells`)."""
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
                "rows_written",
                "row_pulses",
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
    rows: float = 0.0
    """Array rows holding at least one written cell (`Counts.rows_written`)."""
    row_pulses: float = 0.0
    """Pulse rounds of the written rows (`Counts.row_pulses`)."""
    rows_estimated: bool = False
    """``rows`` and ``row_pulses`` are estimates (`rows_written_estimate`), not counted."""

    def __post_init__(self) -> None:
        for f in ("written", "pulses", "reads", "rows", "row_pulses"):
            validate.number(f"StepWrites.{f}", getattr(self, f), low=0.0)

    @classmethod
    def from_summary(cls, summary: Any, *, row_cells: int = 32) -> StepWrites:
        """Per-step means from a `eapu.ledger.LedgerSummary` (or anything with ``steps``,
        ``written``, ``pulses`` and ``reads`` totals).

        The rows come from the summary's ``rows`` (and ``row_pulses``) where it counts them;
        otherwise they are estimated from its ``rup`` and ``cells`` for rows of
        ``row_cells`` cells (`rows_written_estimate`, ``rows_estimated`` set), and the
        pulse rounds as rows times the mean pulses per written cell (``ncell``: exact when
        every written cell takes one pulse, else a lower bound, since a row waits for its
        slowest cell).
        """
        steps = max(int(summary.steps), 1)
        written, pulses = summary.written / steps, summary.pulses / steps
        ncell = pulses / written if written > 0 else 0.0
        counted = getattr(summary, "rows", None)
        if counted is not None:
            rows = counted / steps
            rp = getattr(summary, "row_pulses", None)
            row_pulses = rp / steps if rp is not None else rows * ncell
            estimated = rp is None and ncell > 1
        else:
            rows = rows_written_estimate(summary.cells, summary.rup, row_cells)
            row_pulses, estimated = rows * ncell, True
        return cls(written, pulses, summary.reads / steps, rows, row_pulses, estimated)


def row_write_gain(rup: float, row_cells: int) -> float:
    """How much faster a write step is when one pulse serves a whole row than when every
    cell of the array is written: ``1 / (1 − (1 − rup)^row_cells)``.

    Writing every cell (a fast-programming BP step) keeps every row busy; with a fraction
    ``rup`` of the cells written independently, a row of ``row_cells`` cells holds a written
    cell with probability ``1 − (1 − rup)^row_cells``. Liu et al. (2025) report an update
    latency 18.69× below FP on Flash; ``row_write_gain(0.86e-3, 64)`` = 18.67 (their Rup of
    0.86 ‰; the row width 64 is eapu's reading of their Flash system, whose note is not in
    the main text).

    >>> round(row_write_gain(0.86e-3, 64), 2)
    18.67
    """
    validate.number("rup", rup, low=0.0, high=1.0, low_open=True)
    validate.integer("row_cells", row_cells, low=1)
    return 1.0 / -math.expm1(row_cells * math.log1p(-rup)) if rup < 1 else 1.0


def rows_written_estimate(cells: float, rup: float, row_cells: int) -> float:
    """Expected rows holding a written cell when a fraction ``rup`` of ``cells`` cells, laid
    out in full rows of ``row_cells``, is written independently:
    ``cells / row_cells · (1 − (1 − rup)^row_cells)``.

    An estimate: EaPU's Bernoulli writes are independent, but the cells an update must
    write (|ΔW| ≥ ΔWth) cluster, and rows are rarely full; from a mean ``rup`` over steps
    it is an upper bound of the mean over steps (the expression is concave in ``rup``).
    """
    validate.number("cells", cells, low=0.0)
    validate.number("rup", rup, low=0.0, high=1.0)
    validate.integer("row_cells", row_cells, low=1)
    return (
        cells / row_cells * -math.expm1(row_cells * math.log1p(-rup))
        if rup < 1
        else (cells / row_cells)
    )


def layer_blocks(
    layer: AnalogLayer, array_rows: int, array_cols: int, mapping: str
) -> tuple[int, int]:
    """(row blocks, column blocks) of ``layer`` as `eapu.tiles.Placement` cuts it.

    The geometry is the placement's own: a fresh `Placement` places the layer, so energy
    counts the arrays a crossbar really uses (e.g. a 63-row convolution of 3×3 windows on
    32-row arrays takes three row blocks of 27 + 27 + 9 rows, not two).
    """
    from ..tiles import Placement

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


def _crossbar_backward(
    layers: Sequence[AnalogLayer], array_rows: int, array_cols: int, mapping: str
) -> dict[str, float]:
    """Per sample: the input errors δ·Wᵀ as transposed VMMs on the layers' own arrays.

    Per block and VMM the output errors drive the columns (one DAC each, and the reference
    column driven with −Σⱼδⱼ, so that the rows sum Σⱼ δⱼ (Gᵢⱼ − G_ref,ᵢ)), every weight
    and reference cell of the block is read, and each row is converted (one ADC) and
    accumulated over the column blocks digitally (one op); Σⱼδⱼ is one digital op per block.
    The first layer needs no input error and is skipped. eapu's model: the paper puts "the
    most expensive VMM" on the memristors (Fig. 2b) without detailing the backward pass.
    """
    c = dict.fromkeys(("vmms", "cell_reads", "dac", "adc", "ops"), 0.0)
    for layer in layers[1:]:
        br, bc, per, ref = _geometry(layer, array_rows, array_cols, mapping)
        n = layer.vmms_per_sample
        c["vmms"] += n * br * bc
        c["cell_reads"] += n * (per * layer.rows * layer.cols + ref * layer.rows * bc)
        c["dac"] += n * br * (layer.cols + ref * bc)
        c["adc"] += n * layer.rows * bc
        c["ops"] += n * (layer.rows * bc + ref * br * bc)
    return c


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
    backward: str = "digital",
) -> Counts:
    """Operations of one in-situ training step.

    Forward: ``batch_size`` times `inference_counts` on the crossbars. Backward with
    ``backward="digital"`` (eapu's full-system model): ``backward_macs_per_weight_use``
    MACs per weight per VMM (input error and weight gradient; the first layer's input error
    is counted too, a small overestimate). With ``backward="crossbar"`` (the paper's Fig. 2b:
    the VMMs on the memristors, the rest digital): the input errors are transposed VMMs on
    the same arrays (`_crossbar_backward`, the first layer skipped), and one MAC per weight
    use fewer stays digital (the weight gradient x·δᵀ). Either way the saved activations
    and errors are read back (``bytes_per_value`` each). Optimizer, digital:
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
        backward: ``"digital"`` or ``"crossbar"`` (`BACKWARDS`), see above.

    The rows written (`Counts.rows_written`, ``row_pulses``) are those of ``writes``; from a
    ledger summary without a row count they are estimated for rows of ``array_cols``
    cells (`StepWrites.from_summary`).
    """
    validate.integer("batch_size", batch_size, low=1)
    validate.choice("backward", backward, BACKWARDS)
    if isinstance(writes, StepWrites):
        w = writes
    else:
        w = StepWrites.from_summary(writes, row_cells=array_cols)
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
    macs = backward_macs_per_weight_use
    bwd = Counts()
    if backward == "crossbar":
        if macs < 1:
            raise ValueError(
                f"Invalid backward_macs_per_weight_use: {macs!r}; allowed with backward="
                "'crossbar': >= 1 (one of them, the input error, moves onto the crossbar)"
            )
        macs -= 1
        b = _crossbar_backward(layers, array_rows, array_cols, mapping)
        bwd = (
            Counts(
                vmms=b["vmms"],
                cell_reads=b["cell_reads"],
                read_g_us=b["cell_reads"] * g_mean_us,
                dac_conversions=b["dac"],
                adc_conversions=b["adc"],
                digital_ops=b["ops"],
            )
            * batch_size
        )
    step = Counts(
        digital_macs=batch_size * uses * macs,
        digital_ops=weights * optimizer_ops_per_weight,
        random_draws=draws,
        bytes_moved=batch_size * saved * bytes_per_value + weights * optimizer_bytes_per_weight,
        pulses=w.pulses,
        pulse_g_us=w.pulses * g_write_us,
        verify_reads=w.reads,
        verify_g_us=w.reads * g_write_us,
        rows_written=w.rows,
        row_pulses=w.row_pulses,
    )
    return fwd + bwd + step
