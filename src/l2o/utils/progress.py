"""Progress of the long phases of a command (reference optima, each solver of a comparison).

Library functions take an optional ``progress`` (a ``Progress``) and wrap each phase that
may take more than a moment in ``with progress.phase("what", total=None) as advance:``;
the default, ``Progress()``, reports nothing. The command line passes
``terminal_progress()``: a ``RichProgress`` on stderr when stderr is a terminal, else the
silent ``Progress()``, so that piped output, logs and ``--json`` on stdout never see it.

``RichProgress`` shows one line per phase while it runs (a spinner, the description, a bar
when the total is known, the elapsed time) and, once it ends, leaves a line
``done: <what> (<seconds> s)`` for phases that took at least ``keep_after`` seconds (2 s);
shorter ones vanish. Nested phases share the display of the outer one.

>>> with Progress().phase("reference optimum", total=3) as advance:
...     advance(1)
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

#: A phase that lasts at least this many seconds leaves a ``done:`` line on the display.
KEEP_AFTER = 2.0


def _ignore(steps: float = 1) -> None:
    """The ``advance`` of a silent phase."""


class Progress:
    """Reports the phases of a long computation; this base class reports nothing.

    ``phase(description, total=None)`` is a context manager that yields ``advance(steps=1)``,
    to be called as work of a known ``total`` gets done (optional)."""

    #: Whether anything is shown.
    enabled = False

    @contextlib.contextmanager
    def phase(self, description: str, total: float | None = None) -> Iterator[Callable[[float], None]]:
        yield _ignore


class RichProgress(Progress):
    """Phases on a rich display (stderr by default); see the module docstring.

    Args:
        console: a ``rich.console.Console`` (default: one on stderr).
        keep_after: phases at least this long leave a ``done:`` line (seconds).
    """

    enabled = True

    def __init__(self, console: Any = None, keep_after: float = KEEP_AFTER):
        from rich.console import Console

        self.console = console if console is not None else Console(stderr=True)
        self.keep_after = float(keep_after)
        self._live: Any = None  # the rich Progress of the outermost running phase

    def _display(self) -> Any:
        from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

        return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                        TimeElapsedColumn(), console=self.console, transient=True)

    @contextlib.contextmanager
    def phase(self, description: str, total: float | None = None) -> Iterator[Callable[[float], None]]:
        outer = self._live is None
        if outer:
            self._live = self._display()
            self._live.start()
        live = self._live
        task = live.add_task(description, total=total)
        start = time.perf_counter()
        try:
            yield lambda steps=1: live.advance(task, steps)
        finally:
            elapsed = time.perf_counter() - start
            live.remove_task(task)
            if outer:
                live.stop()
                self._live = None
            if elapsed >= self.keep_after:
                self.console.print(f"done: {description} ({elapsed:.1f} s)", markup=False, highlight=False)


def terminal_progress(enabled: bool = True, stream: TextIO | None = None) -> Progress:
    """What a command passes as ``progress``: a ``RichProgress`` on stderr when ``enabled``
    and stderr (``stream``) is a terminal, else the silent ``Progress()``.

    >>> import io
    >>> terminal_progress(stream=io.StringIO()).enabled  # not a terminal: silent
    False
    """
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if not enabled or isatty is None or not isatty():
        return Progress()
    from rich.console import Console

    return RichProgress(Console(file=stream))


def as_progress(progress: Progress | bool | None) -> Progress:
    """``progress`` as a ``Progress``: None or False -> silent, True -> ``terminal_progress()``."""
    if isinstance(progress, Progress):
        return progress
    return terminal_progress() if progress else Progress()


__all__ = ["KEEP_AFTER", "Progress", "RichProgress", "terminal_progress", "as_progress"]
