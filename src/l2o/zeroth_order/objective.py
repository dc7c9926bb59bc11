"""A batch of instances as the function ``fn: (S * B, n) -> (S * B,)`` the estimators call.

Row ``s * B + b`` of the points belongs to instance ``b`` (slot-major, the order of
``l2o.zeroth_order.estimators``). Only ``Instances.objective`` (F = f + r) or
``Instances.smooth_objective`` (f) is ever called: no gradient, no prox.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch
from torch import Tensor

from l2o.problems.base import Instances

#: How the S slots of a batch are evaluated: ``"batched"``, one call of the objective on
#: the instances repeated S times (``problem.index``; per-instance data such as a
#: per-instance matrix is copied S times, shared data is not); ``"loop"``, S calls on
#: ``(B, n)`` (no copies; what instances that cannot be indexed always use).
EVALUATIONS = ("batched", "loop")
#: Which function of the instances is queried: F = f + r (``"objective"``) or f (``"smooth"``).
PARTS = ("objective", "smooth")


#: Expanded batches (the instances repeated S times), per batch and S, alive as long as the batch.
_EXPANDED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def repeated(problem: Instances, copies: int) -> Instances:
    """``problem`` repeated ``copies`` times along the batch (slot-major), cached per batch."""
    try:
        per_problem = _EXPANDED.setdefault(problem, {})
    except TypeError:  # an unhashable or non-weakrefable Instances: no cache
        per_problem = {}
    if copies not in per_problem:
        idx = torch.arange(problem.batch_size, device=problem.device).repeat(copies)
        per_problem[copies] = problem.index(idx)
    return per_problem[copies]


def check_evaluation(evaluation: str) -> None:
    if evaluation not in EVALUATIONS:
        raise ValueError(f"evaluation must be one of {', '.join(EVALUATIONS)}; got {evaluation!r}")


def instances_objective(
    problem: Instances, copies: int, evaluation: str = "batched", part: str = "objective"
) -> Callable[[Tensor], Tensor]:
    """``fn`` evaluating F = f + r (``part="objective"``) or f (``"smooth"``) of ``problem``
    (B instances) at ``copies * B`` points.

    >>> import l2o
    >>> p = l2o.QuadraticFamily(n=3).sample(2, 0)
    >>> x = torch.randn(2, 3, dtype=torch.float64)
    >>> fn = instances_objective(p, 2)
    >>> torch.allclose(fn(torch.cat([x, 2 * x])), torch.cat([p.objective(x), p.objective(2 * x)]))
    True
    """
    check_evaluation(evaluation)
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}; got {part!r}")
    name = "objective" if part == "objective" else "smooth_objective"
    B = problem.batch_size
    if copies == 1:
        return getattr(problem, name)
    if evaluation == "batched" and problem.can_index:
        return getattr(repeated(problem, copies), name)
    f = getattr(problem, name)

    def loop(points: Tensor) -> Tensor:
        return torch.cat([f(chunk) for chunk in points.reshape(copies, B, -1)])

    return loop
