"""scikit-learn estimators solved by l2o: ``Lasso`` and ``LogisticRegression``.

Both follow scikit-learn's conventions (``__init__`` stores the parameters, ``fit``
returns ``self``, fitted attributes end in ``_``, ``get_params`` / ``set_params``,
``__sklearn_tags__``) and its objectives exactly, so that a fitted l2o estimator can
replace scikit-learn's in a pipeline:

* ``Lasso(alpha)``:  min_w 1/(2 n_samples) ||y - X w - b||^2 + alpha ||w||_1, with the
  intercept b handled as scikit-learn does (X and y centred, b = mean(y) - mean(X) w).
  A 2-D target ``(n_samples, n_targets)`` is a batch of independent LASSO problems that
  share X (what scikit-learn's ``Lasso`` does column by column), solved as ONE batch.
* ``LogisticRegression(penalty, C)``:  min_{w,b} C sum_i log(1 + exp(-y_i (x_i^T w + b)))
  + r(w) with r = 1/2 ||w||^2 (``"l2"``) or ||w||_1 (``"l1"``) and labels mapped to
  {-1, +1}; the intercept b is not penalized. More than two classes: one-vs-rest,
  the classes' binary problems solved as one batch (scikit-learn fits a multinomial
  model there, so only binary fits are comparable coefficient by coefficient).

Both divide the objective by a positive constant to reach l2o's families (LASSO:
1/2 ||Ax - b||^2 + lam ||x||_1 with lam = n_samples alpha; logistic: the mean loss plus
lam r(w) with lam = 1 / (C n_samples)) and solve them with ``l2o.evaluation.solve``, the
certified loop: each problem stops once its relative duality gap is <= ``tol``, so the
objective is within ``tol`` (relative) of the optimum.

``solver=`` is ``"auto"`` (the family's default: FISTA with restart for LASSO and l1
logistic, Newton for l2 logistic), any classical solver name of ``l2o.registry.CLASSICAL``,
an ``l2o`` optimizer object (e.g. a trained ``l2o.learned`` model) or the name of a bundled
pretrained solver, resolved by ``PRETRAINED_LOADER`` (``l2o.workflows.load.load_solver``).
A learned solver is wrapped in ``l2o.safeguard.Safeguard`` with
the family's fallback when ``safeguard=True`` (the default), so the fit keeps the
fallback's convergence guarantee whatever the learned model does.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
from torch import Tensor

from l2o.evaluation.compare import learned_module
from l2o.evaluation.defaults import default_fallback
from l2o.evaluation.solve import solve
from l2o.optimizers.base import Optimizer
from l2o.problems.lasso import LassoFamily, LeastSquaresInstances
from l2o.problems.logistic import LogisticFamily, LogisticInstances, logistic_solver
from l2o.registry import CLASSICAL, LEARNED, make_solver
from l2o.safeguard import Safeguard
from l2o.workflows.load import load_solver as _bundled_loader  # bundled pretrained solvers by name

#: Resolves a solver name that is not a classical solver: ``name -> loaded``, where
#: ``loaded`` is an ``Optimizer``, a tuple ``(solver, family, horizon, ...)`` or an object
#: with ``.solver`` (and ``.horizon``). ``l2o.workflows.load.load_solver`` by default;
#: tests and users may set another.
PRETRAINED_LOADER: Callable[[str], Any] | None = _bundled_loader

#: The safeguard of learned solvers (``l2o.safeguard``): sufficient decrease checked at
#: every iteration, handing over to the fallback for good after the trained horizon.
SAFEGUARD_RULE = "descent"

__all__ = ["Lasso", "LogisticRegression", "resolve_solver", "PRETRAINED_LOADER"]


# ----- solvers ---------------------------------------------------------------------------------------


def _unpack_loaded(loaded: Any) -> tuple[Optimizer, int | None]:
    """(solver, horizon) from what a pretrained loader returned (see ``PRETRAINED_LOADER``)."""
    if isinstance(loaded, Optimizer):
        return loaded, getattr(loaded, "horizon", None)
    if isinstance(loaded, (tuple, list)) and loaded and isinstance(loaded[0], Optimizer):
        horizon = loaded[2] if len(loaded) > 2 and isinstance(loaded[2], numbers.Integral) else None
        return loaded[0], horizon if horizon is not None else getattr(loaded[0], "horizon", None)
    inner = getattr(loaded, "solver", None)
    if isinstance(inner, Optimizer):
        horizon = getattr(loaded, "horizon", None)
        return inner, horizon if horizon is not None else getattr(inner, "horizon", None)
    raise ValueError(f"solver: the pretrained loader returned {type(loaded).__name__}, not an l2o solver")


def resolve_solver(solver: Any, safeguard: bool, default: str, fallback: str) -> tuple[Optimizer, str]:
    """The ``Optimizer`` named by an estimator's ``solver`` parameter, and its name.

    Args:
        solver: ``"auto"`` (``default``), a classical solver name, an ``Optimizer`` object,
            or a bundled pretrained name (``PRETRAINED_LOADER``).
        safeguard: wrap a learned solver in ``Safeguard(learned, fallback)`` (rule
            ``SAFEGUARD_RULE``, handing over to ``fallback`` after its trained horizon).
        default, fallback: classical solver names of the problem's family.

    >>> resolve_solver("fista", True, "fista_restart", "fista_restart")[1]
    'fista'
    """
    horizon = None
    if isinstance(solver, str):
        name = default if solver == "auto" else solver
        if name in CLASSICAL:
            return make_solver(name), name
        if name in LEARNED:
            raise ValueError(f"solver={name!r} is an untrained learned method; name a bundled pretrained solver "
                             f"(e.g. '{name}-<preset>') or pass a trained l2o solver object")
        if PRETRAINED_LOADER is None:
            raise ValueError(f"solver={name!r} is not a classical solver ({', '.join(sorted(CLASSICAL))}) and no "
                             f"pretrained solvers are installed (l2o.workflows.load)")
        try:
            obj, horizon = _unpack_loaded(PRETRAINED_LOADER(name))
        except (ValueError, KeyError, FileNotFoundError) as e:
            raise ValueError(f"solver={name!r}: {e}; classical solvers: {', '.join(sorted(CLASSICAL))}") from None
    elif isinstance(solver, Optimizer):
        obj, name = solver, getattr(solver, "name", type(solver).__name__)
        horizon = getattr(solver, "horizon", None)
    else:
        raise ValueError(f"solver must be 'auto', a solver name or an l2o optimizer, got {type(solver).__name__}")
    if safeguard and learned_module(obj) is not None and not isinstance(obj, Safeguard):
        after = "fallback" if horizon else "learned"
        obj = Safeguard(obj, make_solver(fallback), rule=SAFEGUARD_RULE, after_horizon=after, horizon=horizon)
        name = obj.name
    return obj, name


@contextlib.contextmanager
def _evaluating(solver: Optimizer) -> Iterator[None]:
    """A learned solver's network in eval mode for the solve, its mode restored after."""
    module = learned_module(solver)
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    try:
        yield
    finally:
        if module is not None:
            module.train(was_training)


def _check_common(est: Any) -> None:
    """ValueError naming the parameter for the parameters both estimators share."""
    if not isinstance(est.fit_intercept, (bool, np.bool_)):
        raise ValueError(f"fit_intercept must be True or False, got {est.fit_intercept!r}")
    if not isinstance(est.safeguard, (bool, np.bool_)):
        raise ValueError(f"safeguard must be True or False, got {est.safeguard!r}")
    if not isinstance(est.tol, numbers.Real) or not est.tol > 0:
        raise ValueError(f"tol must be a number > 0, got {est.tol!r}")
    if not isinstance(est.max_iter, numbers.Integral) or est.max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {est.max_iter!r}")
    try:
        torch.device(est.device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {est.device!r}") from None


def _solve(est: Any, solver: Optimizer, problem: Any) -> Any:
    """``l2o.solve`` to the estimator's tol and max_iter; ConvergenceWarning where a problem
    stopped at max_iter. A solver that does not fit the problem is a ValueError on ``solver``."""
    try:
        solver.check_problem(problem)
    except ValueError as e:
        raise ValueError(f"solver: {e}") from None
    with _evaluating(solver):
        result = solve(solver, problem, tol=float(est.tol), max_iter=int(est.max_iter))
    left = int((~result.converged).sum())
    if left:
        warnings.warn(
            f"{type(est).__name__}: {left} of {problem.batch_size} problem(s) did not reach a "
            f"{result.certificate_name} <= tol={est.tol:g} within max_iter={est.max_iter} "
            f"(largest: {float(result.certificate.max()):.3g}); increase max_iter or tol",
            ConvergenceWarning, stacklevel=3)
    return result


def _as_float64(X: np.ndarray) -> np.ndarray:
    """A fresh, writable, C-ordered float64 copy (torch refuses to share read-only memory)."""
    return np.array(X, dtype=np.float64, order="C", copy=True)


def _lasso_gap(problem: LeastSquaresInstances, x: Tensor) -> Tensor:
    """``(B,)`` duality gap F(x) - D of the LASSO at the better of its two dual points (the
    residual's and the support's, as the certificate uses them), >= F(x) - F*."""
    _, dual = problem.duality_gap(x)
    dual = torch.maximum(dual, problem._support_dual(x, torch.ones_like(dual, dtype=torch.bool)))
    return (problem.objective(x) - dual).clamp(min=0)


def _least_squares_gap(A: Tensor, b: Tensor, x: Tensor) -> Tensor:
    """F(x) - F* of 1/2 ||A x - b||^2 (alpha = 0): 1/2 ||P r||^2, with r = b - A x and P the
    projection onto the range of A: ``(B,)``."""
    r = b - x @ A.mT
    z = torch.linalg.lstsq(A, r.mT).solution
    return 0.5 * (A @ z).square().sum(0)


# ----- Lasso -----------------------------------------------------------------------------------------


class Lasso(RegressorMixin, BaseEstimator):
    """Linear model trained with an L1 penalty, scikit-learn's ``Lasso`` objective:

        min_w  1/(2 n_samples) ||y - X w||^2 + alpha ||w||_1

    (with ``fit_intercept`` the data are centred first, as scikit-learn does). Solved by
    l2o as the LASSO 1/2 ||A x - b||^2 + lam ||x||_1 with A = X (centred), b = y
    (centred) and lam = n_samples alpha, until the relative duality gap is <= ``tol``.
    Tibshirani, *Regression shrinkage and selection via the lasso*, JRSS B 1996.

    Args:
        alpha: >= 0, the L1 weight (0: least squares).
        fit_intercept: fit an (unpenalized) intercept by centring X and y.
        solver: ``"auto"`` (FISTA with restart), a classical l2o solver name (``l2o list``),
            a bundled pretrained solver name, or an l2o optimizer object.
        safeguard: wrap a learned solver in ``l2o.safeguard.Safeguard`` (fallback FISTA with
            restart), which keeps FISTA's convergence guarantee.
        tol: relative duality gap at which each problem stops (so the objective is within
            ``tol`` of the optimum, relative).
        max_iter: iterations per problem at most (``ConvergenceWarning`` beyond).
        device: torch device of the solve (``"cpu"``, ``"cuda"``).

    Attributes:
        coef_: ``(n_features,)``, or ``(n_targets, n_features)`` for a 2-D y.
        intercept_: float, or ``(n_targets,)``.
        n_iter_: iterations (int, or a list per target).
        dual_gap_: duality gap of the objective above (scikit-learn's scaling: the gap of
            1/2 ||r||^2 + lam ||w||_1 divided by n_samples); float or ``(n_targets,)``.
        certificate_: the relative duality gap per target (what ``tol`` bounds), ``(n_targets,)``.
        solver_: the name of the solver that ran.
        n_features_in_, feature_names_in_: as in scikit-learn.

    >>> import numpy as np
    >>> X = np.array([[0., 1.], [1., 0.5], [2., 2.]]); y = np.array([0., 1., 2.])
    >>> Lasso(alpha=0.1).fit(X, y).coef_.round(2)
    array([0.85, 0.  ])
    """

    def __init__(self, alpha: float = 1.0, *, fit_intercept: bool = True, solver: Any = "auto",
                 safeguard: bool = True, tol: float = 1e-6, max_iter: int = 10_000, device: str = "cpu"):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.safeguard = safeguard
        self.tol = tol
        self.max_iter = max_iter
        self.device = device

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def fit(self, X: Any, y: Any) -> Lasso:
        """Fit on ``X`` ``(n_samples, n_features)`` and ``y`` ``(n_samples,)`` or
        ``(n_samples, n_targets)``; returns self."""
        _check_common(self)
        if not isinstance(self.alpha, numbers.Real) or not self.alpha >= 0 or not math.isfinite(self.alpha):
            raise ValueError(f"alpha must be a finite number >= 0, got {self.alpha!r}")
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=[np.float64, np.float32])
        out_dtype = X.dtype
        X64, Y64 = _as_float64(X), _as_float64(y)
        one_target = Y64.ndim == 1
        Y64 = Y64.reshape(Y64.shape[0], -1)
        n = X64.shape[0]
        if self.fit_intercept:
            X_offset, y_offset = X64.mean(0), Y64.mean(0)
            X64, Y64 = X64 - X_offset, Y64 - y_offset
        else:
            X_offset, y_offset = np.zeros(X64.shape[1]), np.zeros(Y64.shape[1])
        dev = torch.device(self.device)
        A = torch.from_numpy(X64).to(dev)
        b = torch.from_numpy(np.ascontiguousarray(Y64.T)).to(dev)
        problem = LeastSquaresInstances(A, b, float(self.alpha) * n)
        solver, self.solver_ = resolve_solver(self.solver, self.safeguard, LassoFamily.solver_for(problem),
                                              default_fallback(LassoFamily))
        if not bool(A.any()):  # X constant (after centring): w = 0 is optimal, and L = 0
            x, iters = torch.zeros(b.shape[0], A.shape[1], dtype=torch.float64, device=dev), [0] * b.shape[0]
            cert = problem.certificate(x)
        else:
            result = _solve(self, solver, problem)
            x, iters, cert = result.x, [int(i) for i in result.iterations], result.certificate
        gap = _lasso_gap(problem, x) if self.alpha > 0 else _least_squares_gap(A, b, x)
        coef = x.cpu().numpy()
        intercept = y_offset - coef @ X_offset
        self.certificate_ = cert.cpu().numpy()
        gap = gap.cpu().numpy() / n
        if one_target:
            self.coef_, self.intercept_ = coef[0].astype(out_dtype), float(intercept[0])
            self.n_iter_, self.dual_gap_ = iters[0], float(gap[0])
        else:
            self.coef_, self.intercept_ = coef.astype(out_dtype), intercept.astype(out_dtype)
            self.n_iter_, self.dual_gap_ = iters, gap
        return self

    def predict(self, X: Any) -> np.ndarray:
        """X @ coef_.T + intercept_: ``(n_samples,)`` or ``(n_samples, n_targets)``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return X @ np.asarray(self.coef_).T + self.intercept_


# ----- logistic regression ----------------------------------------------------------------------------


class LogisticRegression(ClassifierMixin, BaseEstimator):
    """Logistic regression with an l1 or l2 penalty, scikit-learn's objective:

        min_{w, b}  C sum_i log(1 + exp(-y_i (x_i^T w + b))) + r(w),
        r(w) = 1/2 ||w||^2 ("l2") or ||w||_1 ("l1"),   y_i in {-1, +1},

    (scikit-learn 1.8+ spells the penalty ``l1_ratio=0`` / ``1``). Solved by l2o as the
    mean loss plus lam r(w) with lam = 1 / (C n_samples) (the same minimizer), the
    intercept an unpenalized extra coordinate (``LogisticInstances(..., intercept=True)``), until the
    relative duality gap is <= ``tol``. More than two classes: one-vs-rest (class k
    against the rest), the binary problems solved as one batch, probabilities normalized
    over the classes.

    Args:
        penalty: ``"l2"`` or ``"l1"``.
        C: > 0, inverse regularization strength (``inf``: no penalty).
        fit_intercept: fit an unpenalized intercept.
        solver: ``"auto"`` (Newton for l2, FISTA with restart for l1), a classical l2o
            solver name, a bundled pretrained solver name or an l2o optimizer object.
        safeguard: wrap a learned solver in ``l2o.safeguard.Safeguard`` (fallback FISTA
            with restart).
        tol: relative duality gap at which each problem stops.
        max_iter: iterations per problem at most (``ConvergenceWarning`` beyond).
        device: torch device of the solve.

    Attributes:
        classes_: ``(n_classes,)`` the labels.
        coef_: ``(1, n_features)`` (binary) or ``(n_classes, n_features)``.
        intercept_: ``(1,)`` or ``(n_classes,)``.
        n_iter_: ``(1,)`` or ``(n_classes,)`` iterations.
        certificate_: relative duality gap per problem.
        solver_: the name of the solver that ran.

    >>> import numpy as np
    >>> X = np.array([[-2.], [-1.], [1.], [2.]]); y = np.array([0, 0, 1, 1])
    >>> LogisticRegression(C=1.0).fit(X, y).predict(np.array([[-3.], [3.]]))
    array([0, 1])
    """

    def __init__(self, penalty: str = "l2", *, C: float = 1.0, fit_intercept: bool = True, solver: Any = "auto",
                 safeguard: bool = True, tol: float = 1e-6, max_iter: int = 10_000, device: str = "cpu"):
        self.penalty = penalty
        self.C = C
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.safeguard = safeguard
        self.tol = tol
        self.max_iter = max_iter
        self.device = device

    def fit(self, X: Any, y: Any) -> LogisticRegression:
        """Fit on ``X`` ``(n_samples, n_features)`` and labels ``y`` ``(n_samples,)``; returns self."""
        _check_common(self)
        if self.penalty not in ("l1", "l2"):
            raise ValueError(f"penalty must be 'l1' or 'l2', got {self.penalty!r}")
        if not isinstance(self.C, numbers.Real) or not self.C > 0:
            raise ValueError(f"C must be a number > 0 (inf: no penalty), got {self.C!r}")
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if self.classes_.size < 2:
            raise ValueError(f"this solver needs samples of at least 2 classes in the data, but the data contain only "
                             f"one class: {self.classes_[0]!r}")
        X64 = _as_float64(X)
        n = X64.shape[0]
        # one problem per class (one-vs-rest), or one for the second class of a binary problem
        targets = self.classes_[1:] if self.classes_.size == 2 else self.classes_
        Y = np.stack([np.where(y == c, 1.0, -1.0) for c in targets])
        dev = torch.device(self.device)
        if self.fit_intercept:
            X64 = np.hstack([X64, np.ones((n, 1))])
        Xt, Yt = torch.from_numpy(X64).to(dev), torch.from_numpy(Y).to(dev)
        lam = 0.0 if math.isinf(self.C) else 1.0 / (float(self.C) * n)
        problem = LogisticInstances(Xt, Yt, lam, self.penalty, intercept=self.fit_intercept)
        solver, self.solver_ = resolve_solver(self.solver, self.safeguard, logistic_solver(problem),
                                              default_fallback(LogisticFamily))
        if not bool(Xt.any()):  # no features and no intercept: w = 0 is optimal, and L = 0
            w, iters = torch.zeros(Yt.shape[0], Xt.shape[1], dtype=torch.float64, device=dev), np.zeros(len(Y), int)
            cert = torch.zeros(Yt.shape[0], dtype=torch.float64)
        else:
            result = _solve(self, solver, problem)
            w, iters, cert = result.x, result.iterations.numpy().astype(int), result.certificate
        w = w.cpu().numpy()
        if self.fit_intercept:
            self.coef_, self.intercept_ = w[:, :-1].astype(X.dtype), w[:, -1].astype(X.dtype)
        else:
            self.coef_, self.intercept_ = w.astype(X.dtype), np.zeros(w.shape[0], dtype=X.dtype)
        self.n_iter_ = iters
        self.certificate_ = cert.cpu().numpy()
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """X @ coef_.T + intercept_: ``(n_samples,)`` for two classes (positive: ``classes_[1]``),
        else ``(n_samples, n_classes)``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        scores = X @ self.coef_.T + self.intercept_
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict(self, X: Any) -> np.ndarray:
        """The class of largest score: ``(n_samples,)``."""
        scores = self.decision_function(X)
        idx = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(1)
        return self.classes_[idx]

    def predict_proba(self, X: Any) -> np.ndarray:
        """``(n_samples, n_classes)`` class probabilities: sigmoid of the score for two
        classes; the one-vs-rest sigmoids normalized to sum 1 for more."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            p = 1.0 / (1.0 + np.exp(-scores))
            return np.column_stack([1.0 - p, p])
        p = 1.0 / (1.0 + np.exp(-scores))
        return p / p.sum(1, keepdims=True)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """log of ``predict_proba``."""
        return np.log(self.predict_proba(X))
