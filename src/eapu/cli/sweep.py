"""``eapu sweep``: a grid of settings, one run directory per point and seed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from .. import validate
from .app import app, console
from .options import Config, Task, given_by, key_values, run_options, with_run_options

__all__ = ["check_grid", "sweep"]


def check_grid(task: str, base: dict[str, Any], grid: dict[str, Sequence[Any]]) -> None:
    """Every point of the grid makes a valid RunConfig (before any run starts)."""
    from ..experiments import RunConfig
    from ..experiments.sweep import expand_grid

    try:
        points = expand_grid(base, grid)
    except ValueError as e:
        raise ValueError(f"--grid: {e}") from None
    for point in points:
        try:
            RunConfig(task=task, **point)
        except ValueError as e:
            where = ", ".join(f"{k}={point[k]}" for k in grid)
            raise ValueError(f"--grid: the point {where}: {e}") from None


@app.command()
@with_run_options(exclude=("seed",))
def sweep(
    task: Task,
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid", help="KEY=V1,V2,... (repeatable): RunConfig fields, e.g. sd_us=1,2,4"
        ),
    ] = None,
    seeds: Annotated[str | None, typer.Option(help="comma-separated seeds (default: 0)")] = None,
    workers: Annotated[
        int | None, typer.Option(help="processes (default: CPUs); 0 runs in this process")
    ] = None,
    print_: Annotated[
        bool,
        typer.Option(
            "--print-commands",
            help="print one `eapu run` per point (for a scheduler or GNU parallel)",
        ),
    ] = False,
    collect_: Annotated[bool, typer.Option("--collect", help="only gather finished runs")] = False,
    metric: Annotated[list[str] | None, typer.Option(help="metric(s) to plot")] = None,
    out: Annotated[
        Path | None, typer.Option(help="sweep directory (default: runs/TASK-sweep)")
    ] = None,
    config: Config = None,
    **options: Any,
) -> None:
    """Run a grid of settings (one run directory per point and seed); write sweep.csv and plots.

    Finished points are skipped and interrupted ones resume, so the same command continues
    a sweep.
    """
    from ..experiments import FLAGS
    from ..experiments import sweep as sw

    base = run_options(config, options)
    if "seed" in base:
        raise ValueError(
            f"--seeds: seed is also set by {given_by('seed', options)}; a sweep's seeds are "
            "--seeds, remove seed from the file"
        )
    sweepable = [f.field for f in FLAGS if f.field != "seed"]
    g: dict[str, Sequence[Any]] = {}
    for spec in grid or []:
        key, values = key_values("--grid", spec, sweepable)
        if key in g:
            raise ValueError(
                f"--grid {validate.shown(spec)}: {key} is already swept; give all its values "
                "in one --grid"
            )
        if key in base:
            raise ValueError(
                f"--grid {key}=...: {key} is also set by {given_by(key, options)}; sweep it or "
                "set it, not both"
            )
        g[key] = values
    seed_list = validate.int_list("--seeds", seeds if seeds is not None else "0")
    check_grid(task, base, g)
    out = out or Path("runs") / f"{task}-sweep"
    if print_:
        sw.save_manifest(task, base, g, out, seeds=seed_list)
        for line in sw.print_commands(task, base, g, out, seeds=seed_list):
            print(line)
        return
    if collect_:  # the settings given (if any) must be the sweep's
        given = {"base": base or None, "grid": g or None, "seeds": seeds and seed_list}
        sw.check_manifest(out, task=task, **given)  # type: ignore[arg-type]
        res = sw.collect(out, metrics=metric or None, task=task)
    else:
        res = sw.run_sweep(
            task,
            base,
            g,
            out,
            workers=workers,
            seeds=seed_list,
            metrics=metric or None,
            raise_on_error=False,
            progress=lambda k, st, m: console.print(f"{st:>8} {k}"),
        )
    figs = ", ".join(map(str, res.figures)) or "-"
    console.print(f"{len(res.rows)} rows -> {res.csv_path}; figures: {figs}")
    if res.failed:
        console.print(Text(f"{len(res.failed)} failed: {', '.join(res.failed)}", style="red"))
        raise typer.Exit(1)
