"""MimoFamily / MimoInstances: the multi-cell multi-user MIMO weighted sum-rate problem.

Rates are checked against a plain numpy loop over users (np.linalg.det / inv), the
closed-form gradient against autograd, the smoothness bound against difference
quotients, the projection against its definition, the geometric channel model against
a replay of its draws (path loss exactly (d / R)^-exponent) and a statistical check;
the reference (best of several WMMSE runs) against every one of its starts.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

import l2o
from l2o.evaluation import reference
from l2o.optimizers.wmmse import WMMSE
from l2o.problems import MimoFamily, MimoInstances, make_generator
from l2o.problems.mimo import pack, run_wmmse_to_convergence, unpack
from l2o.registry import PRESETS, make_family

SMALL = MimoFamily(cells=3, users=2, tx_antennas=4, rx_antennas=2, streams=2, power=10.0, noise=1.0)


@functools.lru_cache(maxsize=None)
def small_batch() -> MimoInstances:
    """4 instances of the small preset."""
    return SMALL.sample(4, 0)


@functools.lru_cache(maxsize=None)
def small_reference():
    """The reference of ``small_batch()``, computed once."""
    return reference(small_batch())


def random_point(p: MimoInstances, seed: int = 1, scale: float = 1.0) -> torch.Tensor:
    g = make_generator(seed)
    return scale * torch.randn(p.batch_size, p.dim, generator=g, dtype=torch.float64).to(p.dtype)


# ----- rates ------------------------------------------------------------------------------------
def numpy_rates(p: MimoInstances, x: torch.Tensor) -> np.ndarray:
    """(B, K, I) rates log det(I + H V V^H H^H J^{-1}) by a plain loop over users."""
    H = p.H.numpy()
    V = p.unpack(x).numpy()
    B, K, I, _, N, _ = H.shape
    out = np.zeros((B, K, I))
    for b in range(B):
        for k in range(K):
            for i in range(I):
                J = float(p.noise[b]) * np.eye(N, dtype=complex)
                for j in range(K):
                    for l in range(I):
                        if (j, l) != (k, i):
                            T = H[b, k, i, j] @ V[b, j, l]
                            J = J + T @ T.conj().T
                S = H[b, k, i, k] @ V[b, k, i]
                M = np.eye(N) + S @ S.conj().T @ np.linalg.inv(J)
                out[b, k, i] = np.log(np.linalg.det(M).real)
    return out


@pytest.mark.parametrize(
    "family",
    [
        MimoFamily(cells=2, users=3, tx_antennas=3, rx_antennas=2, streams=1, power=5.0, noise=0.7,
                   weights=(1.0, 0.5, 2.0, 0.0, 1.5, 1.0)),
        MimoFamily(cells=3, users=2, tx_antennas=4, rx_antennas=3, streams=2, channel="geometric",
                   shadowing_db=6.0, cell_radius=100.0, min_distance=10.0),
        MimoFamily(cells=1, users=4, tx_antennas=6, rx_antennas=2, streams=2, power=100.0),
    ],
    ids=["weighted", "geometric", "single_cell"],
)
def test_rates_match_a_numpy_loop_over_users(family):
    p = family.sample(3, 7)
    for x in (random_point(p, scale=0.5), p.initial_point()):
        expected = numpy_rates(p, x)
        np.testing.assert_allclose(p.rates(x).numpy(), expected, rtol=1e-10, atol=1e-12)
        weighted = (p.weights.numpy() * expected).sum((1, 2))
        np.testing.assert_allclose(p.sum_rate(x).numpy(), weighted, rtol=1e-10)
        np.testing.assert_allclose(p.smooth_objective(x).numpy(), -weighted, rtol=1e-10)
        assert bool((p.sum_rate(x) > 0).all())


def test_pack_unpack_round_trip_and_dtypes():
    p = SMALL.sample(2, 0)
    x = random_point(p)
    V = p.unpack(x)
    assert V.shape == (2, 3, 2, 4, 2) and V.dtype == torch.complex128
    assert torch.equal(pack(V), x) and torch.equal(unpack(pack(V), p.precoder_shape), V)
    assert p.dim == 2 * 3 * 2 * 4 * 2
    p32 = p.to(dtype=torch.float32)
    assert p32.H.dtype == torch.complex64 and p32.dtype == torch.float32
    assert p32.unpack(x.float()).dtype == torch.complex64
    with pytest.raises(ValueError, match="columns"):
        unpack(x[:, :-2], p.precoder_shape)


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


# ----- constraints ------------------------------------------------------------------------------
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


# ----- family -----------------------------------------------------------------------------------
def test_same_seed_same_channels_and_dtypes():
    a, b, c = SMALL.sample(5, 3), SMALL.sample(5, 3), SMALL.sample(5, 4)
    assert torch.equal(a.H, b.H) and not torch.equal(a.H, c.H)
    f32 = SMALL.sample(5, 3, dtype=torch.float32)
    assert f32.H.dtype == torch.complex64 and f32.noise.dtype == torch.float32 and f32.dtype == torch.float32
    assert torch.equal(f32.H, a.H.to(torch.complex64))
    x = a.initial_point()
    torch.testing.assert_close(f32.sum_rate(x.float()).double(), a.sum_rate(x), rtol=1e-5, atol=0)
    # the channels are CN(0, 1): E|h|^2 = 1, E h = 0, real and imaginary parts of variance 1/2
    H = SMALL.sample(400, 0).H
    assert abs(float(H.abs().square().mean()) - 1.0) < 0.02
    assert abs(float(H.real.square().mean()) - 0.5) < 0.01 and abs(complex(H.mean())) < 0.01


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


def _replay_positions(fam: MimoFamily, batch: int, seed: int) -> torch.Tensor:
    g = make_generator(seed)
    shape = (batch, fam.cells, fam.users, fam.cells, fam.rx_antennas, fam.tx_antennas)
    torch.randn(shape, generator=g, dtype=torch.float64)
    torch.randn(shape, generator=g, dtype=torch.float64)
    return fam.drop_users(batch, g)


@pytest.mark.parametrize("layout", ["hexagonal", "circular"])
def test_geometric_channel_is_exact_path_loss_times_rayleigh(layout):
    """Same seed: H_geometric = sqrt((dist / R)^-exponent) H_rayleigh, link by link; users
    are in their cell (hexagonal: closer to their own BS than to any other)."""
    fam = MimoFamily(cells=7, users=3, tx_antennas=2, rx_antennas=2, streams=1, channel="geometric", layout=layout,
                     cell_radius=200.0, min_distance=20.0, path_loss_exponent=3.5)
    geo = fam.sample(6, 11)
    ray = fam.replace(channel="rayleigh").sample(6, 11)
    pos = _replay_positions(fam, 6, 11)
    bs = fam.base_stations()
    dist = torch.linalg.vector_norm(pos.unsqueeze(-2) - bs, dim=-1)  # (B, K, I, K)
    own = torch.diagonal(dist, dim1=1, dim2=3)
    assert bool((own >= 20.0).all()) and bool((own <= 200.0 + 1e-9).all())
    if layout == "hexagonal":
        assert torch.equal(dist.argmin(-1), torch.arange(7).reshape(1, 7, 1).expand(6, 7, 3))
    beta = (dist.clamp(min=20.0) / 200.0) ** -3.5
    torch.testing.assert_close(geo.H, ray.H * beta.sqrt()[..., None, None], rtol=1e-12, atol=0)
    # the grid: 7 cells = centre + first ring, neighbours sqrt(3) R apart
    d_bs = torch.linalg.vector_norm(bs[1:] - bs[0], dim=-1)
    torch.testing.assert_close(d_bs, torch.full((6,), math.sqrt(3) * 200.0, dtype=torch.float64))


def test_geometric_far_users_are_weaker_with_shadowing():
    """Statistical: with 8 dB shadowing, users in the outer half of their cell have a mean
    own-channel gain (in dB) well below the inner ones, and cross-cell links are weaker
    than own links on average."""
    fam = MimoFamily(cells=3, users=4, tx_antennas=2, rx_antennas=2, streams=1, channel="geometric",
                     shadowing_db=8.0)
    B = 300
    p = fam.sample(B, 5)
    pos = _replay_positions(fam, B, 5)
    dist = torch.linalg.vector_norm(pos - fam.base_stations()[None, :, None, :], dim=-1)  # own BS, (B, K, I)
    gain_db = 10 * torch.log10(torch.diagonal(p.H, dim1=1, dim2=3).abs().square().mean((-3, -2)).permute(0, 2, 1))
    inner = gain_db[dist < 0.5 * fam.cell_radius].mean()
    outer = gain_db[dist > 0.7 * fam.cell_radius].mean()
    assert float(inner - outer) > 10.0  # path loss alone: 37.6 log10 of the distance ratio
    link_db = 10 * torch.log10(p.H.abs().square().mean((-2, -1)))  # (B, K, I, K)
    own_db = torch.diagonal(link_db, dim1=1, dim2=3).mean()
    eye = torch.eye(3, dtype=torch.bool)[None, :, None, :].expand_as(link_db)
    assert float(own_db - link_db[~eye].mean()) > 10.0


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"cells": 0}, "cells"), ({"users": -1}, "users"), ({"tx_antennas": 2.5}, "tx_antennas"),
        ({"rx_antennas": 0}, "rx_antennas"), ({"streams": 3}, "streams"), ({"power": 0.0}, "power"),
        ({"power": float("inf")}, "power"), ({"noise": -1.0}, "noise"), ({"weights": (1.0, 2.0)}, "weights"),
        ({"weights": (1.0, -1.0, 1.0, 1.0, 1.0, 1.0)}, "weights"), ({"weights": (0.0,) * 6}, "weights"),
        ({"channel": "ricean"}, "channel"), ({"layout": "square"}, "layout"), ({"cell_radius": 0.0}, "cell_radius"),
        ({"min_distance": 600.0}, "min_distance"), ({"path_loss_exponent": 0.0}, "path_loss_exponent"),
        ({"shadowing_db": -1.0}, "shadowing_db"), ({"objective_shift": 1.0}, "objective_shift"),
        ({"x0_shift": float("nan")}, "x0_shift"),
    ],
)
def test_bad_fields_raise_value_errors_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=rf"mimo: {field}"):
        SMALL.replace(**changes)


def test_instances_validate_their_arguments():
    H = SMALL.sample(1, 0).H
    with pytest.raises(ValueError, match="streams"):
        MimoInstances(H, 3)
    with pytest.raises(ValueError, match="complex"):
        MimoInstances(H.real, 2)


def test_presets_are_registered():
    assert "mimo" in l2o.FAMILIES
    small, medium, single = (PRESETS[n][0] for n in ("mimo_small", "mimo_medium", "mimo_single_cell_30"))
    assert (small.cells, small.users, small.tx_antennas, small.rx_antennas, small.streams) == (3, 2, 4, 2, 2)
    assert (medium.cells, medium.users, medium.tx_antennas) == (3, 4, 8)
    assert (single.cells, single.users, single.tx_antennas, single.rx_antennas, single.streams) == (1, 30, 64, 2, 2)
    assert (single.power, single.noise, single.channel) == (100.0, 1.0, "rayleigh")
    assert make_family("mimo", users=3).users == 3
    p = make_family("mimo_single_cell_30").sample(1, 0)
    assert p.dim == 2 * 30 * 64 * 2


# ----- certificate and reference ----------------------------------------------------------------
def test_reference_is_at_least_as_good_as_every_start():
    p = small_batch()
    ref = small_reference()
    r_star = -ref.objective
    assert "local optimum" in ref.method and "MRT" in ref.method
    torch.testing.assert_close(p.sum_rate(ref.x), r_star, rtol=1e-14, atol=0)
    assert bool((p.power(ref.x) <= p.budget * (1 + 1e-9)).all())
    starts = p.reference_starts()
    assert [name for name, _ in starts][:3] == ["MRT", "RZF", "ZF"] and len(starts) == 6
    for name, x0 in starts:
        assert bool((p.sum_rate(x0) <= r_star).all()), name
    # WMMSE from every start at once (one batch of 6 x 4), 150 iterations: never better than
    # the reference beyond the tail its stopping rule leaves (relative change < 1e-9 per step)
    big = p.index(torch.arange(4).repeat(len(starts)))
    x, _ = run_wmmse_to_convergence(big, torch.cat([x0 for _, x0 in starts]), WMMSE(), 0.0, 150)
    rates = big.sum_rate(x).reshape(len(starts), 4)
    assert bool((rates <= r_star * (1 + 1e-6)).all())
    assert bool((rates.max(0).values >= r_star * (1 - 1e-2)).all())  # and it is attained by one of them
    # the gap is (R* - R) / R*
    x0 = p.initial_point()
    torch.testing.assert_close(ref.relative_gap(p.objective(x0)), (r_star - p.sum_rate(x0)) / r_star)
    # a sub-batch gets the same starts (the random ones are shared by all instances)
    sub = p.index(torch.tensor([1]))
    for (_, a), (_, b) in zip(sub.reference_starts(), starts):
        torch.testing.assert_close(a, b[1:2], rtol=1e-14, atol=0)


def test_certificate_vanishes_at_fixed_points_only():
    p = small_batch()
    ref = small_reference()
    assert bool((ref.certificate < 1e-4).all())
    x0 = p.initial_point()
    assert bool((p.certificate(x0) > 1e-2).all())
    assert torch.equal(p.certificate(x0), p.fixed_point_residual(x0))
    assert "WMMSE" in p.certificate_name()
    zero = torch.zeros_like(x0)  # the degenerate fixed point V = 0 is not reported as optimal
    assert torch.equal(p.certificate(zero), torch.ones(p.batch_size, dtype=torch.float64))


def test_run_and_solve_with_wmmse():
    p = small_batch()
    traj = l2o.run(WMMSE(), p, reference=small_reference(), max_iter=200, record_every=10, record_certificate=True)
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
    gaps = small_reference().relative_gap(res.objective)
    assert bool((gaps >= -1e-6).all()) and bool((gaps <= traj.gap[0]).all())


def test_projected_gradient_runs_with_the_lipschitz_bound():
    """The family works with the generic proximal solvers too (step 1/L, projection)."""
    p = SMALL.sample(2, 0)
    traj = l2o.run(l2o.make_solver("pgd"), p, reference=None, max_iter=30)
    assert bool((traj.objective[1:] <= traj.objective[:-1] + 1e-12).all())
    assert bool(torch.isfinite(traj.objective).all())
