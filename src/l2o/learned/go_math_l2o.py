"""GO-Math-L2O: gradient-only features for robust learning to optimize.

Song, Lin, Wang, Xu, *Towards Robust Learning to Optimize with Theoretical Guarantees*,
CVPR 2024 (extended: arXiv 2506.14263; code: github.com/NetX-lab/GoMathL2O-Official).
The model never sees x itself, only gradient information, per coordinate:

    features = (grad f(x_k) / ||grad f(x_0)||,  c_k / ||c_0||,  d_k / ||d_0||),

where [c_k, d_k] is the subdifferential interval of r at x_k (for lam ||x||_1: both
lam sign(x_i) if x_i != 0, else -lam and lam) and the norms are per instance, taken
at the starting point k = 0 (as in the authors' code). A 2-layer LSTM (hidden 20),
Linear(20, 20) + ReLU and three heads give

    R = 2 c sigma / L,  Q = 2 sigma,  B = sigma      (each (B, n)),
    z_k = x_k - R * grad f(x_k) - Q * v_k,   x_{k+1} = prox_{R r}(z_k),
    m_k = x_k - x_{k+1},   v_{k+1} = B * v_k + (1 - B) * m_k,   v_0 = 0,

with c = ``step_scale`` (1 in the paper's formula; the code uses 0.9999).

Choices where the paper leaves one:
* A zero normalizer (grad f(x_0) = 0, or r = 0 so that c = d = 0) is replaced by 1,
  so the feature is the raw (zero or tiny) value instead of 0/0.
* Infinite interval ends (r the indicator of a box, at an active bound) are left
  out of the normalizers and fed to the network as -1 / +1.
* Features are detached (as in Math-L2O and LGD; the authors' code does not detach).
* The LSTM state starts at zero (the code draws it at random); weights are Xavier
  uniform with zero biases, as in the code, drawn from ``seed``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from l2o.learned.base import LearnedOptimizer
from l2o.learned.coordinatewise import CoordinatewiseLSTM
from l2o.problems.base import Instances


def _scale(v: Tensor) -> Tensor:
    """``(B, n) -> (B,)`` 2-norm over the finite entries, 1 where that norm is 0."""
    norm = torch.linalg.vector_norm(torch.where(torch.isfinite(v), v, torch.zeros_like(v)), dim=-1)
    return torch.where(norm > 0, norm, torch.ones_like(norm))


@dataclasses.dataclass
class GOMathL2OState:
    """x: ``(B, n)`` iterate; v: ``(B, n)`` recurrent direction; h, c: ``(B, layers,
    hidden, n)`` LSTM states; grad_scale, lower_scale, upper_scale: ``(B,)`` normalizers
    ||grad f(x_0)||, ||c_0||, ||d_0||; k: iterations done."""

    x: Tensor
    v: Tensor
    h: Tensor
    c: Tensor
    grad_scale: Tensor
    lower_scale: Tensor
    upper_scale: Tensor
    k: int = 0


class GOMathL2O(LearnedOptimizer):
    """GO-Math-L2O (Song et al., CVPR 2024); see the module docstring.

    Args:
        hidden: LSTM width (20); layers: LSTM depth (2).
        step_scale: c in R = 2 c sigma / L (1.0).
        seed: seed of the initial weights.
        horizon: trained unroll length (100 in the paper).

    Example (an untrained model: the meta-gradient reaches every weight):
        >>> import torch, l2o
        >>> problem = l2o.LassoFamily(m=20, n=40, nnz=3).sample(8, generator=0, dtype=torch.float32)
        >>> solver = l2o.learned.GOMathL2O(horizon=5)
        >>> state = solver.init(problem, problem.initial_point())
        >>> for _ in range(5):
        ...     state = solver.step(problem, state)
        >>> tuple(state.x.shape), state.x.dtype  # iterates follow the problem
        ((8, 40), torch.float32)
        >>> problem.objective(state.x).mean().backward()  # meta-loss F(x_5), backpropagated through 5 steps
        >>> all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in solver.parameters())
        True
    """

    name = "go_math_l2o"

    def __init__(self, hidden: int = 20, layers: int = 2, step_scale: float = 1.0, seed: int = 0, horizon: int = 100):
        super().__init__(horizon=horizon, hidden=hidden, layers=layers, step_scale=step_scale, seed=seed)
        self.step_scale = step_scale
        self.lstm = CoordinatewiseLSTM(3, hidden, layers)
        self.linear = nn.Linear(hidden, hidden)
        self.heads = nn.ModuleDict({h: nn.Linear(hidden, 1) for h in ("R", "Q", "B")})
        self.reset_parameters(seed)

    @torch.no_grad()
    def reset_parameters(self, seed: int = 0) -> None:
        """Xavier-uniform weights and zero biases (the authors' initialization)."""
        gen = torch.Generator().manual_seed(seed)
        for name, p in self.named_parameters():
            if "weight" in name:
                w = torch.empty(p.shape, dtype=torch.float64)
                p.copy_(nn.init.xavier_uniform_(w, generator=gen))
            else:
                p.zero_()

    def features(self, state: GOMathL2OState, grad: Tensor, lower: Tensor, upper: Tensor) -> list[Tensor]:
        """The normalized (grad, c, d), each ``(B, n)``, detached (problem dtype; the LSTM casts)."""
        scales = (state.grad_scale, state.lower_scale, state.upper_scale)
        return [torch.nan_to_num(v.detach() / s.unsqueeze(-1), nan=0.0, posinf=1.0, neginf=-1.0)
                for v, s in zip((grad, lower, upper), scales, strict=True)]

    def init(self, problem: Instances, x0: Tensor) -> GOMathL2OState:
        self.check_problem(problem)
        lower, upper = problem.subdifferential_bounds(x0)
        h, c = self.lstm.initial_state(x0.shape[0], x0.shape[1])
        return GOMathL2OState(
            x=x0.clone(), v=torch.zeros_like(x0), h=h, c=c, grad_scale=_scale(problem.grad(x0).detach()),
            lower_scale=_scale(lower.detach()), upper_scale=_scale(upper.detach()), k=0,
        )

    def step(self, problem: Instances, state: GOMathL2OState) -> GOMathL2OState:
        x = state.x
        g = problem.grad(x)
        lower, upper = problem.subdifferential_bounds(x)
        out, h, c = self.lstm(self.features(state, g, lower, upper), state.h, state.c,
                              heads=list(self.heads.values()), hidden_layer=self.linear)
        raw = {name: out[:, j].to(x) for j, name in enumerate(self.heads)}
        R = (2 * self.step_scale / problem.smoothness()).unsqueeze(-1) * torch.sigmoid(raw["R"])
        Q = 2 * torch.sigmoid(raw["Q"])
        Bm = torch.sigmoid(raw["B"])
        x_new = problem.prox(x - R * g - Q * state.v, R)
        v_new = Bm * state.v + (1 - Bm) * (x - x_new)
        return dataclasses.replace(state, x=x_new, v=v_new, h=h, c=c, k=state.k + 1)
