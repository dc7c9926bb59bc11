"""``l2o eval``: a trained run against classical and learned baselines, and with ``--ood`` /
``--split`` the robustness report, on tiny trained runs (fixtures in conftest.py)."""

from __future__ import annotations

import json
import os

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

# ----- --ood / --split: the robustness report -----------------------------------------------------

def test_ood_report_every_split_json_html_and_figures(math_run, tmp_path):
    res = invoke("eval", math_run, "--ood", "--batch", 4, "--json", "--out-dir", tmp_path, "--baselines", "ista")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    names = [s["split"] for s in out["splits"]]
    assert names[0] == "id" and "x0_-100" in names and "dim_5x10" in names and "lam_0.05" in names
    assert out["fallback"] == "fista_restart" and out["iterations"] == 50
    html = (tmp_path / "ood" / "report.html").read_text()
    for split in out["splits"]:
        solvers = {s["name"]: s for s in split["solvers"]}
        assert list(solvers) == ["go_math_l2o", "safeguarded_go_math_l2o", "ista", "fista_restart"]
        rate = solvers["safeguarded_go_math_l2o"]["fallback_rate"]
        assert 0.0 <= rate <= 1.0 and solvers["ista"]["fallback_rate"] is None
        assert [t["tol"] for t in solvers["ista"]["tolerances"]] == [1e-4, 1e-6]
        assert (tmp_path / "ood" / f"{split['split']}.png").stat().st_size > 1000
        assert f"id='{split['split']}'" in html and f"src='{split['split']}.png'" in html

def test_split_option_table_and_skipped_solver(alista_run, tmp_path):
    """ALISTA is tied to its 10 x 20 dictionary: on dim_5x10 it is listed as not run."""
    res = invoke("eval", alista_run, "--split", "id", "--split", "dim_5x10", "--batch", 3, "--out-dir", tmp_path,
                 "--baselines", "fista", "--rule", "residual")
    assert res.exit_code == 0, res.output
    assert "split dim_5x10" in res.output and "report.html" in res.output
    html = (tmp_path / "ood" / "report.html").read_text()
    assert "not run: " in html and "alista" in html
    res = invoke("eval", alista_run, "--split", "dim_5x10", "--batch", 3, "--out-dir", tmp_path, "--json",
                 "--baselines", "fista")
    split = json.loads(res.stdout)["splits"][0]
    assert set(split["skipped"]) == {"alista", "safeguarded_alista"}
    assert [s["name"] for s in split["solvers"]] == ["fista", "fista_restart"]

@pytest.mark.parametrize(
    "args, message",
    [
        (["--split", "x0_+7"], "unknown split 'x0_+7' for family 'lasso'; valid splits: id, x0_+10"),
        (["--ood", "--rule", "magic"], "unknown safeguard rule 'magic'"),
        (["--ood", "--fallback", "nope"], "--fallback: unknown solver 'nope'"),
        (["--ood", "--check-every", "0"], "--check-every is 0; expected an integer >= 1"),
        (["--ood", "--batch", "0"], "--batch"),
    ],
)
def test_bad_ood_options_are_one_line_errors(alista_run, tmp_path, args, message):
    res = invoke("eval", alista_run, *args, "--out-dir", tmp_path)
    assert res.exit_code == 2
    assert message in res.output and "Traceback" not in res.output

def test_config_evaluation_table_sets_the_default_splits(tmp_path):
    out = tmp_path / "run"
    training.train(training.RunConfig.from_dict({
        "problem": {"family": "lasso", "m": 10, "n": 20, "nnz": 3},
        "solver": {"name": "alista", "horizon": 3},
        "training": {"steps": 1, "batch_size": 2, "unroll": 3, "val_batch": 2, "val_every": 1, "checkpoint_every": 0},
        "evaluation": {"splits": ["x0_-10", "lam_0.2"], "rule": "residual", "batch": 3, "fallback": "ista"},
    }), out)
    assert "[evaluation]" in (out / "config.toml").read_text()
    res = invoke("eval", out, "--ood", "--json", "--baselines", "none", "--out-dir", tmp_path)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert [s["split"] for s in summary["splits"]] == ["x0_-10", "lam_0.2"]
    assert (summary["rule"], summary["batch"], summary["fallback"]) == ("residual", 3, "ista")
