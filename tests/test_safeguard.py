"""Safeguard: the wrapped solver keeps the fallback's guarantee whatever the learned solver does."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import l2o
from l2o.evaluation import reference
from l2o.learned import GOMathL2O, MathL2O
from l2o.optimizers import ISTA, FISTARestart, Optimizer, merge_state, select_state
from l2o.problems import LassoFamily, LogisticFamily
from l2o.safeguard import Safeguard, fallback_rate, fixed_point_residual_norm


@dataclasses.dataclass
class XState:
    x: torch.Tensor
    k: int = 0


class Harmful(Optimizer):
    """A 'learned' solver that climbs: x + 10 grad / L (always worse)."""

    name = "harmful"
    horizon = 20

    def init(self, problem, x0):
        return XState(x0.clone())

    def step(self, problem, state):
        return XState(state.x + 10.0 * problem.grad(state.x) / problem.smoothness().unsqueeze(-1), state.k + 1)


class NaNSolver(Harmful):
    name = "nan"

    def step(self, problem, state):
        return XState(torch.full_like(state.x, float("nan")), state.k + 1)


def random_go_math(seed: int, scale: float = 3.0) -> GOMathL2O:
    """GO-Math-L2O with random (not trained, not default) weights, float64."""
    torch.manual_seed(seed)
    m = GOMathL2O(horizon=20).double()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0.0, scale)
    return m


@pytest.fixture(scope="module")
def lasso():
    family = LassoFamily(m=30, n=60, nnz=6, lam=0.1)
    return family.sample(8, 3, dtype=torch.float64)


def _trajectory(solver, problem, x0, K):
    """Iterates, states and objectives of K steps."""
    state = solver.init(problem, x0)
    states = [state]
    for _ in range(K):
        state = solver.step(problem, state)
        states.append(state)
    return states


def test_nan_candidates_are_always_rejected_and_the_run_is_the_fallback(lasso):
    x0 = lasso.initial_point()
    sg = Safeguard(NaNSolver(), ISTA(), rule="residual")
    states = _trajectory(sg, lasso, x0, 30)
    ista = _trajectory(ISTA(), lasso, x0, 30)
    for s, t in zip(states[1:], ista[1:]):
        assert torch.isfinite(s.x).all()
        torch.testing.assert_close(s.x, t.x, rtol=0, atol=1e-14)
        assert bool(s.fired.all())
    last = states[-1]
    assert bool((last.fallbacks == last.checks).all()) and bool((last.checks > 0).all())
    assert torch.equal(fallback_rate(last), torch.ones(lasso.batch_size, dtype=torch.float64))


def test_harmful_learned_solver_meets_the_ista_rate_bound(lasso):
    """Under the descent rule every candidate of a solver that climbs is rejected: the
    iterates are ISTA's and satisfy F(x_k) - F* <= L ||x_0 - x*||^2 / (2k)
    (Beck and Teboulle 2009, Thm 3.1)."""
    ref = reference(lasso)
    x0 = lasso.initial_point() + 1.0
    sg = Safeguard(Harmful(), ISTA(), rule="descent")
    states = _trajectory(sg, lasso, x0, 60)
    L = lasso.smoothness()
    R2 = (x0 - ref.x).square().sum(-1)
    for k, s in enumerate(states[1:], start=1):
        excess = lasso.objective(s.x) - ref.objective
        assert bool((excess <= L * R2 / (2 * k) * (1 + 1e-9) + 1e-12).all()), k
    assert bool((states[-1].fallbacks == states[-1].checks).all())


@pytest.mark.parametrize("rule", ["residual", "descent"])
@pytest.mark.parametrize("seed", [0, 1, 2, "harmful"])
def test_random_learned_weights_meet_the_fallback_bound_from_the_last_accepted_point(lasso, rule, seed):
    """With m = 1 and no back-off every iterate is checked; after the last accepted
    point x_j the run is ISTA from x_j, so F(x_k) - F* <= L ||x_j - x*||^2 / (2 (k - j))."""
    ref = reference(lasso)
    x0 = lasso.initial_point() + 2.0
    learned = Harmful() if seed == "harmful" else random_go_math(seed)
    sg = Safeguard(learned, ISTA(), rule=rule, delta=0.1, max_backoff=0)
    states = _trajectory(sg, lasso, x0, 80)
    L = lasso.smoothness()
    B = lasso.batch_size
    last_x = x0.clone()
    last_k = torch.zeros(B, dtype=torch.float64)
    mu0 = fixed_point_residual_norm(lasso, x0)
    accepted = torch.zeros(B, dtype=torch.long)
    for k, s in enumerate(states[1:], start=1):
        acc = ~s.fired
        bound = L * (last_x - ref.x).square().sum(-1) / (2 * (k - last_k))
        excess = lasso.objective(s.x) - ref.objective
        ok = acc | (excess <= bound * (1 + 1e-9) + 1e-12)
        assert bool(ok.all()), (k, excess[~ok], bound[~ok])
        accepted += acc.long()
        if rule == "residual":  # accepted anchors shrink geometrically against mu_0
            r = fixed_point_residual_norm(lasso, s.x)
            assert bool((r[acc] <= (0.9 ** accepted[acc]).double() * mu0[acc] * (1 + 1e-12)).all())
        last_x = torch.where(acc.unsqueeze(-1), s.x, last_x)
        last_k = torch.where(acc, torch.full_like(last_k, k), last_k)
    assert torch.isfinite(states[-1].x).all()


def test_descent_rule_with_a_descent_fallback_never_increases_the_objective(lasso):
    x0 = lasso.initial_point() - 5.0
    for m in (1, 4):
        sg = Safeguard(random_go_math(4, scale=1.0), ISTA(), rule="descent", check_every=m, max_backoff=0)
        states = _trajectory(sg, lasso, x0, 40)
        F = [lasso.objective(s.x) for s in states]
        # checked iterates (every m-th; all of them are checked or fallback when m = 1)
        checked = [F[k] for k in range(0, len(F), m)]
        for a, b in zip(checked, checked[1:]):
            assert bool((b <= a + 1e-12 * a.abs().clamp(min=1)).all())


@pytest.mark.parametrize("rule", ["residual", "descent"])
@pytest.mark.parametrize("shift", [100.0, -50.0])
def test_far_out_of_distribution_safeguarded_solver_converges(shift, rule):
    """Random weights, starts far away: converges within 1.3x FISTA-restart's iterations."""
    family = LassoFamily(m=30, n=60, nnz=6, lam=0.1, x0_shift=shift)
    problem = family.sample(6, 5, dtype=torch.float64)
    fista = l2o.run(FISTARestart(), problem, max_iter=3000, tol=1e-9)
    sg = Safeguard(random_go_math(7), FISTARestart(), rule=rule)
    traj = l2o.run(sg, problem, max_iter=int(1.3 * int(fista.iterations[-1])), tol=1e-9)
    assert bool((traj.gap[-1] <= 1e-9).all())
    assert traj.fallback is not None and traj.fallback.shape == traj.gap.shape


def test_a_good_learned_solver_is_accepted(lasso):
    """Template-initialized Math-L2O is ISTA: every candidate passes the descent rule
    with delta = 0 (ISTA decreases F), so the safeguard is the learned solver itself."""
    m = MathL2O(variant="P", init="template").double()
    x0 = lasso.initial_point()
    sg = Safeguard(m, FISTARestart(), rule="descent", delta=0.0)
    states = _trajectory(sg, lasso, x0, 25)
    raw = _trajectory(m, lasso, x0, 25)
    assert not any(bool(s.fired.any()) for s in states[1:])
    torch.testing.assert_close(states[-1].x, raw[-1].x, rtol=0, atol=1e-13)


def test_handover_after_the_horizon_is_the_fallback_from_there(lasso):
    x0 = lasso.initial_point()
    m = random_go_math(3, scale=0.3)
    sg = Safeguard(m, FISTARestart(), rule="descent", after_horizon="fallback", horizon=10)
    states = _trajectory(sg, lasso, x0, 30)
    # from iteration 10 on: FISTA with restart started at the horizon's iterate
    fista = _trajectory(FISTARestart(), lasso, states[10].x, 20)
    for a, b in zip(states[11:], fista[1:]):
        torch.testing.assert_close(a.x, b.x, rtol=0, atol=1e-13)
        assert bool(a.fired.all())


def test_back_off_lengthens_fallback_blocks():
    family = LassoFamily(m=30, n=60, nnz=6, lam=0.1)
    problem = family.sample(2, 0, dtype=torch.float64)
    sg = Safeguard(Harmful(), FISTARestart(), rule="descent", max_backoff=3)
    states = _trajectory(sg, problem, problem.initial_point(), 40)
    # a rejected check at k starts a fallback block of 1, 2, 4, 8, 8, ... iterations
    # (the first step in the same iteration): checks at k = 1, 2, 4, 8, 16, 24, 32, 40
    assert int(states[-1].checks[0]) == 8
    fista = _trajectory(FISTARestart(), problem, problem.initial_point(), 40)
    # a harmful solver that is always rejected costs nothing but the checks: the back-off
    # blocks are uninterrupted FISTA runs restarted at the block starts, never worse than
    # F(x_0)
    assert bool((problem.objective(states[-1].x) <= problem.objective(fista[0].x)).all())


def test_state_is_batch_first_and_compactable(lasso):
    sg = Safeguard(random_go_math(1), FISTARestart(), check_every=3)
    state = sg.init(lasso, lasso.initial_point())
    for _ in range(7):
        state = sg.step(lasso, state)
    idx = torch.tensor([0, 3, 5])
    sub = select_state(state, idx)
    assert sub.x.shape == (3, lasso.dim) and sub.learned.h.shape[0] == 3 and sub.fallback.t.shape == (3,)
    back = merge_state(state, idx, sub)
    torch.testing.assert_close(back.x, state.x)
    # solve compacts the batch as instances converge
    res = l2o.solve(sg, lasso, tol=1e-8, max_iter=3000)
    assert bool(res.converged.all())


def test_float32_logistic_and_smooth_problem():
    problem = LogisticFamily(n_samples=200, d=20, nnz=5).sample(4, 0, dtype=torch.float32)
    sg = Safeguard(GOMathL2O(horizon=10), FISTARestart(), rule="residual")
    traj = l2o.run(sg, problem, max_iter=300)
    assert traj.x.dtype == torch.float32
    assert bool((traj.gap[-1] <= 1e-4).all())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rule": "magic"}, "unknown safeguard rule 'magic'"),
        ({"delta": 1.0}, "delta must be in"),
        ({"check_every": 0}, "check_every must be >= 1"),
        ({"after_horizon": "never"}, "unknown after_horizon"),
        ({"max_backoff": -1}, "max_backoff must be >= 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Safeguard(GOMathL2O(), ISTA(), **kwargs)


def test_a_smooth_only_fallback_refuses_a_nonsmooth_problem(lasso):
    from l2o.optimizers import GradientDescent

    with pytest.raises(ValueError, match="smooth unconstrained"):
        Safeguard(GOMathL2O().double(), GradientDescent()).init(lasso, lasso.initial_point())


def test_finite_rule_is_the_learned_solver_then_a_hand_over(lasso):
    x0 = lasso.initial_point()
    m = random_go_math(5, scale=0.5)
    sg = Safeguard(m, FISTARestart(), rule="finite", after_horizon="fallback", horizon=8)
    states = _trajectory(sg, lasso, x0, 20)
    raw = _trajectory(m, lasso, x0, 8)
    for a, b in zip(states[1:9], raw[1:]):
        torch.testing.assert_close(a.x, b.x, rtol=0, atol=1e-13)
    fista = _trajectory(FISTARestart(), lasso, states[8].x, 12)
    torch.testing.assert_close(states[-1].x, fista[-1].x, rtol=0, atol=1e-13)
    # a NaN is still rejected
    nan = _trajectory(Safeguard(NaNSolver(), ISTA(), rule="finite"), lasso, x0, 5)
    assert torch.isfinite(nan[-1].x).all()
