"""``l2o.solve``: one-shot (closed-form) solvers return after one step (issue 12 item 7), and
instances that cannot be sub-batched (``AutogradInstances``) are solved with the default
certificate (issue 12 item 6)."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

import l2o
from l2o.optimizers.base import Optimizer
from l2o.problems.mimo.channel import mrt, regularized_zero_forcing, zero_forcing
from l2o.problems.parts import L1
from l2o.registry import make_solver

MIMO = l2o.problems.MimoFamily(cells=2, users=2, tx_antennas=4, rx_antennas=2, streams=1)


@pytest.mark.parametrize("name, closed_form", [
    ("mrt", lambda p: mrt(p.H, p.streams, p.budget)),
    ("zf", lambda p: zero_forcing(p.H, p.streams, p.budget)),
    ("rzf", lambda p: regularized_zero_forcing(p.H, p.streams, p.budget, p.noise, None)),
])
def test_closed_form_precoders_return_after_one_step(name, closed_form):
    """They used to iterate max_iter = 10,000 times (their certificate, the WMMSE
    fixed-point residual, does not reach tol at a linear precoder) and warn."""
    p = MIMO.sample(3, 0)
    solver = make_solver(name)
    assert solver.one_shot and not getattr(make_solver("wmmse"), "one_shot", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = l2o.solve(solver, p, tol=1e-8)
    assert res.one_shot and res.iterations.tolist() == [1, 1, 1] and bool(res.converged.all())
    torch.testing.assert_close(res.x, closed_form(p), rtol=0, atol=0)
    x64 = res.x.to(torch.float64)
    torch.testing.assert_close(res.certificate, p.certificate(x64))  # reported, not a tolerance it was run to
    assert bool((res.certificate > 1e-8).all())


@dataclasses.dataclass
class _State:
    x: torch.Tensor


class CountingClosedForm(Optimizer):
    """A closed-form guess for a QP at ``init`` (-q / diag Q, the minimizer for a diagonal
    Q); ``step`` keeps it and counts its calls."""

    name = "counting_closed_form"
    one_shot = True

    def __init__(self):
        self.steps = 0

    def init(self, problem, x0):
        return _State(x=-problem.q / torch.diagonal(problem.Q, dim1=-2, dim2=-1))

    def step(self, problem, state):
        self.steps += 1
        return _State(x=state.x)


def test_the_solve_loop_honours_a_declared_one_shot_solver():
    p = l2o.QuadraticFamily(n=5, condition_number=10.0).sample(2, 0)
    solver = CountingClosedForm()
    res = l2o.solve(solver, p, tol=1e-10, max_iter=10_000)
    assert solver.steps == 1 and res.one_shot and res.iterations.tolist() == [1, 1] and bool(res.converged.all())
    x = -p.q / torch.diagonal(p.Q, dim1=-2, dim2=-1)
    torch.testing.assert_close(res.x, x, rtol=0, atol=0)
    assert bool((res.certificate > 1e-3).all())  # a guess, reported as far as it is
    assert not l2o.solve(make_solver("fista_restart"), p, tol=1e-10).one_shot


def _custom_lasso(B=4, seed=0):
    lasso = l2o.LassoFamily(m=20, n=40, nnz=4, lam=0.1).sample(B, seed)
    A, b = lasso.A, lasso.b
    custom = l2o.AutogradInstances(lambda x: 0.5 * (x @ A.T - b).square().sum(-1), B, 40,
                                   smoothness=lasso.smoothness(), penalty=L1(lasso.lam))
    return lasso, custom


@pytest.mark.parametrize("solver", ["fista_restart", "ista", "adam"])
def test_solve_on_autograd_instances_with_the_default_certificate(solver):
    """``AutogradInstances`` cannot be sub-batched: every instance stays in the batch until the
    last one is certified, each keeping the iterate of its own check (a LASSO written in
    torch; its optimum checked against the same LASSO as ``LassoInstances``)."""
    lasso, custom = _custom_lasso()
    assert not custom.can_index
    res = l2o.solve(make_solver(solver), custom, tol=1e-7, max_iter=20_000)
    assert bool(res.converged.all()) and bool((res.certificate <= 1e-7).all())
    exact = l2o.solve(make_solver("fista_restart"), lasso, tol=1e-12)
    gap = (res.objective - exact.objective) / exact.objective.abs()
    assert bool((gap >= -1e-12).all()) and bool((gap <= 1e-5).all())
    torch.testing.assert_close(custom.objective(res.x), lasso.objective(res.x))


@pytest.mark.parametrize("solver", ["lbfgs", "nesterov", "gd"])
def test_solve_on_smooth_autograd_instances(solver):
    """A smooth objective with no closed form: 1/2 ||x - c||^2 + 1/4 sum x^4, minimized where
    x - c + x^3 = 0 coordinatewise (the real root, by numpy)."""
    import numpy as np

    c = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    p = l2o.AutogradInstances(lambda x: 0.5 * (x - c).square().sum(-1) + 0.25 * x.pow(4).sum(-1), 3, 5,
                              smoothness=1.0 + 3.0 * 4.0)  # |x*| <= |c| < 2 along the path from 0
    res = l2o.solve(make_solver(solver), p, tol=1e-9, max_iter=5000)
    assert bool(res.converged.all())
    roots = np.array([[next(r.real for r in np.roots([1.0, 0.0, 1.0, -ci]) if abs(r.imag) < 1e-12) for ci in row]
                      for row in c.numpy()])
    np.testing.assert_allclose(res.x.numpy(), roots, atol=1e-6)
