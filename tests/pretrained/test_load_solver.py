"""``l2o.load_solver`` (``l2o.workflows.load``): a bundled name, a bundle folder or a
training run directory, the same result; ``write_bundle`` / ``load_bundle`` rebuild the
solver of a run exactly; ``handover`` runs the fallback past the horizon; ``l2o eval``
takes a bundled name."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import l2o
from l2o.cli import app
from l2o.pretrained import RECORD, WEIGHTS, load_bundle, read_record, write_bundle
from l2o.training import RunConfig, load_run, train
from l2o.training.checkpoint import weights_of
from l2o.workflows.load import checkpoint_source, handover, load_checkpoint

runner = CliRunner()

CONFIGS = {
    "lgd": {
        "problem": {"family": "least_squares", "d": 8, "m": 12},
        "solver": {"name": "lgd", "hidden": 16, "expansion": 10.0},
        "training": {"steps": 2, "batch_size": 4, "unroll": 5, "val_batch": 4, "val_every": 1, "checkpoint_every": 0},
    },
    "alista": {  # tied to its family's dictionary: rebuilt from the family, A and W in the weights
        "problem": {"family": "lasso", "m": 10, "n": 20, "nnz": 3},
        "solver": {"name": "alista", "horizon": 4},
        "training": {"steps": 2, "batch_size": 4, "unroll": 4, "val_batch": 4, "val_every": 1, "checkpoint_every": 0,
                     "dtype": "float64"},
    },
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def run_dir(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / request.param
    train(RunConfig.from_dict(CONFIGS[request.param]), out)
    return out


def test_a_run_directory_and_its_bundle_load_the_same_solver(run_dir, tmp_path):
    solver, family, horizon, meta = l2o.load_solver(run_dir)
    run = load_run(run_dir)
    assert meta["source"] == "run" and meta["name"] == run.config.solver and meta["fallback"] == "fista_restart"
    assert family == run.family and horizon == run.config.training.unroll
    # the same weights as a bundle: rebuilt from the recorded config alone
    record = {"solver": {"name": run.config.solver}, "family": {"preset": run.config.family, "overrides": {}},
              "horizon": horizon, "l2o_version": l2o.__version__, "config": run.config.to_dict(),
              "command": "test", "figures": {"headline": "-"}}
    folder = write_bundle(tmp_path, f"{run.config.solver}-test", weights_of(run.solver), record)
    assert checkpoint_source(folder) == ("bundle", folder)
    b_solver, b_family, b_horizon, b_meta = l2o.load_solver(folder)
    assert b_meta["source"] == "pretrained" and b_family == family and b_horizon == horizon
    own, theirs = solver.state_dict(), b_solver.state_dict()
    assert set(own) == set(theirs) and all(torch.equal(own[k], theirs[k]) for k in own)
    problem = family.sample(3, 7, dtype=torch.float64)
    with torch.no_grad():
        x1 = l2o.run(solver, problem, max_iter=horizon, reference=None).x
        x2 = l2o.run(b_solver, problem, max_iter=horizon, reference=None).x
    torch.testing.assert_close(x1, x2, rtol=0, atol=0)
    assert load_bundle(folder).metadata["weights"]["sha256"] == read_record(folder)["weights"]["sha256"]
    # the same tensors give the same bytes: a rebuilt bundle has the same sha256
    for _ in range(3):
        again = write_bundle(tmp_path / "again", folder.name, weights_of(b_solver), record)
        assert (again / WEIGHTS).read_bytes() == (folder / WEIGHTS).read_bytes()


def test_the_sources_are_told_apart(run_dir, tmp_path):
    assert checkpoint_source(run_dir) == ("run", run_dir)
    assert checkpoint_source("lgd-ls_32x25") == ("bundle", "lgd-ls_32x25")
    with pytest.raises(ValueError, match=r"^run directory '.*nope' does not exist$"):  # a path
        checkpoint_source(tmp_path / "nope")
    with pytest.raises(ValueError, match=r"^run directory 'lgd-nope' does not exist, and 'lgd-nope' is not a bundled"):
        checkpoint_source("lgd-nope")  # a name
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="config.toml"):  # a folder that is neither: the run reader's message
        load_checkpoint(empty)


def test_handover_runs_the_fallback_past_the_horizon():
    """Past its horizon the wrapped solver takes exactly the fallback's steps from the
    learned solver's iterate: after K + j iterations it is at the fallback run j steps
    from x_K."""
    solver, family, horizon, _ = l2o.load_solver("lgd-ls_32x25")
    problem = family.sample(4, 3, dtype=torch.float64)
    j = 25
    with torch.no_grad():
        wrapped = l2o.run(handover(solver, family, horizon), problem, max_iter=horizon + j, reference=None).x
        x_K = l2o.run(solver, problem, max_iter=horizon, reference=None).x
        fallback = l2o.run(l2o.make_solver("fista_restart"), problem, max_iter=j, x0=x_K, reference=None).x
        learned_on = l2o.run(solver, problem, max_iter=horizon + j, reference=None).x
    torch.testing.assert_close(wrapped, fallback, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(wrapped, learned_on)  # it is not the learned recurrence going on


def test_l2o_eval_takes_a_bundled_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["eval", "--checkpoint", "lgd-ls_32x25", "--batch", "4", "--iterations", "30",
                              "--baselines", "gd", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [s["name"] for s in out["solvers"]] == ["lgd", "gd"] and out["horizon"] == 100
    assert (tmp_path / "l2o-eval-lgd-ls_32x25" / "eval_records.csv").is_file()  # not into the package
    res = runner.invoke(app, ["eval", "lgd-ls_32x25", "--batch", "2", "--iterations", "5", "--baselines", "gd",
                              "--out-dir", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    for args, start in ((["eval"], "error: Missing argument 'DIR' (or --checkpoint NAME_OR_DIR)"),
                        (["eval", "lgd-ls_32x25", "-c", "lgd-ls_32x25"], "error: give the run directory or bundled")):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and res.stderr.startswith(start), res.output


def test_the_bundle_files_are_package_data():
    """pyproject.toml ships every bundle file with a non-editable install."""
    root = Path(__file__).resolve().parents[2]
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert sorted(data["l2o.pretrained"]) == sorted([f"*/{RECORD}", f"*/{WEIGHTS}"])
