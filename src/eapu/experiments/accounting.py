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
    StepWrites,
    endurance_report,
    energy,
    get_node,
    gpu_reference,
    inference_counts,
    latency,
    training_step_counts,
)
from ..ledger import LedgerSummary
from ..rules import get_rule
from ..tiles import Crossbar, matrix_shape
from .registry import get_method

__all__ = ["accounting", "analog_layers", "energy_figures"]


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
    cfg: dict[str, Any],
    summary: LedgerSummary | None,
    load_pulses: int,
) -> dict[str, Any]:
    """Operation counts of the run for `eapu.energy`: per inference sample, per training
    step, the one-time load, and the cells' wear (``energy.json``).

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
        "steps": cfg["steps"],
        "batch_size": cfg["batch_size"],
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
    out["inference_per_sample"] = inference_counts(layers, g_mean_us=g_mean, **kw).as_dict()
    writes: Any = summary if summary is not None else StepWrites(0.0, 0.0, 0.0)
    rule = get_method(cfg["method"]).rule
    draws = rule is not None and not get_rule(rule).passthrough  # a random number per cell
    step = training_step_counts(
        layers,
        writes,
        batch_size=cfg["batch_size"],
        g_mean_us=g_mean,
        random_draws=None if draws else 0.0,
        **kw,
    )
    out["training_per_step"] = step.as_dict() if summary is not None else None
    out["load_pulses"] = load_pulses
    e = endurance_report([t.write_counts() for t in xb.tiles], max(cfg["steps"], 1))
    out["endurance"] = {
        "max_writes": e.max_writes,
        "mean_writes": e.mean_writes,
        "never_written": e.never_written,
        "runs_to_1e6_writes": e.runs_to_endurance,
    }
    return out


def energy_figures(
    acc: dict[str, Any], node: str = "180nm", nodes_file: str | Path | None = None
) -> dict[str, Any]:
    """Energy and latency of a run from its ``energy.json`` counts on one technology node:
    inference per sample, training over the run (steps · per step + the one-time load),
    and the GPU reference for the same training in FP32."""
    n = get_node(node, nodes_file)
    out: dict[str, Any] = {"node": node}
    if acc.get("inference_per_sample"):
        inf = Counts(**acc["inference_per_sample"])
        out["inference"] = energy(inf, n).as_dict()
        out["inference_latency"] = latency(inf, n).as_dict()
    if acc.get("training_per_step"):
        step = Counts(**acc["training_per_step"]) * acc["steps"]
        load = Counts(pulses=acc["load_pulses"], pulse_g_us=acc["load_pulses"] * acc["g_mean_us"])
        out["training"] = energy(step + load, n).as_dict()
        out["training_latency"] = latency(step + load, n).as_dict()
    gpu = get_node("gpu", nodes_file)
    flops = 6.0 * acc["macs_per_sample"] * acc["batch_size"] * acc["steps"]  # fwd + bwd
    e, t = gpu_reference(flops, 4.0 * flops / 2, gpu)  # one FP32 operand moved per MAC
    out["gpu_training"] = e.as_dict()
    out["gpu_training_latency"] = t.as_dict()
    return out
