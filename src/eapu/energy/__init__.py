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
system). Programming is cell by cell, or row by row on a node with ``row_cells`` > 0 (one
pulse serves every written cell of a row: `row_write_gain`).

Scopes (`SCOPES`): ``total`` is the full system; ``crossbar`` what the paper's Fig. 2b puts
on the crossbar (VMM cell reads, DAC/ADC, programming, verify), the digital side left out.

The package's rooms: `nodes` (costs per operation), `counts` (what a network does),
`costs` (energy and latency), `endurance` (writes per cell).
"""

from __future__ import annotations

from .costs import (
    CATEGORIES,
    SCOPES,
    Breakdown,
    energy,
    fit_read_time,
    gpu_reference,
    latency,
    measured_reference,
    periphery_sweep,
    scale_periphery,
)
from .counts import (
    BACKWARDS,
    AnalogLayer,
    Counts,
    StepWrites,
    inference_counts,
    layer_blocks,
    row_write_gain,
    rows_written_estimate,
    training_step_counts,
)
from .endurance import EnduranceReport, endurance_report
from .nodes import PERIPHERY_FIELDS, Node, get_node, load_nodes

__all__ = [
    "BACKWARDS",
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
    "fit_read_time",
    "get_node",
    "gpu_reference",
    "inference_counts",
    "latency",
    "layer_blocks",
    "load_nodes",
    "measured_reference",
    "periphery_sweep",
    "row_write_gain",
    "rows_written_estimate",
    "scale_periphery",
    "training_step_counts",
]
