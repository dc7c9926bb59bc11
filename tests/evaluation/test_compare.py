"""``compare``: every solver on the same instances, tidy records and the CSV file.

Same instances and start (a solver's trajectory equals its own ``run``), the default
iterations (10 x the horizon of a learned solver, the longest learned run for the
classical ones), eval mode and no autograd graph for learned solvers (and their
training flag restored), records (columns, counts, learned flag, thinning), the CSV
(atomic, read back equal, round trip to trajectories), bad input.
"""

from __future__ import annotations

import functools
import math
import os

import pytest
import torch

import l2o
from l2o.evaluation import reference
from l2o.evaluation.compare import (
    COLUMNS,
    Comparison,
    compare,
    default_iterations,
    read_records_csv,
    thin,
    trajectories_from_records,
)
from l2o.learned.lgd import LGD


@functools.cache
def ls(B: int = 6):
    return l2o.LeastSquaresFamily(d=12, m=9).sample(B, 3)


@functools.cache
def lasso(B: int = 5):
    return l2o.LassoFamily(m=20, n=40, nnz=4, lam=0.1).sample(B, 0)


def lgd(horizon: int = 4) -> LGD:
    return LGD(hidden=8, expansion=10.0, horizon=horizon)


def test_same_instances_and_start_as_run():
    p = ls()
    ref = reference(p)
    x0 = torch.full((p.batch_size, p.dim), 0.3, dtype=p.dtype)
    comp = compare({"gd": l2o.make_solver("gd"), "nes": l2o.make_solver("nesterov")}, p, reference=ref,
                   max_iter=15, x0=x0)
    for name, solver in (("gd", "gd"), ("nes", "nesterov")):
        alone = l2o.run(l2o.make_solver(solver), p, x0=x0, max_iter=15, reference=ref)
        traj = comp.trajectories[name]
        assert traj.solver == name
        torch.testing.assert_close(traj.objective, alone.objective)
        torch.testing.assert_close(traj.gap, alone.gap)
    assert comp.reference is ref and comp.learned == frozenset() and comp.batch_size == p.batch_size
    assert comp.max_iter == {"gd": 15, "nes": 15} and comp.solvers == ["gd", "nes"]


def test_default_iterations_are_ten_times_the_horizon():
    model = lgd(horizon=4)
    solvers = {"lgd": model, "gd": l2o.make_solver("gd")}
    assert default_iterations(solvers) == {"lgd": 40, "gd": 40}
    assert default_iterations({"gd": l2o.make_solver("gd")}) == {"gd": 1000}
    comp = compare(solvers, ls())
    assert comp.max_iter == {"lgd": 40, "gd": 40} and comp.learned == frozenset({"lgd"})
    assert comp.trajectories["lgd"].iterations[-1] == 40
    comp = compare(solvers, ls(), max_iter={"gd": 7})
    assert comp.max_iter == {"lgd": 40, "gd": 7}
    comp = compare(solvers, ls(), max_iter=5)
    assert comp.max_iter == {"lgd": 5, "gd": 5}


def test_learned_solver_runs_in_eval_mode_without_graph_and_keeps_its_flag():
    seen = []

    class Spy(LGD):
        def step(self, problem, state):
            seen.append((self.training, torch.is_grad_enabled()))
            out = super().step(problem, state)
            assert not out.x.requires_grad
            return out

    model = Spy(hidden=8, expansion=10.0, horizon=3)
    model.train()
    compare({"spy": model}, ls(), max_iter=3)
    assert seen == [(False, False)] * (3 + 3)  # the warm-up steps too: eval mode, no graph
    assert model.training and all(m.training for m in model.modules())
    # untrained LGD is gradient descent with step 0.9999 / L: close to gd
    comp = compare({"lgd": lgd(), "gd": l2o.make_solver("gd")}, ls(), max_iter=10)
    torch.testing.assert_close(comp.trajectories["lgd"].objective, comp.trajectories["gd"].objective, rtol=1e-3,
                               atol=0.0)


def test_records_are_tidy_rows():
    p = ls(4)
    comp = compare({"lgd": lgd(), "gd": l2o.make_solver("gd")}, p, max_iter=6, record_every=2)
    rows = comp.records()
    assert len(rows) == 2 * 4 * 4  # 2 solvers x records at 0, 2, 4, 6 x 4 instances
    assert all(tuple(r) == COLUMNS for r in rows)
    assert {(r["solver"], r["learned"]) for r in rows} == {("lgd", True), ("gd", False)}
    assert sorted({r["iteration"] for r in rows}) == [0, 2, 4, 6]
    assert sorted({r["instance"] for r in rows}) == [0, 1, 2, 3]
    traj = comp.trajectories["gd"]
    for r in rows:
        if r["solver"] == "gd" and r["iteration"] == 4:
            t = 2
            assert r["gap"] == pytest.approx(float(traj.gap[t, r["instance"]]), rel=1e-15)
            assert r["objective"] == pytest.approx(float(traj.objective[t, r["instance"]]), rel=1e-15)
            assert r["time"] == float(traj.time[t]) and r["certificate"] is None
    # the same content as Trajectory.records
    mine = [r for r in rows if r["solver"] == "gd"]
    theirs = traj.records(learned=False)
    assert [{k: r[k] for k in COLUMNS} for r in theirs] == mine
    # thinning keeps the first and the last record
    thinned = comp.records(every=3)
    assert sorted({r["iteration"] for r in thinned}) == [0, 6]
    assert thin(4, 3) == [0, 3] and thin(5, 2) == [0, 2, 4] and thin(1, 5) == [0]
    with pytest.raises(ValueError, match="every"):
        thin(3, 0)


def test_csv_round_trip_and_atomic_write(tmp_path):
    comp = compare({"lgd": lgd(), "ista": l2o.make_solver("ista")}, ls(), max_iter=8)
    path = tmp_path / "records.csv"
    path.write_text("old content")
    out = comp.to_csv(path)
    assert out == path and sorted(os.listdir(tmp_path)) == ["records.csv"]  # no temporary file left
    header = path.read_text().splitlines()[0]
    assert header == ",".join(COLUMNS)
    back = read_records_csv(path)
    rows = comp.records()
    assert len(back) == len(rows)
    for a, b in zip(back, rows):
        assert a["solver"] == b["solver"] and a["learned"] is b["learned"]
        assert a["iteration"] == b["iteration"] and a["instance"] == b["instance"]
        for k in ("time", "objective", "gap"):
            assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-300)
        assert a["certificate"] is None
    trajs, learned = trajectories_from_records(back)
    assert learned == frozenset({"lgd"}) and list(trajs) == ["lgd", "ista"]
    torch.testing.assert_close(trajs["ista"].gap, comp.trajectories["ista"].gap, rtol=1e-9, atol=0.0)
    assert torch.equal(trajs["ista"].iterations, comp.trajectories["ista"].iterations)
    # a failed write leaves the old file and no temporary file
    with pytest.raises(OSError):
        comp.to_csv(tmp_path / "missing" / "r.csv")
    with pytest.raises(IsADirectoryError):
        comp.to_csv(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["records.csv"]


def test_without_reference_records_the_certificate():
    comp = compare({"ista": l2o.make_solver("ista")}, lasso(), reference=False, max_iter=5)
    traj = comp.trajectories["ista"]
    assert traj.gap is None and traj.certificate is not None and comp.reference is None
    rows = comp.records()
    assert all(r["gap"] is None and r["certificate"] is not None for r in rows)


def test_stop_at_ends_a_solver_early():
    comp = compare({"fr": l2o.make_solver("fista_restart")}, lasso(), max_iter=5000, stop_at=1e-6)
    traj = comp.trajectories["fr"]
    assert int(traj.iterations[-1]) < 5000 and float(traj.gap[-1].max()) <= 1e-6


def test_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match="at least one solver"):
        compare({}, ls())
    with pytest.raises(ValueError, match=r"^solver 'gd' handles smooth unconstrained problems only"):
        compare({"gd": l2o.make_solver("gd"), "ista": l2o.make_solver("ista")}, lasso(), max_iter=3)
    with pytest.raises(ValueError, match=r"^solver 'lgd' handles smooth"):
        compare({"lgd": lgd()}, lasso(), max_iter=3)
    with pytest.raises(ValueError, match=r"^solver 'mine' does not fit this problem: solver 'gd' handles smooth"):
        compare({"mine": l2o.make_solver("gd")}, lasso(), max_iter=3)
    with pytest.raises(ValueError, match="unknown solver"):
        compare({"gd": l2o.make_solver("gd")}, ls(), max_iter={"nope": 3})
    with pytest.raises(ValueError, match=">= 0"):
        compare({"gd": l2o.make_solver("gd")}, ls(), max_iter=-1)


def test_comparison_is_plain_data():
    comp = compare({"gd": l2o.make_solver("gd")}, ls(), max_iter=2)
    assert isinstance(comp, Comparison)
    assert math.isfinite(float(comp.trajectories["gd"].gap[-1].max()))


# ----- warm-up and progress ------------------------------------------------------------------------------------


class Counting:
    """Wraps a solver and counts its ``init`` and ``step`` calls (with the batch size)."""

    def __init__(self, solver):
        self.solver, self.name, self.calls = solver, solver.name, []

    def check_problem(self, problem):
        self.solver.check_problem(problem)

    def init(self, problem, x0):
        self.calls.append(("init", problem.batch_size))
        return self.solver.init(problem, x0)

    def step(self, problem, state):
        self.calls.append(("step", problem.batch_size))
        return self.solver.step(problem, state)


def test_every_solver_is_warmed_up_untimed_on_the_same_instances():
    """Issue 12 item 3: ``warmup`` untimed steps on the same batch, then the timed run."""
    p = lasso()
    solvers = {"fista": Counting(l2o.make_solver("fista")), "lfista": Counting(l2o.make_solver("lfista"))}
    comp = compare(solvers, p, max_iter=7, warmup=3)
    for c in solvers.values():
        B = p.batch_size
        assert c.calls == [("init", B)] + [("step", B)] * 3 + [("init", B)] + [("step", B)] * 7
    assert all(t.iterations.tolist() == list(range(8)) for t in comp.trajectories.values())
    capped = Counting(l2o.make_solver("ista"))
    compare({"ista": capped}, p, max_iter=2, warmup=3)
    assert [c for c, _ in capped.calls].count("step") == 2 + 2  # never more warm-up than iterations


@pytest.mark.parametrize("problem, names", [
    (lasso, ("fista_restart", "lfista", "adam", "math_l2o")),
    (ls, ("lbfgs", "lgd", "nesterov")),
])
def test_the_warm_up_changes_no_iterate(problem, names):
    p = problem()
    ref = reference(p)

    def solvers():
        torch.manual_seed(0)  # the learned solvers' random initial weights
        return {n: (lgd() if n == "lgd" else l2o.make_solver(n)) for n in names}

    cold = compare(solvers(), p, reference=ref, max_iter=12, warmup=0)
    warm = compare(solvers(), p, reference=ref, max_iter=12)
    for name in names:
        a, b = cold.trajectories[name], warm.trajectories[name]
        assert torch.equal(a.objective, b.objective) and torch.equal(a.gap, b.gap) and torch.equal(a.x, b.x)


def test_a_negative_warm_up_is_refused():
    with pytest.raises(ValueError, match=r"^warmup is -1; expected an integer >= 0$"):
        compare({"gd": l2o.make_solver("gd")}, ls(), max_iter=2, warmup=-1)



def test_compare_reports_the_reference_and_each_solver(recording):
    rec = recording()
    compare({"gd": l2o.make_solver("gd"), "nesterov": l2o.make_solver("nesterov")}, ls(), max_iter=3, progress=rec)
    assert rec.phases == ["reference optimum of 6 instances", "gd: 3 iterations on 6 instances",
                          "nesterov: 3 iterations on 6 instances"]
    rec = recording()
    compare({"gd": l2o.make_solver("gd")}, ls(), reference=False, max_iter=3, progress=rec)
    assert rec.phases == ["gd: 3 iterations on 6 instances"]  # no reference computed, none reported
