"""The INFOCOM 2024 scenarios (``l2o.problems.mimo.infocom``) and the paper's WMMSE (``wmmse_paper``)."""

import math

import numpy as np
import pytest
import torch

import l2o
from l2o.optimizers.wmmse_paper import PaperWMMSE, paper_start, solve_paper_wmmse
from l2o.problems import MimoFamily
from l2o.problems.mimo import unpack, user_rates
from l2o.problems.mimo.infocom import InfocomMimoFamily, path_loss_db, zf_equal_power
from l2o.registry import PRESETS, make_family

SCALES = {"small": (2, 4, 8, 2), "moderate": (2, 8, 16, 2), "large": (2, 16, 32, 2)}


def test_path_loss_closed_form():
    d = torch.tensor([0.1, 0.3, 1.0, 2.8], dtype=torch.float64)
    expected = [128.1 + 37.6 * math.log10(v) for v in (0.1, 0.3, 1.0, 2.8)]
    assert torch.allclose(path_loss_db(d), torch.tensor(expected, dtype=torch.float64), atol=1e-12)
    assert float(path_loss_db(torch.tensor(0.1))) == pytest.approx(90.5)


@pytest.mark.parametrize("dist", [2.8, 0.5])
def test_geometry_and_path_loss_of_the_draw(dist):
    family = InfocomMimoFamily(cells=3, users=50, inter_bs_distance=dist)
    raw = family.sample_raw(20, generator=1)
    bs = raw["bs"]
    assert torch.allclose(bs[0], torch.zeros(2, dtype=torch.float64))
    assert torch.allclose(torch.linalg.vector_norm(bs[1:], dim=-1), torch.full((2,), dist, dtype=torch.float64))
    assert float(torch.linalg.vector_norm(bs[1] - bs[2])) == pytest.approx(dist)  # neighbours on the hexagon
    served = torch.diagonal(raw["distance_km"], dim1=1, dim2=3)  # (B, I, K): to the serving BS
    assert float(served.min()) >= 0.1 and float(served.max()) <= 0.3
    # area-uniform in the annulus: P(r <= 0.2) = (0.2^2 - 0.1^2) / (0.3^2 - 0.1^2) = 3/8
    assert float((served <= 0.2).double().mean()) == pytest.approx(3 / 8, abs=0.03)
    # entries CN(0, 1) * 10^(-G/20): E|h|^2 = 10^(-G/10) per link, checked on the normalized entries
    g = 10.0 ** (-path_loss_db(raw["distance_km"]) / 10.0)
    normalized = raw["H"].abs().square() / g[..., None, None]
    assert float(normalized.mean()) == pytest.approx(1.0, abs=0.02)
    # the distances are those of the positions
    d = torch.linalg.vector_norm(raw["users"].unsqueeze(-2) - bs, dim=-1)
    assert torch.allclose(d, raw["distance_km"])


def test_noise_rule_and_folding():
    family = InfocomMimoFamily(cells=2, users=3, tx_antennas=4, rx_antennas=2, streams=2, snr_db=5.0)
    raw = family.sample_raw(2, generator=3)
    H = raw["H"].numpy()
    for b in range(2):
        for k in range(2):
            logs = [np.log10(np.linalg.norm(H[b, k, u, k]) ** 2 / 2) for u in range(3)]
            expected = 10 ** np.mean(logs) * 10 ** (-0.5)
            assert raw["noise"][b, k].item() == pytest.approx(expected, rel=1e-12)
    problem = family.sample(2, generator=3)
    assert torch.all(problem.noise == 1.0)
    sigma = raw["noise"].sqrt()[:, :, None, None, None, None]
    assert torch.allclose(problem.H * sigma, raw["H"], rtol=1e-12, atol=0)
    # folding the noise into the channels leaves every user's rate unchanged (per-cell noise by hand)
    V = unpack(paper_start(problem), problem.precoder_shape)
    rates = user_rates(problem.H, V, problem.noise)
    Hn, Vn = raw["H"].numpy(), V.numpy()
    for b, k, i in [(0, 0, 1), (1, 1, 2)]:
        J = raw["noise"][b, k].item() * np.eye(2, dtype=complex)
        for j in range(2):
            for ll in range(3):
                if (j, ll) != (k, i):
                    X = Hn[b, k, i, j] @ Vn[b, j, ll]
                    J += X @ X.conj().T
        S = Hn[b, k, i, k] @ Vn[b, k, i]
        expected = np.log(np.linalg.det(np.eye(2) + S @ S.conj().T @ np.linalg.inv(J)).real)
        assert rates[b, k, i].item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("scale", list(SCALES))
def test_presets_shapes_and_determinism(scale):
    B, U, M, N = SCALES[scale]
    for name, dist in ((f"mimo_infocom_{scale}", 2.8), (f"mimo_infocom_{scale}_dense", 0.5)):
        family = make_family(name)
        assert isinstance(family, InfocomMimoFamily) and family.inter_bs_distance == dist
        assert (family.cells, family.users, family.tx_antennas, family.rx_antennas, family.streams) == (B, U, M, N, N)
        assert family.power == 10.0 and family.snr_db == 5.0
        p1, p2 = family.sample(2, generator=7), family.sample(2, generator=7)
        assert p1.H.shape == (2, B, U, B, N, M)
        assert torch.equal(p1.H, p2.H)
        assert not torch.equal(p1.H, family.sample(2, generator=8).H)
        assert {s.name for s in family.natural_splits()} == set(PRESETS.entries[name].splits)


def test_dense_means_more_interference():
    """At 0.5 km the inter-cell links are much stronger relative to the direct ones than at 2.8 km."""
    def ratio(dist):
        H = InfocomMimoFamily(inter_bs_distance=dist).sample(200, generator=0).H.abs().square().sum((-2, -1))
        direct = torch.diagonal(H, dim1=1, dim2=3).mean()
        return float(H.sum(3).mean() / direct) - 1.0  # inter-cell gain / direct gain
    assert ratio(0.5) > 100 * ratio(2.8)
    assert 0.01 < ratio(0.5) < 1


def test_validation_messages():
    with pytest.raises(ValueError, match="noise must be 1"):
        InfocomMimoFamily(noise=2.0)
    with pytest.raises(ValueError, match="inter_bs_distance"):
        InfocomMimoFamily(inter_bs_distance=0.0)
    with pytest.raises(ValueError, match="min_distance_km"):
        InfocomMimoFamily(min_distance_km=0.4)
    with pytest.raises(ValueError, match="streams"):
        InfocomMimoFamily(streams=3)
    with pytest.raises(ValueError, match=r"channel must be 'infocom', got 'rayleigh'"):
        InfocomMimoFamily(channel="rayleigh")
    with pytest.raises(ValueError, match=r"channel must be 'rayleigh' or 'geometric', got 'infocom'"):
        MimoFamily(channel="infocom")  # the base family draws only its own channels


def test_zf_equal_power_cancels_intra_cell_interference():
    problem = InfocomMimoFamily(cells=2, users=2, tx_antennas=4, rx_antennas=2, streams=2).sample(3, generator=0)
    V = unpack(zf_equal_power(problem.H, 2, problem.budget), problem.precoder_shape)
    assert torch.allclose(V.abs().square().sum((-2, -1)), torch.full((3, 2, 2), 5.0, dtype=torch.float64))
    leak = problem.H[:, 0, 0, 0] @ V[:, 0, 1]  # user (0, 0) from its own BS's precoder of user (0, 1)
    assert float(leak.abs().max()) < 1e-9


# ----- the paper's WMMSE vs a textbook unbatched loop ------------------------------------------------
def _textbook_wmmse(H, noise, P, V0, rtol=0.01, max_iter=50, rule="relative"):
    """Shi et al. 2011, one user at a time in numpy, bisection on mu with full solves."""
    K, I = H.shape[0], H.shape[1]
    N, M = H.shape[3], H.shape[4]
    V = V0.copy()

    def rate(V):
        total = 0.0
        for k in range(K):
            for i in range(I):
                J = noise * np.eye(N, dtype=complex)
                for j in range(K):
                    for ll in range(I):
                        if (j, ll) != (k, i):
                            X = H[k, i, j] @ V[j, ll]
                            J += X @ X.conj().T
                S = H[k, i, k] @ V[k, i]
                total += np.log(np.linalg.det(np.eye(N) + S @ S.conj().T @ np.linalg.inv(J)).real)
        return total

    R = rate(V)
    for it in range(1, max_iter + 1):
        U, W = {}, {}
        for k in range(K):
            for i in range(I):
                C = noise * np.eye(N, dtype=complex)
                for j in range(K):
                    for ll in range(I):
                        X = H[k, i, j] @ V[j, ll]
                        C += X @ X.conj().T
                S = H[k, i, k] @ V[k, i]
                U[k, i] = np.linalg.solve(C, S)
                W[k, i] = np.linalg.inv(np.eye(S.shape[1]) - U[k, i].conj().T @ S)
        Vn = np.empty_like(V)
        for j in range(K):
            A = np.zeros((M, M), dtype=complex)
            for k in range(K):
                for i in range(I):
                    G = H[k, i, j].conj().T @ U[k, i]
                    A += G @ W[k, i] @ G.conj().T
            Bs = [H[j, ll, j].conj().T @ U[j, ll] @ W[j, ll] for ll in range(I)]

            def power(mu, A=A, Bs=Bs):
                return sum(np.linalg.norm(np.linalg.solve(A + mu * np.eye(M), b)) ** 2 for b in Bs)

            if power(0.0) <= P:
                mu = 0.0
            else:
                lo, hi = 0.0, 1.0
                while power(hi) > P:
                    hi *= 2
                for _ in range(100):
                    mid = (lo + hi) / 2
                    lo, hi = (mid, hi) if power(mid) > P else (lo, mid)
                mu = hi
            for ll in range(I):
                Vn[j, ll] = np.linalg.solve(A + mu * np.eye(M), Bs[ll])
        V = Vn
        R_new = rate(V)
        change = abs(R_new - R) / (np.log(2) if rule == "absolute" else abs(R))
        if change < rtol:
            return V, it, R_new
        R = R_new
    return V, max_iter, R


@pytest.mark.parametrize("dist,rule", [(2.8, "relative"), (0.5, "relative"), (2.8, "absolute")])
def test_paper_wmmse_matches_a_textbook_loop(dist, rule):
    family = InfocomMimoFamily(cells=2, users=2, tx_antennas=4, rx_antennas=2, streams=2, inter_bs_distance=dist)
    problem = family.sample(3, generator=5)
    solver = PaperWMMSE(rule=rule)
    state = solver.init(problem, problem.initial_point())
    for _ in range(50):
        state = solver.step(problem, state)
    x_c, it_c = solve_paper_wmmse(problem, rule=rule)
    assert torch.equal(state.iterations, it_c)
    assert torch.allclose(state.x, x_c, atol=1e-12)
    V0 = unpack(paper_start(problem), problem.precoder_shape).numpy()
    for b in range(3):
        V, its, R = _textbook_wmmse(problem.H[b].numpy(), 1.0, 10.0, V0[b], rule=rule)
        assert its == int(state.iterations[b])
        assert float(state.rate[b]) == pytest.approx(R, rel=1e-8)
        assert np.allclose(unpack(state.x, problem.precoder_shape)[b].numpy(), V, atol=1e-6)


def test_paper_wmmse_stops_by_its_rule_and_is_registered():
    problem = make_family("mimo_infocom_small").sample(4, generator=0)
    solver = l2o.make_solver("wmmse_paper", rtol=0.0, max_iter=7)
    state = solver.init(problem, problem.initial_point())
    for _ in range(9):
        state = solver.step(problem, state)
    assert torch.all(state.iterations == 7) and bool(state.done.all())
    x, its = solve_paper_wmmse(problem, rtol=0.0, max_iter=7)
    assert torch.allclose(x, state.x, atol=1e-12)
    with pytest.raises(ValueError, match="rtol"):
        l2o.make_solver("wmmse_paper", rtol=-1.0)
