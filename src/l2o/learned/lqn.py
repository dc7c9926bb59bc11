"""LQN: BFGS with learned coordinate-wise step sizes.

Lin, Song, Xu, *A Learn-to-Optimize Approach for Coordinate-Wise Step Sizes for
Quasi-Newton Methods* (arXiv 2412.00059; v1 titled *Adaptive Coordinate-Wise Step Sizes
for Quasi-Newton Methods: A Learning-to-Optimize Approach*). The paper's body could not be
read here; what follows is marked [PAPER] where the abstracts and public reviews confirm it
and [RECON] where it is our reconstruction, so that the latter can be swapped when the text
is available (``/work/shared/RESEARCH-2.md`` section 1 has the sources).

The iteration, per instance, with g_k = grad f(x_k) and H_k the BFGS inverse-Hessian
approximation:

    d_k = H_k g_k                                          (the quasi-Newton direction)
    x_{k+1} = x_k - P_k d_k,   P_k = diag(p_k)             [PAPER]
    H_{k+1} = BFGS update of H_k with s_k = x_{k+1} - x_k, y_k = g_{k+1} - g_k  [PAPER: B_k
              "the standard BFGS Hessian approximation"; RECON: updated with the step
              actually taken, skipped when the curvature condition fails, H_0 = I / L
              rescaled by y^T s / y^T y before the first update, as ``l2o.optimizers.bfgs``]
    p_k = 1 + delta_k tanh(o_k),   o_k = w^T LSTM(features_k)   (one LSTM per coordinate,
              shared by all coordinates and instances)   [PAPER: coordinate-wise LSTM, output
              hard-clipped to a theory-derived safe range; RECON: the tanh squashing, the
              interval, the features]

Meta-training loss [PAPER]: f(x_{k+1}) (a one-step unroll: ``[training] loss = "one_step"``,
``segment = 1``) plus lambda ||p_k - 1||^2 (``penalty_weight``; the regulariser pulling
P_k -> I). [RECON] Our example config and benchmark use the log of the relative gap at the
next iterate instead (``loss = "log_gap"``, ``segment = 1``), which weighs late steps as much as
early ones: in an exploratory comparison on ridge logistic regression (n = 100, 300 meta-steps)
it gave 1.41x fewer iterations than unit-step BFGS against 1.13x for f(x_{k+1}), and 1.29x with
lambda = 0. An unrolled loss over several steps is the option ``segment > 1`` (5 steps: 1.40x).

Untrained form: the output layer is zero, so o = 0, p = 1 and the method is exactly BFGS
with unit step (``bfgs`` with ``line_search="none"``); the tests check it to 1e-12 in
float64.

The interval [RECON, ours]. Let H > 0, g != 0, d = H g and

    r = g^T d / sum_i |g_i d_i|  in (0, 1].

Proposition. For theta in [0, 1) and any p with |p_i - 1| <= delta <= theta r:

  (i)   g^T (p * d) >= (1 - theta) g^T d > 0: -p * d is a descent direction that keeps at
        least a fraction 1 - theta of the BFGS model decrease g^T H g;
  (ii)  r >= cos(g, H g) >= 2 sqrt(kappa) / (kappa + 1) >= 1 / sqrt(kappa), kappa = kappa(H),
        so the box contains theta times the candidate box |p_i - 1| < 1 / kappa(H) of RESEARCH-2
        section 1, and is never narrower than theta / sqrt(kappa);
  (iii) cos(-g, -p * d) >= (1 - theta) / (1 + theta) cos(g, d): the angle condition survives
        up to a constant, so with a Wolfe line search along -p * d Zoutendijk's theorem gives
        sum_k cos^2(g_k, p_k * d_k) ||g_k||^2 < inf, hence ||g_k|| -> 0 whenever cos(g_k, d_k)
        stays bounded away from 0 (e.g. kappa(H_k) bounded, by (ii));
  (iv)  if delta_k -> 0, ||H_k|| stays bounded and H_k satisfies the Dennis-More condition
        ||(H_k - hess f(x*)^{-1}) g_k|| = o(||g_k||) (an assumption here, as in the paper's
        Theorem 3: H_k is updated with LQN's own steps), then ||(P_k - I) H_k g_k|| <=
        delta_k ||H_k|| ||g_k|| = o(||g_k||) too, so the steps P_k H_k g_k satisfy it and the
        unit-step iteration converges superlinearly near x* (N&W Thm. 3.6).

Proof. (i) g^T (p * d) = g^T d + sum_i (p_i - 1) g_i d_i >= g^T d - delta sum_i |g_i d_i|
>= g^T d - theta r sum_i |g_i d_i| = (1 - theta) g^T d, and g^T d = g^T H g > 0.
(ii) sum_i |g_i d_i| <= ||g|| ||d|| (Cauchy-Schwarz on |g|, |d|), so r >= g^T H g / (||g|| ||H g||)
= cos(g, H g), which the Kantorovich inequality bounds below by 2 sqrt(kappa) / (kappa + 1).
(iii) ||p * d|| <= (1 + delta) ||d|| <= (1 + theta) ||d||; divide (i) by ||g|| ||p * d||; Zoutendijk
(N&W Thm. 3.2) applies to any descent direction with Wolfe steps.
(iv) ||(P_k H_k - hess^{-1}) g_k|| <= ||(P_k - I) H_k g_k|| + ||(H_k - hess^{-1}) g_k||, both o(||g_k||). []

So delta_k = theta r_k is the largest box around p = 1, from the current g and d only
(O(n)), on which every p keeps the fraction 1 - theta of descent: ``interval="coordinate"``
(the default). ``interval="kappa"`` uses delta_k = theta / kappa(H_k) instead (the candidate of
RESEARCH-2; an eigendecomposition per iteration, O(n^3)). Both are multiplied by
``min(1, ||g_k|| / (anneal_from ||g_0||))`` (``anneal_from`` = 1e-3 by default; 0 turns it off),
which leaves the interval whole until the gradient has fallen by ``anneal_from`` and then sends
delta_k -> 0 in proportion to ||g_k||, so (iv) applies and the tail is BFGS's: P_k -> I is what
the paper's Theorem 3 assumes [PAPER]; the annealing that enforces it is ours [RECON]. (On
ridge logistic regression, n = 100, the best one-step choice of p inside the interval, found by
an inner optimization, reached a 1e-6 gradient in about 46 iterations with this annealing, 41
without, 54 with a factor (||g_k|| / ||g_0||)^(1/4), against 68-77 for unit-step BFGS, in an
exploratory run. With this annealing, the "greedy ceiling" rows of
``benchmarks/results/quasi_newton.md`` put the best a one-step-trained model can do at 1.45-1.6x
fewer iterations than unit-step BFGS on the three tasks at n = 100.)

Without a line search (the paper's form, ``line_search="none"``) global convergence is not
guaranteed, as for unit-step BFGS. ``line_search="armijo"`` backtracks along -p * d (a descent
direction by (i)); ``l2o.safeguard.Safeguard(lqn, make_solver("bfgs"), rule="descent")`` is
the library's general safeguard (the tests check both).

Features per coordinate (detached, scale-free) [RECON]: g_i / rms(g), d_i / rms(d),
g_i d_i / mean_j |g_j d_j| (the coordinate's share of the descent), s_i y_i / mean_j |s_j y_j|
of the last pair (its curvature share; 0 at the start), (p_{k-1,i} - 1) / delta_{k-1} (the last
choice), and log10(||g_k|| / ||g_0||) / 8 (the phase, the same for all coordinates); each is
clipped to [-10, 10].
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor, nn

from l2o.learned.base import CoordLSTM, LearnedOptimizer, seeded_default_init
from l2o.optimizers.base import batch_dot
from l2o.optimizers.bfgs import bfgs_update, initial_inverse_hessian

INTERVALS = ("coordinate", "kappa")
LINE_SEARCHES = ("none", "armijo")
N_FEATURES = 6
FEATURE_CLIP = 10.0


@dataclasses.dataclass
class LQNState:
    """State of ``LQN``; B instances, n coordinates.

    Attributes:
        x, g: ``(B, n)`` iterate and gradient (problem dtype); f: ``(B,)``.
        H: ``(B, n, n)`` BFGS inverse-Hessian approximation (detached).
        scaled: ``(B,)`` long, 1 once H_0 was rescaled (at the first BFGS update), else 0.
        p: ``(B, n)`` the last multipliers (1 before the first step), differentiable.
        delta: ``(B,)`` the last interval half-width.
        sy: ``(B, n)`` s_i y_i of the last pair (0 before the first step).
        g0: ``(B,)`` ||g_0||.
        h, c: ``(B, n, layers, hidden)`` LSTM state (network dtype).
        k: iterations done.
    """

    x: Tensor
    g: Tensor
    f: Tensor
    H: Tensor
    scaled: Tensor
    p: Tensor
    delta: Tensor
    sy: Tensor
    g0: Tensor
    h: Tensor
    c: Tensor
    k: int = 0


def _normalized(v: Tensor, scale: Tensor) -> Tensor:
    """v / scale (``scale`` ``(B, 1)``), 0 where the scale is 0, clipped to +-FEATURE_CLIP."""
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.where(scale > 0, v / safe, torch.zeros_like(v)).clamp(-FEATURE_CLIP, FEATURE_CLIP)


def descent_ratio(g: Tensor, d: Tensor) -> Tensor:
    """r = g^T d / sum_i |g_i d_i|, ``(B,)`` in (0, 1] for a descent pair (0 where g = 0 or
    g^T d <= 0): the largest delta / theta with every |p_i - 1| <= delta keeping descent.

    >>> g = torch.tensor([[1.0, 1.0]]); d = torch.tensor([[2.0, -0.5]])
    >>> descent_ratio(g, d)    # (2 - 0.5) / (2 + 0.5)
    tensor([0.6000])
    """
    gd = batch_dot(g, d)
    total = (g * d).abs().sum(-1)
    ok = (gd > 0) & (total > 0)
    return torch.where(ok, gd / torch.where(ok, total, torch.ones_like(total)), torch.zeros_like(gd))


class LQN(LearnedOptimizer):
    """BFGS with learned coordinate-wise step sizes (see the module docstring).

    Args:
        hidden: LSTM width (20); layers: LSTM depth (2).
        theta: the fraction of the descent-safe interval used, in [0, 1) (0.9).
        interval: "coordinate" (delta = theta r_k, O(n)) or "kappa" (delta = theta / kappa(H_k)).
        anneal_from: the relative gradient norm below which delta shrinks in proportion to it
            (1e-3; 0 = never).
        penalty_weight: lambda of the training regulariser lambda ||p - 1||^2 (1e-3).
        line_search: "none" (the paper's unit step) or "armijo" (backtracking along -p * d).
        seed: seed of the LSTM's initial weights (the output layer starts at zero).
        horizon: trained unroll length.

    >>> import l2o
    >>> p = l2o.problems.LogSumExpFamily(n=8, m=32).sample(2, 0)
    >>> model = LQN().double()
    >>> s = model.init(p, p.initial_point())
    >>> with torch.no_grad():
    ...     for _ in range(40):
    ...         s = model.step(p, s)
    >>> bool((p.fixed_point_residual(s.x) < 1e-8).all())
    True
    """

    name = "lqn"
    template = "bfgs"
    handles_nonsmooth = False

    def __init__(self, hidden: int = 20, layers: int = 2, theta: float = 0.9, interval: str = "coordinate",
                 anneal_from: float = 1e-3, penalty_weight: float = 1e-3, line_search: str = "none", seed: int = 0,
                 horizon: int = 100):
        super().__init__(horizon=horizon, hidden=hidden, layers=layers, theta=theta, interval=interval,
                         anneal_from=anneal_from, penalty_weight=penalty_weight, line_search=line_search, seed=seed)
        if not 0 <= theta < 1:
            raise ValueError(f"lqn: theta must be in [0, 1), got {theta}")
        if interval not in INTERVALS:
            raise ValueError(f"lqn: interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
        if line_search not in LINE_SEARCHES:
            raise ValueError(f"lqn: line_search must be one of {', '.join(LINE_SEARCHES)}, got {line_search!r}")
        if not (math.isfinite(anneal_from) and 0 <= anneal_from <= 1):
            raise ValueError(f"lqn: anneal_from must be in [0, 1], got {anneal_from}")
        if not (math.isfinite(penalty_weight) and penalty_weight >= 0):
            raise ValueError(f"lqn: penalty_weight must be >= 0, got {penalty_weight}")
        self.theta = float(theta)
        self.interval = interval
        self.anneal_from = float(anneal_from)
        self.penalty_weight = float(penalty_weight)
        self.line_search = line_search
        self.lstm = CoordLSTM(N_FEATURES, hidden, layers)
        self.out = nn.Linear(hidden, 1)
        seeded_default_init(self, seed)
        with torch.no_grad():  # untrained: o = 0, p = 1, exactly BFGS with unit step
            self.out.weight.zero_()
            self.out.bias.zero_()

    # ----- pieces --------------------------------------------------------------------------
    def half_width(self, g: Tensor, d: Tensor, H: Tensor, g0: Tensor) -> Tensor:
        """delta_k, ``(B,)``: theta r_k (or theta / kappa(H_k)) times the annealing factor
        min(1, ||g_k|| / (anneal_from ||g_0||))."""
        if self.interval == "coordinate":
            delta = self.theta * descent_ratio(g, d)
        else:
            ev = torch.linalg.eigvalsh(H)
            kappa = ev[:, -1] / ev[:, 0].clamp(min=torch.finfo(H.dtype).tiny)
            delta = torch.where(ev[:, 0] > 0, self.theta / kappa, torch.zeros_like(kappa))
        if self.anneal_from > 0:
            gn = torch.linalg.vector_norm(g, dim=-1)
            rel = torch.where(g0 > 0, gn / torch.where(g0 > 0, g0, torch.ones_like(g0)), torch.zeros_like(gn))
            delta = delta * (rel / self.anneal_from).clamp(max=1.0)
        return delta

    def features(self, state: LQNState, d: Tensor) -> Tensor:
        """``(B, n, N_FEATURES)`` per-coordinate features (detached, network dtype)."""
        g, n = state.g.detach(), state.g.shape[-1]
        rms = lambda v: (torch.linalg.vector_norm(v, dim=-1, keepdim=True) / math.sqrt(n))  # noqa: E731
        gd = g * d
        mean_abs = lambda v: v.abs().mean(-1, keepdim=True)  # noqa: E731
        gn = torch.linalg.vector_norm(g, dim=-1)
        g0 = state.g0
        rel = torch.where((g0 > 0) & (gn > 0), gn / torch.where(g0 > 0, g0, torch.ones_like(g0)), torch.ones_like(gn))
        phase = (torch.log10(rel) / 8.0).clamp(-FEATURE_CLIP, FEATURE_CLIP).unsqueeze(-1).expand_as(g)
        last = _normalized(state.p.detach() - 1.0, state.delta.unsqueeze(-1))
        feats = [_normalized(g, rms(g)), _normalized(d, rms(d)), _normalized(gd, mean_abs(gd)),
                 _normalized(state.sy, mean_abs(state.sy)), last, phase]
        return self.to_net(torch.stack(feats, dim=-1))

    def multipliers(self, state: LQNState, d: Tensor, delta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(p, h, c)``: p = 1 + delta tanh(o) ``(B, n)`` in the problem dtype, and the LSTM state."""
        out, h, c = self.lstm(self.features(state, d), state.h, state.c)
        o = self.out(out).squeeze(-1).to(state.x.dtype)
        return 1.0 + delta.unsqueeze(-1) * torch.tanh(o), h, c

    def penalty(self, state: LQNState) -> Tensor:
        """lambda ||p - 1||^2 of the last step, ``(B,)``: the regulariser of the meta-loss
        (``l2o.training.unroll`` adds a solver's ``penalty`` to the segment's loss)."""
        return self.penalty_weight * (state.p - 1.0).square().sum(-1)

    # ----- protocol ------------------------------------------------------------------------
    def init(self, problem, x0: Tensor) -> LQNState:
        self.check_problem(problem)
        B, n = x0.shape
        f, g = problem.value_and_grad(x0)
        h, c = self.lstm.initial_state(B, n)
        return LQNState(
            x=x0.clone(), g=g, f=f, H=initial_inverse_hessian(problem, x0),
            scaled=torch.zeros(B, dtype=torch.long, device=x0.device),
            p=torch.ones_like(x0), delta=torch.zeros_like(f), sy=torch.zeros_like(x0),
            g0=torch.linalg.vector_norm(g, dim=-1).detach(), h=h, c=c, k=0,
        )

    def step(self, problem, state: LQNState) -> LQNState:
        H = state.H
        d = torch.bmm(H, state.g.unsqueeze(-1)).squeeze(-1)
        bad = ~(batch_dot(state.g.detach(), d.detach()) > 0) & (torch.linalg.vector_norm(state.g.detach(), dim=-1) > 0)
        if bool(bad.any()):  # H lost positive definiteness to rounding: restart it
            H0 = initial_inverse_hessian(problem, state.x)
            H = torch.where(bad[:, None, None], H0, H)
            d = torch.bmm(H, state.g.unsqueeze(-1)).squeeze(-1)
        delta = self.half_width(state.g.detach(), d.detach(), H, state.g0)
        p, h, c = self.multipliers(state, d.detach(), delta)
        step = p * d
        if self.line_search == "none":
            x = state.x - step
        else:  # backtracking along -p * d; t is a constant of the graph
            x = state.x - backtracking_step(problem, state.x.detach(), state.f.detach(), state.g.detach(),
                                            step.detach()).unsqueeze(-1) * step
        f, g = problem.value_and_grad(x)
        s, y = (x - state.x).detach(), (g - state.g).detach()
        H_new, scaled = bfgs_update(H.detach(), s, y, state.scaled > 0)
        return LQNState(x=x, g=g, f=f, H=H_new, scaled=scaled.long(), p=p, delta=delta.detach(), sy=s * y, g0=state.g0,
                        h=h, c=c, k=state.k + 1)


@torch.no_grad()
def backtracking_step(problem, x: Tensor, f: Tensor, g: Tensor, step: Tensor, c1: float = 1e-4,
                      max_trials: int = 40) -> Tensor:
    """``(B,)`` the first t in {1, 1/2, 1/4, ...} with f(x - t step) <= f(x) - c1 t g^T step (Armijo;
    ``step`` is a descent step, g^T step > 0), 0 where none is found in ``max_trials`` halvings.

    >>> import l2o
    >>> p = l2o.QuadraticFamily(n=4, condition_number=4.0).sample(1, 0)
    >>> x = p.initial_point(); f, g = p.value_and_grad(x)
    >>> backtracking_step(p, x, f, g, 100 * g / p.smoothness())   # far too long: halved 5 times
    tensor([0.0312], dtype=torch.float64)
    """
    slope = batch_dot(g, step)
    t = torch.ones_like(f)
    pending = torch.ones_like(f, dtype=torch.bool)
    accepted = torch.zeros_like(f)
    for _ in range(max_trials):
        f_trial = problem.smooth_objective(x - t.unsqueeze(-1) * step)
        ok = pending & torch.isfinite(f_trial) & (f_trial <= f - c1 * t * slope)
        accepted = torch.where(ok, t, accepted)
        pending = pending & ~ok
        if not bool(pending.any()):
            break
        t = torch.where(pending, 0.5 * t, t)
    return accepted


def rescaled_descent(g: Tensor, d: Tensor, p: Tensor) -> Tensor:
    """g^T (p * d) / g^T d, ``(B,)``: the fraction of the BFGS model decrease the scaled step
    keeps (>= 1 - theta inside the interval, by the proposition of the module docstring)."""
    return batch_dot(g, p * d) / batch_dot(g, d)
