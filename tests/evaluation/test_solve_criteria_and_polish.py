"""solve(criterion=...), active-set polishing and the allocator setting."""

import pytest
import torch

from l2o import LassoFamily, QuadraticFamily, make_solver, run, solve
from l2o.utils.performance import tune_allocator


def test_residual_criterion_stops_on_the_fixed_point_residual():
    p = LassoFamily(m=30, n=60, nnz=5).sample(4, 0)
    r = solve(make_solver("fista_restart"), p, tol=1e-7, criterion="residual", check_every=1)
    assert bool(r.converged.all())
    assert float(p.fixed_point_residual(r.x).max()) <= 1e-7
    with pytest.raises(ValueError, match="criterion"):
        solve(make_solver("fista"), p, criterion="gap")


def test_float32_solve_reaches_1e6_with_the_residual_criterion():
    p = LassoFamily(m=30, n=60, nnz=5).sample(4, 0)
    ref = p.reference()
    r = solve(make_solver("fista_restart"), p.to(dtype=torch.float32), tol=1e-6, criterion="residual", max_iter=3000)
    assert bool(r.converged.all())
    assert float(ref.relative_gap(p.objective(r.x.double())).max()) <= 1e-6


@pytest.mark.parametrize("family", [LassoFamily(m=40, n=80, nnz=6), QuadraticFamily(n=30, condition_number=50.0, box=0.1)])
def test_polish_lands_on_the_exact_optimum_sooner(family):
    p = family.sample(5, 1)
    ref = p.reference(tol=1e-12)
    polished = run(make_solver("fista_polish", polish_every=5), p, max_iter=400, reference=ref)
    plain = run(make_solver("fista_restart"), p, max_iter=400, reference=ref)
    k_pol, k_plain = polished.iterations_to(1e-12), plain.iterations_to(1e-12)
    assert bool((k_pol > 0).all())
    assert bool(((k_pol <= k_plain) | (k_plain < 0)).all())
    assert int(k_pol.sum()) < int(torch.where(k_plain < 0, 400, k_plain).sum())


def test_polish_rejects_a_wrong_support_and_leaves_x_unchanged():
    p = LassoFamily(m=40, n=80, nnz=6).sample(3, 2)
    x_star = p.reference().x
    wrong = x_star.clone()
    wrong[:, 0] = 1.0 + wrong[:, 0].abs()  # add or change a coordinate: stationarity on it fails somewhere
    z, accepted = p.polish(wrong)
    assert not bool(accepted.all())
    torch.testing.assert_close(z[~accepted], wrong[~accepted])


def test_tune_allocator_applies_on_glibc_and_is_idempotent():
    import platform
    import sys

    expected = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert tune_allocator() is expected
    assert tune_allocator() is expected
