"""Black-box coordinatewise LSTM optimizers: L2O-DM and RNNprop.

* L2O-DM (Andrychowicz, Denil, Gomez, Hoffman, Pfau, Schaul, Shillingford, de Freitas,
  *Learning to learn by gradient descent by gradient descent*, NeurIPS 2016): a
  2-layer LSTM (20 units) shared by all coordinates reads the preprocessed gradient

      (clamp(log|g| / p, -1, 1), clamp(e^p g, -1, 1)),   p = 10 ("log and sign"),

  and a linear layer gives the update: x+ = x + s * out, s = 0.01.
* RNNprop (Lv, Jiang, Li, *Learning Gradient Descent: Better Generalization and Longer
  Horizons*, ICML 2017): the inputs are Adam-normalized, g / sqrt(v_hat) and
  m_hat / sqrt(v_hat) (beta1 = beta2 = 0.95, eps = 1e-8 added to sqrt(v_hat), as in
  the MS4L2O code), mapped by Linear(2, 20) + ELU into a 2-layer LSTM (20 units), then
  Linear(20, 1): x+ = x - alpha tanh(out), alpha = 0.1.

Composite problems F = f + r (our choice; the papers treat smooth problems only):
as the MS4L2O baselines of Liu et al. (ICML 2023) do, the network reads a subgradient
of F and the update is applied without a prox; we take the minimum-norm element of
dF(x) = grad f(x) + [c, d] (``problem.subdifferential_bounds``),

    g = clamp(0, grad f + c, grad f + d)   (per coordinate),

which is grad f for smooth problems, grad f + lam sign(x_i) where x_i != 0 for L1,
soft-thresholding of grad f_i by lam where x_i = 0, and 0 exactly at a minimizer.
For a box (``problem.is_constrained``) the update is followed by the projection, so
iterates stay feasible. Iterates on L1 problems are therefore not exactly sparse.
(A prox after the step was tried and rejected: from x0 = 0 on LASSO an untrained
network's update of size s |out| < s lam is thresholded to zero, the iterate never
moves and the meta-gradient is exactly zero, so training cannot start.)

The LSTM state starts at zero; the initial weights are PyTorch's defaults drawn from
``seed``.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor, nn

from l2o.learned.base import LearnedOptimizer, seeded_default_init
from l2o.learned.coordinatewise import CoordinatewiseLSTM
from l2o.problems.base import Instances


def min_norm_subgradient(problem: Instances, x: Tensor) -> Tensor:
    """The minimum-norm element of dF(x) = grad f(x) + [c, d], per coordinate: ``(B, n)``."""
    g = problem.grad(x)
    if not problem.has_nonsmooth:
        return g
    lower, upper = problem.subdifferential_bounds(x)
    return torch.clamp(torch.zeros_like(g), min=g + lower, max=g + upper)


def _apply(problem: Instances, v: Tensor) -> Tensor:
    """Project onto the box of a constrained problem; identity otherwise."""
    return problem.prox(v, v.new_ones(v.shape[0])) if problem.is_constrained else v


@dataclasses.dataclass
class LSTMState:
    """x: ``(B, n)`` iterate; h, c: ``(B, layers, hidden, n)`` LSTM states; k: iterations done."""

    x: Tensor
    h: Tensor
    c: Tensor
    k: int = 0


class L2ODM(LearnedOptimizer):
    """L2O-DM (Andrychowicz et al. 2016); see the module docstring.

    Args:
        hidden: LSTM width (20); layers: LSTM depth (2).
        preprocess: p of the log/sign preprocessing (10; the paper also uses 5).
        output_scale: s in x+ = x + s * out (0.01).
        seed: seed of the initial weights.
        horizon: trained unroll length (100).

    Example (an untrained model: the meta-gradient reaches every weight):
        >>> import torch, l2o
        >>> problem = l2o.LassoFamily(m=20, n=40, nnz=3).sample(8, generator=0, dtype=torch.float32)
        >>> solver = l2o.learned.L2ODM(horizon=5)
        >>> state = solver.init(problem, problem.initial_point())
        >>> for _ in range(5):
        ...     state = solver.step(problem, state)
        >>> tuple(state.x.shape), state.x.dtype  # iterates follow the problem
        ((8, 40), torch.float32)
        >>> problem.objective(state.x).mean().backward()  # meta-loss F(x_5), backpropagated through 5 steps
        >>> all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in solver.parameters())
        True
    """

    name = "l2o_dm"

    def __init__(self, hidden: int = 20, layers: int = 2, preprocess: float = 10.0, output_scale: float = 0.01,
                 seed: int = 0, horizon: int = 100):
        super().__init__(horizon=horizon, hidden=hidden, layers=layers, preprocess=preprocess,
                         output_scale=output_scale, seed=seed)
        self.preprocess = preprocess
        self.output_scale = output_scale
        self.lstm = CoordinatewiseLSTM(2, hidden, layers)
        self.out = nn.Linear(hidden, 1)
        seeded_default_init(self, seed)

    def features(self, g: Tensor) -> list[Tensor]:
        """The log/sign preprocessing of the gradient: two ``(B, n)`` tensors, in the network dtype."""
        g = self.to_net(g.detach())
        p = self.preprocess
        log_part = torch.clamp(torch.log(g.abs()) / p, -1.0, 1.0)
        return [log_part, torch.clamp(g * math.exp(p), -1.0, 1.0)]

    def init(self, problem: Instances, x0: Tensor) -> LSTMState:
        self.check_problem(problem)
        h, c = self.lstm.initial_state(x0.shape[0], x0.shape[1])
        return LSTMState(x=x0.clone(), h=h, c=c, k=0)

    def step(self, problem: Instances, state: LSTMState) -> LSTMState:
        out, h, c = self.lstm(self.features(min_norm_subgradient(problem, state.x)), state.h, state.c, heads=[self.out])
        update = self.output_scale * out[:, 0].to(state.x)
        return LSTMState(x=_apply(problem, state.x + update), h=h, c=c, k=state.k + 1)


@dataclasses.dataclass
class RNNpropState:
    """x: ``(B, n)`` iterate; m, v: ``(B, n)`` Adam moments of the gradient (problem
    dtype); h, c: ``(B, layers, hidden, n)`` LSTM states; k: iterations done."""

    x: Tensor
    m: Tensor
    v: Tensor
    h: Tensor
    c: Tensor
    k: int = 0


class RNNprop(LearnedOptimizer):
    """RNNprop (Lv, Jiang, Li 2017); see the module docstring.

    Args:
        hidden: width of the input layer and the LSTM (20); layers: LSTM depth (2).
        alpha: step scale in x+ = x - alpha tanh(out) (0.1).
        beta1, beta2: moment decay rates (0.95, 0.95); eps: added to sqrt(v_hat) (1e-8).
        seed: seed of the initial weights.
        horizon: trained unroll length (100).

    Example (an untrained model: the meta-gradient reaches every weight):
        >>> import torch, l2o
        >>> problem = l2o.LassoFamily(m=20, n=40, nnz=3).sample(8, generator=0, dtype=torch.float32)
        >>> solver = l2o.learned.RNNprop(horizon=5)
        >>> state = solver.init(problem, problem.initial_point())
        >>> for _ in range(5):
        ...     state = solver.step(problem, state)
        >>> tuple(state.x.shape), state.x.dtype  # iterates follow the problem
        ((8, 40), torch.float32)
        >>> problem.objective(state.x).mean().backward()  # meta-loss F(x_5), backpropagated through 5 steps
        >>> all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in solver.parameters())
        True
    """

    name = "rnnprop"

    def __init__(self, hidden: int = 20, layers: int = 2, alpha: float = 0.1, beta1: float = 0.95, beta2: float = 0.95,
                 eps: float = 1e-8, seed: int = 0, horizon: int = 100):
        super().__init__(horizon=horizon, hidden=hidden, layers=layers, alpha=alpha, beta1=beta1, beta2=beta2,
                         eps=eps, seed=seed)
        self.alpha, self.beta1, self.beta2, self.eps = alpha, beta1, beta2, eps
        self.inp = nn.Linear(2, hidden)
        self.lstm = CoordinatewiseLSTM(hidden, hidden, layers)
        self.out = nn.Linear(hidden, 1)
        seeded_default_init(self, seed)

    def init(self, problem: Instances, x0: Tensor) -> RNNpropState:
        self.check_problem(problem)
        h, c = self.lstm.initial_state(x0.shape[0], x0.shape[1])
        return RNNpropState(x=x0.clone(), m=torch.zeros_like(x0), v=torch.zeros_like(x0), h=h, c=c, k=0)

    def step(self, problem: Instances, state: RNNpropState) -> RNNpropState:
        g = min_norm_subgradient(problem, state.x).detach()
        k = state.k + 1
        m = self.beta1 * state.m + (1 - self.beta1) * g
        v = self.beta2 * state.v + (1 - self.beta2) * g * g
        root = torch.sqrt(v / (1 - self.beta2**k)) + self.eps
        feats = [g / root, m / (1 - self.beta1**k) / root]  # cast to the network dtype by the LSTM
        out, h, c = self.lstm(feats, state.h, state.c, heads=[self.out], input_layer=self.inp)
        update = self.alpha * torch.tanh(out[:, 0]).to(state.x)
        return RNNpropState(x=_apply(problem, state.x - update), m=m, v=v, h=h, c=c, k=k)
