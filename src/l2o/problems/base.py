"""The interface between problems and solvers.

A *batch of instances* of a composite problem

    minimize_x  F(x) = f(x) + r(x),   x in R^n,

with ``f`` L-smooth and ``r`` convex with a cheap proximal operator. Points are
tensors of shape ``(B, n)``; every method works on the whole batch at once and
returns per-instance values of shape ``(B,)``. Instances hold their data in one
dtype on one device, and every method follows that dtype and device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor

# Where |F*| is tiny compared with the scale of the problem, a gap relative to
# |F*| is meaningless (it is infinite when F* = 0, as in consistent least
# squares). The rule used everywhere in l2o is
#
#     relative gap = (F - F*) / max(|F*|, GAP_FLOOR * (F(0) - F*)),
#
# i.e. relative to |F*| unless |F*| is below one thousandth of the gap of the
# origin, and then relative to that thousandth. For LASSO, logistic regression
# and QPs with F* < 0 the floor never binds on the presets.
GAP_FLOOR = 1e-3


def as_batch_vector(value: Tensor | float, batch_size: int, like: Tensor) -> Tensor:
    """Broadcast a scalar or ``(B,)`` value to a ``(B,)`` tensor like ``like``."""
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.ndim == 0:
        return t.expand(batch_size).clone()
    return t.reshape(batch_size)


def column(v: Tensor | float) -> Tensor | float:
    """``(B,)`` -> ``(B, 1)`` so that a per-instance scalar broadcasts over coordinates.

    Scalars and tensors that are already 2-D (``(B, 1)`` or ``(B, n)``) pass through.
    """
    if isinstance(v, Tensor) and v.ndim == 1:
        return v.unsqueeze(-1)
    return v


class Instances(ABC):
    """A batch of ``B`` instances of ``F(x) = f(x) + r(x)`` over ``x`` in R^n.

    Subclasses implement the smooth part (``smooth_objective``, ``grad``,
    ``smoothness``), the nonsmooth part (``nonsmooth_objective``, ``prox``;
    the defaults are r = 0), ``index`` and ``to``. Everything else (objective,
    gradient mapping, certificates) is derived here; references are computed by
    ``l2o.evaluation.reference`` from ``closed_form`` or the declared ``reference_solver``.
    """

    #: True when r is not identically zero (LASSO, sparse logistic, a box).
    has_nonsmooth: bool = False
    #: True when r is the indicator of a box (the prox is a projection).
    is_constrained: bool = False
    #: Initial-point shift: the default starting point is ``x0_shift * 1``.
    x0_shift: float = 0.0
    #: False for instances that cannot be sub-batched (``index`` refuses): the solve loop
    #: then keeps converged instances in the batch instead of dropping them.
    can_index: bool = True
    #: What the problem is called in messages to users ("got a {problem_kind} problem"),
    #: so that errors never name an internal class.
    problem_kind: str = "custom"

    # ----- data layout ---------------------------------------------------------------
    @property
    @abstractmethod
    def batch_size(self) -> int: ...

    @property
    @abstractmethod
    def dim(self) -> int: ...

    @property
    @abstractmethod
    def dtype(self) -> torch.dtype: ...

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    @abstractmethod
    def index(self, idx: Tensor) -> Instances:
        """The sub-batch ``idx`` (a ``(B',)`` long tensor), sharing shared data."""

    @abstractmethod
    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Instances:
        """A copy in another dtype and/or on another device."""

    def as_float64(self) -> Instances:
        """These instances in float64 (themselves if already float64): where references,
        gaps and certificates are evaluated."""
        return self if self.dtype == torch.float64 else self.to(dtype=torch.float64)

    # ----- smooth part --------------------------------------------------------------------
    @abstractmethod
    def smooth_objective(self, x: Tensor) -> Tensor:
        """f(x): ``(B, n) -> (B,)``."""

    @abstractmethod
    def grad(self, x: Tensor) -> Tensor:
        """grad f(x): ``(B, n) -> (B, n)``."""

    def value_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(f(x), grad f(x)); subclasses share work between the two where they can."""
        return self.smooth_objective(x), self.grad(x)

    @abstractmethod
    def smoothness(self) -> Tensor:
        """``(B,)`` Lipschitz constant L of grad f (an upper bound, tight where cheap)."""

    def strong_convexity(self) -> Tensor:
        """``(B,)`` strong-convexity modulus mu of f (a lower bound; 0 when unknown)."""
        return torch.zeros(self.batch_size, dtype=self.dtype, device=self.device)

    def hessian(self, x: Tensor) -> Tensor:
        """``(B, n, n)`` Hessian of f; only families where it is cheap implement it."""
        raise NotImplementedError(f"the {self.problem_kind} problem has no cheap Hessian; "
                                  f"use a first-order or quasi-Newton solver")

    # ----- nonsmooth part ---------------------------------------------------------------------
    def nonsmooth_objective(self, x: Tensor) -> Tensor:
        """r(x): ``(B, n) -> (B,)``."""
        return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)

    def prox(self, v: Tensor, step: Tensor) -> Tensor:
        """prox_{step * r}(v) = argmin_x r(x) + ||x - v||^2 / (2 step).

        ``step`` is ``(B,)`` (one step per instance) or broadcastable to ``(B, n)``
        (a diagonal metric, used by preconditioned methods such as Adam).
        """
        return v

    def subdifferential_bounds(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Ends ``(c, d)`` of the interval dr(x)_i per coordinate, each ``(B, n)``."""
        z = torch.zeros_like(x)
        return z, z

    # ----- derived ---------------------------------------------------------------------------
    def objective(self, x: Tensor) -> Tensor:
        """F(x) = f(x) + r(x): ``(B, n) -> (B,)``."""
        return self.smooth_objective(x) + self.nonsmooth_objective(x)

    def initial_point(self) -> Tensor:
        """The default starting point ``x0_shift * 1`` of shape ``(B, n)``."""
        return torch.full((self.batch_size, self.dim), float(self.x0_shift), dtype=self.dtype, device=self.device)

    def prox_grad(self, y: Tensor, step_scale: float = 1.0) -> Tensor:
        """One proximal-gradient step prox_{t r}(y - t grad f(y)) with t = step_scale / L.

        ``(B, n) -> (B, n)``. Families override it with a fused form where one exists
        (LASSO with a shared Gram matrix: one ``addmm``).
        """
        t = column(step_scale / self.smoothness())
        return self.prox(y - t * self.grad(y), t)

    def polish(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Active-set refinement of ``x`` (``(B, n)``); returns ``(x', accepted (B,))``.

        Families whose optimality conditions become a linear system once the active
        set is known (LASSO support and signs, box-QP active bounds) solve that system
        and accept the result only where it satisfies every optimality condition, so
        an accepted point is optimal and a rejected one is left unchanged. The
        default does nothing.
        """
        return x, torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)

    def active_pattern(self, x: Tensor) -> Tensor:
        """``(B, n)`` int8 pattern of the active set that ``polish`` relies on.

        Default: sign(x) (support and signs, what LASSO's optimality conditions fix);
        constrained families return which bound is active.
        """
        return torch.sign(x).to(torch.int8)

    def gradient_mapping(self, x: Tensor, step: Tensor | None = None) -> Tensor:
        """G(x) = (x - prox_{t r}(x - t grad f(x))) / t with t = 1/L: ``(B, n)``.

        G(x) = 0 exactly at minimizers; for r = 0 it is grad f(x).
        """
        t = column(1.0 / self.smoothness()) if step is None else column(step)
        return (x - self.prox(x - t * self.grad(x), t)) / t

    def fixed_point_residual(self, x: Tensor) -> Tensor:
        """``(B,)`` relative fixed-point residual ||G(x)|| / ||G(p0)||, computed in the
        instances' dtype; p0 = prox(0) is the projection of the origin.

        0 exactly at minimizers; unlike a duality gap it stays meaningful for float32
        iterates down to about the float32 resolution.
        """
        scale = self.__dict__.get("_residual_scale")
        if scale is None:  # cached: it costs a gradient
            p0 = self.prox(torch.zeros_like(x), 1.0 / self.smoothness())
            scale = torch.linalg.vector_norm(self.gradient_mapping(p0), dim=-1)
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))
            self.__dict__["_residual_scale"] = scale
        return torch.linalg.vector_norm(self.gradient_mapping(x), dim=-1) / scale

    def certificate(self, x: Tensor) -> Tensor:
        """``(B,)`` relative optimality certificate: 0 exactly at a minimizer.

        Default: the relative fixed-point residual (``fixed_point_residual``). Families with a
        dual override this with a relative duality gap, which bounds F(x) - F* directly.
        """
        return self.fixed_point_residual(x)

    def certified(self, x: Tensor, tol: float) -> Tensor:
        """``(B,)`` bool: ``certificate(x) <= tol`` (and finite). Families override it where
        part of the certificate is expensive and only needed where it may reach ``tol``;
        a True here implies ``certificate(x) <= tol`` (up to rounding)."""
        cert = self.certificate(x)
        return (cert <= tol) & torch.isfinite(cert)

    def certificate_name(self) -> str:
        return "relative gradient-mapping norm"

    # ----- reference optimum (computed by l2o.evaluation.reference) ------------------
    #: The solver that computes references where there is no closed form: a registry
    #: name (``l2o.registry.SOLVERS``), run by ``l2o.evaluation.solve`` until the
    #: certificate is <= tol. Class-level data; a class may compute it per batch.
    reference_solver: str = "fista_restart"
    #: Keyword arguments of that solver.
    reference_solver_kwargs: Mapping[str, Any] = MappingProxyType({})
    #: How the iterative reference is described (``Reference.method``); ``{solver}`` is
    #: the solver's name and ``{tol}`` the tolerance.
    reference_method: str = "{solver} to certificate <= {tol:g}"

    #: Nonconvex families (MIMO sum-rate) have no certificate of global optimality: their
    #: reference is the best, per instance, of runs of ``reference_solver`` from the
    #: points of ``reference_starts``, each until its objective changes by less than
    #: ``reference_rtol`` (relative) in one iteration, at most ``reference_max_iter``.
    reference_rtol: float = 1e-9
    reference_max_iter: int = 5000

    def reference_starts(self) -> list[tuple[str, Tensor]] | None:
        """Named starting points ``[(name, x0 (B, n)), ...]`` of a multi-start reference, or
        None (the default: the reference is certified, from ``closed_form`` or a single
        run of ``reference_solver`` to its certificate)."""
        return None

    def closed_form(self) -> tuple[Tensor, str] | None:
        """``(x*, method)``: a minimizer in closed form and how it was computed (e.g.
        ``"closed form (Cholesky)"``), or None where there is none (the default)."""
        return None

