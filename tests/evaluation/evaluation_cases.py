"""Batches shared by the evaluation tests (``test_run.py``, ``test_solve.py``, ...)."""

from __future__ import annotations

import functools

import torch

import l2o
from l2o.problems.quadratic import random_spd


@functools.cache
def qp(B=3, n=12, dtype=torch.float64):
    return l2o.QuadraticFamily(n=n, condition_number=20.0).sample(B, 0, dtype=dtype)


@functools.cache
def lasso(B=4):
    return l2o.LassoFamily(m=20, n=40, nnz=4, lam=0.1).sample(B, 0)


@functools.cache
def graded_qp():
    """Per-instance Q of condition numbers 2, 20, 200, 2000 (easy to hard), n = 10."""
    g = torch.Generator().manual_seed(11)
    kappas = [2.0, 20.0, 200.0, 2000.0]
    Q = torch.stack([random_spd(None, 10, k, g) for k in kappas])
    q = torch.randn(len(kappas), 10, generator=g, dtype=torch.float64)
    return l2o.QuadraticInstances(Q, q)


@functools.cache
def mixed_qp():
    """Per-instance Q: instance 0 singular (rank 7 of 10, q in the range, spectrum 1..2 on
    it: converges fast), instances 1 and 2 positive definite with kappa 50 and 500."""
    g = torch.Generator().manual_seed(12)
    n = 10
    U, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    spectrum = torch.linspace(1.0, 2.0, n, dtype=torch.float64)
    spectrum[:3] = 0.0
    Q0 = (U * spectrum) @ U.T
    Q0 = 0.5 * (Q0 + Q0.T)
    Q = torch.stack([Q0, random_spd(None, n, 50.0, g), random_spd(None, n, 500.0, g)])
    q = torch.randn(3, n, generator=g, dtype=torch.float64)
    q[0] = Q0 @ q[0]
    return l2o.QuadraticInstances(Q, q)


def plain_loop(solver, p, x0, steps):
    """Iterates x_0..x_steps of the uncompacted batch."""
    state = solver.init(p, x0)
    xs = [state.x]
    for _ in range(steps):
        state = solver.step(p, state)
        xs.append(state.x)
    return torch.stack(xs)
