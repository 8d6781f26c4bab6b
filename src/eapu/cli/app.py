"""The ``eapu`` application: the command group, its error mapping (a user error is one
message and exit 2, naming the flag that fixes it), the consoles and ``--version``."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from .. import __version__
from ..experiments import FLAGS

__all__ = ["USER_ERRORS", "app", "console", "err_console", "user_message"]

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
