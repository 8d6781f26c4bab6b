"""Several methods on one task (`compare`), and a finished run after drift (`retention`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import validate
from ..files import write_json
from ..rundir import RunDir, hold, is_finished, name_part
from .build import load_run
from .config import RunConfig
from .kinds import get_kind
from .registry import get_method, get_task
from .runner import run

__all__ = ["SPREAD_KEYS", "aggregate", "compare", "retention"]

#: Metrics whose spread over seeds a multi-seed comparison reports as ``<key>_sd``.
SPREAD_KEYS = ("ssim", "psnr", "accuracy", "rup", "nup", "ncell")


def compare(
    task: str,
    methods: list[str],
    out_dir: str | Path,
    *,
    seeds: list[int] | None = None,
    tune: dict[str, list[Any]] | None = None,
    progress: Callable[[str, int, int, dict[str, float]], None] | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Run ``task`` with each method and write ``compare.json`` (one row per method).

    One seed (``options["seed"]``, default 0) runs into ``out_dir/<method>``. Several
    ``seeds`` run into ``out_dir/<method>/seed=<s>``; a row then holds the mean over seeds of
    every number and ``<key>_sd``, their standard deviation, for the main metrics.

    ``tune`` (one `RunConfig` field and its candidate values, e.g. ``{"lr": [1e-3, 1e-2]}``)
    gives every method the same search: each candidate trains once (the first seed) into
    ``out_dir/tune/<method>/<field>=<value>`` (the value as `eapu.rundir.name_part` names it,
    so that no value writes outside ``out_dir``) with ``eval_split="validation"``, so the choice
    never sees the test set; the method's best value by the task's main metric on that
    validation split is then run and reported as usual. A row records ``tuned_<field>``,
    ``tune_budget`` (the candidates tried) and ``tune_scores`` (validation metric by value).
    """
    if not methods or len(set(methods)) != len(methods):
        raise ValueError(f"Invalid methods: {methods!r}; allowed: a non-empty list, each once")
    for m in methods:
        get_method(m)
    if seeds is not None and (not seeds or "seed" in options or len(set(seeds)) != len(seeds)):
        raise ValueError(
            f"Invalid seeds: {seeds!r}; allowed: a non-empty list, each seed once, and no "
            "seed option beside it"
        )
    key, values = _check_tune(tune, options)
    metric = get_kind(get_task(task).kind).metric
    with hold(out_dir) as out:  # one writer of the comparison (its runs have their own)
        return _compare(task, methods, out, seeds, key, values, metric, progress, options)


def _compare(
    task: str,
    methods: list[str],
    out: Path,
    seeds: list[int] | None,
    key: str | None,
    values: list[Any],
    metric: str,
    progress: Callable[[str, int, int, dict[str, float]], None] | None,
    options: dict[str, Any],
) -> list[dict[str, Any]]:
    rows = []

    def cb_for(m: str) -> Any:
        return None if progress is None else (lambda st, n, r: progress(m, st, n, r))

    for m in methods:
        chosen: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        if key is not None:
            scores = {}
            for v in values:
                cfg = RunConfig(
                    task=task,
                    method=m,
                    **{**options, "seed": (seeds or [options.get("seed", 0)])[0], key: v},
                    eval_split="validation",
                )
                run_dir = out / "tune" / m / f"{key}={name_part(v)}"
                res = run(cfg, run_dir, progress=cb_for(m))
                scores[v] = float(res[metric])
            best = max(values, key=lambda v: (math.isfinite(scores[v]), scores[v]))
            chosen = {key: best}
            extra = {
                f"tuned_{key}": best,
                "tune_budget": len(values),
                "tune_scores": {str(v): scores[v] for v in values},
            }
        runs = []
        for s in seeds or [options.get("seed", 0)]:
            opts = {**options, **chosen, "seed": s}
            run_dir = out / m / f"seed={s}" if seeds else out / m
            runs.append(run(RunConfig(task=task, method=m, **opts), run_dir, progress=cb_for(m)))
        rows.append({"method": m, **aggregate(runs), **extra})
    doc: dict[str, Any] = {"task": task, "methods": methods, "rows": rows}
    if seeds:
        doc["seeds"] = list(seeds)
    if key is not None:
        doc["tune"] = {"field": key, "values": values, "metric": metric, "split": "validation"}
    write_json(RunDir(out).compare, doc)
    return rows


def _check_tune(
    tune: dict[str, list[Any]] | None, options: dict[str, Any]
) -> tuple[str | None, list[Any]]:
    """The tuned field and its candidates (each once, at least two), or (None, [])."""
    if tune is None:
        return None, []
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    fields -= {"task", "method", "seed", "eval_split"}
    if not isinstance(tune, dict) or len(tune) != 1 or next(iter(tune)) not in fields:
        raise ValueError(
            f"Invalid tune: {validate.shown(tune)}; allowed: one RunConfig field (not task, "
            "method, seed or eval_split) and its candidate values, e.g. lr=1e-3,1e-2"
        )
    key, values = next(iter(tune.items()))
    values = list(values)
    try:
        names = [name_part(v) for v in values]
    except ValueError as e:
        raise ValueError(f"Invalid tune: {key}: {e}") from None
    if len(values) < 2 or len(set(names)) != len(values):
        # 1 and 1.0 are one candidate (and one directory): trained once, not twice
        raise ValueError(
            f"Invalid tune: {key}={validate.shown(values)}; allowed: at least two values, "
            "each once (1 and 1.0 are the same value)"
        )
    if key in options:
        raise ValueError(f"Invalid tune: {key} is tuned; do not also set it")
    return key, values


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's metrics, or the mean (and SD of the main metrics) over several."""
    first = {k: v for k, v in runs[0].items() if k != "method"}
    if len(runs) == 1:
        return first
    out: dict[str, Any] = {}
    for k, v in first.items():
        vals: list[Any] = [r.get(k) for r in runs]
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vals):
            out[k] = float(np.mean(vals))
            if k in SPREAD_KEYS:
                out[f"{k}_sd"] = float(np.std(vals, ddof=1))
        else:
            out[k] = v
    out["seeds"] = len(runs)
    return out


def retention(
    run_dir: str | Path, hours: list[float], *, drift: str = "rram", seed: int = 0
) -> list[dict[str, Any]]:
    """Evaluate a device-level run after its cells drift for each of ``hours``, without and
    with compensation (mean offset for RRAM, global drift compensation for PCM)."""
    from ..retention import HOUR_S, PcmDrift, RramDrift, apply_drift

    validate.integer("seed", seed, low=0)
    if drift not in ("rram", "pcm"):
        raise ValueError(f"Invalid drift: {drift!r}; allowed: rram, pcm")
    if (RunDir(run_dir).checkpoint).exists() and not is_finished(run_dir):
        raise ValueError(
            f"{run_dir} is an unfinished run (no metrics.json): its checkpoint is not the "
            "trained network; finish it first (run the same `eapu run` command again)"
        )
    model, xb, exp, cfg = load_run(run_dir)
    if xb is None:
        raise ValueError(f"{run_dir} is a {cfg.method} run: retention needs a device-level run")
    dmodel = RramDrift() if drift == "rram" else PcmDrift()
    comps = ["none", "mean_offset" if drift == "rram" else "gdc"]
    rows = []
    for h in hours:
        if not (isinstance(h, (int, float)) and math.isfinite(h) and h >= 0):
            raise ValueError(f"Invalid hours: {h!r}; allowed: finite numbers >= 0")
        row: dict[str, Any] = {"hours": h}
        for comp in comps:
            g = torch.Generator().manual_seed(seed)  # one trajectory for every time
            with apply_drift(xb, h * HOUR_S, dmodel, generator=g, compensation=comp, network=model):
                metrics, _ = exp.evaluate(model)
            row.update({f"{k}_{comp}": v for k, v in metrics.items() if "baseline" not in k})
        rows.append(row)
    return rows
