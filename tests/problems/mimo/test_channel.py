"""``l2o.problems.mimo.channel``: the tensor-level algebra of the MIMO sum-rate problem.

Rates are checked against a plain numpy loop over users (np.linalg.det / inv), packing
against its inverse, the own-streams mask against its definition. (The U/W/V updates of
WMMSE and the closed-form precoders are checked in ``tests/optimizers/test_wmmse.py``,
the stacked kernels in ``tests/learned/test_gnn_wmmse.py``.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from l2o.problems import MimoFamily, MimoInstances, make_generator
from l2o.problems.mimo.channel import budget_scale, own_streams, pack, scale_to_budget, unpack, user_rates

SMALL = MimoFamily(cells=3, users=2, tx_antennas=4, rx_antennas=2, streams=2, power=10.0, noise=1.0)


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


def test_user_rates_from_tensors_match_the_instances():
    p = SMALL.sample(3, 2)
    x = random_point(p)
    torch.testing.assert_close(user_rates(p.H, p.unpack(x), p.noise), p.rates(x), rtol=0, atol=0)
    np.testing.assert_allclose(user_rates(p.H, p.unpack(x), p.noise).numpy(), numpy_rates(p, x), rtol=1e-10, atol=1e-12)


# ----- packing, masks, budgets ---------------------------------------------------------------------
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


def test_own_streams_mask():
    mask = own_streams(3, 2)
    assert mask.shape == (3, 2, 3, 2) and mask.dtype == torch.bool
    for k in range(3):
        for i in range(2):
            for j in range(3):
                for l in range(2):
                    assert bool(mask[k, i, j, l]) == ((k, i) == (j, l))


def test_scale_to_budget_uses_the_budget_and_keeps_zero_cells():
    p = SMALL.sample(2, 0)
    V = p.unpack(random_point(p))
    V[:, 1] = 0  # cell 1 silent
    W = scale_to_budget(V, p.budget)
    power = W.abs().square().sum((-3, -2, -1))
    torch.testing.assert_close(power[:, [0, 2]], p.budget[:, [0, 2]], rtol=1e-13, atol=0)
    assert torch.equal(power[:, 1], torch.zeros(2, dtype=torch.float64))
    zero = torch.zeros(2, 3, dtype=torch.float64)
    assert torch.equal(budget_scale(zero, p.budget), torch.zeros(2, 3, dtype=torch.float64))
