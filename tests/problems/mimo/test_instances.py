"""``l2o.problems.mimo.instances``: MimoInstances, the batched MIMO weighted sum-rate problem.

The closed-form gradient is checked against autograd, the smoothness bound against
difference quotients, the projection against its definition; the certificate vanishes at
WMMSE's fixed points only, and WMMSE and projected gradient run through ``l2o.run`` /
``l2o.solve``.
"""

from __future__ import annotations

import math

import pytest
import torch

import l2o
from l2o.optimizers.wmmse import WMMSE
from l2o.problems import MimoFamily, MimoInstances, make_generator

SMALL = MimoFamily(cells=3, users=2, tx_antennas=4, rx_antennas=2, streams=2, power=10.0, noise=1.0)


def random_point(p: MimoInstances, seed: int = 1, scale: float = 1.0) -> torch.Tensor:
    g = make_generator(seed)
    return scale * torch.randn(p.batch_size, p.dim, generator=g, dtype=torch.float64).to(p.dtype)


def test_zero_precoders_have_zero_rate_and_power():
    p = SMALL.sample(2, 0)
    x = torch.zeros(2, p.dim, dtype=torch.float64)
    assert torch.equal(p.sum_rate(x), torch.zeros(2, dtype=torch.float64))
    assert torch.equal(p.power(x), torch.zeros(2, 3, dtype=torch.float64))


# ----- gradient and smoothness ------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_closed_form_gradient_matches_autograd(seed):
    fam = MimoFamily(cells=2, users=2, tx_antennas=3, rx_antennas=2, streams=2, weights=(1.0, 2.0, 0.5, 1.0))
    p = fam.sample(3, seed)
    x = random_point(p, seed + 10).requires_grad_(True)
    (auto,) = torch.autograd.grad(p.smooth_objective(x).sum(), x)
    x = x.detach()
    g = p.grad(x)
    assert float((g - auto).norm() / auto.norm()) < 1e-12
    f, g2 = p.value_and_grad(x)
    assert torch.equal(g2, g) and torch.equal(f, p.smooth_objective(x))


def test_smoothness_is_a_lipschitz_bound_of_the_gradient():
    """||grad f(x) - grad f(y)|| <= L ||x - y|| on pairs at several scales (the curvature
    is largest near V = 0), and the bound is not vacuous (within a factor ~100)."""
    p = MimoFamily(cells=2, users=2, tx_antennas=3, rx_antennas=2, streams=1).sample(4, 3)
    L = p.smoothness()
    assert L.shape == (4,) and bool((L > 0).all())
    worst = torch.zeros(4, dtype=torch.float64)
    for seed in range(20):
        for scale in (1e-3, 0.1, 1.0, 3.0):
            x = random_point(p, seed, scale)
            y = x + random_point(p, seed + 100, 1e-3 * scale)
            ratio = (p.grad(x) - p.grad(y)).norm(dim=-1) / (x - y).norm(dim=-1)
            worst = torch.maximum(worst, ratio)
    assert bool((worst <= L).all()), (worst, L)
    assert bool((worst >= L / 100).all()), (worst, L)


# ----- constraints and start --------------------------------------------------------------------
def test_power_prox_and_indicator():
    p = MimoFamily(cells=3, users=2, tx_antennas=4, power=2.0).sample(3, 0)
    v = random_point(p, 0, 1.0)
    v[:, : p.dim // 3] *= 1e-2  # cell 0 well inside its budget, the others over it
    power = p.power(v)
    assert bool((power[:, 0] < 2.0).all()) and bool((power[:, 1:] > 2.0).all())
    assert bool(torch.isinf(p.nonsmooth_objective(v)).all())
    x = p.prox(v, torch.ones(3, dtype=torch.float64))
    px = p.power(x)
    torch.testing.assert_close(px[:, 1:], torch.full_like(px[:, 1:], 2.0), rtol=1e-14, atol=0)
    torch.testing.assert_close(x[:, : p.dim // 3], v[:, : p.dim // 3], rtol=0, atol=0)  # untouched
    # per cell, the projection is a positive scaling (the direction is kept)
    ratio = x.reshape(3, 3, -1) / v.reshape(3, 3, -1)
    assert float((ratio - ratio[..., :1]).abs().max()) < 1e-14
    assert torch.equal(p.nonsmooth_objective(x), torch.zeros(3, dtype=torch.float64))
    assert torch.equal(p.prox(x, 1.0), x)  # feasible points are fixed
    # the indicator's tolerance is relative: 1 + 1e-6 passes, 1 + 1e-4 does not
    assert float(p.nonsmooth_objective(x * math.sqrt(1 + 1e-6)).max()) == 0.0
    assert bool(torch.isinf(p.nonsmooth_objective(x * math.sqrt(1 + 1e-4))).all())


def test_initial_point_is_mrt_at_full_power():
    p = SMALL.sample(3, 0)
    x0 = p.initial_point()
    torch.testing.assert_close(p.power(x0), p.budget, rtol=1e-13, atol=0)
    assert bool(torch.isfinite(p.objective(x0)).all())
    shifted = SMALL.replace(x0_shift=2.0).sample(3, 0)
    assert torch.equal(shifted.initial_point(), torch.full((3, p.dim), 2.0, dtype=torch.float64))


def test_index_and_to():
    fam = SMALL.replace(weights=(1.0, 2.0, 3.0, 4.0, 5.0, 6.0), power=3.0, noise=0.5)
    p = fam.sample(4, 0)
    idx = torch.tensor([2, 0])
    sub = p.index(idx)
    x = random_point(p)
    torch.testing.assert_close(sub.sum_rate(x[idx]), p.sum_rate(x)[idx], rtol=1e-14, atol=0)
    assert sub.batch_size == 2 and torch.equal(sub.weights, p.weights[idx])
    assert torch.equal(p.weights[0], torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=torch.float64))
    assert float(p.budget.min()) == 3.0 and float(p.noise.max()) == 0.5
    back = p.to(dtype=torch.float32).to(dtype=torch.float64)
    torch.testing.assert_close(back.sum_rate(x), p.sum_rate(x), rtol=1e-5, atol=0)
    assert p.as_float64() is p


def test_instances_validate_their_arguments():
    H = SMALL.sample(1, 0).H
    with pytest.raises(ValueError, match="streams"):
        MimoInstances(H, 3)
    with pytest.raises(ValueError, match="complex"):
        MimoInstances(H.real, 2)


# ----- certificate and reference ----------------------------------------------------------------
def test_certificate_vanishes_at_fixed_points_only(small_batch, small_reference):
    p = small_batch
    ref = small_reference
    assert bool((ref.certificate < 1e-4).all())
    x0 = p.initial_point()
    assert bool((p.certificate(x0) > 1e-2).all())
    assert torch.equal(p.certificate(x0), p.fixed_point_residual(x0))
    assert "WMMSE" in p.certificate_name()
    zero = torch.zeros_like(x0)  # the degenerate fixed point V = 0 is not reported as optimal
    assert torch.equal(p.certificate(zero), torch.ones(p.batch_size, dtype=torch.float64))


def test_run_and_solve_with_wmmse(small_batch, small_reference):
    p = small_batch
    traj = l2o.run(WMMSE(), p, reference=small_reference, max_iter=200, record_every=10, record_certificate=True)
    gap = traj.gap
    assert gap.shape == (21, 4)
    # the reference is the best of several runs, each stopped when the rate changes by < 1e-9
    # per step: a longer run from the same start can pass it by a little
    assert bool((gap[-1] >= -1e-6).all())
    assert bool((gap[-1] <= gap[0]).all()) and bool((gap[1:] <= gap[:-1] + 1e-12).all())  # monotone
    assert float(gap[-1].min()) < 1e-6  # where the MRT start leads to the best local optimum
    res = l2o.solve(WMMSE(), p, tol=1e-5, max_iter=3000)
    assert bool(res.converged.all()) and bool((res.certificate <= 1e-5).all())
    assert "WMMSE" in res.certificate_name
    assert bool((p.power(res.x) <= p.budget * (1 + 1e-9)).all())
    gaps = small_reference.relative_gap(res.objective)
    assert bool((gaps >= -1e-6).all()) and bool((gaps <= traj.gap[0]).all())


def test_projected_gradient_runs_with_the_lipschitz_bound():
    """The family works with the generic proximal solvers too (step 1/L, projection)."""
    p = SMALL.sample(2, 0)
    traj = l2o.run(l2o.make_solver("pgd"), p, reference=None, max_iter=30)
    assert bool((traj.objective[1:] <= traj.objective[:-1] + 1e-12).all())
    assert bool(torch.isfinite(traj.objective).all())
