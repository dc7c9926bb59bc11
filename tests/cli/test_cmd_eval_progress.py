"""``l2o eval`` shows its phases on a terminal's stderr (issue 12 item 4) and its --json stdout
stays the same; piped (not a terminal, as under CliRunner) it shows nothing."""

from __future__ import annotations

import io
import json

from rich.console import Console
from typer.testing import CliRunner

import l2o.utils.progress as progress_module
from l2o.cli import app


def _without_times(summary: dict) -> dict:
    for s in summary["solvers"]:
        for t in s["tolerances"]:
            t.pop("seconds_median"), t.pop("seconds_p90")
    return summary


def test_eval_progress_goes_to_the_terminal_and_json_stdout_is_unchanged(ls_run, tmp_path, monkeypatch):
    args = ["eval", str(ls_run), "--batch", "3", "--iterations", "4", "--baselines", "gd", "--json"]
    plain = CliRunner().invoke(app, [*args, "--out-dir", str(tmp_path / "a")])
    assert plain.exit_code == 0, plain.output
    assert plain.stderr == ""  # not a terminal: no progress
    terminal = io.StringIO()
    monkeypatch.setattr(progress_module, "terminal_progress", lambda enabled=True, stream=None: progress_module
                        .RichProgress(Console(file=terminal, force_terminal=True, width=120), keep_after=0.0))
    shown = CliRunner().invoke(app, [*args, "--out-dir", str(tmp_path / "b")])
    assert shown.exit_code == 0, shown.output
    for phase in ("sampling 3 instances", "reference optimum of 3 instances", "lgd: 4 iterations", "gd: 4 iterations",
                  "writing eval_convergence.png"):
        assert f"done: {phase}" in terminal.getvalue()
    a, b = json.loads(plain.stdout), json.loads(shown.stdout)
    a.pop("plot"), a.pop("records"), b.pop("plot"), b.pop("records")
    assert _without_times(a) == _without_times(b)
