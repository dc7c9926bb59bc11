"""``benchmarks/train_pretrained.py``: its specs are the configs the bundles record (so
running it again retrains the same models), every learned method is bundled or listed
with a reason, and one tiny end-to-end run writes a bundle that loads."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest
import torch

import l2o
from l2o.pretrained import BUNDLE_ROOT, bundled_names, load_pretrained, read_record
from l2o.registry import LEARNED
from l2o.training import RunConfig

PATH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "train_pretrained.py"
spec = importlib.util.spec_from_file_location("train_pretrained", PATH)
bench = importlib.util.module_from_spec(spec)
sys.modules["train_pretrained"] = bench  # its dataclasses look their module up
spec.loader.exec_module(bench)


def test_the_specs_are_the_bundles():
    assert sorted(bench.SPECS) == bundled_names()
    methods = {n.split("-", 1)[0] for n in bench.SPECS}
    assert methods | set(bench.NOT_BUNDLED) == set(LEARNED) and not methods & set(bench.NOT_BUNDLED)


@pytest.mark.parametrize("name", bundled_names())
def test_each_bundle_records_its_spec_config(name):
    record = read_record(BUNDLE_ROOT / name)
    assert bench.spec_config(name).to_dict() == RunConfig.from_dict(record["config"]).to_dict()
    assert record["template"] == bench.template_of(record["solver"]["name"], bench.SPECS[name])
    assert record["command"].endswith(f"--only {name}")
    assert record["training"]["shortened"] == bench.SPECS[name].shortened


def test_a_tiny_run_writes_a_bundle_that_loads(tmp_path):
    data = bench.spec_config("lgd-ls_32x25").to_dict()
    data["solver"]["hidden"] = 8
    data["training"].update(steps=2, batch_size=4, train_set_size=4, val_batch=4, val_every=1, checkpoint_every=0)
    config = RunConfig.from_dict(data)
    small = bench.Spec("lgd_neurips2025_qp_32x25.toml", {}, "a test", batch=4, max_iter=120)
    folder = bench.make_bundle("lgd-ls_32x25", config, small, batch=4, threads=1, command="test", root=tmp_path,
                               say=lambda m: None)
    solver, family, horizon, meta = load_pretrained("lgd-ls_32x25", root=tmp_path)
    assert folder == tmp_path / "lgd-ls_32x25" and horizon == 100 and solver.net[2].out_features == 8
    fig = meta["figures"]
    assert fig["batch"] == 4 and fig["max_iter"] == 120 and set(fig["solvers"]) == {
        "lgd", "lgd+handover", "gd", "fista_restart"}
    assert meta["training"]["steps"] == 2 and meta["config"]["training"]["steps"] == 2
    # the figures are the solver's own: rerunning it reproduces its gap at the horizon
    problem = family.sample(4, fig["seed"], dtype=torch.float32)
    traj = l2o.run(solver, problem, max_iter=horizon)
    assert float(traj.gap[-1].to(torch.float64).median()) == pytest.approx(
        fig["solvers"]["lgd"]["gap_at_horizon_median"], rel=1e-6)
