"""Dense BFGS (``bfgs``, ``bfgs_wolfe``) and the batched strong-Wolfe line search.

Checked against independent references: the inverse update against the textbook product
formula (numpy), the iterates and iteration counts against ``scipy.optimize.minimize(
method="BFGS")`` run on each instance alone (with SciPy's H_0 = I and initial step, the
iterates agree to 1e-8 and the counts within 2), the solutions against the certified
reference, the line search's output against the strong-Wolfe conditions evaluated
directly, and the superlinear rate on Rosenbrock's function.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.optimize as so
import torch

import l2o
from l2o.evaluation import reference
from l2o.optimizers.base import batch_dot
from l2o.optimizers.bfgs import BFGS, BFGSWolfe, bfgs_update, strong_wolfe
from l2o.problems import AutogradInstances
from l2o.registry import make_solver

B = 3


@functools.cache
def logistic():
    return l2o.LogisticFamily(n_samples=120, d=15, nnz=4, lam=0.02, penalty="l2", noise_std=0.5).sample(B, 0)


@functools.cache
def logsumexp():
    return l2o.problems.LogSumExpFamily(n=12, m=48, mu=0.5, reg=1e-2).sample(B, 0)


PROBLEMS = {"logistic": logistic, "logsumexp": logsumexp}


def rosenbrock(batch: int = 1) -> AutogradInstances:
    return AutogradInstances(lambda x: 100 * (x[:, 1] - x[:, 0] ** 2) ** 2 + (1 - x[:, 0]) ** 2, batch, 2,
                             smoothness=1000.0)


def scipy_bfgs(p, b: int, x0: np.ndarray, gtol: float):
    """SciPy's BFGS on instance ``b`` alone: (iterates incl. x0, result)."""
    one = p.index(torch.tensor([b]))
    fun = lambda w: float(one.smooth_objective(torch.from_numpy(w)[None])[0])  # noqa: E731
    jac = lambda w: one.grad(torch.from_numpy(w)[None])[0].numpy()  # noqa: E731
    xs = [x0.copy()]
    res = so.minimize(fun, x0, jac=jac, method="BFGS", callback=lambda xk, *a: xs.append(np.array(xk)),
                      options={"gtol": gtol, "maxiter": 500})
    return xs, res


def run_until(solver, p, x0, gtol: float, max_iter: int = 500):
    """Iterates (incl. x0) and, per instance, the first k with ||grad||_inf <= gtol."""
    s = solver.init(p, x0)
    xs = [s.x]
    hit = torch.full((p.batch_size,), -1)
    for k in range(1, max_iter + 1):
        s = solver.step(p, s)
        xs.append(s.x)
        hit = torch.where((hit < 0) & (s.g.abs().amax(-1) <= gtol), k, hit)
        if bool((hit > 0).all()):
            break
    return torch.stack(xs), hit


# --------------------------------------------------------------------------------------
# The inverse update
# --------------------------------------------------------------------------------------
def test_update_matches_the_textbook_product_formula():
    g = np.random.default_rng(0)
    n = 7
    Hs, ss, ys, refs = [], [], [], []
    for _ in range(B):
        M = g.standard_normal((n, n))
        H = M @ M.T + np.eye(n)
        s = g.standard_normal(n)
        y = s + 0.3 * g.standard_normal(n)
        assert s @ y > 0
        rho = 1.0 / (s @ y)
        V = np.eye(n) - rho * np.outer(y, s)
        refs.append(V.T @ H @ V + rho * np.outer(s, s))
        Hs.append(H), ss.append(s), ys.append(y)
    t = lambda a: torch.tensor(np.array(a))  # noqa: E731
    H_new, scaled = bfgs_update(t(Hs), t(ss), t(ys), torch.ones(B, dtype=torch.bool))
    np.testing.assert_allclose(H_new.numpy(), np.array(refs), rtol=1e-12, atol=1e-12)
    assert bool(scaled.all())
    # secant equation and exact symmetry
    assert torch.allclose(torch.bmm(H_new, t(ys).unsqueeze(-1)).squeeze(-1), t(ss), rtol=1e-12, atol=1e-12)
    assert torch.equal(H_new, H_new.mT)


def test_update_skips_failed_curvature_and_rescales_first():
    n = 4
    H = torch.eye(n, dtype=torch.float64).expand(2, n, n).clone()
    s = torch.tensor([[1.0, 0, 0, 0], [1.0, 0, 0, 0]], dtype=torch.float64)
    y = torch.tensor([[-1.0, 0, 0, 0], [4.0, 0, 0, 0]], dtype=torch.float64)  # s'y < 0, then > 0
    H_new, scaled = bfgs_update(H, s, y, torch.zeros(2, dtype=torch.bool))
    assert torch.equal(H_new[0], H[0]) and not bool(scaled[0])  # skipped, still unscaled
    # instance 1: H_0 <- (s'y / y'y) I = I / 4 first (N&W 6.20), then the secant pair
    assert bool(scaled[1])
    assert torch.allclose(H_new[1].diagonal()[1:], torch.full((3,), 0.25, dtype=torch.float64))
    assert torch.allclose(H_new[1] @ y[1], s[1])


# --------------------------------------------------------------------------------------
# The strong-Wolfe line search
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1.0, 1e-3, 30.0, 1e4])
def test_strong_wolfe_meets_both_conditions(scale):
    """From directions too short (bracketing must extend) or too long (zoom must shrink),
    every instance gets a step meeting both strong-Wolfe conditions, checked directly."""
    p = logistic()
    x = torch.randn(B, p.dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    f, g = p.value_and_grad(x)
    d = -scale * g
    c1, c2 = 1e-4, 0.9
    t, x1, f1, g1, found = strong_wolfe(p, x, f, g, d, c1=c1, c2=c2)
    assert bool(found.all())
    assert torch.allclose(x1, x + t.unsqueeze(-1) * d, rtol=0, atol=1e-14)
    f_chk, g_chk = p.value_and_grad(x1)
    assert torch.equal(f1, f_chk) and torch.equal(g1, g_chk)
    slope = batch_dot(g, d)
    assert bool((f1 <= f + c1 * t * slope).all())
    assert bool((batch_dot(g1, d).abs() <= c2 * slope.abs()).all())
    if scale == 1e4:
        assert bool((t < 1).all())
    if scale == 1e-3:
        assert bool((t > 1).all())


def test_strong_wolfe_agrees_with_scipy_where_the_unit_step_is_accepted_and_backs_off_from_nan():
    p = logistic()
    x = p.initial_point()
    f, g = p.value_and_grad(x)
    d = -g / p.smoothness().unsqueeze(-1)
    t, *_ = strong_wolfe(p, x, f, g, d)
    for b in range(B):
        one = p.index(torch.tensor([b]))
        fun = lambda w: float(one.smooth_objective(torch.from_numpy(w)[None])[0])  # noqa: E731
        jac = lambda w: one.grad(torch.from_numpy(w)[None])[0].numpy()  # noqa: E731
        alpha = so.line_search(fun, jac, x[b].numpy(), d[b].numpy(), gfk=g[b].numpy(), old_fval=float(f[b]))[0]
        assert alpha is not None
        assert float(t[b]) == pytest.approx(alpha, rel=1e-12)
    # a function that is NaN beyond x_1 = 1: the search retreats inside the domain
    barrier = AutogradInstances(lambda z: 0.5 * (z - 3.0).square().sum(-1) - torch.log(1.0 - z).sum(-1), 1, 1,
                                smoothness=10.0)
    z = torch.zeros(1, 1, dtype=torch.float64)
    fz, gz = barrier.value_and_grad(z)
    t, z1, f1, _, found = strong_wolfe(barrier, z, fz, gz, torch.full_like(z, 4.0))
    assert bool(found.all()) and float(z1) < 1.0 and bool(torch.isfinite(f1).all()) and float(f1) < float(fz)


# --------------------------------------------------------------------------------------
# Against SciPy
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", list(PROBLEMS))
def test_scipy_configuration_reproduces_scipy_iterates(which):
    """With SciPy's H_0 = I, no rescaling and its interpolated initial step, ``bfgs_wolfe``
    follows SciPy's iterates (to 1e-8 for the first 5 iterations: both line searches accept
    the same first trial; where that trial fails, our zoom and SciPy's MINPACK search may
    pick different acceptable steps), stops within 2 iterations of it and at its solution."""
    p = PROBLEMS[which]()
    gtol = 1e-7
    solver = BFGSWolfe(h0="identity", initial_scaling=False, initial_step="interpolate")
    xs, hit = run_until(solver, p, p.initial_point(), gtol)
    for b in range(B):
        ref_xs, res = scipy_bfgs(p, b, np.zeros(p.dim), gtol)
        assert res.success
        assert abs(int(hit[b]) - res.nit) <= 2, f"instance {b}: {int(hit[b])} vs SciPy {res.nit} iterations"
        scale = 1 + np.abs(ref_xs[-1]).max()
        np.testing.assert_allclose(xs[:6, b].numpy(), np.array(ref_xs[:6]), rtol=0, atol=1e-8 * scale)
        np.testing.assert_allclose(xs[int(hit[b]), b].numpy(), res.x, rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize("which", list(PROBLEMS))
@pytest.mark.parametrize("name", ["bfgs", "bfgs_wolfe"])
def test_defaults_reach_the_reference_no_slower_than_scipy(which, name):
    """The defaults (H_0 = I/L, rescaled by N&W 6.20) reach SciPy's solution and the certified
    reference's objective (relative gap <= 1e-10), in at most SciPy's iteration count + 2."""
    p = PROBLEMS[which]()
    gtol = 1e-8
    xs, hit = run_until(make_solver(name), p, p.initial_point(), gtol)
    assert bool((hit > 0).all())
    ref = reference(p)
    x_final = xs[hit, torch.arange(B)]
    assert bool((ref.relative_gap(p.objective(x_final)) <= 1e-10).all())
    for b in range(B):
        _, res = scipy_bfgs(p, b, np.zeros(p.dim), gtol)
        np.testing.assert_allclose(x_final[b].numpy(), res.x, rtol=0, atol=1e-6)
        assert int(hit[b]) <= res.nit + 2


def test_rosenbrock_iteration_counts_and_superlinear_rate():
    """Rosenbrock from (-1.2, 1) (N&W's example): SciPy's configuration needs SciPy's count
    within 2; every line search converges to (1, 1) with error ratios e_{k+1} / e_k falling
    below 0.02 at the end (superlinear; a linear method keeps a ratio near its rate)."""
    p = rosenbrock()
    x0 = torch.tensor([[-1.2, 1.0]], dtype=torch.float64)
    scipy_like = BFGSWolfe(h0="identity", initial_scaling=False, initial_step="interpolate")
    _, hit = run_until(scipy_like, p, x0, 1e-9)
    res = so.minimize(so.rosen, x0[0].numpy(), jac=so.rosen_der, method="BFGS", options={"gtol": 1e-9})
    assert abs(int(hit[0]) - res.nit) <= 2
    for solver in (BFGS(), BFGSWolfe(), scipy_like):
        xs, hit = run_until(solver, p, x0, 1e-12, max_iter=200)
        assert int(hit[0]) > 0
        err = torch.linalg.vector_norm(xs[:, 0] - 1.0, dim=-1)
        last = int((err > 1e-11).nonzero().max())  # the last iterate above round-off
        ratios = err[1:last + 2] / err[:last + 1]
        assert float(ratios[-3:].min()) < 0.02, ratios[-6:].tolist()
        assert float(err[last + 1]) < 1e-11


# --------------------------------------------------------------------------------------
# Refusals and descent
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bfgs", "bfgs_wolfe"])
@pytest.mark.parametrize("which,kind", [("lasso", "nonsmooth"), ("logistic_l1", "nonsmooth"), ("box_qp", "box")])
def test_refuses_nonsmooth_problems_with_reason_and_suggestion(name, which, kind):
    p = {
        "lasso": lambda: l2o.LassoFamily(m=10, n=20, nnz=3).sample(2, 0),
        "logistic_l1": lambda: l2o.LogisticFamily(n_samples=30, d=6, nnz=2, penalty="l1").sample(2, 0),
        "box_qp": lambda: l2o.QuadraticFamily(n=6, box=0.1).sample(2, 0),
    }[which]()
    solver = make_solver(name)
    reason = solver.skip(p)
    assert reason is not None and f"'{name}'" in reason and kind in reason and "fista" in reason
    with pytest.raises(ValueError, match=name):
        solver.init(p, p.initial_point())


def test_refuses_dimensions_beyond_max_dim_and_bad_arguments():
    p = l2o.QuadraticFamily(n=20).sample(1, 0)
    reason = BFGS(max_dim=10).skip(p)
    assert reason is not None and "lbfgs" in reason and "n = 20" in reason
    for kwargs, word in [({"line_search": "exact"}, "line_search"), ({"c1": 0.95}, "c1"), ({"h0": "eye"}, "h0"),
                         ({"initial_step": "big"}, "initial_step"), ({"max_evals": 0}, "max_evals")]:
        with pytest.raises(ValueError, match=word):
            BFGS(**kwargs)


@pytest.mark.parametrize("name", ["bfgs", "bfgs_wolfe"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_monotone_descent(name, dtype):
    p = logsumexp().to(dtype=dtype)
    s = make_solver(name).init(p, p.initial_point())
    exact = logsumexp()
    F = [exact.objective(s.x.double())]
    for _ in range(40):
        s = make_solver(name).step(p, s)
        F.append(exact.objective(s.x.double()))
    F = torch.stack(F)
    rel = 1e-12 if dtype == torch.float64 else 1e-6
    assert bool((F[1:] <= F[:-1] + rel * (F[:-1].abs() + 1)).all())
