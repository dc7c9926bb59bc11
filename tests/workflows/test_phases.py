"""Issue 12 item 4: the long phases of ``l2o eval``, ``l2o demo`` and of training's set-up
(the reference optima before the progress bar) are reported to a ``Progress``; by default
nothing is shown, and on a terminal they go to stderr."""

from __future__ import annotations

import io

import pytest
import torch
from rich.console import Console

import l2o.training.trainer as trainer_module
from l2o.utils.progress import RichProgress
from l2o.workflows.demo import run_demo
from l2o.workflows.evaluate import evaluate_run

training = pytest.importorskip("l2o.training", reason="the meta-training engine (l2o.training) is not available")

CONFIG = {
    "problem": {"family": "least_squares", "d": 8, "m": 12},
    "solver": {"name": "lgd", "hidden": 16, "expansion": 10.0},
    "training": {"steps": 2, "batch_size": 8, "unroll": 5, "val_batch": 8, "val_every": 1, "checkpoint_every": 0,
                 "train_set_size": 16, "loss": "log_gap"},
}



@pytest.fixture(scope="module")
def ls_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lgd"
    training.train(training.RunConfig.from_dict(CONFIG), out)
    return out


def test_evaluate_run_reports_every_phase(ls_run, tmp_path, recording):
    rec = recording()
    evaluate_run(ls_run, baselines=["gd", "nesterov"], batch=3, iterations=4, out_dir=tmp_path, progress=rec)
    assert rec.phases == [
        "sampling 3 instances of least_squares", "reference optimum of 3 instances", "lgd: 4 iterations on 3 instances",
        "gd: 4 iterations on 3 instances", "nesterov: 4 iterations on 3 instances",
        "writing eval_convergence.png and eval_records.csv",
    ]


def test_evaluate_run_shows_the_phases_on_the_given_console_only(ls_run, tmp_path, capsys):
    buf = io.StringIO()
    shown = RichProgress(Console(file=buf, force_terminal=True, width=120), keep_after=0.0)
    quiet = evaluate_run(ls_run, baselines=["gd"], batch=3, iterations=4, out_dir=tmp_path / "a")
    loud = evaluate_run(ls_run, baselines=["gd"], batch=3, iterations=4, out_dir=tmp_path / "b", progress=shown)
    assert "done: reference optimum of 3 instances" in buf.getvalue() and "done: gd: 4 iterations" in buf.getvalue()
    assert capsys.readouterr() == ("", "")
    for a, b in zip(quiet.comparison.trajectories.values(), loud.comparison.trajectories.values()):
        assert torch.equal(a.objective, b.objective)  # the same results


def test_run_demo_reports_its_phases(recording):
    rec = recording()
    run_demo(batch=2, iterations=3, train=False, progress=rec)
    assert rec.phases[:2] == ["sampling 2 instances of lasso_250x500", "reference optimum of 2 instances"]
    assert rec.phases[2:] == [f"{s}: 3 iterations on 2 instances" for s in ("ista", "fista", "fista_restart", "adam")]


def test_training_reports_the_reference_optima_before_its_bar(tmp_path, monkeypatch, recording):
    """The set-up of training (15-40 s of references on the presets) used to show nothing."""
    rec = recording()
    monkeypatch.setattr(trainer_module, "as_progress", lambda progress: rec)
    training.train(training.RunConfig.from_dict(CONFIG), tmp_path / "run")
    assert rec.phases == ["sampling 16 training instances", "reference optima of the 16 training instances",
                          "reference optima of the 8 validation instances", "validating the untrained solver"]
