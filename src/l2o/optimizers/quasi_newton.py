"""L-BFGS and Newton's method with backtracking line search, batched.

References:
    Nocedal and Wright, *Numerical Optimization*, 2nd ed., Alg. 7.4 (two-loop
    recursion), Alg. 7.5 (L-BFGS), Sec. 3.1 (backtracking); Newton: Sec. 3.3.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from l2o.optimizers.base import Optimizer, batch_dot
from l2o.optimizers.line_search import armijo
from l2o.problems.base import Instances


@dataclasses.dataclass
class LBFGSState:
    """x, g: ``(B, n)`` iterate and gradient; f: ``(B,)``; S, Y: ``(B, m, n)`` memory of
    s = x_{k+1} - x_k and y = g_{k+1} - g_k; rho: ``(B, m)`` 1 / (s^T y), 0 for an empty
    or rejected slot; gamma: ``(B,)`` initial inverse-Hessian scale; head: next slot."""

    x: Tensor
    g: Tensor
    f: Tensor
    S: Tensor
    Y: Tensor
    rho: Tensor
    gamma: Tensor
    head: int = 0


class LBFGS(Optimizer):
    """Limited-memory BFGS with ``memory`` pairs and an Armijo line search.

    A pair is stored only when s^T y > eps ||s|| ||y|| (curvature condition), so the
    implicit inverse Hessian stays positive definite and every direction is a
    descent direction; the first step is scaled by 1/L.

    Example (ridge logistic regression, smooth):
        >>> import l2o
        >>> problem = l2o.LogisticFamily(n_samples=60, d=5, nnz=2, penalty="l2").sample(3, generator=0)
        >>> result = l2o.solve(l2o.optimizers.LBFGS(), problem, tol=1e-12, check_every=1)
        >>> newton = l2o.solve(l2o.optimizers.Newton(), problem, tol=1e-12, check_every=1)
        >>> bool(result.converged.all()), bool((result.x - newton.x).abs().max() < 1e-5)
        (True, True)
        >>> bool(result.iterations.max() <= 20)  # superlinear: a handful of iterations
        True
    """

    name = "lbfgs"
    handles_nonsmooth = False

    def __init__(self, memory: int = 10):
        if memory < 1:
            raise ValueError(f"lbfgs: memory must be >= 1, got {memory}")
        self.memory = memory

    def init(self, problem: Instances, x0: Tensor) -> LBFGSState:
        self.check_problem(problem)
        B, n = x0.shape
        f, g = problem.value_and_grad(x0)
        z = torch.zeros(B, self.memory, n, dtype=x0.dtype, device=x0.device)
        return LBFGSState(
            x=x0.clone(), g=g, f=f, S=z, Y=z.clone(), rho=torch.zeros(B, self.memory, dtype=x0.dtype, device=x0.device),
            gamma=1.0 / problem.smoothness(), head=0,
        )

    def direction(self, state: LBFGSState) -> Tensor:
        """-H_k g by the two-loop recursion: ``(B, n)``."""
        q = state.g.clone()
        order = [(state.head - 1 - i) % self.memory for i in range(self.memory)]  # newest first
        alphas = {}
        for i in order:
            a = state.rho[:, i] * batch_dot(state.S[:, i], q)
            alphas[i] = a
            q = q - a.unsqueeze(-1) * state.Y[:, i]
        r = state.gamma.unsqueeze(-1) * q
        for i in reversed(order):
            b = state.rho[:, i] * batch_dot(state.Y[:, i], r)
            r = r + (alphas[i] - b).unsqueeze(-1) * state.S[:, i]
        return -r

    def step(self, problem: Instances, state: LBFGSState) -> LBFGSState:
        d = self.direction(state)
        # Guard against a non-descent direction (rounding): fall back to -g / L.
        bad = ~(batch_dot(d, state.g) < 0)
        d = torch.where(bad.unsqueeze(-1), -state.g / problem.smoothness().unsqueeze(-1), d)
        x, f, g = armijo(problem, state.x, state.f, state.g, d)
        s, y = x - state.x, g - state.g
        sy = batch_dot(s, y)
        ok = sy > 1e-10 * torch.linalg.vector_norm(s, dim=-1) * torch.linalg.vector_norm(y, dim=-1)
        S, Y, rho = state.S.clone(), state.Y.clone(), state.rho.clone()
        S[:, state.head] = s
        Y[:, state.head] = y
        rho[:, state.head] = torch.where(ok, 1.0 / torch.where(ok, sy, torch.ones_like(sy)), torch.zeros_like(sy))
        gamma = torch.where(ok, sy / torch.where(ok, batch_dot(y, y), torch.ones_like(sy)), state.gamma)
        return LBFGSState(x=x, g=g, f=f, S=S, Y=Y, rho=rho, gamma=gamma, head=(state.head + 1) % self.memory)


@dataclasses.dataclass
class NewtonState:
    """x, g: ``(B, n)``; f: ``(B,)``."""

    x: Tensor
    g: Tensor
    f: Tensor


class Newton(Optimizer):
    """Damped Newton: d = -(H + delta I)^{-1} g, then an Armijo line search from t = 1.

    delta = 0 when the Cholesky factorization of H succeeds, else a small multiple of
    its scale (Levenberg shift). One step solves a strongly convex quadratic exactly.

    Example:
        >>> import torch, l2o
        >>> problem = l2o.QuadraticFamily(n=5, condition_number=10.0).sample(4, generator=0)
        >>> x_star = problem.closed_form()[0]
        >>> solver = l2o.optimizers.Newton()
        >>> state = solver.step(problem, solver.init(problem, problem.initial_point()))
        >>> bool(torch.allclose(state.x, x_star, atol=1e-12))  # one step on a QP
        True
    """

    name = "newton"
    handles_nonsmooth = False
    needs_hessian = True

    def check_problem(self, problem: Instances) -> None:
        super().check_problem(problem)
        try:
            problem.hessian(problem.initial_point())
        except NotImplementedError as e:
            raise ValueError(f"solver 'newton' needs problem.hessian: {e}") from None

    def init(self, problem: Instances, x0: Tensor) -> NewtonState:
        self.check_problem(problem)
        f, g = problem.value_and_grad(x0)
        return NewtonState(x=x0.clone(), g=g, f=f)

    def step(self, problem: Instances, state: NewtonState) -> NewtonState:
        H = problem.hessian(state.x)
        chol, info = torch.linalg.cholesky_ex(H)
        bad = info != 0
        if bool(bad.any()):
            # Levenberg shift only for the instances whose factorization failed, large
            # enough to register in the dtype (sqrt(eps) * scale), grown until it works.
            scale = H.diagonal(dim1=-2, dim2=-1).abs().amax(-1).clamp(min=1.0)
            eye = torch.eye(H.shape[-1], dtype=H.dtype, device=H.device)
            delta = torch.where(bad, torch.finfo(H.dtype).eps ** 0.5 * scale, torch.zeros_like(scale))
            for _ in range(10):
                reg, info_reg = torch.linalg.cholesky_ex(H + delta[:, None, None] * eye)
                chol = torch.where(bad[:, None, None], reg, chol)
                bad = bad & (info_reg != 0)
                if not bool(bad.any()):
                    break
                delta = torch.where(bad, 10.0 * delta, delta)
        d = -torch.cholesky_solve(state.g.unsqueeze(-1), chol).squeeze(-1)
        x, f, g = armijo(problem, state.x, state.f, state.g, d)
        return NewtonState(x=x, g=g, f=f)
