"""WMMSE and the linear precoders (MRT, ZF, RZF) on the MIMO sum-rate family.

The batched WMMSE step is checked against a plain numpy implementation (loops over
users and cells, np.linalg.inv, a scalar bisection on mu with one inverse per trial),
the monotone ascent and feasibility of WMMSE on random instances, the fixed-point
identities (rate = sum alpha log det W), the multiplier rule, the differentiable path
against finite differences, the solver protocol (batch invariance, determinism,
select_state, dtypes, extreme starts) and the defining properties of the precoders.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

import l2o
from l2o.optimizers import select_state
from l2o.optimizers.wmmse import MRT, WMMSE, RegularizedZeroForcing, ZeroForcing
from l2o.problems import MimoFamily, make_generator
from l2o.problems.mimo.channel import (
    bisection_mu,
    direct_channels,
    mmse_receivers,
    mrt,
    mse_weights,
    pack,
    receive_filters,
    regularized_zero_forcing,
    transmit_covariance,
    transmit_precoders,
    wmmse_update,
    zero_forcing,
)
from l2o.registry import SOLVERS, make_solver

SMALL = MimoFamily(cells=3, users=2, tx_antennas=4, rx_antennas=2, streams=2, power=10.0, noise=1.0)
FAMILIES = {
    "small": SMALL,
    "weighted_low_power": MimoFamily(cells=2, users=3, tx_antennas=3, rx_antennas=2, streams=1, power=0.3,
                                     noise=0.5, weights=(1.0, 0.3, 2.0, 1.0, 0.0, 1.5)),
    "geometric": MimoFamily(cells=3, users=2, tx_antennas=4, rx_antennas=3, streams=2, channel="geometric",
                            shadowing_db=4.0, power=1e3, cell_radius=100.0, min_distance=10.0),
    # M = 8 > K I d = 2: A is singular, the unconstrained V the minimum-norm one
    "singular_A": MimoFamily(cells=1, users=2, tx_antennas=8, rx_antennas=2, streams=1, power=1e4),
}


def mrt_of(p):
    return mrt(p.H, p.streams, p.budget)


def zf_of(p):
    return zero_forcing(p.H, p.streams, p.budget)


def rzf_of(p, reg=None):
    return regularized_zero_forcing(p.H, p.streams, p.budget, p.noise, reg)


def random_feasible(p, seed: int = 1):
    g = make_generator(seed)
    v = torch.randn(p.batch_size, p.dim, generator=g, dtype=torch.float64).to(p.dtype)
    return p.prox(v * 10.0, 1.0)


# ----- an independent, unbatched numpy WMMSE -------------------------------------------------------
def numpy_wmmse_step(H, V, noise, alpha, P):
    """One WMMSE iteration for one instance. H (K, I, K, N, M), V (K, I, M, d), alpha (K, I)."""
    K, I, _, N, M = H.shape
    d = V.shape[-1]
    U = np.zeros((K, I, N, d), complex)
    W = np.zeros((K, I, d, d), complex)
    for k in range(K):
        for i in range(I):
            C = noise * np.eye(N, dtype=complex)
            for j in range(K):
                for l in range(I):
                    T = H[k, i, j] @ V[j, l]
                    C += T @ T.conj().T
            U[k, i] = np.linalg.inv(C) @ H[k, i, k] @ V[k, i]
            W[k, i] = np.linalg.inv(np.eye(d) - U[k, i].conj().T @ H[k, i, k] @ V[k, i])
    V_new = np.zeros_like(V)
    mus = np.zeros(K)
    for k in range(K):
        A = np.zeros((M, M), complex)
        for j in range(K):
            for l in range(I):
                G = H[j, l, k].conj().T @ U[j, l]
                A += alpha[j, l] * G @ W[j, l] @ G.conj().T
        Bs = [alpha[k, i] * H[k, i, k].conj().T @ U[k, i] @ W[k, i] for i in range(I)]

        def precoders(mu):
            inv = np.linalg.inv(A + mu * np.eye(M))
            return [inv @ b for b in Bs]

        def power(mu):
            return sum(np.linalg.norm(v) ** 2 for v in precoders(mu))

        mu = 0.0
        if power(0.0) > P:
            lo, hi = 0.0, 1.0
            while power(hi) > P:
                hi *= 2
            while hi - lo > 1e-15 * hi:
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if power(mid) > P else (lo, mid)
            mu = hi
        mus[k] = mu
        for i, v in enumerate(precoders(mu)):
            V_new[k, i] = v
    return V_new, mus


@pytest.mark.parametrize("name", ["small", "weighted_low_power", "geometric"])
def test_batched_step_matches_numpy_loop(name):
    p = FAMILIES[name].sample(3, 2)
    x = p.initial_point()
    solver = WMMSE()
    state = solver.init(p, x)
    V_np = p.unpack(x).numpy()
    for _ in range(6):
        state = solver.step(p, state)
        for b in range(3):
            V_np[b], mu_np = numpy_wmmse_step(p.H[b].numpy(), V_np[b], float(p.noise[b]), p.weights[b].numpy(),
                                              float(p.budget[b, 0]))
            np.testing.assert_allclose(state.mu[b].numpy(), mu_np, rtol=1e-8, atol=1e-12)
        V = p.unpack(state.x).numpy()
        err = np.abs(V - V_np).max() / np.abs(V_np).max()
        assert err < 1e-8, f"{name}: relative difference {err:.3g}"


# ----- ascent, feasibility, fixed points --------------------------------------------------------------
@pytest.mark.parametrize("name", list(FAMILIES))
def test_rate_non_decreasing_and_budgets_met_at_every_step(name):
    p = FAMILIES[name].sample(6, 3)
    solver = WMMSE()
    for x0 in (p.initial_point(), random_feasible(p)):
        state = solver.init(p, x0)
        rates = [p.sum_rate(x0)]
        for _ in range(50):
            state = solver.step(p, state)
            rates.append(p.sum_rate(state.x))
            assert bool((p.power(state.x) <= p.budget * (1 + 1e-9)).all())
            assert bool((state.mu >= 0).all())
        R = torch.stack(rates)
        assert bool((R[1:] >= R[:-1] * (1 - 1e-9)).all()), float((R[1:] - R[:-1]).min())
        assert bool((R[-1] > R[0]).all())


def test_multiplier_rule():
    """mu_k = 0 where the unconstrained solution A^{-1} B meets the budget, else mu_k > 0
    and the budget is used exactly. Both happen on the geometric high-power instances
    (interference-limited cells leave power unused); at low power every cell is active."""
    low = SMALL.replace(power=0.01).sample(8, 0)
    state = WMMSE().step(low, WMMSE().init(low, low.initial_point()))
    assert bool((state.mu > 0).all())
    torch.testing.assert_close(low.power(state.x), low.budget, rtol=1e-9, atol=0)
    p = FAMILIES["geometric"].sample(16, 0)
    state = WMMSE().init(p, p.initial_point())
    for _ in range(30):
        prev, state = state, WMMSE().step(p, state)
    used, active = p.power(state.x), state.mu > 0
    assert 0 < int(active.sum()) < active.numel()
    torch.testing.assert_close(used[active], p.budget[active], rtol=1e-9, atol=0)
    assert bool((used[~active] <= p.budget[~active]).all())
    # where mu = 0 the update is the unconstrained minimizer A^{-1} B
    A, Bm = transmit_covariance(p.H, *mmse_receivers(p.H, p.unpack(prev.x), p.noise), p.weights)
    free = torch.linalg.solve(A.unsqueeze(2), Bm)  # (B, K, I, M, d)
    V = p.unpack(state.x)
    torch.testing.assert_close(V[~active], free[~active], rtol=1e-8, atol=1e-10)


def test_rate_equals_sum_alpha_log_det_w_at_convergence():
    p = SMALL.replace(weights=(1.0, 2.0, 0.5, 1.0, 1.0, 3.0)).sample(3, 1)
    solver = WMMSE()
    state = solver.init(p, p.initial_point())
    for _ in range(800):
        prev = state.x
        state = solver.step(p, state)
    H, noise = p.H, p.noise
    # W of the last iteration: MSE weights of the receivers of the previous iterate,
    # applied to the new precoders (the general MSE formula)
    U_prev = receive_filters(H, p.unpack(prev), noise)
    W = mse_weights(H, p.unpack(state.x), U_prev, noise)
    log_det = (p.weights * torch.linalg.slogdet(W).logabsdet).sum((-2, -1))
    torch.testing.assert_close(log_det, p.sum_rate(state.x), rtol=1e-7, atol=0)
    # at the start, the same expression is far from the rate
    x0 = p.initial_point()
    x1 = solver.step(p, solver.init(p, x0)).x
    W0 = mse_weights(H, p.unpack(x1), receive_filters(H, p.unpack(x0), noise), noise)
    assert float(((p.weights * torch.linalg.slogdet(W0).logabsdet).sum((-2, -1)) - p.sum_rate(x1)).abs().min()) > 1e-3


def test_mmse_weights_identities():
    """For the MMSE receiver, W = (I - U^H S)^{-1} (the paper's formula) = the general MSE
    inverse, and log det W is the user's rate, at any V."""
    p = SMALL.sample(3, 4)
    V = p.unpack(random_feasible(p))
    U, W = mmse_receivers(p.H, V, p.noise)
    S = direct_channels(p.H) @ V
    W_paper = torch.linalg.inv(torch.eye(2, dtype=U.dtype) - U.mH @ S)
    torch.testing.assert_close(W, W_paper, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(mse_weights(p.H, V, U, p.noise), W, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(torch.linalg.slogdet(W).logabsdet, p.rates(pack(V)), rtol=1e-12, atol=0)
    torch.testing.assert_close(receive_filters(p.H, V, p.noise), U)


def test_bisection_mu_matches_a_scalar_root_finder():
    g = make_generator(0)
    lam = torch.rand(50, 6, generator=g, dtype=torch.float64) * 10.0 ** torch.randint(-3, 3, (50, 6), generator=g)
    lam[:10, :2] = 0.0  # singular A
    energy = torch.rand(50, 6, generator=g, dtype=torch.float64)
    energy[:10, :2] = 0.0  # ... with B in its range
    budget = torch.rand(50, generator=g, dtype=torch.float64) * 10 + 0.01
    mu = bisection_mu(lam, energy, budget)
    for b in range(50):
        lam_b, e_b, P = lam[b].numpy(), energy[b].numpy(), float(budget[b])
        keep = e_b > 0
        power = lambda m: float((e_b[keep] / (lam_b[keep] + m) ** 2).sum()) - P  # noqa: E731
        if power(0.0) <= 0:
            assert float(mu[b]) == 0.0
        else:
            root = brentq(power, 0.0, 1e6, xtol=1e-300, rtol=1e-15)
            assert abs(float(mu[b]) - root) <= 1e-12 * root
            assert power(float(mu[b])) <= 1e-12 * P  # the feasible end of the bracket


def test_differentiable_path_matches_and_has_correct_gradients():
    """Under autograd the V update is recomputed by linear solves with the implicit
    gradient of mu: same values, gradients that match finite differences."""
    p = SMALL.replace(power=1.0).sample(2, 0)
    V = p.unpack(p.initial_point())
    with torch.no_grad():
        V_ref, mu_ref = wmmse_update(p.H, V, p.noise, p.weights, p.budget)
    assert bool((mu_ref > 0).all())
    g = make_generator(3)
    D = torch.complex(torch.randn(p.H.shape, generator=g, dtype=torch.float64),
                      torch.randn(p.H.shape, generator=g, dtype=torch.float64))

    def loss(t):
        H = p.H + t * D
        V_new, _ = wmmse_update(H, V, p.noise, p.weights, p.budget)
        return (V_new.abs().square() * torch.arange(1, V_new.shape[-1] + 1)).sum() + p.sum_rate(pack(V_new)).sum()

    t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    V_diff, _ = wmmse_update(p.H + t * D, V, p.noise, p.weights, p.budget)
    torch.testing.assert_close(V_diff.detach(), V_ref, rtol=1e-9, atol=1e-12)
    (grad,) = torch.autograd.grad(loss(t), t)
    h = 1e-6
    with torch.no_grad():
        fd = (loss(torch.tensor(h, dtype=torch.float64)) - loss(torch.tensor(-h, dtype=torch.float64))) / (2 * h)
    assert abs(float(grad) - float(fd)) <= 1e-6 * abs(float(fd)), (float(grad), float(fd))


def test_transmit_precoders_with_given_mu():
    p = SMALL.sample(2, 0)
    U, W = mmse_receivers(p.H, p.unpack(p.initial_point()), p.noise)
    A, Bm = transmit_covariance(p.H, U, W, p.weights)
    mu = torch.full((2, 3), 0.3, dtype=torch.float64)
    V, mu_out = transmit_precoders(A, Bm, p.budget, mu=mu)
    assert torch.equal(mu_out, mu)
    expected = torch.linalg.solve(A.unsqueeze(2) + 0.3 * torch.eye(4, dtype=A.dtype), Bm)
    torch.testing.assert_close(V, expected, rtol=1e-10, atol=1e-12)


# ----- solver protocol ---------------------------------------------------------------------------------
def test_registry_and_refusals():
    for name, cls in [("wmmse", WMMSE), ("mrt", MRT), ("zf", ZeroForcing), ("rzf", RegularizedZeroForcing)]:
        solver = make_solver(name)
        assert isinstance(solver, cls) and solver.name == name and not SOLVERS[name].learned
        qp = l2o.QuadraticFamily(n=4).sample(2, 0)
        assert f"'{name}'" in solver.skip(qp) and "MIMO" in solver.skip(qp)
        with pytest.raises(ValueError, match=rf"'{name}'.*MIMO"):
            solver.check_problem(qp)
        with pytest.raises(ValueError, match=name):
            solver.init(qp, qp.initial_point())
    with pytest.raises(ValueError, match="bisection_iters"):
        WMMSE(bisection_iters=0)
    with pytest.raises(ValueError, match="reg"):
        RegularizedZeroForcing(reg=-1.0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_batch_invariance_and_dtype(dtype):
    p = FAMILIES["geometric"].sample(4, 0, dtype=dtype)
    x0 = p.initial_point()
    solver = WMMSE()
    state = solver.init(p, x0)
    for _ in range(20):
        state = solver.step(p, state)
    assert state.x.dtype == dtype and state.mu.dtype == dtype and state.x.shape == (4, p.dim)
    assert state.mu.shape == (4, 3)
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    for b in range(4):
        idx = torch.tensor([b])
        alone = solver.init(p.index(idx), x0[idx])
        for _ in range(20):
            alone = solver.step(p.index(idx), alone)
        scale = float(alone.x.abs().max())
        assert float((alone.x - state.x[idx]).abs().max()) <= tol * scale


def test_float32_tracks_float64():
    p64 = SMALL.sample(8, 5)
    p32 = p64.to(dtype=torch.float32)
    s64, s32 = WMMSE().init(p64, p64.initial_point()), WMMSE().init(p32, p32.initial_point())
    for _ in range(30):
        s64, s32 = WMMSE().step(p64, s64), WMMSE().step(p32, s32)
    torch.testing.assert_close(p64.sum_rate(s32.x.double()), p64.sum_rate(s64.x), rtol=1e-4, atol=0)
    assert bool(torch.isfinite(p64.objective(s32.x.double())).all())  # float32 iterates meet the budgets


def test_determinism_purity_and_select_state():
    p = SMALL.sample(4, 0)
    solver = WMMSE()
    x0 = random_feasible(p)
    copy = x0.clone()
    a = solver.init(p, x0)
    x0.add_(1.0)
    assert torch.equal(a.x, copy)
    states = [a]
    for _ in range(6):
        before = {f.name: getattr(states[-1], f.name).clone() for f in dataclasses.fields(states[-1])}
        states.append(solver.step(p, states[-1]))
        for name, t in before.items():
            assert torch.equal(getattr(states[-2], name), t)
    again = solver.init(p, copy)
    for _ in range(6):
        again = solver.step(p, again)
    assert torch.equal(again.x, states[-1].x) and torch.equal(again.mu, states[-1].mu)
    idx = torch.tensor([3, 0])
    left, right = select_state(states[-1], idx), states[-1]
    for _ in range(4):
        left, right = solver.step(p.index(idx), left), solver.step(p, right)
    torch.testing.assert_close(left.x, select_state(right, idx).x, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("kind", ["zero", "huge"])
def test_finite_from_zero_and_huge_starts(kind, dtype):
    """From 1e6 * 1 WMMSE is back within the budgets after one step; from V = 0 it stays at
    the degenerate fixed point 0 (no NaN)."""
    p = SMALL.sample(3, 0, dtype=dtype)
    x0 = torch.zeros(3, p.dim, dtype=dtype) if kind == "zero" else torch.full((3, p.dim), 1e6, dtype=dtype)
    state = WMMSE().init(p, x0)
    for _ in range(30):
        state = WMMSE().step(p, state)
        assert bool(torch.isfinite(state.x).all()) and bool(torch.isfinite(state.mu).all())
        assert bool(torch.isfinite(p.objective(state.x)).all())
    if kind == "zero":
        assert bool((state.x == 0).all())
    else:
        assert bool((p.sum_rate(state.x) > 0).all())


# ----- linear precoders --------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [mrt_of, zf_of, rzf_of], ids=["mrt", "zf", "rzf"])
def test_linear_precoders_are_feasible_at_full_power(fn):
    for fam in (SMALL, FAMILIES["geometric"], MimoFamily(cells=1, users=4, tx_antennas=8, power=100.0)):
        p = fam.sample(3, 0)
        x = fn(p)
        assert x.shape == (3, p.dim)
        torch.testing.assert_close(p.power(x), p.budget, rtol=1e-12, atol=0)
        assert torch.equal(p.nonsmooth_objective(x), torch.zeros(3, dtype=torch.float64))
        assert bool((p.sum_rate(x) > 0).all())


def test_zero_forcing_cancels_intra_cell_interference():
    # d = N: every receive antenna is nulled, H_{i} V_{j} = 0 for i != j
    p = MimoFamily(cells=1, users=3, tx_antennas=6, rx_antennas=2, streams=2, power=10.0).sample(4, 0)
    V = p.unpack(zf_of(p))
    Hk = p.H[:, 0, :, 0]  # (B, I, N, M)
    cross = torch.einsum("bint,bjts->bijns", Hk, V[:, 0])  # H_i V_j
    off = ~torch.eye(3, dtype=torch.bool)
    own_scale = float(cross[:, ~off].abs().max())
    assert float(cross[:, off].abs().max()) < 1e-12 * own_scale
    # d < N: nulled after combining with the d strongest left singular vectors
    p = MimoFamily(cells=2, users=2, tx_antennas=4, rx_antennas=3, streams=1).sample(3, 1)
    V = p.unpack(zf_of(p))
    Ud = torch.linalg.svd(direct_channels(p.H))[0][..., :1]  # (B, K, I, N, 1)
    for k in range(2):
        eff = torch.einsum("bin,bint,bjts->bij", Ud[:, k, :, :, 0].conj(), p.H[:, k, :, k], V[:, k])
        assert float(eff[:, 0, 1].abs().max()) < 1e-12 * float(eff[:, 0, 0].abs().max())
    # RZF tends to ZF as reg -> 0, and improves on ZF at low SNR on average
    torch.testing.assert_close(rzf_of(p, 1e-12), zf_of(p), rtol=1e-8, atol=1e-10)
    low = MimoFamily(cells=1, users=4, tx_antennas=4, rx_antennas=1, streams=1, power=1.0).sample(64, 2)
    assert float(low.sum_rate(rzf_of(low)).mean()) > float(low.sum_rate(zf_of(low)).mean())


def test_zero_forcing_needs_enough_antennas():
    p = MimoFamily(cells=2, users=3, tx_antennas=4, rx_antennas=2, streams=2).sample(2, 0)  # I d = 6 > M = 4
    with pytest.raises(ValueError, match=r"M >= users \* streams"):
        zf_of(p)
    with pytest.raises(ValueError, match=r"'zf' needs tx_antennas M >= users \* streams = 6"):
        ZeroForcing().check_problem(p)
    rzf_of(p)  # RZF and MRT have no such requirement
    mrt_of(p)


@pytest.mark.parametrize("name", ["mrt", "zf", "rzf"])
def test_linear_precoder_solvers_keep_their_precoder(name):
    p = SMALL.replace(tx_antennas=4, users=2, streams=2).sample(3, 0)
    solver = make_solver(name)
    state = solver.init(p, p.initial_point())
    expected = {"mrt": mrt_of, "zf": zf_of, "rzf": rzf_of}[name](p)
    assert torch.equal(state.x, expected)
    assert torch.equal(solver.step(p, state).x, expected)
    traj = l2o.run(solver, p, reference=None, max_iter=3, record_certificate=True)
    assert torch.equal(traj.objective[0], traj.objective[-1])
    assert make_solver("rzf", reg=0.5).reg == 0.5


def test_wmmse_improves_on_the_linear_precoders():
    p = SMALL.sample(8, 0)
    state = WMMSE().init(p, p.initial_point())
    for _ in range(100):
        state = WMMSE().step(p, state)
    rate = p.sum_rate(state.x)
    for fn in (mrt_of, zf_of, rzf_of):
        assert float((rate - p.sum_rate(fn(p))).min()) > 0
