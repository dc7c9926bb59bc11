"""Adam (Kingma and Ba, ICLR 2015), proximal for composite problems.

    m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2,
    D = lr / (sqrt(v / (1 - b2^k)) + eps),
    x+ = prox^D_r(x - D * m / (1 - b1^k)),

where prox^D is the prox in the diagonal metric D (soft-thresholding with
per-coordinate thresholds lam * D for L1, projection for a box). With r = 0 this
is plain Adam. Adam has no step size derived from L: ``lr`` is in units of x.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from l2o.optimizers.base import Optimizer
from l2o.problems.base import Instances


@dataclasses.dataclass
class AdamState:
    """x, m, v: ``(B, n)``; k: ``(B,)`` step count (for bias correction)."""

    x: Tensor
    m: Tensor
    v: Tensor
    k: Tensor


class Adam(Optimizer):
    """Adam with a proximal step for composite problems (the module docstring has the update).

    Args:
        lr: the step in units of x (1e-2); betas: (b1, b2); eps: added to sqrt(v).

    Example:
        >>> import torch, l2o
        >>> problem = l2o.LassoFamily(m=20, n=40, nnz=3, lam=0.1).sample(8, generator=0)
        >>> ref = l2o.reference(problem)
        >>> result = l2o.solve(l2o.optimizers.Adam(), problem, tol=1e-6, max_iter=3000)
        >>> bool(result.converged.all()), bool(ref.relative_gap(result.objective).max() <= 1e-6)
        (True, True)
    """

    name = "adam"

    def __init__(self, lr: float = 1e-2, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        if lr <= 0:
            raise ValueError(f"adam: lr must be > 0, got {lr}")
        self.lr = lr
        self.betas = tuple(betas)
        self.eps = eps

    def init(self, problem: Instances, x0: Tensor) -> AdamState:
        self.check_problem(problem)
        z = torch.zeros_like(x0)
        return AdamState(x=x0.clone(), m=z, v=z.clone(), k=torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device))

    def step(self, problem: Instances, state: AdamState) -> AdamState:
        b1, b2 = self.betas
        g = problem.grad(state.x)
        k = state.k + 1
        m = b1 * state.m + (1 - b1) * g
        v = b2 * state.v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** k).unsqueeze(-1)
        v_hat = v / (1 - b2 ** k).unsqueeze(-1)
        D = self.lr / (v_hat.sqrt() + self.eps)
        x = problem.prox(state.x - D * m_hat, D)
        return AdamState(x=x, m=m, v=v, k=k)
