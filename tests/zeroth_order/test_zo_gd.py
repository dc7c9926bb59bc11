"""``zo_gd``: zeroth-order gradient descent behind the init / step protocol.

Checked against independent references: with q = n and central differences on a quadratic
the estimate is the exact gradient, so zo_gd must retrace the library's ``gd`` / ``ista`` /
``pgd`` iterates and a hand-written heavy ball; the query count against a counting wrapper
of the objective; the noisy setting against the exact variance of the noisy estimator.
The common suite (``tests/optimizers/test_common_solver_suite.py``) adds batch invariance,
determinism, dtypes and robustness through the registry entry.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import l2o
from l2o.optimizers import select_state
from l2o.problems import AutogradInstances, QuadraticInstances
from l2o.problems.base import Instances
from l2o.registry import CLASSICAL, make_solver
from l2o.zeroth_order import ZOGD, QueryAccounting

FORBIDDEN = ("grad", "value_and_grad", "hessian", "prox_grad", "gradient_mapping", "polish", "prox")


def qp(B: int = 3, n: int = 10, kappa: float = 10.0):
    return l2o.QuadraticFamily(n=n, condition_number=kappa).sample(B, 0)


def problems():
    return {
        "qp": qp(),
        "qp_per_instance": l2o.QuadraticFamily(n=8, condition_number=5.0, shared_matrix=False).sample(3, 1),
        "least_squares": l2o.LeastSquaresFamily(d=10, m=16, noise_std=0.1).sample(3, 0),
        "logistic_l2": l2o.LogisticFamily(n_samples=40, d=8, nnz=3, lam=0.1, penalty="l2").sample(3, 0),
        "lasso": l2o.LassoFamily(m=12, n=24, nnz=4, lam=0.1).sample(3, 0),
        "logistic_l1": l2o.LogisticFamily(n_samples=40, d=8, nnz=3, lam=0.05, penalty="l1").sample(3, 0),
        "box_qp": l2o.QuadraticFamily(n=12, condition_number=20.0, box=0.1).sample(3, 0),
        "autograd": AutogradInstances(lambda x: ((x - 1.0) ** 4).sum(-1) + 0.5 * x.square().sum(-1), 3, 6,
                                      smoothness=50.0),
    }


def run(solver, p, steps, x0=None):
    state = solver.init(p, p.initial_point() if x0 is None else x0)
    for _ in range(steps):
        state = solver.step(p, state)
    return state


def forbid(monkeypatch, p: Instances, names=FORBIDDEN):
    """Make the listed methods of p's class (and so of every sub-batch of it) fail the test."""
    for name in names:
        def boom(*args, _name=name, **kwargs):
            raise AssertionError(f"zo_gd called problem.{_name}")
        monkeypatch.setattr(type(p), name, boom)


# ----- only function values ----------------------------------------------------------------------
SMOOTH = ["qp", "qp_per_instance", "least_squares", "logistic_l2", "autograd"]
SETTINGS = [
    {},
    {"rule": "avg", "queries": 2, "directions": "sphere", "differences": "forward", "momentum": 0.5, "lr": 1e-3},
    {"rule": "align", "queries": 3, "directions": "coordinate", "noise": 1e-6, "budget": 200, "decay": "sqrt"},
    {"rule": "avg", "queries": 1, "evaluation": "loop", "base": "per_query", "differences": "forward"},
]


@pytest.mark.parametrize("name", SMOOTH)
@pytest.mark.parametrize("setting", range(len(SETTINGS)))
def test_smooth_problems_never_call_grad_or_prox(monkeypatch, name, setting):
    p = problems()[name]
    F0 = p.objective(p.initial_point())
    forbid(monkeypatch, p)
    state = run(ZOGD(**SETTINGS[setting]), p, 30)
    assert bool(torch.isfinite(state.x).all())
    assert bool((p.objective(state.x) < F0).all())


def test_the_forbidding_is_not_vacuous(monkeypatch):
    p = problems()["qp"]
    forbid(monkeypatch, p)
    with pytest.raises(AssertionError, match="called problem.grad"):
        run(make_solver("gd"), p, 1)


@pytest.mark.parametrize("name", ["lasso", "logistic_l1"])
def test_composite_problems_as_one_black_box_call_only_the_objective(monkeypatch, name):
    """prox=False queries F = f + r itself: no gradient and no prox either."""
    p = problems()[name]
    F0 = p.objective(p.initial_point())
    forbid(monkeypatch, p)
    state = run(ZOGD(prox=False), p, 30)
    assert bool((p.objective(state.x) < F0).all())


@pytest.mark.parametrize("name", ["lasso", "logistic_l1", "box_qp"])
def test_composite_problems_use_prox_of_r_but_never_a_gradient(monkeypatch, name):
    p = problems()[name]
    forbid(monkeypatch, p, [n for n in FORBIDDEN if n != "prox"])
    state = run(ZOGD(), p, 30)
    assert bool(torch.isfinite(state.x).all())


# ----- against exact first-order methods ---------------------------------------------------------
@pytest.mark.parametrize("name,reference,tol", [
    ("qp", "gd", 1e-8), ("qp_per_instance", "gd", 1e-8), ("least_squares", "gd", 1e-8),
    ("logistic_l2", "gd", 1e-7), ("lasso", "ista", 1e-8), ("box_qp", "pgd", 1e-8),
])
def test_full_subspace_align_retraces_the_exact_method(name, reference, tol):
    """Default zo_gd (ZO-Align, q = n, central differences, step 1/L) estimates the exact
    gradient (to O(mu^2), 0 on quadratics), so its iterates are those of gd / ista / pgd."""
    p = problems()[name]
    x0 = torch.randn(p.batch_size, p.dim, generator=torch.Generator().manual_seed(3), dtype=p.dtype)
    x0 = p.prox(x0, 1.0 / p.smoothness())
    zo = run(ZOGD(), p, 40, x0).x
    exact = run(make_solver(reference), p, 40, x0).x
    assert float((zo - exact).abs().max()) <= tol * (1 + float(exact.abs().max()))


def test_momentum_and_decay_follow_their_formulas():
    """Heavy ball v = beta v + grad f, x -= eta_k v with eta_k = lr / sqrt(k + 1), by hand."""
    p = qp()
    x0 = torch.randn(3, 10, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for decay, factor in [("constant", lambda k: 1.0), ("sqrt", lambda k: 1 / math.sqrt(k + 1)),
                          ("inverse", lambda k: 1 / (k + 1))]:
        state = run(ZOGD(lr=0.05, momentum=0.6, decay=decay), p, 25, x0)
        x, v = x0.clone(), torch.zeros_like(x0)
        for k in range(25):
            v = 0.6 * v + p.grad(x)
            x = x - 0.05 * factor(k) * v
        assert torch.allclose(state.x, x, rtol=1e-8, atol=1e-9), decay


def test_a_grid_of_steps_runs_as_one_batch():
    """lr as a (B,) tensor: row b equals a run with the scalar lr[b] (shared draws)."""
    one = qp(B=1)
    grid = torch.tensor([1e-3, 1e-2, 5e-2], dtype=torch.float64)
    batch = one.index(torch.zeros(3, dtype=torch.long))
    solver = ZOGD(rule="avg", queries=2, lr=grid)
    together = run(solver, batch, 20).x
    for b in range(3):
        alone = run(ZOGD(rule="avg", queries=2, lr=float(grid[b])), one, 20).x
        assert torch.allclose(together[b], alone[0], rtol=1e-12, atol=1e-14)


def test_loop_evaluation_equals_batched_evaluation():
    """Same points, same values up to the rounding of a GEMM of another shape (which a finite
    difference amplifies by 1/mu: 1e-11 here for logistic, bitwise for the batched-matvec QP)."""
    for name, tol in [("qp_per_instance", 1e-13), ("logistic_l2", 1e-9)]:
        p = problems()[name]
        a = run(ZOGD(rule="avg", queries=3), p, 15).x
        b = run(ZOGD(rule="avg", queries=3, evaluation="loop"), p, 15).x
        assert torch.allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", ["qp", "logistic_l2", "lasso"])
def test_l2o_run_and_solve(name):
    """Through the evaluation layer, as a registered solver."""
    p = problems()[name]
    traj = l2o.run(make_solver("zo_gd"), p, max_iter=150)
    assert bool((traj.gap[-1] < 1e-2 * traj.gap[0]).all())
    if name != "lasso":
        res = l2o.solve(make_solver("zo_gd"), p, tol=1e-6, max_iter=3000)
        assert bool(res.converged.all())


def test_registered():
    assert "zo_gd" in CLASSICAL
    assert isinstance(make_solver("zo_gd", rule="avg", queries=1), ZOGD)


# ----- query accounting ---------------------------------------------------------------------------
@pytest.mark.parametrize("differences,base,count", [
    ("forward", "shared", "evaluations"), ("forward", "per_query", "evaluations"),
    ("central", "shared", "evaluations"), ("forward", "shared", "directions"), ("central", "shared", "directions"),
])
def test_accountant_count_equals_what_the_objective_sees(monkeypatch, differences, base, count):
    """A counting wrapper on the objective of the problem's class sees exactly
    state.evaluations; the budget stops every instance after budget // charge iterations."""
    p = problems()["qp"]
    seen = {"rows": 0, "calls": 0}
    original = type(p).smooth_objective

    def counting(self, x):
        seen["rows"] += x.shape[0]
        seen["calls"] += 1
        return original(self, x)

    monkeypatch.setattr(type(p), "smooth_objective", counting)
    q, budget = 3, 61
    acc = QueryAccounting(differences, base, count)
    solver = ZOGD(rule="avg", queries=q, differences=differences, base=base, count=count, budget=budget)
    state = solver.init(p, p.initial_point())
    assert seen["rows"] == 0
    xs = [state.x]
    for _ in range(40):
        state = solver.step(p, state)
        xs.append(state.x)
    iterations = budget // acc.charge(q)
    assert seen["calls"] == iterations  # one call per iteration
    assert seen["rows"] == int(state.evaluations.sum()) == iterations * acc.evaluations(q) * p.batch_size
    assert state.queries.tolist() == [iterations * acc.charge(q)] * p.batch_size
    assert int(state.queries.max()) <= budget
    assert not torch.equal(xs[iterations], xs[iterations - 1])
    assert all(torch.equal(xs[k], xs[iterations]) for k in range(iterations, 41))


def test_budget_smaller_than_one_iteration_is_refused():
    with pytest.raises(ValueError, match=r"budget=4 is smaller than one iteration's queries, q \+ 1 = 5 per "
                                         r"iteration \(forward differences, shared base, counting evaluations\); "
                                         r"expected budget >= 5"):
        ZOGD(rule="avg", queries=4, differences="forward", budget=4)
    ZOGD(rule="avg", queries=4, differences="forward", count="directions", budget=4)  # q = 4 fits
    solver = ZOGD(budget=15)  # align, q = n = 10 is known at init: 2q = 20
    p = qp()
    with pytest.raises(ValueError, match=r"budget=15 is smaller than one iteration's queries, 2q = 20"):
        solver.init(p, p.initial_point())


# ----- NaN -----------------------------------------------------------------------------------------
class NaNRegionQP(QuadraticInstances):
    """1/2||x - x*_b||^2 shifted, but NaN wherever x_0 > 0.5."""

    def smooth_objective(self, x):
        f = super().smooth_objective(x)
        return torch.where(x[..., 0] > 0.5, torch.nan, f)


def test_a_nan_objective_stops_only_that_instance():
    n = 3
    target = torch.tensor([[-1.0, 0.2, 0.3], [1.0, 0.0, 0.0], [-0.5, -0.2, 0.1]], dtype=torch.float64)
    p = NaNRegionQP(torch.eye(n, dtype=torch.float64), -target)  # minimiser x* = target
    solver = ZOGD(lr=0.2)
    state = solver.init(p, torch.zeros(3, n, dtype=torch.float64))
    with pytest.warns(RuntimeWarning, match=r"zo_gd: the objective returned NaN or inf for 1 instance\(s\)"):
        for _ in range(80):
            state = solver.step(p, state)
    assert state.failed.tolist() == [False, True, False]
    assert bool(torch.isfinite(state.x).all()) and bool(torch.isfinite(state.velocity).all())
    assert 0.5 - 0.1 < float(state.x[1, 0]) < 1.0  # stopped where its queries met the NaN region
    assert torch.allclose(state.x[[0, 2]], target[[0, 2]], atol=1e-6)
    spent = int(state.queries[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        state = solver.step(p, state)  # the failed instance is not queried again, no new warning
    assert int(state.queries[1]) == spent and int(state.queries[0]) > spent
    # the failed row does not change the others: same as a batch without it
    sub = select_state(run(solver, p.index(torch.tensor([0, 2])), 81, torch.zeros(2, n, dtype=torch.float64)),
                       torch.arange(2))
    assert torch.allclose(sub.x, state.x[[0, 2]], rtol=1e-12, atol=1e-14)


# ----- noise ----------------------------------------------------------------------------------------
def test_noisy_estimates_are_unbiased_with_the_exact_variance():
    """noise sigma on every value, central differences: one step x1 = x0 - g from N copies of a
    point gives N independent estimates with mean grad f and E||g - a||^2 =
    ((n + 1)||a||^2 + n sigma^2 / (2 mu^2)) / q."""
    one = qp(B=1, n=6)
    N, q, sigma, mu = 20000, 2, 2.0, 0.1
    p = one.index(torch.zeros(N, dtype=torch.long))
    x0 = torch.randn(1, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64).expand(N, -1)
    solver = ZOGD(rule="avg", queries=q, directions="gaussian", differences="central", mu=mu, lr=1.0, noise=sigma,
                  independent=True)
    g = x0 - solver.step(p, solver.init(p, x0)).x
    a = one.grad(x0[:1])[0]
    extra = sigma**2 / (2 * mu**2)
    var = (a.square().sum() + a.square() + extra) / q
    z = ((g.mean(0) - a).abs() / (var / N).sqrt()).max()
    assert float(z) < 4.5
    err = (g - a).square().sum(-1)
    expected = float((7 * a.square().sum() + 6 * extra) / q)
    se = float(err.std()) / math.sqrt(N)
    assert se < 0.03 * expected and abs(float(err.mean()) - expected) < 4 * se
    # without noise the same draws give the smaller variance: the noise is really there
    g0 = x0 - ZOGD(rule="avg", queries=q, mu=mu, lr=1.0, independent=True).step(p, solver.init(p, x0)).x
    assert float((g0 - a).square().sum(-1).mean()) < 0.75 * expected


def test_noise_is_seeded():
    p = qp()
    a = run(ZOGD(rule="avg", queries=2, noise=1e-3, seed=7), p, 10).x
    b = run(ZOGD(rule="avg", queries=2, noise=1e-3, seed=7), p, 10).x
    c = run(ZOGD(rule="avg", queries=2, noise=1e-3, seed=8), p, 10).x
    assert torch.equal(a, b) and not torch.equal(a, c)


# ----- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,match", [
    ({"queries": 0}, r"queries must be an integer >= 1, got 0"),
    ({"mu": 0.0}, r"zo_gd: mu must be a number > 0"),
    ({"mu": -1.0}, r"zo_gd: mu must be a number > 0"),
    ({"rule": "sum"}, r"rule must be one of avg, align; got 'sum'"),
    ({"directions": "normal"}, r"directions must be one of gaussian, sphere, orthonormal, coordinate; got 'normal'"),
    ({"differences": "two-point"}, r"differences must be one of forward, central"),
    ({"base": "fresh"}, r"base must be one of shared, per_query"),
    ({"count": "calls"}, r"count must be one of evaluations, directions; got 'calls'"),
    ({"decay": "cosine"}, r"zo_gd: decay must be one of constant, sqrt, inverse; got 'cosine'"),
    ({"evaluation": "parallel"}, r"evaluation must be one of batched, loop"),
    ({"momentum": 1.0}, r"zo_gd: momentum must be in \[0, 1\), got 1.0"),
    ({"noise": -0.1}, r"zo_gd: noise must be >= 0"),
    ({"lr": 0.0}, r"zo_gd: lr must be a number > 0"),
    ({"budget": 0}, r"zo_gd: budget must be a positive integer"),
    ({"step_scale": 0.0}, r"zo_gd: step_scale must be > 0"),
])
def test_bad_options_are_one_clear_line(kwargs, match):
    with pytest.raises(ValueError, match=match) as e:
        ZOGD(**kwargs)
    assert "\n" not in str(e.value)


def test_bad_options_that_need_the_problem():
    p = qp()  # n = 10
    with pytest.raises(ValueError, match=r"queries must be <= the dimension n = 10 for orthonormal directions"):
        ZOGD(queries=11, directions="orthonormal").init(p, p.initial_point())
    with pytest.raises(ValueError, match=r"zo_gd: lr has shape \(2,\); expected a number or \(3,\)"):
        ZOGD(lr=torch.tensor([0.1, 0.2])).init(p, p.initial_point())
    box = problems()["box_qp"]
    with pytest.raises(ValueError, match=r"'zo_gd' with prox=False .* constrained problem"):
        ZOGD(prox=False).init(box, box.initial_point())
    assert "prox=False" in ZOGD(prox=False).skip(box)
    assert ZOGD().skip(box) is None
