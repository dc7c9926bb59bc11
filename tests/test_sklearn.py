"""l2o.sklearn: scikit-learn's estimator checks, and the fits against scikit-learn's own
``Lasso`` / ``LogisticRegression`` (solved to high precision) on the bundled datasets.

The objectives are written out here in numpy, in scikit-learn's scaling, so that both
fits are measured the same way: the l2o fit must be within 1e-6 (relative) of
scikit-learn's optimum at the default tol, and within 1e-9 at tol=1e-10."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from sklearn import linear_model as sk
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import parametrize_with_checks

import l2o.sklearn as l2sk
from l2o.learned.lfista import LFISTA
from l2o.problems.logistic import LogisticInstances, balance_dual
from l2o.sklearn import Lasso, LogisticRegression

# ----- scikit-learn's conformance checks --------------------------------------------------------------

# No expected failures: every check of the installed scikit-learn passes (check_array_api_input
# skips itself without SCIPY_ARRAY_API). Multiclass targets are one-vs-rest (see the module).
EXPECTED_FAILED: dict = {}


@parametrize_with_checks([Lasso(), LogisticRegression()], expected_failed_checks=lambda est: EXPECTED_FAILED)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ----- data and objectives ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def diabetes():
    return load_diabetes(return_X_y=True)


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return (X - X.mean(0)) / X.std(0), y


def lasso_objective(X, y, alpha, coef, intercept):
    """scikit-learn's Lasso objective 1/(2n) ||y - Xw - b||^2 + alpha ||w||_1."""
    return 0.5 / len(y) * np.sum((y - X @ coef - intercept) ** 2) + alpha * np.abs(coef).sum()


def logistic_objective(X, y, C, penalty, coef, intercept):
    """scikit-learn's C sum_i log(1 + exp(-y_i (x_i w + b))) + r(w), labels {0,1} -> {-1,+1}."""
    w = np.ravel(coef)
    z = (2.0 * y - 1.0) * (X @ w + np.ravel(intercept)[0])
    r = 0.5 * w @ w if penalty == "l2" else np.abs(w).sum()
    return C * np.logaddexp(0.0, -z).sum() + r


def sklearn_lasso(X, y, alpha, fit_intercept=True):
    return sk.Lasso(alpha=alpha, fit_intercept=fit_intercept, tol=1e-14, max_iter=1_000_000).fit(X, y)


_LOGISTIC: dict = {}


def sklearn_logistic(X, y, C, penalty, fit_intercept=True):
    """scikit-learn's fit to high precision (cached: the data are the module's fixture):
    Newton-Cholesky for l2; for l1 liblinear without intercept (it would penalize one) and
    SAGA with one (the only solver of scikit-learn for l1 with an unpenalized intercept)."""
    key = (C, penalty, fit_intercept)
    if key not in _LOGISTIC:
        solver = "newton-cholesky" if penalty == "l2" else ("saga" if fit_intercept else "liblinear")
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            _LOGISTIC[key] = sk.LogisticRegression(
                C=C, l1_ratio=1.0 if penalty == "l1" else 0.0, solver=solver, fit_intercept=fit_intercept,
                tol=1e-10 if solver == "saga" else 1e-13, max_iter=1_000_000).fit(X, y)
    return _LOGISTIC[key]


# ----- Lasso -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("alpha", [0.01, 0.1, 1.0])
def test_lasso_matches_sklearn_on_diabetes(diabetes, alpha, fit_intercept):
    X, y = diabetes
    ref = sklearn_lasso(X, y, alpha, fit_intercept)
    f_ref = lasso_objective(X, y, alpha, ref.coef_, ref.intercept_)
    for tol, within in [(1e-6, 1e-6), (1e-10, 1e-9)]:
        ours = Lasso(alpha=alpha, fit_intercept=fit_intercept, tol=tol).fit(X, y)
        f = lasso_objective(X, y, alpha, ours.coef_, ours.intercept_)
        assert abs(f - f_ref) <= within * f_ref, (tol, f, f_ref)
        # the duality gap (scikit-learn's scaling) bounds the suboptimality and meets tol
        assert f - f_ref <= ours.dual_gap_ * (1 + 1e-9) + 1e-12 * f_ref
        assert ours.dual_gap_ <= tol * f * (1 + 1e-9)
        assert isinstance(ours.intercept_, float) and ours.coef_.shape == (X.shape[1],)
        assert isinstance(ours.n_iter_, int) and ours.n_iter_ >= 1
        if not fit_intercept:
            assert ours.intercept_ == 0.0


def test_lasso_2d_target_is_a_batch_of_independent_fits(diabetes):
    X, y = diabetes
    Y = np.column_stack([y, y[::-1], 0.1 * y + 3.0])
    alpha = 0.05
    ours = Lasso(alpha=alpha, tol=1e-10).fit(X, Y)
    ref = sklearn_lasso(X, Y, alpha)
    assert ours.coef_.shape == (3, X.shape[1]) and ours.intercept_.shape == (3,)
    assert len(ours.n_iter_) == 3 and ours.dual_gap_.shape == (3,)
    for k in range(3):
        f = lasso_objective(X, Y[:, k], alpha, ours.coef_[k], ours.intercept_[k])
        f_ref = lasso_objective(X, Y[:, k], alpha, ref.coef_[k], ref.intercept_[k])
        assert abs(f - f_ref) <= 1e-9 * f_ref
        one = Lasso(alpha=alpha, tol=1e-10).fit(X, Y[:, k])
        np.testing.assert_allclose(ours.coef_[k], one.coef_, rtol=0, atol=1e-6 * np.abs(one.coef_).max())
    assert ours.predict(X).shape == Y.shape


def test_lasso_alpha_zero_is_least_squares(diabetes):
    X, y = diabetes
    ours = Lasso(alpha=0.0, tol=1e-12).fit(X, y)
    ref = sk.LinearRegression().fit(X, y)
    f, f_ref = (lasso_objective(X, y, 0.0, m.coef_, m.intercept_) for m in (ours, ref))
    assert abs(f - f_ref) <= 1e-9 * f_ref
    assert 0 <= ours.dual_gap_ <= 1e-9 * f_ref


def test_lasso_float32_input_keeps_its_dtype(diabetes):
    X, y = diabetes
    ours = Lasso(alpha=0.1).fit(X.astype(np.float32), y.astype(np.float32))
    assert ours.coef_.dtype == np.float32
    ref = sklearn_lasso(X, y, 0.1)
    f_ref = lasso_objective(X, y, 0.1, ref.coef_, ref.intercept_)
    assert abs(lasso_objective(X, y, 0.1, ours.coef_.astype(np.float64), ours.intercept_) - f_ref) <= 1e-6 * f_ref


# ----- logistic regression -----------------------------------------------------------------------------


# l1 with an intercept at C = 1 is left out: SAGA, scikit-learn's only solver for it, takes
# about 150 s (324k epochs) to reach 1e-13 on this machine; l2o's FISTA fits it in 5 s.
@pytest.mark.parametrize("penalty,C,fit_intercept", [
    ("l2", 0.1, True), ("l2", 1.0, True), ("l2", 0.1, False), ("l2", 1.0, False),
    ("l1", 0.1, True), ("l1", 0.1, False), ("l1", 1.0, False),
])
def test_logistic_matches_sklearn_on_breast_cancer(cancer, penalty, C, fit_intercept):
    X, y = cancer
    ref = sklearn_logistic(X, y, C, penalty, fit_intercept)
    f_ref = logistic_objective(X, y, C, penalty, ref.coef_, ref.intercept_)
    for tol, within in [(1e-6, 1e-6), (1e-10, 1e-9)]:
        ours = LogisticRegression(penalty, C=C, fit_intercept=fit_intercept, tol=tol).fit(X, y)
        f = logistic_objective(X, y, C, penalty, ours.coef_, ours.intercept_)
        assert abs(f - f_ref) <= within * f_ref, (tol, f, f_ref)
        assert ours.coef_.shape == (1, X.shape[1]) and ours.intercept_.shape == (1,)
        assert ours.n_iter_.shape == (1,)
    assert np.mean(ours.predict(X) == ref.predict(X)) >= 0.99
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-4)


def test_intercept_dual_is_a_lower_bound_and_tight_at_the_optimum(cancer):
    """D(w) <= F* at arbitrary points, and F - D -> 0 at scikit-learn's optimum."""
    X, y = cancer
    n = len(y)
    Xa = torch.from_numpy(np.hstack([X, np.ones((n, 1))]))
    Y = torch.from_numpy(2.0 * y - 1.0).unsqueeze(0)
    g = torch.Generator().manual_seed(0)
    for penalty, C in [("l2", 1.0), ("l1", 0.1)]:  # references shared with the tests above
        ref = sklearn_logistic(X, y, C, penalty)
        p = LogisticInstances(Xa, Y, 1.0 / (C * n), penalty, intercept=True)
        f_star = logistic_objective(X, y, C, penalty, ref.coef_, ref.intercept_) / (C * n)  # the mean form
        w = torch.randn(20, X.shape[1] + 1, generator=g, dtype=torch.float64)
        batch = LogisticInstances(Xa, Y.expand(20, -1), 1.0 / (C * n), penalty, intercept=True)
        assert bool((batch.dual_objective(w) <= f_star + 1e-12).all())
        w_star = torch.from_numpy(np.concatenate([ref.coef_.ravel(), ref.intercept_])).unsqueeze(0)
        assert abs(float(p.objective(w_star)) - f_star) <= 1e-12 * f_star
        assert float(p.certificate(w_star)) <= 1e-8


def test_balance_dual_against_a_scalar_root_finder():
    g = torch.Generator().manual_seed(1)
    u = torch.rand(4, 30, generator=g, dtype=torch.float64)
    y = torch.where(torch.rand(4, 30, generator=g) < 0.3, 1.0, -1.0).to(torch.float64)
    out = balance_dual(u, y)
    for b in range(4):
        ub, yb = u[b].numpy(), y[b].numpy()
        t = brentq(lambda t: float(np.sum(yb * np.clip(ub - t * yb, 0, 1))), -1, 1, xtol=1e-15)
        np.testing.assert_allclose(out[b].numpy(), np.clip(ub - t * yb, 0, 1), atol=1e-12)
    assert float((y * out).sum(-1).abs().max()) <= 1e-12
    assert bool(((out >= 0) & (out <= 1)).all())


def test_multiclass_is_one_vs_rest_in_one_batch():
    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    ours = LogisticRegression(C=1.0, tol=1e-10).fit(X, y)
    assert ours.coef_.shape == (3, 4) and ours.n_iter_.shape == (3,)
    for k in range(3):
        binary = LogisticRegression(C=1.0, tol=1e-10).fit(X, (y == k).astype(int))
        np.testing.assert_allclose(ours.coef_[k], binary.coef_[0], atol=1e-6)
        np.testing.assert_allclose(ours.intercept_[k], binary.intercept_[0], atol=1e-6)
    proba = ours.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    np.testing.assert_array_equal(ours.classes_[proba.argmax(1)], ours.predict(X))
    assert np.mean(ours.predict(X) == y) > 0.9


def test_logistic_string_labels_and_one_class(cancer):
    X, y = cancer
    labels = np.where(y == 1, "benign", "malignant")
    ours = LogisticRegression().fit(X, labels)
    assert list(ours.classes_) == ["benign", "malignant"]
    # classes_[1] ("malignant", y == 0) is the positive class
    assert np.mean(ours.predict(X) == labels) > 0.95
    with pytest.raises(ValueError, match="at least 2 classes"):
        LogisticRegression().fit(X, np.zeros(len(y)))


# ----- solvers: classical names, learned objects, pretrained names --------------------------------------


@pytest.mark.parametrize("solver", ["fista", "fista_polish", "ista"])
def test_lasso_any_classical_solver(diabetes, solver):
    X, y = diabetes
    ref = sklearn_lasso(X, y, 0.1)
    f_ref = lasso_objective(X, y, 0.1, ref.coef_, ref.intercept_)
    ours = Lasso(alpha=0.1, solver=solver).fit(X, y)
    assert ours.solver_ == solver
    assert abs(lasso_objective(X, y, 0.1, ours.coef_, ours.intercept_) - f_ref) <= 1e-6 * f_ref


@pytest.mark.parametrize("penalty,solver", [("l2", "lbfgs"), ("l2", "fista_restart"), ("l1", "fista")])
def test_logistic_any_classical_solver(cancer, penalty, solver):
    X, y = cancer
    ref = sklearn_logistic(X, y, 0.1, penalty)
    f_ref = logistic_objective(X, y, 0.1, penalty, ref.coef_, ref.intercept_)
    ours = LogisticRegression(penalty, C=0.1, solver=solver).fit(X, y)
    assert ours.solver_ == solver
    assert abs(logistic_objective(X, y, 0.1, penalty, ours.coef_, ours.intercept_) - f_ref) <= 1e-6 * f_ref


def harmful_lfista(horizon: int) -> LFISTA:
    """An LFISTA whose thresholds are e^5 times too large during its horizon: alone it sits
    at w = 0 until the horizon; it is never rejected by its own logic."""
    model = LFISTA(horizon=horizon)
    with torch.no_grad():
        model.theta.fill_(5.0)
    return model


@pytest.mark.parametrize("safeguard", [True, False])
def test_lasso_with_a_learned_solver(diabetes, safeguard):
    X, y = diabetes
    ref = sklearn_lasso(X, y, 0.1)
    f_ref = lasso_objective(X, y, 0.1, ref.coef_, ref.intercept_)
    model = LFISTA(horizon=10)  # untrained: FISTA with restart exactly
    ours = Lasso(alpha=0.1, solver=model, safeguard=safeguard).fit(X, y)
    assert ours.solver_ == ("safeguarded_lfista" if safeguard else "lfista")
    assert abs(lasso_objective(X, y, 0.1, ours.coef_, ours.intercept_) - f_ref) <= 1e-6 * f_ref
    assert model.training  # the module's mode is restored after the fit


def test_safeguard_rescues_a_harmful_learned_solver(diabetes):
    X, y = diabetes
    ref = sklearn_lasso(X, y, 0.1)
    f_ref = lasso_objective(X, y, 0.1, ref.coef_, ref.intercept_)
    guarded = Lasso(alpha=0.1, solver=harmful_lfista(10_000), max_iter=2000).fit(X, y)
    assert abs(lasso_objective(X, y, 0.1, guarded.coef_, guarded.intercept_) - f_ref) <= 1e-6 * f_ref
    with pytest.warns(ConvergenceWarning, match="did not reach"):
        alone = Lasso(alpha=0.1, solver=harmful_lfista(10_000), safeguard=False, max_iter=2000).fit(X, y)
    assert lasso_objective(X, y, 0.1, alone.coef_, alone.intercept_) > 1.01 * f_ref


@pytest.mark.parametrize("shape", ["tuple", "object", "solver"])
def test_pretrained_names_go_through_the_loader(diabetes, monkeypatch, shape):
    X, y = diabetes
    calls = []

    def loader(name):
        calls.append(name)
        model = harmful_lfista(7)
        if shape == "tuple":
            return model, "lasso_250x500", 7, {"name": name}
        if shape == "object":
            return type("Loaded", (), {"solver": model, "horizon": 7})()
        return model

    monkeypatch.setattr(l2sk, "PRETRAINED_LOADER", loader)
    est = Lasso(alpha=0.1, solver="lfista-lasso_250x500")
    ours = est.fit(X, y)
    assert calls == ["lfista-lasso_250x500"] and ours.solver_ == "safeguarded_lfista"
    ref = sklearn_lasso(X, y, 0.1)
    f_ref = lasso_objective(X, y, 0.1, ref.coef_, ref.intercept_)
    assert abs(lasso_objective(X, y, 0.1, ours.coef_, ours.intercept_) - f_ref) <= 1e-6 * f_ref
    assert clone(est).get_params()["solver"] == "lfista-lasso_250x500"


def test_solver_errors_name_the_parameter(diabetes, monkeypatch, cancer):
    X, y = diabetes
    monkeypatch.setattr(l2sk, "PRETRAINED_LOADER", None)
    with pytest.raises(ValueError, match="solver='nope' is not a classical solver .*fista"):
        Lasso(solver="nope").fit(X, y)
    with pytest.raises(ValueError, match="solver='lfista' is an untrained learned method"):
        Lasso(solver="lfista").fit(X, y)
    with pytest.raises(ValueError, match="solver: solver 'gd' handles smooth unconstrained problems only"):
        Lasso(solver="gd").fit(X, y)
    with pytest.raises(ValueError, match="solver must be 'auto', a solver name or an l2o optimizer"):
        Lasso(solver=3).fit(X, y)

    def missing(name):
        raise ValueError(f"unknown pretrained solver {name!r}")

    monkeypatch.setattr(l2sk, "PRETRAINED_LOADER", missing)
    with pytest.raises(ValueError, match="solver='nope': unknown pretrained solver 'nope'"):
        Lasso(solver="nope").fit(X, y)


@pytest.mark.parametrize("est,message", [
    (Lasso(alpha=-1.0), "alpha must be a finite number >= 0"),
    (Lasso(tol=0.0), "tol must be a number > 0"),
    (Lasso(max_iter=0), "max_iter must be an integer >= 1"),
    (Lasso(fit_intercept="yes"), "fit_intercept must be True or False"),
    (Lasso(device="nowhere"), "device must be a torch device"),
    (LogisticRegression(penalty="elasticnet"), "penalty must be 'l1' or 'l2'"),
    (LogisticRegression(C=0.0), "C must be a number > 0"),
    (LogisticRegression(safeguard=None), "safeguard must be True or False"),
])
def test_bad_parameters_are_one_line_value_errors(est, message, cancer):
    X, y = cancer
    with pytest.raises(ValueError, match=message):
        est.fit(X, y)


def test_convergence_warning_and_params(cancer):
    X, y = cancer
    with pytest.warns(ConvergenceWarning, match=r"1 of 1 problem\(s\) did not reach a relative duality gap"):
        LogisticRegression("l1", C=1.0, max_iter=3).fit(X, y)
    est = LogisticRegression("l1", C=0.3, solver="fista")
    assert est.get_params()["C"] == 0.3 and est.set_params(C=2.0).C == 2.0
    assert clone(est).get_params() == est.get_params()
    assert get_tags(Lasso()).target_tags.multi_output
    assert get_tags(LogisticRegression()).estimator_type == "classifier"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device_matches_cpu(diabetes):
    X, y = diabetes
    cpu = Lasso(alpha=0.1, tol=1e-10).fit(X, y)
    gpu = Lasso(alpha=0.1, tol=1e-10, device="cuda").fit(X, y)
    f_cpu, f_gpu = (lasso_objective(X, y, 0.1, m.coef_, m.intercept_) for m in (cpu, gpu))
    assert abs(f_gpu - f_cpu) <= 1e-9 * f_cpu
