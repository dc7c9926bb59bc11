"""Active-set polishing (``fista_polish``, ``Instances.polish``) and the allocator setting."""

import pytest
import torch

from l2o import LassoFamily, QuadraticFamily, make_solver, run
from l2o.evaluation import reference
from l2o.utils.performance import tune_allocator


@pytest.mark.parametrize("family", [LassoFamily(m=40, n=80, nnz=6), QuadraticFamily(n=30, condition_number=50.0, box=0.1)])
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
