"""``l2o eval --ood`` shows the phases inside every split (sampling, the reference optimum,
each solver, the figure) on a terminal's stderr (issue 12 item 4) and its --json stdout
stays the same; piped (not a terminal, as under CliRunner) it shows nothing."""

from __future__ import annotations

import io
import json

from rich.console import Console
from typer.testing import CliRunner

import l2o.utils.progress as progress_module
from l2o.cli import app


def _without_times(summary: dict) -> dict:
    """The summary without wall times and the output paths (they differ between runs)."""
    summary.pop("html")
    for split in summary["splits"]:
        split.pop("plot")
        for s in split["solvers"]:
            for t in s["tolerances"]:
                for key in [k for k in t if k.startswith("seconds")]:
                    t.pop(key)
    return summary


def test_eval_ood_progress_goes_to_the_terminal_and_json_stdout_is_unchanged(ls_run, tmp_path, monkeypatch):
    args = ["eval", str(ls_run), "--split", "data_scale_2", "--batch", "3", "--iterations", "4", "--baselines", "gd",
            "--json"]
    plain = CliRunner().invoke(app, [*args, "--out-dir", str(tmp_path / "a")])
    assert plain.exit_code == 0, plain.output
    assert plain.stderr == ""  # not a terminal: no progress
    terminal = io.StringIO()
    monkeypatch.setattr(progress_module, "terminal_progress", lambda enabled=True, stream=None: progress_module
                        .RichProgress(Console(file=terminal, force_terminal=True, width=160), keep_after=0.0))
    shown = CliRunner().invoke(app, [*args, "--out-dir", str(tmp_path / "b")])
    assert shown.exit_code == 0, shown.output
    phases = ("split data_scale_2 (1/1): ", "data_scale_2: sampling 3 instances", "reference optimum of 3 instances",
              "lgd: 4 iterations on 3 instances", "safeguarded_lgd: 4 iterations", "gd: 4 iterations",
              "data_scale_2: writing data_scale_2.png")
    for phase in phases:
        assert f"done: {phase}" in terminal.getvalue(), phase
    assert _without_times(json.loads(plain.stdout)) == _without_times(json.loads(shown.stdout))
