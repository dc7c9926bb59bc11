"""The batched Armijo line search, L-BFGS and Newton: mechanics and convergence.

Mechanics are checked against independent computations (the Armijo step is the first
power of two that satisfies the condition, per instance; the L-BFGS two-loop recursion
equals the dense BFGS inverse-Hessian update; state f / g match the problem). Then the
convergence claims: Newton solves a strongly convex QP in one step and copes with a
singular Hessian, L-BFGS reaches a 1e-10 relative gap on a QP with n = 50 within 3n
iterations, and both reach the reference of an l2 logistic regression to 1e-10.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import Tensor

import l2o
from l2o.evaluation import reference
from l2o.optimizers import LBFGS, Newton
from l2o.optimizers.line_search import armijo
from l2o.problems.base import Instances
from l2o.problems.quadratic import random_spd
from l2o.registry import make_solver

B = 4




@functools.cache
def qp(n: int = 30, condition_number: float = 100.0, shared: bool = True):
    return l2o.QuadraticFamily(n=n, condition_number=condition_number, shared_matrix=shared).sample(B, 0)


@functools.cache
def logistic_l2():
    return l2o.LogisticFamily(n_samples=200, d=20, nnz=5, lam=0.05, penalty="l2").sample(B, 0)


def random_point(p, seed=3, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(p.batch_size, p.dim, generator=g, dtype=p.dtype)


class LogBarrier(Instances):
    """f(x) = 1/2 ||x - c||^2 - sum_i log(1 - x_i), defined for x < 1 (NaN outside);
    no Hessian method, no reference (a problem a user could bring)."""

    def __init__(self, c: Tensor):
        self.c = c

    batch_size = property(lambda self: self.c.shape[0])
    dim = property(lambda self: self.c.shape[1])
    dtype = property(lambda self: self.c.dtype)
    device = property(lambda self: self.c.device)

    def index(self, idx):
        return LogBarrier(self.c[idx])

    def to(self, dtype=None, device=None):
        return LogBarrier(self.c.to(dtype=dtype or self.c.dtype, device=device or self.c.device))

    def smooth_objective(self, x):
        return 0.5 * (x - self.c).square().sum(-1) - torch.log(1 - x).sum(-1)

    def grad(self, x):
        return x - self.c + 1 / (1 - x)

    def smoothness(self):
        return torch.full((self.batch_size,), 2.0, dtype=self.dtype)


# --------------------------------------------------------------------------------------
# Armijo backtracking
# --------------------------------------------------------------------------------------
def test_armijo_takes_the_first_power_of_two_satisfying_the_condition_per_instance():
    p = qp()
    x = random_point(p)
    f, g = p.value_and_grad(x)
    # gradient directions scaled so that each instance needs a different number of halvings
    scales = torch.tensor([0.5, 4.0, 60.0, 1000.0], dtype=torch.float64) / p.smoothness()
    d = -scales.unsqueeze(-1) * g
    c1 = 1e-4
    x_new, f_new, g_new = armijo(p, x, f, g, d, c1=c1)
    t = ((x_new - x) * d).sum(-1) / d.square().sum(-1)
    j = -torch.log2(t)
    assert torch.allclose(j, j.round(), atol=1e-9), f"steps are not powers of 1/2: {t.tolist()}"
    assert len(set(j.round().tolist())) >= 3, "the instances should need different numbers of halvings"
    slope = (g * d).sum(-1)

    def armijo_holds(step):
        return p.smooth_objective(x + step.unsqueeze(-1) * d) <= f + c1 * step * slope

    t = 0.5 ** j.round()
    assert bool(armijo_holds(t).all())
    larger = 2 * t
    assert bool((~armijo_holds(larger) | (t == 1)).all()), "a larger power of 1/2 was acceptable"
    assert torch.allclose(x_new, x + t.unsqueeze(-1) * d, rtol=1e-13, atol=1e-13)
    f_chk, g_chk = p.value_and_grad(x_new)
    assert torch.allclose(f_new, f_chk, rtol=1e-13) and torch.allclose(g_new, g_chk, rtol=1e-12, atol=1e-12)
    assert bool((f_new < f).all())


def test_armijo_keeps_x_when_no_step_is_acceptable():
    """An ascent direction on some instances: those keep (x, f, g); the others move."""
    p = qp()
    x = random_point(p)
    f, g = p.value_and_grad(x)
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64).unsqueeze(-1)
    d = sign * g / p.smoothness().unsqueeze(-1)  # +g (ascent) on instances 0 and 2
    x_new, f_new, g_new = armijo(p, x, f, g, d, max_trials=30)
    for b in (0, 2):
        assert torch.equal(x_new[b], x[b]) and torch.equal(f_new[b], f[b]) and torch.equal(g_new[b], g[b])
    for b in (1, 3):
        assert float(f_new[b]) < float(f[b])


def test_armijo_rejects_non_finite_trial_points():
    """Trial points outside the domain (f = NaN) are rejected: the step backtracks until
    the point is inside and satisfies the Armijo condition."""
    c = torch.full((3, 5), 5.0, dtype=torch.float64)  # the minimizer 3 - sqrt(5) lies near the barrier
    p = LogBarrier(c)
    x = torch.full((3, 5), -0.5, dtype=torch.float64)
    f, g = p.value_and_grad(x)
    d = -g * torch.tensor([[100.0], [10.0], [1.0]], dtype=torch.float64)  # descent, towards x = 1
    assert bool((g < 0).all())
    assert not bool(torch.isfinite(p.smooth_objective(x + d)).any())  # t = 1 is outside for all
    x_new, f_new, _ = armijo(p, x, f, g, d)
    assert bool(torch.isfinite(x_new).all()) and bool(torch.isfinite(f_new).all())
    assert bool((x_new < 1).all()) and bool((x_new > x).all())
    assert bool((f_new < f).all())


# --------------------------------------------------------------------------------------
# L-BFGS
# --------------------------------------------------------------------------------------
def dense_bfgs_direction(state, memory) -> Tensor:
    """-H g with H built explicitly: H = gamma I, then the BFGS inverse update
    H <- (I - rho s y') H (I - rho y s') + rho s s' for the stored pairs, oldest first."""
    Bsz, n = state.x.shape
    eye = torch.eye(n, dtype=state.x.dtype)
    out = []
    for b in range(Bsz):
        H = state.gamma[b] * eye
        for i in [(state.head + j) % memory for j in range(memory)]:
            rho = state.rho[b, i]
            if rho == 0:
                continue
            s, y = state.S[b, i], state.Y[b, i]
            V = eye - rho * torch.outer(y, s)
            H = V.T @ H @ V + rho * torch.outer(s, s)
        out.append(-H @ state.g[b])
    return torch.stack(out)


@pytest.mark.parametrize("steps", [1, 2, 5, 9])
def test_lbfgs_two_loop_recursion_equals_dense_bfgs(steps):
    p = qp(n=8, condition_number=50.0, shared=False)
    solver = LBFGS(memory=3)
    state = solver.init(p, random_point(p))
    for _ in range(steps):
        state = solver.step(p, state)
    d = solver.direction(state)
    d_ref = dense_bfgs_direction(state, 3)
    err = (d - d_ref).norm(dim=-1) / d_ref.norm(dim=-1)
    assert float(err.max()) < 1e-10


def test_lbfgs_memory_holds_the_last_pairs_and_state_is_consistent():
    p = logistic_l2()
    solver = LBFGS(memory=4)
    states = [solver.init(p, random_point(p, scale=0.3))]
    for _ in range(7):
        states.append(solver.step(p, states[-1]))
    for k, st in enumerate(states):
        f, g = p.value_and_grad(st.x)
        assert torch.allclose(st.f, f, rtol=1e-13, atol=1e-15), f"state.f stale at step {k}"
        assert torch.allclose(st.g, g, rtol=1e-11, atol=1e-14), f"state.g stale at step {k}"
    last = states[-1]
    assert last.head == 7 % 4
    for back in range(4):  # the newest 4 pairs, in their ring-buffer slots
        k = 7 - back
        slot = (k - 1) % 4
        s = states[k].x - states[k - 1].x
        y = states[k].g - states[k - 1].g
        assert torch.allclose(last.S[:, slot], s, rtol=1e-13, atol=1e-15)
        assert torch.allclose(last.Y[:, slot], y, rtol=1e-13, atol=1e-15)
        sy = (s * y).sum(-1)
        assert bool((sy > 0).all())  # convex f: every pair has positive curvature
        assert torch.allclose(last.rho[:, slot], 1 / sy, rtol=1e-12)


def test_lbfgs_first_step_is_a_gradient_step():
    """Empty memory: d = -g / L, and on a QP t = 1 passes Armijo, so x1 = x0 - grad / L."""
    p = qp()
    x0 = random_point(p)
    x1 = LBFGS().step(p, LBFGS().init(p, x0)).x
    expected = x0 - p.grad(x0) / p.smoothness().unsqueeze(-1)
    assert torch.allclose(x1, expected, rtol=1e-13, atol=1e-13)


def test_lbfgs_rejects_bad_memory():
    with pytest.raises(ValueError, match="memory"):
        LBFGS(memory=0)


def test_lbfgs_reaches_1e_10_on_a_qp_of_n50_within_3n_iterations():
    p = l2o.QuadraticFamily(n=50, condition_number=100.0).sample(B, 0)
    for x0 in [p.initial_point(), random_point(p)]:
        tr = l2o.run(make_solver("lbfgs"), p, x0=x0, max_iter=150, tol=1e-10)
        its = tr.iterations_to(1e-10)
        assert bool((its > 0).all()) and bool((its <= 150).all()), its.tolist()


@pytest.mark.parametrize("solver_name,max_iter", [("lbfgs", 100), ("newton", 15)])
def test_lbfgs_and_newton_reach_the_logistic_reference(solver_name, max_iter):
    p = logistic_l2()
    ref = reference(p)
    assert float(ref.certificate.max()) <= 1e-10
    tr = l2o.run(
        make_solver(solver_name), p, x0=random_point(p, scale=0.5), max_iter=max_iter, reference=ref, tol=1e-10
    )
    its = tr.iterations_to(1e-10)
    assert bool((its > 0).all()), f"{solver_name} did not reach 1e-10 in {max_iter} iterations"
    assert float(tr.gap[-1].abs().max()) <= 1e-10
    assert float((tr.x - ref.x).norm(dim=-1).max()) < 1e-4  # x itself: ||x - x*||^2 <= 2 gap / mu


def test_newton_converges_quadratically_on_logistic():
    """Newton's local rate: once close, the gradient norm roughly squares each step."""
    p = logistic_l2()
    solver = Newton()
    state = solver.init(p, p.initial_point())
    norms = [float(state.g.norm(dim=-1).max())]
    for _ in range(6):
        state = solver.step(p, state)
        norms.append(float(state.g.norm(dim=-1).max()))
    # at the float64 round-off floor of a 200-sample gradient (about 1e-13, its exact
    # value depends on the BLAS build's summation order)
    assert norms[-1] < 1e-12 * norms[0]
    # some step goes from >= 1e-6 to <= 1e-10: superlinear, not linear
    assert any(a >= 1e-6 and b <= 1e-10 for a, b in zip(norms, norms[1:])), norms


# --------------------------------------------------------------------------------------
# Newton
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make",
    [lambda: qp(), lambda: qp(n=20, condition_number=1e4, shared=False),
     lambda: l2o.LeastSquaresFamily(d=20, m=40, noise_std=0.1).sample(B, 0)],
    ids=["qp", "qp_per_instance_kappa_1e4", "least_squares"],
)
def test_newton_solves_strongly_convex_quadratic_in_one_step(make):
    p = make()
    ref = reference(p)
    x0 = random_point(p)
    x1 = Newton().step(p, Newton().init(p, x0)).x
    rel = (x1 - ref.x).norm(dim=-1) / (x0 - ref.x).norm(dim=-1)
    assert float(rel.max()) < 1e-10
    assert float(ref.relative_gap(p.objective(x1)).abs().max()) < 1e-12


def singular_and_regular_qp() -> l2o.QuadraticInstances:
    """Per-instance Q: instances 0 and 2 positive definite (kappa = 100), 1 and 3 PSD
    of rank n - 3 with q in the range of Q (so F is bounded below)."""
    g = torch.Generator().manual_seed(5)
    n = 10
    Qs, qs = [], []
    for b in range(B):
        if b % 2 == 0:
            Q = random_spd(None, n, 100.0, g)
            q = torch.randn(n, generator=g, dtype=torch.float64)
        else:
            U, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
            s = torch.linspace(1.0, 10.0, n, dtype=torch.float64)
            s[:3] = 0.0
            Q = (U * s) @ U.T
            Q = 0.5 * (Q + Q.T)
            q = Q @ torch.randn(n, generator=g, dtype=torch.float64)
        Qs.append(Q)
        qs.append(q)
    return l2o.QuadraticInstances(torch.stack(Qs), torch.stack(qs))


def test_newton_with_singular_hessian_stays_finite_and_converges():
    p = l2o.LeastSquaresFamily(d=40, m=25).sample(B, 0)  # H = W'W has rank 25 < 40
    solver = Newton()
    state = solver.init(p, p.initial_point())
    f0 = p.objective(state.x)
    for _ in range(3):
        state = solver.step(p, state)
        assert bool(torch.isfinite(state.x).all())
    assert bool((p.objective(state.x) <= 1e-20 * f0).all())  # F* = 0 (consistent system)


def test_newton_regularizes_only_the_instances_whose_hessian_is_singular():
    """Batch invariance across a Cholesky failure: a positive definite instance solved in
    a batch with a singular one still gets the exact Newton step (one-step solve)."""
    p = singular_and_regular_qp()
    x0 = torch.zeros(B, p.dim, dtype=torch.float64)
    x1 = Newton().step(p, Newton().init(p, x0)).x
    for b in (0, 2):
        idx = torch.tensor([b])
        alone = Newton().step(p.index(idx), Newton().init(p.index(idx), x0[idx])).x
        x_star = reference(p.index(idx)).x
        assert float((alone - x_star).abs().max()) < 1e-12  # alone: exact
        err = float((x1[idx] - alone).abs().max())
        assert err < 1e-12, f"instance {b}: Newton step differs by {err:.3g} because of another instance"


def test_newton_check_problem_refuses_a_problem_without_hessian():
    """``needs_hessian`` problems without a ``hessian``: refused by ``check_problem`` with a
    ValueError (the documented contract), not only later by init."""
    p = LogBarrier(torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="(?i)hessian"):
        Newton().check_problem(p)


def test_newton_init_refuses_a_problem_without_hessian():
    p = LogBarrier(torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises((ValueError, NotImplementedError), match="(?i)hessian"):
        Newton().init(p, torch.zeros(2, 3, dtype=torch.float64))


def test_newton_state_is_consistent():
    p = logistic_l2()
    solver = Newton()
    state = solver.init(p, random_point(p, scale=0.5))
    for _ in range(4):
        state = solver.step(p, state)
        f, g = p.value_and_grad(state.x)
        assert torch.allclose(state.f, f, rtol=1e-13) and torch.allclose(state.g, g, rtol=1e-10, atol=1e-15)


def test_lbfgs_on_log_barrier_stays_in_the_domain():
    """A problem with a domain (f = NaN outside): the line search keeps L-BFGS inside and
    it converges to the root of x - c + 1/(1 - x) = 0 below 1,
    x = (1 + c - sqrt((1 - c)^2 + 4)) / 2 (coordinatewise)."""
    c = torch.tensor([[0.0, 0.5, 2.0, -3.0], [5.0, 0.9, 0.0, 1.0]], dtype=torch.float64)
    p = LogBarrier(c)
    solver = LBFGS()
    state = solver.init(p, torch.zeros_like(c))
    for _ in range(60):
        state = solver.step(p, state)
        assert bool((state.x < 1).all())
    x_star = (1 + c - torch.sqrt((1 - c) ** 2 + 4)) / 2
    assert float((state.x - x_star).abs().max()) < 1e-6
    assert not math.isnan(float(state.f.sum()))
