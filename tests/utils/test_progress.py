"""``l2o.utils.progress``: phases shown on a terminal's stderr, nothing otherwise."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from l2o.utils.progress import Progress, RichProgress, as_progress, terminal_progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_default_is_silent():
    with Progress().phase("nothing", total=2) as advance:
        advance()
        advance(1)
    assert not Progress().enabled and not as_progress(None).enabled and not as_progress(False).enabled


def test_terminal_progress_only_on_a_terminal():
    assert isinstance(terminal_progress(stream=Terminal()), RichProgress)
    assert type(terminal_progress(stream=io.StringIO())) is Progress  # a pipe or a file: silent
    assert type(terminal_progress(enabled=False, stream=Terminal())) is Progress
    mine = RichProgress(Console(file=io.StringIO()))
    assert as_progress(mine) is mine


def test_rich_phases_go_to_their_console_and_long_ones_leave_a_line(capsys):
    buf = io.StringIO()
    shown = RichProgress(Console(file=buf, force_terminal=True, width=100), keep_after=0.0)
    with shown.phase("reference optimum of 8 instances"):
        with shown.phase("inner", total=3) as advance:  # nested: shares the outer display
            advance(3)
    assert "done: reference optimum of 8 instances (" in buf.getvalue() and "done: inner (" in buf.getvalue()
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # nothing on the process's stdout or stderr
    quiet = io.StringIO()
    short = RichProgress(Console(file=quiet, force_terminal=True, width=100), keep_after=60.0)
    with short.phase("quick"):
        pass
    assert "done:" not in quiet.getvalue()  # a short phase leaves nothing behind


def test_a_failing_phase_closes_the_display():
    buf = io.StringIO()
    shown = RichProgress(Console(file=buf, force_terminal=True), keep_after=0.0)
    with pytest.raises(RuntimeError), shown.phase("boom"):
        raise RuntimeError("x")
    with shown.phase("next"):  # a new display starts: the failed one was stopped
        pass
    assert "done: next" in buf.getvalue()
