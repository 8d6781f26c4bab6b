"""The one training loop: `train` over a step function, used by `run` (one process) and by
`eapu.experiments.distributed.train_ddp` (every rank of a process group) alike.

A run directory holds ``config.json``, ``history.csv``, ``metrics.json``, ``energy.json``,
``checkpoint.pt`` and, where they apply, ``samples.npz`` and ``placement.txt``. It has one
writer (the main process, holding `eapu.rundir.hold`); every file is written atomically
(`eapu.files`), the completion marker ``metrics.json`` last, so a directory with it is
finished. A run whose directory holds a checkpoint of the same config resumes from it.
"""

from __future__ import annotations

import csv
import functools
import io
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import __version__
from ..algorithms import TileAlgorithm
from ..files import atomic_write, read_json, write_json
from ..files import load_checkpoint as read_checkpoint
from ..nn import crossbar_of
from ..optim import InSituOptimizer, fused
from ..rundir import RunDir, hold
from .accounting import accounting, energy_metrics
from .build import Built, build, load_model_state, place
from .config import RECORD_KEY, ResolvedConfig, RunConfig, upgrade
from .experiment import Experiment, input_key
from .registry import get_method, get_task

__all__ = [
    "StepFn",
    "account",
    "finish",
    "finished_metrics",
    "local_step",
    "program_trained",
    "resume",
    "run",
    "run_record",
    "save_checkpoint",
    "train",
    "write_counts",
    "write_history",
]

#: ``step_fn(step, x, y, inputs) -> loss``: one optimizer step on the clean batch ``x``, its
#: labels ``y`` and the network's ``inputs``; returns the (global mean) loss.
StepFn = Callable[[int, Tensor, Tensor, Tensor], float]
#: ``progress(step, steps, row)`` after every step.
Progress = Callable[[int, int, dict[str, float]], None]


def run_record(built: Built) -> dict[str, Any]:
    """What produced a run, for ``config.json``, ``metrics.json`` and the report: eapu's
    version and commit, torch's and Python's versions, which weight-level step ran (the fused
    CPU kernel and the unfused path draw other numbers for the same seed), and the EaPU
    threshold of every analog parameter with where it came from."""
    opt = built.optimizer
    record: dict[str, Any] = {
        "eapu_version": __version__,
        "eapu_commit": _commit(),
        "torch_version": str(torch.__version__),
        "python_version": platform.python_version(),
        "step_path": "fused" if fused.available() else "unfused",
    }
    if isinstance(opt, InSituOptimizer):
        ths = opt.thresholds()
        record["thresholds"] = ths
        kinds = {(round(t["threshold_us"], 12), t["source"]) for t in ths}
        if len(kinds) == 1:
            ((th_us, source),) = kinds
            record["threshold_us"], record["threshold_source"] = th_us, source
            record["sd_us_used"] = ths[0]["sd_us"]
    xb = built.crossbar
    if xb is not None:
        record["rwg_per_us"] = xb.rwg_per_us
        record["device_sd_us"] = xb.sd_us
    return record


@functools.lru_cache(maxsize=1)
def _commit() -> str | None:
    """The git commit of eapu's source, when it runs from a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=here,
        capture_output=True,
        text=True,
        timeout=5,
    )
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def local_step(exp: Experiment, built: Built) -> StepFn:
    """The step of a single-process run: forward, loss, backward, optimizer step."""
    model, opt = built.model, built.optimizer

    def step_fn(step: int, x: Tensor, y: Tensor, inp: Tensor) -> float:
        opt.zero_grad()
        loss = exp.loss(model(inp), x, y)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step_fn


def run(
    config: RunConfig,
    out_dir: str | Path,
    *,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train ``config`` and write the run directory ``out_dir``; returns the final metrics.

    If ``out_dir`` holds a checkpoint of the same config, the run resumes from it; a
    finished run is not trained again. The directory has one writer (`eapu.rundir`):
    another process writing it makes this raise `eapu.rundir.RunDirBusy`.
    """
    with hold(out_dir) as out:
        cfg = config.resolved()
        done = finished_metrics(out, cfg, strict=False)
        if done is not None:  # nothing to train or write: the directory is final
            return done
        torch.manual_seed(cfg.seed)  # layers initialised outside get_model's seed, if any
        exp = Experiment(cfg, get_task(cfg.task))
        built = build(cfg, exp)
        final = train(cfg, out, exp, built, local_step(exp, built), progress=progress)
    assert final is not None
    return final


def finished_metrics(
    out_dir: str | Path, cfg: ResolvedConfig, *, strict: bool = True
) -> dict[str, Any] | None:
    """The recorded metrics of a finished run of this very (resolved) config in ``out_dir``;
    None if it has not finished (or, not ``strict``, was written by another config: `run`
    then lets `resume` refuse it, naming the checkpoint and the values).

    Raises:
        ValueError: the directory holds a finished run of another config (naming the fields
            that differ), or files that are not a run's.
    """
    rd = RunDir(out_dir)
    if not rd.finished:
        return None
    config = read_json(rd.config) if rd.config.is_file() else None
    if not isinstance(config, dict):
        if not strict:
            return None
        raise ValueError(f"{rd.config} is not a run's config; remove {rd.path} to train it again")
    written, want = upgrade(config), cfg.as_dict()
    if written != want:
        if not strict:
            return None
        diff = sorted(k for k in set(want) | set(written) if want.get(k) != written.get(k))
        raise ValueError(
            f"{rd.path} holds a finished run of another config (differs in {diff}); use "
            f"another directory, or remove {rd.path} to train it again"
        )
    metrics = read_json(rd.metrics)
    if not isinstance(metrics, dict):
        raise ValueError(
            f"{rd.metrics} is not a run's metrics (a JSON object); remove it and run again to "
            "finish the run"
        )
    return metrics


def train(
    cfg: ResolvedConfig,
    out_dir: str | Path,
    exp: Experiment,
    built: Built,
    step_fn: StepFn,
    *,
    is_main: bool = True,
    progress: Progress | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Resume or start the run ``cfg`` (resolved) in ``out_dir``, train it step by step
    with ``step_fn``, evaluate, and (the main process only) write the run directory.

    The caller holds the directory's writer lock (`eapu.rundir.hold`) on the main process.

    Args:
        cfg: the resolved config.
        out_dir: the run directory.
        exp: the experiment (data, evaluation).
        built: the run's objects (`build`), before any checkpoint is loaded.
        step_fn: takes one optimizer step (`local_step`, or a data-parallel step).
        is_main: this process evaluates and writes (rank 0 of a process group).
        progress: called after every step.
        extra: more entries for ``metrics.json`` (e.g. the world size).

    Returns:
        The final metrics on the main process, None on the others.
    """
    method = get_method(cfg.method)
    out = Path(out_dir)
    ck_path = RunDir(out).checkpoint
    model, sched = built.model, built.scheduler
    start, history, wall = resume(ck_path, cfg, built)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(RunDir(out).config, {**cfg.as_dict(), RECORD_KEY: run_record(built)})
        if built.crossbar is not None:
            text = built.crossbar.placement.render() + "\n"
            atomic_write(RunDir(out).placement, text.encode())

    t0 = time.perf_counter() - wall
    steps, every = cfg.steps, cfg.eval_every
    samples: dict[str, np.ndarray] = {}
    if start == 0 and is_main:  # the untrained network (as programmed): where curves start
        history.append({"step": 0, **exp.evaluate(model)[0]})
    for step in range(start, steps):
        x, y = exp.batch(step)
        inp = exp.inputs(x, key=input_key(cfg.seed, step))
        loss = step_fn(step, x, y, inp)
        if sched is not None:
            sched.step()
        row: dict[str, Any] = {"step": step + 1, "loss": loss}
        if is_main and ((step + 1) % every == 0 or step + 1 == steps):
            metrics, samples = exp.evaluate(model)
            row.update(metrics)
            if step + 1 < steps:
                wall = time.perf_counter() - t0
                save_checkpoint(ck_path, cfg, built, step + 1, [*history, row], wall)
        history.append(row)
        if progress is not None:
            progress(step + 1, steps, row)
    if not is_main:
        return None

    final: dict[str, Any] = {k: v for k, v in history[-1].items() if k != "step"}
    if method.programmed_once:  # ex-situ, hwa: the trained weights go onto a crossbar now
        metrics, samples = program_trained(cfg, exp, built)
        final.update(metrics)
    final.update(write_counts(built, history))
    final.update(account(RunDir(out), cfg, exp, built, final))
    record = run_record(built)
    for key in ("threshold_us", "threshold_source", "sd_us_used", "device_sd_us", "step_path"):
        if key in record:  # what the run used, beside what it was asked (config.json)
            final[key] = record[key]
    final.update(
        {
            "task": cfg.task,
            "method": cfg.method,
            "steps": steps,
            **(extra or {}),
            "wall_s": time.perf_counter() - t0,
        }
    )
    finish(RunDir(out), cfg, built, history, samples, final)
    return final


def program_trained(
    cfg: ResolvedConfig, exp: Experiment, built: Built
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """After a run trained in software (ex-situ, hwa): program its weights once onto the
    run's crossbar (``built.crossbar`` becomes it) and evaluate there; (metrics, samples)."""
    method = get_method(cfg.method)
    if built.hwa is not None:
        built.hwa.remove()
    xb = place(built.model, cfg, method)
    built.crossbar = xb
    metrics, samples = exp.evaluate(built.model)
    metrics.update(
        {
            "pulses": sum(int(t.load_record[1]) for t in xb.tiles),
            "cells": xb.cells,
            "rup": 0.0,
            "nup": 0.0,
            "ncell": 0.0,
        }
    )
    return metrics, samples


def write_counts(built: Built, history: list[dict[str, Any]]) -> dict[str, Any]:
    """What the in-situ optimizer wrote (its ledger's totals and the paper's Rup, Nup,
    Ncell; Rup and Nup per step into ``history``), the pulses that loaded the weights and the
    targets beyond the device window (reported, never silently clipped)."""
    out: dict[str, Any] = {}
    opt = built.optimizer
    ledger = opt.ledger if isinstance(opt, (InSituOptimizer, TileAlgorithm)) else None
    if ledger is not None:
        summary = ledger.summary()
        out.update(
            {
                "rup": summary.rup,
                "nup": summary.nup,
                "ncell": summary.ncell,
                "pulses": summary.pulses,
                "written": summary.written,
                "reads": summary.reads,
                "failed": summary.failed,
                "cells": summary.cells,
            }
        )
        rup, nup = ledger.rup().tolist(), ledger.nup().tolist()
        for row, r, n in zip(history[1:], rup, nup, strict=True):
            row["rup"], row["nup"] = r, n
    xb = crossbar_of(built.model)
    if xb is not None:
        if ledger is not None:  # trained in situ: the load is its own count
            out["load_pulses"] = sum(int(t.load_record[1]) for t in xb.tiles)
        out["clipped"] = xb.clipped
    return out


def account(
    rd: RunDir, cfg: ResolvedConfig, exp: Experiment, built: Built, final: dict[str, Any]
) -> dict[str, Any]:
    """Write ``energy.json`` (the run's operation counts) and return its energy figures for
    ``metrics.json`` (``final``: the metrics so far, for the load's pulses)."""
    opt = built.optimizer
    ledger = opt.ledger if isinstance(opt, (InSituOptimizer, TileAlgorithm)) else None
    summary = ledger.summary() if ledger is not None else None
    xb = crossbar_of(built.model)
    load = int(final.get("load_pulses", final.get("pulses", 0)))
    acc = accounting(built.model, xb, exp.test_x[:1].to(exp.device), cfg, summary, load)
    write_json(rd.energy, acc)
    out = energy_metrics(acc)
    if "endurance" in acc:
        out["max_writes_per_cell"] = acc["endurance"]["max_writes"]
    return out


def finish(
    rd: RunDir,
    cfg: ResolvedConfig,
    built: Built,
    history: list[dict[str, Any]],
    samples: dict[str, np.ndarray],
    final: dict[str, Any],
) -> None:
    """Write the finished run: history, samples, the final checkpoint and, last, the
    completion marker ``metrics.json``."""
    write_history(rd.history, history)
    if samples:
        buf = io.BytesIO()
        np.savez(buf, **samples)  # type: ignore[arg-type]
        atomic_write(rd.samples, buf.getvalue())
    save_checkpoint(rd.checkpoint, cfg, built, cfg.steps, history, final["wall_s"])
    write_json(rd.metrics, final)  # last: the directory is finished


# ------------------------------------------------------------------------------ checkpoints
def resume(
    path: Path, cfg: ResolvedConfig, built: Built
) -> tuple[int, list[dict[str, Any]], float]:
    """Load a run's checkpoint into its objects; (step, history, wall seconds) to go on from.

    A missing checkpoint means a fresh start; one written by another config is refused.
    """
    if not path.exists():
        return 0, [], 0.0
    ck = read_checkpoint(path)
    theirs, ours = upgrade(ck["config"]), cfg.as_dict()
    then = ck.get(RECORD_KEY, {}).get("step_path")
    now = run_record(built)["step_path"]
    if then is not None and then != now:
        raise ValueError(
            f"{path} was trained on the {then} step and this eapu would go on with the {now} "
            "one, which draws other numbers for the same seed; resume it where it started "
            "(EAPU_FUSED=0 turns the fused step off), or use another --out"
        )
    if theirs != ours:
        diff = ", ".join(
            f"{k} {theirs.get(k)!r}, not {ours.get(k)!r}"
            for k in sorted(set(theirs) | set(ours))
            if theirs.get(k) != ours.get(k)
        )
        raise ValueError(
            f"{path} was written by another config ({diff}); use another --out, or remove "
            f"{path.parent} to train it again"
        )
    load_model_state(built.model, ck)
    built.optimizer.load_state_dict(ck["optimizer"])
    if built.scheduler is not None:
        built.scheduler.load_state_dict(ck["scheduler"])
    if built.hwa is not None:
        built.hwa.load_state_dict(ck["hwa"])
    return ck["step"], ck["history"], ck["wall_s"]


def save_checkpoint(
    path: Path,
    cfg: ResolvedConfig,
    built: Built,
    step: int,
    history: list[dict[str, Any]],
    wall: float,
) -> None:
    """Write ``checkpoint.pt``: config, step, model (its crossbar included), optimizer,
    scheduler, hwa noise, history and wall seconds (loadable with ``weights_only=True``)."""
    buf = io.BytesIO()
    torch.save(
        {
            "config": cfg.as_dict(),
            "step": step,
            "model": built.model.state_dict(),
            "crossbar": {},  # the crossbar's state is the model's (eapu.nn.convert)
            "optimizer": built.optimizer.state_dict(),
            "scheduler": built.scheduler.state_dict() if built.scheduler is not None else {},
            "hwa": built.hwa.state_dict() if built.hwa is not None else {},
            "history": history,
            "wall_s": wall,
            RECORD_KEY: run_record(built),
        },
        buf,
    )
    atomic_write(path, buf.getvalue())


def write_history(path: Path, history: list[dict[str, Any]]) -> None:
    """``history.csv``: one row per step, the evaluated ones with their metrics."""
    cols = ["step", "loss", "rup", "nup"]
    for row in history:
        cols += [k for k in row if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, restval="")
    w.writeheader()
    w.writerows(history)
    atomic_write(path, buf.getvalue().encode())
