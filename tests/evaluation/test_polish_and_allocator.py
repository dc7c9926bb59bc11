"""Active-set polishing (``fista_polish``, ``Instances.polish``, ``solve_on_index_sets``) and the allocator setting."""

import pytest
import torch

from l2o import LassoFamily, QuadraticFamily, make_solver, run
from l2o.evaluation import reference
from l2o.problems.parts import solve_on_index_sets
from l2o.utils.performance import tune_allocator


@pytest.mark.parametrize(
    "family", [LassoFamily(m=40, n=80, nnz=6), QuadraticFamily(n=30, condition_number=50.0, box=0.1)]
)
def test_polish_lands_on_the_exact_optimum_sooner(family):
    p = family.sample(5, 1)
    ref = reference(p, tol=1e-12)
    polished = run(make_solver("fista_polish", polish_every=5), p, max_iter=400, reference=ref)
    plain = run(make_solver("fista_restart"), p, max_iter=400, reference=ref)
    k_pol, k_plain = polished.iterations_to(1e-12), plain.iterations_to(1e-12)
    assert bool((k_pol > 0).all())
    assert bool(((k_pol <= k_plain) | (k_plain < 0)).all())
    assert int(k_pol.sum()) < int(torch.where(k_plain < 0, 400, k_plain).sum())


def test_polish_rejects_a_wrong_support_and_leaves_x_unchanged():
    p = LassoFamily(m=40, n=80, nnz=6).sample(3, 2)
    x_star = reference(p).x
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


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_solve_on_index_sets_by_chunks_matches_one_dense_solve_per_instance(chunk):
    g = torch.Generator().manual_seed(0)
    A = torch.randn(30, 20, generator=g, dtype=torch.float64)
    H = A.T @ A
    rhs = torch.randn(7, 20, generator=g, dtype=torch.float64)
    mask = torch.rand(7, 20, generator=g) < torch.linspace(0.0, 0.9, 7, dtype=torch.float64).unsqueeze(-1)
    z, ok = solve_on_index_sets(H, rhs, mask, chunk=chunk)
    assert bool(ok.all())
    for b in range(7):
        idx = torch.nonzero(mask[b]).squeeze(-1)
        expected = torch.zeros(20, dtype=torch.float64)
        if idx.numel():
            expected[idx] = torch.linalg.solve(H[idx][:, idx], rhs[b, idx])
        torch.testing.assert_close(z[b], expected, rtol=0, atol=1e-10)
