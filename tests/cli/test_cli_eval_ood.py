"""``l2o eval --ood / --split``: the robustness report on tiny trained runs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from l2o.cli import app

training = pytest.importorskip("l2o.training")
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def math_run(tmp_path_factory):
    """GO-Math-L2O (horizon 5, 2 meta-steps) on a 10 x 20 LASSO: dimension-agnostic."""
    out = tmp_path_factory.mktemp("runs") / "go"
    training.train(training.RunConfig.from_dict({
        "problem": {"family": "lasso", "m": 10, "n": 20, "nnz": 3},
        "solver": {"name": "go_math_l2o", "horizon": 5, "hidden": 4},
        "training": {"steps": 2, "batch_size": 4, "unroll": 5, "segment": 5, "val_batch": 4, "val_every": 1,
                     "checkpoint_every": 0},
    }), out)
    return out


@pytest.fixture(scope="module")
def alista_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "alista"
    training.train(training.RunConfig.from_dict({
        "problem": {"family": "lasso", "m": 10, "n": 20, "nnz": 3},
        "solver": {"name": "alista", "horizon": 4},
        "training": {"steps": 2, "batch_size": 4, "unroll": 4, "val_batch": 4, "val_every": 1, "checkpoint_every": 0},
    }), out)
    return out


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


@pytest.mark.parametrize(
    "table, message",
    [
        ({"splits": ["x0_+7"]}, "[evaluation] splits: unknown split 'x0_+7'"),
        ({"split": ["id"]}, "unknown key(s) 'split' in [evaluation]; valid keys: batch, check_every, fallback, rule, splits"),
        ({"rule": "magic"}, "[evaluation] rule = 'magic'"),
        ({"fallback": "nope"}, "[evaluation] fallback = 'nope' is not a solver"),
        ({"splits": "id"}, "expected an array of split names"),
    ],
)
def test_bad_evaluation_table(table, message):
    with pytest.raises(ValueError) as e:
        training.RunConfig.from_dict({"problem": {"family": "lasso_250x500"}, "solver": {"name": "alista"},
                                      "evaluation": table})
    assert message in str(e.value)
