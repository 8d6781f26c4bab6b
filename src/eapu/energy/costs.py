"""Counts to energy and latency (`Breakdown`): `energy`, `latency`, the GPU reference and
the periphery varied (`scale_periphery`, `periphery_sweep`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from .. import validate
from .counts import Counts
from .nodes import PERIPHERY_FIELDS, Node

__all__ = [
    "CATEGORIES",
    "SCOPES",
    "Breakdown",
    "energy",
    "fit_read_time",
    "gpu_reference",
    "latency",
    "measured_reference",
    "periphery_sweep",
    "scale_periphery",
]

#: Categories of a `Breakdown`, in order.
CATEGORIES = ("vmm_read", "adc_dac", "digital", "rng", "programming", "verify")
#: Scopes of a `Breakdown` (`Breakdown.scope`): the categories each one sums. ``crossbar``
#: is what the paper's Fig. 2b puts on the crossbar: cell reads of the VMMs, their DAC/ADC
#: conversions, programming and its verify reads, the digital side (``digital``, ``rng``)
#: left out; priced over the counts of ``training_step_counts(backward="crossbar")`` (the
#: backward VMMs on the arrays too) it is the scope of the paper's Fig. 6 as far as its text
#: says. ``analog`` sums the same categories (its older name, kept for the tables that
#: print it); ``programming`` the writes alone; ``total`` the full system.
SCOPES: dict[str, tuple[str, ...]] = {
    "total": CATEGORIES,
    "crossbar": ("vmm_read", "adc_dac", "programming", "verify"),
    "analog": ("vmm_read", "adc_dac", "programming", "verify"),
    "programming": ("programming", "verify"),
}


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
        """The categories, ``total``, and ``scope_crossbar`` / ``scope_analog`` /
        ``scope_programming``."""
        out = {f: getattr(self, f) for f in CATEGORIES}
        out["total"] = self.total
        for name in ("crossbar", "analog", "programming"):
            out[f"scope_{name}"] = self.scope(name)
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
    """Latency of ``counts`` on ``node`` (s per category, no overlap); linear in the counts.

    Programming is cell by cell (``pulses · t_pulse_s / write_parallel``), or, on a node
    with ``row_cells`` > 0, row by row: one pulse time per pulse round of every row holding
    a written cell (``row_pulses · t_pulse_s / write_parallel``), however many of the row's
    cells are written. Verify reads stay one cell at a time (``verify_parallel``).
    """
    _check_node(counts, node)
    writes = counts.row_pulses if node.row_cells > 0 else counts.pulses
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
        programming=writes * node.t_pulse_s / node.write_parallel,
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


def measured_reference(
    joules_per_step: float, seconds_per_step: float, steps: int
) -> tuple[Breakdown, Breakdown]:
    """(energy, latency) of ``steps`` training steps on a GPU measured doing them: the
    joules one step took (board power × wall time, e.g. ``nvidia-smi``'s power draw
    integrated over the run, divided by the steps) and its wall time. Both land in
    ``digital``. A measured step includes what a roofline (`gpu_reference`) leaves out:
    kernel launches, synchronisation, idle power, which dominate a small network's step.
    """
    validate.number("joules_per_step", joules_per_step, low=0.0)
    validate.number("seconds_per_step", seconds_per_step, low=0.0)
    validate.integer("steps", steps, low=0)
    return (
        Breakdown(digital=joules_per_step * steps, unit="J"),
        Breakdown(digital=seconds_per_step * steps, unit="s"),
    )


def fit_read_time(
    low: Counts, high: Counts, node: Node, ratio: float, scope: str = "crossbar"
) -> float:
    """The integration time ``t_read_s`` at which the energy of ``high`` over that of
    ``low`` (in ``scope``) equals ``ratio``, every other cost of ``node`` kept.

    Cell reads cost ``v_read_v² · G · t_read_s``, so each scope's energy is ``a·t + b`` in
    ``t = t_read_s``; the paper's 35.51× between Rwg 1/4000 and 1/40 (``high``, ``low``:
    the same network's inference counts at the two conductance ranges) fixes ``t``. The
    result fits the workload whose counts are given: another network has another share of
    cells against converters and fits another ``t``.

    Raises:
        ValueError: no ``t_read_s`` > 0 gives ``ratio`` (e.g. ``high`` reads no larger a
            conductance than ``low`` times ``ratio``).
    """
    validate.number("ratio", ratio, low=0.0, low_open=True)
    validate.choice("scope", scope, tuple(SCOPES))
    if node.kind != "analog":
        raise ValueError(f"Invalid node: {node.name!r} is {node.kind}; allowed: an analog node")

    def line(c: Counts) -> tuple[float, float]:  # (a, b) of a·t + b
        t1 = node.t_read_s
        e1 = energy(c, node).scope(scope)
        e2 = energy(c, dataclasses.replace(node, t_read_s=2 * t1)).scope(scope)
        return (e2 - e1) / t1, 2 * e1 - e2

    (a_lo, b_lo), (a_hi, b_hi) = line(low), line(high)
    denom = a_hi - ratio * a_lo
    t = (ratio * b_lo - b_hi) / denom if denom != 0 else math.nan
    if not (math.isfinite(t) and t > 0):
        raise ValueError(
            f"Invalid ratio: {ratio!r}; allowed: a ratio some t_read_s > 0 gives on node "
            f"{node.name!r} (from the periphery alone: {b_hi / b_lo if b_lo else math.inf:.4g}, "
            f"from the cells alone: {a_hi / a_lo if a_lo else math.inf:.4g})"
        )
    return t


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
