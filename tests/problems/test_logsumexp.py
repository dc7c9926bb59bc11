"""The log-sum-exp family: objective, gradient, Hessian, smoothness, duality gap, reference,
splits and presets, each against an independent computation (numpy/scipy, autograd, a
direct maximization of the dual)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.optimize as so
import scipy.special as sp
import torch

import l2o
from l2o.evaluation import reference
from l2o.problems import LogSumExpFamily, LogSumExpInstances
from l2o.problems.splits import family_splits
from l2o.registry import PRESETS, make_family

B = 3


@functools.cache
def batch(shared: bool = False, reg: float = 0.05, condition_number: float = 10.0):
    return LogSumExpFamily(n=6, m=20, mu=0.3, reg=reg, condition_number=condition_number,
                           shared_matrix=shared).sample(B, 0)


def numpy_f(A, b, mu, reg, x):
    return mu * sp.logsumexp((A @ x - b) / mu) + 0.5 * reg * x @ x


def point(p, seed=1, scale=1.0):
    return scale * torch.randn(p.batch_size, p.dim, generator=torch.Generator().manual_seed(seed), dtype=p.dtype)


@pytest.mark.parametrize("shared", [False, True])
def test_objective_gradient_hessian_against_numpy_and_autograd(shared):
    p = batch(shared)
    x = point(p)
    f, g = p.value_and_grad(x)
    for b in range(B):
        A = (p.A if shared else p.A[b]).numpy()
        ref = numpy_f(A, p.b[b].numpy(), 0.3, 0.05, x[b].numpy())
        assert float(f[b]) == pytest.approx(ref, rel=1e-14)
    xr = x.clone().requires_grad_(True)
    auto = torch.autograd.grad(p.smooth_objective(xr).sum(), xr)[0]
    assert torch.allclose(g, auto, rtol=1e-12, atol=1e-14)
    H = p.hessian(x)
    for b in range(B):
        Hb = torch.autograd.functional.hessian(lambda z: p.index(torch.tensor([b])).smooth_objective(z[None])[0], x[b])
        assert torch.allclose(H[b], Hb, rtol=1e-10, atol=1e-12)
    assert torch.equal(p.grad(x), g) and torch.equal(p.smooth_objective(x), f)


def test_stable_for_huge_arguments():
    """log-sum-exp of values ~1e6 / mu: no overflow, and the gradient is a convex combination."""
    p = batch()
    x = point(p, scale=1e5)
    f, g = p.value_and_grad(x)
    assert bool(torch.isfinite(f).all()) and bool(torch.isfinite(g).all())
    w_part = g - p.reg.unsqueeze(-1) * x
    for b in range(B):  # A^T w with w in the simplex: inside the convex hull of the rows of A
        A = p.A[b].numpy()
        res = so.linprog(np.zeros(A.shape[0]), A_eq=np.vstack([A.T, np.ones(A.shape[0])]),
                         b_eq=np.append(w_part[b].numpy(), 1.0), bounds=(0, None))
        assert res.status == 0


def test_smoothness_bounds_the_hessian_and_strong_convexity_is_reg():
    p = batch()
    L = p.smoothness()
    for seed in range(5):
        ev = torch.linalg.eigvalsh(p.hessian(point(p, seed, scale=3.0)))
        assert bool((ev[:, -1] <= L * (1 + 1e-12)).all())
        assert bool((ev[:, 0] >= p.reg * (1 - 1e-12)).all())
    A = p.A
    expected = torch.linalg.matrix_norm(A, ord=2) ** 2 / (2 * 0.3) + 0.05
    assert torch.allclose(L, expected, rtol=1e-13)
    assert torch.equal(p.strong_convexity(), p.reg)


def test_duality_gap_is_f_minus_a_dual_value_that_lower_bounds_f_star():
    """gap = f(x) - D(w(x)) with D(w) = -||A^T w||^2/(2 reg) - b^T w + mu H(w) computed directly;
    D <= f* <= f(x), and the gap vanishes at the reference."""
    p = batch()
    ref = reference(p, tol=1e-13)
    for seed in range(3):
        x = point(p, seed)
        gap, dual = p.duality_gap(x)
        f = p.smooth_objective(x)
        w = torch.softmax((torch.bmm(p.A, x.unsqueeze(-1)).squeeze(-1) - p.b) / p.mu.unsqueeze(-1), -1)
        AtW = torch.bmm(w.unsqueeze(1), p.A).squeeze(1)
        D = -(AtW.square().sum(-1)) / (2 * p.reg) - (p.b * w).sum(-1) - p.mu * torch.xlogy(w, w).sum(-1)
        assert torch.allclose(dual, D, rtol=1e-12, atol=1e-12)
        assert torch.allclose(gap, f - D, rtol=1e-9, atol=1e-12)
        assert bool((dual <= ref.objective + 1e-12).all()) and bool((ref.objective <= f + 1e-12).all())
    assert bool((ref.certificate <= 1e-13).all())


def test_reference_agrees_with_scipy():
    p = batch()
    ref = reference(p)
    assert "Newton" in ref.method and "duality gap" in ref.method
    assert bool((ref.certificate <= 1e-10).all())
    for b in range(B):
        A, bb = p.A[b].numpy(), p.b[b].numpy()
        res = so.minimize(lambda x: numpy_f(A, bb, 0.3, 0.05, x), np.zeros(p.dim),
                          jac=lambda x: A.T @ sp.softmax((A @ x - bb) / 0.3) + 0.05 * x, method="L-BFGS-B",
                          options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 10_000})
        assert float(ref.objective[b]) <= res.fun + 1e-12
        assert float(ref.objective[b]) == pytest.approx(res.fun, rel=1e-10)
        np.testing.assert_allclose(ref.x[b].numpy(), res.x, atol=1e-5)


def test_without_reg_the_certificate_is_the_relative_gradient_norm():
    p = batch(reg=0.0)
    x = point(p)
    assert p.certificate_name() == "relative gradient norm"
    expected = torch.linalg.vector_norm(p.grad(x), dim=-1) / torch.linalg.vector_norm(p.grad(0 * x), dim=-1)
    assert torch.allclose(p.certificate(x), expected, rtol=1e-12)


def test_family_sampling_is_deterministic_and_index_and_to_work():
    fam = LogSumExpFamily(n=5, m=12)
    a, b = fam.sample(4, 7), fam.sample(4, 7)
    assert torch.equal(a.A, b.A) and torch.equal(a.b, b.b)
    assert not torch.equal(fam.sample(4, 8).b, a.b)
    sub = a.index(torch.tensor([2, 0]))
    x = point(a)
    assert torch.allclose(sub.smooth_objective(x[[2, 0]]), a.smooth_objective(x)[[2, 0]], rtol=1e-15)
    f32 = a.to(dtype=torch.float32)
    assert f32.dtype == torch.float32 and f32.smooth_objective(x.float()).dtype == torch.float32
    # the conditioning knob spreads the column scales over exactly sqrt(kappa)
    c = LogSumExpFamily(n=8, m=32, condition_number=100.0).sample(1, 0)
    base = LogSumExpFamily(n=8, m=32).sample(1, 0)
    ratio = (c.A / base.A)[0, 0]
    assert float(ratio.max() / ratio.min()) == pytest.approx(10.0, rel=1e-12)


@pytest.mark.parametrize("kwargs,word", [({"n": 0}, "n"), ({"mu": 0.0}, "mu"), ({"reg": -1.0}, "reg"),
                                         ({"condition_number": 0.5}, "condition_number"),
                                         ({"data_scale": float("nan")}, "data_scale")])
def test_bad_hyperparameters_name_the_field(kwargs, word):
    with pytest.raises(ValueError, match=word):
        LogSumExpFamily(**kwargs)


def test_bad_instances_are_refused():
    A = torch.zeros(4, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="b"):
        LogSumExpInstances(A, torch.zeros(2, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="mu"):
        LogSumExpInstances(A, torch.zeros(2, 4, dtype=torch.float64), mu=0.0)


def test_splits_and_presets():
    fam = make_family("logsumexp_100")
    assert (fam.n, fam.m) == (100, 400) and isinstance(fam, LogSumExpFamily)
    splits = family_splits(fam)
    for name in ("mu_0.05", "data_scale_2", "condition_100", "dim_200", "x0_+10", "objective_shift_1"):
        assert name in splits
    assert splits["dim_200"].apply(fam).m == 800
    assert splits["mu_0.05"].apply(fam).mu == pytest.approx(0.05)
    for name in ("logsumexp_500", "logistic_l2_500", "ls_500x1000"):
        assert name in PRESETS
        assert make_family(name).sample(1, 0).dim == 500
    assert make_family("logistic_l2_100").penalty == "l2"


def test_quasi_newton_solvers_accept_it_and_reach_the_reference():
    p = batch()
    ref = reference(p)
    for name in ("bfgs", "bfgs_wolfe", "lbfgs", "newton"):
        res = l2o.solve(l2o.make_solver(name), p, tol=1e-10, max_iter=500)
        assert bool(res.converged.all()), name
        assert bool((ref.relative_gap(p.objective(res.x)) <= 1e-9).all()), name
