"""Proximal gradient methods: ISTA / projected gradient and FISTA / accelerated
projected gradient, with optional adaptive restart.

References:
    Beck, Teboulle, *A fast iterative shrinkage-thresholding algorithm for linear
    inverse problems*, SIAM J. Imaging Sci. 2009 (ISTA: F(x_k) - F* <= L||x0 - x*||^2/(2k);
    FISTA: F(x_k) - F* <= 2L||x0 - x*||^2/(k+1)^2).
    O'Donoghue, Candes, *Adaptive restart for accelerated gradient schemes*, FoCM 2015
    (gradient restart: reset momentum when (y_k - x_{k+1})^T (x_{k+1} - x_k) > 0).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from l2o.optimizers.base import Optimizer, batch_dot
from l2o.problems.base import Instances


@dataclasses.dataclass
class ProxGradState:
    """x: ``(B, n)`` iterate."""

    x: Tensor


class ISTA(Optimizer):
    """Proximal gradient descent x+ = prox_{(c/L) r}(x - (c/L) grad f(x)).

    With r = 0 this is gradient descent; with r the indicator of a box it is
    projected gradient. ``step_scale`` c in (0, 2) (default 1).

    Example (LASSO, against a certified reference):
        >>> import torch, l2o
        >>> problem = l2o.LassoFamily(m=20, n=40, nnz=3, lam=0.1).sample(8, generator=0)
        >>> ref = l2o.reference(problem)
        >>> result = l2o.solve(l2o.optimizers.ISTA(), problem, tol=1e-8)
        >>> bool(result.converged.all()), bool(ref.relative_gap(result.objective).max() <= 1e-8)
        (True, True)
    """

    name = "ista"

    def __init__(self, step_scale: float = 1.0):
        if not 0 < step_scale < 2:
            raise ValueError(f"{self.name}: step_scale must be in (0, 2), got {step_scale}")
        self.step_scale = step_scale

    def init(self, problem: Instances, x0: Tensor) -> ProxGradState:
        self.check_problem(problem)
        return ProxGradState(x=x0.clone())

    def step(self, problem: Instances, state: ProxGradState) -> ProxGradState:
        return ProxGradState(x=problem.prox_grad(state.x, self.step_scale))


class ProjectedGradient(ISTA):
    """Projected gradient for box-constrained problems (ISTA with a projection as prox).

    Example:
        >>> import torch, l2o
        >>> problem = l2o.QuadraticFamily(n=5, condition_number=10.0, box=0.1).sample(4, generator=0)
        >>> result = l2o.solve(l2o.optimizers.ProjectedGradient(), problem, tol=1e-10)
        >>> bool(result.converged.all()), bool((result.x.abs() <= 0.1).all())  # KKT residual <= tol, feasible
        (True, True)
    """

    name = "pgd"


@dataclasses.dataclass
class FISTAState:
    """x: ``(B, n)`` last prox-gradient point; y: ``(B, n)`` extrapolated point;
    t: ``(B,)`` momentum sequence; restarts: ``(B,)`` number of restarts so far;
    k: iterations done (shared by the batch); pattern: ``(B, n)`` int8 active pattern
    (``problem.active_pattern``) at the last polish check (``(B, 0)`` when polishing is off)."""

    x: Tensor
    y: Tensor
    t: Tensor
    restarts: Tensor
    k: int = 0
    pattern: Tensor | None = None


class FISTA(Optimizer):
    """FISTA (Beck and Teboulle 2009), with O'Donoghue-Candes gradient restart if ``restart``.

        x_{k+1} = prox_{r/L}(y_k - grad f(y_k) / L)
        t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2
        y_{k+1} = x_{k+1} + (t_k - 1) / t_{k+1} (x_{k+1} - x_k)

    Restart (per instance): when (y_k - x_{k+1})^T (x_{k+1} - x_k) > 0, set t = 1, y = x.

    Polishing (``polish_every = p > 0``): every p iterations, ``problem.polish`` solves
    the optimality conditions on the current active set (LASSO support, box-QP active
    bounds) and returns a point only where it verifies them, as OSQP polishes its
    ADMM iterates. An accepted instance jumps to its minimizer (a fixed point of the
    iteration); a rejected one is untouched, so the convergence guarantee is FISTA's.

    Example (with ``l2o.run``: the trajectory of the relative gap):
        >>> import torch, l2o
        >>> problem = l2o.LassoFamily(m=20, n=40, nnz=3, lam=0.1).sample(8, generator=0)
        >>> ref = l2o.reference(problem)
        >>> traj = l2o.run(l2o.optimizers.FISTA(), problem, max_iter=100, reference=ref)
        >>> tuple(traj.gap.shape)  # (T, B): iterations 0..100 of 8 instances
        (101, 8)
        >>> bool((traj.iterations_to(1e-6) > 0).all())  # every instance below 1e-6 within 100 iterations
        True
    """

    name = "fista"

    def __init__(self, restart: bool = False, step_scale: float = 1.0, polish_every: int = 0):
        if not 0 < step_scale <= 1:
            raise ValueError(f"{self.name}: step_scale must be in (0, 1], got {step_scale}")
        if polish_every < 0:
            raise ValueError(f"{self.name}: polish_every must be >= 0 (0 = never), got {polish_every}")
        self.restart = restart
        self.step_scale = step_scale
        self.polish_every = polish_every

    def init(self, problem: Instances, x0: Tensor) -> FISTAState:
        self.check_problem(problem)
        ones = torch.ones(x0.shape[0], dtype=x0.dtype, device=x0.device)
        pattern = torch.zeros(x0.shape[0], x0.shape[1] if self.polish_every else 0, dtype=torch.int8, device=x0.device)
        return FISTAState(x=x0.clone(), y=x0.clone(), t=ones, restarts=torch.zeros_like(ones), k=0, pattern=pattern)

    def step(self, problem: Instances, state: FISTAState) -> FISTAState:
        x_new = problem.prox_grad(state.y, self.step_scale)
        t_new = 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * state.t * state.t))
        dx = x_new - state.x
        beta = ((state.t - 1.0) / t_new).unsqueeze(-1)
        restarts = state.restarts
        if self.restart:
            reset = batch_dot(state.y - x_new, dx) > 0
            t_new = torch.where(reset, torch.ones_like(t_new), t_new)
            beta = torch.where(reset.unsqueeze(-1), torch.zeros_like(beta), beta)
            restarts = restarts + reset.to(restarts.dtype)
        y_new = torch.addcmul(x_new, beta, dx)
        k = state.k + 1
        pattern = state.pattern
        if self.polish_every and k % self.polish_every == 0:
            x_new, y_new, t_new, pattern = self._polish(problem, x_new, y_new, t_new, pattern)
        return FISTAState(x=x_new, y=y_new, t=t_new, restarts=restarts, k=k, pattern=pattern)

    @staticmethod
    def _polish(problem: Instances, x: Tensor, y: Tensor, t: Tensor, prev_pattern: Tensor):
        """Polish the instances whose active pattern (``problem.active_pattern``: LASSO
        signs, box-QP active bounds) did not change since the last check: an identified
        active set is what makes a polish succeed, and the others would only pay for a
        failed factorization."""
        pattern = problem.active_pattern(x)
        stable = torch.nonzero((pattern == prev_pattern).all(-1)).squeeze(-1)
        if stable.numel():
            z, accepted = problem.index(stable).polish(x[stable])
            if bool(accepted.any()):
                done = stable[accepted]
                x, y, t = x.clone(), y.clone(), t.clone()
                x[done] = z[accepted]
                y[done] = z[accepted]
                t[done] = 1.0
        return x, y, t, pattern


class FISTARestart(FISTA):
    """FISTA with adaptive gradient restart (O'Donoghue and Candes 2015).

    Example:
        >>> import torch, l2o
        >>> problem = l2o.LassoFamily(m=20, n=40, nnz=3, lam=0.1).sample(8, generator=0)
        >>> ref = l2o.reference(problem)
        >>> result = l2o.solve(l2o.optimizers.FISTARestart(), problem, tol=1e-8)
        >>> bool(result.converged.all()), bool(ref.relative_gap(result.objective).max() <= 1e-8)
        (True, True)
        >>> fista = l2o.solve(l2o.optimizers.FISTA(), problem, tol=1e-8)
        >>> bool(result.iterations.sum() < fista.iterations.sum())  # restart saves iterations here
        True
    """

    name = "fista_restart"

    def __init__(self, step_scale: float = 1.0):
        super().__init__(restart=True, step_scale=step_scale)


class FISTAPolish(FISTA):
    """FISTA with adaptive restart and active-set polishing every ``polish_every`` steps.

    On LASSO (shared dictionary) and box QPs (shared Q) the polish step solves the
    optimality conditions on the identified support exactly, so high accuracy costs
    little more than identifying the support; elsewhere it is ``fista_restart``.

    Example (the polished iterate is the certified reference, to rounding):
        >>> import torch, l2o
        >>> problem = l2o.LassoFamily(m=20, n=40, nnz=3, lam=0.1).sample(8, generator=0)
        >>> ref = l2o.reference(problem)
        >>> result = l2o.solve(l2o.optimizers.FISTAPolish(), problem, tol=1e-8)
        >>> bool(result.converged.all()), bool(torch.allclose(result.x, ref.x, atol=1e-12))
        (True, True)
    """

    name = "fista_polish"

    def __init__(self, step_scale: float = 1.0, polish_every: int = 10):
        super().__init__(restart=True, step_scale=step_scale, polish_every=polish_every)


class AcceleratedProjectedGradient(FISTA):
    """Accelerated projected gradient for boxes: FISTA with a projection, restarted.

    Example:
        >>> import torch, l2o
        >>> problem = l2o.QuadraticFamily(n=5, condition_number=10.0, box=0.1).sample(4, generator=0)
        >>> result = l2o.solve(l2o.optimizers.AcceleratedProjectedGradient(), problem, tol=1e-10)
        >>> bool(result.converged.all()), bool((result.x.abs() <= 0.1).all())
        (True, True)
        >>> bool((result.x.abs() == 0.1).any())  # some bounds are active at the solution
        True
    """

    name = "apgd"

    def __init__(self, restart: bool = True, step_scale: float = 1.0):
        super().__init__(restart=restart, step_scale=step_scale)


class Nesterov(FISTA):
    """Nesterov's accelerated gradient for convex smooth f (FISTA with r = 0).

    Nesterov, *A method for solving the convex programming problem with convergence
    rate O(1/k^2)*, 1983: f(x_k) - f* <= 2L||x0 - x*||^2/(k+1)^2.

    Example:
        >>> import torch, l2o
        >>> problem = l2o.QuadraticFamily(n=5, condition_number=10.0).sample(4, generator=0)
        >>> x_star = problem.closed_form()[0]
        >>> result = l2o.solve(l2o.optimizers.Nesterov(), problem, tol=1e-10)
        >>> bool(result.converged.all()), bool(torch.allclose(result.x, x_star, atol=1e-8))
        (True, True)
    """

    name = "nesterov"
    handles_nonsmooth = False

    def __init__(self, step_scale: float = 1.0):
        super().__init__(restart=False, step_scale=step_scale)
