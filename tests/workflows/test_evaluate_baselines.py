"""``evaluate_run`` with learned baselines: another run directory and a bundled solver beside
a classical one, on the same instances, iterations and clock as the evaluated run."""

from __future__ import annotations

import pytest
import torch

import l2o
from l2o.workflows.evaluate import check_baseline_fits, evaluate_run, resolve_baselines
from l2o.workflows.load import load_checkpoint

training = pytest.importorskip("l2o.training", reason="the meta-training engine (l2o.training) is not available")

BUNDLED = "lgd-ls_32x25"  # LGD is coordinatewise: it fits least squares of any size


def _train(out, seed):
    training.train(training.RunConfig.from_dict({
        "problem": {"family": "least_squares", "d": 8, "m": 12},
        "solver": {"name": "lgd", "hidden": 16, "expansion": 10.0},
        "training": {"steps": 2, "batch_size": 8, "unroll": 5, "val_batch": 0, "checkpoint_every": 0, "seed": seed},
    }), out)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    return _train(base / "first", 0), _train(base / "second", 1)


def test_learned_baselines_equal_running_them_directly(runs, tmp_path):
    first, second = runs
    out = evaluate_run(first, baselines=["gd", str(second), BUNDLED], batch=5, dtype=torch.float64, out_dir=tmp_path)
    comp = out.comparison
    assert comp.solvers == ["lgd", "gd", "lgd (second)", BUNDLED]  # in the order given, after the evaluated run
    assert comp.learned == {"lgd", "lgd (second)", BUNDLED}
    assert set(comp.max_iter.values()) == {50}  # the evaluated run's 10 x horizon 5 for all, also the bundled one
    # the same instances: sampled again from the run's family and seed, each learned baseline
    # run on its own reproduces the comparison's objective values and last iterates
    problem = load_checkpoint(first).family.sample(5, out.summary["seed"], dtype=torch.float64)
    for name, source in (("lgd (second)", second), (BUNDLED, BUNDLED)):
        solver = load_checkpoint(source).solver
        alone = l2o.run(solver, problem, x0=problem.initial_point(), max_iter=50, reference=comp.reference)
        traj = comp.trajectories[name]
        torch.testing.assert_close(traj.objective, alone.objective, rtol=1e-12, atol=0.0)
        torch.testing.assert_close(traj.x, alone.x, rtol=1e-12, atol=0.0)
    assert not torch.equal(comp.trajectories["lgd (second)"].objective, comp.trajectories["lgd"].objective)
    by_name = {s["name"]: s for s in out.summary["solvers"]}
    assert [by_name[n]["learned"] for n in ("lgd", "lgd (second)", BUNDLED, "gd")] == [True, True, True, False]
    assert by_name["lgd (second)"]["source"] == str(second) and by_name[BUNDLED]["source"] == BUNDLED
    assert out.summary["learned_baselines"] == ["lgd (second)", BUNDLED]
    rows = comp.records()
    assert {r["solver"] for r in rows if r["learned"]} == {"lgd", "lgd (second)", BUNDLED}


def test_names_are_unique_and_the_evaluated_run_is_refused(runs):
    first, second = runs
    got = resolve_baselines([str(second), str(second) + "/", "fista"], taken=("lgd",))
    assert [b.name for b in got] == ["lgd (second)", "lgd (second) #2", "fista"]
    assert [b.learned for b in got] == [True, True, False] and got[0].family == "least_squares"
    with pytest.raises(ValueError, match=r"^baselines names '.*first', the evaluated run itself$"):
        evaluate_run(first, baselines=[str(first)], batch=2)
    with pytest.raises(ValueError, match=r"^baselines: unknown solver 'nope'; valid solvers: .*; or a bundled"):
        resolve_baselines(["nope"])
    with pytest.raises(ValueError, match=r"^baselines: run directory 'runs/nope' does not exist$"):
        resolve_baselines(["runs/nope"])


@pytest.mark.parametrize("baseline, message", [
    ("alista-lasso_250x500", "baselines: alista-lasso_250x500 (trained on lasso_250x500) does not fit least_squares: "
                             "solver 'alista' is tied to one dictionary A"),
    ("wmmse", "baselines: solver 'wmmse' solves the MIMO sum-rate family only"),
])
def test_a_misfit_baseline_is_one_line(runs, tmp_path, baseline, message):
    with pytest.raises(ValueError) as e:
        evaluate_run(runs[0], baselines=[baseline], batch=2, out_dir=tmp_path)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_learned_mimo_baseline_of_other_antennas_names_its_shape():
    """StructuralMPNN built for N_t = 16 does not fit the small INFOCOM scale (N_t = 8)."""
    (b,) = resolve_baselines(["structural_mpnn-mimo_infocom_moderate"])
    problem = l2o.make_family("mimo_infocom_small").sample(2, 0)
    with pytest.raises(ValueError) as e:
        check_baseline_fits(b, problem, "mimo_infocom_small")
    assert str(e.value).startswith("baselines: structural_mpnn-mimo_infocom_moderate (trained on "
                                   "mimo_infocom_moderate) does not fit mimo_infocom_small: solver 'structural_mpnn' "
                                   "was built for N_t = 16") and "got N_t = 8" in str(e.value)
    (ok,) = resolve_baselines(["structural_mpnn-mimo_infocom_small"])
    check_baseline_fits(ok, problem, "mimo_infocom_small")
