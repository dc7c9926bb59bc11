"""Topologies: weight rules of each generator, checks, and the metrics against closed forms and numpy."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from l2o.decentralized import topology as T
from l2o.decentralized.topology import Topology, check_topology


def _numpy_metrics(A: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Independent reference: pi from numpy's eigen-decomposition of A^T, beta from numpy's 2-norm."""
    vals, vecs = np.linalg.eig(A.T)
    v = np.real(vecs[:, np.argmin(np.abs(vals - 1))])
    pi = v / v.sum()
    P, Pi = np.diag(np.sqrt(pi)), np.diag(1 / np.sqrt(pi))
    beta = np.linalg.norm(P @ (A - np.outer(np.ones(len(pi)), pi)) @ Pi, 2)
    return pi, pi.max() / pi.min(), beta


def _plain_ring(n: int) -> Topology:
    W = torch.eye(n, dtype=torch.float64)
    W[torch.arange(n), (torch.arange(n) - 1) % n] = 1.0
    return Topology.from_weights(W)


@pytest.mark.parametrize("n", [3, 5, 8])
def test_directed_ring_metrics_match_closed_forms(n):
    top = _plain_ring(n)  # A = (I + S) / 2, circulant: pi uniform, eigenvalues (1 + w^k) / 2
    assert torch.allclose(T.perron_vector(top.A), torch.full((n,), 1 / n, dtype=torch.float64), atol=1e-13)
    assert T.kappa(top.A) == pytest.approx(1.0, abs=1e-12)
    assert T.beta(top.A) == pytest.approx(math.cos(math.pi / n), abs=1e-12)
    # [A^k]_ii = 2^-k * sum_{j = 0 mod n} C(k, j)
    K = 40
    diag = [sum(math.comb(k, j) for j in range(0, k + 1, n)) / 2 ** k for k in range(1, K + 1)]
    assert T.diagonal_powers(top.A, K)[:, 0].tolist() == pytest.approx(diag, rel=1e-12)
    assert T.theta(top.A, K) == pytest.approx(max(1 / d for d in diag), rel=1e-12)
    R = math.ceil(3 * (1 + 0 + math.log(n)) / (1 - math.cos(math.pi / n)))
    assert T.gossip_rounds(top.A) in (R, R - 1)  # kappa = 1 up to rounding in the log


def test_uniform_exponential_graph_is_doubly_stochastic_with_the_dft_spectrum():
    n = 8
    top = T.exponential(n, weights="uniform")
    assert T.is_doubly_stochastic(top.A)
    offsets = [0, 1, 2, 4]
    lam = [abs(sum(np.exp(-2j * np.pi * s * k / n) for s in offsets)) / 4 for k in range(1, n)]
    assert T.beta(top.A) == pytest.approx(max(lam), abs=1e-12)
    assert T.kappa(top.A) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("make", [
    lambda g: T.exponential(6, generator=g), lambda g: T.ring_chords(8, generator=g), lambda g: T.grid(9, generator=g),
    lambda g: T.erdos_renyi(7, generator=g), lambda g: T.geometric(8, generator=g),
    lambda g: T.nearest_neighbour(8, generator=g), lambda g: T.ring_with_chord(10)])
def test_metrics_match_numpy(make):
    top = make(torch.Generator().manual_seed(1))
    pi, kap, bet = _numpy_metrics(top.A.numpy())
    np.testing.assert_allclose(T.perron_vector(top.A).numpy(), pi, atol=1e-12)
    assert T.kappa(top.A) == pytest.approx(kap, rel=1e-10)
    assert T.beta(top.A) == pytest.approx(bet, abs=1e-10)
    assert T.is_row_stochastic(top.A) and T.is_column_stochastic(top.B)
    assert T.has_self_loops(top.A) and T.is_strongly_connected(top.A)
    assert torch.equal(top.A > 0, top.B > 0)


def test_ring_with_chord_matches_the_authors_matrix_and_the_computed_metrics():
    n = 10
    A = T.ring_with_chord(n).A
    ref = np.zeros((n, n))
    for i in range(n):
        ref[i, i] = ref[i, (i - 1) % n] = 0.5
    ref[n // 2] = 0
    ref[n // 2, [n // 2, n // 2 - 1, 0]] = 1 / 3
    np.testing.assert_allclose(A.numpy(), ref, atol=1e-15)
    assert not T.is_column_stochastic(A)
    m = T.ring_with_chord(n).metrics()
    assert m["kappa_A"] == pytest.approx(2.0, rel=1e-9)  # RESEARCH-2 section 3: kappa 2.0, beta 0.951, R 246
    assert m["beta_A"] == pytest.approx(0.951, abs=5e-4)
    assert m["rounds_R"] == 246


def test_exponential_weight_rule():
    n = 6
    top = T.exponential(n, generator=torch.Generator().manual_seed(0))
    W = top.W
    for i in range(n):
        for j in range(n):
            diff = (i - j) % n
            edge = diff == 0 or (diff & (diff - 1)) == 0
            assert (W[i, j] > 0) == edge
            if edge:
                assert W[i, j].item() in (1.0, 2.0)
    assert set(W[W > 0].tolist()) == {1.0, 2.0}
    torch.testing.assert_close(top.A, W / W.sum(1, keepdim=True))
    torch.testing.assert_close(top.B, W / W.sum(0, keepdim=True))


def test_uniform_weights_give_the_in_degree_rule():
    top = T.grid(9, weights="uniform")
    indeg = (top.A > 0).sum(1) - 1
    for i in range(9):
        assert torch.allclose(top.A[i][top.A[i] > 0], 1 / (1 + indeg[i]).to(torch.float64))
    assert sorted(indeg.tolist()) == [2, 2, 2, 2, 3, 3, 3, 3, 4]


def test_generator_shapes():
    g = torch.Generator().manual_seed(3)
    er = T.erdos_renyi(9, generator=g)
    assert torch.equal(er.W > 0, (er.W > 0).T)
    geo = T.geometric(9, generator=g)
    assert torch.equal(geo.W > 0, (geo.W > 0).T)
    knn = T.nearest_neighbour(9, k=3, generator=g)
    assert (((knn.W > 0).sum(1) - 1) == 3).all()
    ring = T.ring_chords(8, weights="uniform")
    assert ring.in_neighbours(2) == [0, 1] and ring.in_neighbours(6) == [4, 5]
    with pytest.raises(ValueError, match="perfect square"):
        T.grid(8)


def test_checks():
    W = torch.eye(3, dtype=torch.float64)
    W[1, 0] = W[2, 1] = 1.0  # 0 -> 1 -> 2, nothing back
    with pytest.raises(ValueError, match="not strongly connected"):
        check_topology(Topology.from_weights(W), need="push_pull")
    with pytest.raises(ValueError, match="doubly stochastic"):
        check_topology(T.ring_with_chord(5), need="doubly")
    no_loop = torch.ones(3, 3, dtype=torch.float64) - torch.eye(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="node 0 has no self-loop"):
        check_topology(Topology.from_weights(no_loop), need="pull", self_loops=True)
    with pytest.warns(UserWarning, match="doubly stochastic"):
        check_topology(T.exponential(8, weights="uniform"), need="pull", warn_doubly=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_topology(T.ring_with_chord(8), need="pull", warn_doubly=True)
    with pytest.raises(ValueError, match="negative"):
        Topology.from_weights(-torch.eye(2))
    with pytest.raises(ValueError, match="NaN"):
        Topology.from_weights(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="not row-stochastic"):
        Topology.from_matrices(torch.ones(2, 2))
    assert not T.is_strongly_connected(W)
