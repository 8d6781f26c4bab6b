"""What a run cost: operation counts for `eapu.energy` (``energy.json``) and their energy."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..energy import (
    AnalogLayer,
    Counts,
    Node,
    StepWrites,
    endurance_report,
    energy,
    get_node,
    gpu_reference,
    inference_counts,
    latency,
    measured_reference,
    rows_written_estimate,
    training_step_counts,
)
from ..ledger import LedgerSummary
from ..rules import get_rule
from ..tiles import Crossbar, matrix_shape
from .config import ResolvedConfig
from .registry import get_method

__all__ = ["ENERGY_METRIC_NODES", "accounting", "analog_layers", "energy_figures", "energy_metrics"]

#: The nodes whose figures a run's ``metrics.json`` records (`energy_metrics`).
ENERGY_METRIC_NODES = ("180nm", "16nm")


def analog_layers(model: nn.Module, sample: Tensor) -> list[AnalogLayer]:
    """The crossbar matrices of ``model`` with how often each is applied per sample.

    Every Linear / Conv2d / ConvTranspose2d (analog or not) counts: one VMM per output
    position of a convolution, per input position of a transposed convolution.
    """
    found: list[AnalogLayer] = []

    def record(name: str, mod: nn.Module, inp: tuple[Tensor, ...], out: Tensor) -> None:
        transposed = isinstance(mod, nn.ConvTranspose2d)
        rows, cols = matrix_shape(tuple(mod.weight.shape), transposed)  # type: ignore[arg-type]
        if isinstance(mod, nn.Linear):
            n = inp[0].numel() // inp[0].shape[-1]
        else:
            n = (inp[0] if transposed else out)[0, 0].numel()
        # the placement keeps a convolution's kh·kw window on one array (Crossbar.add_tile)
        shape = tuple(mod.weight.shape)  # type: ignore[arg-type]
        unit = 1 if transposed else math.prod(shape[2:])
        found.append(AnalogLayer(name, rows, cols, float(n), row_unit=unit))

    handles = [
        mod.register_forward_hook(lambda m, i, o, name=name: record(name, m, i, o))
        for name, mod in model.named_modules()
        if isinstance(mod, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))
    ]
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for h in handles:
            h.remove()
    return found


def accounting(
    model: nn.Module,
    xb: Crossbar | None,
    sample: Tensor,
    cfg: ResolvedConfig,
    summary: LedgerSummary | None,
    load_pulses: int,
) -> dict[str, Any]:
    """Operation counts of the run for `eapu.energy`: per inference sample, per training
    step, the one-time load, and the cells' wear (``energy.json``).

    Two sets of training counts: ``training_per_step`` (eapu's full-system model, the
    backward pass digital) and ``training_crossbar_per_step`` (the paper's Fig. 2b split:
    the backward input errors as transposed VMMs on the crossbar,
    ``training_step_counts(backward="crossbar")``); their programming is the same. ``rows``
    says where the rows written per step came from: the ledger's count (``"ledger"``) or,
    where it has none, an estimate from Rup for rows of ``row_cells`` cells (``"estimate"``,
    `eapu.energy.rows_written_estimate`).

    Args:
        model: the trained network; ``sample`` is one input it takes.
        xb: its crossbar (None for software and weight-level runs).
        cfg: the resolved config.
        summary: the ledger's summary of the in-situ writes (None: none).
        load_pulses: pulses that loaded the weights once.
    """
    layers = analog_layers(model, sample)
    macs = sum(x.rows * x.cols * x.vmms_per_sample for x in layers)
    out: dict[str, Any] = {
        "steps": cfg.steps,
        "batch_size": cfg.batch_size,
        "macs_per_sample": macs,
        "layers": [dataclasses.asdict(x) for x in layers],
    }
    if xb is None:
        return out
    g = torch.cat(
        [t.conductances().reshape(-1) for t in xb.tiles] + [xb.reference_conductances().reshape(-1)]
    )
    g_mean = float(g.mean())
    kw: dict[str, Any] = {
        "array_rows": xb.placement.array_rows,
        "array_cols": xb.placement.array_cols,
        "mapping": xb.mapping,
    }
    out["g_mean_us"] = g_mean
    out["cells"] = xb.cells
    out["inference_per_sample"] = inference_counts(layers, g_mean_us=g_mean, **kw).as_dict()
    writes = (
        StepWrites.from_summary(summary, row_cells=kw["array_cols"])
        if summary is not None
        else StepWrites(0.0, 0.0, 0.0)
    )
    rule = get_method(cfg.method).rule
    draws = rule is not None and not get_rule(rule).passthrough  # a random number per cell
    steps: dict[str, Counts] = {
        backward: training_step_counts(
            layers,
            writes,
            batch_size=cfg.batch_size,
            g_mean_us=g_mean,
            random_draws=None if draws else 0.0,
            backward=backward,
            **kw,
        )
        for backward in ("digital", "crossbar")
    }
    trained = summary is not None
    out["training_per_step"] = steps["digital"].as_dict() if trained else None
    out["training_crossbar_per_step"] = steps["crossbar"].as_dict() if trained else None
    if summary is not None:
        out["rows"] = {
            "source": "estimate" if writes.rows_estimated else "ledger",
            "row_cells": kw["array_cols"],
            "rup": summary.rup,
            "ncell": summary.ncell,
            "rows_written_per_step": writes.rows,
            "row_pulses_per_step": writes.row_pulses,
            "note": (
                "estimated from the mean Rup, cells written independently in full rows of "
                "row_cells (eapu.energy.rows_written_estimate); row pulses = rows x Ncell"
                if writes.rows_estimated
                else "counted by the ledger"
            ),
        }
    out["load_pulses"] = load_pulses
    e = endurance_report([t.write_counts() for t in xb.tiles], max(cfg.steps, 1))
    out["endurance"] = {
        "max_writes": e.max_writes,
        "mean_writes": e.mean_writes,
        "never_written": e.never_written,
        "runs_to_1e6_writes": e.runs_to_endurance,
    }
    return out


def _rows_at(acc: dict[str, Any], row_cells: int) -> dict[str, Any] | None:
    """The rows written per step for rows of ``row_cells`` cells: the run's own where its
    arrays have that width, else re-estimated from its Rup (None: the run wrote nothing)."""
    rows = acc.get("rows")
    if rows is None:
        return None
    if rows["row_cells"] == row_cells:
        return dict(rows)
    written = rows_written_estimate(acc["cells"], rows["rup"], row_cells)
    return {
        **rows,
        "source": "estimate",
        "row_cells": row_cells,
        "rows_written_per_step": written,
        "row_pulses_per_step": written * rows["ncell"],
        "note": (
            f"re-estimated for the node's rows of {row_cells} cells (the run's arrays have "
            f"{rows['row_cells']}) from the mean Rup, cells written independently "
            "(eapu.energy.rows_written_estimate); row pulses = rows x Ncell"
        ),
    }


def _training(acc: dict[str, Any], key: str, n: Node) -> tuple[Counts, dict[str, Any] | None]:
    """The run's training counts ``acc[key]`` over all steps plus the one-time load; on a
    node that programs row by row, with the rows at its row width (and how they were found).
    """
    per = {k: v for k, v in acc[key].items() if k in _COUNT_FIELDS}
    load_pulses = acc["load_pulses"]
    load = Counts(pulses=load_pulses, pulse_g_us=load_pulses * acc["g_mean_us"])
    if n.row_cells == 0:
        return Counts(**per) * acc["steps"] + load, None
    rows = _rows_at(acc, n.row_cells)
    if rows is None and (per.get("pulses", 0) > 0 or load_pulses > 0):
        raise ValueError(
            f"Invalid node: {n.name!r} programs row by row (row_cells {n.row_cells}), and this "
            "energy.json (from an older eapu) counts no rows written; run the task again, or "
            "price it on a node with row_cells = 0"
        )
    if rows is not None:
        per["rows_written"] = rows["rows_written_per_step"]
        per["row_pulses"] = rows["row_pulses_per_step"]
    # the load writes every cell: every row, for the mean pulses per cell (an estimate)
    full_rows = acc["cells"] / n.row_cells if load_pulses else 0.0
    load = dataclasses.replace(load, rows_written=full_rows, row_pulses=load_pulses / n.row_cells)
    return Counts(**per) * acc["steps"] + load, rows


_COUNT_FIELDS = frozenset(f.name for f in dataclasses.fields(Counts))


def energy_figures(
    acc: dict[str, Any],
    node: str = "180nm",
    nodes_file: str | Path | None = None,
    *,
    gpu: str = "gpu",
    gpu_measured: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Energy and latency of a run from its ``energy.json`` counts on one technology node.

    ``inference`` per sample; ``training`` over the run (steps · per step + the one-time
    load) in eapu's full-system model (backward digital); ``training_crossbar`` the same
    run in the paper's Fig. 2b split (backward VMMs on the crossbar), whose
    ``scope_crossbar`` is what the paper's energy figures count; the latencies beside
    them; ``gpu_training`` the GPU reference for the same training in FP32 (node ``gpu``:
    6 FLOPs per MAC, one FP32 operand moved per MAC, a roofline), and with ``gpu_measured``
    = (joules per step, seconds per step) measured on a GPU, ``gpu_measured_training``.
    On a node with ``row_cells`` > 0 (row-parallel programming), ``rows`` says where the
    rows written came from (counted, or estimated for the node's row width).

    Count files of older runs (no crossbar counts, no rows) give what they can.
    """
    n = get_node(node, nodes_file)
    out: dict[str, Any] = {"node": node}
    if acc.get("inference_per_sample"):
        inf = Counts(**acc["inference_per_sample"])
        out["inference"] = energy(inf, n).as_dict()
        out["inference_latency"] = latency(inf, n).as_dict()
    for key, name in (
        ("training_per_step", "training"),
        ("training_crossbar_per_step", "training_crossbar"),
    ):
        if acc.get(key):
            counts, rows = _training(acc, key, n)
            out[name] = energy(counts, n).as_dict()
            out[f"{name}_latency"] = latency(counts, n).as_dict()
            if rows is not None:
                out["rows"] = rows
    g = get_node(gpu, nodes_file)
    flops = 6.0 * acc["macs_per_sample"] * acc["batch_size"] * acc["steps"]  # fwd + bwd
    e, t = gpu_reference(flops, 4.0 * flops / 2, g)  # one FP32 operand moved per MAC
    out["gpu"] = gpu
    out["gpu_training"] = e.as_dict()
    out["gpu_training_latency"] = t.as_dict()
    if gpu_measured is not None:
        joules, seconds = gpu_measured
        em, tm = measured_reference(joules, seconds, acc["steps"])
        out["gpu_measured_training"] = em.as_dict()
        out["gpu_measured_training_latency"] = tm.as_dict()
    return out


def energy_metrics(
    acc: dict[str, Any], nodes: tuple[str, ...] = ENERGY_METRIC_NODES
) -> dict[str, float]:
    """The energy figures a run's ``metrics.json`` records, per node of ``nodes``.

    ``train_energy_uj_N`` (full system), ``train_energy_uj_N_crossbar`` (the paper's
    crossbar scope: Fig. 2b's split, the digital side left out), ``update_energy_uj_N``
    (programming and verify), ``infer_energy_nj_N`` and ``infer_energy_nj_N_crossbar`` per
    sample.
    """
    out: dict[str, float] = {}
    for node in nodes:
        fig = energy_figures(acc, node)
        if "training" in fig:
            out[f"train_energy_uj_{node}"] = fig["training"]["total"] * 1e6
            out[f"update_energy_uj_{node}"] = (
                fig["training"]["programming"] + fig["training"]["verify"]
            ) * 1e6
        if "training_crossbar" in fig:
            out[f"train_energy_uj_{node}_crossbar"] = (
                fig["training_crossbar"]["scope_crossbar"] * 1e6
            )
        if "inference" in fig:
            out[f"infer_energy_nj_{node}"] = fig["inference"]["total"] * 1e9
            out[f"infer_energy_nj_{node}_crossbar"] = fig["inference"]["scope_crossbar"] * 1e9
    return out
