"""The ``eapu`` command: run, compare and report the paper's experiments, list what exists.

    eapu compare denoise --out runs/denoise           # all device-level methods, taox_1t1r
    eapu run sr2 --method eapu+mp --seed 1 --out runs/sr2-mp
    eapu characterize taox_1t1r --scheme memorial
    eapu list devices

Options come from flags or from a TOML file (``--config run.toml``) whose keys are the flag
names with underscores (``batch_size = 64``); flags given on the command line win.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, TypeAlias

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup

#: Errors a command reports as bad input (one message, exit 2) instead of a traceback:
#: eapu's validation raises ValueError (json, TOML and Unicode decoding errors are
#: ValueErrors too); a missing or unreadable file is an OSError. Anything else is a bug and
#: keeps its traceback.
USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)

_INVALID = re.compile(r"\bInvalid (\w+)(?=:)")


def flag_name(option: str) -> str:
    """The flag of a RunConfig field or command option (``rwg_per_us`` -> ``--rwg``)."""
    return "--rwg" if option == "rwg_per_us" else "--" + option.replace("_", "-")


#: Words in "unknown <kind> 'x'" messages that are not the option's own name.
_KIND_OPTION = {"dataset": "data", "grid": "grid"}
_UNKNOWN = re.compile(r"^unknown (\w+)\b")


def user_message(exc: BaseException, flags: dict[str, str]) -> str:
    """``exc``'s message, naming the flag that fixes it: ``Invalid eval_samples: ...`` becomes
    ``--eval-samples: ...`` and ``unknown device 'x'`` gets ``--device:`` in front, where
    ``flags`` (option or field name -> what the user types) has that name."""

    def sub(m: re.Match[str]) -> str:
        return flags.get(m.group(1), m.group(0))

    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.strerror or text}: {exc.filename}"
    text = _INVALID.sub(sub, text)
    m = _UNKNOWN.match(text)
    if m is not None:
        kind = _KIND_OPTION.get(m.group(1), m.group(1))
        kind = next((k for k in (kind + "s", kind) if k in flags), kind)
        if kind in flags:
            text = f"{flags[kind]}: {text}"
    return text


def _flags(cmd: Any, args: Sequence[str]) -> dict[str, str]:
    """What the user types for each RunConfig field and each parameter of ``cmd`` (given
    ``args``: with ``--config``, a field may have come from the file under its own name)."""
    fields = [f.name for f in dataclasses.fields(_run_config())]
    config = "--config" in args
    flags = {
        n: flag_name(n) + (f" (or {n} in the --config file)" if config else "") for n in fields
    }
    for p in getattr(cmd, "params", []):
        if p.name and p.name not in fields:
            opts = [o for o in p.opts if o.startswith("--")]
            flags[p.name] = opts[0] if opts else p.name.upper()
    return flags


class _Group(TyperGroup):
    """The command group: a user error raised by a command is one message and exit 2."""

    def invoke(self, ctx: Any) -> Any:
        given = list(ctx.args)  # the subcommand's arguments (invoke consumes them)
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            sub = ctx.invoked_subcommand
            cmd = self.get_command(ctx, sub) if sub else None
            err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
            text = user_message(exc, _flags(cmd, given))
            err.print(f"Error: {text}", markup=False, highlight=False)
            err.print(f"Try 'eapu {sub} --help' for help.", markup=False, highlight=False)
            raise typer.Exit(2) from None


def _run_config() -> Any:
    from .tasks import RunConfig

    return RunConfig


app = typer.Typer(
    cls=_Group,
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
        try:
            with open(config, "rb") as f:
                opts.update(tomllib.load(f))
        except (OSError, ValueError) as e:  # TOML and UTF-8 errors are ValueErrors
            why = e.strerror if isinstance(e, OSError) else e
            raise ValueError(f"--config {config}: {why}") from None
        allowed = {f.name for f in dataclasses.fields(_run_config())} - {"task"}
        unknown = sorted(set(opts) - allowed)
        if unknown:
            raise ValueError(
                f"--config {config}: unknown option(s) {', '.join(unknown)}; allowed: "
                f"{', '.join(sorted(allowed))}"
            )
    opts.update({k: v for k, v in flags.items() if v is not None})
    return opts


def _names(text: str, flag: str) -> list[str]:
    """A comma-separated list given to ``flag``: non-empty, each item once."""
    items = [x.strip() for x in text.split(",")]
    if not text.strip() or any(not x for x in items):
        raise ValueError(f"{flag} {text!r}: expected a comma-separated list, e.g. a,b")
    dup = sorted({x for x in items if items.count(x) > 1})
    if dup:
        raise ValueError(f"{flag} {text!r}: {', '.join(dup)} given twice; list each once")
    return items


def _ints(text: str, flag: str) -> list[int]:
    """A comma-separated list of integers >= 0 given to ``flag``, each once."""
    items = _names(text, flag)
    bad = [x for x in items if not x.isdigit()]
    if bad:
        raise ValueError(
            f"{flag} {text!r}: {', '.join(bad)} is not an integer >= 0; e.g. {flag} 0,1,2"
        )
    return [int(x) for x in items]


def _floats(text: str, flag: str) -> list[float]:
    """A comma-separated list of finite numbers >= 0 given to ``flag``, each once."""
    out = []
    for x in _names(text, flag):
        try:
            v = float(x)
        except ValueError:
            v = -1.0
        if not 0 <= v < float("inf"):
            raise ValueError(f"{flag} {text!r}: {x} is not a finite number >= 0")
        out.append(v)
    return out


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


def _rows_table(rows: list[dict[str, Any]], title: str) -> Table:
    """Every key of the rows as a column (for results that are not run metrics)."""
    t = Table(title=title)
    for c in rows[0]:
        t.add_column(c, justify="left" if c == "method" else "right")
    for r in rows:
        t.add_row(*[_fmt(r.get(c)) for c in rows[0]])
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

    names = _names(methods, "--methods")
    for m in names:
        get_method(m)
    opts = _run_options(config, locals())
    seed_list = _ints(seeds, "--seeds") if seeds is not None else None
    if seed_list is not None and "seed" in opts:
        raise ValueError("--seed: give --seeds or --seed, not both")
    for m in names:  # every method's config is valid before anything trains
        RunConfig(task=task, **{**opts, "method": m})
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
    periphery: Annotated[
        str | None,
        typer.Option(help="comma-separated factors on the periphery costs (DAC/ADC, drivers)"),
    ] = None,
) -> None:
    """Energy and latency of a run on a technology node, by category and scope (total,
    analog, programming), and the GPU reference; --periphery varies the periphery estimate."""
    from .energy import CATEGORIES
    from .files import read_json
    from .report import plot_energy
    from .tasks import energy_figures

    path = run_dir / "energy.json"
    if not path.exists():
        raise typer.BadParameter(f"{path} does not exist; run the task first")
    factors = _floats(periphery, "--periphery") if periphery is not None else None
    acc = read_json(path)
    fig = energy_figures(acc, node, nodes)
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
    for c in (*CATEGORIES, "total", "scope_analog", "scope_programming"):
        t.add_row(c, *[f"{fig[key][c] * scale:.3g}" for key, _, scale in cols if c in fig[key]])
    console.print(t)
    if factors is not None:
        from .energy import Counts, get_node, periphery_sweep

        if not acc.get("inference_per_sample"):
            raise ValueError(f"--periphery: {run_dir} has no crossbar; nothing analog to vary")
        counts = Counts(**acc["inference_per_sample"])
        rows = periphery_sweep(counts, get_node(node, nodes), factors)
        title = "inference per sample (J) as the periphery estimate varies"
        console.print(_rows_table(rows, title))
    console.print(f"figure: {plot_energy(fig, run_dir / f'energy-{node}.png')}")


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
) -> None:
    """The paper's narrow-range comparison: EaPU at Rwg 1/40 against BP at 1/4000, quality and
    inference energy per sample, beside the paper's 19.71 µJ vs 700 µJ (35.51×)."""
    from .files import write_json
    from .narrow_range import narrow_range_comparison

    res = narrow_range_comparison(
        task=task,
        eapu_rwg_per_us=eapu_rwg,
        bp_rwg_per_us=bp_rwg,
        sd_us=sd_us,
        steps=steps,
        seed=seed,
        node=node,
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
    console.print(_rows_table(rows, f"{task}: inference per sample on {node}"))
    console.print(_rows_table(res["ratio_analog_by_periphery"], "BP / EaPU analog energy"))
    console.print(
        f"ratio BP/EaPU: total {res['ratio']:.3g}, analog {res['ratio_analog']:.3g} "
        f"(paper {res['paper']['ratio']:.4g}); periphery factor giving the paper's ratio: "
        f"{_fmt(res['periphery_factor_for_paper_ratio'])}"
    )
    if out is not None:
        write_json(out, res)


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

    rows = ret(run_dir, _floats(hours, "--hours"), drift=drift, seed=seed)
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


def _check_grid(task: str, base: dict[str, Any], grid: dict[str, Sequence[Any]]) -> None:
    """Every point of the grid makes a valid RunConfig (before any run starts)."""
    from .sweep import expand_grid
    from .tasks import RunConfig

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
            raise ValueError(f"--grid {spec!r}: expected KEY=V1,V2,...")
        key = "rwg_per_us" if key.strip() == "rwg" else key.strip()
        if key in g:
            raise ValueError(
                f"--grid {spec!r}: {key} is already swept; give all its values in one --grid"
            )
        g[key] = [_parse_value(v) for v in _names(vals, f"--grid {key}=")]
    seed_list = _ints(seeds, "--seeds")
    _check_grid(task, base, g)
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
        raise ValueError(
            f"WHAT: unknown list {what!r}; available: devices, schemes, rules, tasks, methods, "
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
    cells: Annotated[int, typer.Option(help="cells in the sweep", min=2)] = 4096,
    seed: Annotated[int, typer.Option(min=0)] = 0,
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
