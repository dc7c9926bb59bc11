"""What the commands share: option parsing (``parse_names``, ``check_positive``), the
console results are printed on (``console``: never cut to 80 columns when piped) and the
rule for errors: every error caused by the input is one line ``error: ...`` on stderr and
exit status 2 (``user_errors``).

The library names its parameters in its errors (``batch is 0; expected ...``); a command
maps them to its flags (``--batch is 0; expected ...``) with ``user_errors(flags)``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import typer

from l2o.registry import CLASSICAL

if TYPE_CHECKING:
    from rich.console import Console

#: Exit status for errors in the input or the options.
USAGE_ERROR = 2
#: Exit status of ``l2o solve`` when some instance did not reach ``--tol`` (the solution
#: is still written and printed).
NOT_CONVERGED = 3
#: Width of the console when stdout is not a terminal: wide enough that no table or line
#: is cut or wrapped (rich would use 80 columns), tables keep their natural width.
PIPE_WIDTH = 10_000


def console(stderr: bool = False) -> Console:
    """A rich console for results: no markup or highlighting (names and paths may hold
    [brackets]); the terminal's width on a terminal, else ``PIPE_WIDTH`` so that output
    piped to a file or another program is never truncated or wrapped.

    >>> console().width == PIPE_WIDTH  # doctest's stdout is not a terminal
    True
    """
    from rich.console import Console  # rich is imported by the commands that print, not by `l2o --version`

    stream = sys.stderr if stderr else sys.stdout
    tty = hasattr(stream, "isatty") and stream.isatty()
    return Console(highlight=False, markup=False, stderr=stderr, width=None if tty else PIPE_WIDTH)


def error(message: str) -> None:
    """Print ``message`` as one line ``error: ...`` on stderr."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr)


def say(message: str) -> None:
    """A progress line on stderr (stdout stays for the results and --json)."""
    print(message, file=sys.stderr, flush=True)


def name_flags(message: str, flags: Mapping[str, str]) -> str:
    """A library message that starts with a parameter name (``"batch is 0; ..."``,
    ``"baselines: unknown solver ..."``) with the name replaced by its flag."""
    for param, flag in flags.items():
        if message.startswith(param) and message[len(param):len(param) + 1] in (" ", ":"):
            return flag + message[len(param):]
    return message


@contextlib.contextmanager
def user_errors(flags: Mapping[str, str] | None = None) -> Iterator[None]:
    """Turn errors caused by the input into one line on stderr and exit status 2;
    ``flags`` maps the library's parameter names to the command's flags."""
    try:
        yield
    except (ValueError, OSError, NotImplementedError) as e:  # DataError is a ValueError
        if isinstance(e, OSError) and e.filename is not None and e.strerror:
            error(f"{e.strerror}: '{e.filename}'")
        else:
            error(name_flags(str(e), flags or {}) or type(e).__name__)
        raise typer.Exit(USAGE_ERROR) from None


def parse_names(text: str | None, option: str = "--baselines", registered: bool = True) -> list[str] | None:
    """'fista, ista' -> ['fista', 'ista'] (duplicates dropped; with ``registered`` each name
    must be a classical solver of the registry, else any name goes, e.g. a bundled name or a
    run directory for ``l2o eval --baselines``); None -> None; '' or 'none' -> [].

    >>> parse_names("fista, runs/lista,fista", registered=False), parse_names("none")
    (['fista', 'runs/lista'], [])
    """
    if text is None:
        return None
    if text.strip().lower() in ("", "none"):
        return []
    what = "solver names" if registered else "solver names, bundled names or run directories"
    names: list[str] = []
    for name in (n.strip() for n in text.split(",")):
        if not name:
            raise ValueError(f"{option} {text!r} has an empty name; expected comma-separated {what}")
        if registered and name not in CLASSICAL:
            raise ValueError(f"{option}: unknown solver {name!r}; valid solvers: {', '.join(sorted(CLASSICAL))}")
        if name not in names:
            names.append(name)
    return names


def check_positive(option: str, value: int | None) -> None:
    """``ValueError`` naming the ``option`` unless ``value`` is None or >= 1."""
    if value is not None and value < 1:
        raise ValueError(f"{option} is {value}; expected an integer >= 1")


__all__ = [
    "USAGE_ERROR", "NOT_CONVERGED", "PIPE_WIDTH", "console", "error", "say", "name_flags", "user_errors", "parse_names",
    "check_positive",
]
