"""LGD: learned gradient descent with provable training convergence.

Song, Lin, Xu, *Learning Provably Improves the Convergence of Gradient Descent*,
NeurIPS 2025 (arXiv 2501.18092). Per coordinate i, a 3-layer bias-free MLP reads
(grad_i, x_i) (detached) and outputs a step multiplier P_i = 2 sigma(out_i):

    x_{k+1} = x_k - (c / L) P * grad f(x_k),   c = 0.9999.

Deterministic initialization (the NTK regime of the paper's proof): the hidden
layers are orthogonal times an expansion factor ``expansion``, the last layer is
zero, so out = 0, P = 1 and the untrained model is exactly gradient descent with
step c / L.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from l2o.learned.base import LearnedOptimizer, per_coordinate
from l2o.problems.base import Instances


@dataclasses.dataclass
class LGDState:
    """x: ``(B, n)`` iterate; k: iterations done."""

    x: Tensor
    k: int = 0


class LGD(LearnedOptimizer):
    """Learned gradient descent (smooth problems).

    Args:
        hidden: width H of the second hidden layer (the paper: 1024 for (32, 25),
            5120 for (512, 400)).
        expansion: factor e of the orthogonal initialization (paper: ~100 for
            (32, 25), 2000-5000 for (512, 400)).
        step_scale: c in x+ = x - (c/L) P grad (0.9999).
        horizon: trained unroll length T (100 in the paper).

    Example (untrained, LGD is gradient descent with step 0.9999 / L, exactly):
        >>> import torch, l2o
        >>> problem = l2o.LeastSquaresFamily(d=8, m=6).sample(4, generator=0)
        >>> def iterate(solver, k):
        ...     state = solver.init(problem, problem.initial_point())
        ...     for _ in range(k):
        ...         state = solver.step(problem, state)
        ...     return state.x
        >>> lgd = l2o.learned.LGD(hidden=32).double()
        >>> torch.equal(iterate(lgd, 20), iterate(l2o.optimizers.GradientDescent(step_scale=0.9999), 20))
        True
    """

    name = "lgd"
    template = "gd"
    handles_nonsmooth = False

    def __init__(self, hidden: int = 1024, expansion: float = 100.0, step_scale: float = 0.9999, horizon: int = 100):
        super().__init__(horizon=horizon, hidden=hidden, expansion=expansion, step_scale=step_scale)
        self.step_scale = step_scale
        self.net = nn.Sequential(
            nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, hidden, bias=False), nn.ReLU(),
            nn.Linear(hidden, 1, bias=False),
        )
        self.reset_parameters(expansion)

    @torch.no_grad()
    def reset_parameters(self, expansion: float) -> None:
        """The paper's deterministic initialization: orthogonal * e, last layer 0."""
        gen = torch.Generator().manual_seed(0)
        for layer in (self.net[0], self.net[2]):
            w = torch.empty_like(layer.weight)
            nn.init.orthogonal_(w, generator=gen)
            layer.weight.copy_(expansion * w)
        self.net[4].weight.zero_()

    def multiplier(self, x: Tensor, grad: Tensor) -> Tensor:
        """P = 2 sigma(net(grad_i, x_i)): ``(B, n)`` in (0, 2), in the network's dtype."""
        feats = per_coordinate([self.to_net(grad.detach()), self.to_net(x.detach())])
        return 2 * torch.sigmoid(self.net(feats)).reshape(x.shape)

    def init(self, problem: Instances, x0: Tensor) -> LGDState:
        self.check_problem(problem)
        return LGDState(x=x0.clone(), k=0)

    def step(self, problem: Instances, state: LGDState) -> LGDState:
        g = problem.grad(state.x)
        P = self.multiplier(state.x, g).to(state.x.dtype)
        step = (self.step_scale / problem.smoothness()).unsqueeze(-1)
        return LGDState(x=state.x - step * P * g, k=state.k + 1)
