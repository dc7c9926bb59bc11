"""Query accounting: what one zeroth-order iteration costs against a budget of queries.

With ``q`` directions per iteration, the finite differences need these evaluations of
f per instance (``QueryAccounting.evaluations``):

==========================  ==============================================  ===========
differences, base           points evaluated                                evaluations
==========================  ==============================================  ===========
forward, ``base="shared"``  f(x), f(x + mu u_1), ..., f(x + mu u_q)         q + 1
forward, ``"per_query"``    f(x) once per direction (independent noise)     2q
central                     f(x + mu u_i), f(x - mu u_i)                    2q
==========================  ==============================================  ===========

What the budget Q counts is a separate, explicit choice (``count``), because the
answer to "which q is best at a fixed Q" depends on it (``../shared/RESEARCH-2.md`` §2,
Lin, Song, Xu, *The Multi-Query Paradox in Zeroth-Order Optimization*, arXiv 2509.15552):

* ``count="evaluations"`` (default): every evaluation of f counts, the base value included;
* ``count="directions"``: one query per direction, i.e. q per iteration (the idealised
  count in which the base value f(x) is free and a central pair is one query).

``CountingObjective`` wraps a function and counts what it is really asked, so that the
accounting can be checked against the calls themselves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from torch import Tensor

DIFFERENCES = ("forward", "central")
BASES = ("shared", "per_query")
COUNTS = ("evaluations", "directions")


def check_accounting(differences: str, base: str, count: str) -> None:
    """``ValueError`` naming the parameter for an unknown option."""
    if differences not in DIFFERENCES:
        raise ValueError(f"differences must be one of {', '.join(DIFFERENCES)}; got {differences!r}")
    if base not in BASES:
        raise ValueError(f"base must be one of {', '.join(BASES)}; got {base!r}")
    if count not in COUNTS:
        raise ValueError(f"count must be one of {', '.join(COUNTS)}; got {count!r}")


@dataclasses.dataclass(frozen=True)
class QueryAccounting:
    """Cost of one iteration with ``q`` directions, per instance (module docstring).

    >>> QueryAccounting("forward").charge(4), QueryAccounting("central").charge(4)
    (5, 8)
    >>> QueryAccounting("forward", count="directions").charge(4)
    4
    """

    differences: str = "forward"
    base: str = "shared"
    count: str = "evaluations"

    def __post_init__(self) -> None:
        check_accounting(self.differences, self.base, self.count)

    def evaluations(self, queries: int) -> int:
        """Evaluations of f per instance in one iteration with ``queries`` directions."""
        if self.differences == "forward" and self.base == "shared":
            return queries + 1
        return 2 * queries

    def charge(self, queries: int) -> int:
        """What one iteration costs against the budget."""
        return self.evaluations(queries) if self.count == "evaluations" else queries

    def iterations(self, budget: int, queries: int) -> int:
        """Whole iterations a budget of ``budget`` queries pays for."""
        return budget // self.charge(queries)

    def describe(self, queries: int | None = None) -> str:
        """One line for messages and reports, e.g. ``"q + 1 per iteration (forward, shared base, ...)"``."""
        what = {("forward", "shared"): "q + 1", ("forward", "per_query"): "2q"}.get(
            (self.differences, self.base), "2q")
        per = what if self.count == "evaluations" else "q"
        where = f"{self.differences} differences" + (f", {self.base.replace('_', '-')} base"
                                                     if self.differences == "forward" else "")
        value = "" if queries is None else f" = {self.charge(queries)}"
        return f"{per}{value} per iteration ({where}, counting {self.count})"


class CountingObjective:
    """Wraps ``fn: (R, n) -> (R,)`` and counts its calls and the points it evaluates.

    >>> import torch
    >>> f = CountingObjective(lambda x: x.square().sum(-1))
    >>> _ = f(torch.zeros(6, 3)); _ = f(torch.zeros(2, 3))
    >>> f.calls, f.evaluations
    (2, 8)
    """

    def __init__(self, fn: Callable[[Tensor], Tensor]):
        self.fn = fn
        self.calls = 0
        self.evaluations = 0

    def __call__(self, x: Tensor) -> Tensor:
        self.calls += 1
        self.evaluations += int(x.shape[0])
        return self.fn(x)
