"""The ``eapu`` command: run, compare and report the paper's experiments, list what exists.

    eapu compare denoise --out runs/denoise           # all device-level methods, taox_1t1r
    eapu run sr2 --method eapu+mp --seed 1 --out runs/sr2-mp
    eapu characterize taox_1t1r --scheme memorial
    eapu list devices --json
    python -m eapu --version

Options come from flags or from a TOML file (``--config run.toml``) whose keys are the flag
names with underscores (``batch_size = 64``); flags given on the command line win. The run
options are built from one table, `eapu.experiments.FLAGS`; a name the registries do not
know is rejected by the parser, and ``--help`` lists the choices.
"""

from __future__ import annotations

import difflib
import inspect
import json
import re
import sys
import tomllib
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup

from . import __version__, validate
from .experiments import FLAGS, Flag, get_flag, list_methods, list_tasks
from .formatting import format_value
from .programming import list_schemes

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
    also = " (or {} in the --config file)" if "--config" in args else ""
    flags = {f.field: f.name + also.format(f.field) for f in FLAGS}
    for p in getattr(cmd, "params", []):
        if p.name and p.name not in flags:
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


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    help="In-situ training on memristor crossbars with EaPU.",
)
# Wide when writing to a file or a pipe, where rich would otherwise cut tables at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)
_F = TypeVar("_F", bound=Callable[..., Any])

DEVICE_METHODS = ["software", "ex-situ", "eapu+mp", "mp", "eapu+fp", "wu", "tp", "su"]


def _version(value: bool) -> None:
    if value:
        print(f"eapu {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """In-situ training on memristor crossbars with EaPU."""


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
        allowed = {f.field for f in FLAGS}
        unknown = sorted(set(opts) - allowed)
        if unknown:
            raise ValueError(
                f"--config {config}: unknown option(s) {', '.join(unknown)}; allowed: "
                f"{', '.join(sorted(allowed))}"
            )
    opts.update({k: v for k, v in flags.items() if v is not None})
    return opts


def _progress(where: Console | None = None) -> Progress:
    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=where or console,
        transient=False,
    )


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


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """The comparison's columns: the method, what tuning chose and its budget, the metrics."""
    tuned = sorted({k for r in rows for k in r if k.startswith("tuned_")})
    cols = [c for c in COLUMNS if any(c in r for r in rows)]
    cols[1:1] = [*tuned, *(["tune_budget", "tune_scores"] if tuned else [])]
    return cols


def _cell(r: dict[str, Any], c: str) -> str:
    """One value of a comparison row: mean ± SD over seeds, validation scores as v: score."""
    return format_value(r.get(c)) + (f" ± {format_value(r[c + '_sd'])}" if c + "_sd" in r else "")


def _table(rows: list[dict[str, Any]], title: str) -> Table:
    cols = _columns(rows)
    t = Table(title=title)
    for c in cols:
        t.add_column(c, justify="left" if c == "method" else "right")
    for r in rows:
        t.add_row(*[_cell(r, c) for c in cols])
    return t


def _rows_table(rows: list[dict[str, Any]], title: str) -> Table:
    """Every key of the rows as a column (for results that are not run metrics)."""
    t = Table(title=title)
    for c in rows[0]:
        t.add_column(c, justify="left" if c == "method" else "right")
    for r in rows:
        t.add_row(*[format_value(r.get(c)) for c in rows[0]])
    return t


# --------------------------------------------------------------------------- run options
def _registry_or_file(flag: Flag) -> Callable[[str], str]:
    """A parser accepting a registered name or a path ending in ``flag.path_suffix``."""

    def parse(value: str) -> str:
        assert flag.choices is not None and flag.path_suffix is not None
        names = flag.choices()
        if value in names or value.endswith(flag.path_suffix):
            return value
        close = difflib.get_close_matches(value, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise typer.BadParameter(
            f"{value!r} is neither a registered name nor a *{flag.path_suffix} file; {hint}"
            f"choose from {', '.join(names)}"
        )

    return parse


def _option(flag: Flag) -> inspect.Parameter:
    """The typer parameter of one `Flag` (default None: the config's default applies)."""
    typ: Any = flag.type
    extra: dict[str, Any] = {}
    if flag.choices is not None and flag.path_suffix is not None:
        names = flag.choices()
        extra = {
            "parser": _registry_or_file(flag),
            "metavar": "[" + "|".join([*names, "FILE" + flag.path_suffix]) + "]",
        }
    elif flag.choices is not None:
        typ = _choice(flag.choices())
    option = typer.Option(flag.name, help=flag.describe(), **extra)
    return inspect.Parameter(
        flag.field,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[typ | None, option],
    )


def _with_run_options(*, exclude: tuple[str, ...] = ()) -> Callable[[_F], _F]:
    """Give a command one option per row of `FLAGS` (but ``exclude``), after its own
    parameters; the command receives them in ``**options`` (None where not given)."""

    def deco(fn: _F) -> _F:
        hints = typing.get_type_hints(fn, include_extras=True)
        own = [
            p.replace(annotation=hints[p.name])
            for p in inspect.signature(fn).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        taken = {p.name for p in own}
        params = own + [_option(f) for f in FLAGS if f.field not in taken | set(exclude)]
        fn.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        fn.__annotations__ = {p.name: p.annotation for p in params}
        return fn

    return deco


def _run_options(config: Path | None, given: dict[str, Any]) -> dict[str, Any]:
    """The RunConfig options of a command: its TOML file, then the flags it was given."""
    fields = {f.field for f in FLAGS}
    return _options(config, **{k: v for k, v in given.items() if k in fields})


def _choice(names: Sequence[str]) -> Any:
    """The type of a parameter that takes one of ``names`` (rejected otherwise, listed in
    ``--help``): a ``Literal`` built at run time, which typer turns into a choice."""
    return Literal[tuple(names)]


if typing.TYPE_CHECKING:  # the choices are known at run time only
    Task: TypeAlias = str
    SchemeName: TypeAlias = str
else:
    Task = Annotated[
        _choice(list_tasks()), typer.Argument(help="the task (eapu list tasks)", show_default=False)
    ]
    SchemeName = _choice(list_schemes())
Config: TypeAlias = Annotated[Path | None, typer.Option(help="TOML file of options")]
Json: TypeAlias = Annotated[
    bool, typer.Option("--json", help="print the results as JSON on stdout (nothing else)")
]


def _dump(obj: Any) -> None:
    """Machine-readable output: JSON on stdout, nothing else there."""
    print(json.dumps(obj, indent=2, default=str))


@app.command()
@_with_run_options()
def run(
    task: Task,
    out: Annotated[
        Path | None, typer.Option(help="run directory (default: runs/TASK-METHOD)")
    ] = None,
    config: Config = None,
    **options: Any,
) -> None:
    """Train one task with one method; write (or resume) a run directory and its report."""
    from .experiments import RunConfig
    from .experiments import run as run_task
    from .report import write_run_report

    opts = _run_options(config, options)
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
@_with_run_options(exclude=("method",))
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
    from .experiments import RunConfig
    from .experiments import compare as compare_tasks
    from .report import write_compare_report

    names = validate.name_list("--methods", methods)
    known = list_methods()
    for m in names:
        if m not in known:
            raise typer.BadParameter(
                f"unknown method {m!r}; available: {', '.join(known)}", param_hint="--methods"
            )
    opts = _run_options(config, options)
    seed_list = validate.int_list("--seeds", seeds) if seeds is not None else None
    if seed_list is not None and "seed" in opts:
        raise ValueError("--seed: give --seeds or --seed, not both")
    for m in names:  # every method's config is valid before anything trains
        RunConfig(task=task, **{**opts, "method": m})
    grid: dict[str, list[Any]] | None = None
    if tune is not None:
        key, _, vals = tune.partition("=")
        key = "rwg_per_us" if key.strip() == "rwg" else key.strip()
        if not vals:
            raise ValueError(f"--tune {tune!r}: expected KEY=V1,V2,..., e.g. lr=1e-3,1e-2")
        grid = {key: [_parse_value(v) for v in validate.name_list(f"--tune {key}=", vals)]}
        for m in names:
            for v in grid[key]:
                try:
                    RunConfig(task=task, **{**opts, "method": m, key: v})
                except (ValueError, TypeError) as e:
                    raise ValueError(f"--tune {key}={v}: {e}") from None
    runs_per_method = len(seed_list or [0]) + (len(grid[next(iter(grid))]) if grid else 0)
    total = (
        RunConfig(task=task, **{**opts, "method": names[0]}).resolved()["steps"] * runs_per_method
    )
    out = out or Path("runs") / f"{task}-compare"
    done: dict[str, int] = {}

    def advance(m: str, step: int, n: int, row: dict[str, Any]) -> None:
        done[m] = done.get(m, 0) + 1
        prog.update(bars[m], completed=done[m], info=f"loss {row['loss']:.4g}")

    with _progress(err_console if json_ else console) as prog:
        bars = {m: prog.add_task(m, total=total, info="") for m in names}
        rows = compare_tasks(task, names, out, seeds=seed_list, tune=grid, progress=advance, **opts)
    page = write_compare_report(out)
    if json_:
        _dump({"task": task, "out": str(out), "report": str(page), "rows": rows})
        return
    console.print(_table(rows, f"{task} on {opts.get('device', 'taox_1t1r')}"))
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
    from .report import write_compare_report, write_run_report

    if (run_dir / "compare.json").exists():
        page = write_compare_report(run_dir)
        doc = json.loads((run_dir / "compare.json").read_text())
        if json_:
            _dump({"report": str(page), **doc})
            return
        console.print(f"report: {page}")
        if markdown:
            print(_markdown(doc["rows"]))
    elif (run_dir / "metrics.json").exists():
        page = write_run_report(run_dir)
        if json_:
            metrics = json.loads((run_dir / "metrics.json").read_text())
            _dump({"report": str(page), "metrics": metrics})
            return
        console.print(f"report: {page}")
    else:
        raise typer.BadParameter(f"{run_dir} holds neither compare.json nor metrics.json")


def _markdown(rows: list[dict[str, Any]]) -> str:
    """The comparison table as Markdown, mean ± SD where several seeds ran."""
    cols = [c for c in _columns(rows) if c != "wall_s"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r, c) for c in cols) + " |")
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
    """Energy and latency of a run on a technology node, by category and scope.

    Scopes: total, analog (cells, DAC/ADC, programming), programming only; the GPU
    reference beside them. --periphery varies the periphery estimate.
    """
    from .energy import CATEGORIES
    from .experiments import energy_figures
    from .files import read_json
    from .report import plot_energy

    path = run_dir / "energy.json"
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
    runs: Annotated[
        Path | None,
        typer.Option(help="directory of the two run directories (default: runs/TASK-narrow-range)"),
    ] = None,
) -> None:
    """The paper's narrow-range comparison: EaPU at Rwg 1/40 against BP at 1/4000.

    Quality and inference energy per sample, beside the paper's 19.71 µJ vs 700 µJ (35.51×).
    The two trainings are run directories RUNS/eapu and RUNS/bp (resumed when rerun).
    """
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
    console.print(_rows_table(rows, f"{task}: inference per sample on {node}"))
    console.print(_rows_table(res["ratio_analog_by_periphery"], "BP / EaPU analog energy"))
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

    from .experiments import retention as ret
    from .files import atomic_write

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
    from .experiments import RunConfig
    from .sweep import expand_grid

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
@_with_run_options(exclude=("seed",))
def sweep(
    task: Task,
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
    from . import sweep as sw

    base = _run_options(config, options)
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
        g[key] = [_parse_value(v) for v in validate.name_list(f"--grid {key}=", vals)]
    seed_list = validate.int_list("--seeds", seeds)
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


def _registries() -> dict[str, Any]:
    """What ``eapu list`` lists: one registry per kind of named thing."""
    from .algorithms import ALGORITHMS
    from .data import DATASETS
    from .devices import DEVICES
    from .experiments import METHODS, TASKS
    from .models import MODELS
    from .programming import SCHEMES
    from .rules import RULES

    return {
        "devices": DEVICES,
        "schemes": SCHEMES,
        "rules": RULES,
        "tasks": TASKS,
        "methods": METHODS,
        "models": MODELS,
        "datasets": DATASETS,
        "algorithms": ALGORITHMS,
    }


@app.command("list")
def list_(
    what: Annotated[
        Literal[
            "devices", "schemes", "rules", "tasks", "methods", "models", "datasets", "algorithms"
        ],
        typer.Argument(help="what to list"),
    ],
    pattern: Annotated[str, typer.Argument(help="shell-style pattern of names")] = "*",
    json_: Json = False,
) -> None:
    """List what is registered (built in, or added by installed packages)."""
    reg = _registries()[what]
    table = [(n, reg.description(n)) for n in reg.names(pattern)]
    if json_:
        _dump([{"name": n, "description": d} for n, d in table])
        return
    t = Table(title=what)
    t.add_column("name")
    t.add_column("description")
    for name, desc in table:
        t.add_row(name, desc)
    console.print(t)


@app.command()
def characterize(
    device: Annotated[
        str,
        typer.Argument(
            help="device preset (eapu list devices) or a device file *.toml",
            parser=_registry_or_file(get_flag("device")),
            metavar="DEVICE",
        ),
    ],
    scheme: Annotated[
        SchemeName | None,
        typer.Option(help="programming scheme (default: the device's verified one)"),
    ] = None,
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
