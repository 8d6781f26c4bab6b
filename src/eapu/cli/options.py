"""Command-line options built from `eapu.experiments.FLAGS` (one option per run setting), a
``--config`` TOML file merged under the flags, and the one ``KEY=V1,V2,...`` parser."""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeAlias, TypeVar

import typer

from .. import validate
from ..experiments import FLAGS, Flag, list_tasks
from ..files import read_toml
from ..programming import list_schemes

__all__ = [
    "Config",
    "Json",
    "SchemeName",
    "Task",
    "choice",
    "flag_option",
    "given_by",
    "key_values",
    "merge_options",
    "parse_value",
    "registry_or_file",
    "run_options",
    "with_run_options",
]

F_ = TypeVar("F_", bound=Callable[..., Any])


def merge_options(config: Path | None, **flags: Any) -> dict[str, Any]:
    """Merge a TOML file with the flags actually given (not None)."""
    opts: dict[str, Any] = {}
    if config is not None:
        try:
            opts.update(read_toml(config, what="--config file"))
        except OSError as e:
            raise ValueError(f"--config {config}: {e.strerror or e}") from None
        allowed = {f.field for f in FLAGS}
        unknown = sorted(set(opts) - allowed)
        if unknown:
            raise ValueError(
                f"--config {config}: unknown option(s) {', '.join(unknown)}; allowed: "
                f"{', '.join(sorted(allowed))}"
            )
    opts.update({k: v for k, v in flags.items() if v is not None})
    return opts


# --------------------------------------------------------------------------- run options
def registry_or_file(flag: Flag) -> Callable[[str], str]:
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
            f"choose from {', '.join(_families(names, flag.name.lstrip('-')))}"
        )

    return parse


def _families(names: list[str], kind: str) -> list[str]:
    """``names`` with every family of four or more sharing a prefix (``aihwkit_*``) said
    once, so that the list of choices stays one short message."""
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(n.split("_", 1)[0] + "_" if "_" in n else n, []).append(n)
    out = []
    for prefix, members in groups.items():
        if len(members) >= 4:
            out.append(f"{prefix}* ({len(members)}: eapu list {kind}s '{prefix}*')")
        else:
            out.extend(members)
    return out


def flag_option(flag: Flag) -> inspect.Parameter:
    """The typer parameter of one `Flag` (default None: the config's default applies)."""
    typ: Any = flag.type
    extra: dict[str, Any] = {}
    if flag.choices is not None and flag.path_suffix is not None:
        names = flag.choices()
        extra = {
            "parser": registry_or_file(flag),
            "metavar": "[" + "|".join([*names, "FILE" + flag.path_suffix]) + "]",
        }
    elif flag.choices is not None:
        typ = choice(flag.choices())
    option = typer.Option(flag.name, help=flag.describe(), **extra)
    return inspect.Parameter(
        flag.field,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[typ | None, option],
    )


def with_run_options(*, exclude: tuple[str, ...] = ()) -> Callable[[F_], F_]:
    """Give a command one option per row of `FLAGS` (but ``exclude``), after its own
    parameters; the command receives them in ``**options`` (None where not given)."""

    def deco(fn: F_) -> F_:
        hints = typing.get_type_hints(fn, include_extras=True)
        own = [
            p.replace(annotation=hints[p.name])
            for p in inspect.signature(fn).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        taken = {p.name for p in own}
        params = own + [flag_option(f) for f in FLAGS if f.field not in taken | set(exclude)]
        fn.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        fn.__annotations__ = {p.name: p.annotation for p in params}
        return fn

    return deco


def run_options(config: Path | None, given: dict[str, Any]) -> dict[str, Any]:
    """The RunConfig options of a command: its TOML file, then the flags it was given."""
    fields = {f.field for f in FLAGS}
    return merge_options(config, **{k: v for k, v in given.items() if k in fields})


def choice(names: Sequence[str]) -> Any:
    """The type of a parameter that takes one of ``names`` (rejected otherwise, listed in
    ``--help``): a ``Literal`` built at run time, which typer turns into a choice."""
    return Literal[tuple(names)]


if typing.TYPE_CHECKING:  # the choices are known at run time only
    Task: TypeAlias = str
    SchemeName: TypeAlias = str
else:
    Task = Annotated[
        choice(list_tasks()), typer.Argument(help="the task (eapu list tasks)", show_default=False)
    ]
    SchemeName = choice(list_schemes())
Config: TypeAlias = Annotated[Path | None, typer.Option(help="TOML file of options")]
Json: TypeAlias = Annotated[
    bool, typer.Option("--json", help="print the results as JSON on stdout (nothing else)")
]


def parse_value(text: str) -> Any:
    """A grid value: None, an int, a float, or the string itself."""
    if text.lower() == "none":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def key_values(flag: str, spec: str, allowed: Sequence[str] | None = None) -> tuple[str, list[Any]]:
    """``KEY=V1,V2,...`` of option ``flag`` as (key, parsed values); ``rwg`` means
    ``rwg_per_us``. A spec without ``=``, without a key or values, or (``allowed`` given)
    with a key not in ``allowed`` is refused, naming the flag and the keys it takes."""
    key, eq, vals = spec.partition("=")
    key = "rwg_per_us" if key.strip() == "rwg" else key.strip()
    if not eq or not vals.strip():
        raise ValueError(
            f"{flag} {validate.shown(spec)}: expected KEY=V1,V2,..., e.g. lr=1e-3,1e-2"
        )
    if not key or (allowed is not None and key not in allowed):
        what = "no key" if not key else f"{validate.shown(key)} is not one"
        keys = ", ".join(allowed) if allowed is not None else "an option's name"
        raise ValueError(
            f"{flag} {validate.shown(spec)}: {what} of the options it varies; allowed: {keys}"
        )
    return key, [parse_value(v) for v in validate.name_list(f"{flag} {key}=", vals)]


def given_by(field: str, flags: dict[str, Any]) -> str:
    """Where a run option came from, for messages: its flag (``--lr``) if ``flags`` has it,
    else the ``--config`` file."""
    flag = next((f.name for f in FLAGS if f.field == field), "--" + field)
    return flag if flags.get(field) is not None else f"{field} in the --config file"
