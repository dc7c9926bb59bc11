"""End to end: ``l2o eval`` on tiny trained runs, ``l2o solve --checkpoint`` and
``l2o demo`` (the quick classical path and a two-step training run).

The runs are made once per module with ``l2o.training.train``: LGD for 3 meta-steps on
a least-squares family with d = 8, m = 12, and ALISTA with 4 layers on a 10 x 20 LASSO.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from l2o.cli import app

training = pytest.importorskip("l2o.training", reason="the meta-training engine (l2o.training) is not available")

runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"




def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def is_png(path) -> bool:
    with open(path, "rb") as fh:
        data = fh.read()
    return len(data) > 1000 and data[:8] == PNG_SIGNATURE


def _train(out, config: dict):
    training.train(training.RunConfig.from_dict(config), out)
    return out


@pytest.fixture(scope="module")
def ls_run(tmp_path_factory):
    """LGD, horizon 5, trained 3 steps on least squares (d = 8, m = 12)."""
    return _train(tmp_path_factory.mktemp("runs") / "lgd", {
        "problem": {"family": "least_squares", "d": 8, "m": 12},
        "solver": {"name": "lgd", "hidden": 16, "expansion": 10.0},
        "training": {"steps": 3, "batch_size": 8, "unroll": 5, "val_batch": 8, "val_every": 1, "checkpoint_every": 0},
    })


@pytest.fixture(scope="module")
def lasso_run(tmp_path_factory):
    """ALISTA with 4 layers, trained 3 steps on a 10 x 20 LASSO with a shared dictionary."""
    return _train(tmp_path_factory.mktemp("runs") / "alista", {
        "problem": {"family": "lasso", "m": 10, "n": 20, "nnz": 3},
        "solver": {"name": "alista", "horizon": 4},
        "training": {"steps": 3, "batch_size": 8, "unroll": 4, "val_batch": 8, "val_every": 1, "checkpoint_every": 0},
    })


# ----- l2o eval -------------------------------------------------------------------------------------


def test_eval_json_writes_plot_and_records(ls_run, tmp_path):
    res = invoke("eval", ls_run, "--batch", "6", "--json", "--out-dir", tmp_path / "out")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    names = [s["name"] for s in out["solvers"]]
    assert names == ["lgd", "gd", "nesterov", "fista_restart", "adam", "lbfgs"]
    assert [s["learned"] for s in out["solvers"]] == [True] + [False] * 5
    assert out["horizon"] == 5 and set(out["iterations"].values()) == {50}  # 10 x the horizon
    assert out["family"] == "least_squares" and out["batch"] == 6 and out["dtype"] == "float32"
    assert out["seed"] != 0  # not the training seed
    for s in out["solvers"]:
        assert [t["tol"] for t in s["tolerances"]] == [1e-2, 1e-4, 1e-6]
        for t in s["tolerances"]:
            for key in ("iterations_median", "iterations_p90", "seconds_median", "seconds_p90"):
                assert t[key] is None or t[key] >= 0
    lbfgs = out["solvers"][-1]["tolerances"]
    assert lbfgs[0]["iterations_median"] is not None  # L-BFGS reaches 1e-2 within 50 iterations
    assert is_png(out["plot"]) and out["plot"] == str(tmp_path / "out" / "eval_convergence.png")
    lines = open(out["records"]).read().splitlines()
    assert lines[0] == "solver,learned,iteration,instance,time,objective,gap,certificate"
    assert len(lines) == 1 + 6 * 51 * 6  # solvers x records 0..50 x instances
    assert sorted(os.listdir(ls_run)).count("eval_convergence.png") == 0  # --out-dir, not the run dir


def test_eval_table_into_run_dir_with_options(ls_run):
    res = invoke("eval", ls_run, "--batch", "4", "--baselines", "gd, nesterov", "--iterations", "7", "--seed", "3",
                 "--dtype", "float64")
    assert res.exit_code == 0, res.output
    assert "lgd (learned)" in res.stdout and "nesterov" in res.stdout and "lbfgs" not in res.stdout
    assert "1e-6" in res.stdout and f"wrote {ls_run / 'eval_convergence.png'}" in res.stdout.replace("\n", " ")
    assert is_png(ls_run / "eval_convergence.png") and (ls_run / "eval_records.csv").stat().st_size > 0
    res = invoke("eval", ls_run, "--batch", "4", "--baselines", "none", "--iterations", "3", "--json",
                 "--out-dir", ls_run)
    assert res.exit_code == 0, res.output
    assert [s["name"] for s in json.loads(res.stdout)["solvers"]] == ["lgd"]


def test_eval_default_baselines_for_lasso_and_mismatched_baseline(lasso_run, tmp_path):
    res = invoke("eval", lasso_run, "--batch", "4", "--json", "--out-dir", tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [s["name"] for s in out["solvers"]] == ["alista", "ista", "fista", "fista_restart", "adam"]
    assert out["iterations"]["alista"] == 40
    res = invoke("eval", lasso_run, "--baselines", "ista,gd", "--batch", "4", "--out-dir", tmp_path / "x")
    assert res.exit_code == 2 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --baselines: solver 'gd' handles smooth unconstrained")


@pytest.mark.parametrize("args, fragment", [
    (("--baselines", "nope"), "error: --baselines: unknown solver 'nope'; valid solvers:"),
    (("--batch", "0"), "error: --batch is 0; expected an integer >= 1"),
    (("--iterations", "0"), "error: --iterations is 0; expected an integer >= 1"),
    (("--dtype", "float16"), "error: --dtype is 'float16'; expected 'float32' or 'float64'"),
    (("--baselines", "lgd"), "error: --baselines: unknown solver 'lgd'"),
])
def test_eval_bad_options(ls_run, args, fragment):
    res = invoke("eval", ls_run, *args)
    assert res.exit_code == 2, res.output
    assert res.stderr.startswith(fragment) and len(res.stderr.strip().splitlines()) == 1


def test_eval_missing_or_broken_run(tmp_path):
    res = invoke("eval", tmp_path / "nope")
    assert res.exit_code == 2 and res.stderr.strip() == f"error: run directory '{tmp_path / 'nope'}' does not exist"
    res = invoke("eval", tmp_path)
    assert res.exit_code == 2 and res.stderr.startswith("error: ") and "config.toml" in res.stderr


# ----- l2o solve --checkpoint --------------------------------------------------------------------------


def test_solve_with_checkpoint_least_squares(ls_run, tmp_path):
    rng = np.random.default_rng(0)
    A, b = rng.standard_normal((3, 12, 8)), rng.standard_normal((3, 12))
    np.savez(tmp_path / "ls.npz", A=A, b=b)  # no lam: least squares
    res = invoke("solve", "--checkpoint", ls_run, "--data", tmp_path / "ls.npz", "--tol", "1e-10", "--max-iter",
                 "20000", "--json", "--out", tmp_path / "x.npz")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["solver"] == "lgd" and out["problem"] == "lasso" and out["checkpoint"] == str(ls_run)
    assert out["converged"] == [True, True, True]
    x = np.array(out["x"])
    for i in range(3):
        ref = np.linalg.lstsq(A[i], b[i], rcond=None)[0]
        np.testing.assert_allclose(x[i], ref, rtol=1e-4, atol=1e-6)
    assert np.load(tmp_path / "x.npz")["x"].shape == (3, 8)
    res = invoke("solve", "-c", ls_run, "-d", tmp_path / "ls.npz", "--max-iter", "20000")
    assert res.exit_code == 0, res.output
    assert "solver lgd" in res.stdout


def test_solve_with_checkpoint_errors(ls_run, lasso_run, tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "lam.npz", A=rng.standard_normal((12, 8)), b=rng.standard_normal(12), lam=0.5)
    cases = [
        (("--checkpoint", ls_run, "--data", tmp_path / "lam.npz"),
         "error: the checkpoint's solver cannot solve this data: solver 'lgd' handles smooth"),
        (("--checkpoint", ls_run, "--data", tmp_path / "lam.npz", "--problem", "qp"),
         "error: --problem qp does not match the checkpoint: its solver was trained on the least_squares family"),
        (("--checkpoint", ls_run, "--data", tmp_path / "lam.npz", "--solver", "fista"),
         "error: --solver and --checkpoint exclude each other"),
        (("--checkpoint", tmp_path / "nope", "--data", tmp_path / "lam.npz"),
         f"error: run directory '{tmp_path / 'nope'}' does not exist"),
        (("--checkpoint", lasso_run, "--data", tmp_path / "lam.npz"),
         "error: the checkpoint's solver cannot solve this data: solver 'alista': problem A has shape (12, 8)"),
        (("--data", tmp_path / "lam.npz"), "error: Missing option '--problem' / '-p' (or --checkpoint DIR"),
    ]
    for args, fragment in cases:
        res = invoke("solve", *args)
        assert res.exit_code == 2, (args, res.output)
        assert res.stderr.startswith(fragment), (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1


def test_solve_with_alista_checkpoint_on_its_dictionary(lasso_run, tmp_path):
    import l2o

    family = l2o.LassoFamily(m=10, n=20, nnz=3)
    inst = family.sample(2, 5)
    np.savez(tmp_path / "lasso.npz", A=family.dictionary().numpy(), b=inst.b.numpy(), lam=0.1)
    res = invoke("solve", "--checkpoint", lasso_run, "--data", tmp_path / "lasso.npz", "--max-iter", "50", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["solver"] == "alista" and out["problem"] == "lasso" and len(out["x"]) == 2
    assert all(np.isfinite(out["objective"]))


# ----- l2o demo ----------------------------------------------------------------------------------------


def test_demo_classical_fast_path(tmp_path):
    res = invoke("demo", "--json", "--no-train", "--batch", "6", "--iterations", "60")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [s["name"] for s in out["solvers"]] == ["ista", "fista", "fista_restart", "adam"]
    assert all(s["learned"] is False for s in out["solvers"])
    assert out["training"] is None and out["plot"] is None and out["records"] is None
    res = invoke("demo", "--no-train", "--batch", "3", "--iterations", "20", "--out", tmp_path / "d")
    assert res.exit_code == 0, res.output
    assert is_png(tmp_path / "d" / "convergence.png") and (tmp_path / "d" / "records.csv").exists()


def test_demo_trains_lfista_then_reuses_the_run(tmp_path):
    out_dir = tmp_path / "demo"
    args = ("demo", "--json", "--steps", "2", "--batch", "4", "--iterations", "30", "--out", out_dir)
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [s["name"] for s in out["solvers"]] == ["lfista", "ista", "fista", "fista_restart", "adam"]
    assert [s["learned"] for s in out["solvers"]] == [True, False, False, False, False]
    for s in out["solvers"]:
        assert [t["tol"] for t in s["tolerances"]] == [1e-2, 1e-4, 1e-6]
        for t in s["tolerances"]:
            assert {"iterations_median", "iterations_p90", "seconds_median", "seconds_p90"} <= set(t)
    assert out["training"]["solver"] == "lfista" and out["training"]["steps"] == 2
    assert out["training"]["reused"] is False and "training lfista" in res.stderr
    assert is_png(out_dir / "convergence.png") and (out_dir / "records.csv").exists()
    assert (out_dir / "run" / "best.safetensors").exists()
    rows = open(out_dir / "records.csv").read().splitlines()
    assert max(int(r.split(",")[2]) for r in rows[1:] if r.startswith("lfista")) == 400  # 10 x 40 iterations
    res = invoke(*args)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["training"]["reused"] is True and "reusing" in res.stderr
    res = invoke("demo", "--steps", "3", "--batch", "4", "--iterations", "30", "--out", out_dir)
    assert res.exit_code == 2 and "holds a different training run" in res.stderr


def test_demo_without_a_learned_solver_for_the_preset():
    res = invoke("demo", "--problem", "qp_100", "--batch", "3", "--iterations", "10", "--json")
    assert res.exit_code == 0, res.output
    assert "note: no built-in learned solver for qp_100" in res.stderr
    assert [s["name"] for s in json.loads(res.stdout)["solvers"]] == ["ista", "fista", "fista_restart", "adam"]
    res = invoke("demo", "--steps", "0")
    assert res.exit_code == 2 and res.stderr.strip() == "error: --steps is 0; expected an integer >= 1"


def test_the_demo_config_is_the_lfista_example():
    """The built-in config and examples/lfista_lasso.toml are one setting: a change to
    either must be made to both (the README quotes the example's figures for the demo)."""
    from l2o.commands import demo_config
    from l2o.training.config import load_config

    example = Path(__file__).resolve().parents[2] / "examples" / "lfista_lasso.toml"
    assert demo_config().to_dict() == load_config(example).to_dict()
