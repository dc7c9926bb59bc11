"""``l2o demo``: the quick classical path, a two-step training run and its reuse."""

from __future__ import annotations

import json

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

def test_demo_json():
    res = invoke("demo", "--json", "--no-train", "--batch", "8", "--iterations", "200")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["problem"] == "lasso_250x500" and out["batch"] == 8
    assert [s["name"] for s in out["solvers"]] == ["ista", "fista", "fista_restart", "adam"]
    for s in out["solvers"]:
        assert s["learned"] is False
        assert [t["tol"] for t in s["tolerances"]] == [1e-2, 1e-4, 1e-6]
        for t in s["tolerances"]:
            for key in ("iterations_median", "iterations_p90", "seconds_median", "seconds_p90"):
                assert t[key] is None or (isinstance(t[key], (int, float)) and t[key] >= 0)
    fista = {t["tol"]: t for t in out["solvers"][2]["tolerances"]}
    assert fista[1e-2]["iterations_median"] is not None  # restarted FISTA reaches 1e-2 in 200 iterations

def test_demo_table_and_bad_option():
    res = invoke("demo", "--batch", "4", "--iterations", "30", "--problem", "qp_100")
    assert res.exit_code == 0, res.output
    assert "fista_restart" in res.stdout and "1e-6" in res.stdout
    res = invoke("demo", "--problem", "nope")
    assert res.exit_code == 2 and res.stderr.startswith("error: unknown preset 'nope'")
    res = invoke("demo", "--batch", "0")
    assert res.exit_code == 2 and res.stderr.strip() == "error: --batch is 0; expected an integer >= 1"
