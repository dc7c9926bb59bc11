"""Gradient descent, strongly convex Nesterov and Polyak's heavy ball (smooth f).

References:
    Nesterov, *Lectures on Convex Optimization*, 2018: GD with step 1/L gives
    f(x_k) - f* <= L||x0 - x*||^2 / (2k); the constant-momentum scheme with
    beta = (sqrt(L) - sqrt(mu)) / (sqrt(L) + sqrt(mu)) converges as (1 - sqrt(mu/L))^k.
    Polyak, *Some methods of speeding up the convergence of iteration methods*, 1964.
    Ghadimi, Feyzmahdavian, Johansson, *Global convergence of the heavy-ball method
    for convex optimization*, ECC 2015 (beta in [0, 1), alpha in (0, 2(1 - beta)/L)).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from l2o.optimizers.base import Optimizer, step_size
from l2o.problems.base import Instances


@dataclasses.dataclass
class GDState:
    """x: ``(B, n)``."""

    x: Tensor


class GradientDescent(Optimizer):
    """x+ = x - (c / L) grad f(x), c = ``step_scale`` (the NeurIPS 2025 baseline uses 0.9999).

    Example (the protocol by hand: ``init``, then ``step``):
        >>> import torch, l2o
        >>> problem = l2o.QuadraticFamily(n=5, condition_number=10.0).sample(4, generator=0)
        >>> x_star = problem.closed_form()[0]
        >>> solver = l2o.optimizers.GradientDescent()
        >>> state = solver.init(problem, problem.initial_point())
        >>> for _ in range(300):
        ...     state = solver.step(problem, state)
        >>> bool(torch.allclose(state.x, x_star, atol=1e-10))
        True
    """

    name = "gd"
    handles_nonsmooth = False

    def __init__(self, step_scale: float = 1.0):
        if not 0 < step_scale < 2:
            raise ValueError(f"gd: step_scale must be in (0, 2), got {step_scale}")
        self.step_scale = step_scale

    def init(self, problem: Instances, x0: Tensor) -> GDState:
        self.check_problem(problem)
        return GDState(x=x0.clone())

    def step(self, problem: Instances, state: GDState) -> GDState:
        return GDState(x=state.x - step_size(problem, self.step_scale) * problem.grad(state.x))


@dataclasses.dataclass
class MomentumState:
    """x: ``(B, n)`` iterate; x_prev: ``(B, n)`` previous iterate."""

    x: Tensor
    x_prev: Tensor


def _modulus(problem: Instances, mu: float | None) -> Tensor:
    """``(B,)`` strong-convexity modulus: the given ``mu``, else the problem's."""
    return problem.strong_convexity() if mu is None else torch.full_like(problem.smoothness(), float(mu))


class NesterovStronglyConvex(Optimizer):
    """Accelerated gradient for mu-strongly convex f (constant momentum):

        y_k = x_k + beta (x_k - x_{k-1}),  x_{k+1} = prox_{r/L}(y_k - grad f(y_k) / L),
        beta = (sqrt(L) - sqrt(mu)) / (sqrt(L) + sqrt(mu)).

    ``mu`` defaults to the problem's ``strong_convexity()``.

    Example:
        >>> import torch, l2o
        >>> problem = l2o.QuadraticFamily(n=5, condition_number=10.0).sample(4, generator=0)
        >>> x_star = problem.closed_form()[0]
        >>> result = l2o.solve(l2o.optimizers.NesterovStronglyConvex(), problem, tol=1e-10)
        >>> bool(result.converged.all()), bool(torch.allclose(result.x, x_star, atol=1e-8))
        (True, True)
    """

    name = "nesterov_sc"

    def __init__(self, mu: float | None = None):
        self.mu = mu

    def check_problem(self, problem: Instances) -> None:
        super().check_problem(problem)
        if not bool((_modulus(problem, self.mu) > 0).all()):
            raise ValueError(
                f"{self.name} needs a strongly convex problem (mu > 0), but mu = 0 for some instances; "
                f"pass mu=... explicitly or use 'nesterov' / 'fista'"
            )

    def init(self, problem: Instances, x0: Tensor) -> MomentumState:
        self.check_problem(problem)
        return MomentumState(x=x0.clone(), x_prev=x0.clone())

    def step(self, problem: Instances, state: MomentumState) -> MomentumState:
        L = problem.smoothness()
        mu = _modulus(problem, self.mu)  # validated once, in init
        beta = ((L.sqrt() - mu.sqrt()) / (L.sqrt() + mu.sqrt())).unsqueeze(-1)
        y = state.x + beta * (state.x - state.x_prev)
        t = step_size(problem)
        return MomentumState(x=problem.prox(y - t * problem.grad(y), t), x_prev=state.x)


class HeavyBall(Optimizer):
    """Polyak's heavy ball x+ = x - alpha grad f(x) + beta (x - x_prev).

    Defaults: on quadratics with mu > 0, Polyak's optimal alpha = 4/(sqrt(L)+sqrt(mu))^2,
    beta = ((sqrt(L)-sqrt(mu))/(sqrt(L)+sqrt(mu)))^2 (fast, but not globally convergent
    beyond quadratics, Lessard et al. 2016); otherwise beta = ``momentum`` (0.5) and
    alpha = (1 - beta)/L, inside the Ghadimi et al. (2015) convergence region.

    Example:
        >>> import torch, l2o
        >>> problem = l2o.QuadraticFamily(n=5, condition_number=10.0).sample(4, generator=0)
        >>> x_star = problem.closed_form()[0]
        >>> result = l2o.solve(l2o.optimizers.HeavyBall(), problem, tol=1e-10)
        >>> bool(result.converged.all()), bool(torch.allclose(result.x, x_star, atol=1e-8))
        (True, True)
    """

    name = "heavy_ball"
    handles_nonsmooth = False

    def __init__(self, momentum: float = 0.5, mu: float | None = None):
        if not 0 <= momentum < 1:
            raise ValueError(f"heavy_ball: momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.mu = mu

    def _coefficients(self, problem: Instances) -> tuple[Tensor, Tensor]:
        L = problem.smoothness()
        mu = _modulus(problem, self.mu)
        beta = torch.full_like(L, self.momentum)
        alpha = (1.0 - beta) / L
        if getattr(problem, "is_quadratic", False):
            # Polyak's parameters per instance where mu > 0 (never a batch-wide decision:
            # an instance's iterates must not depend on the other instances of the batch)
            polyak = mu > 0
            sl, sm = L.sqrt(), mu.clamp(min=0).sqrt()
            alpha = torch.where(polyak, 4.0 / (sl + sm) ** 2, alpha)
            beta = torch.where(polyak, ((sl - sm) / (sl + sm)) ** 2, beta)
        return alpha, beta

    def init(self, problem: Instances, x0: Tensor) -> MomentumState:
        self.check_problem(problem)
        return MomentumState(x=x0.clone(), x_prev=x0.clone())

    def step(self, problem: Instances, state: MomentumState) -> MomentumState:
        alpha, beta = self._coefficients(problem)
        x = state.x - alpha.unsqueeze(-1) * problem.grad(state.x) + beta.unsqueeze(-1) * (state.x - state.x_prev)
        return MomentumState(x=x, x_prev=state.x)
