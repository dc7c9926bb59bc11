"""Every algorithm against a textbook unbatched loop, batching over repetitions, and the invariants the
papers' analyses rest on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from l2o.decentralized import simulate
from l2o.decentralized.algorithms import ALGORITHMS, Context, PullDiagGT, PushPull
from l2o.decentralized.comm import SimulatedComm
from l2o.decentralized.objectives import NonconvexLogistic, logistic_data
from l2o.decentralized.topology import exponential, perron_vector, ring_with_chord

from .reference import make_grads, reference

RHO = 0.01


def _setup(name, n=5):
    if name in ("dsgd", "gradient_tracking"):
        top = exponential(8, weights="uniform")  # doubly stochastic
        n = 8
    elif name in ("pull_diag_gt", "mg_pull_diag_gt"):
        top = ring_with_chord(n)
    else:
        top = exponential(n, generator=torch.Generator().manual_seed(2))
    data = logistic_data(n, 30, 4, heterogeneity=0.5, generator=torch.Generator().manual_seed(1))
    return top, data


@pytest.mark.parametrize("batch", [None, 6])
@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_matches_the_textbook_loop(name, batch):
    top, data = _setup(name)
    x0 = 0.1 * torch.randn(data.n, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    K, lr, R = 25, 0.05, 3
    r = simulate(name, top, NonconvexLogistic(RHO), data, lr=lr, iterations=K, batch=batch, rounds=R, seed=9,
                 x0=x0, keep_history=True)
    grads = make_grads(data.X.numpy(), data.y.numpy(), RHO, batch, 9)
    ref = reference(name, top.A.numpy(), top.B.numpy(), grads, x0.numpy(), lr, K, R)
    np.testing.assert_allclose(r.history[:, 0].numpy(), ref, rtol=1e-11, atol=1e-13)


def test_repetitions_are_batched_not_coupled():
    top, data = _setup("push_pull")
    kw = dict(lr=0.05, iterations=20, batch=4, seed=3)
    one = simulate("push_pull", top, NonconvexLogistic(), data, reps=1, **kw)
    three = simulate("push_pull", top, NonconvexLogistic(), data, reps=3, **kw)
    torch.testing.assert_close(three.x[0], one.x[0], rtol=0, atol=1e-15)
    assert not torch.allclose(three.x[1], three.x[0])  # other repetitions draw other minibatches
    full = simulate("push_pull", top, NonconvexLogistic(), data, reps=2, lr=0.05, iterations=20)
    torch.testing.assert_close(full.x[1], full.x[0], rtol=0, atol=0)


def _states(algo, top, data, K):
    comm = SimulatedComm(top)
    ctx = Context(comm, NonconvexLogistic(), data, 0.05, 5, 1, 0)
    s = algo.init(ctx, torch.zeros(1, top.n, data.X.shape[2], dtype=torch.float64))
    out = [s]
    for k in range(K):
        s = algo.step(ctx, s, k)
        out.append(s)
    return out


def test_pull_diag_gt_tracks_the_sum_of_corrected_gradients():
    # pi^T y_k = pi^T D_k^-1 g_k (ICML 2025, the insight behind eq. 10): the pi-weighted tracker carries
    # n times the average gradient once D_k^-1 ~ 1/(n pi)
    top = ring_with_chord(6)
    data = logistic_data(6, 20, 3, generator=torch.Generator().manual_seed(0))
    pi = perron_vector(top.A)
    for k, s in enumerate(_states(PullDiagGT(), top, data, 60)):
        lhs = pi @ s["y"][0]
        D = torch.diagonal(torch.linalg.matrix_power(top.A, k))
        torch.testing.assert_close(lhs, pi @ (s["g"][0] / D[:, None]), rtol=1e-9, atol=1e-12)
    # D_k -> diag(1 pi^T) = pi, so pi^T D_k^-1 g_k -> sum_i g_i
    torch.testing.assert_close(D, pi, rtol=1e-2, atol=0)
    torch.testing.assert_close(pi @ (s["g"][0] / D[:, None]), s["g"][0].sum(0), rtol=1e-2, atol=1e-4)


def test_push_pull_tracker_sums_the_gradients():
    top = exponential(6, generator=torch.Generator().manual_seed(0))
    data = logistic_data(6, 20, 3, generator=torch.Generator().manual_seed(0))
    for s in _states(PushPull(), top, data, 30):
        torch.testing.assert_close(s["y"][0].sum(0), s["g"][0].sum(0), rtol=1e-10, atol=1e-12)


def test_bad_runs_are_one_line_value_errors():
    top, data = _setup("push_pull")
    f = NonconvexLogistic()
    with pytest.raises(ValueError, match="data has 5 nodes but the graph has 4"):
        simulate("push_pull", exponential(4), f, data, lr=0.1, iterations=1)
    with pytest.raises(ValueError, match="lr is"):
        simulate("push_pull", top, f, data, lr=-1.0, iterations=1)
    with pytest.raises(ValueError, match="doubly stochastic"):
        simulate("dsgd", ring_with_chord(5), f, data, lr=0.1, iterations=1)
    with pytest.raises(ValueError, match="x0 has shape"):
        simulate("push_pull", top, f, data, lr=0.1, iterations=1, x0=torch.zeros(3))
    with pytest.raises(ValueError, match="unknown name"):
        simulate("adam", top, f, data, lr=0.1, iterations=1)


def test_float32_runs_and_tracks_float64():
    top, data = _setup("push_pull")
    kw = dict(lr=0.05, iterations=30, batch=4, seed=1)
    r32 = simulate("push_pull", top, NonconvexLogistic(), data, dtype=torch.float32, **kw)
    r64 = simulate("push_pull", top, NonconvexLogistic(), data, **kw)
    assert r32.x.dtype == torch.float32
    torch.testing.assert_close(r32.x.double(), r64.x, rtol=1e-4, atol=1e-5)


def test_mlp_on_digits_learns():
    from l2o.decentralized.objectives import MLP, digits_data

    train, Xt, yt = digits_data(4, split="dirichlet", alpha=0.5)
    f = MLP(hidden=16)
    x0 = f.init(train, torch.Generator().manual_seed(0))
    r = simulate("push_pull", exponential(4, generator=torch.Generator().manual_seed(0)), f, train, lr=0.1,
                 iterations=60, batch=16, x0=x0, record_every=60)
    assert r.loss[-1, 0] < 0.7 * r.loss[0, 0]
    assert float(f.accuracy(r.x[0].mean(0), Xt, yt)) > 0.3  # 10 classes: chance is 0.1
