"""``l2o eval --baselines`` with learned baselines: a run directory and a bundled name beside
a classical solver; a baseline that does not fit the family is one line and exit 2."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from l2o.cli import app

training = pytest.importorskip("l2o.training", reason="the meta-training engine (l2o.training) is not available")
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def other_run(tmp_path_factory):
    """A second LGD run (another training seed) on the family of conftest's ``ls_run``."""
    out = tmp_path_factory.mktemp("runs") / "lgd_b"
    training.train(training.RunConfig.from_dict({
        "problem": {"family": "least_squares", "d": 8, "m": 12},
        "solver": {"name": "lgd", "hidden": 16, "expansion": 10.0},
        "training": {"steps": 2, "batch_size": 8, "unroll": 5, "val_batch": 0, "checkpoint_every": 0, "seed": 1},
    }), out)
    return out


def test_json_lists_learned_baselines(ls_run, other_run, tmp_path):
    res = invoke("eval", ls_run, "--baselines", f"gd, {other_run}, lgd-ls_32x25", "--batch", "3", "--iterations", "6",
                 "--json", "--out-dir", tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [(s["name"], s["learned"]) for s in out["solvers"]] == [
        ("lgd", True), ("gd", False), ("lgd (lgd_b)", True), ("lgd-ls_32x25", True)]
    assert out["baselines"] == ["gd", "lgd (lgd_b)", "lgd-ls_32x25"]
    assert out["learned_baselines"] == ["lgd (lgd_b)", "lgd-ls_32x25"]
    assert set(out["iterations"].values()) == {6}
    with open(out["records"], newline="") as fh:
        learned = {r["solver"] for r in csv.DictReader(fh) if r["learned"] == "true"}
    assert learned == {"lgd", "lgd (lgd_b)", "lgd-ls_32x25"}


def test_table_marks_learned_baselines(ls_run, other_run, tmp_path):
    res = invoke("eval", ls_run, "--baselines", f"{other_run},gd", "--batch", "3", "--iterations", "4",
                 "--out-dir", tmp_path)
    assert res.exit_code == 0, res.output
    text = " ".join(res.stdout.split())
    assert "lgd (lgd_b) (learned)" in text and "gd " in text


@pytest.mark.parametrize("baseline, start", [
    ("alista-lasso_250x500", "error: --baselines: alista-lasso_250x500 (trained on lasso_250x500) does not fit "
                             "least_squares: solver 'alista' is tied to one dictionary A"),
    ("nope", "error: --baselines: unknown solver 'nope'; valid solvers: "),
    ("runs/nope", "error: --baselines: run directory 'runs/nope' does not exist"),
])
def test_misfit_or_unknown_baseline_exits_2_with_one_line(ls_run, tmp_path, baseline, start):
    res = invoke("eval", ls_run, "--baselines", f"gd,{baseline}", "--batch", "2", "--out-dir", tmp_path)
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.startswith(start) and len(res.stderr.strip().splitlines()) == 1
