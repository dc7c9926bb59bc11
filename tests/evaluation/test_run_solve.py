"""``l2o.run`` (trajectories) and ``l2o.solve`` (per-instance stopping with compaction).

run: shapes, clock, what is recorded equals a plain loop of ``step``, record_every,
early stopping on tol (with a reference or on the certificate), iterations_to /
time_to against the gap array (also on a hand-made trajectory), bad arguments.
solve: converged instances satisfy the certificate, instances of different difficulty
stop at different iterations, compaction gives the same x as the uncompacted
iteration stopped at the same iteration, max_iter, bad arguments.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

import l2o
from l2o import Trajectory
from l2o.problems.quadratic import random_spd
from l2o.registry import CLASSICAL, make_solver




@functools.lru_cache(maxsize=None)
def qp(B=3, n=12, dtype=torch.float64):
    return l2o.QuadraticFamily(n=n, condition_number=20.0).sample(B, 0, dtype=dtype)


@functools.lru_cache(maxsize=None)
def lasso(B=4):
    return l2o.LassoFamily(m=20, n=40, nnz=4, lam=0.1).sample(B, 0)


@functools.lru_cache(maxsize=None)
def graded_qp():
    """Per-instance Q of condition numbers 2, 20, 200, 2000 (easy to hard), n = 10."""
    g = torch.Generator().manual_seed(11)
    kappas = [2.0, 20.0, 200.0, 2000.0]
    Q = torch.stack([random_spd(None, 10, k, g) for k in kappas])
    q = torch.randn(len(kappas), 10, generator=g, dtype=torch.float64)
    return l2o.QuadraticInstances(Q, q)


@functools.lru_cache(maxsize=None)
def mixed_qp():
    """Per-instance Q: instance 0 singular (rank 7 of 10, q in the range, spectrum 1..2 on
    it: converges fast), instances 1 and 2 positive definite with kappa 50 and 500."""
    g = torch.Generator().manual_seed(12)
    n = 10
    U, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    spectrum = torch.linspace(1.0, 2.0, n, dtype=torch.float64)
    spectrum[:3] = 0.0
    Q0 = (U * spectrum) @ U.T
    Q0 = 0.5 * (Q0 + Q0.T)
    Q = torch.stack([Q0, random_spd(None, n, 50.0, g), random_spd(None, n, 500.0, g)])
    q = torch.randn(3, n, generator=g, dtype=torch.float64)
    q[0] = Q0 @ q[0]
    return l2o.QuadraticInstances(Q, q)


def plain_loop(solver, p, x0, steps):
    """Iterates x_0..x_steps of the uncompacted batch."""
    state = solver.init(p, x0)
    xs = [state.x]
    for _ in range(steps):
        state = solver.step(p, state)
        xs.append(state.x)
    return torch.stack(xs)


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
    ref = p.reference()
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
    ref = p.reference()
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


# --------------------------------------------------------------------------------------
# solve
# --------------------------------------------------------------------------------------
def test_solve_converges_with_certificates_below_tol():
    p = lasso()
    tol = 1e-8
    res = l2o.solve(make_solver("fista_restart"), p, tol=tol, max_iter=5000, check_every=10)
    assert res.converged.dtype == torch.bool and bool(res.converged.all())
    assert res.x.shape == (p.batch_size, p.dim) and res.x.dtype == p.dtype
    assert torch.equal(res.certificate, p.certificate(res.x))
    assert bool((res.certificate <= tol).all())
    assert torch.equal(res.objective, p.objective(res.x))
    assert bool((res.iterations % 10 == 0).all()) and bool((res.iterations > 0).all())
    assert res.certificate_name == p.certificate_name() and res.seconds > 0
    ref = p.reference()
    assert float(ref.relative_gap(res.objective).max()) <= 2 * tol  # duality gap bounds F - F*


def test_solve_iterations_follow_difficulty():
    p = graded_qp()
    res = l2o.solve(make_solver("gd"), p, tol=1e-6, max_iter=100_000, check_every=5)
    assert bool(res.converged.all())
    its = res.iterations.tolist()
    assert its == sorted(its) and len(set(its)) == len(its), f"kappa 2 .. 2000 should need more and more: {its}"


def check_compaction(solver_name, p, tol, max_iter, check_every):
    """For each instance, solve's x equals x_k of a plain, never-compacted run of the
    whole batch at k = its reported iteration count; the certificate is <= tol there
    and was > tol at every earlier check (the instance stopped at its first chance)."""
    res = l2o.solve(make_solver(solver_name), p, tol=tol, max_iter=max_iter, check_every=check_every)
    X = plain_loop(make_solver(solver_name), p, p.initial_point(), max_iter)
    certs_all = torch.stack([p.certificate(x) for x in X])  # (max_iter + 1, B)
    checks = [j for j in range(max_iter + 1) if j % check_every == 0 or j == max_iter]
    for b in range(p.batch_size):
        k = int(res.iterations[b])
        scale = 1.0 + float(X[k, b].abs().max())
        err = float((res.x[b] - X[k, b]).abs().max())
        assert err <= 1e-10 * scale, f"instance {b} (stopped at {k}): compacted x differs by {err:.3g}"
        certs = certs_all[:, b]
        if bool(res.converged[b]):
            assert k in checks and float(certs[k]) <= tol
            assert all(float(certs[j]) > tol for j in checks if j < k), f"instance {b} could have stopped before {k}"
        else:
            assert k == max_iter
            assert all(float(certs[j]) > tol for j in checks)
    return res


#: Solvers for every family (the MIMO-only ones are checked on MIMO instances below).
GENERAL_SOLVERS = [s for s in CLASSICAL if make_solver(s).skip(graded_qp()) is None]


@pytest.mark.parametrize("check_every", [1, 4])
def test_solve_compaction_wmmse_on_mimo(check_every):
    """WMMSE instances retire at different times on a MIMO batch, as the others do on QPs."""
    p = l2o.problems.MimoFamily(cells=2, users=2, tx_antennas=4, rx_antennas=2, streams=1).sample(6, 3)
    res = check_compaction("wmmse", p, 1e-4, 120, check_every)
    assert len(set(res.iterations.tolist())) > 1, "no compaction happened: the test is vacuous"


@pytest.mark.parametrize("solver_name", GENERAL_SOLVERS)
@pytest.mark.parametrize("check_every", [1, 7])
def test_solve_compaction_equals_the_uncompacted_iteration(solver_name, check_every):
    """On QPs of condition number 2 .. 2000 (instances retire at different times)."""
    res = check_compaction(solver_name, graded_qp(), 1e-5, 400, check_every)
    if solver_name != "newton":  # Newton solves every QP in one step
        assert len(set(res.iterations.tolist())) > 1, "no compaction happened: the test is vacuous"


SMOOTH_SOLVERS = [s for s in GENERAL_SOLVERS if s != "nesterov_sc"]  # nesterov_sc refuses mu = 0


@pytest.mark.parametrize("solver_name", SMOOTH_SOLVERS)
def test_solve_compaction_with_a_singular_instance(solver_name):
    """A batch where one instance has mu = 0 and retires first: what the others do must
    not depend on whether it is still in the batch."""
    check_compaction(solver_name, mixed_qp(), 1e-6, 600, 5)


LASSO_SOLVERS = [s for s in GENERAL_SOLVERS if s not in ("gd", "nesterov", "nesterov_sc", "heavy_ball", "lbfgs", "newton")]


@pytest.mark.parametrize("solver_name", LASSO_SOLVERS)
def test_solve_compaction_on_lasso(solver_name):
    """Same on LASSO (shared dictionary; stateful methods with restarts / polishing)."""
    check_compaction(solver_name, lasso(), 1e-7, 300, 5)


def test_solve_max_iter_reached_is_not_converged():
    p = graded_qp()
    res = l2o.solve(make_solver("gd"), p, tol=1e-12, max_iter=25, check_every=10)
    X = plain_loop(make_solver("gd"), p, p.initial_point(), 25)
    hard = 3  # kappa = 2000 cannot reach 1e-12 in 25 GD steps
    assert not bool(res.converged[hard]) and int(res.iterations[hard]) == 25
    assert torch.allclose(res.x[hard], X[25, hard], rtol=1e-12, atol=1e-14)
    assert bool((res.certificate[~res.converged] > 1e-12).all())
    # max_iter not a multiple of check_every: the certificate is also checked at max_iter
    cert25 = p.certificate(X[25])
    assert torch.equal(res.converged, (cert25 <= 1e-12) | (res.iterations < 25))


def test_solve_max_iter_zero_and_an_optimal_start():
    p = qp()
    res0 = l2o.solve(make_solver("gd"), p, max_iter=0)
    assert res0.iterations.tolist() == [0] * p.batch_size and not bool(res0.converged.any())
    assert torch.equal(res0.x, p.initial_point())
    x_star = p.reference().x
    res = l2o.solve(make_solver("gd"), p, x0=x_star, tol=1e-8)
    assert bool(res.converged.all()) and res.iterations.tolist() == [0] * p.batch_size
    assert torch.equal(res.x, x_star)


def test_solve_does_not_mutate_x0_and_float32_works():
    p32 = qp(dtype=torch.float32)
    x0 = torch.full((p32.batch_size, p32.dim), 0.5, dtype=torch.float32)
    x0_copy = x0.clone()
    res = l2o.solve(make_solver("fista_restart"), p32, x0=x0, tol=1e-4, max_iter=2000)
    assert torch.equal(x0, x0_copy)
    assert res.x.dtype == torch.float32 and bool(res.converged.all())
    assert bool((p32.certificate(res.x) <= 1e-4).all())


@pytest.mark.parametrize("tol", [0.0, -1e-8])
def test_solve_rejects_non_positive_tol(tol):
    with pytest.raises(ValueError, match="tol"):
        l2o.solve(make_solver("gd"), qp(), tol=tol)


def test_solve_rejects_negative_max_iter():
    with pytest.raises(ValueError, match="max_iter"):
        l2o.solve(make_solver("gd"), qp(), max_iter=-1)


@pytest.mark.parametrize("shape", ["more_rows", "more_columns", "one_row", "flat"])
def test_solve_rejects_a_wrong_x0_shape(shape):
    p = qp()
    B, n = p.batch_size, p.dim
    dims = {"more_rows": (B + 1, n), "more_columns": (B, n + 1), "one_row": (1, n), "flat": (n,)}[shape]
    with pytest.raises(ValueError, match="x0"):
        l2o.solve(make_solver("gd"), p, x0=torch.zeros(*dims, dtype=torch.float64), max_iter=20)


@pytest.mark.parametrize("check_every", [0, -3])
def test_solve_rejects_non_positive_check_every(check_every):
    with pytest.raises(ValueError, match="check_every"):
        l2o.solve(make_solver("gd"), qp(), check_every=check_every, max_iter=20)
