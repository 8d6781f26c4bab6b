"""Parameter sweeps: a grid of `RunConfig` values, one run directory per point and seed.

>>> from eapu.experiments.sweep import run_sweep
>>> result = run_sweep("classify", {"method": "eapu", "steps": 200},
...                    {"sd_us": [1, 2, 4], "threshold_us": [0.5, 1, 2]},
...                    "runs/th-sweep", workers=4, seeds=[0, 1])   # doctest: +SKIP

Every point is an independent `eapu.experiments.run` in ``OUT/<point>/seed=<s>`` (for instance
``runs/th-sweep/sd_us=2_threshold_us=1/seed=0``), so a finished point (``metrics.json``
present) is not trained again and an interrupted one resumes from its checkpoint. The points
run in a local pool of spawned processes (one torch thread each); `print_commands` gives the
same points as ``eapu run`` command lines for a cluster scheduler or GNU parallel, and
`collect` gathers whatever has finished into ``sweep.csv`` and the figures.

Grid keys are `RunConfig` field names (``sd_us``, ``threshold_us``, ``rwg_per_us``,
``method``, the device faults ``stuck_off`` and ``stuck_on`` as in the paper's
Supplementary Fig. 24, ...).
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import dataclasses
import hashlib
import io
import itertools
import json
import multiprocessing
import multiprocessing.connection
import os
import shlex
import signal
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import validate
from ..files import atomic_write, read_json
from ..report.sweep import plot_sweep
from ..rundir import claim, name_part
from .config import FLAGS, RunConfig, flag_of
from .kinds import get_kind
from .registry import get_task

__all__ = [
    "SweepPoint",
    "SweepResult",
    "check_manifest",
    "check_metrics",
    "collect",
    "default_metrics",
    "expand_grid",
    "plan",
    "point_name",
    "print_commands",
    "run_sweep",
    "save_manifest",
]

_CSV = "sweep.csv"
_MANIFEST = "sweep.json"
#: The longest point directory name; a longer one is cut and given a hash (`point_name`).
_MAX_POINT_NAME = 200


def _grid_keys() -> list[str]:
    """The keys a grid may sweep: every option of `FLAGS` but the seed (its own axis)."""
    return [f.field for f in FLAGS if f.field != "seed"]


# --------------------------------------------------------------------------------- the grid
def expand_grid(base: dict[str, Any], grid: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of ``grid`` over ``base``, in grid order (last key fastest).

    Args:
        base: values shared by every point (`RunConfig` field names, or a fault key).
        grid: a list of values per key; keys are `RunConfig` fields (not ``task`` or
            ``seed``: seeds are a separate axis) or ``stuck_off`` / ``stuck_on``.

    Returns:
        One dict per point: ``base`` updated with that point's grid values.
    """
    allowed = _grid_keys()
    for where, keys in (("base", base), ("grid", grid)):
        bad = [k for k in keys if k not in allowed and not (where == "base" and k == "seed")]
        if bad:
            raise ValueError(f"unknown {where} key(s) {bad}; available: {', '.join(allowed)}")
    for k, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise ValueError(f"grid[{k!r}] must be a list of values, got {values!r}")
        if len(values) == 0:
            raise ValueError(f"grid[{k!r}] is empty; give at least one value")
        if len(set(map(name_part, values))) != len(values):
            raise ValueError(f"grid[{k!r}] repeats a value (as named on disk): {list(values)}")
    names = list(grid)
    return [
        {**base, **dict(zip(names, combo, strict=True))}
        for combo in itertools.product(*(grid[k] for k in names))
    ]


def point_name(values: dict[str, Any]) -> str:
    """Directory name of one grid point, e.g. ``sd_us=2_threshold_us=1`` (``base`` if empty).

    Each value is named by `eapu.rundir.name_part`; a name over 200 characters is cut and
    given a hash of the whole (file systems allow 255)."""
    name = "_".join(f"{k}={name_part(v)}" for k, v in values.items()) or "base"
    if len(name) <= _MAX_POINT_NAME:
        return name
    return f"{name[: _MAX_POINT_NAME - 9]}~{hashlib.sha256(name.encode()).hexdigest()[:8]}"


# ------------------------------------------------------------------------------------ plans
@dataclass(frozen=True)
class SweepPoint:
    """One run of a sweep: a grid point and a seed."""

    name: str
    """Directory name of the grid point (`point_name`)."""
    seed: int
    values: dict[str, Any]
    """The point's grid values only (what the CSV columns and the plots use)."""
    settings: dict[str, Any]
    """Base and grid values merged (what the command line takes)."""
    run_dir: Path

    def config(self, task: str) -> RunConfig:
        """The `RunConfig` of this run."""
        return RunConfig(task=task, seed=self.seed, **self.settings)


def plan(
    task: str,
    base: dict[str, Any],
    grid: dict[str, Sequence[Any]],
    out_dir: str | Path,
    *,
    seeds: Sequence[int] = (0,),
) -> list[SweepPoint]:
    """Every run of the sweep, validated (a bad point raises before anything trains)."""
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds!r}")
    if "seed" in base:
        raise ValueError(
            f"Invalid seeds: base sets seed={validate.shown(base['seed'])}; a sweep's seeds "
            "are its own axis (seeds=...), not a base value"
        )
    out = Path(out_dir)
    points, names = [], set()
    for settings in expand_grid(base, grid):
        values = {k: settings[k] for k in grid}
        name = point_name(values)
        if name in names:
            raise ValueError(f"two grid points share the directory name {name!r}")
        names.add(name)
        for seed in seeds:
            RunConfig(task=task, seed=seed, **settings)  # validates every field
            points.append(
                SweepPoint(name, int(seed), values, settings, out / name / f"seed={seed}")
            )
    return points


def save_manifest(
    task: str,
    base: dict[str, Any],
    grid: dict[str, Sequence[Any]],
    out_dir: str | Path,
    *,
    seeds: Sequence[int] = (0,),
) -> Path:
    """Write ``sweep.json`` (task, base, grid, seeds), what `collect` reads back."""
    out = claim(out_dir)
    obj = {
        "task": task,
        "base": base,
        "grid": {k: list(v) for k, v in grid.items()},
        "seeds": list(seeds),
    }
    path = out / _MANIFEST
    atomic_write(path, (json.dumps(obj, indent=2) + "\n").encode())
    return path


# ---------------------------------------------------------------------------------- running
def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    # Ctrl-C reaches the whole process group: the parent stops the sweep (and its workers);
    # a worker printing its own KeyboardInterrupt traceback would only bury that one line.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A worker ends with its parent: a killed sweep must not leave a second writer training.
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(sentinel: int) -> None:
    """Wait until the parent process ends (its sentinel becomes ready), then exit at once."""
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def _run_point(task: str, seed: int, settings: dict[str, Any], run_dir: str) -> dict[str, Any]:
    """One run, in a worker process (fault variants are registered there too)."""
    from .runner import run

    return run(RunConfig(task=task, seed=seed, **settings), run_dir)


def _finished(point: SweepPoint, task: str) -> dict[str, Any] | None:
    """The metrics of a finished run of this very config; None if it has not finished."""
    from .runner import finished_metrics

    return finished_metrics(point.run_dir, point.config(task).resolved())


@dataclass
class SweepResult:
    """What `run_sweep` and `collect` produce."""

    rows: list[dict[str, Any]]
    """One row per finished point and seed, as in ``sweep.csv``."""
    csv_path: Path
    figures: list[Path]
    trained: list[str] = field(default_factory=list)
    """``<point>/seed=<s>`` of the runs trained (or resumed) by this call."""
    skipped: list[str] = field(default_factory=list)
    """Runs found finished and not trained again."""
    failed: dict[str, str] = field(default_factory=dict)
    """Runs that raised: their traceback."""


def run_sweep(
    task: str,
    base: dict[str, Any],
    grid: dict[str, Sequence[Any]],
    out_dir: str | Path,
    *,
    workers: int | None = None,
    seeds: Sequence[int] = (0,),
    metrics: Sequence[str] | None = None,
    progress: Callable[[str, str, dict[str, Any] | None], None] | None = None,
    raise_on_error: bool = True,
) -> SweepResult:
    """Run every point × seed of the grid that has not finished; write ``sweep.csv`` and plots.

    Args:
        task: a registered task (``eapu list tasks``).
        base: `RunConfig` values shared by every point.
        grid: values per swept key (see `expand_grid`).
        out_dir: the sweep directory; each run goes to ``<point>/seed=<s>`` below it.
        workers: processes in the pool (default: CPUs, at most the runs to do); 0 runs the
            points one after another in this process (debugging, tests).
        seeds: one run per seed and point; the CSV and the plots give mean ± SD over them.
        metrics: the metrics to plot (default: accuracy for classification, SSIM otherwise).
        progress: called in this process as ``progress(run, status, metrics)`` with status
            ``"skipped"``, ``"done"`` or ``"failed"``.
        raise_on_error: after writing the CSV of what finished, raise if any run failed.
    """
    points = plan(task, base, grid, out_dir, seeds=seeds)
    out = Path(out_dir)
    save_manifest(task, base, grid, out, seeds=seeds)
    result = SweepResult(rows=[], csv_path=out / _CSV, figures=[])
    done: dict[str, dict[str, Any]] = {}
    todo: list[SweepPoint] = []
    for p in points:
        key = f"{p.name}/seed={p.seed}"
        m = _finished(p, task)
        if m is None:
            todo.append(p)
        else:
            done[key] = m
            result.skipped.append(key)
            if progress is not None:
                progress(key, "skipped", m)

    def finish(p: SweepPoint, m: dict[str, Any] | None, err: str | None) -> None:
        key = f"{p.name}/seed={p.seed}"
        if err is None:
            assert m is not None
            done[key] = m
            result.trained.append(key)
        else:
            result.failed[key] = err
        _write_csv(out / _CSV, _rows(points, done))  # partial results while the sweep runs
        if progress is not None:
            progress(key, "done" if err is None else "failed", m)

    n = len(todo)
    if workers is None:
        workers = min(os.cpu_count() or 1, n)
    if not isinstance(workers, int) or workers < 0:
        raise ValueError(f"Invalid workers: {workers!r}; allowed: an integer >= 0")
    if n and workers == 0:
        for p in todo:
            try:
                finish(p, _run_point(task, p.seed, p.settings, str(p.run_dir)), None)
            except Exception:
                finish(p, None, traceback.format_exc())
    elif n:
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(
            max_workers=min(workers, n), mp_context=ctx, initializer=_init_worker
        ) as pool:
            futures = {
                pool.submit(_run_point, task, p.seed, p.settings, str(p.run_dir)): p for p in todo
            }
            try:
                for fut in cf.as_completed(futures):
                    exc = fut.exception()
                    if exc is None:
                        finish(futures[fut], fut.result(), None)
                    else:
                        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                        finish(futures[fut], None, tb)
            except BaseException:  # Ctrl-C, SIGTERM: stop the points now, not when they end
                for proc in list((getattr(pool, "_processes", None) or {}).values()):
                    proc.terminate()  # atomic files and the kernel's locks keep them resumable
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    result.rows = _rows(points, done)
    _write_csv(out / _CSV, result.rows)
    check_metrics(result.rows, metrics)
    result.figures = plot_sweep(
        result.rows, list(grid), out, metrics=metrics or default_metrics(result.rows, task)
    )
    if result.failed and raise_on_error:
        first = next(iter(result.failed.items()))
        raise RuntimeError(
            f"{len(result.failed)} of {n} runs failed ({', '.join(result.failed)});"
            f" the first, {first[0]}:\n{first[1]}"
        )
    return result


def collect(
    out_dir: str | Path,
    *,
    metrics: Sequence[str] | None = None,
    task: str | None = None,
) -> SweepResult:
    """Gather the finished runs of the sweep in ``out_dir`` (from its ``sweep.json``) into
    ``sweep.csv`` and the figures, e.g. after running `print_commands` on a cluster.

    Args:
        out_dir: the sweep directory.
        metrics: the columns to plot (each must be a column of some finished run).
        task: if given, the task the sweep must be of (a sweep of another is refused).
    """
    out = Path(out_dir)
    m = check_manifest(out, task=task)
    points = plan(m["task"], m["base"], m["grid"], out, seeds=m["seeds"])
    done: dict[str, dict[str, Any]] = {}
    for p in points:
        got = _finished(p, m["task"])
        if got is not None:
            done[f"{p.name}/seed={p.seed}"] = got
    rows = _rows(points, done)
    _write_csv(out / _CSV, rows)
    check_metrics(rows, metrics)
    figures = plot_sweep(
        rows, list(m["grid"]), out, metrics=metrics or default_metrics(rows, m["task"])
    )
    return SweepResult(rows=rows, csv_path=out / _CSV, figures=figures, skipped=list(done))


def check_manifest(
    out_dir: str | Path,
    *,
    task: str | None = None,
    base: dict[str, Any] | None = None,
    grid: dict[str, Sequence[Any]] | None = None,
    seeds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """The ``sweep.json`` of ``out_dir``, checked: an object with the task, base, grid and
    seeds, and (each one given) the same task, base, grid and seeds as the caller's.

    Raises:
        ValueError: there is none, it is not valid (the message names it and says to
            re-create it with ``eapu sweep``), or it is a sweep of other settings.
    """
    path = Path(out_dir) / _MANIFEST
    if not path.exists():
        raise ValueError(
            f"{Path(out_dir)} has no {_MANIFEST}: it is no sweep directory; give the --out "
            "of a sweep (run_sweep or save_manifest writes it)"
        )
    m = read_json(path)
    shapes = {"task": str, "base": dict, "grid": dict, "seeds": list}
    bad = [k for k, t in shapes.items() if not isinstance(m, dict) or not isinstance(m.get(k), t)]
    if bad:
        raise ValueError(
            f"{path} is not a sweep manifest (it lacks a valid {', '.join(bad)}); re-create it "
            "with the eapu sweep command that made it (add --print-commands to train nothing)"
        )
    given = {"task": task, "base": base, "seeds": None if seeds is None else list(seeds)}
    given["grid"] = None if grid is None else {k: list(v) for k, v in grid.items()}
    differ = [
        k
        for k, v in given.items()
        if v is not None and json.dumps(v, sort_keys=True) != json.dumps(m[k], sort_keys=True)
    ]
    if differ:
        theirs = "; ".join(f"{k} {validate.shown(m[k])}" for k in differ)
        raise ValueError(
            f"{Path(out_dir)} holds a sweep of other settings ({theirs}); give its own "
            "settings, or another --out for a new sweep"
        )
    return m  # type: ignore[no-any-return]


def check_metrics(rows: list[dict[str, Any]], metrics: Sequence[str] | None) -> None:
    """Refuse a metric to plot that no finished run has (nothing is known before one has)."""
    if not metrics or not rows:
        return
    have = sorted({k for r in rows for k, v in r.items() if validate.is_number(v, finite=False)})
    unknown = [m for m in metrics if m not in have]
    if unknown:
        raise ValueError(
            f"Invalid metric: {validate.shown(unknown[0])} is no column of the finished runs; "
            f"allowed: {', '.join(have)}"
        )


# -------------------------------------------------------------------------------------- CSV
def _rows(points: list[SweepPoint], done: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for p in points:
        m = done.get(f"{p.name}/seed={p.seed}")
        if m is None:
            continue
        row: dict[str, Any] = {"point": p.name, "seed": p.seed, **p.values}
        row.update({k: v for k, v in m.items() if k not in row})
        row["run_dir"] = str(p.run_dir)
        rows.append(row)
    return rows


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols and k != "run_dir"]
    cols.append("run_dir")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, restval="")
    w.writeheader()
    w.writerows([{k: ("" if v is None else v) for k, v in r.items()} for r in rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buf.getvalue().encode())


# ------------------------------------------------------------------------------------ plots
def default_metrics(rows: list[dict[str, Any]], task: str) -> list[str]:
    """The metric a sweep of ``task`` plots by default: the task's main one, if present."""
    prefer = [get_kind(get_task(task).kind).metric]
    prefer += ["accuracy", "ssim", "psnr", "loss"]
    return [
        next(
            (m for m in prefer if any(validate.is_number(r.get(m), finite=False) for r in rows)),
            "loss",
        )
    ]


# ------------------------------------------------------------------------- command lines
def print_commands(
    task: str,
    base: dict[str, Any],
    grid: dict[str, Sequence[Any]],
    out_dir: str | Path,
    *,
    seeds: Sequence[int] = (0,),
    prog: str = "eapu",
    skip_finished: bool = False,
) -> Iterator[str]:
    """One ``eapu run TASK --method ... --out DIR`` line per point and seed (shell-quoted).

    Every line carries the method, the seed, the run directory and every setting that
    differs from the `RunConfig` default, so lines run in any order on any machine; pipe
    them to GNU parallel (``eapu sweep ... --print | parallel -j 8``) or a scheduler, then
    `collect`. The flags come from `eapu.experiments.FLAGS`, the table ``eapu run`` is
    built from.
    """
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    fields = set(defaults)
    for p in plan(task, base, grid, out_dir, seeds=seeds):
        if skip_finished and _finished(p, task) is not None:
            continue
        s = p.settings
        args = [
            prog,
            "run",
            task,
            "--method",
            str(s.get("method", RunConfig.method)),
            "--seed",
            str(p.seed),
        ]
        for k, v in s.items():
            if k in ("method", "seed") or v is None:
                continue
            if k in fields and k not in grid and v == defaults[k]:
                continue
            args += [flag_of(k), repr(v) if isinstance(v, float) else str(v)]
        args += ["--out", str(p.run_dir)]
        yield shlex.join(args)
