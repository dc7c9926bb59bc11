"""Hypergradient descent (``hgd``, ``hgd_coord``; Baydin et al., ICLR 2018).

The batched solvers are checked against a plain unbatched numpy transcription of the rules
(additive: the paper's; multiplicative: the normalized variant), for exact agreement; then
hyper_lr = 0 is gradient descent, the scale-free choices make the iterates invariant to
scaling f, the adaptive step beats a fixed 1/L step, and nonsmooth problems are refused.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import l2o
from l2o.optimizers.hypergradient import HypergradientDescent, HypergradientDescentCoord
from l2o.registry import make_solver

B = 3


@functools.cache
def qp():
    return l2o.QuadraticFamily(n=12, condition_number=30.0, shared_matrix=False).sample(B, 0)


def numpy_hgd(grad, x0, L, hyper_lr, coord, rule, steps, max_scale=1e3):
    """Unbatched reference transcription, one instance."""
    x = x0.copy()
    n = x.size
    a0 = 1.0 / L
    alpha = np.full(n, a0) if coord else a0
    g_prev, beta = np.zeros(n), 0.0
    for k in range(steps):
        g = grad(x)
        if k == 0:
            beta = hyper_lr * a0 * (n if coord else 1) / (g @ g)
        h = g * g_prev if coord else g @ g_prev
        if rule == "additive":
            alpha = alpha + beta * h
        else:
            norms = np.linalg.norm(g) * np.linalg.norm(g_prev)
            c = (n if coord else 1) * h / norms if norms > 0 else 0.0 * h
            alpha = alpha * (1 + hyper_lr * np.clip(c, -1, 1))
        alpha = np.minimum(np.maximum(alpha, 0.0), max_scale * a0)
        x = x - alpha * g
        g_prev = g
    return x


@pytest.mark.parametrize("cls,coord", [(HypergradientDescent, False), (HypergradientDescentCoord, True)])
@pytest.mark.parametrize("rule", ["additive", "multiplicative"])
def test_matches_unbatched_numpy_transcription(cls, coord, rule):
    p = qp()
    x0 = torch.randn(B, p.dim, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    solver = cls(hyper_lr=0.3, rule=rule)
    s = solver.init(p, x0)
    for _ in range(15):  # beyond ~20 steps the step-size dynamics amplify rounding differences
        s = solver.step(p, s)
    for b in range(B):
        Q, q = p.Q[b].numpy(), p.q[b].numpy()
        ref = numpy_hgd(lambda x: Q @ x + q, x0[b].numpy(), float(p.smoothness()[b]), 0.3, coord, rule, 15)
        # the step grows past 2/L here, where the iteration amplifies rounding: 1e-9, not 1e-15
        np.testing.assert_allclose(s.x[b].numpy(), ref, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", ["hgd", "hgd_coord"])
def test_zero_hyper_lr_is_gradient_descent(name):
    p = qp()
    a, b = make_solver(name, hyper_lr=0.0), make_solver("gd")
    sa, sb = a.init(p, p.initial_point()), b.init(p, p.initial_point())
    for _ in range(20):
        sa, sb = a.step(p, sa), b.step(p, sb)
    assert torch.allclose(sa.x, sb.x, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", ["hgd", "hgd_coord"])
@pytest.mark.parametrize("rule", ["additive", "multiplicative"])
def test_iterates_invariant_to_scaling_f(name, rule):
    """F -> c F (Q, q -> c Q, c q): alpha_0 = 1/L and the normalized rates make the iterates equal."""
    p = qp()
    big = l2o.QuadraticInstances(250.0 * p.Q, 250.0 * p.q)
    a, b = make_solver(name, rule=rule), make_solver(name, rule=rule)
    sa, sb = a.init(p, p.initial_point()), b.init(big, big.initial_point())
    for _ in range(15):
        sa, sb = a.step(p, sa), b.step(big, sb)
    assert torch.allclose(sa.x, sb.x, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name", ["hgd", "hgd_coord"])
def test_adaptive_step_beats_the_fixed_step(name):
    """Iterations to a 1e-6 relative gradient norm on ridge logistic regression: fewer than
    half of gradient descent's (step 1/L) on every instance."""
    p = l2o.LogisticFamily(n_samples=100, d=20, nnz=4, lam=0.01, penalty="l2", noise_std=0.5).sample(B, 0)

    def iterations(solver):
        s = solver.init(p, p.initial_point())
        hit = torch.full((B,), -1)
        for k in range(1, 2000):
            s = solver.step(p, s)
            hit = torch.where((hit < 0) & (p.fixed_point_residual(s.x) <= 1e-6), k, hit)
            if bool((hit > 0).all()):
                break
        return hit

    ours, gd = iterations(make_solver(name)), iterations(make_solver("gd"))
    assert bool((ours > 0).all()) and bool((2 * ours < gd).all()), (ours.tolist(), gd.tolist())


@pytest.mark.parametrize("name", ["hgd", "hgd_coord"])
def test_refuses_nonsmooth_and_bad_arguments(name):
    lasso = l2o.LassoFamily(m=10, n=20, nnz=3).sample(2, 0)
    reason = make_solver(name).skip(lasso)
    assert reason is not None and name in reason and "fista" in reason
    for kwargs, word in [({"hyper_lr": -1.0}, "hyper_lr"), ({"step_scale": 2.0}, "step_scale"),
                         ({"rule": "exponential"}, "rule"), ({"max_scale": 0.5}, "max_scale")]:
        with pytest.raises(ValueError, match=word):
            make_solver(name, **kwargs)
