"""``l2o.run`` (trajectories).

Shapes, clock, what is recorded equals a plain loop of ``step``, record_every,
early stopping on tol (with a reference or on the certificate), iterations_to /
time_to against the gap array (also on a hand-made trajectory), bad arguments.
"""

from __future__ import annotations

import math

import pytest
import torch
from evaluation_cases import lasso, plain_loop, qp

import l2o
from l2o import Trajectory
from l2o.evaluation import reference
from l2o.registry import make_solver


# --------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------
def test_run_shapes_clock_and_records_match_a_plain_loop():
    p = qp()
    B, n = p.batch_size, p.dim
    tr = l2o.run(make_solver("gd"), p, max_iter=7, record_certificate=True)
    T = 8
    assert tr.solver == "gd"
    assert torch.equal(tr.iterations, torch.arange(T))
    assert tr.objective.shape == (T, B) and tr.objective.dtype == torch.float64
    assert tr.gap.shape == (T, B) and tr.certificate.shape == (T, B)
    assert tr.time.shape == (T,) and tr.time.dtype == torch.float64
    assert float(tr.time[0]) == 0.0
    assert bool((tr.time[1:] >= tr.time[:-1]).all()) and float(tr.time[-1]) > 0
    assert tr.x.shape == (B, n) and tr.x.dtype == p.dtype
    X = plain_loop(make_solver("gd"), p, p.initial_point(), 7)
    assert torch.equal(tr.x, X[-1])
    ref = reference(p)
    for k in range(T):
        assert torch.equal(tr.objective[k], p.objective(X[k]))
        assert torch.allclose(tr.gap[k], ref.relative_gap(p.objective(X[k])), rtol=0, atol=0)
        assert torch.allclose(tr.certificate[k], p.certificate(X[k]), rtol=1e-14, atol=0)
    assert tr.gap[0].tolist() == pytest.approx([1.0] * B, rel=1e-12)  # x0 = 0 is F(0) - F* away
    assert len(tr.records()) == T * B
    row = tr.records(seed=3)[B + 1]  # iteration 1, instance 1
    assert row["seed"] == 3 and row["iteration"] == 1 and row["instance"] == 1
    assert row["objective"] == float(tr.objective[1, 1]) and row["gap"] == float(tr.gap[1, 1])


def test_run_without_certificate_or_reference():
    p = qp()
    tr = l2o.run(make_solver("gd"), p, max_iter=3, reference=None)
    assert tr.gap is None and tr.certificate is None
    with pytest.raises(ValueError):
        tr.iterations_to(1e-3)
    assert tr.records()[0]["gap"] is None


def test_run_float32_problem_records_float64_objective_of_the_float32_iterates():
    p32 = qp(dtype=torch.float32)
    tr = l2o.run(make_solver("fista"), p32, max_iter=5)
    assert tr.x.dtype == torch.float32 and tr.objective.dtype == torch.float64
    X = plain_loop(make_solver("fista"), p32, p32.initial_point(), 5)
    exact = p32.to(dtype=torch.float64)
    assert torch.equal(tr.objective[-1], exact.objective(X[-1].to(torch.float64)))


def test_run_accepts_a_reference_object_and_x0():
    p = qp()
    ref = reference(p)
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(p.batch_size, p.dim, generator=g, dtype=torch.float64)
    x0_copy = x0.clone()
    a = l2o.run(make_solver("nesterov"), p, x0=x0, max_iter=10, reference=ref)
    b = l2o.run(make_solver("nesterov"), p, x0=x0, max_iter=10, reference=True)
    assert torch.equal(x0, x0_copy)  # x0 not mutated
    assert torch.equal(a.gap, b.gap) and torch.equal(a.x, b.x)
    assert torch.equal(a.objective[0], p.objective(x0))


@pytest.mark.parametrize("max_iter,every,expected", [(10, 3, [0, 3, 6, 9, 10]), (10, 5, [0, 5, 10]), (4, 10, [0, 4]),
                                                     (0, 1, [0])])
def test_run_record_every(max_iter, every, expected):
    p = qp()
    tr = l2o.run(make_solver("heavy_ball"), p, max_iter=max_iter, record_every=every)
    assert tr.iterations.tolist() == expected
    assert tr.objective.shape == (len(expected), p.batch_size) and tr.time.shape == (len(expected),)
    X = plain_loop(make_solver("heavy_ball"), p, p.initial_point(), max_iter)
    for row, k in enumerate(expected):
        assert torch.equal(tr.objective[row], p.objective(X[k]))
    assert torch.equal(tr.x, X[-1])


@pytest.mark.parametrize("every", [1, 5])
def test_run_stops_early_on_tol(every):
    p = lasso()
    tol = 1e-6
    tr = l2o.run(make_solver("fista_restart"), p, max_iter=2000, tol=tol, record_every=every)
    last = int(tr.iterations[-1])
    assert last < 2000 and last % every == 0
    assert bool((tr.gap[-1] <= tol).all())  # stopped because every instance is done
    assert bool((tr.gap[-2] > tol).any())  # ... and not before
    X = plain_loop(make_solver("fista_restart"), p, p.initial_point(), last)
    assert torch.equal(tr.x, X[-1])
    assert int(tr.iterations_to(tol).max()) == last


def test_run_tol_without_reference_stops_on_the_certificate():
    p = lasso()
    tol = 1e-5
    tr = l2o.run(make_solver("fista_restart"), p, max_iter=2000, reference=None, tol=tol)
    assert tr.gap is None and tr.certificate is not None
    last = int(tr.iterations[-1])
    assert last < 2000
    assert bool((tr.certificate[-1] <= tol).all()) and bool((tr.certificate[-2] > tol).any())
    X = plain_loop(make_solver("fista_restart"), p, p.initial_point(), last)
    assert torch.allclose(tr.certificate[-1], p.certificate(X[-1]), rtol=1e-12, atol=0)
    its = tr.iterations_to(tol)
    for b in range(p.batch_size):  # iterations_to falls back to the certificate
        first = int(torch.nonzero(tr.certificate[:, b] <= tol)[0])
        assert int(its[b]) == int(tr.iterations[first])


def test_iterations_to_and_time_to_match_the_gap_array_of_a_run():
    p = lasso()
    tr = l2o.run(make_solver("ista"), p, max_iter=300, record_every=7)
    for tol in [1e-1, 1e-3, 1e-6, 1e-30]:
        its, secs = tr.iterations_to(tol), tr.time_to(tol)
        assert its.shape == (p.batch_size,) and secs.shape == (p.batch_size,)
        for b in range(p.batch_size):
            hits = torch.nonzero(tr.gap[:, b] <= tol)
            if len(hits) == 0:
                assert int(its[b]) == -1 and math.isnan(float(secs[b]))
            else:
                first = int(hits[0])
                assert int(its[b]) == int(tr.iterations[first])
                assert float(secs[b]) == float(tr.time[first])
    assert bool((tr.iterations_to(-1.0) == -1).all()) and bool(torch.isnan(tr.time_to(-1.0)).all())


def test_iterations_to_and_time_to_on_a_hand_made_trajectory():
    gap = torch.tensor(
        [[1.0, 0.0, 1.0, 2.0],
         [0.1, 0.5, 1.0, -1e-3],
         [0.05, 0.01, 1.0, 0.5],   # instance 1 goes below 0.02 at row 2 ...
         [0.01, 0.5, 0.9, 0.5]],   # ... then back up: the first hit counts
        dtype=torch.float64,
    )
    tr = Trajectory(
        solver="hand", iterations=torch.tensor([0, 5, 10, 20]), objective=gap.clone(), gap=gap, certificate=None,
        time=torch.tensor([0.0, 0.5, 1.25, 3.0], dtype=torch.float64), x=torch.zeros(4, 2),
    )
    assert tr.iterations_to(0.02).tolist() == [20, 0, -1, 5]
    t = tr.time_to(0.02)
    assert t[[0, 1, 3]].tolist() == [3.0, 0.0, 0.5] and math.isnan(float(t[2]))
    assert tr.iterations_to(0.05).tolist() == [10, 0, -1, 5]  # <= tol, inclusive
    assert tr.iterations_to(10.0).tolist() == [0, 0, 0, 0]
    assert tr.iterations_to(-1.0).tolist() == [-1, -1, -1, -1]
    assert torch.isnan(tr.time_to(-1.0)).all()
    # without a gap, the certificate is used
    cert_only = Trajectory(
        solver="hand", iterations=tr.iterations, objective=gap.clone(), gap=None, certificate=gap,
        time=tr.time, x=tr.x,
    )
    assert cert_only.iterations_to(0.02).tolist() == [20, 0, -1, 5]


def test_run_rejects_bad_arguments():
    p = qp()
    gd = make_solver("gd")
    with pytest.raises(ValueError, match="max_iter"):
        l2o.run(gd, p, max_iter=-1)
    with pytest.raises(ValueError, match="record_every"):
        l2o.run(gd, p, record_every=0)
    for shape in [(p.batch_size + 1, p.dim), (p.batch_size, p.dim + 1), (1, p.dim), (p.dim,)]:
        with pytest.raises(ValueError, match="x0"):
            l2o.run(gd, p, x0=torch.zeros(*shape, dtype=torch.float64), max_iter=2)


def test_run_max_iter_zero_records_only_the_start():
    p = qp()
    x0 = torch.ones(p.batch_size, p.dim, dtype=torch.float64)
    tr = l2o.run(make_solver("lbfgs"), p, x0=x0, max_iter=0)
    assert tr.iterations.tolist() == [0] and torch.equal(tr.x, x0) and tr.time.tolist() == [0.0]
