"""QuadraticFamily / QuadraticInstances: F(x) = 1/2 x'Qx + q'x (+ indicator of a box).

Objectives, gradients, Hessians, smoothness and strong convexity are checked against
autograd and numpy (property tests, float64, shared (n, n) and per-instance (B, n, n)
matrices); references against scipy.linalg.solve, numpy.linalg.lstsq and CVXPY.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from l2o.evaluation import reference
from l2o.problems import QuadraticFamily, QuadraticInstances, make_generator

PROPERTY = settings(max_examples=30, deadline=None, database=None)




@st.composite
def qp_case(draw, box=None):
    """A float64 batch of random QPs (either layout, with or without a box) and a generator for points."""
    n = draw(st.integers(1, 7))
    batch = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    family = QuadraticFamily(
        n=n,
        condition_number=draw(st.floats(1.0, 1e3)),
        shared_matrix=draw(st.booleans()),
        matrix_seed=seed % 997,
        data_scale=draw(st.floats(0.1, 10.0)),
        box=draw(st.sampled_from([0.0, 0.25, 3.0])) if box is None else box,
    )
    inst = family.sample(batch, seed)
    return inst, make_generator(seed + 1)


def batch_Q(inst: QuadraticInstances) -> np.ndarray:
    """(B, n, n) numpy copy of Q whatever the layout."""
    Q = inst.Q.numpy()
    return np.broadcast_to(Q, (inst.batch_size, inst.dim, inst.dim)) if Q.ndim == 2 else Q


def rel_norm(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b).clamp(min=1e-300))


def points(inst, g, scale=3.0):
    return scale * torch.randn(inst.batch_size, inst.dim, generator=g, dtype=torch.float64)


# ----- smooth part ------------------------------------------------------------------------------


@PROPERTY
@given(qp_case())
def test_objective_matches_closed_form(case):
    inst, g = case
    x = points(inst, g)
    Q, q, xn = batch_Q(inst), inst.q.numpy(), x.numpy()
    expected = 0.5 * np.einsum("bi,bij,bj->b", xn, Q, xn) + np.einsum("bi,bi->b", q, xn)
    np.testing.assert_allclose(inst.smooth_objective(x).numpy(), expected, rtol=1e-11, atol=1e-11)
    if not inst.is_constrained:
        torch.testing.assert_close(inst.objective(x), inst.smooth_objective(x), rtol=0, atol=0)


@PROPERTY
@given(qp_case())
def test_grad_matches_autograd_and_value_and_grad(case):
    inst, g = case
    x = points(inst, g).requires_grad_(True)
    (auto,) = torch.autograd.grad(inst.smooth_objective(x).sum(), x)
    x = x.detach()
    grad = inst.grad(x)
    assert grad.shape == x.shape and grad.dtype == torch.float64
    assert rel_norm(grad, auto) < 1e-12
    value, grad2 = inst.value_and_grad(x)
    assert value.shape == (inst.batch_size,)
    torch.testing.assert_close(value, inst.smooth_objective(x), rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(grad2, grad, rtol=1e-13, atol=1e-13)


@PROPERTY
@given(qp_case())
def test_hessian_matches_autograd(case):
    inst, g = case
    x = points(inst, g)
    H = inst.hessian(x)
    assert H.shape == (inst.batch_size, inst.dim, inst.dim)
    for b in range(inst.batch_size):
        def f_b(z, b=b):
            return inst.smooth_objective(torch.cat([x[:b], z[None], x[b + 1:]]))[b]

        auto = torch.autograd.functional.hessian(f_b, x[b])
        torch.testing.assert_close(H[b], auto, rtol=1e-12, atol=1e-12)


@PROPERTY
@given(qp_case())
def test_smoothness_is_the_top_eigenvalue_and_a_lipschitz_bound(case):
    inst, g = case
    L, mu = inst.smoothness(), inst.strong_convexity()
    assert L.shape == mu.shape == (inst.batch_size,)
    eig = np.linalg.eigvalsh(batch_Q(inst))
    # Tight: L is exactly lambda_max(Q), mu exactly max(lambda_min(Q), 0).
    np.testing.assert_allclose(L.numpy(), eig[:, -1], rtol=1e-12)
    np.testing.assert_allclose(mu.numpy(), np.maximum(eig[:, 0], 0), rtol=1e-10, atol=1e-12)
    # Lipschitz bound and strong monotonicity on random pairs.
    for _ in range(3):
        x, y = points(inst, g), points(inst, g)
        dg = inst.grad(x) - inst.grad(y)
        dx = x - y
        nx = torch.linalg.vector_norm(dx, dim=-1)
        assert bool((torch.linalg.vector_norm(dg, dim=-1) <= L * nx * (1 + 1e-12)).all())
        assert bool(((dg * dx).sum(-1) >= mu * nx.square() * (1 - 1e-10)).all())
    # The bound is attained along the top eigenvector (so no smaller L would do).
    v = torch.as_tensor(np.linalg.eigh(batch_Q(inst))[1][:, :, -1].copy())
    x = points(inst, g)
    ratio = torch.linalg.vector_norm(inst.grad(x + v) - inst.grad(x), dim=-1) / torch.linalg.vector_norm(v, dim=-1)
    torch.testing.assert_close(ratio, L, rtol=1e-10, atol=0)


@pytest.mark.parametrize("shared", [True, False])
def test_family_spectrum_spans_condition_number(shared):
    kappa = 250.0
    inst = QuadraticFamily(n=12, condition_number=kappa, shared_matrix=shared).sample(3, 4)
    eig = np.linalg.eigvalsh(batch_Q(inst))
    np.testing.assert_allclose(eig[:, 0], 1.0, rtol=1e-10)
    np.testing.assert_allclose(eig[:, -1], kappa, rtol=1e-10)
    torch.testing.assert_close(inst.Q, inst.Q.mT, rtol=0, atol=0)  # exactly symmetric
    np.testing.assert_allclose((inst.smoothness() / inst.strong_convexity()).numpy(), kappa, rtol=1e-9)
    if shared:
        assert inst.Q.shape == (12, 12)
        # The shared matrix depends on matrix_seed only, not on the batch seed.
        other = QuadraticFamily(n=12, condition_number=kappa).sample(2, 99)
        torch.testing.assert_close(other.Q, inst.Q, rtol=0, atol=0)
        assert not torch.equal(other.q, inst.q[:2])
    else:
        assert inst.Q.shape == (3, 12, 12)
        assert not torch.equal(inst.Q[0], inst.Q[1])


# ----- the box ------------------------------------------------------------------------------------


@PROPERTY
@given(qp_case(box=0.5), st.sampled_from(["scalar", "batch", "elementwise"]))
def test_box_prox_is_clamp_and_satisfies_normal_cone_condition(case, step_kind):
    inst, g = case
    assert inst.is_constrained and inst.has_nonsmooth
    v = points(inst, g, scale=1.0)
    B, n = v.shape
    step = {
        "scalar": 0.7,
        "batch": torch.rand(B, generator=g, dtype=torch.float64) + 0.1,
        "elementwise": torch.rand(B, n, generator=g, dtype=torch.float64) + 0.1,
    }[step_kind]
    p = inst.prox(v, step)
    torch.testing.assert_close(p, v.clamp(-0.5, 0.5), rtol=0, atol=0)
    # (v - p)/step lies in the normal cone of the box at p: <= 0 at the lower bound,
    # >= 0 at the upper bound, 0 inside.
    s = torch.as_tensor(step, dtype=v.dtype)
    s = s.unsqueeze(-1) if s.ndim == 1 else s
    w = (v - p) / s
    inside = (p > -0.5) & (p < 0.5)
    assert bool((w[inside] == 0).all())
    assert bool((w[p == -0.5] <= 0).all()) and bool((w[p == 0.5] >= 0).all())
    lo, hi = inst.subdifferential_bounds(p)
    assert bool(((lo <= w) & (w <= hi)).all())
    # The indicator: 0 on the box, +inf off it.
    assert bool((inst.nonsmooth_objective(p) == 0).all())
    outside = p.clone()
    outside[:, 0] = 0.5 + 1e-6
    assert bool(torch.isinf(inst.objective(outside)).all())


def test_unconstrained_prox_is_identity():
    inst = QuadraticFamily(n=5).sample(3, 1)
    assert not inst.is_constrained and not inst.has_nonsmooth
    v = torch.randn(3, 5, dtype=torch.float64)
    torch.testing.assert_close(inst.prox(v, torch.rand(3, 5, dtype=torch.float64)), v, rtol=0, atol=0)
    assert bool((inst.nonsmooth_objective(v) == 0).all())


# ----- references ---------------------------------------------------------------------------


@pytest.mark.parametrize("shared", [True, False])
def test_unconstrained_reference_matches_scipy_solve(shared):
    inst = QuadraticFamily(n=15, condition_number=1e3, shared_matrix=shared).sample(4, 11)
    ref = reference(inst)
    Q, q = batch_Q(inst), inst.q.numpy()
    x_scipy = torch.as_tensor(np.stack([scipy.linalg.solve(Q[b], -q[b], assume_a="pos") for b in range(4)]))
    assert rel_norm(ref.x, x_scipy) < 1e-10
    F_scipy = inst.objective(x_scipy)
    assert bool((ref.objective <= F_scipy + 1e-12 * F_scipy.abs()).all())
    torch.testing.assert_close(ref.objective, F_scipy, rtol=1e-12, atol=0)
    # F* = -1/2 q' Q^{-1} q < 0, so the gap is relative to |F*| (the floor does not bind).
    assert bool((ref.objective < 0).all())
    torch.testing.assert_close(ref.gap_denominator, ref.objective.abs(), rtol=0, atol=0)
    assert bool((ref.certificate <= 1e-10).all())


@pytest.mark.parametrize("shared", [True, False])
def test_singular_reference_is_min_norm_lstsq(shared):
    # Q PSD of rank 3 in R^6 and q in its range: minimizers form an affine set and the
    # reference is its minimum-norm point, -pinv(Q) q.
    g = make_generator(5)
    B, n, r = 3, 6, 3
    U = torch.randn(B, n, r, generator=g, dtype=torch.float64)
    Q = U @ U.mT
    if shared:
        Q = Q[0]
    Qb = Q.expand(B, n, n) if shared else Q
    q = (Qb @ torch.randn(B, n, 1, generator=g, dtype=torch.float64)).squeeze(-1)
    inst = QuadraticInstances(Q, q)
    assert float(inst.strong_convexity().max()) == 0.0
    ref = reference(inst)
    x_np = np.stack([np.linalg.lstsq(Qb[b].numpy(), -q[b].numpy(), rcond=None)[0] for b in range(B)])
    assert rel_norm(ref.x, torch.as_tensor(x_np)) < 1e-8
    torch.testing.assert_close(ref.objective, inst.objective(torch.as_tensor(x_np)), rtol=1e-10, atol=1e-12)
    assert float(torch.linalg.vector_norm(inst.grad(ref.x))) < 1e-9 * float(torch.linalg.vector_norm(q))


def _cvxpy_box_qp(Q: np.ndarray, q: np.ndarray, lower: float, upper: float) -> np.ndarray:
    cp = pytest.importorskip("cvxpy")
    x = cp.Variable(q.shape[0])
    objective = cp.Minimize(0.5 * cp.quad_form(x, cp.psd_wrap(Q)) + q @ x)
    problem = cp.Problem(objective, [x >= lower, x <= upper])
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    assert problem.status == cp.OPTIMAL
    return np.clip(x.value, lower, upper)


@pytest.mark.parametrize(
    "family, batch",
    [
        (QuadraticFamily(n=25, condition_number=100.0, box=0.3), 4),
        (QuadraticFamily(n=25, condition_number=100.0, box=0.3, shared_matrix=False), 3),
        (QuadraticFamily(n=100, condition_number=370.0, box=0.1), 2),  # the box_qp_100 preset
    ],
    ids=["shared", "per_instance", "box_qp_100"],
)
def test_box_reference_matches_cvxpy(family, batch):
    inst = family.sample(batch, 3)
    ref = reference(inst)
    assert bool((ref.certificate <= 1e-10).all())
    box = family.box
    assert bool((ref.x.abs() <= box).all())  # feasible
    Q, q = batch_Q(inst), inst.q.numpy()
    x_cvx = torch.as_tensor(np.stack([_cvxpy_box_qp(Q[b], q[b], -box, box) for b in range(batch)]))
    F_ref, F_cvx = ref.objective, inst.objective(x_cvx)
    assert bool(torch.isfinite(F_cvx).all())
    # Both at least as good as the other up to tolerances; the reference may not be worse.
    assert bool((F_ref <= F_cvx + 1e-9 * F_cvx.abs()).all())
    assert bool(((F_ref - F_cvx).abs() <= 1e-6 * F_cvx.abs()).all())
    # Strongly convex: the minimizer is unique, so the points agree too.
    assert rel_norm(ref.x, x_cvx) < 1e-5
    # Some bounds are active and some are not (otherwise the test would not exercise the box).
    active = (ref.x.abs() >= box * (1 - 1e-12)).float().mean()
    assert 0.0 < float(active) < 1.0
    # F* < 0 here, so the gap denominator is |F*|.
    torch.testing.assert_close(ref.gap_denominator, F_ref.abs(), rtol=0, atol=0)


def test_polish_accepts_exactly_the_optimal_active_sets():
    inst = QuadraticFamily(n=25, condition_number=100.0, box=0.3).sample(4, 3)
    ref = reference(inst)
    x, accepted = inst.polish(ref.x)
    assert bool(accepted.all())
    assert bool((inst.certificate(x) <= 1e-12).all())
    assert bool((inst.objective(x) <= ref.objective + 1e-13 * ref.objective.abs()).all())
    # Wrong active sets (the optimum is unique): each must be refused, the point unchanged.
    rows = torch.arange(4)
    active = ref.x.abs() >= 0.3
    free = ~active
    assert bool(active.any(-1).all()) and bool(free.any(-1).all())
    j_active = active.double().argmax(-1)  # first active coordinate
    j_free = free.double().argmax(-1)  # first free coordinate
    flipped = ref.x.clone()
    flipped[rows, j_active] = -flipped[rows, j_active]  # to the opposite bound: wrong multiplier sign
    released = ref.x.clone()
    released[rows, j_active] = 0.0  # freed: its unconstrained value is infeasible
    pinned = ref.x.clone()
    pinned[rows, j_free] = 0.3 * torch.sign(pinned[rows, j_free])  # fixed at the nearer bound: wrong sign
    for y in (flipped, released, pinned):
        x, accepted = inst.polish(y)
        assert not bool(accepted.any())
        assert torch.equal(x, y)
    # Nothing active: the unconstrained minimizer, infeasible here, so it must refuse.
    y = torch.zeros_like(ref.x)
    x, accepted = inst.polish(y)
    assert not bool(accepted.any()) and torch.equal(x, y)
    g = make_generator(0)
    for _ in range(5):
        y = (0.3 * torch.randn(4, 25, generator=g, dtype=torch.float64)).clamp(-0.3, 0.3)
        x, accepted = inst.polish(y)
        assert torch.equal(x[~accepted], y[~accepted])
        assert bool((inst.certificate(x)[accepted] <= 1e-9).all())
