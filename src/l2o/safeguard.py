"""Safeguarded learned optimization: take the learned step only when it provably makes progress.

``Safeguard(learned, fallback, rule)`` is itself an ``Optimizer``. Per instance it
runs the learned solver for a block of ``check_every`` = m iterations from an
*anchor* x_a (the last point that passed a check), then checks the block's last
iterate y:

* ``rule="residual"`` (Heaton, Chen, Wang, Yin, *Safeguarded Learned Convex
  Optimization*, AAAI 2023): with the proximal-gradient map T(x) = prox_{r/L}(x -
  grad f(x) / L) and its fixed-point residual R(x) = ||x - T(x)||, accept iff

      R(y) <= (1 - delta) mu,      mu <- R(y) on acceptance,

  mu_0 = R(x_0); after a fallback block mu <- min(mu, R(x)) at the block's end (the
  "recent term" reference of Heaton et al., kept non-increasing).
* ``rule="descent"`` (sufficient decrease): accept iff

      F(y) <= F(x_a) - delta (L / 2) R(x_a)^2,

  a fraction delta of the decrease that one proximal-gradient step from x_a is
  guaranteed to make (F(T x) <= F(x) - (L/2) ||x - T x||^2; Beck, *First-Order Methods
  in Optimization*, Lemma 10.4). Plain monotonicity F(y) <= F(x_a) where the family
  has no Lipschitz constant. (The MIMO sum-rate has one, a loose global bound, so the
  test there is sufficient decrease with a small required gain.)
* ``rule="finite"``: accept every finite candidate (no progress test, so no
  guarantee beyond "never NaN"); with ``after_horizon="fallback"`` this is a plain
  hand-over from the learned solver to its classical template at the horizon.

A candidate with a NaN or Inf entry is always rejected. On acceptance y becomes the
anchor and the fallback is (re)started there. On rejection the instance goes back to
its anchor and takes m steps of the fallback from it (the first one in the same
iteration, as Heaton et al. take x_{k+1} = T(x_k)), more after repeated rejections
(``max_backoff``); then the learned solver is
restarted at the fallback's point and a new block begins. The state records, per
instance, whether the current iterate came from the fallback (``fired``), how many
checks were made and how many failed (``checks``, ``fallbacks``).

Guarantee (why the wrapped solver keeps the fallback's convergence). Every checked
iterate is either an accepted learned point or the result of fallback steps, and:

1. *Finitely many acceptances* (the learned model is poor, or the instance is far
   out of distribution): after the last accepted anchor x_j the sequence is exactly
   the fallback run from x_j, so it converges with the fallback's rate measured from
   x_j, e.g. F(x_k) - F* <= L ||x_j - x*||^2 / (2 (k - j)) for ISTA and
   2 L ||x_j - x*||^2 / (k - j + 1)^2 for FISTA. The tests check this bound on
   learned models with random and deliberately harmful weights.
2. *Infinitely many acceptances*: under the residual rule the accepted anchors
   satisfy R(x_{a_i}) <= (1 - delta)^i R(x_0) -> 0, so a subsequence reaches the
   fixed-point set of T (the minimizers) at a linear rate; with T as the fallback
   (ISTA / projected gradient / GD, an averaged operator) Heaton et al. (Thm. 3.1)
   give convergence of the whole sequence. Under the descent rule every accepted
   anchor lowers F by at least delta (L/2) R(x_a)^2, so the sum of R^2 over the
   anchors is at most 2 (F(x_0) - F*) / (delta L) and R -> 0 there; F is
   non-increasing at the anchors, and with a descent fallback (ISTA, projected
   gradient, GD) at every checked iterate.

Either way a rejected step costs at most the fallback's own step, and the safeguard
never returns a non-finite iterate at a checked point. With m > 1 the iterates
inside a learned block are unchecked (they are what the learned solver produced);
the guarantees hold at every check, that is every m iterations.

Host synchronisation. The default (compacting) step steps each solver on the rows it
owns, which needs the number of those rows on the host: up to three device-to-host
synchronisations per iteration, free on a CPU but a stall of the queue on a GPU. With
``sync_free=True`` (the default on CUDA) the step is masked instead: both solvers step the
whole batch and ``torch.where`` keeps, row by row, what the compacting step would keep (no
synchronisation; up to twice the arithmetic). The iterates are the same, except for a learned
solver with a batch-shared counter (an unrolled layer index), which then advances at every
iteration, also where the whole batch is in a fallback block.

Beyond the horizon: with ``after_horizon="fallback"`` the learned solver is checked
one last time at its trained horizon and then hands over to the fallback for good
(no more learned steps or checks); with ``"learned"`` the safeguarded learned
recurrence simply continues.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from l2o.optimizers.base import Optimizer, is_shared, merge_state, select_state
from l2o.problems.base import Instances

RULES = ("residual", "descent", "finite")
AFTER_HORIZON = ("learned", "fallback")
DEFAULT_DELTA = {"residual": 0.05, "descent": 0.5, "finite": 0.0}


@dataclasses.dataclass
class SafeguardState:
    """State of ``Safeguard``; B instances, n coordinates.

    Attributes:
        x: ``(B, n)`` current iterate.
        anchor: ``(B, n)`` last checked point (accepted learned point or fallback block end).
        learned, fallback: the two solvers' states. The fallback's is positioned at
            ``anchor`` while the instance is in a learned block.
        mu: ``(B,)`` residual reference (residual rule); F(anchor) (descent rule).
        r_anchor: ``(B,)`` R(anchor) (descent rule; zeros otherwise).
        fallback_left: ``(B,)`` fallback steps left in the current fallback block (0: learned block).
        streak: ``(B,)`` consecutive rejected checks (sets the next fallback block's length).
        fired: ``(B,)`` bool, the current iterate came from the fallback.
        checks, fallbacks: ``(B,)`` number of checks so far, and of rejected ones.
        k: iterations done.
    """

    x: Tensor
    anchor: Tensor
    learned: Any
    fallback: Any
    mu: Tensor
    r_anchor: Tensor
    fallback_left: Tensor
    streak: Tensor
    fired: Tensor
    checks: Tensor
    fallbacks: Tensor
    k: int = 0


def fixed_point_residual_norm(problem: Instances, x: Tensor) -> Tensor:
    """``(B,)`` absolute residual ||x - T(x)|| of the proximal-gradient map with step 1/L."""
    return torch.linalg.vector_norm(x - problem.prox_grad(x), dim=-1)


def _smoothness_or_none(problem: Instances) -> Tensor | None:
    try:
        return problem.smoothness()
    except (NotImplementedError, AttributeError):
        return None


class Safeguard(Optimizer):
    """A learned solver whose steps are accepted only when a convergence test holds.

    Args:
        learned: any ``Optimizer`` (usually an ``l2o.learned`` model).
        fallback: a classical ``Optimizer`` whose guarantee the wrapper inherits.
        rule: ``"residual"`` (Heaton et al.), ``"descent"`` (sufficient decrease) or
            ``"finite"`` (only non-finite candidates are rejected).
        delta: the required relative progress, in [0, 1); default ``DEFAULT_DELTA[rule]``
            (0.05 for the residual rule, as a per-check contraction; 0.5 for the descent
            rule: an accepted block must make half the decrease one proximal-gradient
            step guarantees, so a learned solver that merely crawls downhill is rejected).
        check_every: m, the number of learned iterations per check (1 = every step, as
            in Heaton et al.; a larger m amortizes the check's extra gradient).
        after_horizon: ``"learned"`` or ``"fallback"``; see the module docstring.
        horizon: override of the learned solver's trained horizon (default ``learned.horizon``).
        max_backoff: after j consecutive rejections the fallback block lasts
            m 2^min(j - 1, max_backoff) iterations (0: always m). Interleaving a poor
            learned solver with an accelerated fallback restarts the fallback's momentum
            at every acceptance; the back-off lets the fallback run uninterrupted where the
            learned solver keeps failing (far out of distribution, or at machine
            precision), so the learned solver costs only O(log k) wasted blocks there.
        sync_free: step without device-to-host synchronisation (masked, see the module
            docstring); None (default): on CUDA instances, not on the CPU.

    Example (an untrained black-box LSTM, safe behind FISTA with restart):
        >>> import torch, l2o
        >>> from l2o.safeguard import Safeguard
        >>> problem = l2o.LassoFamily(m=20, n=40, nnz=3).sample(8, generator=0)
        >>> ref = l2o.reference(problem)
        >>> learned = l2o.learned.L2ODM(horizon=20).double()
        >>> safe = Safeguard(learned, l2o.make_solver("fista_restart"), rule="descent")
        >>> alone = l2o.run(learned, problem, max_iter=100, reference=ref)
        >>> guarded = l2o.run(safe, problem, max_iter=100, reference=ref)
        >>> bool((alone.gap[-1] > 1.0).all()), bool((guarded.gap[-1] <= 1e-8).all())
        (True, True)
        >>> tuple(guarded.fallback.shape), bool(guarded.fallback[1:].float().mean() > 0.9)  # (T, B): mostly FISTA
        ((101, 8), True)
    """

    def __init__(
        self,
        learned: Optimizer,
        fallback: Optimizer,
        rule: str = "residual",
        delta: float | None = None,
        check_every: int = 1,
        after_horizon: str = "learned",
        horizon: int | None = None,
        max_backoff: int = 6,
        sync_free: bool | None = None,
    ):
        if rule not in RULES:
            raise ValueError(f"unknown safeguard rule {rule!r}; valid rules: {', '.join(RULES)}")
        delta = DEFAULT_DELTA[rule] if delta is None else delta
        if not 0 <= delta < 1:
            raise ValueError(f"safeguard delta must be in [0, 1), got {delta}")
        if check_every < 1:
            raise ValueError(f"safeguard check_every must be >= 1, got {check_every}")
        if after_horizon not in AFTER_HORIZON:
            raise ValueError(f"unknown after_horizon {after_horizon!r}; valid: {', '.join(AFTER_HORIZON)}")
        self.learned = learned
        self.fallback = fallback
        self.rule = rule
        self.delta = float(delta)
        self.check_every = int(check_every)
        if max_backoff < 0:
            raise ValueError(f"safeguard max_backoff must be >= 0, got {max_backoff}")
        self.max_backoff = int(max_backoff)
        self.sync_free = sync_free
        self.after_horizon = after_horizon
        self.horizon = int(horizon if horizon is not None else getattr(learned, "horizon", 0) or 0)
        if after_horizon == "fallback" and self.horizon < 1:
            raise ValueError("after_horizon='fallback' needs a horizon: pass horizon= or a learned solver with one")
        self.name = f"safeguarded_{getattr(learned, 'name', 'learned')}"
        self.handles_nonsmooth = getattr(learned, "handles_nonsmooth", True) and fallback.handles_nonsmooth

    def check_problem(self, problem: Instances) -> None:
        self.learned.check_problem(problem)
        self.fallback.check_problem(problem)

    # ----- the reference sequence ------------------------------------------------------
    def _measure(self, problem: Instances, x: Tensor) -> Tensor:
        """What the rule compares: R(x) (residual rule) or F(x) (descent rule), ``(B,)``."""
        if self.rule == "residual":
            return fixed_point_residual_norm(problem, x)
        if self.rule == "finite":
            return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        return problem.objective(x)

    def _residual(self, problem: Instances, x: Tensor) -> Tensor:
        """R(x) (``(B,)``), or zeros where the family has no proximal-gradient map."""
        if _smoothness_or_none(problem) is None:
            return torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        return fixed_point_residual_norm(problem, x)

    def _passes(self, problem: Instances, y: Tensor, anchor: Tensor, mu: Tensor,
                r_anchor: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(ok, measure at y, R(y))``, each ``(B,)``, for candidates y checked against
        their anchors (R(y) only for the descent rule, which keeps it for the next check)."""
        finite = torch.isfinite(y).all(-1)
        y_safe = torch.where(finite.unsqueeze(-1), y, anchor)  # never evaluate F at a NaN
        m = self._measure(problem, y_safe)
        if self.rule == "residual":
            ok, r = m <= (1.0 - self.delta) * mu, torch.zeros_like(m)
        elif self.rule == "finite":
            ok, r = torch.ones_like(finite), torch.zeros_like(m)
        else:
            L = _smoothness_or_none(problem)
            need = mu if L is None else mu - self.delta * 0.5 * L * r_anchor.square()
            ok, r = m <= need, self._residual(problem, y_safe)
        return ok & finite & torch.isfinite(m), m, r

    def _backoff(self, streak: Tensor) -> Tensor:
        """Fallback block length in units of m after ``streak`` consecutive rejections:
        2^(streak - 1) up to 2^max_backoff with back-off, else 1."""
        if not self.max_backoff:
            return torch.ones_like(streak)
        return torch.pow(2, (streak - 1).clamp(min=0, max=self.max_backoff))

    # ----- protocol --------------------------------------------------------------------
    def init(self, problem: Instances, x0: Tensor) -> SafeguardState:
        self.check_problem(problem)
        B = x0.shape[0]
        zeros = torch.zeros(B, dtype=torch.long, device=x0.device)
        return SafeguardState(
            x=x0.clone(), anchor=x0.clone(),
            learned=self.learned.init(problem, x0), fallback=self.fallback.init(problem, x0),
            mu=self._measure(problem, x0),
            r_anchor=self._residual(problem, x0) if self.rule == "descent" else torch.zeros_like(x0[:, 0]),
            fallback_left=zeros.clone(), streak=zeros.clone(),
            fired=torch.zeros(B, dtype=torch.bool, device=x0.device), checks=zeros.clone(),
            fallbacks=zeros.clone(), k=0,
        )

    def step(self, problem: Instances, state: SafeguardState) -> SafeguardState:
        k = state.k + 1
        if self.after_horizon == "fallback" and state.k >= self.horizon:
            # Handed over: the checks at the horizon left every fallback state at its iterate.
            fb = self.fallback.step(problem, state.fallback)
            return dataclasses.replace(
                state, x=fb.x, anchor=fb.x, fallback=fb, fallback_left=torch.zeros_like(state.fallback_left),
                fired=torch.ones_like(state.fired), k=k,
            )
        if self.sync_free or (self.sync_free is None and state.x.device.type == "cuda"):
            return self._masked_step(problem, state, k)
        in_fallback = state.fallback_left > 0
        n_fallback = int(in_fallback.sum())  # one host sync per step
        B = state.x.shape[0]
        s = state
        if n_fallback < B:
            s = self._learned_block(problem, s, _rows(~in_fallback, everything=n_fallback == 0), k)
        if n_fallback > 0:
            s = self._fallback_block(problem, s, _rows(in_fallback, everything=n_fallback == B))
        return dataclasses.replace(s, k=k)

    def _learned_block(self, problem: Instances, s: SafeguardState, idx: Tensor | None, k: int) -> SafeguardState:
        """One learned step for the rows ``idx`` (None: all), and the check at a block's end."""
        sub = problem if idx is None else problem.index(idx)
        lstate = s.learned if idx is None else select_state(s.learned, idx)
        lstate = self.learned.step(sub, lstate)
        learned = lstate if idx is None else merge_state(s.learned, idx, lstate)
        x = _put(s.x, idx, lstate.x.to(s.x.dtype))
        fired = _put(s.fired, idx, torch.zeros(sub.batch_size, dtype=torch.bool, device=s.x.device))
        s = dataclasses.replace(s, x=x, learned=learned, fired=fired)
        at_horizon = self.after_horizon == "fallback" and k == self.horizon
        if k % self.check_every == 0 or at_horizon:
            s = self._check(problem, s, idx, sub)
        return s

    def _check(self, problem: Instances, s: SafeguardState, idx: Tensor | None, sub: Instances) -> SafeguardState:
        y = _take(s.x, idx)
        anchor = _take(s.anchor, idx)
        ok, measure, r = self._passes(sub, y, anchor, _take(s.mu, idx), _take(s.r_anchor, idx))
        rows = torch.arange(sub.batch_size, device=y.device) if idx is None else idx
        checks = s.checks.index_add(0, rows, torch.ones_like(rows))
        streak = torch.where(ok, torch.zeros_like(rows), _take(s.streak, idx) + 1)
        s = dataclasses.replace(
            s, checks=checks, streak=_put(s.streak, idx, streak),
            mu=_put(s.mu, idx, torch.where(ok, measure, _take(s.mu, idx))),
            r_anchor=_put(s.r_anchor, idx, torch.where(ok, r, _take(s.r_anchor, idx))),
        )
        n_ok = int(ok.sum())
        if n_ok:  # accepted: the candidate becomes the anchor; the fallback restarts there
            acc = rows[ok]
            sub_acc = sub if n_ok == sub.batch_size else sub.index(torch.nonzero(ok).squeeze(-1))
            y_acc = y[ok]
            s = dataclasses.replace(
                s, anchor=s.anchor.index_copy(0, acc, y_acc),
                fallback=merge_state(s.fallback, acc, self.fallback.init(sub_acc, y_acc)),
            )
        if n_ok < sub.batch_size:  # rejected: back to the anchor, first fallback step now
            local = torch.nonzero(~ok).squeeze(-1)
            rej = rows[local]
            length = self.check_every * self._backoff(streak[local])
            s = dataclasses.replace(
                s, x=s.x.index_copy(0, rej, s.anchor[rej]),
                fallbacks=s.fallbacks.index_add(0, rej, torch.ones_like(rej)),
                fallback_left=s.fallback_left.index_copy(0, rej, length),
            )
            s = self._fallback_block(problem, s, rej)
        return s

    def _fallback_block(self, problem: Instances, s: SafeguardState, idx: Tensor | None) -> SafeguardState:
        """One fallback step for the rows ``idx`` (None: all); at a block's end the
        fallback's point becomes the anchor and the learned solver restarts there."""
        sub = problem if idx is None else problem.index(idx)
        fstate = self.fallback.step(sub, s.fallback if idx is None else select_state(s.fallback, idx))
        left = _take(s.fallback_left, idx) - 1
        s = dataclasses.replace(
            s, x=_put(s.x, idx, fstate.x), fallback=fstate if idx is None else merge_state(s.fallback, idx, fstate),
            fallback_left=_put(s.fallback_left, idx, left),
            fired=_put(s.fired, idx, torch.ones(sub.batch_size, dtype=torch.bool, device=s.x.device)),
        )
        done = left == 0
        n_done = int(done.sum())
        if n_done:
            local = torch.nonzero(done).squeeze(-1)
            rows = local if idx is None else idx[local]
            sub_done = sub if n_done == sub.batch_size else sub.index(local)
            x_done = fstate.x[local]
            s = dataclasses.replace(
                s, anchor=s.anchor.index_copy(0, rows, x_done),
                learned=merge_state(
                    s.learned, rows, _restart(self.learned, sub_done, x_done, select_state(s.learned, rows))
                ),
            )
            # the next candidate must improve on this anchor: F(anchor) for the descent
            # rule; for the residual rule the "recent term" R(anchor), kept non-increasing
            # (min with mu) so that accepted residuals still shrink geometrically
            m = self._measure(sub_done, x_done)
            if self.rule == "residual":
                m = torch.minimum(m, s.mu[rows])
            else:
                s = dataclasses.replace(s, r_anchor=s.r_anchor.index_copy(0, rows, self._residual(sub_done, x_done)))
            s = dataclasses.replace(s, mu=s.mu.index_copy(0, rows, m))
        return s


    # ----- the masked step: no host synchronisation --------------------------------------
    def _masked_step(self, problem: Instances, s: SafeguardState, k: int) -> SafeguardState:
        """The step of ``step`` without host synchronisation: both solvers step every row, and
        ``torch.where`` keeps what the compacting step keeps for that row."""
        learning = s.fallback_left <= 0  # (B,) rows in a learned block
        lnew = self.learned.step(problem, s.learned)
        x = torch.where(learning.unsqueeze(-1), lnew.x.to(s.x.dtype), s.x)
        s = dataclasses.replace(s, x=x, learned=_where_state(learning, lnew, s.learned),
                                fired=s.fired & ~learning)
        stepping = ~learning  # rows that take a fallback step in this iteration
        at_horizon = self.after_horizon == "fallback" and k == self.horizon
        if k % self.check_every == 0 or at_horizon:
            ok, measure, r = self._passes(problem, s.x, s.anchor, s.mu, s.r_anchor)
            ok_l, rej = ok & learning, ~ok & learning
            streak = torch.where(learning, torch.where(ok, torch.zeros_like(s.streak), s.streak + 1), s.streak)
            y = torch.where(ok_l.unsqueeze(-1), s.x, s.anchor)  # finite where accepted
            length = self.check_every * self._backoff(streak)
            s = dataclasses.replace(
                s, checks=s.checks + learning.long(), streak=streak,
                mu=torch.where(ok_l, measure, s.mu), r_anchor=torch.where(ok_l, r, s.r_anchor),
                anchor=y, fallback=_where_state(ok_l, self.fallback.init(problem, y), s.fallback),
                x=torch.where(rej.unsqueeze(-1), s.anchor, s.x), fallbacks=s.fallbacks + rej.long(),
                fallback_left=torch.where(rej, length, s.fallback_left),
            )
            stepping = stepping | rej
        fnew = self.fallback.step(problem, s.fallback)
        left = torch.where(stepping, s.fallback_left - 1, s.fallback_left)
        s = dataclasses.replace(
            s, x=torch.where(stepping.unsqueeze(-1), fnew.x.to(s.x.dtype), s.x),
            fallback=_where_state(stepping, fnew, s.fallback), fallback_left=left, fired=s.fired | stepping,
        )
        done = stepping & (left == 0)  # a fallback block ends: anchor there, restart the learned solver
        x_done = torch.where(done.unsqueeze(-1), s.x, s.anchor)
        m = self._measure(problem, x_done)
        if self.rule == "residual":
            m = torch.minimum(m, s.mu)
        else:
            s = dataclasses.replace(s, r_anchor=torch.where(done, self._residual(problem, x_done), s.r_anchor))
        return dataclasses.replace(
            s, anchor=x_done, mu=torch.where(done, m, s.mu), k=k,
            learned=_where_state(done, _restart(self.learned, problem, x_done, s.learned), s.learned),
        )


def _where_state(mask: Tensor, new: Any, old: Any) -> Any:
    """Row by row, ``new``'s state where ``mask`` (``(B,)`` bool) holds, else ``old``'s; fields
    shared by the batch (Python numbers, ``shared_field``) come from ``new``."""
    changes = {}
    for f in dataclasses.fields(old):
        if not f.init:
            continue
        v, p = getattr(old, f.name), getattr(new, f.name)
        if is_shared(f):
            changes[f.name] = p
        elif isinstance(v, Tensor) and v.ndim > 0:
            changes[f.name] = torch.where(mask.view(-1, *([1] * (v.ndim - 1))), p.to(v.dtype), v)
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            changes[f.name] = _where_state(mask, p, v)
        else:
            changes[f.name] = p
    return dataclasses.replace(old, **changes)


def _restart(learned: Optimizer, problem: Instances, x: Tensor, old: Any) -> Any:
    """The learned solver's state restarted at ``x``, keeping batch-shared fields (such as
    an unrolled layer counter) from ``old`` so that merging keeps the batch consistent."""
    fresh = learned.init(problem, x)
    shared = {
        f.name: getattr(old, f.name) for f in dataclasses.fields(old)
        if not isinstance(getattr(old, f.name), Tensor) and not dataclasses.is_dataclass(getattr(old, f.name))
    }
    return dataclasses.replace(fresh, **shared)


def _rows(mask: Tensor, everything: bool) -> Tensor | None:
    """Row indices of ``mask``, or None when it selects the whole batch (no indexing)."""
    return None if everything else torch.nonzero(mask).squeeze(-1)


def _take(t: Tensor, idx: Tensor | None) -> Tensor:
    return t if idx is None else t[idx]


def _put(t: Tensor, idx: Tensor | None, value: Tensor) -> Tensor:
    return value if idx is None else t.index_copy(0, idx, value)


def fallback_rate(state: SafeguardState) -> Tensor:
    """``(B,)`` fraction of checks that fell back (0 where no check was made yet)."""
    return state.fallbacks.to(torch.float64) / state.checks.clamp(min=1).to(torch.float64)

