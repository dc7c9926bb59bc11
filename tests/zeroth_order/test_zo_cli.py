"""``l2o solve --solver zo_gd``: a registered solver from the command line, checked against numpy."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from l2o.cli import app

runner = CliRunner()


def test_solve_qp_with_zo_gd_matches_numpy(tmp_path):
    rng = np.random.default_rng(0)
    n = 6
    M = rng.standard_normal((n, n))
    Q = M @ M.T / n + 0.5 * np.eye(n)
    q = rng.standard_normal((3, n))
    np.savez(tmp_path / "qp.npz", Q=Q, q=q)
    res = runner.invoke(app, ["solve", "--problem", "qp", "--data", str(tmp_path / "qp.npz"), "--solver", "zo_gd",
                              "--tol", "1e-7", "--iterate-dtype", "float64", "--out", str(tmp_path / "x.npz"),
                              "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["solver"] == "zo_gd" and out["converged"] == [True] * 3
    x = np.load(tmp_path / "x.npz")["x"]
    x_star = np.linalg.solve(Q, -q.T).T
    assert np.abs(x - x_star).max() <= 1e-5 * (1 + np.abs(x_star).max())


def test_zo_gd_is_listed():
    res = runner.invoke(app, ["list"])
    assert res.exit_code == 0 and "zo_gd" in res.output
