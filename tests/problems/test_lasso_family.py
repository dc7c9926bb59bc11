"""LeastSquaresInstances (LASSO and plain least squares), LassoFamily, LeastSquaresFamily.

F(x) = 1/2 ||A x - b||^2 + lam ||x||_1 with A shared (m, n) or per instance (B, m, n).
Objectives, gradients (both the Gram fast path and the two-matvec path), Hessians,
smoothness, the L1 prox and the duality-gap certificate are checked against autograd and
closed forms; references against scikit-learn's Lasso and numpy.linalg.lstsq.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from l2o.evaluation import reference
from l2o.problems import GAP_FLOOR, LassoFamily, LeastSquaresFamily, LeastSquaresInstances, make_generator
from l2o.registry import make_solver

PROPERTY = settings(max_examples=30, deadline=None, database=None)




@st.composite
def ls_case(draw, lam=None):
    """Random float64 least-squares / LASSO data (general A, not unit columns) in either layout.

    lam: "zero", "positive" or None (either, including a per-instance (B,) lam).
    """
    m = draw(st.integers(1, 8))
    n = draw(st.integers(1, 10))
    batch = draw(st.integers(1, 4))
    shared = draw(st.booleans())
    g = make_generator(draw(st.integers(0, 2**31 - 1)))
    A = torch.randn(*(() if shared else (batch,)), m, n, generator=g, dtype=torch.float64)
    A = A * draw(st.floats(0.1, 5.0))
    b = torch.randn(batch, m, generator=g, dtype=torch.float64) * draw(st.floats(0.1, 10.0))
    kind = lam or draw(st.sampled_from(["zero", "positive", "per_instance"]))
    if kind == "zero":
        lam_value = 0.0
    elif kind == "positive":
        lam_value = draw(st.floats(1e-3, 2.0))
    else:
        lam_value = torch.rand(batch, generator=g, dtype=torch.float64) + 0.01
    return LeastSquaresInstances(A, b, lam_value), g


def batch_A(inst: LeastSquaresInstances) -> np.ndarray:
    A = inst.A.numpy()
    return np.broadcast_to(A, (inst.batch_size,) + A.shape) if A.ndim == 2 else A


def rel_norm(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b).clamp(min=1e-300))


def points(inst, g, scale=2.0):
    return scale * torch.randn(inst.batch_size, inst.dim, generator=g, dtype=torch.float64)


def soft_threshold_np(v: np.ndarray, theta: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.maximum(np.abs(v) - theta, 0.0)


# ----- smooth part ------------------------------------------------------------------------------


@PROPERTY
@given(ls_case())
def test_objective_matches_closed_form(case):
    inst, g = case
    x = points(inst, g)
    A, b, xn, lam = batch_A(inst), inst.b.numpy(), x.numpy(), inst.lam.numpy()
    r = np.einsum("bmn,bn->bm", A, xn) - b
    f = 0.5 * (r**2).sum(-1)
    np.testing.assert_allclose(inst.smooth_objective(x).numpy(), f, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(inst.objective(x).numpy(), f + lam * np.abs(xn).sum(-1), rtol=1e-12, atol=1e-12)


@PROPERTY
@given(ls_case())
def test_grad_matches_autograd_and_value_and_grad(case):
    inst, g = case
    x = points(inst, g).requires_grad_(True)
    (auto,) = torch.autograd.grad(inst.smooth_objective(x).sum(), x)
    x = x.detach()
    grad = inst.grad(x)
    assert grad.shape == x.shape
    assert rel_norm(grad, auto) < 1e-11
    value, grad2 = inst.value_and_grad(x)  # always the two-matvec path
    torch.testing.assert_close(value, inst.smooth_objective(x), rtol=1e-13, atol=1e-13)
    assert rel_norm(grad2, grad) < 1e-11


@PROPERTY
@given(ls_case(lam="zero"))
def test_gram_fast_path_matches_two_matvec_path(case):
    inst, g = case
    m, n = inst.A.shape[-2:]
    # The fast path exists exactly for a shared A with n <= 2m.
    assert (inst._gram is not None) == (inst.shared_matrix and n <= 2 * m)
    x = points(inst, g)
    A, b = batch_A(inst), inst.b.numpy()
    expected = np.einsum("bmn,bm->bn", A, np.einsum("bmn,bn->bm", A, x.numpy()) - b)
    grad = inst.grad(x)
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-10, atol=1e-10 * (1 + np.abs(expected).max()))
    # The same instance without the Gram matrix takes the two-matvec path.
    plain = LeastSquaresInstances(inst.A, inst.b, inst.lam)
    plain._gram = plain._Atb = None
    assert rel_norm(grad, plain.grad(x)) < 1e-11


def test_gram_fast_path_is_used_on_the_lasso_preset():
    inst = LassoFamily().sample(2, 0)  # 250 x 500: n == 2m
    assert inst._gram is not None and inst._gram.shape == (500, 500)
    wide = LassoFamily(m=10, n=21, nnz=3).sample(2, 0)
    assert wide._gram is None
    x = torch.randn(2, 500, dtype=torch.float64)
    direct = (x @ inst.A.mT - inst.b) @ inst.A
    assert rel_norm(inst.grad(x), direct) < 1e-12


@PROPERTY
@given(ls_case())
def test_hessian_matches_autograd(case):
    inst, g = case
    x = points(inst, g)
    H = inst.hessian(x)
    assert H.shape == (inst.batch_size, inst.dim, inst.dim)
    for b in range(inst.batch_size):
        def f_b(z, b=b):
            return inst.smooth_objective(torch.cat([x[:b], z[None], x[b + 1:]]))[b]

        torch.testing.assert_close(H[b], torch.autograd.functional.hessian(f_b, x[b]), rtol=1e-12, atol=1e-12)


@PROPERTY
@given(ls_case())
def test_smoothness_is_tight_and_a_lipschitz_bound(case):
    inst, g = case
    L, mu = inst.smoothness(), inst.strong_convexity()
    assert L.shape == mu.shape == (inst.batch_size,)
    A = batch_A(inst)
    eig = np.linalg.eigvalsh(np.einsum("bmi,bmj->bij", A, A))
    np.testing.assert_allclose(L.numpy(), eig[:, -1], rtol=1e-10)
    m, n = A.shape[-2:]
    if m >= n:
        np.testing.assert_allclose(mu.numpy(), eig[:, 0], rtol=1e-7, atol=1e-10 * eig[:, -1].max())
    else:
        assert bool((mu == 0).all())
    for _ in range(3):
        x, y = points(inst, g), points(inst, g)
        dg, dx = inst.grad(x) - inst.grad(y), x - y
        nx = torch.linalg.vector_norm(dx, dim=-1)
        assert bool((torch.linalg.vector_norm(dg, dim=-1) <= L * nx * (1 + 1e-10)).all())
        assert bool(((dg * dx).sum(-1) >= mu * nx.square() * (1 - 1e-8) - 1e-12).all())


# ----- the L1 prox -------------------------------------------------------------------------------


@PROPERTY
@given(ls_case(lam="per_instance"), st.sampled_from(["scalar", "batch", "elementwise"]))
def test_l1_prox_is_soft_threshold_and_satisfies_optimality(case, step_kind):
    inst, g = case
    B, n = inst.batch_size, inst.dim
    v = points(inst, g, scale=1.0)
    step = {
        "scalar": 0.8,
        "batch": torch.rand(B, generator=g, dtype=torch.float64) + 0.05,
        "elementwise": torch.rand(B, n, generator=g, dtype=torch.float64) + 0.05,
    }[step_kind]
    p = inst.prox(v, step)
    s = np.broadcast_to(np.asarray(step.numpy() if torch.is_tensor(step) else step).reshape(
        (B, 1) if step_kind == "batch" else (B, n) if step_kind == "elementwise" else ()), (B, n))
    lam = inst.lam.numpy()[:, None]
    np.testing.assert_allclose(p.numpy(), soft_threshold_np(v.numpy(), lam * s), rtol=0, atol=1e-15)
    # Optimality of argmin_x lam||x||_1 + ||x - v||^2/(2 step): (v - p)/step in lam d||p||_1.
    w = (v.numpy() - p.numpy()) / s
    pn = p.numpy()
    nz = pn != 0
    np.testing.assert_allclose(w[nz], (lam * np.sign(pn))[nz], rtol=1e-12, atol=1e-12)
    assert np.all(np.abs(w[~nz]) <= np.broadcast_to(lam, (B, n))[~nz] * (1 + 1e-12))
    lo, hi = inst.subdifferential_bounds(p)
    tol = 1e-12 * (1 + np.abs(w))
    assert np.all(lo.numpy() <= w + tol) and np.all(w <= hi.numpy() + tol)
    # And p does better than nearby points on the prox subproblem.
    def h(x):
        return inst.nonsmooth_objective(x) + ((x - v).square() / (2 * torch.tensor(s.copy()))).sum(-1)

    for _ in range(3):
        d = 1e-3 * torch.randn(B, n, generator=g, dtype=torch.float64)
        assert bool((h(p) <= h(p + d) + 1e-14).all())


def test_prox_with_zero_lam_is_identity():
    inst = LeastSquaresFamily(d=6, m=4).sample(3, 0)
    assert not inst.has_nonsmooth
    v = torch.randn(3, 6, dtype=torch.float64)
    torch.testing.assert_close(inst.prox(v, 0.5), v, rtol=0, atol=0)
    torch.testing.assert_close(inst.objective(v), inst.smooth_objective(v), rtol=0, atol=0)


# ----- duality and certificates ----------------------------------------------------------------


@PROPERTY
@given(ls_case(lam="positive"))
def test_weak_duality(case):
    inst, g = case
    for _ in range(3):
        x, y = points(inst, g), points(inst, g)
        dual = inst.dual_objective(x)
        # D(theta(x)) <= F* <= F(y) for every x and y.
        assert bool((dual <= inst.objective(y) + 1e-10 * inst.objective(y).abs()).all())
        assert bool((dual <= inst.objective(x) + 1e-10 * inst.objective(x).abs()).all())
        assert bool((inst.certificate(x) >= 0).all())


@PROPERTY
@given(ls_case(lam="positive"))
def test_dual_objective_matches_its_definition(case):
    # theta = r / max(1, ||A^T r||_inf / lam), r = b - A x, is dual feasible and
    # D(theta) = 1/2 ||b||^2 - 1/2 ||b - theta||^2; computed here in numpy.
    inst, g = case
    x = points(inst, g, scale=0.5)
    A, b, lam = batch_A(inst), inst.b.numpy(), inst.lam.numpy()
    r = b - np.einsum("bmn,bn->bm", A, x.numpy())
    s = np.maximum(1.0, np.abs(np.einsum("bmn,bm->bn", A, r)).max(-1) / lam)
    theta = r / s[:, None]
    assert np.all(np.abs(np.einsum("bmn,bm->bn", A, theta)).max(-1) <= lam * (1 + 1e-12))
    dual = 0.5 * (b**2).sum(-1) - 0.5 * ((b - theta) ** 2).sum(-1)
    scale = 0.5 * (b**2).sum(-1) + inst.objective(x).numpy()
    np.testing.assert_allclose(inst.dual_objective(x).numpy(), dual, rtol=0, atol=1e-11 * scale.max())
    # The certificate is the relative gap (F - D) / max(|D|, GAP_FLOOR (F(0) - D)), with D the
    # better of theta's and, where theta's relative gap is <= SUPPORT_DUAL_BELOW and A is
    # shared, the support's dual point: z solves A_S^T A_S z_S = A_S^T b - lam sign(x_S)
    # (S = supp(x), |S| <= m) and theta_S = r_z / max(1, ||A^T r_z||_inf / lam).
    F0 = 0.5 * (b**2).sum(-1)
    F = inst.objective(x).numpy()

    def relative_gap(d):
        return np.maximum(F - d, 0) / np.maximum(np.abs(d), GAP_FLOOR * np.abs(F0 - d))

    best = dual.copy()
    if inst.A.ndim == 2 and inst.A.shape[1] <= 2 * inst.A.shape[0]:  # the shared Gram matrix
        for i in np.nonzero(relative_gap(dual) <= inst.SUPPORT_DUAL_BELOW)[0]:
            S = np.nonzero(x[i].numpy())[0]
            if not 0 < S.size <= A.shape[1]:
                continue
            AS = A[i][:, S]
            try:
                zS = np.linalg.solve(AS.T @ AS, AS.T @ b[i] - lam[i] * np.sign(x[i].numpy()[S]))
            except np.linalg.LinAlgError:
                continue
            rz = b[i] - AS @ zS
            th = rz / max(1.0, np.abs(A[i].T @ rz).max() / lam[i])
            best[i] = max(best[i], 0.5 * (b[i] ** 2).sum() - 0.5 * ((b[i] - th) ** 2).sum())
    denom = np.maximum(np.abs(best), GAP_FLOOR * np.abs(F0 - best))
    np.testing.assert_allclose(inst.certificate(x).numpy(), relative_gap(best), rtol=1e-6,
                               atol=1e-9 * (scale / denom).max())
    assert np.all(inst.certificate(x).numpy() <= relative_gap(dual) * (1 + 1e-9) + 1e-12)


@pytest.mark.parametrize("shared", [True, False])
def test_certificate_is_tiny_at_the_reference_and_bounds_the_gap(shared):
    inst = LassoFamily(m=20, n=40, nnz=5, lam=0.05, shared_matrix=shared).sample(4, 7)
    ref = reference(inst)
    assert bool((ref.certificate <= 1e-10).all())
    torch.testing.assert_close(ref.certificate, inst.certificate(ref.x), rtol=0, atol=0)
    # Strong duality at the optimum.
    torch.testing.assert_close(inst.dual_objective(ref.x), ref.objective, rtol=1e-9, atol=0)
    # At any x the relative duality gap bounds the relative suboptimality from above.
    g = make_generator(1)
    x = ref.x + 0.1 * torch.randn(ref.x.shape, generator=g, dtype=torch.float64)
    cert = inst.certificate(x)
    assert bool((cert > 1e-6).all())
    subopt = (inst.objective(x) - ref.objective) / ref.objective.abs()
    assert bool((subopt <= cert * (1 + 1e-9)).all())


# ----- references -----------------------------------------------------------------------------


def _sklearn_lasso(A: np.ndarray, b: np.ndarray, lam: float) -> np.ndarray:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso

    m = A.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = Lasso(alpha=lam / m, fit_intercept=False, tol=1e-12, max_iter=200_000).fit(A, b)
    return est.coef_


def _check_against_sklearn(inst: LeastSquaresInstances) -> None:
    ref = reference(inst)
    assert bool((ref.certificate <= 1e-10).all())
    A, b, lam = batch_A(inst), inst.b.numpy(), inst.lam.numpy()
    x_sk = torch.as_tensor(np.stack([_sklearn_lasso(A[i], b[i], float(lam[i])) for i in range(inst.batch_size)]))
    F_ref, F_sk = ref.objective, inst.objective(x_sk)
    assert bool((F_ref <= F_sk * (1 + 1e-9)).all()), (F_ref, F_sk)
    assert bool(((F_ref - F_sk).abs() <= 1e-6 * F_sk.abs()).all()), (F_ref, F_sk)
    # Non-trivial solutions: some but not all coordinates are zero.
    nnz = (ref.x != 0).sum(-1)
    assert bool(((nnz > 0) & (nnz < inst.dim)).all())


@pytest.mark.parametrize("shared", [True, False])
def test_lasso_reference_matches_sklearn(shared):
    inst = LassoFamily(m=30, n=60, nnz=6, lam=0.1, shared_matrix=shared, noise_std=0.05).sample(4, 21)
    _check_against_sklearn(inst)


def test_lasso_preset_reference_matches_sklearn():
    from l2o.registry import PRESETS

    family = PRESETS["lasso_250x500"][0]
    assert (family.m, family.n, family.nnz, family.lam) == (250, 500, 50, 0.1)
    _check_against_sklearn(family.sample(2, 0))


@pytest.mark.parametrize("shared", [True, False])
def test_least_squares_reference_is_min_norm_lstsq(shared):
    # Underdetermined and consistent: F* = 0, the reference is the minimum-norm solution.
    inst = LeastSquaresFamily(d=32, m=25, shared_matrix=shared).sample(3, 2)
    ref = reference(inst)
    A, b = batch_A(inst), inst.b.numpy()
    x_np = torch.as_tensor(np.stack([np.linalg.lstsq(A[i], b[i], rcond=None)[0] for i in range(3)]))
    assert rel_norm(ref.x, x_np) < 1e-10
    F0 = inst.objective(torch.zeros_like(ref.x))
    assert bool((ref.objective <= 1e-20 * F0).all())
    assert bool((ref.certificate <= 1e-10).all())


def test_overdetermined_least_squares_reference_matches_lstsq():
    inst = LeastSquaresFamily(d=10, m=25, noise_std=0.3).sample(3, 2)
    ref = reference(inst)
    A, b = batch_A(inst), inst.b.numpy()
    x_np = torch.as_tensor(np.stack([np.linalg.lstsq(A[i], b[i], rcond=None)[0] for i in range(3)]))
    F_np = inst.objective(x_np)
    assert bool((F_np > 0.1).all())  # noisy: F* > 0
    assert bool((ref.objective <= F_np * (1 + 1e-12)).all())
    torch.testing.assert_close(ref.objective, F_np, rtol=1e-12, atol=0)
    assert rel_norm(ref.x, x_np) < 1e-10
    assert bool((inst.strong_convexity() > 0).all())


# ----- relative gap -------------------------------------------------------------------------


def test_relative_gap_uses_the_floor_when_f_star_is_zero():
    inst = LeastSquaresFamily(d=32, m=25).sample(4, 3)
    ref = reference(inst)
    F0 = inst.objective(torch.zeros(4, 32, dtype=torch.float64))
    torch.testing.assert_close(ref.gap_denominator, GAP_FLOOR * (F0 - ref.objective), rtol=1e-14, atol=0)
    x = torch.randn(4, 32, generator=make_generator(0), dtype=torch.float64)
    for point in (torch.zeros_like(x), x, ref.x + 1e-3 * x):
        F = inst.objective(point)
        gap = ref.relative_gap(F)
        assert bool(torch.isfinite(gap).all())
        torch.testing.assert_close(gap, F / (GAP_FLOOR * F0), rtol=1e-10, atol=1e-15)
    # At the origin the gap is exactly 1 / GAP_FLOOR.
    torch.testing.assert_close(ref.relative_gap(F0), torch.full_like(F0, 1 / GAP_FLOOR), rtol=1e-12, atol=0)
    # float32 objectives are promoted, not truncated.
    assert ref.relative_gap(F0.float()).dtype == torch.float64


def test_relative_gap_is_relative_to_f_star_on_lasso():
    inst = LassoFamily().sample(2, 0)
    ref = reference(inst)
    F0 = inst.objective(torch.zeros(2, 500, dtype=torch.float64))
    assert bool((GAP_FLOOR * (F0 - ref.objective) < ref.objective.abs()).all())  # the floor does not bind
    torch.testing.assert_close(ref.gap_denominator, ref.objective.abs(), rtol=0, atol=0)
    x = torch.randn(2, 500, generator=make_generator(0), dtype=torch.float64)
    F = inst.objective(x)
    torch.testing.assert_close(ref.relative_gap(F), (F - ref.objective) / ref.objective.abs(), rtol=1e-14, atol=0)
    torch.testing.assert_close(ref.relative_gap(ref.objective), torch.zeros(2, dtype=torch.float64), rtol=0, atol=0)


# ----- preset statistics ------------------------------------------------------------------------


def test_lasso_preset_data():
    from sklearn.linear_model import OrthogonalMatchingPursuit

    family = LassoFamily()
    inst = family.sample(3, 0)
    assert inst.A.shape == (250, 500) and inst.b.shape == (3, 250) and inst.lam.shape == (3,)
    assert bool((inst.lam == 0.1).all())
    torch.testing.assert_close(torch.linalg.vector_norm(inst.A, dim=0), torch.ones(500, dtype=torch.float64))
    torch.testing.assert_close(inst.A, family.dictionary(), rtol=0, atol=0)
    # ||A||_2^2 of a 250 x 500 Gaussian with unit columns is near (1 + sqrt(2))^2 ~ 5.83.
    assert bool(((inst.smoothness() > 5.0) & (inst.smoothness() < 6.7)).all())
    # b = A x_true with x_true 50-sparse (no noise): OMP with 50 atoms recovers it exactly.
    for i in range(3):
        omp = OrthogonalMatchingPursuit(n_nonzero_coefs=50, fit_intercept=False).fit(inst.A.numpy(), inst.b[i].numpy())
        assert np.count_nonzero(omp.coef_) == 50
        b = inst.b[i].numpy()
        assert np.linalg.norm(inst.A.numpy() @ omp.coef_ - b) < 1e-10 * np.linalg.norm(b)
    # data_scale scales x_true, hence b; noise_std adds noise on top.
    torch.testing.assert_close(family.replace(data_scale=2.0).sample(3, 0).b, 2 * inst.b, rtol=1e-15, atol=0)
    noisy = family.replace(noise_std=0.01).sample(3, 0)
    assert 0 < float((noisy.b - inst.b).std()) < 0.02


def test_least_squares_preset_data():
    inst = LeastSquaresFamily().sample(4, 0)  # ls_32x25: W per instance, 25 x 32
    assert inst.A.shape == (4, 25, 32) and inst.b.shape == (4, 25)
    assert bool((inst.lam == 0).all()) and not inst.has_nonsmooth
    torch.testing.assert_close(torch.linalg.vector_norm(inst.A, dim=-2), torch.ones(4, 32, dtype=torch.float64))
    # y = W x_gt with x_gt dense: consistent, so the certificate of the reference is ~0 and F* ~ 0.
    assert float(reference(inst).objective.max()) < 1e-20
    assert not torch.equal(inst.A[0], inst.A[1])


# ----- support polishing --------------------------------------------------------------------


def test_polish_accepts_exactly_the_optimal_supports():
    inst = LassoFamily(m=30, n=60, nnz=6, lam=0.1, noise_std=0.05).sample(4, 21)
    assert inst._gram is not None
    ref = reference(inst)
    # From the reference (the right support and signs) polishing lands on the optimum.
    g = make_generator(0)
    near = ref.x * (1 + 1e-3 * torch.randn(ref.x.shape, generator=g, dtype=torch.float64))
    x, accepted = inst.polish(near)
    assert bool(accepted.all())
    assert bool((inst.certificate(x) <= 1e-12).all())
    assert bool((inst.objective(x) <= ref.objective * (1 + 1e-13)).all())
    assert torch.equal(x != 0, ref.x != 0)
    # From a wrong support it must refuse, and leave the point unchanged.
    wrong = ref.x.clone()
    wrong[:, :] = 0
    wrong[:, :3] = 1.0
    x, accepted = inst.polish(wrong)
    assert not bool(accepted.any())
    assert torch.equal(x, wrong)
    # Dropping one coordinate of the optimal support (the smallest or the largest) gives a
    # support whose stationary point violates |A_j^T r| <= lam off the support: refused.
    mag = torch.where(ref.x != 0, ref.x.abs(), torch.full_like(ref.x, float("inf")))
    for drop in (mag.argmin(-1), ref.x.abs().argmax(-1)):
        y = ref.x.clone()
        y[torch.arange(4), drop] = 0.0
        x, accepted = inst.polish(y)
        assert not bool(accepted.any())
        assert torch.equal(x, y)
    # The right support with one wrong sign: the stationary point has the other sign there.
    y = ref.x.clone()
    y[torch.arange(4), mag.argmin(-1)] *= -1
    x, accepted = inst.polish(y)
    assert not bool(accepted.any())
    assert torch.equal(x, y)
    # Random points: accepted => optimal, rejected => unchanged.
    for _ in range(5):
        y = inst.prox(torch.randn(4, 60, generator=g, dtype=torch.float64), 1.0)
        x, accepted = inst.polish(y)
        assert torch.equal(x[~accepted], y[~accepted])
        assert bool((inst.certificate(x)[accepted] <= 1e-9).all())


# ----- the support's dual point --------------------------------------------------------------
def test_the_support_dual_point_makes_the_certificate_as_small_as_the_gap():
    """Near convergence the certificate (F(x) - D) / denominator with D from the support's dual
    point is about the relative suboptimality itself; the residual's dual point alone gives
    about its square root. ``certified`` agrees with ``certificate <= tol``."""
    inst = LassoFamily(m=40, n=80, nnz=6).sample(6, 3)
    ref = reference(inst, tol=1e-12)
    solver = make_solver("fista_restart")
    state = solver.init(inst, inst.initial_point())
    for _ in range(60):
        state = solver.step(inst, state)
    x = state.x
    gap = ref.relative_gap(inst.objective(x))
    cert = inst.certificate(x)
    gap1, dual1 = inst.duality_gap(x)
    loose = gap1 / torch.maximum(dual1.abs(), GAP_FLOOR * (0.5 * inst.b.square().sum(-1) - dual1).abs())
    assert bool((gap <= cert * (1 + 1e-9)).all()) and bool((cert <= loose).all())
    assert bool((cert <= 10 * gap.clamp(min=1e-15)).all()) and bool((loose >= 100 * cert).any())
    for tol in (1e-3, 1e-6, 1e-9, 1e-12, float(cert.median())):
        assert torch.equal(inst.certified(x, tol), cert <= tol)
