"""The learner's update rule: meta-optimizer, learning-rate schedule, gradient clipping
and the NaN/Inf guard.

``Learner.step`` consumes the estimates of one batch (``l2o.training.estimators``) and
applies them to the solver's parameters; a step whose loss, gradient or updated weights
are not finite is undone, weights and meta-optimizer state both, so one bad batch
cannot corrupt a run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from l2o.training.checkpoint import clone_optimizer_state
from l2o.training.config import TrainingConfig
from l2o.training.estimators import Estimate, all_finite, trainable

# ----- schedule and meta-optimizer -------------------------------------------------------------------


def lr_at(cfg: TrainingConfig, step: int) -> float:
    """Learning rate of meta-step ``step`` (0-based); a pure function, so a resumed run
    needs no scheduler state."""
    if cfg.schedule == "step":
        return cfg.lr * cfg.decay ** (step // cfg.decay_every)
    if cfg.schedule == "cosine":
        return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
    return cfg.lr


def make_meta_optimizer(cfg: TrainingConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if not params:
        raise ValueError("the solver has no trainable parameters")
    if cfg.meta_optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum)
    if cfg.meta_optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr)


@dataclasses.dataclass
class StepOutcome:
    """What one meta-step did: mean loss over its estimates, gradient norm (before
    clipping, the largest over its estimates), whether it was rejected and why."""

    loss: float
    grad_norm: float
    rejected: bool
    reason: str = ""


class Learner:
    """Applies estimates to a solver's parameters: meta-optimizer, gradient-norm
    clipping, and a guard against non-finite values.

    A step is rejected when a loss or gradient entry is NaN/Inf, or when an update
    leaves a parameter non-finite: the weights and the meta-optimizer state are then
    restored to their values at the start of the step (the last good state), so one
    bad batch cannot corrupt a run.
    """

    def __init__(self, solver: nn.Module, optimizer: torch.optim.Optimizer, grad_clip: float = 0.0):
        self.solver = solver
        self.optimizer = optimizer
        self.grad_clip = grad_clip
        self.params = trainable(solver)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self, estimates: Iterator[Estimate]) -> StepOutcome:
        weights = {k: v.clone() for k, v in self.solver.state_dict().items()}
        opt_state = clone_optimizer_state(self.optimizer)
        losses, norms = [], []
        try:
            for est in estimates:
                losses.append(float(est.loss))
                if not all_finite(est):
                    what = "loss" if not math.isfinite(losses[-1]) else "meta-gradient"
                    return self._reject(weights, opt_state, losses, norms, f"non-finite {what}")
                for p, g in zip(self.params, est.grads):
                    p.grad = None if g is None else g.to(p.dtype)
                max_norm = self.grad_clip if self.grad_clip > 0 else math.inf
                norms.append(float(torch.nn.utils.clip_grad_norm_(self.params, max_norm)))
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                if not all(bool(torch.isfinite(p).all()) for p in self.params):
                    return self._reject(weights, opt_state, losses, norms, "non-finite weights after the update")
        finally:
            if hasattr(estimates, "close"):
                estimates.close()
        return StepOutcome(loss=float(np.mean(losses)) if losses else math.nan,
                           grad_norm=max(norms) if norms else math.nan, rejected=False)

    def _reject(self, weights, opt_state, losses, norms, reason: str) -> StepOutcome:
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for k, v in self.solver.state_dict().items():
                v.copy_(weights[k])
        self.optimizer.load_state_dict(opt_state)
        return StepOutcome(loss=float(np.mean(losses)) if losses else math.nan,
                           grad_norm=max(norms) if norms else math.nan, rejected=True, reason=reason)
