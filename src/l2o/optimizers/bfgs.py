"""Dense BFGS with a backtracking (Armijo) or a strong-Wolfe line search, batched.

Every instance of the batch keeps its own inverse-Hessian approximation H_k (``(B, n, n)``)
and finds its own step t_k; one iteration is

    d_k = -H_k g_k,   x_{k+1} = x_k + t_k d_k,   s_k = x_{k+1} - x_k,   y_k = g_{k+1} - g_k,
    H_{k+1} = (I - rho s y^T) H_k (I - rho y s^T) + rho s s^T,   rho = 1 / (y^T s),

(Nocedal and Wright, *Numerical Optimization*, 2nd ed., Alg. 6.1, eq. 6.17). The update is
skipped for an instance whose curvature condition fails, y^T s <= eps ||s|| ||y|| (possible
with a backtracking search on a nonconvex f, or in rounding near the solution), so H_k stays
positive definite. H_0 = (1/L) I (a gradient step of length 1/L first), and before the first
update H_0 is replaced by (y^T s / y^T y) I, the scaling of N&W eq. 6.20, which makes the
method independent of the scale of f. ``initial_scaling=False, h0="identity"`` gives the
textbook (and SciPy) H_0 = I.

Line searches:

* ``bfgs`` (``line_search="armijo"``): backtracking from t = 1 by halving until
  f(x + t d) <= f(x) + c1 t g^T d (N&W Alg. 3.1), ``l2o.optimizers.line_search.armijo``;
* ``bfgs_wolfe`` (``line_search="wolfe"``): the strong-Wolfe search of N&W Alg. 3.5 with
  the ``zoom`` of Alg. 3.6 (cubic interpolation, safeguarded), batched by ``strong_wolfe``:
  each instance runs its own bracketing / zoom state machine, one batched evaluation of
  f and grad f per trial for the whole batch. The strong-Wolfe conditions guarantee
  y^T s > 0, so the update is never skipped on a smooth f;
* ``line_search="none"``: the unit step x_{k+1} = x_k - H_k g_k (no safeguard; the template
  of the learned quasi-Newton method ``l2o.learned.lqn``).

Under the usual assumptions (f twice continuously differentiable, strongly convex on the
level set, Lipschitz Hessian at x*), BFGS with a Wolfe line search that tries t = 1 first
converges superlinearly (N&W Thm. 6.6); the tests check the rate and the iterates against
``scipy.optimize.minimize(method="BFGS")``.

A dense H costs B n^2 memory and O(B n^2) per iteration; ``max_dim`` refuses problems where
that is unreasonable (use ``lbfgs`` there).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from l2o.optimizers.base import Optimizer, batch_dot
from l2o.optimizers.line_search import armijo

LINE_SEARCHES = ("armijo", "wolfe", "none")
INITIAL_STEPS = ("unit", "interpolate")
H0_CHOICES = ("lipschitz", "identity")

#: The curvature condition y^T s > CURVATURE_EPS ||s|| ||y|| for an update (as ``lbfgs``).
CURVATURE_EPS = 1e-10


@dataclasses.dataclass
class BFGSState:
    """x, g: ``(B, n)`` iterate and gradient; f: ``(B,)``; H: ``(B, n, n)`` inverse-Hessian
    approximation; f_prev: ``(B,)`` f at the previous iterate (for the interpolated initial
    step; f + ||g|| / 2 at the start, SciPy's choice); scaled: ``(B,)`` bool, H_0 was rescaled
    (eq. 6.20) or the first update was made; k: iterations done."""

    x: Tensor
    g: Tensor
    f: Tensor
    H: Tensor
    f_prev: Tensor
    scaled: Tensor
    k: int = 0


def initial_inverse_hessian(problem, x0: Tensor, h0: str = "lipschitz") -> Tensor:
    """``(B, n, n)`` H_0: (1/L) I per instance (``h0="lipschitz"``; I where the problem has no
    Lipschitz constant) or I (``"identity"``).

    >>> import l2o
    >>> p = l2o.QuadraticFamily(n=3, condition_number=4.0).sample(2, 0)
    >>> H0 = initial_inverse_hessian(p, p.initial_point())
    >>> tuple(H0.shape), bool(torch.allclose(H0[0], torch.eye(3, dtype=H0.dtype) / p.smoothness()[0]))
    ((2, 3, 3), True)
    """
    B, n = x0.shape
    eye = torch.eye(n, dtype=x0.dtype, device=x0.device).expand(B, n, n)
    if h0 == "identity":
        return eye.clone()
    try:
        L = problem.smoothness().to(dtype=x0.dtype, device=x0.device)
    except (NotImplementedError, AttributeError):
        return eye.clone()
    L = torch.where(torch.isfinite(L) & (L > 0), L, torch.ones_like(L))
    return eye / L[:, None, None]


def bfgs_update(H: Tensor, s: Tensor, y: Tensor, scaled: Tensor, eps: float | None = None) -> tuple[Tensor, Tensor]:
    """The BFGS inverse update of ``H`` (``(B, n, n)``) with the pairs ``s, y`` (``(B, n)``).

    Where ``scaled`` (``(B,)`` bool) is False, H is first replaced by (y^T s / y^T y) I
    (N&W eq. 6.20). Instances whose curvature condition y^T s > eps ||s|| ||y|| fails keep
    H unchanged (eps: ``CURVATURE_EPS``, at least 10 machine epsilons of the dtype), and so
    do instances whose update would overflow (s and y at the rounding level of x). Returns
    ``(H_new, scaled_new)``. The update is written as one rank-2
    correction H - (s v^T + v s^T), v = rho H y - (rho^2 y^T H y + rho) s / 2, which keeps H
    exactly symmetric.

    >>> H = torch.eye(2, dtype=torch.float64).expand(1, 2, 2)
    >>> s, y = torch.tensor([[1.0, 0.0]], dtype=torch.float64), torch.tensor([[2.0, 0.0]], dtype=torch.float64)
    >>> Hn, _ = bfgs_update(H, s, y, torch.ones(1, dtype=torch.bool))
    >>> bool(torch.allclose(Hn[0] @ y[0], s[0]))   # the secant equation H_{k+1} y = s
    True
    """
    if eps is None:
        eps = max(CURVATURE_EPS, 10 * torch.finfo(H.dtype).eps)
    sy = batch_dot(s, y)
    yy = batch_dot(y, y)
    ok = (sy > eps * torch.linalg.vector_norm(s, dim=-1) * torch.linalg.vector_norm(y, dim=-1)) & torch.isfinite(sy)
    n = H.shape[-1]
    first = ok & ~scaled
    if bool(first.any()):
        gamma = torch.where(first, sy / torch.where(first, yy, torch.ones_like(yy)), torch.ones_like(sy))
        eye = torch.eye(n, dtype=H.dtype, device=H.device)
        H = torch.where(first[:, None, None], gamma[:, None, None] * eye, H)
    rho = torch.where(ok, 1.0 / torch.where(ok, sy, torch.ones_like(sy)), torch.zeros_like(sy))
    Hy = torch.bmm(H, y.unsqueeze(-1)).squeeze(-1)
    yHy = batch_dot(y, Hy)
    v = rho.unsqueeze(-1) * Hy - (0.5 * (rho * rho * yHy + rho)).unsqueeze(-1) * s
    ok = ok & torch.isfinite(v).all(-1) & torch.isfinite(s).all(-1)
    s_ok = torch.where(ok.unsqueeze(-1), s, torch.zeros_like(s))
    v = torch.where(ok.unsqueeze(-1), v, torch.zeros_like(v))
    H_new = H - (s_ok.unsqueeze(-1) * v.unsqueeze(-2) + v.unsqueeze(-1) * s_ok.unsqueeze(-2))
    bad = ~torch.isfinite(H_new).flatten(1).all(-1)
    if bool(bad.any()):
        H_new = torch.where(bad[:, None, None], H, H_new)
        ok = ok & ~bad
    return H_new, scaled | ok


def _cubic_min(a: Tensor, fa: Tensor, da: Tensor, b: Tensor, fb: Tensor, db: Tensor) -> Tensor:
    """Minimizer of the cubic interpolating f and f' at a and b (N&W eq. 3.59), elementwise;
    NaN where it does not exist (the caller bisects there)."""
    d1 = da + db - 3.0 * (fa - fb) / (a - b)
    rad = d1 * d1 - da * db
    d2 = torch.sign(b - a) * torch.sqrt(rad.clamp(min=0))
    t = b - (b - a) * (db + d2 - d1) / (db - da + 2.0 * d2)
    return torch.where(rad >= 0, t, torch.full_like(t, float("nan")))


def strong_wolfe(
    problem,
    x: Tensor,
    f: Tensor,
    g: Tensor,
    d: Tensor,
    t0: Tensor | float = 1.0,
    c1: float = 1e-4,
    c2: float = 0.9,
    max_evals: int = 25,
    t_max: float = 1e10,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Batched strong-Wolfe line search along descent directions ``d`` (``(B, n)``).

    Each instance looks for t with

        f(x + t d) <= f(x) + c1 t g^T d   and   |grad f(x + t d)^T d| <= c2 |g^T d|

    by N&W Alg. 3.5 (bracketing: t doubles while f decreases and the slope stays
    negative) and Alg. 3.6 (zoom: the safeguarded cubic interpolant of the bracket's ends,
    kept at least 10% of the bracket away from them, bisection where the cubic has no
    minimizer or an end is non-finite). A trial with a non-finite f counts as a failed
    sufficient decrease. All instances are evaluated together, one batched
    ``value_and_grad`` per trial; an instance's trials depend on its own data only.

    Returns ``(t, x_new, f_new, g_new, found)``, ``(B,)`` / ``(B, n)``. An instance that
    meets the conditions in ``max_evals`` trials has ``found``; another gets the best point
    it saw that satisfies sufficient decrease (``t = 0`` and ``x`` when there is none).

    >>> import l2o
    >>> p = l2o.QuadraticFamily(n=5, condition_number=10.0).sample(3, 0)
    >>> x = p.initial_point(); f, g = p.value_and_grad(x)
    >>> t, x1, f1, g1, found = strong_wolfe(p, x, f, g, -g)
    >>> bool(found.all()), bool((f1 < f).all())
    (True, True)
    """
    B = x.shape[0]
    dt = x.dtype
    dphi0 = batch_dot(g, d)
    t = torch.as_tensor(t0, dtype=dt, device=x.device).expand(B).clone()
    zero = torch.zeros(B, dtype=dt, device=x.device)
    # bracketing phase: (t_prev, f_prev, dphi_prev) is the last trial (0, f, dphi0 at first)
    t_prev, f_prev, dp_prev = zero.clone(), f.clone(), dphi0.clone()
    # zoom phase: lo satisfies sufficient decrease with the lowest f seen; hi brackets
    lo, f_lo, dp_lo = zero.clone(), f.clone(), dphi0.clone()
    hi, f_hi, dp_hi = zero.clone(), f.clone(), dphi0.clone()
    x_lo, g_lo = x.clone(), g.clone()
    mode = torch.zeros(B, dtype=torch.long, device=x.device)  # 0 bracket, 1 zoom, 2 done
    x_acc, f_acc, g_acc, t_acc = x.clone(), f.clone(), g.clone(), zero.clone()
    found = torch.zeros(B, dtype=torch.bool, device=x.device)
    for i in range(max_evals):
        trial = x + t.unsqueeze(-1) * d
        ft, gt = problem.value_and_grad(trial)
        dpt = batch_dot(gt, d)
        finite = torch.isfinite(ft) & torch.isfinite(dpt)
        ft = torch.where(finite, ft, torch.full_like(ft, float("inf")))
        dpt = torch.where(finite, dpt, torch.zeros_like(dpt))
        armijo_fail = ~finite | (ft > f + c1 * t * dphi0)
        curv_ok = finite & (dpt.abs() <= -c2 * dphi0)
        bracket, zoom = mode == 0, mode == 1

        # --- bracketing (Alg. 3.5)
        b_hi = bracket & (armijo_fail | ((ft >= f_prev) & (i > 0)))      # zoom(t_prev, t)
        b_acc = bracket & ~b_hi & curv_ok                                # accept t
        b_rev = bracket & ~b_hi & ~b_acc & (dpt >= 0)                     # zoom(t, t_prev)
        b_ext = bracket & ~b_hi & ~b_acc & ~b_rev                         # extrapolate
        # --- zoom (Alg. 3.6)
        z_hi = zoom & (armijo_fail | (ft >= f_lo))                        # hi <- t
        z_acc = zoom & ~z_hi & curv_ok                                    # accept t
        z_move = zoom & ~z_hi & ~z_acc                                    # lo <- t (maybe hi <- lo)
        z_flip = z_move & (dpt * (hi - lo) >= 0)

        accept = b_acc | z_acc
        x_acc = torch.where(accept.unsqueeze(-1), trial, x_acc)
        g_acc = torch.where(accept.unsqueeze(-1), gt, g_acc)
        f_acc = torch.where(accept, ft, f_acc)
        t_acc = torch.where(accept, t, t_acc)
        found = found | accept

        # new hi: bracketing b_hi -> t; b_rev -> t_prev; zoom z_hi -> t; z_flip -> old lo
        new_hi = torch.where(b_hi | z_hi, t, torch.where(b_rev, t_prev, torch.where(z_flip, lo, hi)))
        new_f_hi = torch.where(b_hi | z_hi, ft, torch.where(b_rev, f_prev, torch.where(z_flip, f_lo, f_hi)))
        new_dp_hi = torch.where(b_hi | z_hi, dpt, torch.where(b_rev, dp_prev, torch.where(z_flip, dp_lo, dp_hi)))
        # new lo: bracketing b_hi -> t_prev; b_rev -> t; zoom z_move -> t; also b_ext keeps lo = t
        lo_is_t = b_rev | z_move | b_ext
        lo_is_prev = b_hi
        new_lo = torch.where(lo_is_t, t, torch.where(lo_is_prev, t_prev, lo))
        new_f_lo = torch.where(lo_is_t, ft, torch.where(lo_is_prev, f_prev, f_lo))
        new_dp_lo = torch.where(lo_is_t, dpt, torch.where(lo_is_prev, dp_prev, dp_lo))
        # the point at lo (b_hi: lo = t_prev, whose point is the current x_lo, since b_ext set it)
        x_lo = torch.where(lo_is_t.unsqueeze(-1), trial, x_lo)
        g_lo = torch.where(lo_is_t.unsqueeze(-1), gt, g_lo)
        hi, f_hi, dp_hi, lo, f_lo, dp_lo = new_hi, new_f_hi, new_dp_hi, new_lo, new_f_lo, new_dp_lo

        # bracketing continues: remember the trial, double t
        t_prev = torch.where(b_ext, t, t_prev)
        f_prev = torch.where(b_ext, ft, f_prev)
        dp_prev = torch.where(b_ext, dpt, dp_prev)
        mode = torch.where(accept, torch.full_like(mode, 2), mode)
        mode = torch.where(b_hi | b_rev, torch.ones_like(mode), mode)
        if not bool((mode != 2).any()):
            break
        # next trial: bracketing doubles; zoom interpolates inside [lo, hi]
        t_ext = torch.clamp(2.0 * t, max=t_max)
        a, b_ = torch.minimum(lo, hi), torch.maximum(lo, hi)
        width = b_ - a
        cubic = _cubic_min(lo, f_lo, dp_lo, hi, f_hi, dp_hi)
        inside = torch.isfinite(cubic) & (cubic >= a + 0.1 * width) & (cubic <= b_ - 0.1 * width)
        t_zoom = torch.where(inside, cubic, 0.5 * (lo + hi))
        # a bracket shrunk to rounding: stop at lo
        tiny = (mode == 1) & (width <= 1e-12 * torch.maximum(b_, torch.full_like(b_, 1e-30)))
        mode = torch.where(tiny, torch.full_like(mode, 2), mode)
        t = torch.where(mode == 0, t_ext, torch.where(mode == 1, t_zoom, t))
        if not bool((mode != 2).any()):
            break
    # instances without an accepted step: the best sufficient-decrease point (lo), or x
    use_lo = ~found
    x_new = torch.where(use_lo.unsqueeze(-1), x_lo, x_acc)
    g_new = torch.where(use_lo.unsqueeze(-1), g_lo, g_acc)
    f_new = torch.where(use_lo, f_lo, f_acc)
    t_new = torch.where(use_lo, lo, t_acc)
    return t_new, x_new, f_new, g_new, found


class BFGS(Optimizer):
    """Dense BFGS with a line search (see the module docstring).

    Args:
        line_search: "armijo" (backtracking from the initial step; ``bfgs``), "wolfe"
            (strong Wolfe; ``bfgs_wolfe``) or "none" (unit step).
        c1, c2: sufficient-decrease and curvature constants (1e-4, 0.9: N&W's choice
            for quasi-Newton methods, and SciPy's).
        initial_step: "unit" (t = 1 first, N&W's advice for quasi-Newton methods) or
            "interpolate" (min(1, 1.01 * 2 (f_k - f_{k-1}) / g^T d), N&W eq. 3.60, SciPy's).
        h0: "lipschitz" (H_0 = I / L) or "identity" (H_0 = I).
        initial_scaling: rescale H_0 by y^T s / y^T y before the first update (eq. 6.20).
        max_evals: trials per line search.
        max_dim: refuse problems with more coordinates (dense H: B n^2 numbers).

    >>> import l2o
    >>> p = l2o.QuadraticFamily(n=10, condition_number=50.0).sample(2, 0)
    >>> solver = BFGS()
    >>> s = solver.init(p, p.initial_point())
    >>> for _ in range(40):
    ...     s = solver.step(p, s)
    >>> bool((p.fixed_point_residual(s.x) < 1e-6).all())
    True
    """

    name = "bfgs"
    handles_nonsmooth = False

    def __init__(self, line_search: str = "armijo", c1: float = 1e-4, c2: float = 0.9, initial_step: str = "unit",
                 h0: str = "lipschitz", initial_scaling: bool = True, max_evals: int = 30, max_dim: int = 4096):
        if line_search not in LINE_SEARCHES:
            raise ValueError(f"{self.name}: line_search must be one of {', '.join(LINE_SEARCHES)}, got {line_search!r}")
        if initial_step not in INITIAL_STEPS:
            raise ValueError(
                f"{self.name}: initial_step must be one of {', '.join(INITIAL_STEPS)}, got {initial_step!r}")
        if h0 not in H0_CHOICES:
            raise ValueError(f"{self.name}: h0 must be one of {', '.join(H0_CHOICES)}, got {h0!r}")
        if not 0 < c1 < c2 < 1:
            raise ValueError(f"{self.name}: need 0 < c1 < c2 < 1, got c1={c1}, c2={c2}")
        if max_evals < 1:
            raise ValueError(f"{self.name}: max_evals must be >= 1, got {max_evals}")
        if max_dim < 1:
            raise ValueError(f"{self.name}: max_dim must be >= 1, got {max_dim}")
        self.line_search = line_search
        self.c1, self.c2 = float(c1), float(c2)
        self.initial_step = initial_step
        self.h0 = h0
        self.initial_scaling = bool(initial_scaling)
        self.max_evals = int(max_evals)
        self.max_dim = int(max_dim)

    def check_problem(self, problem) -> None:
        super().check_problem(problem)
        if problem.dim > self.max_dim:
            raise ValueError(
                f"solver '{self.name}' keeps a dense n x n inverse Hessian per instance, but n = {problem.dim} > "
                f"max_dim = {self.max_dim}; use 'lbfgs' (limited memory) or pass max_dim"
            )

    def init(self, problem, x0: Tensor) -> BFGSState:
        self.check_problem(problem)
        f, g = problem.value_and_grad(x0)
        H = initial_inverse_hessian(problem, x0, self.h0)
        scaled = torch.full((x0.shape[0],), not self.initial_scaling, dtype=torch.bool, device=x0.device)
        f_prev = f + 0.5 * torch.linalg.vector_norm(g, dim=-1)
        return BFGSState(x=x0.clone(), g=g, f=f, H=H, f_prev=f_prev, scaled=scaled, k=0)

    def direction(self, problem, state: BFGSState) -> tuple[Tensor, Tensor]:
        """``(d, H)``: d = -H g (``(B, n)``); where d is not a descent direction (H lost its
        positive definiteness to rounding) H is reset to H_0 and d = -H_0 g."""
        d = -torch.bmm(state.H, state.g.unsqueeze(-1)).squeeze(-1)
        slope = batch_dot(state.g, d)
        bad = ~(slope < 0) & (torch.linalg.vector_norm(state.g, dim=-1) > 0)
        H = state.H
        if bool(bad.any()):
            H0 = initial_inverse_hessian(problem, state.x, self.h0)
            H = torch.where(bad[:, None, None], H0, H)
            d = torch.where(bad.unsqueeze(-1), -torch.bmm(H0, state.g.unsqueeze(-1)).squeeze(-1), d)
        return d, H

    def _t0(self, state: BFGSState, d: Tensor) -> Tensor | float:
        if self.initial_step == "unit":
            return 1.0
        slope = batch_dot(state.g, d)
        t = 1.01 * 2.0 * (state.f - state.f_prev) / slope
        return torch.where(torch.isfinite(t) & (t > 0), torch.clamp(t, max=1.0), torch.ones_like(t))

    def step(self, problem, state: BFGSState) -> BFGSState:
        d, H = self.direction(problem, state)
        if self.line_search == "none":
            x = state.x + d
            f, g = problem.value_and_grad(x)
        elif self.line_search == "armijo":
            x, f, g = armijo(problem, state.x, state.f, state.g, d, t0=self._t0(state, d), c1=self.c1,
                             max_trials=self.max_evals)
        else:
            _, x, f, g, _ = strong_wolfe(problem, state.x, state.f, state.g, d, t0=self._t0(state, d), c1=self.c1,
                                         c2=self.c2, max_evals=self.max_evals)
        H, scaled = bfgs_update(H, x - state.x, g - state.g, state.scaled)
        return BFGSState(x=x, g=g, f=f, H=H, f_prev=state.f, scaled=scaled, k=state.k + 1)


class BFGSWolfe(BFGS):
    """``BFGS`` with the strong-Wolfe line search (``line_search="wolfe"``): the strongest
    classical variant, the one practitioners run (SciPy's ``method="BFGS"``).

    >>> import l2o
    >>> p = l2o.LogisticFamily(n_samples=60, d=5, nnz=2, lam=0.1, penalty="l2").sample(2, 0)
    >>> solver = BFGSWolfe()
    >>> s = solver.init(p, p.initial_point())
    >>> for _ in range(30):
    ...     s = solver.step(p, s)
    >>> bool((p.fixed_point_residual(s.x) < 1e-6).all())
    True
    """

    name = "bfgs_wolfe"

    def __init__(self, line_search: str = "wolfe", c1: float = 1e-4, c2: float = 0.9, initial_step: str = "unit",
                 h0: str = "lipschitz", initial_scaling: bool = True, max_evals: int = 30, max_dim: int = 4096):
        super().__init__(line_search=line_search, c1=c1, c2=c2, initial_step=initial_step, h0=h0,
                         initial_scaling=initial_scaling, max_evals=max_evals, max_dim=max_dim)
