"""The inner problem: unroll a solver on a batch and score its trajectory.

``unroll`` runs ``k`` iterations of any solver (classical or learned) from a state and
records F at the requested iterations; ``MetaLoss`` turns those values into the scalar
meta-loss of a segment. Neither knows about truncation or meta-optimizers: the gradient
estimators (``l2o.training.estimators``) decide where the graph is cut and the learner
(``l2o.training.trainer``) what to do with the gradient.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint as _checkpoint

from l2o.evaluation.reference import Reference
from l2o.optimizers.base import Optimizer
from l2o.problems.base import Instances

LOSSES = ("last", "mean", "sum", "weighted", "log_gap", "one_step")
REDUCTIONS = ("mean", "sum", "cvar")


@dataclasses.dataclass
class Unrolled:
    """What ``unroll`` returns.

    Attributes:
        state: the solver state after the last iteration.
        iterations: the (global) iteration numbers at which F was recorded, length J.
        objectives: ``(J, B)`` F at those iterates, in the problem's dtype, differentiable.
        penalties: ``(steps, B)`` the solver's own regulariser after every step (a learned
            solver's ``penalty(state) -> (B,)``, e.g. LQN's lambda ||p - 1||^2), or None for a
            solver without one.
    """

    state: Any
    iterations: list[int]
    objectives: Tensor
    penalties: Tensor | None = None


def detach_state(state: Any) -> Any:
    """A copy of a solver state with every tensor detached (dataclasses, tuples, lists and
    dicts are walked), which cuts the graph at a truncation boundary."""
    if isinstance(state, Tensor):
        return state.detach()
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        return dataclasses.replace(state, **{f.name: detach_state(getattr(state, f.name))
                                             for f in dataclasses.fields(state) if f.init})
    if isinstance(state, tuple):
        items = [detach_state(v) for v in state]
        return type(state)(*items) if hasattr(state, "_fields") else tuple(items)
    if isinstance(state, list):
        return [detach_state(v) for v in state]
    if isinstance(state, dict):
        return {k: detach_state(v) for k, v in state.items()}
    return state


def unroll(
    solver: Optimizer,
    problem: Instances,
    state: Any,
    steps: int,
    *,
    start: int = 0,
    record: Iterable[int] | None = None,
    checkpoint: bool = False,
) -> Unrolled:
    """Run ``steps`` iterations of ``solver`` on the batch ``problem`` from ``state``.

    Args:
        state: a state from ``solver.init`` that has done ``start`` iterations.
        steps: iterations to run (>= 0).
        start: iterations already done (only numbers the records).
        record: global iteration numbers in ``(start, start + steps]`` at which to
            evaluate F (default: all of them).
        checkpoint: wrap every step in ``torch.utils.checkpoint`` (non-reentrant): the
            backward pass recomputes a step's activations instead of keeping them, so
            the memory of a differentiable unroll is one state per step plus one step's
            activations. Ignored where autograd is off.
    """
    wanted = None if record is None else set(record)
    remat = checkpoint and torch.is_grad_enabled()
    if remat:
        problem.smoothness()  # fill lazy caches once, so a recomputed step does the same work
    penalty = getattr(solver, "penalty", None)
    its: list[int] = []
    objs: list[Tensor] = []
    pens: list[Tensor] = []
    for j in range(start + 1, start + steps + 1):
        if remat:
            state = _checkpoint(solver.step, problem, state, use_reentrant=False)
        else:
            state = solver.step(problem, state)
        if wanted is None or j in wanted:
            its.append(j)
            objs.append(problem.objective(state.x))
        if callable(penalty):
            pens.append(penalty(state))
    objectives = torch.stack(objs) if objs else torch.empty(0, problem.batch_size, dtype=problem.dtype,
                                                            device=problem.device)
    return Unrolled(state=state, iterations=its, objectives=objectives, penalties=torch.stack(pens) if pens else None)


@dataclasses.dataclass(frozen=True)
class MetaLoss:
    """The meta-loss of one segment of iterations (start, stop], reduced over the instances
    of the batch by ``reduction``: "mean"; "sum"; or "cvar", the mean of the largest
    ceil(``tail`` B) per-instance losses (the conditional value at risk at level ``tail``),
    which trains for the slowest instances: what a solver is judged on when the target
    is "every instance of the batch below a tolerance".

    With per-iteration values v_k (F(x_k), or log(relative gap + eps) for "log_gap") and
    weights w_k normalized over the segment (except for "sum"):

    * "last":     w = 1 at the segment's last iteration (full backprop: F(x_K));
    * "mean":     w_k = 1 (Math-L2O: the mean of F over the segment);
    * "sum":      w_k = 1 without the normalization (the sum of F over the segment: the
      sum of the sum-rates over the unrolled layers of the deep-unfolding baselines of
      Song et al., INFOCOM 2024; "mean" times the segment length);
    * "weighted": w_k proportional to k (later iterates count more);
    * "log_gap":  w_k = 1 on log((F(x_k) - F*) / d + eps), d the reference's gap
      denominator; its gradient is that of log(F - F*) up to eps, on a scale-free axis;
    * "one_step": F at the next iterate, with the state detached before every step
      (truncation to segments of one step, ``[training] segment = 1``): the one-step loss of
      Lin, Song, Xu (arXiv 2412.00059) for learned quasi-Newton step sizes. Per segment it is
      "last"; the config checks the segment length.

    A solver with its own regulariser (``penalty(state) -> (B,)``, e.g. LQN's lambda ||p - 1||^2)
    adds the mean of it over the segment's steps to every instance's loss.
    """

    kind: str = "mean"
    eps: float = 1e-8
    reduction: str = "mean"
    tail: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.kind!r}")
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {self.reduction!r}")
        if not (0 < self.tail <= 1):
            raise ValueError(
                f"tail must be in (0, 1] (the fraction of worst instances cvar averages), got {self.tail!r}"
            )

    @property
    def needs_reference(self) -> bool:
        return self.kind == "log_gap"

    def iterations(self, start: int, stop: int) -> list[int]:
        """Iterations of the segment (start, stop] whose F the loss reads."""
        return [stop] if self.kind in ("last", "one_step") else list(range(start + 1, stop + 1))

    def __call__(self, unrolled: Unrolled, reference: Reference | None = None) -> Tensor:
        """Scalar loss of a segment from ``unroll(..., record=self.iterations(start, stop))``."""
        F = unrolled.objectives
        if self.kind == "log_gap":
            if reference is None:
                raise ValueError("loss 'log_gap' needs the reference optimum of the batch")
            f_star = reference.objective.to(dtype=F.dtype, device=F.device)
            denom = reference.gap_denominator.to(dtype=F.dtype, device=F.device)
            values = torch.log(((F - f_star) / denom).clamp(min=0) + self.eps)
        else:
            values = F
        if self.kind == "weighted":
            w = torch.tensor(unrolled.iterations, dtype=F.dtype, device=F.device)
        else:
            w = torch.ones(len(unrolled.iterations), dtype=F.dtype, device=F.device)
        if self.kind != "sum":
            w = w / w.sum()
        per_instance = (w.unsqueeze(-1) * values).sum(0)
        if unrolled.penalties is not None and unrolled.penalties.numel():
            per_instance = per_instance + unrolled.penalties.to(per_instance.dtype).mean(0)
        if self.reduction == "sum":
            return per_instance.sum()
        if self.reduction == "cvar":
            worst = max(1, math.ceil(self.tail * per_instance.numel()))
            # the gradient flows through the selected instances only, as for a max
            return torch.topk(per_instance, worst).values.mean()
        return per_instance.mean()
