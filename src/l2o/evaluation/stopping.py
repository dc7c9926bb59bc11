"""Stopping criteria of the solve loop (``l2o.evaluation.solve``).

A criterion decides, at a check, which instances of the active sub-batch are done:
``done(problem, x, previous) -> (B,) bool``. The loop retires those instances (their
iterate is the result) and keeps iterating the others.

* ``Certificate(tol)``: the family's certificate (relative duality gap or KKT residual)
  is <= tol, evaluated in float64 (``problem.certificate``).
* ``Residual(tol)``: the relative fixed-point residual ``problem.fixed_point_residual``
  is <= tol, in the working dtype (for float32 solves to high accuracy, where the
  float64 duality gap of a float32 iterate stalls above the iterate's accuracy).
* ``RelativeChange(rtol, of)``: a per-instance quantity ``of(problem, x)`` changed by at
  most ``rtol`` (relative) in the last iteration, e.g. the MIMO sum-rate.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
from torch import Tensor

from l2o.problems.base import Instances


def _check_tol(name: str, tol: float) -> float:
    tol = float(tol)
    if not tol > 0:
        raise ValueError(f"{name} must be > 0, got {tol}")
    return tol


class StoppingCriterion(ABC):
    """Which instances of the active sub-batch are done (see the module docstring)."""

    #: Evaluated on float64 copies of the instances and of the iterates: the loop keeps
    #: a float64 sub-batch in step with the working one.
    float64: bool = False
    #: Needs the iterate one step before the check (``previous``).
    needs_previous: bool = False

    @abstractmethod
    def done(self, problem: Instances, x: Tensor, previous: Tensor | None = None) -> Tensor:
        """``(B,)`` bool for the ``B`` active instances ``problem`` at iterates ``x``
        (``(B, n)``; ``previous``: the iterates one step earlier, None at the start)."""


class Certificate(StoppingCriterion):
    """Done where the family's certificate ``problem.certificate(x) <= tol`` (in float64),
    as decided by ``problem.certified(x, tol)``."""

    float64 = True

    def __init__(self, tol: float):
        self.tol = _check_tol("tol", tol)

    def done(self, problem: Instances, x: Tensor, previous: Tensor | None = None) -> Tensor:
        return problem.certified(x, self.tol)

    def __repr__(self) -> str:
        return f"Certificate(tol={self.tol:g})"


class Residual(StoppingCriterion):
    """Done where the relative fixed-point residual ``problem.fixed_point_residual(x) <= tol``,
    computed in the working dtype."""

    def __init__(self, tol: float):
        self.tol = _check_tol("tol", tol)

    def done(self, problem: Instances, x: Tensor, previous: Tensor | None = None) -> Tensor:
        res = problem.fixed_point_residual(x)
        return (res <= self.tol) & torch.isfinite(res)

    def __repr__(self) -> str:
        return f"Residual(tol={self.tol:g})"


class RelativeChange(StoppingCriterion):
    """Done where ``|q(x) - q(previous)| <= rtol * |q(x)|`` with ``q = of(problem, x)``, a
    ``(B,)`` quantity per instance (e.g. the MIMO sum-rate), over the last iteration
    before the check; never done at the start (no previous iterate). ``rtol`` may be 0
    (then only an unchanged quantity stops)."""

    needs_previous = True

    def __init__(self, rtol: float, of: Callable[[Instances, Tensor], Tensor]):
        if not float(rtol) >= 0:
            raise ValueError(f"rtol must be >= 0, got {rtol}")
        self.rtol = float(rtol)
        self.of = of

    def done(self, problem: Instances, x: Tensor, previous: Tensor | None = None) -> Tensor:
        if previous is None:
            return torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        new, old = self.of(problem, x), self.of(problem, previous)
        return (new - old).abs() <= self.rtol * new.abs()

    def __repr__(self) -> str:
        return f"RelativeChange(rtol={self.rtol:g})"
