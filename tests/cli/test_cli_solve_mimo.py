"""``l2o solve --problem mimo``: channels from a file, WMMSE by default, precoders out."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import l2o
from l2o.cli import app
from l2o.problems import MimoFamily

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def channels():
    p = MimoFamily(cells=2, users=2, tx_antennas=4, rx_antennas=2, streams=1, power=5.0).sample(3, 4)
    return p, p.H.numpy()


def test_batch_from_npz_matches_wmmse_and_writes_precoders(channels, tmp_path):
    p, H = channels
    np.savez(tmp_path / "h.npz", H=H, streams=1, power=5.0)
    res = invoke("solve", "-p", "mimo", "-d", tmp_path / "h.npz", "--tol", 1e-7, "--out", tmp_path / "s.npz")
    assert res.exit_code == 0, res.output
    out = np.load(tmp_path / "s.npz")
    assert out["V"].shape == (3, 2, 2, 4, 1) and out["V"].dtype == np.complex128
    assert bool(out["converged"].all())
    ref = l2o.solve(l2o.make_solver("wmmse"), p, tol=1e-7)
    np.testing.assert_allclose(out["sum_rate"], p.sum_rate(ref.x).numpy(), rtol=1e-9)
    power = (np.abs(out["V"]) ** 2).sum(axis=(2, 3, 4))
    assert (power <= 5.0 * (1 + 1e-9)).all()


def test_one_instance_json_and_per_cell_power(channels, tmp_path):
    _, H = channels
    np.savez(tmp_path / "one.npz", H=H[0], power=np.array([1.0, 3.0]), noise=0.5, weights=np.ones((2, 2)))
    res = invoke("solve", "-p", "mimo", "-d", tmp_path / "one.npz", "--json", "--tol", 1e-6)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["solver"] == "wmmse" and out["batched"] is False and out["sum_rate"] > 0
    assert len(out["x"]) == 2 * 2 * 2 * 4 * 2  # streams default min(M, N) = 2


@pytest.mark.parametrize(
    "arrays, message",
    [
        (lambda H: {"H": H[:, :, :, :1]}, "mimo key 'H' has shape (3, 2, 2, 1, 2, 4)"),
        (lambda H: {"H": H[..., :1, :], "streams": 2}, "mimo key 'streams' is 2; expected an integer in [1, min(M=4, N=1)]"),
        (lambda H: {"H": H, "streams": 3}, "mimo key 'streams' is 3; expected an integer in [1, min(M=4, N=2)]"),
        (lambda H: {"H": H, "power": -1.0}, "mimo key 'power' has the value -1; expected numbers > 0"),
        (lambda H: {"H": H, "power": np.ones(5)}, "mimo key 'power' has shape (5,); expected a scalar or (2,)"),
        (lambda H: {"H": np.where(np.arange(4) == 2, np.nan, H)}, "mimo key 'H' contains"),
        (lambda H: {"H": H, "weights": np.ones(3)}, "mimo key 'weights' has shape (3,)"),
        (lambda H: {"H": H, "lamda": 1.0}, "mimo: unknown key(s) 'lamda'"),
        (lambda H: {"H": H.astype(str)}, "mimo key 'H' holds"),
    ],
)
def test_bad_mimo_files_are_one_line_errors(channels, tmp_path, arrays, message):
    _, H = channels
    np.savez(tmp_path / "bad.npz", **arrays(H))
    res = invoke("solve", "-p", "mimo", "-d", tmp_path / "bad.npz")
    assert res.exit_code == 2
    assert message in res.output and "Traceback" not in res.output


def test_lam_is_refused_for_mimo(channels, tmp_path):
    np.savez(tmp_path / "h.npz", H=channels[1])
    res = invoke("solve", "-p", "mimo", "-d", tmp_path / "h.npz", "--lam", 0.1)
    assert res.exit_code == 2 and "--lam and --penalty apply to lasso and logistic only" in res.output
