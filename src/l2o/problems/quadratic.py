"""Convex quadratic programs, optionally with a box:

    F(x) = 1/2 x^T Q x + q^T x  (+ indicator of l <= x <= u),

Q symmetric positive semidefinite, shared ``(n, n)`` or per instance ``(B, n, n)``.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from l2o.problems.base import Instances
from l2o.problems.family import ProblemFamily, make_generator
from l2o.problems.parts import Box, solve_on_index_sets
from l2o.problems.splits import Split, scaled


class QuadraticInstances(Instances):
    """A batch of box-constrained (or unconstrained) convex QPs.

    Args:
        Q: ``(n, n)`` shared or ``(B, n, n)``; symmetric PSD (not checked here:
            validate user data with ``l2o.io.validate``).
        q: ``(B, n)``.
        lower, upper: ``None``, ``(n,)`` or ``(B, n)``; entries may be -inf / +inf.
    """

    problem_kind = "quadratic (QP)"

    is_quadratic = True

    def __init__(
        self, Q: Tensor, q: Tensor, lower: Tensor | None = None, upper: Tensor | None = None, x0_shift: float = 0.0
    ):
        self.Q = Q
        self.q = q
        self.lower = lower
        self.upper = upper
        self.x0_shift = x0_shift
        self.is_constrained = lower is not None or upper is not None
        self.has_nonsmooth = self.is_constrained
        if self.is_constrained:
            inf = torch.full_like(q[0], float("inf"))
            self._box = Box(-inf if lower is None else lower, inf if upper is None else upper)
        self._eig: tuple[Tensor, Tensor] | None = None

    @property
    def batch_size(self) -> int:
        return self.q.shape[0]

    @property
    def dim(self) -> int:
        return self.q.shape[-1]

    @property
    def dtype(self) -> torch.dtype:
        return self.q.dtype

    @property
    def device(self) -> torch.device:
        return self.q.device

    @property
    def shared_matrix(self) -> bool:
        return self.Q.ndim == 2

    def index(self, idx: Tensor) -> QuadraticInstances:
        pick = lambda t: t if t is None or t.ndim < 2 else t[idx]  # noqa: E731
        Q = self.Q if self.shared_matrix else self.Q[idx]
        out = type(self)(Q, self.q[idx], pick(self.lower), pick(self.upper), self.x0_shift)
        if self._eig is not None:
            out._eig = tuple(e if e.ndim == 0 else e[idx] for e in self._eig)
        return out

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> QuadraticInstances:
        def conv(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(dtype=dtype or t.dtype, device=device or t.device)

        return type(self)(conv(self.Q), conv(self.q), conv(self.lower), conv(self.upper), self.x0_shift)

    def _Qx(self, x: Tensor) -> Tensor:
        if self.shared_matrix:
            return x @ self.Q  # Q symmetric
        return torch.bmm(self.Q, x.unsqueeze(-1)).squeeze(-1)

    def smooth_objective(self, x: Tensor) -> Tensor:
        return (x * (0.5 * self._Qx(x) + self.q)).sum(-1)

    def grad(self, x: Tensor) -> Tensor:
        return self._Qx(x) + self.q

    def value_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        Qx = self._Qx(x)
        return (x * (0.5 * Qx + self.q)).sum(-1), Qx + self.q

    def _extreme_eigenvalues(self) -> tuple[Tensor, Tensor]:
        if self._eig is None:
            ev = torch.linalg.eigvalsh(self.Q)
            self._eig = (ev[..., 0], ev[..., -1])
        return self._eig

    def smoothness(self) -> Tensor:
        L = self._extreme_eigenvalues()[1]
        return L.expand(self.batch_size).clone() if L.ndim == 0 else L

    def strong_convexity(self) -> Tensor:
        lo, hi = self._extreme_eigenvalues()
        # eigvalsh of a singular Q returns rounding noise (~ n eps lambda_max), not 0
        mu = torch.where(lo > self.dim * torch.finfo(lo.dtype).eps * hi.abs(), lo, torch.zeros_like(lo))
        return mu.expand(self.batch_size).clone() if mu.ndim == 0 else mu

    def hessian(self, x: Tensor) -> Tensor:
        return self.Q.expand(self.batch_size, -1, -1) if self.shared_matrix else self.Q

    def nonsmooth_objective(self, x: Tensor) -> Tensor:
        return self._box.value(x) if self.is_constrained else super().nonsmooth_objective(x)

    def prox(self, v: Tensor, step: Tensor | float) -> Tensor:
        return self._box.prox(v, step) if self.is_constrained else v

    def subdifferential_bounds(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._box.subdifferential_bounds(x) if self.is_constrained else super().subdifferential_bounds(x)

    def active_pattern(self, x: Tensor) -> Tensor:
        """-1 at a lower bound, +1 at an upper bound, 0 for a free coordinate (``(B, n)`` int8)."""
        if not self.is_constrained:
            return super().active_pattern(x)
        return (x >= self._box.upper).to(torch.int8) - (x <= self._box.lower).to(torch.int8)

    def polish(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Active-set refinement for a box QP with a shared Q.

        With the active bounds A of x (coordinates at a bound) fixed and F the free
        ones, solve Q_FF z_F = -(q_F + Q_FA x_A) and accept z where it is feasible and
        the multipliers have the right signs (grad_j >= 0 at a lower bound, <= 0 at an
        upper bound, up to a rounding tolerance): the KKT conditions of the QP.
        """
        none = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        if not (self.is_constrained and self.shared_matrix):
            return x, none
        lo, up = self._box.lower, self._box.upper
        pattern = self.active_pattern(x)
        at_lower, at_upper = pattern < 0, pattern > 0
        free = ~(at_lower | at_upper)
        x_fixed = torch.where(free, torch.zeros_like(x), x)
        z_free, ok = solve_on_index_sets(self.Q, -(self.q + x_fixed @ self.Q), free)
        z = torch.where(free, z_free, x_fixed)
        g = z @ self.Q + self.q
        tol = (1e-9 if self.dtype == torch.float64 else 1e-5) * g.abs().amax(-1, keepdim=True).clamp(min=1e-30)
        feasible = ((z >= lo) & (z <= up)).all(-1)
        signs = (((g >= -tol) | ~at_lower) & ((g <= tol) | ~at_upper)).all(-1)
        accepted = ok & feasible & signs
        return torch.where(accepted.unsqueeze(-1), z, x), accepted

    def certificate_name(self) -> str:
        return "relative projected-gradient (KKT) residual" if self.is_constrained else "relative gradient norm"

    reference_solver = "fista_restart"
    reference_method = "accelerated projected gradient with restart to KKT residual <= {tol:g}"

    def closed_form(self) -> tuple[Tensor, str] | None:
        """Unconstrained: -Q^{-1} q by Cholesky (mu > 0), else the minimum-norm -Q^+ q."""
        if self.is_constrained:
            return None
        mu = self.strong_convexity()
        if not bool((mu > 0).all()):
            x = -(torch.linalg.pinv(self.Q) @ self.q.unsqueeze(-1)).squeeze(-1) if not self.shared_matrix else (
                -self.q @ torch.linalg.pinv(self.Q)
            )
            return x, "closed form (pseudo-inverse)"
        chol = torch.linalg.cholesky(self.Q)
        if self.shared_matrix:
            x = -torch.cholesky_solve(self.q.mT, chol).mT
        else:
            x = -torch.cholesky_solve(self.q.unsqueeze(-1), chol).squeeze(-1)
        return x, "closed form (Cholesky)"


def random_spd(batch: int | None, n: int, condition_number: float, g: torch.Generator) -> Tensor:
    """Random SPD matrices U diag(s) U^T with log-uniform spectrum in [1, kappa]
    (smallest 1, largest kappa exactly): ``(n, n)`` if ``batch`` is None else ``(B, n, n)``."""
    shape = (n, n) if batch is None else (batch, n, n)
    U, _ = torch.linalg.qr(torch.randn(*shape, generator=g, dtype=torch.float64))
    lead = () if batch is None else (batch,)
    u = torch.rand(*lead, n, generator=g, dtype=torch.float64)
    u[..., 0], u[..., -1] = 0.0, 1.0
    s = torch.exp(u * math.log(condition_number))
    Q = (U * s.unsqueeze(-2)) @ U.mT
    return 0.5 * (Q + Q.mT)


@dataclasses.dataclass(frozen=True)
class QuadraticFamily(ProblemFamily):
    """Random convex QPs with prescribed conditioning, optionally box-constrained.

    Q = U diag(s) U^T, s log-uniform in [1, condition_number] (shared from
    ``matrix_seed`` or drawn per instance); q ~ N(0, data_scale^2 I); the box, when
    ``box`` > 0, is [-box, box]^n (``box_scale`` of the unconstrained solution decides
    how many bounds are active).

    OOD knobs: condition_number, data_scale, box, n, x0_shift, objective_shift.

    Example:
        >>> import torch
        >>> from l2o.problems import QuadraticFamily
        >>> problem = QuadraticFamily(n=5, condition_number=10.0).sample(4, generator=0)
        >>> tuple(problem.Q.shape), tuple(problem.q.shape)  # one shared Q, a q per instance
        ((5, 5), (4, 5))
        >>> round(float(problem.smoothness()[0]), 9), round(float(problem.strong_convexity()[0]), 9)
        (10.0, 1.0)
        >>> x_star = -torch.linalg.solve(problem.Q, problem.q.T).T  # Q x* + q = 0
        >>> bool(problem.grad(x_star).abs().max() < 1e-12)
        True
        >>> x, method = problem.closed_form()
        >>> method, bool(torch.allclose(x, x_star, atol=1e-12))
        ('closed form (Cholesky)', True)
    """

    n: int = 100
    condition_number: float = 100.0
    shared_matrix: bool = True
    matrix_seed: int = 0
    data_scale: float = 1.0
    box: float = 0.0
    x0_shift: float = 0.0
    objective_shift: float = 0.0

    name = "quadratic"
    default_solver = "newton"
    file_format = "qp"

    @classmethod
    def solver_for(cls, problem: Instances) -> str:
        """Accelerated projected gradient on a box, else Newton (one step on a QP)."""
        return "apgd" if problem.is_constrained else cls.default_solver

    def validate(self) -> None:
        self._check_positive_int("n")
        if self.condition_number < 1:
            raise ValueError(f"quadratic: condition_number must be >= 1, got {self.condition_number}")
        if self.box < 0:
            raise ValueError(f"quadratic: box must be >= 0 (0 = unconstrained), got {self.box}")

    def natural_splits(self) -> list[Split]:
        """Data scale of q, a 10x worse conditioning, and a larger dimension."""
        return [
            scaled("data_scale_2", "data_scale", 2.0 * self.data_scale, "scale of q"),
            scaled(f"condition_{10 * self.condition_number:g}", "condition_number", 10.0 * self.condition_number,
                   "condition number of Q"),
            Split(f"dim_{2 * self.n}", f"n = {2 * self.n}", {"n": 2 * self.n}),
        ]

    def sample_instances(self, batch_size: int, g: torch.Generator) -> QuadraticInstances:
        if self.shared_matrix:
            Q = random_spd(None, self.n, self.condition_number, make_generator(self.matrix_seed))
        else:
            Q = random_spd(batch_size, self.n, self.condition_number, g)
        q = self.data_scale * torch.randn(batch_size, self.n, generator=g, dtype=torch.float64)
        lower = upper = None
        if self.box > 0:
            lower = torch.full((self.n,), -self.box, dtype=torch.float64)
            upper = torch.full((self.n,), self.box, dtype=torch.float64)
        return QuadraticInstances(Q, q, lower, upper, x0_shift=self.x0_shift)
