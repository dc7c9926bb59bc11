"""Bring your own problem: a batched objective written in torch.

    problem = AutogradInstances(
        objective=lambda x: ((x - c) ** 4).sum(-1),   # (B, n) -> (B,), smooth part f
        batch_size=B, dim=n,
        smoothness=L,                                  # scalar or (B,) Lipschitz bound of grad f
        penalty=l2o.problems.parts.L1(lam),            # optional: nonsmooth r with a prox
    )

The gradient comes from autograd; the prox, the penalty value and the
subdifferential come from ``penalty`` (any object with ``value``, ``prox`` and
``subdifferential_bounds``, like ``parts.L1`` and ``parts.Box``). The reference
optimum is computed by FISTA with restart (or L-BFGS when the problem is smooth)
until the relative fixed-point residual is below the tolerance.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from l2o.problems.base import Instances, as_batch_vector
from l2o.problems.parts import Penalty


class AutogradInstances(Instances):
    """A batch of F(x) = f(x) + r(x) with f given as a torch function.

    Args:
        objective: f, a function ``(B, n) -> (B,)`` made of differentiable torch ops,
            where row i of the output depends only on row i of the input.
        batch_size, dim: B and n.
        smoothness: a Lipschitz constant of grad f, scalar or ``(B,)``.
        penalty: optional nonsmooth part (``parts.L1``, ``parts.Box`` or alike).
        dtype, device: of the points (f must accept them).
        strong_convexity: optional mu, scalar or ``(B,)``.

    Example:
        >>> import torch, l2o
        >>> from l2o.problems import AutogradInstances
        >>> from l2o.problems.parts import L1, soft_threshold
        >>> c = torch.randn(4, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> lam = torch.full((4,), 0.5, dtype=torch.float64)
        >>> problem = AutogradInstances(lambda x: 0.5 * ((x - c) ** 2).sum(-1), batch_size=4, dim=6,
        ...                             smoothness=1.0, penalty=L1(lam))
        >>> result = l2o.run(l2o.make_solver("fista"), problem, max_iter=20, reference=None)
        >>> # minimizer of 1/2 ||x - c||^2 + lam ||x||_1: soft-thresholding of c
        >>> bool(torch.allclose(result.x, soft_threshold(c, 0.5), atol=1e-12))
        True
    """

    problem_kind = "custom (autograd)"

    def __init__(
        self,
        objective: Callable[[Tensor], Tensor],
        batch_size: int,
        dim: int,
        smoothness: Tensor | float,
        penalty: Penalty | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
        strong_convexity: Tensor | float = 0.0,
        x0_shift: float = 0.0,
    ):
        self._f = objective
        self._B, self._n = int(batch_size), int(dim)
        self._dtype, self._device = dtype, torch.device(device)
        like = torch.empty(self._B, dtype=dtype, device=self._device)
        self._L = as_batch_vector(smoothness, self._B, like)
        if not bool((self._L > 0).all()) or not bool(torch.isfinite(self._L).all()):
            raise ValueError(f"smoothness must be finite and > 0, got {smoothness!r}")
        self._mu = as_batch_vector(strong_convexity, self._B, like)
        self.penalty = penalty
        self.has_nonsmooth = penalty is not None
        self.is_constrained = hasattr(penalty, "lower")
        self.x0_shift = x0_shift

    #: ``index`` refuses (the objective is an opaque function): the solve loop keeps
    #: converged instances in the batch.
    can_index = False

    @property
    def batch_size(self) -> int:
        return self._B

    @property
    def dim(self) -> int:
        return self._n

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    def index(self, idx: Tensor) -> AutogradInstances:
        raise NotImplementedError(
            "AutogradInstances cannot be sub-batched (its objective is an opaque function); "
            "solve it with l2o.run, or write an Instances subclass with index()"
        )

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> AutogradInstances:
        dtype, device = dtype or self._dtype, device or self._device
        return AutogradInstances(
            self._f, self._B, self._n, self._L.to(dtype=dtype, device=device), self.penalty, dtype, device,
            self._mu.to(dtype=dtype, device=device), self.x0_shift,
        )

    def smooth_objective(self, x: Tensor) -> Tensor:
        return self._f(x)

    def value_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            z = x.detach().requires_grad_(True)
            f = self._f(z)
            (g,) = torch.autograd.grad(f.sum(), z)
        return f.detach(), g

    def grad(self, x: Tensor) -> Tensor:
        return self.value_and_grad(x)[1]

    def smoothness(self) -> Tensor:
        return self._L

    def strong_convexity(self) -> Tensor:
        return self._mu

    def nonsmooth_objective(self, x: Tensor) -> Tensor:
        return self.penalty.value(x) if self.has_nonsmooth else super().nonsmooth_objective(x)

    def prox(self, v: Tensor, step: Tensor | float) -> Tensor:
        return self.penalty.prox(v, step) if self.has_nonsmooth else v

    def subdifferential_bounds(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.penalty.subdifferential_bounds(x) if self.has_nonsmooth else super().subdifferential_bounds(x)

    # ----- reference ------------------------------------------------------------------------
    reference_method = "{solver} to relative fixed-point residual <= {tol:g}"

    @property
    def reference_solver(self) -> str:  # type: ignore[override]
        """FISTA with restart, or L-BFGS when the problem is smooth."""
        return "fista_restart" if self.has_nonsmooth else "lbfgs"
