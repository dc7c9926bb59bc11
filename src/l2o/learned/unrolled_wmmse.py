"""What the deep-unfolded WMMSE solvers share (IAIDNN, GCN-WMMSE; see their modules): a
feasible start, ``horizon`` learned layers with separate parameters, then exact WMMSE
iterations (``tail = "wmmse"``) or the last layer again (``tail = "last"``).

A subclass sets ``self.layers`` (an ``nn.ModuleList`` of ``horizon`` layers) and
``self.tail`` (``check_tail``) and implements ``layer_step(layer, problem, V)``, the map of
one layer on the precoders ``V (B, K, I, M, d)``.
"""

from __future__ import annotations

import dataclasses

from torch import Tensor

from l2o.learned.base import LearnedOptimizer
from l2o.optimizers.wmmse import feasible_start, require_mimo
from l2o.problems.base import Instances
from l2o.problems.mimo.channel import pack, wmmse_update
from l2o.problems.mimo.instances import MimoInstances

#: What runs past the horizon: exact WMMSE iterations, or the last learned layer again.
TAILS = ("wmmse", "last")


def check_tail(solver: str, tail: str) -> None:
    """One-line ``ValueError`` unless ``tail`` is one of ``TAILS``.

    >>> check_tail("iaidnn", "wmmse")
    >>> check_tail("iaidnn", "exact")
    Traceback (most recent call last):
    ValueError: iaidnn: tail must be one of 'wmmse', 'last', got 'exact'
    """
    if tail not in TAILS:
        raise ValueError(f"{solver}: tail must be one of {', '.join(map(repr, TAILS))}, got {tail!r}")


@dataclasses.dataclass
class UnrolledWMMSEState:
    """x: ``(B, n)`` packed precoders (every cell within its budget); k: iterations done."""

    x: Tensor
    k: int = 0


class UnrolledWMMSE(LearnedOptimizer):
    """Base of the unrolled-WMMSE solvers: init (``feasible_start``), step (layer k, or the
    tail past the horizon); subclasses provide ``layers``, ``tail`` and ``layer_step``."""

    template = "wmmse"
    solves_mimo = True

    def check_problem(self, problem: Instances) -> None:
        require_mimo(self, problem)

    def init(self, problem: Instances, x0: Tensor) -> UnrolledWMMSEState:
        self.check_problem(problem)
        return UnrolledWMMSEState(x=feasible_start(problem, x0), k=0)

    def step(self, problem: Instances, state: UnrolledWMMSEState) -> UnrolledWMMSEState:
        V = problem.unpack(state.x)
        if state.k >= self.horizon and self.tail == "wmmse":
            V, _ = wmmse_update(problem.H, V, problem.noise, problem.weights, problem.budget)
        else:
            V = self.layer_step(self.layers[min(state.k, self.horizon - 1)], problem, V)
        return UnrolledWMMSEState(x=pack(V), k=state.k + 1)

    def layer_step(self, layer, problem: MimoInstances, V: Tensor) -> Tensor:
        """One learned layer: precoders ``(B, K, I, M, d)`` -> the next ones (same shape)."""
        raise NotImplementedError
