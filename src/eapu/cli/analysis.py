"""``eapu energy``, ``eapu narrow-range``, ``eapu retention``, ``eapu stats``: what a run
costs, how it holds, how it wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from .. import validate
from ..formatting import format_value
from ..rundir import RunDir
from .app import app, console
from .tables import rows_table

__all__ = ["energy", "narrow_range", "retention", "stats"]


@app.command()
def energy(
    run_dir: Annotated[Path, typer.Argument(help="a run directory (with energy.json)")],
    node: Annotated[str, typer.Option(help="180nm, 16nm, flash (or one of --nodes)")] = "180nm",
    nodes: Annotated[Path | None, typer.Option(help="TOML of your own node costs")] = None,
    periphery: Annotated[
        str | None,
        typer.Option(help="comma-separated factors on the periphery costs (DAC/ADC, drivers)"),
    ] = None,
) -> None:
    """Energy and latency of a run on a technology node, by category and scope.

    Scopes: total (the whole system, digital backprop and optimizer included), crossbar
    (what the paper's Fig. 2b puts on the crossbar: forward and backward VMMs, DAC/ADC,
    programming and verify), programming only; the GPU reference beside them. --periphery
    varies the periphery estimate.
    """
    from ..energy import CATEGORIES
    from ..experiments import energy_figures
    from ..files import read_json
    from ..report import plot_energy

    path = RunDir(run_dir).energy
    if not path.exists():
        raise typer.BadParameter(f"{path} does not exist; run the task first")
    factors = validate.float_list("--periphery", periphery) if periphery is not None else None
    acc = read_json(path)
    fig = energy_figures(acc, node, nodes)
    cols = [
        (key, unit, scale)
        for key, unit, scale in (
            ("inference", "inference µJ/sample", 1e6),
            ("training", "training mJ/run", 1e3),
            ("training_crossbar", "training, crossbar scope mJ/run", 1e3),
            ("gpu_training", "GPU training mJ/run", 1e3),
            ("inference_latency", "inference µs/sample", 1e6),
            ("training_latency", "training s/run", 1.0),
            ("gpu_training_latency", "GPU s/run", 1.0),
        )
        if key in fig
    ]
    t = Table(title=f"{run_dir.name} on {node}")
    t.add_column("category")
    for _, unit, _ in cols:
        t.add_column(unit, justify="right")
    for c in (*CATEGORIES, "total", "scope_crossbar", "scope_programming"):
        t.add_row(c, *[f"{fig[key][c] * scale:.3g}" for key, _, scale in cols if c in fig[key]])
    console.print(t)
    if "rows" in fig and fig["rows"].get("note"):
        console.print(f"rows written: {fig['rows']['note']}", markup=False)
    if factors is not None:
        from ..energy import Counts, get_node, periphery_sweep

        if not acc.get("inference_per_sample"):
            raise ValueError(f"--periphery: {run_dir} has no crossbar; nothing analog to vary")
        counts = Counts(**acc["inference_per_sample"])
        rows = periphery_sweep(counts, get_node(node, nodes), factors)
        title = "inference per sample (J) as the periphery estimate varies"
        console.print(rows_table(rows, title))
    from ..rundir import name_part

    # a node of the user's --nodes file is named by them: never a path out of the run
    console.print(f"figure: {plot_energy(fig, run_dir / f'energy-{name_part(node)}.png')}")


@app.command("narrow-range")
def narrow_range(
    task: Annotated[str, typer.Option(help="a denoise or sr task")] = "denoise",
    eapu_rwg: Annotated[float, typer.Option(help="EaPU's Rwg (µS⁻¹)")] = 1 / 40,
    bp_rwg: Annotated[float, typer.Option(help="BP's Rwg (µS⁻¹)")] = 1 / 4000,
    sd_us: Annotated[float, typer.Option(help="SD(εcell) of a write (µS)")] = 2.0,
    steps: Annotated[int | None, typer.Option(help="mini-batches (default: the task's)")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    node: Annotated[str, typer.Option(help="technology node")] = "180nm",
    out: Annotated[Path | None, typer.Option(help="write the result as JSON here")] = None,
    runs: Annotated[
        Path | None,
        typer.Option(help="directory of the two run directories (default: runs/TASK-narrow-range)"),
    ] = None,
) -> None:
    """The paper's narrow-range comparison: EaPU at Rwg 1/40 against BP at 1/4000.

    Quality and inference energy per sample, beside the paper's 19.71 µJ vs 700 µJ (35.51×).
    The two trainings are run directories RUNS/eapu and RUNS/bp (resumed when rerun).
    """
    from ..experiments.narrow_range import narrow_range_comparison
    from ..files import write_json

    res = narrow_range_comparison(
        task=task,
        eapu_rwg_per_us=eapu_rwg,
        bp_rwg_per_us=bp_rwg,
        sd_us=sd_us,
        steps=steps,
        seed=seed,
        node=node,
        out_dir=runs,
    )
    rows = [
        {
            "method": r["method"],
            "rwg": r["rwg_per_us"],
            "ssim": r["ssim"],
            "psnr": r["psnr"],
            "g_mean_us": r["g_mean_us"],
            "clipped": r["clipped"],
            "cells_nj": r["inference_j"]["vmm_read"] * 1e9,
            "analog_nj": r["inference_j"]["scope_analog"] * 1e9,
            "total_nj": r["inference_j"]["total"] * 1e9,
        }
        for r in res["rows"]
    ]
    console.print(rows_table(rows, f"{task}: inference per sample on {node}"))
    console.print(rows_table(res["ratio_analog_by_periphery"], "BP / EaPU analog energy"))
    console.print(
        f"ratio BP/EaPU: total {res['ratio']:.3g}, analog {res['ratio_analog']:.3g} "
        f"(paper {res['paper']['ratio']:.4g}); periphery factor giving the paper's ratio: "
        f"{format_value(res['periphery_factor_for_paper_ratio'])}"
    )
    if out is not None:
        write_json(out, res)


@app.command()
def retention(
    run_dir: Annotated[Path, typer.Argument(help="a device-level run directory")],
    hours: Annotated[str, typer.Option(help="comma-separated hours after training")] = "0,1,10,60",
    drift: Annotated[
        Literal["rram", "pcm"], typer.Option(help="rram (mean shift) or pcm (power law)")
    ] = "rram",
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Accuracy or SSIM of a trained run as its cells drift, without and with compensation."""
    import csv
    import io

    from ..experiments import retention as ret
    from ..files import atomic_write

    rows = ret(run_dir, validate.float_list("--hours", hours), drift=drift, seed=seed)
    t = Table(title=f"{run_dir.name}: retention ({drift})")
    for c in rows[0]:
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(*[format_value(v) for v in r.values()])
    console.print(t)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    out = run_dir / f"retention-{drift}.csv"
    atomic_write(out, buf.getvalue().encode())
    console.print(f"table: {out}")


@app.command()
def stats(
    run_dir: Annotated[Path, typer.Argument(help="a run directory (or its checkpoint.pt)")],
    scheme: Annotated[
        str | None, typer.Option(help="scheme for Nup (default: the run's, else memorial)")
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="device for Nup (default: the run's, else taox_1t1r)")
    ] = None,
    delta_us: Annotated[
        float, typer.Option(help="update size of the step-to-step measurement (µS)")
    ] = 2.0,
    out: Annotated[
        Path | None, typer.Option(help="where to write (default: the run directory)")
    ] = None,
) -> None:
    """Per-layer written fraction, Rup over training, and Nup = Ncell(step-to-step) × Rup."""
    from ..experiments.stats import write_update_stats
    from ..files import read_json
    from ..rundir import is_finished

    where = run_dir if run_dir.is_dir() else run_dir.parent
    if (RunDir(where).config).exists() and not is_finished(where):
        raise ValueError(
            f"{where} is an unfinished run (no metrics.json yet): its statistics would stop "
            "at its last checkpoint; finish it by running the same eapu run command again"
        )
    if device is not None and scheme is None:
        from ..devices import get_device
        from ..experiments.config import usable_device

        usable_device(get_device(device), device)
    paths = write_update_stats(run_dir, out, scheme=scheme, device=device, delta_us=delta_us)
    s = read_json(paths["json"])
    console.print(
        f"Rup {s['rup_mean'] * 1e3:.3g} ‰ (max {s['rup_max'] * 1e3:.3g} ‰); Nup measured "
        f"{s['nup_measured']:.3g}; {s['scheme']}: Ncell {s['ncell_step']:.3g} step-to-step "
        f"({s['ncell_random']:.3g} from a random start) -> Nup {s['nup']:.3g}"
    )
    for p in paths.values():
        console.print(str(p))
