"""``l2o solve --checkpoint`` on a trained MIMO run (issue 12 item 2), data unlike the training
instances, and the closed-form precoders (issue 12 item 7)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import l2o
from l2o.cli import app

training = pytest.importorskip("l2o.training", reason="the meta-training engine (l2o.training) is not available")

#: A small MIMO family: 2 cells x 2 users, M = 4, N = 2, d = 1.
MIMO = {"cells": 2, "users": 2, "tx_antennas": 4, "rx_antennas": 2, "streams": 1}


@pytest.fixture(scope="module")
def gnn_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "gnn"
    training.train(training.RunConfig.from_dict({
        "problem": {"family": "mimo", **MIMO},
        "solver": {"name": "gnn_wmmse", "horizon": 2, "hidden": 8},
        "training": {"steps": 2, "batch_size": 8, "unroll": 2, "loss": "weighted", "val_batch": 0,
                     "checkpoint_every": 0, "gradient_checkpointing": False},
    }), out)
    return out


def channels(path, batch=2, seed=3, **changes):
    p = l2o.make_family("mimo", **{**MIMO, **changes}).sample(batch, seed)
    np.savez(path, H=p.H.numpy(), streams=p.streams, power=10.0, noise=1.0)
    return path


def test_solve_with_a_trained_mimo_run_works_like_problem_mimo(gnn_run, tmp_path):
    data = channels(tmp_path / "mimo.npz")
    runner = CliRunner()
    learned = runner.invoke(app, ["solve", "--checkpoint", str(gnn_run), "--data", str(data), "--tol", "1e-5",
                                  "--json", "--out", str(tmp_path / "learned.npz")])
    assert learned.exit_code == 0, learned.output
    classical = runner.invoke(app, ["solve", "-p", "mimo", "--data", str(data), "--tol", "1e-5", "--json",
                                    "--out", str(tmp_path / "wmmse.npz")])
    assert classical.exit_code == 0, classical.output
    a, b = json.loads(learned.stdout), json.loads(classical.stdout)
    assert a["problem"] == b["problem"] == "mimo" and a["solver"] == "gnn_wmmse" and b["solver"] == "wmmse"
    assert set(a) == set(b) | {"checkpoint"} and a["converged"] == b["converged"] == [True, True]
    assert "warning" not in learned.stderr
    assert np.allclose(a["sum_rate"], b["sum_rate"], rtol=0.05)  # WMMSE stationary points of the same channels
    with np.load(tmp_path / "learned.npz") as f, np.load(tmp_path / "wmmse.npz") as g:
        assert set(f.files) == set(g.files) and f["V"].shape == g["V"].shape and np.iscomplexobj(f["V"])


def test_solve_with_a_trained_run_on_other_dimensions_warns_on_one_line(gnn_run, tmp_path):
    data = channels(tmp_path / "users3.npz", users=3)
    res = CliRunner().invoke(app, ["solve", "--checkpoint", str(gnn_run), "--data", str(data), "--tol", "1e-3",
                                   "--json"])
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("warning:")]
    assert len(lines) == 1 and "trained on mimo instances of dimension n = 32; this data has n = 48" in lines[0]
    assert "TrainingMismatchWarning" not in res.stderr
    json.loads(res.stdout)  # stdout stays the JSON summary


@pytest.mark.parametrize("solver", ["mrt", "zf", "rzf"])
def test_closed_form_precoders_take_one_step_and_do_not_warn(solver, tmp_path):
    data = channels(tmp_path / "mimo.npz")
    res = CliRunner().invoke(app, ["solve", "-p", "mimo", "--data", str(data), "--solver", solver, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["iterations"] == [1, 1] and out["converged"] == [True, True] and "warning" not in res.stderr
    text = CliRunner().invoke(app, ["solve", "-p", "mimo", "--data", str(data), "--solver", solver])
    assert "closed form: one step" in text.stdout and "warning" not in text.stderr
