"""The simulated backend's sparse (CSR) mixing against the dense product and the textbook loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from l2o.decentralized import simulate
from l2o.decentralized.comm import SimulatedComm
from l2o.decentralized.objectives import NonconvexLogistic, logistic_data
from l2o.decentralized.topology import exponential, ring_with_chord

from .reference import make_grads, reference


def test_auto_rule_picks_sparse_only_for_large_sparse_graphs():
    assert SimulatedComm(exponential(128)).sparse  # 8 of 128 entries per row
    assert not SimulatedComm(exponential(64)).sparse  # too small to matter
    assert not SimulatedComm(ring_with_chord(8), sparse=False).sparse
    assert SimulatedComm(ring_with_chord(8), sparse=True).sparse


@pytest.mark.parametrize("shape", [(130, 3), (4, 130, 3), (2, 3, 130, 1)])
def test_mix_equals_the_dense_product(shape):
    top = exponential(130, generator=torch.Generator().manual_seed(0))
    t = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sparse, dense = SimulatedComm(top, sparse=True), SimulatedComm(top, sparse=False)
    parts = [("A", t), ("B", t), ("J", t)]
    for a, b in zip(sparse.mix(parts), dense.mix(parts), strict=True):
        assert a.shape == b.shape == t.shape
        torch.testing.assert_close(a, b, rtol=1e-14, atol=1e-15)
    assert sparse.messages.tolist() == dense.messages.tolist() and sparse.bytes.tolist() == dense.bytes.tolist()


def test_rows_of_powers_of_a_are_exact():
    # Pull-Diag-GT's diagonal estimate: n rounds of V <- A V from V_0 = I give A^k, diag(A^k) = D_k
    top = exponential(150, generator=torch.Generator().manual_seed(2))
    comm = SimulatedComm(top, sparse=True)
    V = torch.eye(150, dtype=torch.float64)
    for _ in range(12):
        (V,) = comm.mix([("A", V)])
    want = np.linalg.matrix_power(top.A.numpy(), 12)
    np.testing.assert_allclose(V.numpy(), want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["pull_diag_gt", "mg_pull_diag_gt", "push_pull", "push_sum"])
def test_sparse_run_matches_the_textbook_loop(name):
    n, d, K, lr, R = 7, 3, 20, 0.05, 2
    top = exponential(n, generator=torch.Generator().manual_seed(3))
    data = logistic_data(n, 20, d, heterogeneity=0.5, generator=torch.Generator().manual_seed(4))
    x0 = 0.1 * torch.randn(n, d, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    r = simulate(name, top, NonconvexLogistic(0.01), data, lr=lr, iterations=K, batch=5, rounds=R, seed=6, x0=x0,
                 keep_history=True, sparse=True)
    ref = reference(name, top.A.numpy(), top.B.numpy(), make_grads(data.X.numpy(), data.y.numpy(), 0.01, 5, 6),
                    x0.numpy(), lr, K, R)
    np.testing.assert_allclose(r.history[:, 0].numpy(), ref, rtol=1e-11, atol=1e-13)


def test_large_sparse_run_matches_the_dense_run():
    n = 128
    top = exponential(n, generator=torch.Generator().manual_seed(7))
    data = logistic_data(n, 8, 4, generator=torch.Generator().manual_seed(8))
    kw = dict(lr=1e-3, iterations=15, batch=4, reps=2, seed=9)
    a = simulate("pull_diag_gt", top, NonconvexLogistic(0.01), data, sparse=True, **kw)
    b = simulate("pull_diag_gt", top, NonconvexLogistic(0.01), data, sparse=False, **kw)
    torch.testing.assert_close(a.x, b.x, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(a.grad_norm, b.grad_norm, rtol=1e-12, atol=1e-15)
    assert a.bytes.tolist() == b.bytes.tolist()
