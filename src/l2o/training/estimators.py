"""Gradient estimators: turn a batch into meta-loss and meta-gradient.

An estimator unrolls a learned solver on a batch (``l2o.training.unroll``) and yields
one or more ``Estimate``s, each the loss and the gradient with respect to the solver's
trainable parameters for one meta-update. The learner applies each estimate before
asking for the next, so an estimator that yields several (truncated backpropagation
with one update per segment, as Math-L2O trains) sees the updated weights in its later
segments. Swapping the estimator changes how gradients are computed, not the loop.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from l2o.evaluation.reference import Reference
from l2o.problems.base import Instances
from l2o.training.unroll import MetaLoss, detach_state, unroll


@dataclasses.dataclass
class Estimate:
    """One meta-update's worth of signal.

    Attributes:
        loss: detached scalar meta-loss.
        grads: one tensor (or None where a parameter got no gradient) per trainable
            parameter, in ``trainable(solver)`` order.
        iterations: solver iterations this estimate covers.
    """

    loss: Tensor
    grads: list[Tensor | None]
    iterations: int


def trainable(solver: nn.Module) -> list[nn.Parameter]:
    """The parameters the meta-optimizer updates (``requires_grad``), in module order."""
    return [p for p in solver.parameters() if p.requires_grad]


def _grads(loss: Tensor, params: list[nn.Parameter]) -> list[Tensor | None]:
    if not loss.requires_grad:  # no path from the parameters to the loss
        return [None] * len(params)
    return list(torch.autograd.grad(loss, params, allow_unused=True))


class GradientEstimator(ABC):
    """Base class: ``estimates(...)`` yields ``Estimate``s for one batch."""

    @abstractmethod
    def estimates(
        self,
        solver: nn.Module,
        problem: Instances,
        horizon: int,
        loss: MetaLoss,
        reference: Reference | None = None,
        x0: Tensor | None = None,
    ) -> Iterator[Estimate]:
        """Unroll ``solver`` for ``horizon`` iterations on ``problem`` from ``x0`` (default
        ``problem.initial_point()``) and yield the estimates of this batch."""


class TruncatedBackprop(GradientEstimator):
    """Truncated backpropagation through the unroll.

    The horizon K is cut into segments of ``segment`` iterations (the last one may be
    shorter); the solver state is detached between segments, so no gradient flows
    from one segment into the previous one and memory is bounded by one segment.
    Each segment's loss is ``loss`` over its iterations.

    Args:
        segment: truncation length S >= 1.
        update_per_segment: yield one estimate per segment (Math-L2O, Liu et al. 2023:
            a meta-step after every segment, from the detached state); otherwise one
            estimate per batch whose loss and gradient are the mean over segments.
        checkpoint: recompute each step's activations in the backward pass
            (``torch.utils.checkpoint``) instead of storing them.
    """

    def __init__(self, segment: int, update_per_segment: bool = False, checkpoint: bool = True):
        if segment < 1:
            raise ValueError(f"segment must be >= 1, got {segment}")
        self.segment = segment
        self.update_per_segment = update_per_segment
        self.checkpoint = checkpoint

    def _bounds(self, horizon: int) -> list[tuple[int, int]]:
        return [(s, min(s + self.segment, horizon)) for s in range(0, horizon, self.segment)]

    def estimates(
        self,
        solver: nn.Module,
        problem: Instances,
        horizon: int,
        loss: MetaLoss,
        reference: Reference | None = None,
        x0: Tensor | None = None,
    ) -> Iterator[Estimate]:
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if loss.needs_reference and reference is None:
            raise ValueError(f"loss {loss.kind!r} needs the reference optimum of the batch")
        params = trainable(solver)
        state = solver.init(problem, problem.initial_point() if x0 is None else x0)
        bounds = self._bounds(horizon)
        n = len(bounds)
        total_loss: Tensor | None = None
        total_grads: list[Tensor | None] = [None] * len(params)
        for start, stop in bounds:
            state = detach_state(state)
            out = unroll(solver, problem, state, stop - start, start=start, record=loss.iterations(start, stop),
                         checkpoint=self.checkpoint)
            seg_loss = loss(out, reference)
            if self.update_per_segment:
                grads = _grads(seg_loss, params)
                state = out.state
                del out
                yield Estimate(loss=seg_loss.detach(), grads=grads, iterations=stop - start)
                continue
            grads = _grads(seg_loss / n, params)
            state = out.state
            del out
            total_loss = seg_loss.detach() / n if total_loss is None else total_loss + seg_loss.detach() / n
            total_grads = [g if acc is None else (acc if g is None else acc + g) for acc, g in zip(total_grads, grads)]
        if not self.update_per_segment:
            yield Estimate(loss=total_loss, grads=total_grads, iterations=horizon)


class FullBackprop(TruncatedBackprop):
    """Backpropagation through all K iterations (one segment, one estimate per batch),
    as LGD is trained (Song, Lin, Xu, NeurIPS 2025: T = 100, loss f(x_T))."""

    def __init__(self, checkpoint: bool = True):
        super().__init__(segment=1, checkpoint=checkpoint)

    def _bounds(self, horizon: int) -> list[tuple[int, int]]:
        return [(0, horizon)]


def make_estimator(unroll_length: int, segment: int, update_per_segment: bool = False,
                   checkpoint: bool = True) -> GradientEstimator:
    """``FullBackprop`` when ``segment >= unroll_length``, else ``TruncatedBackprop``."""
    if segment >= unroll_length:
        return FullBackprop(checkpoint=checkpoint)
    return TruncatedBackprop(segment, update_per_segment=update_per_segment, checkpoint=checkpoint)


def all_finite(estimate: Estimate) -> bool:
    """True when the loss and every gradient entry are finite."""
    if not math.isfinite(float(estimate.loss)):
        return False
    return all(g is None or bool(torch.isfinite(g).all()) for g in estimate.grads)
