"""Regularized logistic regression:

    F(w) = (1/N) sum_i log(1 + exp(-y_i a_i^T w)) + lam ||w||_1          (penalty "l1")
    F(w) = (1/N) sum_i log(1 + exp(-y_i a_i^T w)) + (lam/2) ||w||^2      (penalty "l2")

labels y_i in {-1, +1}. With "l2" the penalty is part of the smooth f (so Newton and
L-BFGS apply); with "l1" it is the nonsmooth r. The same problem in scikit-learn is
``LogisticRegression(C=1/(N lam), fit_intercept=False)``. With ``intercept=True`` the
LAST column of A is a column of ones whose coordinate b is not penalized (scikit-learn's
``fit_intercept=True``); the penalties then apply to w = x[:-1] only.

Duality (certificate): with z_i = y_i a_i^T w and u_i in [0, 1],
    D(u) = (1/N) sum_i H(u_i)  s.t. ||s||_inf <= lam         (l1),
    D(u) = (1/N) sum_i H(u_i) - ||s||^2 / (2 lam)            (l2),
where s = A^T (y * u) / N and H(u) = -u log u - (1-u) log(1-u); the dual point
u = sigma(-z) (scaled into the constraint for l1) gives a gap that is 0 exactly at
the optimum. With an intercept the dual gains the constraint sum_i y_i u_i = 0 (the
intercept's stationarity); ``balance_dual`` makes sigma(-z) satisfy it, and s drops
the intercept's coordinate.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor

from l2o.problems.base import GAP_FLOOR, Instances, as_batch_vector
from l2o.problems.family import ProblemFamily
from l2o.problems.lasso import correlated_gaussian, sparse_vectors
from l2o.problems.parts import L1, matvec, rmatvec, spectral_norm_squared
from l2o.problems.splits import Split, lam_splits, registered_splits, scaled

PENALTIES = ("l1", "l2")


def _log1p_exp(z: Tensor) -> Tensor:
    """log(1 + e^z), accurate to float64 rounding (torch's default softplus threshold of
    20 returns z for z > 20 and drops e^{-z} ~ 2e-9 per sample)."""
    return F.softplus(z, threshold=40.0)


def binary_entropy(u: Tensor) -> Tensor:
    """H(u) = -u log u - (1 - u) log(1 - u), with 0 log 0 = 0."""
    return -(torch.xlogy(u, u) + torch.xlogy(1 - u, 1 - u))


def balance_dual(u: Tensor, y: Tensor, max_iter: int = 64) -> Tensor:
    """The dual point of a logistic regression with an intercept made feasible:

        u' = clip(u - t y, 0, 1)   with t such that  g(t) = sum_i y_i u'_i = 0,

    the intercept's dual constraint. g is nonincreasing and piecewise linear, with slope
    -#{i: 0 < u_i - t y_i < 1} and g(-1) = #positives >= 0 >= -#negatives = g(1); the root
    is found by Newton steps kept inside a bisection bracket of [-1, 1] (exact once a
    step lands on the root's linear piece, usually the first: near the optimum t ~ 0 and
    no u_i is clipped), to |g| <= N eps. ``u``, ``y``: ``(B, N)``.

    >>> balance_dual(torch.tensor([[0.9, 0.2]], dtype=torch.float64), torch.tensor([[1.0, -1.0]], dtype=torch.float64))
    tensor([[0.5500, 0.5500]], dtype=torch.float64)
    """
    lo = torch.full(u.shape[:-1], -1.0, dtype=u.dtype, device=u.device)
    hi = torch.ones_like(lo)
    t = torch.zeros_like(lo)
    enough = u.shape[-1] * torch.finfo(u.dtype).eps
    for _ in range(max_iter):
        v = u - t.unsqueeze(-1) * y
        g = (y * v.clamp(0.0, 1.0)).sum(-1)
        if bool((g.abs() <= enough).all()):
            break
        lo, hi = torch.where(g > 0, t, lo), torch.where(g < 0, t, hi)
        slope = ((v > 0) & (v < 1)).sum(-1).to(u.dtype)
        newton = t + g / slope.clamp(min=1.0)
        inside = (slope > 0) & (newton > lo) & (newton < hi)
        t = torch.where(g.abs() <= enough, t, torch.where(inside, newton, 0.5 * (lo + hi)))
    return (u - t.unsqueeze(-1) * y).clamp(0.0, 1.0)


class LogisticInstances(Instances):
    """A batch of regularized logistic regressions.

    Args:
        X: features, ``(N, d)`` shared or ``(B, N, d)``.
        y: labels in {-1, +1}, ``(N,)`` shared or ``(B, N)``.
        lam: scalar or ``(B,)``, >= 0.
        penalty: "l1" or "l2".
        intercept: the last column of X is the intercept's column of ones, and its
            coordinate is not penalized (then strong convexity is 0 and the duality-gap
            certificate uses ``balance_dual``).

    >>> X = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [2.0, 1.0]], dtype=torch.float64)
    >>> p = LogisticInstances(X, torch.tensor([[1.0, -1.0, -1.0]], dtype=torch.float64), 0.1, "l2", intercept=True)
    >>> p.smooth_objective(torch.tensor([[0.0, 3.0]], dtype=torch.float64))  # the intercept is not penalized
    tensor([2.0486], dtype=torch.float64)
    """

    problem_kind = "logistic regression"

    def __init__(self, X: Tensor, y: Tensor, lam: Tensor | float, penalty: str = "l1", x0_shift: float = 0.0,
                 intercept: bool = False):
        if penalty not in PENALTIES:
            raise ValueError(f"penalty must be one of {PENALTIES}, got {penalty!r}")
        self.X = X
        B = X.shape[0] if X.ndim == 3 else (y.shape[0] if y.ndim == 2 else None)
        if B is None:
            raise ValueError("logistic: a batch needs X (B, N, d) or y (B, N); for one instance add a leading 1")
        self.y = y if y.ndim == 2 else y.expand(B, -1)
        self.lam = as_batch_vector(lam, B, self.y)
        self.penalty = penalty
        self.x0_shift = x0_shift
        self.has_nonsmooth = penalty == "l1" and bool((self.lam > 0).any())
        self.intercept = intercept
        # 1 on the penalized coordinates, 0 on the intercept (None: every coordinate penalized)
        self._pen: Tensor | None = None
        if intercept:
            self._pen = torch.ones(X.shape[-1], dtype=self.y.dtype, device=self.y.device)
            self._pen[-1] = 0.0
        self._l1 = L1(self.lam, self._pen)
        self._L: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.y.shape[0]

    @property
    def n_samples(self) -> int:
        return self.y.shape[1]

    @property
    def dim(self) -> int:
        return self.X.shape[-1]

    @property
    def dtype(self) -> torch.dtype:
        return self.y.dtype

    @property
    def device(self) -> torch.device:
        return self.y.device

    @property
    def shared_matrix(self) -> bool:
        return self.X.ndim == 2

    def index(self, idx: Tensor) -> LogisticInstances:
        X = self.X if self.shared_matrix else self.X[idx]
        out = type(self)(X, self.y[idx], self.lam[idx], self.penalty, self.x0_shift, self.intercept)
        if self._L is not None:
            out._L = self._L[idx]
        return out

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> LogisticInstances:
        def conv(t: Tensor) -> Tensor:
            return t.to(dtype=dtype or t.dtype, device=device or t.device)

        return type(self)(conv(self.X), conv(self.y), conv(self.lam), self.penalty, self.x0_shift, self.intercept)

    # ----- smooth part ---------------------------------------------------------------------
    def margins(self, w: Tensor) -> Tensor:
        """z_i = y_i a_i^T w: ``(B, d) -> (B, N)``."""
        return self.y * matvec(self.X, w)

    def _l2(self) -> bool:
        return self.penalty == "l2"

    def _penalized(self, w: Tensor) -> Tensor:
        """w with the intercept's coordinate zeroed (w itself without an intercept)."""
        return w if self._pen is None else w * self._pen

    def smooth_objective(self, w: Tensor) -> Tensor:
        f = _log1p_exp(-self.margins(w)).mean(-1)
        if self._l2():
            f = f + 0.5 * self.lam * self._penalized(w).square().sum(-1)
        return f

    def value_and_grad(self, w: Tensor) -> tuple[Tensor, Tensor]:
        z = self.margins(w)
        f = _log1p_exp(-z).mean(-1)
        # d/dz log(1 + e^{-z}) = -sigma(-z)
        g = rmatvec(self.X, -self.y * torch.sigmoid(-z)) / self.n_samples
        if self._l2():
            wp = self._penalized(w)
            f = f + 0.5 * self.lam * wp.square().sum(-1)
            g = g + self.lam.unsqueeze(-1) * wp
        return f, g

    def grad(self, w: Tensor) -> Tensor:
        return self.value_and_grad(w)[1]

    def smoothness(self) -> Tensor:
        """lambda_max(A^T A) / (4N) (+ lam for l2): the exact bound for the mean logistic loss."""
        if self._L is None:
            L = as_batch_vector(spectral_norm_squared(self.X) / (4 * self.n_samples), self.batch_size, self.y)
            self._L = L + self.lam if self._l2() else L
        return self._L

    def strong_convexity(self) -> Tensor:
        if self._l2() and not self.intercept:
            return self.lam.clone()
        return super().strong_convexity()

    def hessian(self, w: Tensor) -> Tensor:
        z = self.margins(w)
        s = torch.sigmoid(z) * torch.sigmoid(-z) / self.n_samples  # (B, N)
        if self.shared_matrix:
            H = torch.einsum("ni,bn,nj->bij", self.X, s, self.X)
        else:
            H = torch.einsum("bni,bn,bnj->bij", self.X, s, self.X)
        if self._l2():
            eye = torch.eye(self.dim, dtype=H.dtype, device=H.device)
            H = H + self.lam[:, None, None] * (eye if self._pen is None else torch.diag(self._pen))
        return H

    # ----- nonsmooth part ------------------------------------------------------------------
    def nonsmooth_objective(self, w: Tensor) -> Tensor:
        return self._l1.value(w) if self.penalty == "l1" else super().nonsmooth_objective(w)

    def prox(self, v: Tensor, step: Tensor | float) -> Tensor:
        return self._l1.prox(v, step) if self.penalty == "l1" else v

    def subdifferential_bounds(self, w: Tensor) -> tuple[Tensor, Tensor]:
        return self._l1.subdifferential_bounds(w) if self.penalty == "l1" else super().subdifferential_bounds(w)

    # ----- certificate ----------------------------------------------------------------------
    def dual_objective(self, w: Tensor) -> Tensor:
        """D(u) at the dual point built from w (a lower bound on F*): ``(B,)``."""
        u = torch.sigmoid(-self.margins(w))
        if self.intercept:
            u = balance_dual(u, self.y)
        s = rmatvec(self.X, self.y * u) / self.n_samples
        if self.intercept:
            s = s[..., :-1]
        if self._l2():
            return binary_entropy(u).mean(-1) - s.square().sum(-1) / (2 * self.lam)
        scale = torch.clamp(s.abs().amax(-1) / self.lam, min=1.0)
        return binary_entropy(u / scale.unsqueeze(-1)).mean(-1)

    def certificate(self, w: Tensor) -> Tensor:
        """Relative duality gap (F(w) - D) / max(|D|, GAP_FLOOR (F(0) - D))."""
        if not bool((self.lam > 0).all()):
            return super().certificate(w)
        primal = self.objective(w)
        dual = self.dual_objective(w)
        f_origin = torch.log(torch.tensor(2.0, dtype=w.dtype, device=w.device))
        denom = torch.maximum(dual.abs(), GAP_FLOOR * (f_origin - dual).abs()).clamp(min=torch.finfo(w.dtype).tiny)
        return (primal - dual).clamp(min=0) / denom

    def certificate_name(self) -> str:
        return "relative duality gap" if bool((self.lam > 0).all()) else "relative gradient norm"

    # ----- reference ------------------------------------------------------------------------
    def _newton_reference(self) -> bool:
        return self.penalty == "l2" and bool((self.lam > 0).all())

    @property
    def reference_solver(self) -> str:  # type: ignore[override]
        """Newton for ridge (smooth, strongly convex, cheap Hessian), else FISTA with restart."""
        return "newton" if self._newton_reference() else "fista_restart"

    @property
    def reference_method(self) -> str:  # type: ignore[override]
        what = "Newton with line search" if self._newton_reference() else "FISTA with adaptive restart"
        return what + " to relative duality gap <= {tol:g}"


def logistic_solver(problem: Instances) -> str:
    """The default solver of logistic instances: Newton for the l2 penalty (smooth, cheap
    Hessian), else FISTA with restart."""
    return "newton" if getattr(problem, "penalty", "l1") == "l2" else "fista_restart"


@dataclasses.dataclass(frozen=True)
class LogisticFamily(ProblemFamily):
    """Synthetic sparse logistic regression of Liu et al. (ICML 2023) / Song et al. (CVPR 2024).

    Per instance: features A in R^{N x d} with N(0, data_scale^2) entries, planted w*
    with ``nnz`` N(0,1) nonzeros, labels y = sign(A w* + noise_std N(0,1)) (so
    y = 1[A w* >= 0] in {0,1} mapped to {-1,+1} when noise_std = 0).

    OOD knobs: data_scale, noise_std (label noise through the margin), nnz, lam,
    correlation of the features (conditioning), sizes, x0_shift, objective_shift.

    Example:
        >>> import l2o
        >>> from l2o.problems import LogisticFamily
        >>> problem = LogisticFamily(n_samples=60, d=5, nnz=2, lam=0.1, penalty="l2").sample(3, generator=0)
        >>> tuple(problem.X.shape), sorted(problem.y.unique().tolist())
        ((3, 60, 5), [-1.0, 1.0])
        >>> result = l2o.solve(l2o.make_solver("newton"), problem, tol=1e-12)
        >>> bool(result.converged.all()), bool(problem.grad(result.x).abs().max() < 1e-9)
        (True, True)
    """

    n_samples: int = 1000
    d: int = 50
    nnz: int = 20
    lam: float = 0.1
    penalty: str = "l1"
    data_scale: float = 1.0
    noise_std: float = 0.0
    correlation: float = 0.0
    x0_shift: float = 0.0
    objective_shift: float = 0.0

    name = "logistic"
    file_format = "logistic"

    @classmethod
    def solver_for(cls, problem: Instances) -> str:
        return logistic_solver(problem)

    def validate(self) -> None:
        self._check_positive_int("n_samples", "d")
        if self.penalty not in PENALTIES:
            raise ValueError(f"logistic: penalty must be one of {PENALTIES}, got {self.penalty!r}")
        if self.lam < 0:
            raise ValueError(f"logistic: lam must be >= 0, got {self.lam}")
        if not 0 <= self.nnz <= self.d:
            raise ValueError(f"logistic: nnz must be in [0, d={self.d}], got {self.nnz}")
        if not 0 <= self.correlation < 1:
            raise ValueError(f"logistic: correlation must be in [0, 1), got {self.correlation}")

    def natural_splits(self) -> list[Split]:
        """Feature scale, label noise, sparsity, lam, correlated features, a larger
        dimension, and the real datasets scikit-learn ships (breast cancer, digits) in
        place of the papers' UCI sets, which need downloads (those are built by
        ``l2o.problems.datasets``, registered for this family)."""
        return [
            scaled("data_scale_2", "data_scale", 2.0 * self.data_scale, "feature scale"),
            scaled("label_noise_1", "noise_std", 1.0, "std of the margin noise before labelling"),
            scaled(f"nnz_{min(2 * self.nnz, self.d)}", "nnz", min(2 * self.nnz, self.d), "nonzeros of w*"),
            *lam_splits(self.lam),
            scaled("correlated_0.5", "correlation", 0.5, "correlation of the features"),
            Split(f"dim_{2 * self.d}", f"{2 * self.d} features",
                  {"d": 2 * self.d, "nnz": min(2 * self.nnz, 2 * self.d)}),
            *registered_splits(self),
        ]

    def sample_instances(self, batch_size: int, g: torch.Generator) -> LogisticInstances:
        X = correlated_gaussian((batch_size, self.n_samples, self.d), self.correlation, g) * self.data_scale
        w = sparse_vectors(batch_size, self.d, self.nnz, g)
        noise = torch.randn(batch_size, self.n_samples, generator=g, dtype=torch.float64)
        margin = matvec(X, w) + self.noise_std * noise
        y = torch.where(margin >= 0, 1.0, -1.0).to(torch.float64)
        return LogisticInstances(X, y, self.lam, self.penalty, x0_shift=self.x0_shift)
