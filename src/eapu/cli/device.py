"""``eapu device``: fit a device to measured pulse trains, and predict EaPU on it.

    eapu device example samples/                   # SET.csv, RESET.csv of a known cell
    eapu device fit SET.csv RESET.csv --units uS --out my-cell.toml --relaxation-sd-us 2
    eapu device fit cycles.csv --units S --out my-cell.toml      # one file, polarity column
    eapu device report my-cell.toml --out runs/my-cell --steps 300

Every command that takes ``--device`` (or a device argument) accepts such a file's path.
A bad file or value is one message on stderr and exit status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .. import validate
from ..files import read_json
from .catalog import MAX_CELLS

__all__ = ["device_app"]

device_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Your own device: fit it to measured pulse trains, and predict EaPU on it.",
)
console = Console(width=None if sys.stdout.isatty() else 200, markup=False)  # names as text
#: The most pulses (ramps × (pulses + 1)) `example` writes per file: about 11 MB of CSV,
#: which `eapu device fit` reads back within its bound.
MAX_EXAMPLE_VALUES = 1_000_000


@device_app.command("fit")
def fit(
    files: Annotated[
        list[Path],
        typer.Argument(help="SET.csv RESET.csv, or one CSV with a 'polarity' column"),
    ],
    out: Annotated[Path, typer.Option(help="device file to write (TOML); a PNG goes beside")],
    units: Annotated[str, typer.Option(help="unit of the values: S, mS or uS")],
    name: Annotated[str | None, typer.Option(help="device name (default: the file's stem)")] = None,
    relaxation_sd_us: Annotated[
        float, typer.Option(help="SD of the shift after a write, µS (not in pulse trains)")
    ] = 0.0,
    read_noise_sd_us: Annotated[float, typer.Option(help="SD of one read, µS")] = 0.0,
    tolerance_us: Annotated[float, typer.Option(help="verify tolerance, µS")] = 1.0,
    bins: Annotated[int, typer.Option(help="conductance bins of the step tables")] = 16,
    max_reverse: Annotated[
        float, typer.Option(help="largest backward step, as a fraction of a ramp's net change")
    ] = 0.25,
    seed: Annotated[int, typer.Option(help="seed of the simulated trains in the figure")] = 0,
) -> None:
    """Fit a measured device to pulse trains (one column per ramp, one row per pulse)."""
    from ..devices import save_device
    from ..devices.fit import fit_device, fit_figure, read_pulse_trains

    if len(files) not in (1, 2):
        raise ValueError(f"FILES: give SET.csv RESET.csv or one file, got {len(files)} files")
    if out.suffix != ".toml":
        raise ValueError(f"--out must end in .toml, got {str(out)!r}")
    if len(files) == 2:
        trains = [
            read_pulse_trains(files[0], units=units, polarity="set", max_reverse=max_reverse),
            read_pulse_trains(files[1], units=units, polarity="reset", max_reverse=max_reverse),
        ]
    else:
        trains = [read_pulse_trains(files[0], units=units, max_reverse=max_reverse)]
    result = fit_device(
        trains,
        name=name or out.stem,
        bins=bins,
        relaxation_sd_us=relaxation_sd_us,
        read_noise_sd_us=read_noise_sd_us,
        tolerance_us=tolerance_us,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    dev = result.device
    save_device(dev, out, extra={"fit": {**result.stats, "units": units}})
    png = out.with_suffix(".png")
    fit_figure(trains, dev, png, seed=seed)
    t = Table(title=f"{dev.name}: {dev.g_min_us:.4g}-{dev.g_max_us:.4g} µS")
    for c in ("", "ramps", "pulses", "mean |ΔG| µS", "c2c SD µS", "d2d SD"):
        t.add_column(c, justify="right")
    for side in ("set", "reset"):
        steps = getattr(dev, f"{side}_step_us")
        c2c = getattr(dev, f"{side}_c2c_us")
        t.add_row(
            side.upper(),
            str(result.stats[f"{side}_ramps"]),
            str(result.stats[f"{side}_pulses"]),
            f"{min(steps):.3g}-{max(steps):.3g}",
            f"{min(c2c):.3g}-{max(c2c):.3g}",
            f"{result.stats[f'{side}_dtod_sd']:.3g}",
        )
    console.print(t)
    st = result.stats
    console.print(
        f"whole ramps: the last conductance spreads {st['ramp_end_sd_us_measured']:.3g} µS "
        f"(SD) measured, {st['ramp_end_sd_us_simulated']:.3g} µS simulated "
        f"({st['ramp_end_sd_ratio']:.2g}x); ramps ending at the window's edge: "
        f"{st['ramp_end_at_edge_measured']:.0%} measured, "
        f"{st['ramp_end_at_edge_simulated']:.0%} simulated",
        markup=False,
    )
    if not 0.5 <= st["ramp_end_sd_ratio"] <= 2.0:
        console.print(
            "warning: the fitted device does not reproduce how whole ramps spread: its step "
            "depends on G alone (as every lookup-table model's), so a ramp carries no memory "
            "of its cell beyond the device-to-device scale; read pulse counts and SD(εcell) "
            "from it with that in mind",
            markup=False,
        )
    console.print(f"device file: {out}\nfigure: {png}", markup=False)


@device_app.command("example")
def example(
    folder: Annotated[Path, typer.Argument(help="folder for SET.csv and RESET.csv")],
    device: Annotated[str, typer.Option(help="the known device (preset or file)")] = "taox_1t1r",
    ramps: Annotated[int, typer.Option(help="ramps (columns) per file")] = 200,
    pulses: Annotated[int, typer.Option(help="pulses (rows after the first) per ramp")] = 40,
    seed: Annotated[int, typer.Option(help="seed of the simulated measurement")] = 0,
) -> None:
    """Write pulse trains of a known device (µS, published form) to try the fit on."""
    from ..devices import get_device
    from ..devices.fit import write_example_trains

    validate.integer("ramps", ramps, low=1, high=MAX_EXAMPLE_VALUES // 2)
    validate.integer("pulses", pulses, low=1, high=MAX_EXAMPLE_VALUES // 2 - 1)
    if ramps * (pulses + 1) > MAX_EXAMPLE_VALUES:
        raise ValueError(
            f"Invalid ramps: {ramps} ramps of {pulses} pulses are {ramps * (pulses + 1)} values "
            f"per file; allowed: ramps × (pulses + 1) <= {MAX_EXAMPLE_VALUES} (about 11 MB)"
        )
    validate.integer("seed", seed, low=0)
    dev = get_device(device)
    paths = write_example_trains(folder, dev, ramps=ramps, pulses=pulses, seed=seed)
    console.print(f"{ramps} ramps × {pulses} pulses of {device}: {paths[0]}, {paths[1]} (µS)")


@device_app.command("report")
def report(
    device: Annotated[str, typer.Argument(help="a device file (*.toml) or a preset name")],
    out: Annotated[Path, typer.Option(help="directory of the report")],
    steps: Annotated[int | None, typer.Option(help="mini-batches per run (default 1100)")] = None,
    seeds: Annotated[str | None, typer.Option(help="seeds, e.g. 0,1,2 (mean ± SD)")] = None,
    methods: Annotated[
        str, typer.Option(help="methods to compare")
    ] = "software,eapu+mp,mp,wu,tp,su",
    cells: Annotated[
        int, typer.Option(help="cells per characterisation sweep", min=2, max=MAX_CELLS)
    ] = 4096,
    rwg: Annotated[
        float | None,
        typer.Option(
            help="Rwg (µS⁻¹; default 1/80, or the largest range the device holds where "
            "1/80's does not fit)"
        ),
    ] = None,
    eval_every: Annotated[int | None, typer.Option(help="evaluate every N mini-batches")] = None,
) -> None:
    """Characterise the device, derive EaPU's threshold, run the denoise comparison on it."""
    from ..devices import get_device
    from ..experiments.config import usable_device
    from ..experiments.device_report import device_report
    from ..rundir import claim

    dev = get_device(device)
    usable_device(dev, device)
    seed_list = validate.int_list("--seeds", seeds) if seeds is not None else None
    opts: dict[str, Any] = {} if eval_every is None else {"eval_every": eval_every}
    method_list = validate.name_list("--methods", methods)
    claim(out)  # a new or empty directory, or an earlier report's: never another tool's
    path = device_report(
        device,
        out,
        methods=method_list,
        steps=steps,
        seeds=seed_list,
        n_cells=cells,
        rwg_per_us=rwg,
        **opts,
    )
    doc = read_json(out / "device_report.json")
    for line in doc["verdict"]:
        console.print(line)
    console.print(f"{dev.name}: report {path}")
