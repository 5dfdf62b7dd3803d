"""Messages on stderr, and the mapping from WitsKit errors to exit statuses.

Data goes to stdout; everything addressed to the person at the terminal (errors, warnings, the
progress bar, summaries) goes to stderr. rich is imported only when a message is printed, so the
fast paths of ``decode`` and ``simulate`` never pay for it.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import typer

from witskit.errors import ConfigError, ConversionError, SymbolError, UsageError, WitsKitError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from rich.console import Console

__all__ = [
    "EXIT_PROBLEMS",
    "EXIT_USAGE",
    "error",
    "exit_status",
    "handle_errors",
    "info",
    "stderr_console",
    "stderr_is_terminal",
    "warn",
]

#: Exit status when the input had problems (strict mode, validate) or nothing could be decoded.
EXIT_PROBLEMS = 1
#: Exit status for usage problems: bad options, a missing file, an unknown unit or time zone.
EXIT_USAGE = 2

_P = ParamSpec("_P")
_R = TypeVar("_R")


def stderr_console() -> Console:
    """A rich console on the *current* stderr (tests swap sys.stderr), never wrapping messages."""
    from rich.console import Console

    return Console(file=sys.stderr, soft_wrap=True, highlight=False)


def stderr_is_terminal() -> bool:
    """True when stderr is an interactive terminal (progress bars only make sense there)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _say(style: str, label: str, message: str) -> None:
    from rich.markup import escape

    stderr_console().print(f"[{style}]{label}[/] {escape(message)}")


def error(message: str) -> None:
    """One red ``error:`` line on stderr."""
    _say("bold red", "error:", message)


def warn(message: str) -> None:
    """One yellow ``warning:`` line on stderr."""
    _say("yellow", "warning:", message)


def info(message: str) -> None:
    """One plain line on stderr."""
    from rich.markup import escape

    stderr_console().print(escape(message))


def exit_status(exc: WitsKitError) -> int:
    """2 for the caller's mistakes (usage, settings, unknown units, bad overlays), 1 for bad input data."""
    if isinstance(exc, UsageError | ConfigError | ConversionError | SymbolError):
        return EXIT_USAGE
    return EXIT_PROBLEMS


def handle_errors(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorate a command: a :class:`WitsKitError` becomes one red line and an exit status.

    Anything else (a bug) keeps its traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return func(*args, **kwargs)
        except WitsKitError as exc:
            error(str(exc))
            raise typer.Exit(exit_status(exc)) from None

    return wrapper
