"""Batched backtracking (Armijo) line search.

Each instance of the batch finds its own step t in {t0, t0/2, t0/4, ...} with
f(x + t d) <= f(x) + c1 t grad f(x)^T d (Nocedal and Wright, *Numerical
Optimization*, Alg. 3.1). All instances are evaluated together at every trial,
so the cost of a trial is one batched function-and-gradient evaluation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from l2o.optimizers.base import batch_dot
from l2o.problems.base import Instances


def armijo(
    problem: Instances,
    x: Tensor,
    f: Tensor,
    g: Tensor,
    d: Tensor,
    t0: Tensor | float = 1.0,
    c1: float = 1e-4,
    max_trials: int = 40,
) -> tuple[Tensor, Tensor, Tensor]:
    """Backtrack along the descent directions ``d`` (``(B, n)``).

    Returns ``(x_new, f_new, g_new)``. An instance that finds no acceptable step
    in ``max_trials`` halvings (possible only in floating-point noise at the
    optimum) keeps ``x``.
    """
    slope = batch_dot(g, d)
    t = torch.as_tensor(t0, dtype=x.dtype, device=x.device).expand(x.shape[0]).clone()
    x_new, f_new, g_new = x.clone(), f.clone(), g.clone()
    pending = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    for _ in range(max_trials):
        trial = x + t.unsqueeze(-1) * d
        f_trial, g_trial = problem.value_and_grad(trial)
        ok = pending & torch.isfinite(f_trial) & (f_trial <= f + c1 * t * slope)
        x_new = torch.where(ok.unsqueeze(-1), trial, x_new)
        f_new = torch.where(ok, f_trial, f_new)
        g_new = torch.where(ok.unsqueeze(-1), g_trial, g_new)
        pending = pending & ~ok
        if not bool(pending.any()):
            break
        t = torch.where(pending, 0.5 * t, t)
    return x_new, f_new, g_new
