"""``l2o eval`` (and ``l2o eval --ood``, inside every split: sampling, the reference optimum,
each solver, the figure) shows its phases on a terminal's stderr (issue 12 item 4) and its
--json stdout stays the same; piped (not a terminal, as under CliRunner) it shows nothing."""

from __future__ import annotations

import io
import json

from rich.console import Console
from typer.testing import CliRunner

import l2o.utils.progress as progress_module
from l2o.cli import app


def _without_times(solvers: list[dict]) -> None:
    """Drop the wall times (they differ between runs) from each solver's tolerances."""
    for s in solvers:
        for t in s["tolerances"]:
            for key in [k for k in t if k.startswith("seconds")]:
                t.pop(key)


def _piped_then_on_a_terminal(args, tmp_path, monkeypatch, width):
    """Run ``l2o ARGS`` piped, then with the progress on a (fake) terminal: ``(piped stdout,
    terminal stdout, what the terminal showed)``; both runs exit 0 and the piped one is silent."""
    plain = CliRunner().invoke(app, [*args, "--out-dir", str(tmp_path / "a")])
    assert plain.exit_code == 0, plain.output
    assert plain.stderr == ""  # not a terminal: no progress
    terminal = io.StringIO()
    monkeypatch.setattr(progress_module, "terminal_progress", lambda enabled=True, stream=None: progress_module
                        .RichProgress(Console(file=terminal, force_terminal=True, width=width), keep_after=0.0))
    shown = CliRunner().invoke(app, [*args, "--out-dir", str(tmp_path / "b")])
    assert shown.exit_code == 0, shown.output
    return plain.stdout, shown.stdout, terminal.getvalue()


def test_eval_progress_goes_to_the_terminal_and_json_stdout_is_unchanged(ls_run, tmp_path, monkeypatch):
    args = ["eval", str(ls_run), "--batch", "3", "--iterations", "4", "--baselines", "gd", "--json"]
    plain, shown, terminal = _piped_then_on_a_terminal(args, tmp_path, monkeypatch, width=120)
    for phase in ("sampling 3 instances", "reference optimum of 3 instances", "lgd: 4 iterations", "gd: 4 iterations",
                  "writing eval_convergence.png"):
        assert f"done: {phase}" in terminal
    a, b = json.loads(plain), json.loads(shown)
    a.pop("plot"), a.pop("records"), b.pop("plot"), b.pop("records")
    _without_times(a["solvers"]), _without_times(b["solvers"])
    assert a == b


def test_eval_ood_progress_goes_to_the_terminal_and_json_stdout_is_unchanged(ls_run, tmp_path, monkeypatch):
    args = ["eval", str(ls_run), "--split", "data_scale_2", "--batch", "3", "--iterations", "4", "--baselines", "gd",
            "--json"]
    plain, shown, terminal = _piped_then_on_a_terminal(args, tmp_path, monkeypatch, width=160)
    phases = ("split data_scale_2 (1/1): ", "data_scale_2: sampling 3 instances", "reference optimum of 3 instances",
              "lgd: 4 iterations on 3 instances", "safeguarded_lgd: 4 iterations", "gd: 4 iterations",
              "data_scale_2: writing data_scale_2.png")
    for phase in phases:
        assert f"done: {phase}" in terminal, phase
    a, b = json.loads(plain), json.loads(shown)
    for summary in (a, b):  # the output paths differ between the runs
        summary.pop("html")
        for split in summary["splits"]:
            split.pop("plot")
            _without_times(split["solvers"])
    assert a == b
