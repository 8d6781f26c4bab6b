"""The ``eapu`` application: the command group, its error mapping (a user error is one
message and exit 2, naming the flag that fixes it), the consoles and ``--version``.

What the command line promises beyond the commands:

- A user's mistake, a missing, unreadable or malformed file, a full disk or a read-only
  file system is one message naming the flag or the path and what to do, and exit status
  2; the run directory stays as it was (every file is written atomically).
- SIGINT (Ctrl-C) and SIGTERM stop the command cleanly: the run directories keep their last
  checkpoint, one line says so, and the same command resumes them (exit 130 / 143).
- Everything the user names (devices, paths, values) is printed as text, never as rich
  markup: a ``[/x]`` or ``[link=...]`` in a name is shown as it is.
- A broken plugin is one line on stderr naming it and its package; the rest works.
"""

from __future__ import annotations

import errno
import re
import signal
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from .. import __version__
from ..experiments import FLAGS

__all__ = ["USER_ERRORS", "Terminated", "app", "console", "err_console", "user_message"]

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
#: The longest error message printed (a value in it is cut to 200 characters already).
_MAX_MESSAGE = 2000
#: What to do about a file-system error, by errno.
_OS_ADVICE = {
    errno.ENOSPC: "free some space (or give another --out) and run the same command again: "
    "what was written is intact and the run resumes from its last checkpoint",
    errno.EDQUOT: "free some of your quota (or give another --out) and run the same command "
    "again: the run resumes from its last checkpoint",
    errno.EROFS: "the file system is read-only: give a writable --out",
    errno.EACCES: "you may not write (or read) there: give a path of yours, e.g. another --out",
    errno.EPERM: "the operation is not permitted there: give a path of yours",
    errno.EEXIST: "it exists: give another path",
    errno.ENAMETOOLONG: "give a shorter path",
    errno.ELOOP: "a symbolic link there points back at itself: fix or remove it",
    errno.EIO: "the disk reported an input/output error: check it, then rerun",
}


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by the handler the command line installs."""


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
        if exc.errno in _OS_ADVICE:
            text += f"; {_OS_ADVICE[exc.errno]}"
    if len(text) > _MAX_MESSAGE:
        text = f"{text[:_MAX_MESSAGE]}... ({len(text)} characters)"
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


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says the machine ran out of memory (a size the user chose)."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc)
    return "can't allocate memory" in text or "out of memory" in text.lower()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


@contextmanager
def _sigterm_stops() -> Iterator[None]:
    """SIGTERM raises `Terminated` (a KeyboardInterrupt) for the block: the command unwinds
    as on Ctrl-C (locks released, no half-written file), instead of dying mid-step."""
    try:
        old = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


class _Group(TyperGroup):
    """The command group: a user error raised by a command is one message and exit 2;
    SIGINT and SIGTERM stop it with one line."""

    def invoke(self, ctx: Any) -> Any:
        given = list(ctx.args)  # the subcommand's arguments (invoke consumes them)
        err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
        try:
            with _sigterm_stops():
                return super().invoke(ctx)
        except (*USER_ERRORS, OSError) as exc:
            sub = ctx.invoked_subcommand
            cmd = self.get_command(ctx, sub) if sub else None
            words = [sub]
            rest = list(given)
            while cmd is not None and hasattr(cmd, "commands") and rest:  # eapu device fit
                name = rest.pop(0)
                words.append(name)
                cmd = cmd.commands.get(name)
            text = user_message(exc, _flags(cmd, given))
            err.print(f"Error: {text}", markup=False, highlight=False, soft_wrap=True)
            err.print(
                f"Try 'eapu {' '.join(map(str, words))} --help' for help.",
                markup=False,
                highlight=False,
            )
            raise typer.Exit(2) from None
        except (MemoryError, RuntimeError) as exc:
            if not _out_of_memory(exc):
                raise  # a bug: its traceback
            first = (str(exc) or type(exc).__name__).replace("\n", " ")[:300]
            err.print(
                f"Error: out of memory ({first}); give smaller sizes (--batch-size, --width, "
                "--eval-samples, --cells, ...) or use a machine with more memory",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(2) from None
        except KeyboardInterrupt as exc:
            term = isinstance(exc, Terminated)
            err.print(
                f"Interrupted by {'SIGTERM' if term else 'SIGINT'}: stopped; every run "
                "directory keeps its last checkpoint, and the same command resumes it.",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(143 if term else 130) from None


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """eapu's own warnings (a skipped plugin, ...) as one line on stderr, others as usual."""
    text = str(message)
    if issubclass(category, RuntimeWarning) and text.startswith("eapu: "):
        print(f"warning: {text[len('eapu: ') :]}", file=sys.stderr if file is None else file)
    else:
        _show_warning(message, category, filename, lineno, file, line)


_show_warning = warnings.showwarning
warnings.showwarning = _one_line_warning


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    help="In-situ training on memristor crossbars with EaPU.",
)
# Wide when writing to a file or a pipe, where rich would otherwise cut tables at 80 columns.
# Markup off: names and paths the user gives are printed as they are (a "[/x]" in a device
# name must not crash the command, nor a "[link=...]" put a hyperlink in the terminal).
console = Console(width=None if sys.stdout.isatty() else 200, markup=False)
err_console = Console(stderr=True, markup=False)


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
