"""The common, registry-driven test suite that every classical solver must pass.

Every classical solver in ``l2o.registry.CLASSICAL`` is paired with every small test problem it
accepts (a pair is left out when ``check_problem`` or ``init`` refuses it with a
``ValueError``; ``test_check_problem_agrees_with_init`` checks that those two agree).
For each pair the suite checks the protocol properties DESIGN.md asks of every
solver: dtype follows the problem (float32 and float64), batch invariance,
determinism, stable state shapes, ``select_state`` commuting with ``step``, a pure
(non-mutating) ``step``, no NaN/Inf from a zero or a huge starting point,
feasibility on boxes, progress, and monotone descent for descent methods.
"""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch

import l2o
from l2o.evaluation import reference
from l2o.optimizers import select_state
from l2o.problems.mimo import MimoInstances
from l2o.registry import CLASSICAL, make_solver

# --------------------------------------------------------------------------------------
# Problems: small, one per kind; shared and per-instance data matrices both appear.
# --------------------------------------------------------------------------------------
B = 4




def psd_qp() -> l2o.QuadraticInstances:
    """Per-instance Q, heterogeneous batch, exactly representable in float32 (so that
    the float32 problem is the same well-posed problem): Q = U diag(s) U' with U a
    signed, permuted Hadamard matrix / 4 (n = 16, orthogonal, entries +-1/4) and
    integer s. Instances 0 and 2 are positive definite (s in 1..10), 1 and 3 PSD of
    rank 13 with q = Q z in the range of Q (bounded below, mu = 0)."""
    n = 16
    H = torch.ones(1, 1, dtype=torch.float64)
    while H.shape[0] < n:
        H = torch.cat([torch.cat([H, H], 1), torch.cat([H, -H], 1)], 0)
    g = torch.Generator().manual_seed(5)
    Qs, qs = [], []
    for b in range(B):
        signs = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0).to(torch.float64)
        U = H[torch.randperm(n, generator=g)] * signs.unsqueeze(-1) / 4.0
        spectrum = torch.randint(1, 11, (n,), generator=g).to(torch.float64)
        if b % 2 == 1:
            spectrum[:3] = 0.0
        Q = (U * spectrum) @ U.T
        Qs.append(Q)
        qs.append(Q @ torch.randint(-3, 4, (n,), generator=g).to(torch.float64))
    return l2o.QuadraticInstances(torch.stack(Qs), torch.stack(qs))


PROBLEMS = {
    # smooth strongly convex QP (kappa = 10), one Q per instance (batched-matmul path)
    "qp": lambda: l2o.QuadraticFamily(n=12, condition_number=10.0, shared_matrix=False).sample(B, 0),
    # convex QP, some instances singular (mu = 0) and some not, in one batch
    "qp_psd": psd_qp,
    # overdetermined noisy least squares (mu > 0, F* > 0), one W per instance
    "least_squares": lambda: l2o.LeastSquaresFamily(d=10, m=16, noise_std=0.1).sample(B, 0),
    # LASSO with a shared dictionary (mu = 0)
    "lasso": lambda: l2o.LassoFamily(m=12, n=24, nnz=4, lam=0.1).sample(B, 0),
    # box-constrained QP with a shared Q, [-0.1, 0.1]^n (many active bounds)
    "box_qp": lambda: l2o.QuadraticFamily(n=12, condition_number=20.0, box=0.1).sample(B, 0),
    # l2-regularized logistic regression (smooth, mu = lam), one X per instance
    "logistic_l2": lambda: l2o.LogisticFamily(n_samples=40, d=8, nnz=3, lam=0.1, penalty="l2").sample(B, 0),
    # MIMO sum-rate (non-convex, per-cell power budgets): Rayleigh and geometric channels
    "mimo": lambda: l2o.problems.MimoFamily(cells=2, users=2, tx_antennas=4, rx_antennas=2, streams=1).sample(B, 0),
    "mimo_geometric": lambda: l2o.problems.MimoFamily(cells=2, users=1, tx_antennas=3, rx_antennas=2, streams=2,
                                                      channel="geometric").sample(B, 0),
}
DTYPES = [torch.float64, torch.float32]
DTYPE_IDS = ["f64", "f32"]

#: Descent methods: F(x_{k+1}) <= F(x_k) at every step (up to rounding).
DESCENT = ["gd", "ista", "pgd", "lbfgs", "newton"]
#: Fixed precoders (MIMO): init computes the precoder from the channels and ignores x0.
FIXED = ["mrt", "zf", "rzf"]
#: Iterative methods with their own start (the INFOCOM paper's WMMSE: zero-forcing with equal power), ignoring x0.
OWN_START = ["wmmse_paper"]
#: Non-convex problems: no progress rate toward the reference, only ascent of the rate.
NONCONVEX = ["mimo", "mimo_geometric"]
#: Smooth-only methods that must refuse nonsmooth problems (LASSO, box QP).
SMOOTH_ONLY = ["gd", "nesterov", "heavy_ball", "lbfgs", "newton"]


@functools.cache
def problem(name: str, dtype: torch.dtype = torch.float64):
    """A cached batch of B instances (drawn in float64, then cast). Tests must not mutate it."""
    p = PROBLEMS[name]()
    return p if dtype == torch.float64 else p.to(dtype=dtype)


def refusal(solver_name: str, problem_name: str) -> str | None:
    """Why the pair is refused (the ValueError message), or None when it is accepted."""
    p = problem(problem_name)
    solver = make_solver(solver_name)
    try:
        solver.check_problem(p)
        solver.init(p, p.initial_point())
    except ValueError as e:
        return str(e)
    return None


PAIRS = [(s, p) for s in CLASSICAL for p in PROBLEMS if refusal(s, p) is None]
PAIR_IDS = [f"{s}-{p}" for s, p in PAIRS]
BOX_PAIRS = [(s, p) for s, p in PAIRS if p == "box_qp"]
DESCENT_PAIRS = [(s, p) for s, p in PAIRS if s in DESCENT]

pairs = pytest.mark.parametrize("solver_name,problem_name", PAIRS, ids=PAIR_IDS)
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)


def start(p, kind: str = "random", seed: int = 1) -> torch.Tensor:
    """A ``(B, n)`` starting point: zeros, 1e6 * ones, a random feasible point, or
    "mixed": instances at different stages (even rows next to the solution, on its
    support, odd rows far away and dense), the situation of a batch being compacted."""
    if kind == "zero":
        return torch.zeros(p.batch_size, p.dim, dtype=p.dtype)
    if kind == "huge":
        # MIMO precoders at 1e6 carry 1e12 x the power budget: the interference covariance
        # (noise sigma^2 = 1 plus rank-deficient interference ~ |x|^2) is then singular in
        # float32 and the rate is not representable; 1e2 (1e4 x the budget, interference
        # 1e6 x the noise on the strongest geometric links) is what float32 can evaluate
        huge = 1e2 if isinstance(p, MimoInstances) else 1e6
        return torch.full((p.batch_size, p.dim), huge, dtype=p.dtype)
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(p.batch_size, p.dim, generator=g, dtype=torch.float64)
    if kind == "mixed":
        x_star = reference(p.to(dtype=torch.float64)).x
        near = x_star + 1e-3 * v * (x_star != 0)
        v = torch.where(torch.arange(p.batch_size).unsqueeze(-1) % 2 == 0, near, 10.0 * v)
    v = v.to(p.dtype)
    return p.prox(v, 1.0 / p.smoothness())  # projection for a box, identity when r = 0


def tensor_fields(state) -> dict[str, torch.Tensor]:
    """Every tensor in a (possibly nested) state dataclass, by dotted name."""
    out = {}
    for f in dataclasses.fields(state):
        v = getattr(state, f.name)
        if isinstance(v, torch.Tensor):
            out[f.name] = v
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            out.update({f"{f.name}.{k}": t for k, t in tensor_fields(v).items()})
    return out


def other_fields(state) -> dict[str, object]:
    return {f.name: getattr(state, f.name) for f in dataclasses.fields(state)
            if not isinstance(getattr(state, f.name), torch.Tensor)
            and not dataclasses.is_dataclass(getattr(state, f.name))}


def iterate(solver, p, x0, steps):
    """States after 0, 1, ..., steps iterations."""
    states = [solver.init(p, x0)]
    for _ in range(steps):
        states.append(solver.step(p, states[-1]))
    return states


def exact_objective(p, x):
    """F(x) in float64 for iterates of any dtype."""
    return p.to(dtype=torch.float64).objective(x.to(torch.float64))


# --------------------------------------------------------------------------------------
# Registry and refusals
# --------------------------------------------------------------------------------------
def test_registry_is_covered_by_the_suite():
    """Every registered solver takes part in the suite with at least two problems."""
    for name in CLASSICAL:
        n_pairs = sum(1 for s, _ in PAIRS if s == name)
        assert n_pairs >= 2, f"solver {name!r} accepts only {n_pairs} suite problem(s)"


@pytest.mark.parametrize("name", list(CLASSICAL))
def test_registry_name_matches_solver_name(name):
    """Trajectories and records use ``solver.name``: it must be the registry key."""
    solver = make_solver(name)
    assert solver.name == name
    assert isinstance(repr(solver), str) and type(solver).__name__ in repr(solver)


@pytest.mark.parametrize("solver_name", SMOOTH_ONLY)
@pytest.mark.parametrize("problem_name,kind", [("lasso", "L1"), ("box_qp", "box")])
def test_smooth_only_solvers_refuse_nonsmooth_problems(solver_name, problem_name, kind):
    p = problem(problem_name)
    solver = make_solver(solver_name)
    # the message names the solver and says what is wrong with the problem
    with pytest.raises(ValueError, match=rf"(?s)'{solver_name}'.*{kind}"):
        solver.check_problem(p)
    with pytest.raises(ValueError, match=solver_name):
        solver.init(p, p.initial_point())


def mu_zero_problems():
    under = l2o.LeastSquaresFamily(d=20, m=10).sample(3, 0)  # m < d: mu = 0
    out = {"underdetermined_least_squares": under, "lasso": problem("lasso"), "qp_psd": problem("qp_psd")}
    for p in out.values():
        assert bool((p.strong_convexity() == 0).any())
    return out


@pytest.mark.parametrize("which", ["underdetermined_least_squares", "lasso", "qp_psd"])
def test_nesterov_sc_refuses_mu_zero_in_init(which):
    p = mu_zero_problems()[which]
    with pytest.raises(ValueError, match=r"nesterov_sc.*mu"):
        make_solver("nesterov_sc").init(p, p.initial_point())


@pytest.mark.parametrize("which", ["underdetermined_least_squares", "lasso", "qp_psd"])
def test_nesterov_sc_check_problem_refuses_mu_zero(which):
    """``check_problem`` is documented as 'raise ValueError when this method cannot solve
    problem'; tools (CLI, compare) use it to filter pairs, so it must refuse mu = 0."""
    p = mu_zero_problems()[which]
    with pytest.raises(ValueError, match=r"nesterov_sc.*mu"):
        make_solver("nesterov_sc").check_problem(p)


def test_nesterov_sc_accepts_mu_zero_with_explicit_mu():
    p = mu_zero_problems()["underdetermined_least_squares"]
    solver = l2o.make_solver("nesterov_sc", mu=0.01)
    solver.check_problem(p)
    state = solver.step(p, solver.init(p, p.initial_point()))
    assert bool(torch.isfinite(state.x).all())


@pytest.mark.parametrize("solver_name", list(CLASSICAL))
@pytest.mark.parametrize("problem_name", list(PROBLEMS))
def test_check_problem_agrees_with_init(solver_name, problem_name):
    """A pair that ``check_problem`` accepts must not be refused later by ``init``."""
    p = problem(problem_name)
    solver = make_solver(solver_name)
    try:
        solver.check_problem(p)
    except ValueError:
        return  # refused up front: fine
    try:
        solver.init(p, p.initial_point())
    except ValueError as e:
        pytest.fail(f"check_problem accepted {problem_name} but init refused it: {e}")


# --------------------------------------------------------------------------------------
# Protocol properties, for every accepted pair
# --------------------------------------------------------------------------------------
@pairs
@dtypes
def test_state_dtype_follows_problem(solver_name, problem_name, dtype):
    p = problem(problem_name, dtype)
    solver = make_solver(solver_name)
    for state in iterate(solver, p, start(p), 3):
        assert state.x.dtype == dtype
        assert state.x.shape == (B, p.dim)
        for name, t in tensor_fields(state).items():
            if t.is_floating_point():
                assert t.dtype == dtype, f"state.{name} is {t.dtype}, problem is {dtype}"


@pairs
def test_state_shapes_stable_and_batch_first(solver_name, problem_name):
    p = problem(problem_name)
    solver = make_solver(solver_name)
    states = iterate(solver, p, start(p), 12)
    first = tensor_fields(states[0])
    for name, t in first.items():
        assert t.ndim >= 1 and t.shape[0] == B, f"state.{name} has shape {tuple(t.shape)}, batch first expected"
    for k, state in enumerate(states[1:], 1):
        fields = tensor_fields(state)
        assert fields.keys() == first.keys()
        for name, t in fields.items():
            assert t.shape == first[name].shape, f"state.{name} changed shape at step {k}"
            assert t.dtype == first[name].dtype, f"state.{name} changed dtype at step {k}"
        assert {k2: type(v) for k2, v in other_fields(state).items()} == {
            k2: type(v) for k2, v in other_fields(states[0]).items()
        }


@pairs
@dtypes
@pytest.mark.parametrize("kind", ["random", "mixed"])
def test_batch_invariance(solver_name, problem_name, dtype, kind):
    """Solving the batch equals solving each instance alone (20 steps), also when the
    instances are at very different stages (``kind="mixed"``)."""
    p = problem(problem_name, dtype)
    x0 = start(p, kind)
    solver = make_solver(solver_name)
    batched = iterate(solver, p, x0, 20)[-1].x
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    exact = p.to(dtype=torch.float64)
    for b in range(B):
        idx = torch.tensor([b])
        alone = iterate(make_solver(solver_name), p.index(idx), x0[idx], 20)[-1].x
        scale = 1.0 + float(alone.abs().max())
        err = float((alone - batched[idx]).abs().max())
        if err <= tol * scale:
            continue
        # Past convergence, F no longer resolves x: a line search that compares values
        # of F stops at ||grad|| ~ sqrt(eps) (L-BFGS here), and rounding differences
        # between a batched and a single GEMM then move x at the 1e-9 level. Accept
        # that only where both points are optimal to rounding (certificate <= 1e-13).
        one = exact.index(idx)
        cert = torch.cat([one.certificate(alone.to(torch.float64)), one.certificate(batched[idx].to(torch.float64))])
        resolved = dtype == torch.float64 and bool((cert <= 1e-13).all()) and err <= 1e-7 * scale
        assert resolved, f"instance {b}: batched and alone differ by {err:.3g} (certificates {cert.tolist()})"


@pairs
def test_determinism(solver_name, problem_name):
    """Two fresh solvers on the same inputs give bitwise identical states."""
    p = problem(problem_name)
    x0 = start(p)
    a = iterate(make_solver(solver_name), p, x0, 15)
    b = iterate(make_solver(solver_name), p, x0.clone(), 15)
    for k, (sa, sb) in enumerate(zip(a, b)):
        fa, fb = tensor_fields(sa), tensor_fields(sb)
        for name in fa:
            assert torch.equal(fa[name], fb[name]), f"state.{name} differs at step {k}"
        assert other_fields(sa) == other_fields(sb)


@pairs
def test_select_state_commutes_with_step(solver_name, problem_name):
    """step(problem.index(idx), select(s, idx)) == select(step(problem, s), idx),
    after a few steps so that momentum / memory / counters are nontrivial."""
    p = problem(problem_name)
    solver = make_solver(solver_name)
    state = iterate(solver, p, start(p), 6)[-1]
    idx = torch.tensor([3, 0])  # a reordering subset
    sub_p = p.index(idx)
    left = select_state(state, idx)
    right_full = state
    for _ in range(4):
        left = solver.step(sub_p, left)
        right_full = solver.step(p, right_full)
    right = select_state(right_full, idx)
    fl, fr = tensor_fields(left), tensor_fields(right)
    assert fl.keys() == fr.keys()
    for name in fl:
        assert fl[name].shape == fr[name].shape
        assert torch.allclose(fl[name], fr[name], rtol=1e-10, atol=1e-12), f"state.{name} differs"
    assert other_fields(left) == other_fields(right)


@pairs
def test_step_does_not_mutate_its_input(solver_name, problem_name):
    """Functional states: init copies x0 and step leaves the old state untouched, so
    states can be kept, compared and mixed (safeguards, compaction)."""
    p = problem(problem_name)
    solver = make_solver(solver_name)
    x0 = start(p)
    x0_copy = x0.clone()
    state = solver.init(p, x0)
    x0.add_(1.0)  # the state must not alias the caller's x0
    if solver_name not in FIXED + OWN_START:
        assert torch.equal(state.x, x0_copy)
    for _ in range(5):
        before = {k: v.clone() for k, v in tensor_fields(state).items()}
        new = solver.step(p, state)
        for name, t in tensor_fields(state).items():
            assert torch.equal(t, before[name]), f"step mutated state.{name}"
        state = new


@pairs
@dtypes
@pytest.mark.parametrize("kind", ["zero", "huge"])
def test_finite_from_zero_and_huge_start(solver_name, problem_name, dtype, kind):
    """50 steps from 0 or from 1e6 * 1: every state tensor stays finite, and the
    objective is finite from the first step on (x0 = 1e6 is outside the box)."""
    p = problem(problem_name, dtype)
    solver = make_solver(solver_name)
    for k, state in enumerate(iterate(solver, p, start(p, kind), 50)):
        for name, t in tensor_fields(state).items():
            assert bool(torch.isfinite(t).all()), f"state.{name} not finite at step {k} from {kind} start"
        if k >= 1:
            assert bool(torch.isfinite(p.objective(state.x)).all()), f"F not finite at step {k}"


@pairs
@dtypes
@pytest.mark.parametrize("kind", ["zero", "random"])
def test_progress(solver_name, problem_name, dtype, kind):
    """After 50 steps the gap F - F* has shrunk by at least 10% on every instance
    (the slowest pair, Adam with lr = 1e-2, shrinks it by about 45%)."""
    if solver_name in FIXED:
        pytest.skip("a fixed precoder does not iterate")
    p = problem(problem_name, dtype)
    if problem_name in NONCONVEX:  # from a random feasible start the rate must go up
        if kind == "zero":
            pytest.skip("V = 0 is a stationary point of the sum-rate")
        states = iterate(make_solver(solver_name), p, p.prox(start(p, kind), 1.0), 50)
        assert bool((exact_objective(p, states[-1].x) < exact_objective(p, states[0].x)).all())
        return
    f_star = reference(problem(problem_name)).objective
    states = iterate(make_solver(solver_name), p, start(p, kind), 50)
    gap0 = exact_objective(p, states[0].x) - f_star
    gap50 = exact_objective(p, states[-1].x) - f_star
    assert bool((gap0 > 0).all())
    assert bool((gap50 <= 0.9 * gap0).all()), f"gap {gap0.tolist()} -> {gap50.tolist()}"


@pytest.mark.parametrize("solver_name,problem_name", DESCENT_PAIRS, ids=[f"{s}-{p}" for s, p in DESCENT_PAIRS])
@dtypes
def test_descent_methods_are_monotone(solver_name, problem_name, dtype):
    """F(x_{k+1}) <= F(x_k) at every one of 50 steps, up to the rounding of the dtype."""
    p = problem(problem_name, dtype)
    rel = 1e-12 if dtype == torch.float64 else 1e-6
    states = iterate(make_solver(solver_name), p, start(p), 50)
    F = torch.stack([exact_objective(p, s.x) for s in states])  # (51, B)
    slack = rel * (F.abs() + 1.0)
    inc = F[1:] - F[:-1] - slack[:-1]
    assert bool((inc <= 0).all()), f"objective increased by up to {float((F[1:] - F[:-1]).max()):.3g}"
    assert bool((F[-1] < F[0]).all())


@pytest.mark.parametrize("solver_name", [s for s, _ in BOX_PAIRS])
@dtypes
@pytest.mark.parametrize("kind", ["zero", "huge", "random"])
def test_iterates_stay_in_the_box(solver_name, dtype, kind):
    """Every iterate x_k (k >= 1) lies in [lower, upper], exactly."""
    p = problem("box_qp", dtype)
    lower, upper = p.lower, p.upper
    states = iterate(make_solver(solver_name), p, start(p, kind), 50)
    for k, state in enumerate(states[1:], 1):
        assert bool(((state.x >= lower) & (state.x <= upper)).all()), f"infeasible iterate at step {k}"
        assert bool((p.nonsmooth_objective(state.x) == 0).all())


def test_box_solvers_include_the_projection_methods():
    names = {s for s, _ in BOX_PAIRS}
    assert {"pgd", "apgd", "ista", "fista", "adam"} <= names
