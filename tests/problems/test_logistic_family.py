"""LogisticInstances, LogisticFamily and DatasetLogisticFamily.

F(w) = (1/N) sum_i log(1 + exp(-y_i a_i'w)) + lam ||w||_1   (l1, nonsmooth r)
F(w) = (1/N) sum_i log(1 + exp(-y_i a_i'w)) + lam/2 ||w||^2  (l2, part of the smooth f)

Checked against numpy closed forms and autograd (property tests, float64, shared (N, d)
and per-instance (B, N, d) features), and the references against scikit-learn's
LogisticRegression(C = 1/(N lam), fit_intercept=False).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from l2o.evaluation import reference
from l2o.problems import GAP_FLOOR, DatasetLogisticFamily, LogisticFamily, LogisticInstances, make_generator
from l2o.problems.datasets import load_dataset

PROPERTY = settings(max_examples=30, deadline=None, database=None)




@st.composite
def logistic_case(draw, penalty=None):
    """Random float64 logistic data in either layout, labels in {-1, +1}, lam scalar or (B,)."""
    N = draw(st.integers(1, 12))
    d = draw(st.integers(1, 6))
    batch = draw(st.integers(1, 4))
    shared = draw(st.booleans())
    g = make_generator(draw(st.integers(0, 2**31 - 1)))
    X = draw(st.floats(0.1, 4.0)) * torch.randn(*(() if shared else (batch,)), N, d, generator=g, dtype=torch.float64)
    y = torch.where(torch.rand(batch, N, generator=g) < 0.5, 1.0, -1.0).to(torch.float64)
    if draw(st.booleans()):
        lam = draw(st.floats(1e-3, 1.0))
    else:
        lam = torch.rand(batch, generator=g, dtype=torch.float64) + 0.01
    penalty = penalty or draw(st.sampled_from(["l1", "l2"]))
    return LogisticInstances(X, y, lam, penalty), g


def batch_X(inst: LogisticInstances) -> np.ndarray:
    X = inst.X.numpy()
    return np.broadcast_to(X, (inst.batch_size,) + X.shape) if X.ndim == 2 else X


def rel_norm(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b).clamp(min=1e-300))


def points(inst, g, scale=1.5):
    return scale * torch.randn(inst.batch_size, inst.dim, generator=g, dtype=torch.float64)


# ----- objective, gradient, Hessian ---------------------------------------------------------------


@PROPERTY
@given(logistic_case())
def test_objective_matches_closed_form(case):
    inst, g = case
    w = points(inst, g, scale=5.0)  # large margins: checks the softplus is stable
    z = inst.y.numpy() * np.einsum("bnd,bd->bn", batch_X(inst), w.numpy())
    loss = np.logaddexp(0.0, -z).mean(-1)
    lam = inst.lam.numpy()
    if inst.penalty == "l1":
        np.testing.assert_allclose(inst.smooth_objective(w).numpy(), loss, rtol=1e-12)
        np.testing.assert_allclose(inst.objective(w).numpy(), loss + lam * np.abs(w.numpy()).sum(-1), rtol=1e-12)
    else:
        f = loss + 0.5 * lam * (w.numpy() ** 2).sum(-1)
        np.testing.assert_allclose(inst.smooth_objective(w).numpy(), f, rtol=1e-12)
        torch.testing.assert_close(inst.objective(w), inst.smooth_objective(w), rtol=0, atol=0)
    assert bool(torch.isfinite(inst.objective(1e4 * w)).all())
    # F(0) = log 2 for both penalties.
    torch.testing.assert_close(inst.objective(torch.zeros_like(w)), torch.full_like(inst.lam, np.log(2.0)))


@PROPERTY
@given(logistic_case())
def test_grad_matches_autograd_and_value_and_grad(case):
    inst, g = case
    w = points(inst, g).requires_grad_(True)
    (auto,) = torch.autograd.grad(inst.smooth_objective(w).sum(), w)
    w = w.detach()
    grad = inst.grad(w)
    assert grad.shape == w.shape
    assert rel_norm(grad, auto) < 1e-12
    value, grad2 = inst.value_and_grad(w)
    torch.testing.assert_close(value, inst.smooth_objective(w), rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(grad2, grad, rtol=0, atol=0)


@PROPERTY
@given(logistic_case())
def test_hessian_matches_autograd(case):
    inst, g = case
    w = points(inst, g)
    H = inst.hessian(w)
    assert H.shape == (inst.batch_size, inst.dim, inst.dim)
    for b in range(inst.batch_size):
        def f_b(z, b=b):
            return inst.smooth_objective(torch.cat([w[:b], z[None], w[b + 1:]]))[b]

        torch.testing.assert_close(H[b], torch.autograd.functional.hessian(f_b, w[b]), rtol=1e-10, atol=1e-13)


@PROPERTY
@given(logistic_case())
def test_smoothness_bound_is_valid_and_attained_at_zero(case):
    inst, g = case
    L, mu = inst.smoothness(), inst.strong_convexity()
    assert L.shape == mu.shape == (inst.batch_size,)
    # The Hessian at w = 0 is X'X/(4N) (+ lam I): L is its top eigenvalue, so it is tight.
    X = batch_X(inst)
    eig0 = np.linalg.eigvalsh(np.einsum("bni,bnj->bij", X, X) / (4 * inst.n_samples))
    if inst.penalty == "l2":
        eig0 = eig0 + inst.lam.numpy()[:, None]
        torch.testing.assert_close(mu, inst.lam, rtol=0, atol=0)
    else:
        assert bool((mu == 0).all())
    np.testing.assert_allclose(L.numpy(), eig0[:, -1], rtol=1e-10)
    for _ in range(3):
        x, y = points(inst, g), points(inst, g)
        dg, dx = inst.grad(x) - inst.grad(y), x - y
        nx = torch.linalg.vector_norm(dx, dim=-1)
        assert bool((torch.linalg.vector_norm(dg, dim=-1) <= L * nx * (1 + 1e-10)).all())
        assert bool(((dg * dx).sum(-1) >= mu * nx.square() * (1 - 1e-10)).all())
        assert bool((torch.linalg.eigvalsh(inst.hessian(x))[:, -1] <= L * (1 + 1e-10)).all())


# ----- prox, duality, certificate ------------------------------------------------------------------


@PROPERTY
@given(logistic_case(), st.sampled_from(["scalar", "batch", "elementwise"]))
def test_prox(case, step_kind):
    inst, g = case
    B, d = inst.batch_size, inst.dim
    v = points(inst, g, scale=0.5)
    step = {
        "scalar": 0.3,
        "batch": torch.rand(B, generator=g, dtype=torch.float64) + 0.05,
        "elementwise": torch.rand(B, d, generator=g, dtype=torch.float64) + 0.05,
    }[step_kind]
    p = inst.prox(v, step)
    if inst.penalty == "l2":
        torch.testing.assert_close(p, v, rtol=0, atol=0)
        return
    s = torch.as_tensor(step, dtype=torch.float64)
    s = (s.unsqueeze(-1) if s.ndim == 1 else s).expand(B, d)
    theta = inst.lam.unsqueeze(-1) * s
    torch.testing.assert_close(p, torch.sign(v) * (v.abs() - theta).clamp(min=0), rtol=0, atol=1e-15)
    w = (v - p) / s
    nz = p != 0
    torch.testing.assert_close(w[nz], (inst.lam.unsqueeze(-1) * torch.sign(p)).expand(B, d)[nz], rtol=1e-12, atol=1e-12)
    assert bool((w[~nz].abs() <= inst.lam.unsqueeze(-1).expand(B, d)[~nz] * (1 + 1e-12)).all())


@PROPERTY
@given(st.one_of(logistic_case(), st.deferred(lambda: intercept_case())))
def test_weak_duality(case):
    """D <= F at any two points, so the gap certifies; with an intercept the dual point is
    balanced (``balance_dual``)."""
    inst, g = case
    for _ in range(3):
        w, v = points(inst, g), points(inst, g)
        dual = inst.dual_objective(w)
        assert bool(torch.isfinite(dual).all())
        assert bool((dual <= inst.objective(v) + 1e-12).all())
        assert bool((dual <= inst.objective(w) + 1e-12).all())
        assert bool((inst.certificate(w) >= 0).all())


@PROPERTY
@given(logistic_case())
def test_dual_objective_matches_its_definition(case):
    # u = sigma(-z) (scaled by max(1, ||s||_inf / lam) for l1), s = A^T (y u) / N;
    # D = mean H(u) (l1, with ||s||_inf <= lam) or mean H(u) - ||s||^2 / (2 lam) (l2).
    inst, g = case
    w = points(inst, g)
    X, y, lam, N = batch_X(inst), inst.y.numpy(), inst.lam.numpy(), inst.n_samples
    z = y * np.einsum("bnd,bd->bn", X, w.numpy())
    u = 1.0 / (1.0 + np.exp(z))
    s = np.einsum("bnd,bn->bd", X, y * u) / N

    def H(p):
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.nan_to_num(p * np.log(p)) - np.nan_to_num((1 - p) * np.log1p(-p))

    if inst.penalty == "l1":
        scale = np.maximum(1.0, np.abs(s).max(-1) / lam)
        u = u / scale[:, None]
        assert np.all(np.abs(np.einsum("bnd,bn->bd", X, y * u) / N).max(-1) <= lam * (1 + 1e-12))
        dual = H(u).mean(-1)
    else:
        dual = H(u).mean(-1) - (s**2).sum(-1) / (2 * lam)
    np.testing.assert_allclose(inst.dual_objective(w).numpy(), dual, rtol=1e-10, atol=1e-12)
    primal = inst.objective(w).numpy()
    denom = np.maximum(np.abs(dual), GAP_FLOOR * np.abs(np.log(2.0) - dual))
    np.testing.assert_allclose(inst.certificate(w).numpy(), np.maximum(primal - dual, 0) / denom, rtol=1e-8, atol=1e-12)


# ----- an unpenalized intercept (the last column of ones) ------------------------------------


@st.composite
def intercept_case(draw):
    """A logistic case whose X gains a last column of ones, built with ``intercept=True``."""
    inst, g = draw(logistic_case())
    ones = torch.ones(*inst.X.shape[:-1], 1, dtype=torch.float64)
    return LogisticInstances(torch.cat([inst.X, ones], -1), inst.y, inst.lam, inst.penalty, intercept=True), g


@PROPERTY
@given(intercept_case())
def test_intercept_objective_gradient_hessian_against_closed_form_and_autograd(case):
    inst, g = case
    w = points(inst, g)
    z = inst.y.numpy() * np.einsum("bnd,bd->bn", batch_X(inst), w.numpy())
    loss, lam, wp = np.logaddexp(0.0, -z).mean(-1), inst.lam.numpy(), w.numpy()[:, :-1]
    penalty = lam * np.abs(wp).sum(-1) if inst.penalty == "l1" else 0.5 * lam * (wp**2).sum(-1)
    np.testing.assert_allclose(inst.objective(w).numpy(), loss + penalty, rtol=1e-12)
    wg = w.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(inst.smooth_objective(wg).sum(), wg)
    assert rel_norm(inst.grad(w), auto) < 1e-12
    for b in range(inst.batch_size):
        def f_b(x, b=b):
            return inst.smooth_objective(torch.cat([w[:b], x[None], w[b + 1:]]))[b]

        torch.testing.assert_close(inst.hessian(w)[b], torch.autograd.functional.hessian(f_b, w[b]),
                                   rtol=1e-10, atol=1e-13)
    assert bool((inst.strong_convexity() == 0).all())
    # prox and subdifferential leave the intercept alone, and act as before on w
    v = points(inst, g)
    p = inst.prox(v, 0.3)
    torch.testing.assert_close(p[:, -1], v[:, -1], rtol=0, atol=0)
    plain = LogisticInstances(inst.X[..., :-1], inst.y, inst.lam, inst.penalty)
    torch.testing.assert_close(p[:, :-1], plain.prox(v[:, :-1], 0.3), rtol=0, atol=0)
    lower, upper = inst.subdifferential_bounds(v)
    assert bool((lower[:, -1] == 0).all() and (upper[:, -1] == 0).all())
    # index and to keep the intercept
    assert inst.index(torch.tensor([0])).intercept and inst.to(dtype=torch.float32).intercept


# ----- references against scikit-learn ------------------------------------------------------


def _sklearn_logistic(X: np.ndarray, y: np.ndarray, lam: float, penalty: str, solver: str) -> np.ndarray:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    N = X.shape[0]
    # scikit-learn >= 1.8 names the penalty by l1_ratio (1: l1, 0: l2); C = 1/(N lam).
    est = LogisticRegression(
        l1_ratio=1.0 if penalty == "l1" else 0.0,
        C=1.0 / (N * lam),
        fit_intercept=False,
        solver=solver,
        tol=1e-12,
        max_iter=100_000,
        random_state=0,  # liblinear shuffles coordinates
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    return est.coef_.ravel()


def _check_against_sklearn(inst: LogisticInstances, solver: str) -> None:
    ref = reference(inst)
    assert bool((ref.certificate <= 1e-10).all())
    X, y, lam = batch_X(inst), inst.y.numpy(), inst.lam.numpy()
    w_sk = torch.as_tensor(
        np.stack([_sklearn_logistic(X[b], y[b], float(lam[b]), inst.penalty, solver) for b in range(inst.batch_size)])
    )
    F_ref, F_sk = ref.objective, inst.objective(w_sk)
    assert bool((F_ref <= F_sk * (1 + 1e-9)).all()), (F_ref, F_sk)
    assert bool(((F_ref - F_sk).abs() <= 1e-6 * F_sk.abs()).all()), (F_ref, F_sk)
    # The duality gap at the reference bounds its suboptimality.
    assert bool((inst.dual_objective(ref.x) <= F_sk * (1 + 1e-12)).all())
    nnz = (ref.x != 0).sum(-1)
    if inst.penalty == "l1":  # sparse but not zero: the test is not vacuous
        assert bool(((nnz > 0) & (nnz < inst.dim)).all()), nnz
    else:
        assert bool((nnz == inst.dim).all())


@pytest.mark.parametrize(
    "family, solver",
    [
        (LogisticFamily(n_samples=200, d=10, nnz=4, lam=0.01), "liblinear"),
        (LogisticFamily(n_samples=200, d=10, nnz=4, lam=0.01, penalty="l2", noise_std=0.5), "newton-cg"),
        (LogisticFamily(n_samples=200, d=10, nnz=4, lam=0.02, penalty="l2"), "lbfgs"),
        (LogisticFamily(), "liblinear"),  # the logistic_1000x50 preset
    ],
    ids=["l1", "l2_noisy", "l2_separable", "preset_1000x50"],
)
def test_synthetic_reference_matches_sklearn(family, solver):
    _check_against_sklearn(family.sample(3 if family.n_samples < 1000 else 2, 5), solver)


@pytest.mark.parametrize("penalty, solver", [("l1", "liblinear"), ("l2", "newton-cg")])
def test_breast_cancer_reference_matches_sklearn(penalty, solver):
    family = DatasetLogisticFamily(dataset="breast_cancer", lam=0.01, penalty=penalty)
    _check_against_sklearn(family.sample(3, 0), solver)


# ----- family data ----------------------------------------------------------------------------------


def test_synthetic_family_data():
    family = LogisticFamily()
    inst = family.sample(3, 0)
    assert inst.X.shape == (3, 1000, 50) and inst.y.shape == (3, 1000)
    assert set(torch.unique(inst.y).tolist()) == {-1.0, 1.0}
    # Both classes are well represented (the planted w* has mean-zero margins).
    frac = (inst.y > 0).double().mean(-1)
    assert bool(((frac > 0.35) & (frac < 0.65)).all())
    assert abs(float(inst.X.mean())) < 0.01 and abs(float(inst.X.std()) - 1.0) < 0.01
    assert bool((inst.lam == 0.1).all()) and inst.penalty == "l1" and inst.has_nonsmooth
    # The labels are linearly separable through a 20-sparse planted w* (noise_std = 0):
    # a hard-margin-like fit (tiny lam, l2) classifies every sample correctly.
    sep = LogisticFamily(n_samples=60, d=8, nnz=3, lam=1e-6, penalty="l2").sample(2, 0)
    w = reference(sep).x
    assert bool((sep.margins(w) > 0).all())
    # ... while noisy labels are not all fit by a regularized model.
    noisy = LogisticFamily(noise_std=3.0).sample(1, 0)
    assert not torch.equal(noisy.y, inst.y[:1])
    # data_scale scales the features only.
    scaled = family.replace(data_scale=2.0).sample(3, 0)
    torch.testing.assert_close(scaled.X, 2 * inst.X, rtol=0, atol=0)
    torch.testing.assert_close(scaled.y, inst.y, rtol=0, atol=0)


def test_dataset_family_rows_are_subsamples_without_replacement():
    X_full, y_full = load_dataset("breast_cancer")
    assert X_full.shape == (569, 30) and set(y_full.unique().tolist()) == {-1.0, 1.0}
    torch.testing.assert_close(X_full.mean(0), torch.zeros(30, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(X_full.std(0), torch.ones(30, dtype=torch.float64), rtol=1e-12, atol=0)
    inst = DatasetLogisticFamily(subsample=0.8).sample(3, 1)
    n_rows = round(0.8 * 569)
    assert inst.X.shape == (3, n_rows, 30) and inst.y.shape == (3, n_rows)
    for b in range(3):
        dist = torch.cdist(inst.X[b], X_full, compute_mode="donot_use_mm_for_euclid_dist")
        match = dist.argmin(-1)
        assert float(dist.min(-1).values.max()) == 0.0  # every row is a row of the dataset
        assert match.unique().numel() == n_rows  # ... and no row is repeated
        torch.testing.assert_close(inst.y[b], y_full[match], rtol=0, atol=0)
    assert not torch.equal(inst.X[0], inst.X[1])
    full = DatasetLogisticFamily(subsample=1.0).sample(2, 1)
    assert full.X.shape == (569, 30) and full.shared_matrix
    torch.testing.assert_close(full.X, X_full, rtol=0, atol=0)
    assert torch.equal(full.y[0], full.y[1])
    digits = DatasetLogisticFamily(dataset="digits", subsample=1.0).sample(1, 0)
    assert digits.X.shape == (1797, 64) and set(digits.y.unique().tolist()) == {-1.0, 1.0}


def test_instances_reject_bad_arguments():
    X = torch.randn(5, 3, dtype=torch.float64)
    y = torch.ones(5, dtype=torch.float64)
    with pytest.raises(ValueError, match="penalty"):
        LogisticInstances(X, y[None], 0.1, penalty="elasticnet")
    with pytest.raises(ValueError, match="batch"):
        LogisticInstances(X, y, 0.1)  # no batch dimension anywhere
    inst = LogisticInstances(X[None].expand(2, -1, -1), y, 0.1)  # (N,) labels broadcast over the batch
    assert inst.y.shape == (2, 5) and inst.batch_size == 2
