"""Textbook convergence guarantees, checked at every iteration of a run in float64.

Each bound is checked for k = 1..K against the certified reference of the problem
(``reference(problem)``, closed form for QPs and least squares), with a slack for
rounding only: ``gap_k <= bound_k * (1 + 1e-9) + 1e-12``. Where a bound is loose on
random instances, a negative control shows that it still has power: a method without
the guarantee (e.g. gradient descent against an accelerated bound) violates it.

References: Beck and Teboulle (2009) for ISTA / FISTA; Nesterov, *Lectures on Convex
Optimization* (2018), Thm 2.1.14-2.1.15 (GD), 2.2.2-2.2.3 (accelerated methods);
Polyak (1964) for the heavy ball.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

import l2o
from l2o.evaluation import reference
from l2o.registry import make_solver

B = 4


K = 300  # iterations checked
MUL, ABS = 1e-9, 1e-12  # rounding slack


@functools.cache
def lasso():
    p = l2o.LassoFamily(m=30, n=60, nnz=6, lam=0.1).sample(B, 0)
    reference(p, tol=1e-13)
    return p


@functools.cache
def qp(condition_number: float = 100.0, n: int = 40):
    return l2o.QuadraticFamily(n=n, condition_number=condition_number).sample(B, 0)


@functools.cache
def least_squares_under():
    """m < d, noiseless: mu = 0, F* = 0, a whole affine set of minimizers."""
    return l2o.LeastSquaresFamily(d=40, m=25).sample(B, 0)


@functools.cache
def least_squares_over():
    """m > d with noise: mu = sigma_min(W)^2 > 0 and F* > 0."""
    return l2o.LeastSquaresFamily(d=20, m=40, noise_std=0.1).sample(B, 0)


@functools.cache
def logistic_l2():
    return l2o.LogisticFamily(n_samples=100, d=10, nnz=4, lam=0.05, penalty="l2").sample(B, 0)


PROBLEMS = {
    "lasso": lasso,
    "qp": qp,
    "least_squares_under": least_squares_under,
    "least_squares_over": least_squares_over,
    "logistic_l2": logistic_l2,
}


def start(p, kind):
    if kind == "zero":
        return torch.zeros(p.batch_size, p.dim, dtype=p.dtype)
    g = torch.Generator().manual_seed(7)
    return torch.randn(p.batch_size, p.dim, generator=g, dtype=p.dtype)


def nearest_minimizer(p, x0):
    """(x*, F*) with x* the minimizer closest to x0 (for the affine solution set of an
    underdetermined least squares: the projection of x0), else the reference."""
    ref = reference(p)
    if p is least_squares_under():
        A, b = p.A, p.b
        residual = torch.bmm(A, x0.unsqueeze(-1)).squeeze(-1) - b
        x_star = x0 - (torch.linalg.pinv(A) @ residual.unsqueeze(-1)).squeeze(-1)
        return x_star, p.objective(x_star)
    return ref.x, ref.objective


def run_states(solver, p, x0, steps=K):
    """Iterates ``(steps + 1, B, n)`` and objectives ``(steps + 1, B)``."""
    state = solver.init(p, x0)
    xs = [state.x]
    for _ in range(steps):
        state = solver.step(p, state)
        xs.append(state.x)
    X = torch.stack(xs)
    return X, torch.stack([p.objective(x) for x in xs])


def assert_bound(values, bound, what):
    """values, bound: ``(K + 1, B)``; checked wherever bound is given (finite)."""
    ok = values <= bound * (1 + MUL) + ABS
    if not bool(ok.all()):
        k, b = (~ok).nonzero()[0].tolist()
        raise AssertionError(
            f"{what}: violated at k={k}, instance {b}: {float(values[k, b]):.6g} > {float(bound[k, b]):.6g}"
        )


def ks(steps=K):
    return torch.arange(steps + 1, dtype=torch.float64).unsqueeze(-1)


# --------------------------------------------------------------------------------------
# Sublinear rates (convex)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "solver_name,problem_name",
    [("ista", "lasso"), ("gd", "qp"), ("gd", "least_squares_under"), ("gd", "logistic_l2"), ("ista", "logistic_l2")],
)
@pytest.mark.parametrize("kind", ["zero", "random"])
def test_proximal_gradient_rate(solver_name, problem_name, kind):
    """ISTA / GD with step 1/L: F(x_k) - F* <= L ||x0 - x*||^2 / (2k)."""
    p = PROBLEMS[problem_name]()
    x0 = start(p, kind)
    x_star, f_star = nearest_minimizer(p, x0)
    L, R2 = p.smoothness(), (x0 - x_star).square().sum(-1)
    _, F = run_states(make_solver(solver_name), p, x0)
    k = ks()
    bound = torch.where(k > 0, L * R2 / (2 * k.clamp(min=1)), torch.full_like(F, math.inf))
    assert_bound(F - f_star, bound, f"{solver_name} O(1/k) rate on {problem_name}")


@pytest.mark.parametrize(
    "solver_name,problem_name",
    [("fista", "lasso"), ("nesterov", "qp"), ("nesterov", "least_squares_under"), ("nesterov", "logistic_l2"),
     ("fista", "least_squares_under")],
)
@pytest.mark.parametrize("kind", ["zero", "random"])
def test_accelerated_rate(solver_name, problem_name, kind):
    """FISTA / Nesterov: F(x_k) - F* <= 2 L ||x0 - x*||^2 / (k + 1)^2."""
    p = PROBLEMS[problem_name]()
    x0 = start(p, kind)
    x_star, f_star = nearest_minimizer(p, x0)
    L, R2 = p.smoothness(), (x0 - x_star).square().sum(-1)
    _, F = run_states(make_solver(solver_name), p, x0)
    bound = 2 * L * R2 / (ks() + 1) ** 2
    bound[0] = math.inf
    assert_bound(F - f_star, bound, f"{solver_name} O(1/k^2) rate on {problem_name}")


def test_accelerated_bound_has_power():
    """Negative control: plain GD violates the O(1/k^2) bound on an ill-conditioned QP,
    so the test above would catch an accelerated method that lost its momentum."""
    p = qp(1e4)
    x0 = start(p, "random")
    ref = reference(p)
    L, R2 = p.smoothness(), (x0 - ref.x).square().sum(-1)
    _, F = run_states(make_solver("gd"), p, x0)
    bound = 2 * L * R2 / (ks() + 1) ** 2
    assert bool(((F - ref.objective)[1:] > 2 * bound[1:]).any())
    # ... while Nesterov satisfies it on the same problem
    _, F = run_states(make_solver("nesterov"), p, x0)
    bound[0] = math.inf
    assert_bound(F - ref.objective, bound, "nesterov O(1/k^2) rate on kappa = 1e4")


# --------------------------------------------------------------------------------------
# Linear rates (strongly convex)
# --------------------------------------------------------------------------------------
SC_PROBLEMS = ["qp", "least_squares_over", "logistic_l2"]


def strongly_convex_data(problem_name, kind):
    p = PROBLEMS[problem_name]()
    x0 = start(p, kind)
    ref = reference(p)
    L, mu = p.smoothness(), p.strong_convexity()
    assert bool((mu > 0).all()) and bool((mu < L).all())
    return p, x0, ref, L, mu


@pytest.mark.parametrize("problem_name", SC_PROBLEMS)
@pytest.mark.parametrize("kind", ["zero", "random"])
def test_nesterov_strongly_convex_rate(problem_name, kind):
    """F(x_k) - F* <= (1 - sqrt(mu/L))^k (F(x0) - F* + mu/2 ||x0 - x*||^2)."""
    p, x0, ref, L, mu = strongly_convex_data(problem_name, kind)
    _, F = run_states(make_solver("nesterov_sc"), p, x0, 200)
    gap = F - ref.objective
    bound = (1 - (mu / L).sqrt()) ** ks(200) * (gap[0] + 0.5 * mu * (x0 - ref.x).square().sum(-1))
    assert_bound(gap, bound, f"nesterov_sc linear rate on {problem_name}")


def test_strongly_convex_bound_has_power():
    """Negative control: GD and convex Nesterov violate the accelerated linear bound at
    kappa = 100 (nesterov_sc itself comes within a few percent of it, see above)."""
    p, x0, ref, L, mu = strongly_convex_data("qp", "random")
    for name in ["gd", "nesterov"]:
        _, F = run_states(make_solver(name), p, x0, 200)
        gap = F - ref.objective
        bound = (1 - (mu / L).sqrt()) ** ks(200) * (gap[0] + 0.5 * mu * (x0 - ref.x).square().sum(-1))
        assert bool((gap > 10 * bound + 1e-12).any()), name


@pytest.mark.parametrize("problem_name", SC_PROBLEMS)
@pytest.mark.parametrize("kind", ["zero", "random"])
def test_gradient_descent_distance_rate(problem_name, kind):
    """GD with step 1/L on mu-strongly convex f: ||x_k - x*||^2 <= (1 - mu/L)^k ||x0 - x*||^2."""
    p, x0, ref, L, mu = strongly_convex_data(problem_name, kind)
    X, _ = run_states(make_solver("gd"), p, x0)
    if problem_name == "logistic_l2":
        x_star = polished_logistic_minimizer(p)
    else:
        x_star = ref.x
    dist2 = (X - x_star).square().sum(-1)
    bound = (1 - mu / L) ** ks() * dist2[0]
    assert_bound(dist2, bound, f"gd distance rate on {problem_name}")


def polished_logistic_minimizer(p):
    """The reference of an l2 logistic batch, refined by exact Newton steps so that it is
    accurate to ~1e-15 in x (the reference is certified on the objective only)."""
    x = reference(p).x.clone()
    for _ in range(3):
        _, g = p.value_and_grad(x)
        x = x - torch.linalg.solve(p.hessian(x), g.unsqueeze(-1)).squeeze(-1)
    _, g = p.value_and_grad(x)
    assert float(g.norm(dim=-1).max()) < 1e-14
    return x


@pytest.mark.parametrize("condition_number", [10.0, 100.0])
def test_gradient_descent_matches_closed_form_on_quadratic(condition_number):
    """On F = 1/2 x'Qx + q'x, GD with step 1/L is x_k - x* = (I - Q/L)^k (x0 - x*):
    checked to 1e-10 (relative) at every k, so the step size is exactly 1/lambda_max."""
    p = qp(condition_number)
    x0 = start(p, "random")
    ref = reference(p)
    evals, U = torch.linalg.eigh(p.Q)
    L = evals[-1]
    assert torch.allclose(p.smoothness(), L.expand(B), rtol=1e-12)
    X, _ = run_states(make_solver("gd"), p, x0, 100)
    e0 = (x0 - ref.x) @ U  # coordinates in the eigenbasis
    factors = (1 - evals / L) ** ks(100)  # (K + 1, n)
    expected = (e0.unsqueeze(0) * factors.unsqueeze(1)) @ U.T + ref.x
    err = (X - expected).norm(dim=-1) / (x0 - ref.x).norm(dim=-1)
    assert float(err.max()) < 1e-10


# --------------------------------------------------------------------------------------
# Heavy ball
# --------------------------------------------------------------------------------------
def test_heavy_ball_polyak_parameters_on_quadratic():
    """With mu > 0 on a quadratic, heavy ball uses Polyak's alpha = 4/(sqrt L + sqrt mu)^2,
    beta = ((sqrt L - sqrt mu)/(sqrt L + sqrt mu))^2: checked against a hand-written
    recursion, then the relative gap at k = 200 is < 1e-10 for kappa = 100 (where GD with
    step 1/L is still above 1e-4: the rate is the accelerated one)."""
    p = qp(100.0)
    x0 = start(p, "random")
    L, mu = p.smoothness(), p.strong_convexity()
    alpha = (4 / (L.sqrt() + mu.sqrt()) ** 2).unsqueeze(-1)
    beta = (((L.sqrt() - mu.sqrt()) / (L.sqrt() + mu.sqrt())) ** 2).unsqueeze(-1)
    X, F = run_states(make_solver("heavy_ball"), p, x0, 200)
    x_prev, x = x0, x0
    for k in range(1, 31):
        x, x_prev = x - alpha * p.grad(x) + beta * (x - x_prev), x
        assert torch.allclose(X[k], x, rtol=1e-12, atol=1e-12), f"heavy ball differs from Polyak's recursion at k={k}"
    ref = reference(p)
    gap = ref.relative_gap(F[-1])
    assert float(gap.abs().max()) < 1e-10
    _, F_gd = run_states(make_solver("gd"), p, x0, 200)
    assert float(ref.relative_gap(F_gd[-1]).min()) > 1e-4


def test_heavy_ball_converges_without_strong_convexity():
    """Outside Polyak's setting (mu = 0), the default beta = 0.5, alpha = (1 - beta)/L is in
    the Ghadimi et al. (2015) region: the gap goes to 0 on an underdetermined least squares."""
    p = least_squares_under()
    x0 = start(p, "random")
    x_star, f_star = nearest_minimizer(p, x0)
    _, F = run_states(make_solver("heavy_ball"), p, x0)
    gap = F - f_star
    assert bool(torch.isfinite(gap).all())
    assert bool((gap[-1] <= 1e-2 * gap[0]).all())
    assert bool((gap[-1] <= gap[K // 2] + ABS).all())


# --------------------------------------------------------------------------------------
# FISTA with restart
# --------------------------------------------------------------------------------------
def test_fista_restart_is_faster_than_fista_on_lasso():
    """Both reach a 1e-10 relative gap on LASSO (reference certified to 1e-13); with
    adaptive restart in fewer iterations on every instance."""
    p = lasso()
    ref = reference(p, tol=1e-13)
    its = {}
    for name in ["fista", "fista_restart"]:
        tr = l2o.run(make_solver(name), p, max_iter=3000, reference=ref, tol=1e-10)
        its[name] = tr.iterations_to(1e-10)
        assert bool((its[name] > 0).all()), f"{name} did not reach 1e-10: {its[name].tolist()}"
    assert bool((its["fista_restart"] < its["fista"]).all()), its
    restarts = make_solver("fista_restart")
    state = restarts.init(p, p.initial_point())
    for _ in range(int(its["fista_restart"].max())):
        state = restarts.step(p, state)
    assert bool((state.restarts >= 1).all())  # the speed-up does come from restarting
