"""``l2o.solve`` (per-instance stopping with compaction).

Converged instances satisfy the certificate, instances of different difficulty stop at
different iterations, compaction gives the same x as the uncompacted iteration stopped
at the same iteration, max_iter, bad arguments; the ``criterion`` / ``stop`` arguments;
instances that cannot be sub-batched.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from evaluation_cases import graded_qp, lasso, mixed_qp, plain_loop, qp

import l2o
from l2o import LassoFamily
from l2o.evaluation import Certificate, RelativeChange, Residual, reference
from l2o.problems.parts import L1
from l2o.registry import CLASSICAL, make_solver


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
    ref = reference(p)
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


LASSO_SOLVERS = [s for s in GENERAL_SOLVERS if make_solver(s).skip(lasso()) is None]  # smooth-only solvers skip it


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
    x_star = reference(p).x
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


# --------------------------------------------------------------------------------------
# criterion and stop
# --------------------------------------------------------------------------------------
def test_residual_criterion_stops_on_the_fixed_point_residual():
    p = LassoFamily(m=30, n=60, nnz=5).sample(4, 0)
    r = l2o.solve(make_solver("fista_restart"), p, tol=1e-7, criterion="residual", check_every=1)
    assert bool(r.converged.all())
    assert float(p.fixed_point_residual(r.x).max()) <= 1e-7
    with pytest.raises(ValueError, match="criterion"):
        l2o.solve(make_solver("fista"), p, criterion="gap")


def test_float32_solve_reaches_1e6_with_the_residual_criterion():
    p = LassoFamily(m=30, n=60, nnz=5).sample(4, 0)
    ref = reference(p)
    r = l2o.solve(
        make_solver("fista_restart"), p.to(dtype=torch.float32), tol=1e-6, criterion="residual", max_iter=3000
    )
    assert bool(r.converged.all())
    assert float(ref.relative_gap(p.objective(r.x.double())).max()) <= 1e-6


def test_stop_criterion_replaces_tol_and_criterion():
    """``stop=Certificate(tol)`` is the default criterion; ``stop=Residual(tol)`` is
    ``criterion="residual"``: the same iterations and points."""
    p = lasso()
    a = l2o.solve(make_solver("fista_restart"), p, tol=1e-7, check_every=5)
    b = l2o.solve(make_solver("fista_restart"), p, stop=Certificate(1e-7), check_every=5)
    assert torch.equal(a.iterations, b.iterations) and torch.equal(a.x, b.x)
    c = l2o.solve(make_solver("fista_restart"), p, tol=1e-7, criterion="residual", check_every=5)
    d = l2o.solve(make_solver("fista_restart"), p, stop=Residual(1e-7), tol=1.0, check_every=5)  # tol unused
    assert torch.equal(c.iterations, d.iterations) and torch.equal(c.x, d.x)


def check_relative_change(solver_name, p, rtol, of, max_iter, check_every, x0=None):
    """Each instance stops at its first check k >= 1 where |q(x_k) - q(x_{k-1})| <= rtol |q(x_k)|
    on the plain, never-compacted iteration, with x = x_k there."""
    x0 = p.initial_point() if x0 is None else x0
    res = l2o.solve(make_solver(solver_name), p, x0=x0, stop=RelativeChange(rtol, of=of), max_iter=max_iter,
                    check_every=check_every)
    X = plain_loop(make_solver(solver_name), p, x0, max_iter)
    Q = torch.stack([of(p, x) for x in X])  # (max_iter + 1, B)
    checks = [j for j in range(1, max_iter + 1) if j % check_every == 0 or j == max_iter]
    for b in range(p.batch_size):
        hits = [j for j in checks if abs(float(Q[j, b] - Q[j - 1, b])) <= rtol * abs(float(Q[j, b]))]
        k = hits[0] if hits else max_iter
        assert int(res.iterations[b]) == k and bool(res.converged[b]) == bool(hits)
        torch.testing.assert_close(res.x[b], X[k, b], rtol=0, atol=1e-10 * (1 + float(X[k, b].abs().max())))
    return res


def test_relative_change_stops_each_instance_at_its_first_small_change():
    res = check_relative_change("gd", graded_qp(), 1e-6, lambda p, x: p.objective(x), 400, 5)
    assert len(set(res.iterations.tolist())) > 1 and not bool(res.converged.all())


def test_relative_change_of_the_mimo_sum_rate_is_the_wmmse_reference_rule():
    """The rule of the MIMO reference runs (relative change of the weighted sum-rate over one
    iteration), from the starts of the reference."""
    p = l2o.problems.MimoFamily(cells=2, users=2, tx_antennas=4, rx_antennas=2, streams=1).sample(4, 3)
    res = check_relative_change("wmmse", p, 1e-6, lambda q, x: q.sum_rate(x), 150, 10)
    assert len(set(res.iterations.tolist())) > 1


def test_instances_that_cannot_be_sub_batched_keep_their_converged_iterate():
    """AutogradInstances refuse ``index``: every instance stays in the batch, and each
    result is the iterate of the check at which it converged, as with compaction."""
    lasso_p = LassoFamily(m=20, n=40, nnz=4, lam=0.1).sample(4, 0)
    A, b, lam = lasso_p.A, lasso_p.b, lasso_p.lam
    custom = l2o.AutogradInstances(lambda x: 0.5 * (x @ A.T - b).square().sum(-1), 4, 40,
                                   smoothness=lasso_p.smoothness(), penalty=L1(lam))
    assert not custom.can_index
    res = l2o.solve(make_solver("fista_restart"), custom, tol=1e-6, criterion="residual", max_iter=2000,
                    check_every=5)
    assert bool(res.converged.all()) and len(set(res.iterations.tolist())) > 1
    X = plain_loop(make_solver("fista_restart"), custom, custom.initial_point(), int(res.iterations.max()))
    for i in range(4):
        assert torch.equal(res.x[i], X[int(res.iterations[i]), i])
    assert bool((custom.fixed_point_residual(res.x) <= 1e-6).all())


# --------------------------------------------------------------------------------------
# float32 iterates: the README example, stalls, float32 iterates of float64 instances
# --------------------------------------------------------------------------------------
def test_the_readme_float32_example_converges_fast():
    """``l2o.solve(fista_restart, float32 LASSO, tol=1e-6)``: the float64 duality gap of a
    float32 iterate used to stall at ~5e-6, so this ran to max_iter = 10000 unconverged."""
    fam = l2o.make_family("lasso_250x500")
    p = fam.sample(200, torch.Generator().manual_seed(0)).to(dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = l2o.solve(make_solver("fista_restart"), p, tol=1e-6)
    assert bool(res.converged.all()) and int(res.iterations.max()) <= 200
    assert bool((res.certificate <= 1e-6).all())
    ref = reference(p)
    assert float(ref.relative_gap(res.objective).max()) <= 1e-6  # the certificate bounds the gap


def test_float32_iterates_that_stall_stop_early_with_a_warning():
    """A tolerance below what float32 iterates reach: the instances leave the batch once their
    iterates stop changing, unconverged and with a warning, instead of running to max_iter."""
    p = l2o.QuadraticFamily(n=30, condition_number=100.0).sample(4, 0, dtype=torch.float32)
    with pytest.warns(RuntimeWarning, match=r"4 of 4 instance\(s\) stopped .*float32 .*float64"):
        res = l2o.solve(make_solver("fista_restart"), p, tol=1e-12, max_iter=10_000)
    assert not bool(res.converged.any()) and int(res.iterations.max()) < 2000
    assert bool((res.certificate > 1e-12).all())
    # float64 iterates are never declared stalled: they run to max_iter
    res64 = l2o.solve(make_solver("fista_restart"), p.to(dtype=torch.float64), tol=1e-30, max_iter=300)
    assert res64.iterations.tolist() == [300] * 4


def test_float32_iterates_of_float64_instances():
    """``iterate_dtype=float32``: the float32 iteration certified in float64; instances that
    stall in float32 continue in float64, from where they stalled."""
    p = lasso()
    res = l2o.solve(make_solver("fista_restart"), p, tol=1e-6, iterate_dtype=torch.float32)
    p32 = l2o.solve(make_solver("fista_restart"), p.to(dtype=torch.float32), tol=1e-6)
    assert res.x.dtype == torch.float64 and bool(res.converged.all())
    assert torch.equal(res.iterations, p32.iterations) and torch.equal(res.x, p32.x.double())
    assert bool((res.certificate <= 1e-6).all())
    q = qp()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fine = l2o.solve(make_solver("fista_restart"), q, tol=1e-12, iterate_dtype=torch.float32)
    assert bool(fine.converged.all()) and bool((fine.certificate <= 1e-12).all())
    assert fine.x.dtype == torch.float64 and int(fine.iterations.max()) <= 10_000
