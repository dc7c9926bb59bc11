"""LFISTA: FISTA with restart whose per-iteration scalars are learned.

A learned accelerated proximal gradient in the spirit of ALISTA (Liu, Chen, Wang, Yin,
ICLR 2019: only a step and a threshold per layer are learned) and of Math-L2O's PA
variant (Liu et al., ICML 2023: a learned step P and momentum A), with the network
removed so that an iteration costs what a FISTA step costs (one Gram GEMM on the LASSO
preset). For iterations k < K (the horizon), with L the Lipschitz constant of grad f:

    t_k = p_k / L,                                  p_k = p_max ** tanh(s_k)  (step multiplier)
    x_{k+1} = prox_{c_k t_k r}(y_k - t_k grad f(y_k)),  c_k = max(1, exp(theta_k))  (threshold multiplier)
    tau_{k+1} = (1 + sqrt(1 + 4 tau_k^2)) / 2,      beta_k = ((tau_k - 1) / tau_{k+1}) ** e_k,
    y_{k+1} = x_{k+1} + beta_k (x_{k+1} - x_k),     e_k = 2 sigma(m_k)            (momentum exponent)

with FISTA's momentum sequence tau (Beck and Teboulle 2009) and its gradient restart
(O'Donoghue and Candes 2015): when (y_k - x_{k+1})^T (x_{k+1} - x_k) > 0, per instance,
tau = 1 and beta = 0. Only the 3 K scalars (s_k, theta_k, m_k) are learned.

* The step multiplier lies in (1 / p_max, p_max) and may exceed 1: near the solution of
  a sparse LASSO the iteration only moves on the support, whose curvature is well
  below L.
* The threshold multiplier c_k >= 1 is a learned continuation: c_k > 1 in the first
  iterations thresholds harder (as homotopy methods start from a larger lam) and
  identifies the support sooner. The fixed point is the LASSO solution only for
  c = 1; thresholds below lam's (c < 1) would only move it, so c is clamped at 1 (a
  theta_k that the training pushes below 0 stays there with c_k = 1, no gradient).
* The momentum exponent keeps beta in [0, 1): beta ** e is FISTA's beta for e = 1,
  more momentum for e < 1 and less for e > 1.
* Guard (``guard = rho > 0``): a step longer than 1 / L that suits most instances can
  make a few diverge (a support wider than usual has a larger curvature, and the
  gradient restart does not see an oscillating divergence, whose iterates grow
  geometrically). With the motion per unit step d_k = ||x_{k+1} - x_k|| / p_k, an
  instance whose d grew by more than rho in two consecutive iterations, the second
  with p_k > 1, has its step undone (x_{k+1} = x_k, tau = 1, no momentum) and takes
  template steps from then on. One growth alone is normal (momentum builds up after a
  restart, the learned schedule changes); sustained growth is what divergence looks
  like. Cost: one reduction per iteration inside the horizon. Iterations with
  p_k <= 1 are never undone, so the template is FISTA exactly.

After the horizon (k >= K) every instance takes template steps: FISTA with gradient
restart and step 1 / L, so the solver converges at any length with FISTA's guarantee.
Template: with p = c = e = 1 (the initialization s = theta = m = 0, exactly) every
iteration is a FISTA-restart iteration; ``restart=False`` gives plain FISTA.

Cost: on least-squares / LASSO instances with a shared Gram matrix (``LassoInstances``'
fast path), an evaluation step is one ``addmm`` with M_k = I - t_k A^T A (built once per
step, n x n work next to the (B, n) x (n, n) GEMM, and kept in the state's shared field
``affine``) and the elementwise work of a FISTA step, plus the guard's reduction.
Under autograd (meta-training) the step is the generic differentiable form
y - t grad f(y) followed by ``problem.prox``; the two agree to rounding.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor, nn

from l2o.learned.base import LearnedOptimizer
from l2o.optimizers.base import batch_dot, shared_field
from l2o.problems.base import Instances, column
from l2o.problems.lasso import LeastSquaresInstances
from l2o.problems.parts import soft_threshold


@dataclasses.dataclass
class LFISTAState:
    """x: ``(B, n)`` last prox-gradient point; y: ``(B, n)`` extrapolated point;
    t: ``(B,)`` FISTA's momentum sequence tau; learned: ``(B,)`` 1.0, or 0.0 once the guard
    has sent the instance to template steps; motion: ``(B,)`` the guard's d_{k-1}^2 =
    ||x_k - x_{k-1}||^2 / p_{k-1}^2 (the largest finite value before the first step);
    grew: ``(B,)`` 1.0 where d grew by more than rho at the last step; k: iterations
    done (shared by the batch). All in the iterates' dtype. affine: the fused step's
    ``(n, n)`` matrices I - (p / L) A^T A by step multiplier p, shared by the batch (the
    one of the last step, and the template's p = 1 once guarded-out rows need it)."""

    x: Tensor
    y: Tensor
    t: Tensor
    learned: Tensor
    motion: Tensor
    grew: Tensor
    k: int = 0
    affine: dict[float, Tensor] = shared_field(default_factory=dict)


class LFISTA(LearnedOptimizer):
    """Learned FISTA: per-iteration step, threshold and momentum scalars; see the module docstring.

    Args:
        max_step: p_max, the upper bound of the step multiplier p_k (> 1 allows steps
            longer than 1 / L).
        threshold: learn the threshold multipliers c_k. They act through a
            step-dependent prox (soft-thresholding of an L1 penalty), so with
            ``threshold=True`` the solver refuses smooth and box-constrained problems,
            where c_k would do nothing; ``threshold=False`` (c = 1) takes any problem.
        guard: rho of the divergence guard (0 disables it).
        restart: FISTA's gradient restart (the template is ``fista_restart``; False:
            ``fista``).
        horizon: K, the number of learned iterations (the training unroll).

    Example (untrained, p = c = e = 1: FISTA with restart, to rounding):
        >>> import torch, l2o
        >>> problem = l2o.LassoFamily(m=20, n=40, nnz=3).sample(8, generator=0)
        >>> def iterate(solver, k):
        ...     state = solver.init(problem, problem.initial_point())
        ...     for _ in range(k):
        ...         state = solver.step(problem, state)
        ...     return state.x
        >>> x_learned = iterate(l2o.learned.LFISTA(), 30)
        >>> bool(torch.allclose(x_learned, iterate(l2o.optimizers.FISTARestart(), 30), atol=1e-12))
        True
    """

    name = "lfista"
    template = "fista_restart"

    def __init__(self, max_step: float = 2.5, threshold: bool = True, guard: float = 1.2, restart: bool = True,
                 horizon: int = 40):
        if not (math.isfinite(max_step) and max_step > 1.0):
            raise ValueError(f"lfista: max_step must be a number > 1 (the template step is 1), got {max_step}")
        if not (math.isfinite(guard) and (guard == 0 or guard >= 1)):
            raise ValueError(f"lfista: guard must be 0 (off) or a ratio >= 1, got {guard}")
        super().__init__(horizon=horizon, max_step=max_step, threshold=threshold, guard=guard, restart=restart)
        self.max_step, self.guard, self.restart = float(max_step), float(guard), bool(restart)
        K = horizon
        self.s = nn.Parameter(torch.zeros(K))  # p = 1
        self.m = nn.Parameter(torch.zeros(K))  # e = 1
        self.theta = nn.Parameter(torch.zeros(K)) if threshold else None  # c = 1

    def check_problem(self, problem: Instances) -> None:
        super().check_problem(problem)
        if self.theta is not None and not (problem.has_nonsmooth and not problem.is_constrained):
            kind = "box-constrained" if problem.is_constrained else "smooth"
            raise ValueError(f"solver '{self.name}' with threshold=True learns soft-thresholding levels, but this "
                             f"problem is {kind} (its prox does not depend on the step); use threshold=False")

    # ----- the learned scalars ------------------------------------------------------------
    def coefficients(self) -> dict[str, Tensor]:
        """p, c, e: each ``(K,)`` in the parameters' dtype."""
        ones = torch.ones_like(self.s)
        return {
            "step": self.max_step ** torch.tanh(self.s),
            "threshold": ones if self.theta is None else torch.exp(self.theta).clamp(min=1.0),
            "momentum": 2.0 * torch.sigmoid(self.m),
        }

    @torch.no_grad()
    def template_init(self) -> None:
        """Reset to the template (FISTA with restart): p = c = e = 1."""
        self.s.zero_()
        self.m.zero_()
        if self.theta is not None:
            self.theta.zero_()

    # ----- protocol ---------------------------------------------------------------------------
    def init(self, problem: Instances, x0: Tensor) -> LFISTAState:
        self.check_problem(problem)
        B = x0.shape[0]
        ones = torch.ones(B, dtype=x0.dtype, device=x0.device)
        return LFISTAState(x=x0.clone(), y=x0.clone(), t=ones, learned=ones.clone(),
                           motion=torch.full_like(ones, torch.finfo(x0.dtype).max), grew=torch.zeros_like(ones), k=0)

    def step(self, problem: Instances, state: LFISTAState) -> LFISTAState:
        if state.k >= self.horizon:
            return self._template_step(problem, state)
        k, x, y = state.k, state.x, state.y
        differentiable = torch.is_grad_enabled() and self.s.requires_grad
        guarded = self.guard > 0  # the guard is on; it acts at iterations with p_k > 1
        if differentiable:
            p = (self.max_step ** torch.tanh(self.s[k])).to(x)
            c = 1.0 if self.theta is None else torch.exp(self.theta[k]).clamp(min=1.0).to(x)
            e = 2.0 * torch.sigmoid(self.m[k]).to(x)
        else:  # three host scalars: the step's tensors stay those of FISTA
            p = self.max_step ** float(torch.tanh(self.s[k]))
            c = 1.0 if self.theta is None else max(1.0, math.exp(float(self.theta[k])))
            e = 2.0 * float(torch.sigmoid(self.m[k]))
        active = state.learned > 0  # (B,) bool: instances still on learned steps
        all_learned = not guarded or bool(active.all())
        affine = state.affine
        if not differentiable and _has_gram(problem):
            M, affine = _affine(problem, affine, p)
            x_new = _fused_prox_grad(problem, y, M, p, c)
            if not all_learned:  # the guarded-out rows again, with template scalars
                rows = torch.nonzero(~active).squeeze(-1)
                M1, affine = _affine(problem, affine, 1.0)
                x_new[rows] = _fused_prox_grad(problem, y, M1, 1.0, 1.0, rows)
        else:
            if guarded and not all_learned:  # template scalars for the guarded-out instances
                p = torch.where(active, torch.as_tensor(p, dtype=x.dtype, device=x.device), 1.0)
                c = torch.where(active, torch.as_tensor(c, dtype=x.dtype, device=x.device), 1.0)
            t = column(p / problem.smoothness())  # (B, 1)
            x_new = problem.prox(y - t * problem.grad(y), t * column(c))
        t_new = 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * state.t * state.t))
        dx = x_new - x
        base = (state.t - 1.0) / t_new
        beta = base if isinstance(e, float) and e == 1.0 else base ** e
        if guarded and not all_learned:
            beta = torch.where(active, beta, base)
        if self.restart:
            reset = batch_dot(y - x_new, dx) > 0
            t_new = torch.where(reset, torch.ones_like(t_new), t_new)
            beta = torch.where(reset, torch.zeros_like(beta), beta)
        learned, motion, grew = state.learned, state.motion, state.grew
        if guarded:
            p_now = p if isinstance(p, float) else p.detach()
            motion = (torch.linalg.vector_norm(dx.detach(), dim=-1) / p_now).square()  # one reduction, no temporary
            growing = motion > self.guard**2 * state.motion
            grew = growing.to(grew.dtype)
            diverging = active & growing & (state.grew > 0) & (p_now > 1.0)
            if bool(diverging.any()):  # undo the step, drop the momentum, template steps from now on
                col = diverging.unsqueeze(-1)
                x_new = torch.where(col, x, x_new)
                dx = torch.where(col, torch.zeros_like(dx), dx)
                t_new = torch.where(diverging, torch.ones_like(t_new), t_new)
                beta = torch.where(diverging, torch.zeros_like(beta), beta)
                learned = torch.where(diverging, torch.zeros_like(learned), learned)
        y_new = torch.addcmul(x_new, beta.unsqueeze(-1), dx)
        return LFISTAState(x=x_new, y=y_new, t=t_new, learned=learned, motion=motion, grew=grew, k=k + 1,
                           affine=affine)

    def _template_step(self, problem: Instances, state: LFISTAState) -> LFISTAState:
        """FISTA (with gradient restart if ``restart``), step 1 / L: ``FISTA.step``'s arithmetic."""
        x_new = problem.prox_grad(state.y, 1.0)
        t_new = 0.5 * (1.0 + torch.sqrt(1.0 + 4.0 * state.t * state.t))
        dx = x_new - state.x
        beta = ((state.t - 1.0) / t_new).unsqueeze(-1)
        if self.restart:
            reset = batch_dot(state.y - x_new, dx) > 0
            t_new = torch.where(reset, torch.ones_like(t_new), t_new)
            beta = torch.where(reset.unsqueeze(-1), torch.zeros_like(beta), beta)
        y_new = torch.addcmul(x_new, beta, dx)
        return dataclasses.replace(state, x=x_new, y=y_new, t=t_new, k=state.k + 1)


# ----- the fused step on a shared Gram matrix ------------------------------------------------------------------


def _has_gram(problem: Instances) -> bool:
    """True for least-squares / LASSO batches on ``LeastSquaresInstances``' Gram fast path
    (shared A with n <= 2m: grad f(y) = y A^T A - A^T b)."""
    return isinstance(problem, LeastSquaresInstances) and getattr(problem, "_gram", None) is not None


def _affine(
    problem: LeastSquaresInstances, affine: dict[float, Tensor], p: float
) -> tuple[Tensor, dict[float, Tensor]]:
    """M = I - (p / L) G for the step multiplier ``p``, taken from ``affine`` (the state's
    shared matrices) or built (n x n work, small next to the (B, n) x (n, n) GEMM), and the
    matrices the next state keeps: this one and the template's (p = 1), if built. A
    sub-batch (``problem.index``) shares G and L, so its state shares the matrices too."""
    M = affine.get(p)
    if M is None:
        L = problem.smoothness()[0]  # shared A: one L for the batch
        M = torch.eye(problem.dim, dtype=problem.dtype, device=problem.device) - (p / L) * problem._gram
    keep = {1.0: affine[1.0]} if 1.0 in affine else {}
    keep[p] = M
    return M, keep


def _fused_prox_grad(problem: LeastSquaresInstances, y: Tensor, M: Tensor, p: float, c: float,
                     rows: Tensor | None = None) -> Tensor:
    """prox_{c t r}(y - t grad f(y)), t = p / L, as one GEMM: y M + t A^T b with
    M = I - t G (``_affine``); the bias is scaled inside the GEMM (``beta = t``). With
    ``rows`` (a long tensor), the step of those instances only, ``(len(rows), n)``.
    """
    L = problem.smoothness()[0]  # shared A: one L for the batch
    t = float(p / L)
    if rows is None:
        return problem.prox(torch.addmm(problem._Atb, y, M, beta=t), t * c)
    v = torch.addmm(problem._Atb[rows], y[rows], M, beta=t)
    return soft_threshold(v, column(problem.lam[rows]) * (t * c)) if problem.has_nonsmooth else v
