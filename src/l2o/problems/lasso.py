"""Least squares with an optional L1 penalty: LASSO and plain least squares.

    F(x) = 1/2 ||A x - b||^2 + lam ||x||_1,   A in R^{m x n} (shared or per instance).

With ``lam = 0`` this is the least-squares form of the quadratic family used by
Song, Lin, Xu, *Learning Provably Improves the Convergence of Gradient Descent*
(NeurIPS 2025); with ``lam > 0`` it is the LASSO of Liu et al. (ICML 2023) and
Song et al. (CVPR 2024).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from l2o.problems.base import GAP_FLOOR, Instances, as_batch_vector, column
from l2o.problems.family import ProblemFamily, make_generator
from l2o.problems.parts import (
    L1,
    matvec,
    rmatvec,
    solve_on_index_sets,
    spectral_norm_squared,
)
from l2o.problems.splits import Split, lam_splits, scaled


class LeastSquaresInstances(Instances):
    """A batch of F(x) = 1/2 ||A x - b||^2 + lam ||x||_1.

    Args:
        A: ``(m, n)`` shared by the batch or ``(B, m, n)`` one per instance.
        b: ``(B, m)``.
        lam: scalar or ``(B,)``, >= 0; 0 gives least squares (r = 0).
        x0_shift: default starting point ``x0_shift * 1``.
    """

    problem_kind = "least-squares / LASSO"

    def __init__(
        self, A: Tensor, b: Tensor, lam: Tensor | float = 0.0, x0_shift: float = 0.0, _gram: Tensor | None = None
    ):
        self.A = A
        self.b = b
        self.lam = as_batch_vector(lam, b.shape[0], b)
        self.x0_shift = x0_shift
        self.has_nonsmooth = bool((self.lam > 0).any())
        self._penalty = L1(self.lam)
        # Shared A with n <= 2m: grad = G x - A^T b with the Gram G = A^T A costs one
        # (B, n) x (n, n) GEMM instead of two (B, m, n) ones.
        use_gram = A.ndim == 2 and A.shape[1] <= 2 * A.shape[0]
        self._gram = (_gram if _gram is not None else A.mT @ A) if use_gram else None
        self._Atb = rmatvec(A, b) if self._gram is not None else None
        self._L: Tensor | None = None
        self._affine: tuple[float, Tensor, Tensor] | None = None

    # ----- layout -----------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.b.shape[0]

    @property
    def dim(self) -> int:
        return self.A.shape[-1]

    @property
    def dtype(self) -> torch.dtype:
        return self.b.dtype

    @property
    def device(self) -> torch.device:
        return self.b.device

    @property
    def shared_matrix(self) -> bool:
        return self.A.ndim == 2

    def index(self, idx: Tensor) -> LeastSquaresInstances:
        A = self.A if self.shared_matrix else self.A[idx]
        out = type(self)(A, self.b[idx], self.lam[idx], self.x0_shift, _gram=self._gram)
        if self._L is not None:
            out._L = self._L[idx]
        if self._affine is not None:  # the fused step's M is shared, its offset per instance
            out._affine = (self._affine[0], self._affine[1], self._affine[2][idx])
        return out

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> LeastSquaresInstances:
        def conv(t: Tensor) -> Tensor:
            return t.to(dtype=dtype or t.dtype, device=device or t.device)

        return type(self)(conv(self.A), conv(self.b), conv(self.lam), self.x0_shift)

    # ----- smooth part -------------------------------------------------------------------
    def residual(self, x: Tensor) -> Tensor:
        """A x - b: ``(B, n) -> (B, m)``."""
        return matvec(self.A, x) - self.b

    def smooth_objective(self, x: Tensor) -> Tensor:
        return 0.5 * self.residual(x).square().sum(-1)

    def grad(self, x: Tensor) -> Tensor:
        if self._gram is not None:
            return x @ self._gram - self._Atb
        return rmatvec(self.A, self.residual(x))

    def value_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r = self.residual(x)
        return 0.5 * r.square().sum(-1), rmatvec(self.A, r)

    def smoothness(self) -> Tensor:
        if self._L is None:
            L = spectral_norm_squared(self.A)
            self._L = as_batch_vector(L, self.batch_size, self.b)
        return self._L

    def strong_convexity(self) -> Tensor:
        m, n = self.A.shape[-2:]
        if m < n:
            return torch.zeros(self.batch_size, dtype=self.dtype, device=self.device)
        mu = torch.linalg.svdvals(self.A)[..., -1] ** 2
        return as_batch_vector(mu, self.batch_size, self.b)

    def hessian(self, x: Tensor) -> Tensor:
        H = self.A.mT @ self.A
        return H.expand(self.batch_size, -1, -1) if H.ndim == 2 else H

    def prox_grad(self, y: Tensor, step_scale: float = 1.0) -> Tensor:
        """prox_{t r}(y - t grad f(y)), t = step_scale / L, fused for a shared Gram matrix:

            y - t (G y - A^T b) = y (I - t G) + t A^T b   -> one addmm with M = I - t G,

        then soft-thresholding (M and t A^T b are cached per step_scale).
        """
        if self._gram is None:
            return super().prox_grad(y, step_scale)
        if self._affine is None or self._affine[0] != step_scale:
            t = step_scale / self.smoothness()[0]  # shared A: one L for the batch
            M = torch.eye(self.dim, dtype=self.dtype, device=self.device) - t * self._gram
            self._affine = (step_scale, M, t * self._Atb)
        _, M, c = self._affine
        v = torch.addmm(c, y, M)
        return self.prox(v, step_scale / self.smoothness()[0]) if self.has_nonsmooth else v

    def polish(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Support refinement for LASSO with a shared Gram matrix.

        With S = supp(x) and s = sign(x_S), solve A_S^T A_S z_S = A_S^T b - lam s
        (stationarity on S) and accept z where sign(z_S) = s and
        |A_j^T (b - A z)| <= lam (1 + tol) off S: then z satisfies the LASSO optimality
        conditions, i.e. it is a minimizer (up to the rounding tolerance ``tol``).
        """
        none = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        if self._gram is None or not self.has_nonsmooth:
            return x, none
        support = x != 0
        # A_S^T A_S is singular when S has more nonzeros than A has rows: skip those
        # instances only (a batch-wide early return would couple the instances)
        too_big = support.sum(-1) > self.A.shape[0]
        if bool(too_big.all()):
            return x, none
        support = support & ~too_big.unsqueeze(-1)
        sign = torch.sign(x)
        z, ok = solve_on_index_sets(self._gram, self._Atb - column(self.lam) * sign, support)
        tol = 1e-9 if self.dtype == torch.float64 else 1e-5
        sign_ok = ((torch.sign(z) == sign) | ~support).all(-1)
        corr = (z @ self._gram - self._Atb).abs()
        kkt_ok = ((corr <= column(self.lam) * (1 + tol)) | support).all(-1)
        accepted = ok & sign_ok & kkt_ok & ~too_big
        return torch.where(accepted.unsqueeze(-1), z, x), accepted

    # ----- nonsmooth part ---------------------------------------------------------------
    def nonsmooth_objective(self, x: Tensor) -> Tensor:
        return self._penalty.value(x)

    def prox(self, v: Tensor, step: Tensor | float) -> Tensor:
        return self._penalty.prox(v, step) if self.has_nonsmooth else v

    def subdifferential_bounds(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._penalty.subdifferential_bounds(x)

    # ----- certificate --------------------------------------------------------------------
    def _correlation_and_residual(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(A^T r, ||r||^2) with r = b - A x: ``(B, n)``, ``(B,)``; one GEMM on the Gram path."""
        if self._gram is not None:
            Gx = x @ self._gram
            corr = self._Atb - Gx
            r_sq = self.b.square().sum(-1) - 2 * (x * self._Atb).sum(-1) + (x * Gx).sum(-1)
            return corr, r_sq.clamp(min=0)
        r = self.b - matvec(self.A, x)
        return rmatvec(self.A, r), r.square().sum(-1)

    def _gap_parts(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``duality_gap`` and the correlations A^T r: ``(B,)``, ``(B,)``, ``(B, n)``."""
        corr, r_sq = self._correlation_and_residual(x)
        s = torch.clamp(corr.abs().amax(-1) / self.lam, min=1.0)
        gap = 0.5 * r_sq * (1 - 1 / s) ** 2 + self.lam * x.abs().sum(-1) - (x * corr).sum(-1) / s
        primal = 0.5 * r_sq + self.lam * x.abs().sum(-1)
        return gap.clamp(min=0), primal - gap, corr

    def duality_gap(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(F(x) - D(theta), D(theta)) at the dual point built from x: ``(B,)`` each.

        theta = r / s with r = b - A x and s = max(1, ||A^T r||_inf / lam) is dual
        feasible (||A^T theta||_inf <= lam), D(theta) = 1/2||b||^2 - 1/2||b - theta||^2,
        and the gap is evaluated in the cancellation-free form
            F(x) - D(theta) = 1/2 ||r||^2 (1 - 1/s)^2 + lam ||x||_1 - x^T A^T r / s,
        which stays accurate in float32 near the optimum.
        """
        gap, dual, _ = self._gap_parts(x)
        return gap, dual

    def dual_objective(self, x: Tensor) -> Tensor:
        """D(theta) at the dual point built from x (a lower bound on F*): ``(B,)``."""
        return self.duality_gap(x)[1]

    #: The certificate also tries the dual point of the support (``_support_dual``) where the
    #: relative gap of the residual's dual point is below this: near convergence, when the
    #: support is small and close to the optimal one (earlier it would only cost a factorization).
    SUPPORT_DUAL_BELOW = 0.1

    def _support_dual(self, x: Tensor, want: Tensor) -> Tensor:
        """``(B,)`` D(theta_S) on the instances ``want`` (``(B,)`` bool), -inf elsewhere.

        With S = supp(x) and s = sign(x_S), z solves the stationarity conditions on S,
        A_S^T A_S z_S = A_S^T b - lam s (``polish``'s system), and theta_S = r_z / max(1,
        ||A^T r_z||_inf / lam) with r_z = b - A z is dual feasible. Once S contains the
        optimal support with its signs, A_S^T theta_S = lam s matches the optimal dual on
        S, so D* - D(theta_S) is second order in the error of x while D* - D(theta(x)) is
        first order: the gap F(x) - D(theta_S) is then about F(x) - F* itself. Shared Gram
        matrix only (the factorization of A_S^T A_S is one small batched Cholesky).
        """
        out = torch.full((x.shape[0],), -math.inf, dtype=x.dtype, device=x.device)
        if self._gram is None:
            return out
        support = x != 0
        size = support.sum(-1)
        want = want & (size > 0) & (size <= self.A.shape[0])  # A_S^T A_S singular beyond m columns
        idx = torch.nonzero(want).squeeze(-1)
        if idx.numel() == 0:
            return out
        lam = self.lam[idx]
        z, ok = solve_on_index_sets(self._gram, self._Atb[idx] - column(lam) * torch.sign(x[idx]), support[idx])
        b = self.b[idx]
        r = b - matvec(self.A, z)
        s = torch.clamp(rmatvec(self.A, r).abs().amax(-1) / lam, min=1.0)
        dual = (b * r).sum(-1) / s - 0.5 * r.square().sum(-1) / s**2  # 1/2||b||^2 - 1/2||b - r/s||^2
        out[idx] = torch.where(ok & torch.isfinite(dual), dual, torch.full_like(dual, -math.inf))
        return out

    def _support_gap_estimate(self, x: Tensor, corr: Tensor, want: Tensor) -> Tensor:
        """``(B,)`` lower estimate of F(x) - F(z) where ``want`` (``(B,)`` bool; inf elsewhere),
        z the minimizer on the support S of x with its signs (``_support_dual``).

        F(x) - F(z) = 1/2 e^T (A_S^T A_S)^{-1} e with e = A_S^T r - lam s the stationarity
        error on S, and 1/2 e^T H^{-1} e >= 1/2 (e^T e)^2 / e^T H e >= 1/2 e^T e / L. Once the
        support is right, F(z) = F*: where the estimate exceeds the tolerance, the support's
        dual point cannot certify x yet. The cheap bound screens first; the GEMM of the
        tighter one runs on the instances it leaves.
        """
        e = torch.where(x != 0, corr - column(self.lam) * torch.sign(x), torch.zeros_like(x))
        ee = e.square().sum(-1)
        return torch.where(want, 0.5 * ee / self.smoothness(), torch.full_like(ee, math.inf)), e, ee

    def _certificate(self, x: Tensor, tol: float | None) -> Tensor:
        """The certificate; with ``tol``, exact only where it is <= tol: the support's dual
        point is tried only where it may bring the certificate to tol."""
        gap, dual, corr = self._gap_parts(x)
        primal = dual + gap
        f_origin = 0.5 * self.b.square().sum(-1)
        tiny = torch.finfo(x.dtype).tiny

        def denominator(dual: Tensor) -> Tensor:
            return torch.maximum(dual.abs(), GAP_FLOOR * (f_origin - dual).abs()).clamp(min=tiny)

        den = denominator(dual)
        cert = gap / den
        if self._gram is None:  # the support's dual point needs the shared Gram matrix
            return cert
        want = cert <= self.SUPPORT_DUAL_BELOW
        if tol is not None and bool((want := want & (cert > tol)).any()):
            rough, e, ee = self._support_gap_estimate(x, corr, want)
            want = rough / den <= tol
            idx = torch.nonzero(want).squeeze(-1)
            if idx.numel():
                eHe = matvec(self.A, e[idx]).square().sum(-1)
                tight = 0.5 * ee[idx].square() / torch.where(eHe > 0, eHe, torch.ones_like(eHe))
                want[idx] = (tight / den[idx] <= tol) | (eHe == 0)
        if bool(want.any()):
            better = self._support_dual(x, want)
            improved = better > dual
            better = torch.where(improved, better, dual)
            cert = torch.where(improved, (primal - better).clamp(min=0) / denominator(better), cert)
        return cert

    def certificate(self, x: Tensor) -> Tensor:
        """Relative duality gap (F(x) - D) / max(|D|, GAP_FLOOR (F(0) - D)) for LASSO;
        the relative normal-equation residual ||A^T(Ax - b)|| / ||A^T b|| when lam = 0.

        D is the better of two dual points: the residual's (``duality_gap``) and, near
        convergence (relative gap of the first <= ``SUPPORT_DUAL_BELOW``), the support's
        (``_support_dual``), which makes the gap about as small as F(x) - F* instead of
        its square root."""
        if not bool((self.lam > 0).all()):
            return super().certificate(x)
        return self._certificate(x, None)

    def certified(self, x: Tensor, tol: float) -> Tensor:
        """``certificate(x) <= tol``, computing the support's dual point only where it may
        certify x: where the residual's does not and the gap estimate allows it."""
        if not bool((self.lam > 0).all()):
            return super().certified(x, tol)
        cert = self._certificate(x, tol)
        return (cert <= tol) & torch.isfinite(cert)

    def certificate_name(self) -> str:
        return "relative duality gap" if bool((self.lam > 0).all()) else "relative gradient norm"

    # ----- reference ------------------------------------------------------------------------
    reference_solver = "fista_restart"
    reference_method = "FISTA with adaptive restart to relative duality gap <= {tol:g}"

    def closed_form(self) -> tuple[Tensor, str] | None:
        """Least squares (lam = 0): the minimum-norm solution (the limit of GD from 0)."""
        if self.has_nonsmooth:
            return None
        x = (torch.linalg.pinv(self.A) @ self.b.unsqueeze(-1)).squeeze(-1) if not self.shared_matrix else (
            self.b @ torch.linalg.pinv(self.A).mT
        )
        return x, "closed form (pseudo-inverse)"


LassoInstances = LeastSquaresInstances


def _unit_columns(W: Tensor) -> Tensor:
    return W / torch.linalg.vector_norm(W, dim=-2, keepdim=True)


def correlated_gaussian(shape: tuple[int, ...], correlation: float, g: torch.Generator) -> Tensor:
    """N(0,1) matrices ``(..., m, n)`` whose columns have Toeplitz correlation rho^|i-j|.

    ``correlation`` = 0 gives i.i.d. entries; close to 1 makes the columns nearly
    collinear and the problem ill-conditioned (a conditioning knob for OOD tests).
    """
    Z = torch.randn(*shape, generator=g, dtype=torch.float64)
    if correlation == 0.0:
        return Z
    n = shape[-1]
    i = torch.arange(n, dtype=torch.float64)
    sigma = correlation ** (i[:, None] - i[None, :]).abs()
    return Z @ torch.linalg.cholesky(sigma).mT


@dataclasses.dataclass(frozen=True)
class LassoFamily(ProblemFamily):
    """Random LASSO instances, preset of Liu et al. (ICML 2023) / Song et al. (CVPR 2024).

    A in R^{m x n} with N(0,1) entries and unit-norm columns (drawn once from
    ``dictionary_seed`` when shared, so that train and test share it); x_true with
    ``nnz`` nonzeros N(0, data_scale^2); b = A x_true + noise_std * N(0, I).

    OOD knobs: ``x0_shift`` (x0 = s * 1), ``objective_shift`` (F(x + t), t = shift * 1),
    ``data_scale``, ``noise_std``, ``nnz`` (sparsity), ``lam``, ``correlation`` of the
    columns of A (conditioning), and the sizes.

    Example:
        >>> import torch, l2o
        >>> from l2o.problems import LassoFamily
        >>> problem = LassoFamily(m=20, n=40, nnz=3, lam=0.1).sample(8, generator=0)
        >>> tuple(problem.A.shape), tuple(problem.b.shape)  # one shared dictionary
        ((20, 40), (8, 20))
        >>> x = l2o.reference(problem).x  # certified (duality gap), then polished
        >>> corr = (problem.b - x @ problem.A.T) @ problem.A  # A^T (b - A x)
        >>> # optimality: |A_j^T r| <= lam everywhere, = lam sign(x_j) on the support
        >>> bool((corr.abs() <= 0.1 + 1e-12).all())
        True
        >>> bool(((corr - 0.1 * torch.sign(x)).abs()[x != 0] < 1e-12).all())
        True
    """

    m: int = 250
    n: int = 500
    nnz: int = 50
    lam: float = 0.1
    shared_matrix: bool = True
    dictionary_seed: int = 0
    noise_std: float = 0.0
    data_scale: float = 1.0
    correlation: float = 0.0
    x0_shift: float = 0.0
    objective_shift: float = 0.0

    name = "lasso"
    file_format = "lasso"

    def validate(self) -> None:
        self._check_positive_int("m", "n")
        if not 0 <= self.nnz <= self.n:
            raise ValueError(f"lasso: nnz must be in [0, n={self.n}], got {self.nnz}")
        if self.lam < 0:
            raise ValueError(f"lasso: lam must be >= 0, got {self.lam}")
        if not 0 <= self.correlation < 1:
            raise ValueError(f"lasso: correlation must be in [0, 1), got {self.correlation}")

    def natural_splits(self) -> list[Split]:
        """Data scale, noise, sparsity, lam, conditioning (correlated columns) and a
        smaller dimension (for dimension-agnostic solvers)."""
        m, n = max(1, self.m // 2), max(1, self.n // 2)
        return [
            scaled("data_scale_2", "data_scale", 2.0 * self.data_scale, "x_true scale"),
            scaled("noise_0.1", "noise_std", 0.1, "noise std of b"),
            scaled(f"nnz_{min(2 * self.nnz, self.n)}", "nnz", min(2 * self.nnz, self.n), "nonzeros of x_true"),
            *lam_splits(self.lam),
            scaled("correlated_0.5", "correlation", 0.5, "correlation of the columns of A"),
            Split(f"dim_{m}x{n}", f"A of size {m} x {n} (another dictionary)",
                  {"m": m, "n": n, "nnz": min(self.nnz // 2, n)}),
        ]

    def dictionary(self) -> Tensor:
        """The shared ``(m, n)`` matrix, in float64 (deterministic in ``dictionary_seed``)."""
        g = make_generator(self.dictionary_seed)
        return _unit_columns(correlated_gaussian((self.m, self.n), self.correlation, g))

    def sample_instances(self, batch_size: int, g: torch.Generator) -> LeastSquaresInstances:
        if self.shared_matrix:
            A = self.dictionary()
        else:
            A = _unit_columns(correlated_gaussian((batch_size, self.m, self.n), self.correlation, g))
        x_true = sparse_vectors(batch_size, self.n, self.nnz, g) * self.data_scale
        b = matvec(A, x_true) + self.noise_std * torch.randn(batch_size, self.m, generator=g, dtype=torch.float64)
        return LeastSquaresInstances(A, b, self.lam, x0_shift=self.x0_shift)


@dataclasses.dataclass(frozen=True)
class LeastSquaresFamily(ProblemFamily):
    """Least-squares QPs f(x) = 1/2 ||W x - y||^2 of Song, Lin, Xu (NeurIPS 2025).

    W in R^{m x d} with N(0,1) entries and unit-norm columns (one per instance),
    x_gt ~ N(0, data_scale^2 I), y = W x_gt + noise_std N(0, I). With m < d and no
    noise, F* = 0 and the relative gap falls back to GAP_FLOOR (see ``l2o.problems.base``).

    Example:
        >>> from l2o.problems import LeastSquaresFamily
        >>> problem = LeastSquaresFamily(d=8, m=6).sample(3, generator=0)
        >>> tuple(problem.A.shape), tuple(problem.b.shape)  # a W per instance
        ((3, 6, 8), (3, 6))
        >>> x, method = problem.closed_form()  # m < d: consistent, F* = 0
        >>> method, bool(problem.objective(x).max() < 1e-20)
        ('closed form (pseudo-inverse)', True)
    """

    d: int = 32
    m: int = 25
    shared_matrix: bool = False
    dictionary_seed: int = 0
    noise_std: float = 0.0
    data_scale: float = 1.0
    x0_shift: float = 0.0
    objective_shift: float = 0.0

    name = "least_squares"
    file_format = "lasso"  # the lasso format (A, b) with lam = 0 unless given
    file_lam = 0.0

    def validate(self) -> None:
        self._check_positive_int("d", "m")

    def natural_splits(self) -> list[Split]:
        """Data scale, noise and a larger dimension (for dimension-agnostic solvers)."""
        return [
            scaled("data_scale_2", "data_scale", 2.0 * self.data_scale, "x_gt scale"),
            scaled("noise_0.1", "noise_std", 0.1, "noise std of y"),
            Split(f"dim_{2 * self.d}x{2 * self.m}", f"W of size {2 * self.m} x {2 * self.d}",
                  {"d": 2 * self.d, "m": 2 * self.m}),
        ]

    def sample_instances(self, batch_size: int, g: torch.Generator) -> LeastSquaresInstances:
        if self.shared_matrix:
            g_dict = make_generator(self.dictionary_seed)
            W = _unit_columns(torch.randn(self.m, self.d, generator=g_dict, dtype=torch.float64))
        else:
            W = _unit_columns(torch.randn(batch_size, self.m, self.d, generator=g, dtype=torch.float64))
        x_gt = torch.randn(batch_size, self.d, generator=g, dtype=torch.float64) * self.data_scale
        y = matvec(W, x_gt) + self.noise_std * torch.randn(batch_size, self.m, generator=g, dtype=torch.float64)
        return LeastSquaresInstances(W, y, 0.0, x0_shift=self.x0_shift)


def sparse_vectors(batch_size: int, n: int, nnz: int, g: torch.Generator) -> Tensor:
    """``(B, n)`` vectors with ``nnz`` N(0,1) entries at uniformly random positions."""
    x = torch.zeros(batch_size, n, dtype=torch.float64)
    if nnz == 0:
        return x
    support = torch.rand(batch_size, n, generator=g, dtype=torch.float64).argsort(dim=-1)[:, :nnz]
    x.scatter_(1, support, torch.randn(batch_size, nnz, generator=g, dtype=torch.float64))
    return x
