"""The bundled LQN models (issue 15 item 5), one per task of the paper, used as a user would:
``l2o solve --problem logistic --penalty l2 --data FILE --checkpoint lqn-logistic_l2_100`` on
a file the user made (checked against scikit-learn), on a file of another dimension (LQN is
coordinate-wise: it runs, with one warning line), through the safeguard that ``l2o solve
--checkpoint`` wraps it in; least squares through the lasso file format (checked against
``numpy.linalg.lstsq``); log-sum-exp, which has no file format, through the Python API
(checked against Newton's method)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import l2o
from l2o.cli import app
from l2o.learned.lqn import LQN
from l2o.registry import make_solver
from l2o.safeguard import Safeguard
from l2o.workflows import checkpoint_solve

BUNDLES = {"logistic": "lqn-logistic_l2_100", "logsumexp": "lqn-logsumexp_100", "least_squares": "lqn-ls_100x200"}


@pytest.fixture(autouse=True)
def one_thread():
    """The LSTM of 100 coordinates is tiny: one torch thread (a shared machine's spinning
    threads make it 100x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def logistic_file(path, B: int, N: int, d: int, seed: int = 5):
    """A user's file (B > 1: with a batch axis): Gaussian features, labels in {-1, +1} of a sparse model with noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((B, N, d))
    w = rng.standard_normal((B, d)) * (rng.random((B, d)) < 0.1)
    y = np.sign(np.einsum("bnd,bd->bn", X, w) + 0.5 * rng.standard_normal((B, N)))
    y[y == 0] = 1.0
    np.savez(path, X=X if B > 1 else X[0], y=y if B > 1 else y[0])  # one instance: no batch axis
    return X, y


def sklearn_ridge_logistic(X, y):
    """mean log(1 + exp(-y Xw)) + (1/(2N)) ||w||^2 (lam = 1/N, the file format's default) is
    scikit-learn's C = 1 objective divided by N."""
    from sklearn.linear_model import LogisticRegression

    ws, fs = [], []
    for Xb, yb in zip(X, y):
        w = LogisticRegression(C=1.0, fit_intercept=False, tol=1e-12, max_iter=10_000).fit(Xb, yb).coef_[0]
        ws.append(w)
        fs.append(np.mean(np.logaddexp(0.0, -yb * (Xb @ w))) + 0.5 / len(yb) * w @ w)
    return np.array(ws), np.array(fs)


@pytest.fixture
def safeguards(monkeypatch):
    """The solvers ``l2o solve --checkpoint`` runs (``handover``'s results), recorded."""
    made = []

    def recording(*args, **kwargs):
        made.append(handover(*args, **kwargs))
        return made[-1]

    handover = checkpoint_solve.handover
    monkeypatch.setattr(checkpoint_solve, "handover", recording)
    return made


def test_the_issue_command_solves_a_users_logistic_file_with_the_safeguard(tmp_path, safeguards):
    X, y = logistic_file(tmp_path / "users.npz", B=2, N=200, d=100)
    tol = 1e-8
    res = invoke("solve", "--problem", "logistic", "--penalty", "l2", "--data", tmp_path / "users.npz",
                 "--checkpoint", BUNDLES["logistic"], "--tol", tol, "--json")
    assert res.exit_code == 0, res.output
    assert "warning" not in res.stderr and "error" not in res.stderr
    out = json.loads(res.stdout)
    assert out["solver"] == "lqn" and out["checkpoint"] == BUNDLES["logistic"] and out["converged"] == [True, True]
    # it ran behind the safeguard: LQN's finite steps for its 30 trained iterations, then FISTA with restart
    (guard,) = safeguards
    assert isinstance(guard, Safeguard) and isinstance(guard.learned, LQN)
    assert (guard.rule, guard.after_horizon, guard.horizon, guard.fallback.name) == (
        "finite", "fallback", 30, "fista_restart")
    w_ref, f_ref = sklearn_ridge_logistic(X, y)
    f = np.array(out["objective"])
    # the certificate is the relative duality gap: 0 <= F - F* <= tol F* (scikit-learn's own error ~1e-12)
    assert np.all(f - f_ref <= tol * f_ref + 1e-12) and np.all(f_ref - f <= 1e-10 * f_ref)
    # lam = 1/N strong convexity: ||x - x*||^2 <= 2 (F - F*) / lam
    assert np.all(np.linalg.norm(np.array(out["x"]) - w_ref, axis=1) <= np.sqrt(2 * tol * f_ref * 200) + 1e-5)


def test_a_file_of_another_dimension_runs_with_one_warning_line(tmp_path):
    X, y = logistic_file(tmp_path / "d40.npz", B=1, N=80, d=40, seed=6)
    res = invoke("solve", "-p", "logistic", "--penalty", "l2", "-d", tmp_path / "d40.npz", "-c", BUNDLES["logistic"],
                 "--json")
    assert res.exit_code == 0, res.output
    warnings = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("warning:")
    assert "dimension n = 100; this data has n = 40" in warnings[0]
    out = json.loads(res.stdout)
    _, f_ref = sklearn_ridge_logistic(X, y)
    assert out["converged"] is True and out["objective"] - f_ref[0] <= 1e-8 * f_ref[0] + 1e-12


def test_an_l1_penalty_is_refused_on_one_line(tmp_path):
    logistic_file(tmp_path / "users.npz", B=1, N=200, d=100)
    res = invoke("solve", "-p", "logistic", "--penalty", "l1", "-d", tmp_path / "users.npz", "-c", BUNDLES["logistic"])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "nonsmooth" in lines[0] and "fista" in lines[0]


def test_the_least_squares_bundle_solves_a_lasso_format_file_without_lam(tmp_path):
    rng = np.random.default_rng(7)
    W = rng.standard_normal((2, 200, 100))
    b = np.einsum("bmd,bd->bm", W, rng.standard_normal((2, 100))) + 0.1 * rng.standard_normal((2, 200))
    np.savez(tmp_path / "ls.npz", A=W, b=b)
    tol = 1e-10
    res = invoke("solve", "-p", "lasso", "-d", tmp_path / "ls.npz", "-c", BUNDLES["least_squares"], "--tol", tol,
                 "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["solver"] == "lqn" and out["converged"] == [True, True]
    x_ref = np.stack([np.linalg.lstsq(Wb, bb, rcond=None)[0] for Wb, bb in zip(W, b)])
    f_ref = 0.5 * np.sum((np.einsum("bmd,bd->bm", W, x_ref) - b) ** 2, axis=1)
    assert np.all(np.abs(np.array(out["objective"]) - f_ref) <= tol * f_ref + 1e-12)


def test_the_log_sum_exp_bundle_through_the_python_api():
    solver, family, horizon, meta = l2o.load_solver(BUNDLES["logsumexp"])
    assert (solver.name, family.name, horizon, meta["fallback"]) == ("lqn", "logsumexp", 30, "bfgs")
    problem = l2o.make_family("logsumexp_100").sample(2, 11, dtype=torch.float64)
    result = l2o.solve(Safeguard(solver, make_solver("bfgs"), rule="descent"), problem, tol=1e-10, max_iter=500)
    newton = l2o.solve(make_solver("newton"), problem, tol=1e-13, max_iter=100)
    assert bool(result.converged.all()) and bool(newton.converged.all())
    f, f_ref = result.objective, newton.objective
    assert bool(((f - f_ref).abs() <= 1e-9 * f_ref.abs()).all())
