"""The ``eapu`` command: run, compare and report the paper's experiments, list what exists.

    eapu compare denoise --out runs/denoise           # all device-level methods, taox_1t1r
    eapu run sr2 --method eapu+mp --seed 1 --out runs/sr2-mp
    eapu characterize taox_1t1r --scheme memorial
    eapu list devices

Options come from flags or from a TOML file (``--config run.toml``) whose keys are the flag
names with underscores (``batch_size = 64``); flags given on the command line win.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, TypeAlias

import tomllib
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="In-situ training on memristor crossbars with EaPU.",
)
# Wide when writing to a file or a pipe, where rich would otherwise cut tables at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)

DEVICE_METHODS = ["software", "ex-situ", "eapu+mp", "mp", "eapu+fp", "wu", "tp", "su"]


def _options(config: Path | None, **flags: Any) -> dict[str, Any]:
    """Merge a TOML file with the flags actually given (not None)."""
    opts: dict[str, Any] = {}
    if config is not None:
        with open(config, "rb") as f:
            opts.update(tomllib.load(f))
    opts.update({k: v for k, v in flags.items() if v is not None})
    return opts


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)


COLUMNS = [
    "method",
    "ssim",
    "psnr",
    "accuracy",
    "roc_auc",
    "rup",
    "nup",
    "ncell",
    "pulses",
    "update_energy_uj_180nm",
    "wall_s",
]


def _table(rows: list[dict[str, Any]], title: str) -> Table:
    cols = [c for c in COLUMNS if any(c in r for r in rows)]
    t = Table(title=title)
    for c in cols:
        t.add_column(c, justify="left" if c == "method" else "right")
    for r in rows:
        t.add_row(
            *[_fmt(r.get(c)) + (f" ± {_fmt(r[c + '_sd'])}" if c + "_sd" in r else "") for c in cols]
        )
    return t


# Shared flags: each maps to a RunConfig field of the same name.
Steps: TypeAlias = Annotated[int | None, typer.Option(help="mini-batches (default: the task's)")]
Batch: TypeAlias = Annotated[int | None, typer.Option(help="mini-batch size (default: the task's)")]
Lr: TypeAlias = Annotated[
    float | None, typer.Option(help="learning rate of the base optimizer (Adam)")
]
Every: TypeAlias = Annotated[int | None, typer.Option(help="evaluate every N mini-batches")]
Device: TypeAlias = Annotated[str | None, typer.Option(help="device preset (eapu list devices)")]
Seed: TypeAlias = Annotated[int | None, typer.Option(help="seed of everything random")]
SdUs: TypeAlias = Annotated[
    float | None, typer.Option(help="SD of εcell in µS (weight-level methods)")
]
Rwg: TypeAlias = Annotated[float | None, typer.Option("--rwg", help="Rwg in µS⁻¹ (default 1/80)")]
Th: TypeAlias = Annotated[
    float | None, typer.Option(help="EaPU threshold in µS (default: SD of εcell)")
]
Model: TypeAlias = Annotated[str | None, typer.Option(help="network (eapu list models)")]
Data: TypeAlias = Annotated[str | None, typer.Option(help="data set (eapu list datasets)")]
DataDir: TypeAlias = Annotated[str | None, typer.Option(help="directory of a data set on disk")]
Config: TypeAlias = Annotated[Path | None, typer.Option(help="TOML file of options")]
Optim: TypeAlias = Annotated[str | None, typer.Option(help="base optimizer: adam, sgd, momentum")]
Sched: TypeAlias = Annotated[
    str | None, typer.Option(help="learning-rate schedule: none, step, cosine")
]
Width: TypeAlias = Annotated[
    int | None, typer.Option(help="channel width of the network (ResNets)")
]
EvalN: TypeAlias = Annotated[int | None, typer.Option(help="test samples per evaluation")]
StuckOff: TypeAlias = Annotated[float | None, typer.Option(help="fraction of cells stuck at g_min")]
AnomalyData: TypeAlias = Annotated[
    str | None, typer.Option(help="anomaly task: the data set of anomalies (default photos)")
]
DeviceType: TypeAlias = Annotated[
    str | None, typer.Option(help="where the network runs: cpu or cuda (tiles stay on cpu)")
]
InitFrom: TypeAlias = Annotated[
    str | None, typer.Option(help="start from the weights of this run directory (transfer)")
]
StuckOn: TypeAlias = Annotated[float | None, typer.Option(help="fraction of cells stuck at g_max")]

#: Flags that map one to one onto eapu.tasks.RunConfig fields.
RUN_FLAGS = (
    "steps",
    "batch_size",
    "lr",
    "eval_every",
    "device",
    "seed",
    "sd_us",
    "rwg_per_us",
    "threshold_us",
    "model",
    "data",
    "data_dir",
    "optimizer",
    "schedule",
    "width",
    "eval_samples",
    "stuck_off",
    "stuck_on",
    "anomaly_data",
    "device_type",
    "init_from",
)


def _run_options(config: Path | None, given: dict[str, Any]) -> dict[str, Any]:
    """The RunConfig options of a command: its TOML file, then the flags it was given."""
    return _options(config, **{k: v for k, v in given.items() if k in RUN_FLAGS})


Out: TypeAlias = Annotated[
    Path | None, typer.Option(help="run directory (default runs/TASK-METHOD)")
]


@app.command()
def run(
    task: Annotated[
        str, typer.Argument(help="denoise, sr2, sr4, classify, anomaly (eapu list tasks)")
    ],
    method: Annotated[str, typer.Option(help="eapu list methods")] = "eapu+mp",
    out: Out = None,
    steps: Steps = None,
    batch_size: Batch = None,
    lr: Lr = None,
    eval_every: Every = None,
    device: Device = None,
    seed: Seed = None,
    sd_us: SdUs = None,
    rwg_per_us: Rwg = None,
    threshold_us: Th = None,
    model: Model = None,
    data: Data = None,
    data_dir: DataDir = None,
    optimizer: Optim = None,
    schedule: Sched = None,
    width: Width = None,
    eval_samples: EvalN = None,
    stuck_off: StuckOff = None,
    stuck_on: StuckOn = None,
    anomaly_data: AnomalyData = None,
    device_type: DeviceType = None,
    init_from: InitFrom = None,
    config: Config = None,
) -> None:
    """Train one task with one method; write (or resume) a run directory and its report."""
    from .report import write_run_report
    from .tasks import RunConfig
    from .tasks import run as run_task

    opts = _run_options(config, locals())
    opts.setdefault("method", method)
    cfg = RunConfig(task=task, **opts)
    out = out or Path("runs") / f"{task}-{cfg.method}"
    with _progress() as prog:
        bar = prog.add_task(cfg.method, total=cfg.resolved()["steps"], info="")
        metrics = run_task(
            cfg,
            out,
            progress=lambda s, n, r: prog.update(bar, completed=s, info=f"loss {r['loss']:.4g}"),
        )
    console.print(_table([{"method": cfg.method, **metrics}], f"{task} ({cfg.device})"))
    console.print(f"report: {write_run_report(out)}")


@app.command()
def compare(
    task: Annotated[
        str, typer.Argument(help="denoise, sr2, sr4, classify, anomaly (eapu list tasks)")
    ],
    methods: Annotated[str, typer.Option(help="comma-separated methods")] = ",".join(
        DEVICE_METHODS
    ),
    seeds: Annotated[
        str | None, typer.Option(help="comma-separated seeds: rows become mean and SD over them")
    ] = None,
    out: Out = None,
    steps: Steps = None,
    batch_size: Batch = None,
    lr: Lr = None,
    eval_every: Every = None,
    device: Device = None,
    seed: Seed = None,
    sd_us: SdUs = None,
    rwg_per_us: Rwg = None,
    threshold_us: Th = None,
    model: Model = None,
    data: Data = None,
    data_dir: DataDir = None,
    optimizer: Optim = None,
    schedule: Sched = None,
    width: Width = None,
    eval_samples: EvalN = None,
    stuck_off: StuckOff = None,
    stuck_on: StuckOn = None,
    anomaly_data: AnomalyData = None,
    device_type: DeviceType = None,
    init_from: InitFrom = None,
    config: Config = None,
) -> None:
    """Run one task with several methods on the same device; print and report the comparison."""
    from .report import write_compare_report
    from .tasks import RunConfig, get_method
    from .tasks import compare as compare_tasks

    names = [m.strip() for m in methods.split(",") if m.strip()]
    for m in names:
        get_method(m)
    opts = _run_options(config, locals())
    seed_list = [int(x) for x in seeds.split(",") if x.strip()] if seeds else None
    total = RunConfig(task=task, **opts).resolved()["steps"] * len(seed_list or [0])
    out = out or Path("runs") / f"{task}-compare"
    done: dict[str, int] = {}

    def advance(m: str, step: int, n: int, row: dict[str, Any]) -> None:
        done[m] = done.get(m, 0) + 1
        prog.update(bars[m], completed=done[m], info=f"loss {row['loss']:.4g}")

    with _progress() as prog:
        bars = {m: prog.add_task(m, total=total, info="") for m in names}
        rows = compare_tasks(
            task,
            names,
            out,
            seeds=seed_list,
            progress=advance,
            **opts,
        )
    console.print(_table(rows, f"{task} on {opts.get('device', 'taox_1t1r')}"))
    console.print(f"report: {write_compare_report(out)}")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="a run or comparison directory")],
    markdown: Annotated[
        bool, typer.Option(help="also print a comparison's table as Markdown")
    ] = False,
) -> None:
    """Write the figures and the HTML page of a run or comparison directory."""
    import json

    from .report import write_compare_report, write_run_report

    if (run_dir / "compare.json").exists():
        console.print(f"report: {write_compare_report(run_dir)}")
        if markdown:
            print(_markdown(json.loads((run_dir / "compare.json").read_text())["rows"]))
    elif (run_dir / "metrics.json").exists():
        console.print(f"report: {write_run_report(run_dir)}")
    else:
        raise typer.BadParameter(f"{run_dir} holds neither compare.json nor metrics.json")


def _markdown(rows: list[dict[str, Any]]) -> str:
    """The comparison table as Markdown, mean ± SD where several seeds ran."""
    cols = [c for c in COLUMNS if c != "wall_s" and any(c in r for r in rows)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [
            _fmt(r.get(c)) + (f" ± {_fmt(r[c + '_sd'])}" if c + "_sd" in r else "") for c in cols
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@app.command()
def energy(
    run_dir: Annotated[Path, typer.Argument(help="a run directory (with energy.json)")],
    node: Annotated[str, typer.Option(help="180nm, 16nm, flash (or one of --nodes)")] = "180nm",
    nodes: Annotated[Path | None, typer.Option(help="TOML of your own node costs")] = None,
) -> None:
    """Energy and latency of a run on a technology node, by category, and the GPU reference."""
    import json

    from .report import plot_energy
    from .tasks import energy_figures

    path = run_dir / "energy.json"
    if not path.exists():
        raise typer.BadParameter(f"{path} does not exist; run the task first")
    fig = energy_figures(json.loads(path.read_text()), node, nodes)
    cols = [
        (key, unit, scale)
        for key, unit, scale in (
            ("inference", "inference µJ/sample", 1e6),
            ("training", "training mJ/run", 1e3),
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
    for c in ["vmm_read", "adc_dac", "digital", "rng", "programming", "verify", "total"]:
        t.add_row(c, *[f"{fig[key][c] * scale:.3g}" for key, _, scale in cols])
    console.print(t)
    console.print(f"figure: {plot_energy(fig, run_dir / f'energy-{node}.png')}")


@app.command()
def retention(
    run_dir: Annotated[Path, typer.Argument(help="a device-level run directory")],
    hours: Annotated[str, typer.Option(help="comma-separated hours after training")] = "0,1,10,60",
    drift: Annotated[str, typer.Option(help="rram (mean shift) or pcm (power law)")] = "rram",
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Accuracy or SSIM of a trained run as its cells drift, without and with compensation."""
    import csv
    import io

    from .files import atomic_write
    from .tasks import retention as ret

    rows = ret(run_dir, [float(h) for h in hours.split(",")], drift=drift, seed=seed)
    t = Table(title=f"{run_dir.name}: retention ({drift})")
    for c in rows[0]:
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(*[_fmt(v) for v in r.values()])
    console.print(t)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    out = run_dir / f"retention-{drift}.csv"
    atomic_write(out, buf.getvalue().encode())
    console.print(f"table: {out}")


def _parse_value(text: str) -> Any:
    """A grid value: None, an int, a float, or the string itself."""
    if text.lower() == "none":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


@app.command()
def sweep(
    task: Annotated[
        str, typer.Argument(help="denoise, sr2, sr4, classify, anomaly (eapu list tasks)")
    ],
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid", help="KEY=V1,V2,... (repeatable): RunConfig fields, e.g. sd_us=1,2,4"
        ),
    ] = None,
    seeds: Annotated[str, typer.Option(help="comma-separated seeds")] = "0",
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
    method: Annotated[str | None, typer.Option(help="eapu list methods")] = None,
    out: Out = None,
    steps: Steps = None,
    batch_size: Batch = None,
    lr: Lr = None,
    eval_every: Every = None,
    device: Device = None,
    sd_us: SdUs = None,
    rwg_per_us: Rwg = None,
    threshold_us: Th = None,
    model: Model = None,
    data: Data = None,
    data_dir: DataDir = None,
    optimizer: Optim = None,
    schedule: Sched = None,
    width: Width = None,
    eval_samples: EvalN = None,
    stuck_off: StuckOff = None,
    stuck_on: StuckOn = None,
    anomaly_data: AnomalyData = None,
    device_type: DeviceType = None,
    init_from: InitFrom = None,
    config: Config = None,
) -> None:
    """Run a grid of settings (one run directory per point and seed); write sweep.csv and plots.

    Finished points are skipped and interrupted ones resume, so the same command continues
    a sweep.
    """
    from . import sweep as sw

    base = _run_options(config, locals())
    if method is not None:
        base["method"] = method
    g: dict[str, Sequence[Any]] = {}
    for spec in grid or []:
        key, _, vals = spec.partition("=")
        if not vals:
            raise typer.BadParameter(f"--grid {spec!r}: expected KEY=V1,V2,...")
        key = "rwg_per_us" if key.strip() == "rwg" else key.strip()
        g[key] = [_parse_value(v.strip()) for v in vals.split(",")]
    seed_list = [int(x) for x in seeds.split(",") if x.strip()]
    out = out or Path("runs") / f"{task}-sweep"
    if print_:
        sw.save_manifest(task, base, g, out, seeds=seed_list)
        for line in sw.print_commands(task, base, g, out, seeds=seed_list):
            print(line)
        return
    if collect_:
        res = sw.collect(out, metrics=metric or None)
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
        console.print(f"[red]{len(res.failed)} failed: {', '.join(res.failed)}[/red]")
        raise typer.Exit(1)


@app.command()
def stats(
    run_dir: Annotated[Path, typer.Argument(help="a run directory (or its checkpoint.pt)")],
    scheme: Annotated[
        str | None, typer.Option(help="scheme for Nup (default: the run's, else memorial)")
    ] = None,
    device: Device = None,
    delta_us: Annotated[
        float, typer.Option(help="update size of the step-to-step measurement (µS)")
    ] = 2.0,
    out: Out = None,
) -> None:
    """Per-layer written fraction, Rup over training, and Nup = Ncell(step-to-step) × Rup."""
    import json

    from .stats import write_update_stats

    paths = write_update_stats(run_dir, out, scheme=scheme, device=device, delta_us=delta_us)
    s = json.loads(paths["json"].read_text())
    console.print(
        f"Rup {s['rup_mean'] * 1e3:.3g} ‰ (max {s['rup_max'] * 1e3:.3g} ‰); Nup measured "
        f"{s['nup_measured']:.3g}; {s['scheme']}: Ncell {s['ncell_step']:.3g} step-to-step "
        f"({s['ncell_random']:.3g} from a random start) -> Nup {s['nup']:.3g}"
    )
    for p in paths.values():
        console.print(str(p))


@app.command("list")
def list_(
    what: Annotated[
        str, typer.Argument(help="devices, schemes, rules, tasks, methods, models or datasets")
    ],
) -> None:
    """List what is registered."""
    from . import data, devices, models, programming, rules, tasks

    table: list[tuple[str, str]]
    if what == "devices":
        table = [(n, devices.get_device_info(n).description) for n in devices.list_devices()]
    elif what == "schemes":
        table = [(n, programming.get_scheme(n).description) for n in programming.list_schemes()]
    elif what == "rules":
        table = [(n, rules.get_rule(n).description) for n in rules.list_rules()]
    elif what == "tasks":
        table = [(n, tasks.get_task(n).description) for n in tasks.list_tasks()]
    elif what == "methods":
        table = [(n, tasks.get_method(n).description) for n in tasks.list_methods()]
    elif what == "models":
        table = [(n, models.model_info(n).description) for n in models.list_models()]
    elif what == "datasets":
        table = [(n, data.dataset_info(n).description) for n in data.list_datasets()]
    else:
        raise typer.BadParameter(
            f"unknown list {what!r}; available: devices, schemes, rules, tasks, methods, "
            "models, datasets"
        )
    t = Table(title=what)
    t.add_column("name")
    t.add_column("description")
    for name, desc in table:
        t.add_row(name, desc)
    console.print(t)


@app.command()
def characterize(
    device: Annotated[str, typer.Argument(help="device preset")],
    scheme: Annotated[str | None, typer.Option(help="programming scheme")] = None,
    cells: Annotated[int, typer.Option(help="cells in the sweep")] = 4096,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Measure SD(εcell) of a device under a scheme by a write/read sweep over the window."""
    from .devices import get_device
    from .programming import characterize as char

    c = char(get_device(device), scheme, n_cells=cells, seed=seed)
    t = Table(title=f"{c.device} / {c.scheme}: SD(εcell) = {c.sd_us:.3g} µS")
    t.add_column("target G (µS)", justify="right")
    t.add_column("SD εcell (µS)", justify="right")
    for g, sd in zip(c.g_centers_us, c.sd_by_g_us, strict=True):
        t.add_row(f"{g:.1f}", f"{sd:.3g}")
    console.print(t)
    console.print(
        f"mean εcell {c.mean_us:.3g} µS, pulses per write {c.pulses_per_write:.3g}, "
        f"verify reads per write {c.reads_per_write:.3g}, fail rate {c.fail_rate:.3g}"
    )


from .cli_device import device_app  # noqa: E402  (eapu device fit / report)

app.add_typer(device_app, name="device")

if __name__ == "__main__":
    app()
