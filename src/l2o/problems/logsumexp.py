"""Regularized log-sum-exp, the smooth maximum of affine functions:

    f(x) = mu log sum_{i=1}^m exp((a_i^T x - b_i) / mu) + (reg / 2) ||x||^2,

one of the three tasks of Lin, Song, Xu (arXiv 2412.00059) for learned quasi-Newton step
sizes. With z = A x - b and the softmax weights w = softmax(z / mu) (a point of the simplex),

    grad f(x) = A^T w + reg x,
    hess f(x) = A^T (diag(w) - w w^T) A / mu + reg I.

Smoothness: v^T (diag(w) - w w^T) v is the variance of v under w, at most (max v - min v)^2 / 4
<= ||v||^2 / 2, so L = ||A||_2^2 / (2 mu) + reg is a Lipschitz constant of grad f; reg is the
strong-convexity modulus. As mu -> 0, f tends to max_i (a_i^T x - b_i) + (reg/2)||x||^2, a
nonsmooth function, so mu is the OOD knob of smoothness.

Duality (certificate). Since mu log sum_i exp(z_i / mu) = max_{w in simplex} w^T z + mu H(w),
H(w) = -sum_i w_i log w_i, f(x) = max_w Phi(x, w) with Phi(x, w) = w^T (A x - b) + mu H(w) +
(reg/2) ||x||^2, convex in x and concave in w, so f* = max_w D(w) with

    D(w) = min_x Phi(x, w) = -||A^T w||^2 / (2 reg) - b^T w + mu H(w)      (reg > 0).

At the dual point w(x) = softmax((A x - b) / mu), the maximizer of Phi(x, .), Phi(., w) is a
quadratic with Hessian reg I and gradient A^T w + reg x = grad f(x) at x, so

    f(x) - f* <= f(x) - D(w(x)) = ||grad f(x)||^2 / (2 reg),

computed from the gradient without cancellation. The certificate is this gap relative to
max(|D|, GAP_FLOOR (f(0) - D)) (as logistic regression's); with reg = 0 it is the relative
gradient norm ||grad f(x)|| / ||grad f(0)||. A gap certificate is resolvable in floating point
(a gradient-norm target of 1e-10 is below what a line search comparing values of f can
reach), so the reference solver (Newton with line search; the Hessian costs O(m n^2) per
instance) always certifies it (``l2o.evaluation.reference``).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from l2o.problems.base import GAP_FLOOR, Instances, as_batch_vector
from l2o.problems.family import ProblemFamily, make_generator
from l2o.problems.parts import matvec, rmatvec, spectral_norm_squared
from l2o.problems.splits import Split, scaled


class LogSumExpInstances(Instances):
    """A batch of regularized log-sum-exp problems.

    Args:
        A: ``(m, n)`` shared or ``(B, m, n)`` per instance.
        b: ``(B, m)`` offsets.
        mu: smoothing > 0, scalar or ``(B,)``.
        reg: ridge weight >= 0, scalar or ``(B,)``.

    >>> import torch
    >>> A = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    >>> p = LogSumExpInstances(A, torch.zeros(1, 3, dtype=torch.float64), mu=1.0, reg=0.1)
    >>> round(float(p.smooth_objective(torch.zeros(1, 2, dtype=torch.float64))[0]), 6)   # log 3
    1.098612
    """

    def __init__(self, A: Tensor, b: Tensor, mu: Tensor | float = 1.0, reg: Tensor | float = 0.0,
                 x0_shift: float = 0.0):
        per_instance_mismatch = A.ndim == 3 and A.shape[0] != b.shape[0]
        if A.ndim not in (2, 3) or b.ndim != 2 or A.shape[-2] != b.shape[-1] or per_instance_mismatch:
            raise ValueError(f"logsumexp: need A (m, n) or (B, m, n) and b (B, m); got A {tuple(A.shape)}, "
                             f"b {tuple(b.shape)}")
        self.A = A
        self.b = b
        self.mu = as_batch_vector(mu, b.shape[0], b)
        self.reg = as_batch_vector(reg, b.shape[0], b)
        if not bool((self.mu > 0).all()):
            raise ValueError(f"logsumexp: mu must be > 0, got {self.mu.tolist()}")
        if not bool((self.reg >= 0).all()):
            raise ValueError(f"logsumexp: reg must be >= 0, got {self.reg.tolist()}")
        self.x0_shift = x0_shift
        self._L: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.b.shape[0]

    @property
    def dim(self) -> int:
        return self.A.shape[-1]

    @property
    def n_terms(self) -> int:
        """m, the number of affine pieces."""
        return self.A.shape[-2]

    @property
    def dtype(self) -> torch.dtype:
        return self.b.dtype

    @property
    def device(self) -> torch.device:
        return self.b.device

    @property
    def shared_matrix(self) -> bool:
        return self.A.ndim == 2

    def index(self, idx: Tensor) -> LogSumExpInstances:
        A = self.A if self.shared_matrix else self.A[idx]
        out = type(self)(A, self.b[idx], self.mu[idx], self.reg[idx], self.x0_shift)
        if self._L is not None:
            out._L = self._L[idx]
        return out

    def to(self, dtype=None, device=None) -> LogSumExpInstances:
        conv = lambda t: t.to(dtype=dtype or t.dtype, device=device or t.device)  # noqa: E731
        return type(self)(conv(self.A), conv(self.b), conv(self.mu), conv(self.reg), self.x0_shift)

    # ----- smooth part ---------------------------------------------------------------------
    def _scaled(self, x: Tensor) -> Tensor:
        """(A x - b) / mu: ``(B, n) -> (B, m)``."""
        return (matvec(self.A, x) - self.b) / self.mu.unsqueeze(-1)

    def smooth_objective(self, x: Tensor) -> Tensor:
        return self.mu * torch.logsumexp(self._scaled(x), dim=-1) + 0.5 * self.reg * x.square().sum(-1)

    def value_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self._scaled(x)
        lse = torch.logsumexp(z, dim=-1, keepdim=True)
        w = torch.exp(z - lse)  # softmax, stable
        f = self.mu * lse.squeeze(-1) + 0.5 * self.reg * x.square().sum(-1)
        g = rmatvec(self.A, w) + self.reg.unsqueeze(-1) * x
        return f, g

    def grad(self, x: Tensor) -> Tensor:
        return self.value_and_grad(x)[1]

    def smoothness(self) -> Tensor:
        """||A||_2^2 / (2 mu) + reg (see the module docstring)."""
        if self._L is None:
            sn = as_batch_vector(spectral_norm_squared(self.A), self.batch_size, self.b)
            self._L = sn / (2 * self.mu) + self.reg
        return self._L

    def strong_convexity(self) -> Tensor:
        return self.reg.clone()

    def hessian(self, x: Tensor) -> Tensor:
        """A^T (diag(w) - w w^T) A / mu + reg I: ``(B, n, n)``."""
        w = torch.softmax(self._scaled(x), dim=-1)  # (B, m)
        Aw = rmatvec(self.A, w)  # (B, n) = A^T w
        Ws = (self.A * w.unsqueeze(-1)) if not self.shared_matrix else self.A.unsqueeze(0) * w.unsqueeze(-1)
        H = Ws.mT @ self.A  # A^T diag(w) A, (B, n, n)
        H = (H - Aw.unsqueeze(-1) * Aw.unsqueeze(-2)) / self.mu[:, None, None]
        eye = torch.eye(self.dim, dtype=H.dtype, device=H.device)
        return H + self.reg[:, None, None] * eye

    # ----- certificate ----------------------------------------------------------------------
    def duality_gap(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(gap, D)``, each ``(B,)``: gap = f(x) - D(w(x)) = ||grad f(x)||^2 / (2 reg) >= f(x) - f*
        and the dual value D (a lower bound on f*); see the module docstring. Needs reg > 0."""
        f, g = self.value_and_grad(x)
        gap = g.square().sum(-1) / (2 * self.reg)
        return gap, f - gap

    def certificate(self, x: Tensor) -> Tensor:
        """Relative duality gap gap / max(|D|, GAP_FLOOR (f(0) - D)) (reg > 0 on every instance),
        else the relative gradient norm."""
        if not bool((self.reg > 0).all()):
            return super().certificate(x)
        gap, dual = self.duality_gap(x)
        f_origin = self.smooth_objective(torch.zeros_like(x))
        denom = torch.maximum(dual.abs(), GAP_FLOOR * (f_origin - dual).abs()).clamp(min=torch.finfo(x.dtype).tiny)
        return gap / denom

    def certificate_name(self) -> str:
        return "relative duality gap" if bool((self.reg > 0).all()) else "relative gradient norm"

    reference_solver = "newton"

    @property
    def reference_method(self) -> str:  # type: ignore[override]
        return "Newton with line search to " + self.certificate_name() + " <= {tol:g}"


def column_scales(n: int, condition_number: float, g: torch.Generator) -> Tensor:
    """``(n,)`` column scales kappa^(-u_j / 2), u_j uniform in [0, 1] with u = 0 and u = 1 both
    present: they spread the curvature of A^T A over a factor of about ``condition_number``."""
    u = torch.rand(n, generator=g, dtype=torch.float64)
    if n > 1:
        u[0], u[-1] = 0.0, 1.0
    return torch.exp(-0.5 * u * math.log(condition_number))


@dataclasses.dataclass(frozen=True)
class LogSumExpFamily(ProblemFamily):
    """Random regularized log-sum-exp problems (see ``LogSumExpInstances``).

    Per instance (or shared, ``shared_matrix``): A in R^{m x n} with N(0, data_scale^2 / n)
    entries (rows of norm about ``data_scale``), its columns scaled by ``column_scales`` (so
    the curvature of A^T A spans about ``condition_number``), and b ~ N(0, I). Defaults
    m = 4 n: by Wendel's theorem the origin is then inside the convex hull of the a_i with
    probability 1 - O(2^-n), so f is bounded below even without ``reg``.

    OOD knobs: n (with m), condition_number, data_scale, mu, reg, x0_shift, objective_shift.

    >>> fam = LogSumExpFamily(n=20, m=80)
    >>> p = fam.sample(3, 0)
    >>> p.batch_size, p.dim, p.n_terms
    (3, 20, 80)
    """

    n: int = 100
    m: int = 400
    mu: float = 0.5
    reg: float = 1e-3
    condition_number: float = 1.0
    data_scale: float = 1.0
    shared_matrix: bool = False
    matrix_seed: int = 0
    x0_shift: float = 0.0
    objective_shift: float = 0.0

    name = "logsumexp"
    default_solver = "bfgs_wolfe"
    fallback = "bfgs"
    smooth_baselines = ("gd", "nesterov", "adam", "lbfgs", "bfgs", "bfgs_wolfe", "hgd", "hgd_coord")

    def validate(self) -> None:
        self._check_positive_int("n", "m")
        for name in ("mu", "data_scale"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"logsumexp: {name} must be a finite number > 0, got {v!r}")
        if not (math.isfinite(self.reg) and self.reg >= 0):
            raise ValueError(f"logsumexp: reg must be a finite number >= 0, got {self.reg!r}")
        if not (math.isfinite(self.condition_number) and self.condition_number >= 1):
            raise ValueError(f"logsumexp: condition_number must be >= 1, got {self.condition_number!r}")

    def natural_splits(self) -> list[Split]:
        """Smoothing mu / 10 (closer to the nonsmooth max), data scale x 2, conditioning
        x 100 (column scales), and twice the dimension (with m)."""
        return [
            scaled(f"mu_{self.mu / 10:g}", "mu", self.mu / 10, "smoothing mu"),
            scaled("data_scale_2", "data_scale", 2.0 * self.data_scale, "row scale of A"),
            scaled(f"condition_{100 * self.condition_number:g}", "condition_number", 100.0 * self.condition_number,
                   "curvature spread of A^T A (column scales)"),
            Split(f"dim_{2 * self.n}", f"n = {2 * self.n}, m = {2 * self.m}", {"n": 2 * self.n, "m": 2 * self.m}),
        ]

    def sample_instances(self, batch_size: int, g: torch.Generator) -> LogSumExpInstances:
        scale = self.data_scale / math.sqrt(self.n)
        if self.shared_matrix:
            gm = make_generator(self.matrix_seed)
            A = torch.randn(self.m, self.n, generator=gm, dtype=torch.float64) * scale
            A = A * column_scales(self.n, self.condition_number, gm)
        else:
            A = torch.randn(batch_size, self.m, self.n, generator=g, dtype=torch.float64) * scale
            cols = torch.stack([column_scales(self.n, self.condition_number, g) for _ in range(batch_size)])
            A = A * cols.unsqueeze(1)
        b = torch.randn(batch_size, self.m, generator=g, dtype=torch.float64)
        return LogSumExpInstances(A, b, self.mu, self.reg, x0_shift=self.x0_shift)
