"""``l2o decentralized`` end to end on tiny graphs: formats, config, both backends, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from l2o.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, ["decentralized", *[str(a) for a in args]])


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    W = np.eye(4) + np.roll(np.eye(4), 1, axis=0)
    W[2, 0] = 1.0  # the authors' ring with a chord: row-stochastic only
    np.savez(tmp_path / "g.npz", W=W)
    X = rng.normal(size=(4, 15, 3))
    np.savez(tmp_path / "d.npz", X=X, y=np.where(rng.random((4, 15)) < 0.5, 1.0, -1.0))
    np.save(tmp_path / "x0.npy", np.full(3, 0.1))
    return tmp_path


def test_run_writes_the_documented_output(files):
    out = files / "out.npz"
    r = invoke("--algorithm", "pull_diag_gt", "--graph", files / "g.npz", "--data", files / "d.npz", "--lr", 0.05,
               "--iterations", 30, "--x0", files / "x0.npy", "--out", out, "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    with np.load(out) as f:
        assert f["x"].shape == (4, 3) and f["grad_norm"].shape == (31,) and f["messages"].shape == (4,)
        assert f["grad_norm"][-1] < f["grad_norm"][0]
        assert summary["grad_norm"] == pytest.approx(float(f["grad_norm"][-1]))
        assert f["bytes"].tolist() == summary["bytes"]
        # two rounds per iteration; node 0 sends to 1 and 2, the others to one node; x, the row of A^k
        # (4 entries) and then the tracker: (3 + 4 + 3) float64 per iteration
        assert f["messages"].tolist() == [120, 60, 60, 60]
        assert f["bytes"].tolist() == [120 // 2 * 80, 60 // 2 * 80, 30 * 80, 30 * 80]


def test_toml_config_with_flag_override(files):
    cfg = files / "run.toml"
    cfg.write_text('algorithm = "push_pull"\ngraph = "g.npz"\ndata = "d.npz"\nlr = 0.05\niterations = 5\n'
                   'batch = 4\nrecord-every = 5\n')
    r = invoke(cfg, "--iterations", 10, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["iterations"] == 10
    cfg.write_text('algorithm = "push_pull"\nlearning_rate = 0.1\n')
    r = invoke(cfg)
    assert r.exit_code == 2 and "unknown key 'learning_rate'" in r.stderr


def test_generated_topology_and_synthetic_data():
    r = invoke("--algorithm", "gradient_tracking", "--topology", "exponential", "--weights", "uniform", "--nodes", 4,
               "--samples", 20, "--dim", 3, "--lr", 0.1, "--iterations", 20)
    assert r.exit_code == 0, r.output
    assert "gradient_tracking on exponential (n=4" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--algorithm", "dsgd"], "not doubly stochastic"),
    (["--algorithm", "adam"], "--algorithm: unknown name 'adam'"),
    (["--algorithm", "push_pull", "--batch", "0"], "--batch is 0"),
    (["--algorithm", "push_pull", "--nodes", "5"], "--nodes is 5 but the graph has 4 nodes"),
    (["--algorithm", "push_pull", "--objective", "least_squares", "--rho", "0.1"], "rho: least_squares"),
])
def test_bad_options_exit_2_with_one_line(files, args, message):
    r = invoke("--graph", files / "g.npz", "--data", files / "d.npz", "--lr", 0.1, "--iterations", 3, *args)
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("error: ") and message in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_bad_files_exit_2_with_one_line(files):
    np.savez(files / "disconnected.npz", W=np.eye(4) + np.eye(4, k=-1))
    np.savez(files / "noloop.npz", W=np.ones((4, 4)) - np.eye(4))
    np.savez(files / "nan.npz", X=np.full((4, 2, 3), np.nan), y=np.ones((4, 2)))
    np.savez(files / "small.npz", X=np.zeros((3, 2, 3)), y=np.ones((3, 2)))
    np.savez(files / "notrow.npz", A=np.ones((4, 4)))
    cases = [
        (["--graph", files / "disconnected.npz", "--data", files / "d.npz"], "not strongly connected"),
        (["--graph", files / "noloop.npz", "--data", files / "d.npz", "--algorithm", "pull_diag_gt"],
         "node 0 has no self-loop"),
        (["--graph", files / "g.npz", "--data", files / "nan.npz"], "X holds NaN"),
        (["--graph", files / "g.npz", "--data", files / "small.npz"], "data has 3 nodes but the graph has 4"),
        (["--graph", files / "notrow.npz", "--data", files / "d.npz"], "A is not row-stochastic"),
        (["--graph", files / "missing.npz", "--data", files / "d.npz"], "No such file"),
        (["--graph", files / "d.npz", "--data", files / "d.npz"], "expected 'W' or 'A'"),
    ]
    for args, message in cases:
        full = ["--lr", 0.1, "--iterations", 3, *args]
        if "--algorithm" not in full:
            full += ["--algorithm", "push_pull"]
        r = invoke(*full)
        assert r.exit_code == 2, (message, r.output)
        assert r.stderr.startswith("error: ") and message in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_processes_backend_matches_simulated(files, tmp_path):
    base = ["--algorithm", "push_pull", "--graph", files / "g.npz", "--data", files / "d.npz", "--lr", 0.05,
            "--iterations", 15, "--batch", 5]
    r1 = invoke(*base, "--out", tmp_path / "s.npz")
    r2 = invoke(*base, "--backend", "processes", "--out", tmp_path / "p.npz")
    assert r1.exit_code == 0 and r2.exit_code == 0, r2.output
    with np.load(tmp_path / "s.npz") as s, np.load(tmp_path / "p.npz") as p:
        np.testing.assert_allclose(p["x"], s["x"], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(p["grad_norm"], s["grad_norm"], rtol=1e-12, atol=1e-12)
        assert (p["bytes"] == s["bytes"]).all()


def test_the_example_config_runs():
    example = Path(__file__).resolve().parents[2] / "examples" / "decentralized.toml"
    r = invoke(example, "--iterations", 5, "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["algorithm"] == "push_pull" and summary["nodes"] == 8 and summary["iterations"] == 5
