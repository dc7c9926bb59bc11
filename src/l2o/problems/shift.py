"""Objective shift: the batch of G(x) = F(x + t), an OOD test of Song et al. (CVPR 2024).

If x* minimizes F then x* - t minimizes G, with the same optimal value, the same
smoothness and the same certificate; a solver that keys on the raw value of x
(rather than on gradients) sees a different problem. ``shifted(problem, t)`` builds it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from l2o.problems.base import Instances


class ShiftedInstances(Instances):
    """G(x) = F(x + t) for a batch ``inner`` of F; ``t`` scalar, ``(n,)`` or ``(B, n)``."""

    def __init__(self, inner: Instances, t: Tensor | float):
        self.inner = inner
        self.t = torch.as_tensor(t, dtype=inner.dtype, device=inner.device)
        self.has_nonsmooth = inner.has_nonsmooth
        self.is_constrained = inner.is_constrained
        self.x0_shift = inner.x0_shift
        self.problem_kind = inner.problem_kind

    @property
    def batch_size(self) -> int:
        return self.inner.batch_size

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def dtype(self) -> torch.dtype:
        return self.inner.dtype

    @property
    def device(self) -> torch.device:
        return self.inner.device

    def index(self, idx: Tensor) -> ShiftedInstances:
        t = self.t[idx] if self.t.ndim == 2 else self.t
        return ShiftedInstances(self.inner.index(idx), t)

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> ShiftedInstances:
        t = self.t.to(dtype=dtype or self.t.dtype, device=device or self.t.device)
        return ShiftedInstances(self.inner.to(dtype=dtype, device=device), t)

    def smooth_objective(self, x: Tensor) -> Tensor:
        return self.inner.smooth_objective(x + self.t)

    def grad(self, x: Tensor) -> Tensor:
        return self.inner.grad(x + self.t)

    def value_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.inner.value_and_grad(x + self.t)

    def smoothness(self) -> Tensor:
        return self.inner.smoothness()

    def strong_convexity(self) -> Tensor:
        return self.inner.strong_convexity()

    def hessian(self, x: Tensor) -> Tensor:
        return self.inner.hessian(x + self.t)

    def nonsmooth_objective(self, x: Tensor) -> Tensor:
        return self.inner.nonsmooth_objective(x + self.t)

    def prox(self, v: Tensor, step: Tensor | float) -> Tensor:
        return self.inner.prox(v + self.t, step) - self.t

    def subdifferential_bounds(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.inner.subdifferential_bounds(x + self.t)

    def certificate(self, x: Tensor) -> Tensor:
        return self.inner.certificate(x + self.t)

    def certified(self, x: Tensor, tol: float) -> Tensor:
        return self.inner.certified(x + self.t, tol)

    def active_pattern(self, x: Tensor) -> Tensor:
        return self.inner.active_pattern(x + self.t)

    def fixed_point_residual(self, x: Tensor) -> Tensor:
        return self.inner.fixed_point_residual(x + self.t)

    def certificate_name(self) -> str:
        return self.inner.certificate_name()


    # The reference is the inner problem's moved by -t (``l2o.evaluation.reference``).
    @property
    def can_index(self) -> bool:  # type: ignore[override]
        return self.inner.can_index


def shifted(problem: Instances, t: Tensor | float) -> ShiftedInstances:
    """The batch of F(x + t) for the batch ``problem`` of F (the objective shift of the
    CVPR 2024 OOD tests); ``t`` scalar, ``(n,)`` or ``(B, n)``."""
    return ShiftedInstances(problem, t)
