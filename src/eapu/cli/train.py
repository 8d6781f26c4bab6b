"""``eapu run``, ``eapu compare``, ``eapu report``: train, compare methods, write reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .. import validate
from ..experiments import FLAGS, list_methods
from ..files import read_json
from ..rundir import RunDir, name_part
from .app import app, console, err_console
from .options import Config, Json, Task, given_by, key_values, run_options, with_run_options
from .tables import dump_json, markdown_table, metrics_table, progress_bar

__all__ = ["DEVICE_METHODS", "compare", "report", "run"]

DEVICE_METHODS = ["software", "ex-situ", "eapu+mp", "mp", "eapu+fp", "wu", "tp", "su"]


@app.command()
@with_run_options()
def run(
    task: Task,
    out: Annotated[
        Path | None, typer.Option(help="run directory (default: runs/TASK-METHOD)")
    ] = None,
    config: Config = None,
    **options: Any,
) -> None:
    """Train one task with one method; write (or resume) a run directory and its report."""
    from ..experiments import RunConfig
    from ..experiments import run as run_task
    from ..report import write_run_report

    opts = run_options(config, options)
    cfg = RunConfig(task=task, **opts)
    out = out or Path("runs") / f"{task}-{cfg.method}"
    with progress_bar() as prog:
        bar = prog.add_task(cfg.method, total=cfg.resolved().steps, info="")
        metrics = run_task(
            cfg,
            out,
            progress=lambda s, n, r: prog.update(bar, completed=s, info=f"loss {r['loss']:.4g}"),
        )
    console.print(metrics_table([{"method": cfg.method, **metrics}], f"{task} ({cfg.device})"))
    for line in used_lines(cfg, metrics):
        console.print(line)
    console.print(f"report: {write_run_report(out)}")


def used_lines(cfg: Any, metrics: dict[str, Any]) -> list[str]:
    """What the run used where the config left it to the run: the threshold (and where its
    SD came from), an Rwg chosen for the device, the weight-level step path."""
    from ..experiments import default_rwg

    lines = []
    if "threshold_us" in metrics:
        lines.append(
            f"threshold: {metrics['threshold_us']:.4g} µS ({metrics.get('threshold_source', '')})"
        )
    resolved = cfg.resolved()
    if cfg.rwg_per_us is None and resolved.rwg_per_us != 1 / 80:
        _, why = default_rwg(cfg.device)
        lines.append(f"rwg_per_us: {resolved.rwg_per_us:.4g} µS⁻¹, {why}")
    return lines


@app.command()
@with_run_options(exclude=("method",))
def compare(
    task: Task,
    methods: Annotated[
        str, typer.Option(help=f"comma-separated methods, of: {', '.join(list_methods())}")
    ] = ",".join(DEVICE_METHODS),
    seeds: Annotated[
        str | None, typer.Option(help="comma-separated seeds: rows become mean and SD over them")
    ] = None,
    tune: Annotated[
        str | None,
        typer.Option(
            help="KEY=V1,V2,...: every method gets the same search over one option (e.g. "
            "lr=1e-3,3e-3,1e-2), choosing by the main metric on a validation split of the "
            "training data, never the test set"
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="comparison directory (default: runs/TASK-compare)")
    ] = None,
    config: Config = None,
    json_: Json = False,
    **options: Any,
) -> None:
    """Run one task with several methods on the same device; print and report the comparison."""
    from ..experiments import RunConfig
    from ..experiments import compare as compare_tasks
    from ..report import write_compare_report

    names = validate.name_list("--methods", methods)
    known = list_methods()
    for m in names:
        if m not in known:
            raise typer.BadParameter(
                f"unknown method {m!r}; available: {', '.join(known)}", param_hint="--methods"
            )
    opts = run_options(config, options)
    if "method" in opts:
        raise ValueError(
            f"--config {config}: sets method, but compare runs the methods of --methods; "
            "remove method from the file"
        )
    seed_list = validate.int_list("--seeds", seeds) if seeds is not None else None
    if seed_list is not None and "seed" in opts:
        raise ValueError(
            f"--seeds: seed is also set by {given_by('seed', options)}; give one of them"
        )
    for m in names:  # every method's config is valid before anything trains
        RunConfig(task=task, **{**opts, "method": m})
    grid: dict[str, list[Any]] | None = None
    if tune is not None:
        tunable = [f.field for f in FLAGS if f.field not in ("method", "seed", "eval_split")]
        key, values = key_values("--tune", tune, tunable)
        if key in opts:
            raise ValueError(
                f"--tune {key}=...: {key} is also set by {given_by(key, options)}; tune it "
                "or set it, not both"
            )
        for m in names:
            for v in values:
                try:
                    RunConfig(task=task, **{**opts, "method": m, key: v})
                except (ValueError, TypeError) as e:
                    raise ValueError(f"--tune {key}={validate.shown(v)}: {e}") from None
        if len({name_part(v) for v in values}) != len(values):
            raise ValueError(
                f"--tune {key}={validate.shown(tune.partition('=')[2])}: a value is given "
                "twice (1 and 1.0 are the same); list each once"
            )
        grid = {key: values}
    runs_per_method = len(seed_list or [0]) + (len(grid[next(iter(grid))]) if grid else 0)
    total = RunConfig(task=task, **{**opts, "method": names[0]}).resolved().steps * runs_per_method
    out = out or Path("runs") / f"{task}-compare"
    done: dict[str, int] = {}

    def advance(m: str, step: int, n: int, row: dict[str, Any]) -> None:
        done[m] = done.get(m, 0) + 1
        prog.update(bars[m], completed=done[m], info=f"loss {row['loss']:.4g}")

    with progress_bar(err_console if json_ else console) as prog:
        bars = {m: prog.add_task(m, total=total, info="") for m in names}
        rows = compare_tasks(task, names, out, seeds=seed_list, tune=grid, progress=advance, **opts)
    page = write_compare_report(out)
    if json_:
        dump_json({"task": task, "out": str(out), "report": str(page), "rows": rows})
        return
    console.print(metrics_table(rows, f"{task} on {opts.get('device', 'taox_1t1r')}"))
    console.print(f"report: {page}")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="a run or comparison directory")],
    markdown: Annotated[
        bool, typer.Option(help="also print a comparison's table as Markdown")
    ] = False,
    json_: Json = False,
) -> None:
    """Write the figures and the HTML page of a run or comparison directory."""
    from ..report import write_compare_report, write_run_report
    from ..rundir import is_eapu_dir

    if (RunDir(run_dir).compare).exists():
        page = write_compare_report(run_dir)
        doc = read_json(RunDir(run_dir).compare)
        if json_:
            dump_json({"report": str(page), **doc})
            return
        console.print(f"report: {page}")
        if markdown:
            print(markdown_table(doc.get("rows", [])))
    elif (RunDir(run_dir).metrics).exists():
        page = write_run_report(run_dir)
        if json_:
            metrics = read_json(RunDir(run_dir).metrics)
            dump_json({"report": str(page), "metrics": metrics})
            return
        console.print(f"report: {page}")
    elif (RunDir(run_dir).checkpoint).exists() or (RunDir(run_dir).config).exists():
        raise ValueError(
            f"{run_dir} is an unfinished run (no metrics.json yet); finish it by running the "
            "same eapu run command again, then report it"
        )
    elif run_dir.is_dir() and is_eapu_dir(run_dir):
        raise ValueError(
            f"{run_dir} is an unfinished comparison (no compare.json yet); finish it by "
            "running the same eapu compare command again, then report it"
        )
    else:
        raise typer.BadParameter(f"{run_dir} holds neither compare.json nor metrics.json")
