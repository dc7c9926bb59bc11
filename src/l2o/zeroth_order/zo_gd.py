"""Zeroth-order gradient descent under a query budget (ZO-Avg / ZO-Align).

    g_k = estimate of grad f(x_k) from values of f only (``estimate_gradient``),
    v_k = beta v_{k-1} + g_k,      x_{k+1} = prox_{eta_k r}(x_k - eta_k v_k),

with eta_k = lr (``decay="constant"``), lr / sqrt(k + 1) (``"sqrt"``) or lr / (k + 1)
(``"inverse"``) and heavy-ball momentum beta (``momentum``, 0 by default). On a smooth
problem (r = 0) only ``problem.objective`` is called, never ``grad`` nor ``prox``. On a
composite problem F = f + r (an L1 penalty, a box, power budgets) the default
(``prox=True``) queries the smooth part f and takes a proximal step on the known r: the
zeroth-order proximal gradient method (Ghadimi, Lan, Zhang, *Math. Prog.* 155, 2016);
``prox=False`` queries F itself as one black box (refused for constrained problems, whose F
is +inf outside the feasible set). The one piece of problem knowledge used besides
function values is the smoothness constant L, for the default step
``lr = step_scale * c / L`` with c = ||grad f||^2 / E||g||^2 of the estimator: 1 for
ZO-Align, q / (q + n + 1) for ZO-Avg with Gaussian directions, q / (q + n - 1) with sphere
directions and q / n with orthonormal or coordinate ones (the step that maximises the
expected one-step decrease of an L-smooth f). Pass ``lr`` for a fully black-box run.

Each instance carries its own count of queries (``QueryAccounting``): it stops, and its
iterate stays, once the next iteration would exceed ``budget``. An instance whose
objective returns NaN or inf at a query stops where it is (``state.failed``; its iterate
and momentum stay finite, it is not queried again), with a warning; the others go on.

Reference: Lin, Song, Xu, *The Multi-Query Paradox in Zeroth-Order Optimization*,
arXiv 2509.15552 (2025): with ZO-Avg one query per iteration is best at a fixed total
budget, with ZO-Align the full subspace (q = n) is; ``benchmarks/bench_zeroth_order.py``
measures under which accounting that holds. Nesterov and Spokoiny, FoCM 2017, for the
Gaussian-smoothing estimator.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import torch
from torch import Tensor

from l2o.optimizers.base import Optimizer
from l2o.problems.base import Instances
from l2o.zeroth_order.accounting import QueryAccounting, check_accounting
from l2o.zeroth_order.directions import standard_normal
from l2o.zeroth_order.estimators import check_options, estimate_gradient
from l2o.zeroth_order.objective import check_evaluation, instances_objective

DECAYS = ("constant", "sqrt", "inverse")
_MASK = (1 << 64) - 1


def step_seed(seed: int, k: int) -> int:
    """A 63-bit seed for iteration ``k`` of a run seeded ``seed`` (splitmix64): the draws of
    an iteration depend on (seed, k) only, so a state can be stepped twice alike.

    >>> step_seed(0, 1) == step_seed(0, 1) != step_seed(0, 2)
    True
    """
    z = (seed * 0x9E3779B97F4A7C15 + (k + 1) * 0xD1B54A32D192ED03) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return (z ^ (z >> 31)) >> 1


def descent_factor(rule: str, directions: str, queries: int, dim: int) -> float:
    """c = ||grad f||^2 / E||g||^2 of the estimator (exact on a quadratic with central
    differences): the default step is c / L.

    >>> descent_factor("avg", "gaussian", 1, 10), descent_factor("align", "orthonormal", 3, 10)
    (0.08333333333333333, 1.0)
    """
    if rule == "align":
        return 1.0
    if directions == "gaussian":
        return queries / (queries + dim + 1)
    if directions == "sphere":
        return queries / (queries + dim - 1)
    return queries / dim


@dataclasses.dataclass
class ZOState:
    """x, velocity: ``(B, n)``; lr: ``(B,)`` base step; queries: ``(B,)`` queries charged
    against the budget; evaluations: ``(B,)`` evaluations of f; failed: ``(B,)`` the
    objective was not finite (the instance stopped); k: iterations taken; seed: the run's
    seed (draws of iteration k depend on (seed, k) only)."""

    x: Tensor
    velocity: Tensor
    lr: Tensor
    queries: Tensor
    evaluations: Tensor
    failed: Tensor
    k: int = 0
    seed: int = 0


class ZOGD(Optimizer):
    """Zeroth-order gradient descent (module docstring).

    Args:
        rule: ``"align"`` (ZO-Align, default) or ``"avg"`` (ZO-Avg).
        queries: directions q per iteration; None: the paper's best for the rule, n for
            align (full-subspace estimation) and 1 for avg.
        directions: ``"gaussian"``, ``"sphere"``, ``"orthonormal"`` or ``"coordinate"``.
        differences: ``"central"`` (default: exact on quadratics) or ``"forward"``.
        mu: smoothing radius > 0; None: ``default_mu`` (per instance, from the dtype).
        lr: base step, a number or a ``(B,)`` tensor (a grid of steps run as one batch);
            None: ``step_scale * descent_factor / L``.
        step_scale: multiplies the default step.
        decay: ``"constant"``, ``"sqrt"`` or ``"inverse"``.
        momentum: heavy-ball beta in [0, 1).
        budget: queries per instance (None: unlimited); at least one iteration's cost.
        count, base: the accounting (``l2o.zeroth_order.accounting``).
        noise: standard deviation of zero-mean Gaussian noise added to every function value
            the method sees (the stochastic setting); 0 by default.
        independent: False (default) draws one set of directions (and noise) per iteration
            shared by the batch, so solving a batch equals solving its instances one by
            one; True draws them per instance.
        evaluation: ``"batched"`` or ``"loop"`` (``l2o.zeroth_order.objective``).
        prox: on a composite problem, query f and take a proximal step on r (default), or
            (False) query F = f + r as one black box.
        seed: seed of the draws.

    >>> import l2o
    >>> p = l2o.QuadraticFamily(n=5, condition_number=3.0).sample(2, 0)
    >>> solver = ZOGD(rule="align", queries=5, budget=120)
    >>> state = solver.init(p, p.initial_point())
    >>> for _ in range(20):
    ...     state = solver.step(p, state)
    >>> state.queries.tolist(), state.k        # 12 iterations of 2q = 10 queries, then stopped
    ([120, 120], 20)
    >>> bool((p.objective(state.x) < p.objective(p.initial_point())).all())
    True
    """

    #: finite differences of a float32 objective are accurate to ~1e-4 only
    float32_iterates = False

    name = "zo_gd"

    def __init__(
        self,
        rule: str = "align",
        queries: int | None = None,
        directions: str = "gaussian",
        differences: str = "central",
        mu: float | None = None,
        lr: float | Tensor | None = None,
        step_scale: float = 1.0,
        decay: str = "constant",
        momentum: float = 0.0,
        budget: int | None = None,
        count: str = "evaluations",
        base: str = "shared",
        noise: float = 0.0,
        independent: bool = False,
        evaluation: str = "batched",
        prox: bool = True,
        seed: int = 0,
    ):
        check_options(rule, directions, differences, base, 1 if queries is None else queries, None)
        check_accounting(differences, base, count)
        check_evaluation(evaluation)
        if mu is not None and not (isinstance(mu, (int, float)) and mu > 0 and math.isfinite(mu)):
            raise ValueError(f"zo_gd: mu must be a number > 0 (or None for the default), got {mu!r}")
        if lr is not None:
            lr_t = torch.as_tensor(lr, dtype=torch.float64)
            if lr_t.ndim > 1 or not bool(((lr_t > 0) & torch.isfinite(lr_t)).all()):
                raise ValueError(f"zo_gd: lr must be a number > 0 or a (B,) tensor of them, got {lr!r}")
        if not (step_scale > 0 and math.isfinite(step_scale)):
            raise ValueError(f"zo_gd: step_scale must be > 0, got {step_scale!r}")
        if decay not in DECAYS:
            raise ValueError(f"zo_gd: decay must be one of {', '.join(DECAYS)}; got {decay!r}")
        if not 0 <= momentum < 1:
            raise ValueError(f"zo_gd: momentum must be in [0, 1), got {momentum!r}")
        if not (noise >= 0 and math.isfinite(noise)):
            raise ValueError(f"zo_gd: noise must be >= 0 (a standard deviation), got {noise!r}")
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
            raise ValueError(f"zo_gd: budget must be a positive integer number of queries (or None), got {budget!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"zo_gd: seed must be an integer, got {seed!r}")
        self.rule, self.queries, self.directions, self.differences = rule, queries, directions, differences
        self.mu, self.lr, self.step_scale, self.decay, self.momentum = mu, lr, step_scale, decay, momentum
        self.budget, self.count, self.base, self.noise = budget, count, base, noise
        self.independent, self.evaluation, self.prox, self.seed = independent, evaluation, bool(prox), seed
        if queries is not None:
            self._check_budget(queries)

    # ----- configuration ------------------------------------------------------------------
    @property
    def accounting(self) -> QueryAccounting:
        return QueryAccounting(self.differences, self.base, self.count)

    def queries_for(self, dim: int) -> int:
        """q for a problem of dimension ``dim`` (the default follows the rule)."""
        if self.queries is not None:
            return self.queries
        return dim if self.rule == "align" else 1

    def _check_budget(self, q: int) -> None:
        cost = self.accounting.charge(q)
        if self.budget is not None and self.budget < cost:
            raise ValueError(
                f"zo_gd: budget={self.budget} is smaller than one iteration's queries, "
                f"{self.accounting.describe(q)}; expected budget >= {cost}"
            )

    def uses_prox(self, problem: Instances) -> bool:
        """Whether steps on ``problem`` query f and take a proximal step on r."""
        return self.prox and problem.has_nonsmooth

    def check_problem(self, problem: Instances) -> None:
        if problem.is_constrained and not self.prox:
            raise ValueError(
                f"solver '{self.name}' with prox=False queries F = f + r around the iterate, which is +inf outside "
                f"the feasible set of a constrained problem (a box or power budgets); use prox=True (the default)"
            )
        check_options(self.rule, self.directions, self.differences, self.base, self.queries_for(problem.dim),
                      problem.dim)

    # ----- protocol -----------------------------------------------------------------------------
    def init(self, problem: Instances, x0: Tensor) -> ZOState:
        self.check_problem(problem)
        q = self.queries_for(problem.dim)
        self._check_budget(q)
        B = x0.shape[0]
        if self.lr is None:
            c = descent_factor(self.rule, self.directions, q, problem.dim)
            lr = (self.step_scale * c / problem.smoothness()).to(x0.dtype)
        else:
            lr = torch.as_tensor(self.lr, dtype=x0.dtype, device=x0.device) * self.step_scale
            if lr.ndim == 0:
                lr = lr.expand(B).clone()
            elif lr.shape != (B,):
                raise ValueError(f"zo_gd: lr has shape {tuple(lr.shape)}; expected a number or ({B},), one a row")
        zeros = torch.zeros(B, dtype=torch.long, device=x0.device)
        return ZOState(x=x0.clone(), velocity=torch.zeros_like(x0), lr=lr, queries=zeros, evaluations=zeros.clone(),
                       failed=torch.zeros(B, dtype=torch.bool, device=x0.device), k=0, seed=self.seed)

    def step(self, problem: Instances, state: ZOState) -> ZOState:
        q = self.queries_for(problem.dim)
        acc = self.accounting
        cost = acc.charge(q)
        active = ~state.failed
        if self.budget is not None:
            active = active & (state.queries + cost <= self.budget)
        B = state.x.shape[0]
        n_active = int(active.sum())
        if n_active == 0:
            return dataclasses.replace(state, k=state.k + 1)
        # evaluate the active rows only (all rows where the instances cannot be indexed)
        subset = n_active < B and problem.can_index
        rows = torch.nonzero(active).squeeze(-1) if subset else None
        sub = problem.index(rows) if subset else problem
        x = state.x[rows] if subset else state.x

        S = acc.evaluations(q)
        use_prox = self.uses_prox(problem)
        gen = torch.Generator(device=x.device).manual_seed(step_seed(state.seed, state.k))
        fn = instances_objective(sub, S, self.evaluation, "smooth" if use_prox else "objective")
        if self.noise > 0:
            fn = _noisy(fn, self.noise, gen, S, x.shape[0], self.independent)
        est = estimate_gradient(fn, x, q, self.rule, self.directions, self.differences, self.mu, gen,
                                base=self.base, independent=self.independent)
        scale = {"constant": 1.0, "sqrt": 1.0 / math.sqrt(state.k + 1), "inverse": 1.0 / (state.k + 1)}[self.decay]
        eta = scale * state.lr
        finite = torch.isfinite(est.grad).all(dim=-1)
        if rows is None and n_active == B and bool(finite.all()):  # the common case: every row moves
            v = est.grad if self.momentum == 0 else self.momentum * state.velocity + est.grad
            x_new = state.x - eta.unsqueeze(-1) * v
            return ZOState(
                x=problem.prox(x_new, eta) if use_prox else x_new,
                velocity=v, lr=state.lr, queries=state.queries + cost, evaluations=state.evaluations + S,
                failed=state.failed, k=state.k + 1, seed=state.seed)
        rows = torch.arange(B, device=x.device) if rows is None else rows
        ok = finite & active[rows]
        moved = torch.zeros(B, dtype=torch.bool, device=x.device).index_put((rows,), ok)
        g = torch.zeros_like(state.x).index_put((rows,), torch.where(ok.unsqueeze(-1), est.grad, 0.0))
        v = self.momentum * state.velocity + g
        x_new = state.x - eta.unsqueeze(-1) * v
        if use_prox:
            x_new = problem.prox(x_new, eta)
        keep = moved.unsqueeze(-1)
        bad = active & ~moved
        n_bad = int(bad.sum())
        if n_bad:
            warnings.warn(
                f"zo_gd: the objective returned NaN or inf for {n_bad} instance(s) at iteration {state.k + 1}; "
                f"they stop at their current iterate (state.failed)", RuntimeWarning, stacklevel=2)
        evaluated = torch.zeros(B, dtype=torch.bool, device=x.device).index_fill(0, rows, True)
        return ZOState(
            x=torch.where(keep, x_new, state.x),
            velocity=torch.where(keep, v, state.velocity),
            lr=state.lr,
            queries=state.queries + cost * active,
            evaluations=state.evaluations + S * evaluated,
            failed=state.failed | bad,
            k=state.k + 1,
            seed=state.seed,
        )


def _noisy(fn, std: float, generator: torch.Generator, slots: int, batch: int, independent: bool):
    """``fn`` plus N(0, std^2) noise on every value: one draw per (slot, instance), or per slot
    shared by the batch when not ``independent``."""

    def noisy(points: Tensor) -> Tensor:
        values = fn(points)
        e = standard_normal((slots, batch if independent else 1), generator, values.dtype, values.device)
        return values + std * e.expand(slots, batch).reshape(-1)

    return noisy
