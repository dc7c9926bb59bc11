"""What the commands share: option parsing (``parse_names``, ``parse_dtype_option``,
``check_positive``) and the rule for errors: every error caused by the input is one line
``error: ...`` on stderr and exit status 2 (``user_errors``).

The library names its parameters in its errors (``batch is 0; expected ...``); a command
maps them to its flags (``--batch is 0; expected ...``) with ``user_errors(flags)``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping

import torch
import typer

from l2o.registry import CLASSICAL
from l2o.training.config import DTYPES, torch_dtype

#: Exit status for errors in the input or the options.
USAGE_ERROR = 2


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


def parse_names(text: str | None, option: str = "--baselines") -> list[str] | None:
    """'fista, ista' -> ['fista', 'ista'] (checked against the solver registry, duplicates
    dropped); None -> None; '' or 'none' -> []."""
    if text is None:
        return None
    if text.strip().lower() in ("", "none"):
        return []
    names: list[str] = []
    for name in (n.strip() for n in text.split(",")):
        if not name:
            raise ValueError(f"{option} {text!r} has an empty name; expected comma-separated solver names")
        if name not in CLASSICAL:
            raise ValueError(f"{option}: unknown solver {name!r}; valid solvers: {', '.join(sorted(CLASSICAL))}")
        if name not in names:
            names.append(name)
    return names


def check_positive(option: str, value: int | None) -> None:
    """``ValueError`` naming the ``option`` unless ``value`` is None or >= 1."""
    if value is not None and value < 1:
        raise ValueError(f"{option} is {value}; expected an integer >= 1")


def parse_dtype_option(name: str | None, option: str = "--dtype") -> torch.dtype | None:
    """A ``--dtype`` value ("float32" / "float64" / None) as a torch dtype."""
    if name is None:
        return None
    if name not in DTYPES:
        raise ValueError(f"{option} is {name!r}; expected 'float32' or 'float64'")
    return torch_dtype(name)


__all__ = [
    "USAGE_ERROR", "error", "say", "name_flags", "user_errors", "parse_names", "check_positive", "parse_dtype_option",
]
