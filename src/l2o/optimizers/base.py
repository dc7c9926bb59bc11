"""The protocol every solver implements, classical or learned.

    state = solver.init(problem, x0)        # x0: (B, n)
    state = solver.step(problem, state)     # one iteration on the whole batch
    state.x                                 # current estimate, (B, n)

The state is an explicit dataclass of tensors (as optax keeps state explicit),
so a run can be checkpointed, a batch can be split or compacted
(``select_state``) and a safeguard can mix the states of two solvers.
Convention: every tensor field of a state has the batch as its first dimension;
other fields (Python numbers) are shared by the batch. A field holding data shared by
the whole batch (a solver's per-problem matrices, say) is declared with
``shared_field()`` (``dataclasses.field`` metadata ``{"shared": True}``):
``select_state`` and ``merge_state`` leave it whole instead of indexing its dim 0.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from torch import Tensor

from l2o.problems.base import Instances


class Optimizer(ABC):
    """A batched iterative solver with explicit state.

    Class attributes describe what the method needs, so that a wrong pairing fails
    at ``init`` with a message instead of producing wrong iterates:

    * ``handles_nonsmooth``: accepts r != 0 (through its prox).
    * ``needs_hessian``: calls ``problem.hessian``.
    * ``float32_iterates``: may iterate in float32 while a float64 criterion certifies
      (``l2o solve --iterate-dtype auto``); False where float32 ruins the method itself
      (finite differences of a float32 objective are accurate only to ~1e-4).

    ``check_problem`` raises for a problem the method cannot solve; ``skip`` gives the
    reason as data (as benchopt's ``Solver.skip``), so that tables of solvers x problems
    leave the pair out instead of catching exceptions.
    """

    name: ClassVar[str] = "optimizer"
    handles_nonsmooth: ClassVar[bool] = True
    needs_hessian: ClassVar[bool] = False
    float32_iterates: ClassVar[bool] = True

    def check_problem(self, problem: Instances) -> None:
        """Raise ``ValueError`` when this method cannot solve ``problem``."""
        if problem.has_nonsmooth and not self.handles_nonsmooth:
            kind = "box-constrained" if problem.is_constrained else "nonsmooth (L1-penalized)"
            raise ValueError(
                f"solver '{self.name}' handles smooth unconstrained problems only, but this problem is {kind}; "
                f"use a proximal method such as 'fista', 'fista_restart' or 'ista' (or 'apgd' / 'pgd' for boxes)"
            )

    def skip(self, problem: Instances) -> str | None:
        """Why this solver is not meant for ``problem`` (one line), or None when it is.

        Default: the message of ``check_problem``'s ``ValueError`` (the capability
        attributes above, and each solver's own checks: WMMSE and the linear precoders
        refuse problems that are not ``MimoInstances``)."""
        try:
            self.check_problem(problem)
        except ValueError as e:
            return str(e)
        return None

    @abstractmethod
    def init(self, problem: Instances, x0: Tensor) -> Any:
        """Initial state at ``x0`` of shape ``(B, n)``."""

    @abstractmethod
    def step(self, problem: Instances, state: Any) -> Any:
        """One iteration on the whole batch; returns the new state."""

    def __repr__(self) -> str:
        fields = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"


#: Field metadata of state fields shared by the batch (``shared_field``).
SHARED = "shared"


def shared_field(**kwargs: Any) -> Any:
    """A dataclass field shared by the whole batch (no batch dimension): ``select_state``
    and ``merge_state`` pass it through. ``kwargs`` go to ``dataclasses.field``."""
    return dataclasses.field(metadata={SHARED: True}, **kwargs)


def is_shared(f: dataclasses.Field) -> bool:
    """Whether the state field ``f`` is declared shared by the batch (``shared_field``)."""
    return bool(f.metadata.get(SHARED, False))


def select_state(state: Any, idx: Tensor) -> Any:
    """The state of the sub-batch ``idx``: indexes every tensor field on dim 0, except the
    fields declared shared by the batch (``shared_field``), which the sub-batch shares."""
    changes = {}
    for f in dataclasses.fields(state):
        if is_shared(f):
            continue
        v = getattr(state, f.name)
        if isinstance(v, Tensor) and v.ndim > 0:
            changes[f.name] = v[idx]
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            changes[f.name] = select_state(v, idx)
    return dataclasses.replace(state, **changes)


def merge_state(state: Any, idx: Tensor, part: Any) -> Any:
    """``state`` with the rows ``idx`` replaced by the sub-batch state ``part``.

    The inverse of ``select_state``: tensor fields are copied (never written in
    place); fields shared by the batch (Python numbers such as an iteration counter, and
    fields declared with ``shared_field``) are taken from ``part``, the state that was
    just stepped.
    """
    changes = {}
    for f in dataclasses.fields(state):
        v, p = getattr(state, f.name), getattr(part, f.name)
        if is_shared(f):
            changes[f.name] = p
        elif isinstance(v, Tensor) and v.ndim > 0:
            changes[f.name] = v.index_copy(0, idx, p.to(v.dtype))
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            changes[f.name] = merge_state(v, idx, p)
        else:
            changes[f.name] = p
    return dataclasses.replace(state, **changes)


def step_size(problem: Instances, scale: float = 1.0) -> Tensor:
    """``(B, 1)`` step ``scale / L`` per instance, broadcasting over coordinates."""
    return (scale / problem.smoothness()).unsqueeze(-1)


def batch_dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-instance inner product: ``(B, n), (B, n) -> (B,)``."""
    return (a * b).sum(-1)
