"""Per-node objectives: closed-form gradients against autograd, minibatches, sampling, data generators."""

from __future__ import annotations

import pytest
import torch

from l2o.decentralized.objectives import (
    MLP,
    LeastSquares,
    Logistic,
    NodeData,
    NonconvexLogistic,
    dirichlet_split,
    least_squares_data,
    logistic_data,
    make_objective,
    sample_indices,
)

G = torch.Generator


def _autograd(objective, x, data, nodes, idx=None):
    """Reference gradient: autograd of the per-node mean loss written out directly."""
    x = x.detach().clone().requires_grad_(True)
    X, y = data.X[nodes], data.y[nodes]
    if idx is not None:
        rows = torch.arange(len(nodes))[None, :, None]
        X, y = X[rows, idx], y[rows, idx]
    z = (X @ x.unsqueeze(-1)).squeeze(-1) if not isinstance(objective, MLP) else None
    if isinstance(objective, NonconvexLogistic):
        f = torch.log1p(torch.exp(-y * z)).mean(-1) + objective.rho * (x**2 / (1 + x**2)).sum(-1)
    elif isinstance(objective, Logistic):
        f = torch.log1p(torch.exp(-y * z)).mean(-1) + 0.5 * objective.lam * (x**2).sum(-1)
    elif isinstance(objective, LeastSquares):
        f = 0.5 * ((z - y) ** 2).mean(-1)
    else:
        p, h, c = X.shape[-1], objective.hidden, objective.classes
        W1, b1, W2, b2 = torch.split(x, [p * h, h, h * c, c], dim=-1)
        H = torch.relu(X @ W1.unflatten(-1, (p, h)) + b1.unsqueeze(-2))
        logits = H @ W2.unflatten(-1, (h, c)) + b2.unsqueeze(-2)
        f = torch.nn.functional.cross_entropy(logits.flatten(0, -2), y.expand(logits.shape[:-1]).flatten(),
                                              reduction="none").unflatten(0, logits.shape[:-1]).mean(-1)
    (g,) = torch.autograd.grad(f.sum(), x)
    return g, f.detach()


@pytest.mark.parametrize("objective", [NonconvexLogistic(0.3), Logistic(0.2), LeastSquares(), MLP(hidden=5, classes=3)])
def test_gradients_and_losses_match_autograd(objective):
    g = G().manual_seed(0)
    if isinstance(objective, MLP):
        data = NodeData(torch.randn(4, 7, 6, generator=g, dtype=torch.float64),
                        torch.randint(3, (4, 7), generator=g))
    elif isinstance(objective, LeastSquares):
        data = least_squares_data(4, 7, 5, generator=g)
    else:
        data = logistic_data(4, 7, 5, heterogeneity=1.0, generator=g)
    d = objective.dim(data)
    x = torch.randn(3, 2, d, generator=g, dtype=torch.float64)  # 3 repetitions, 2 local nodes
    nodes = torch.tensor([3, 1])
    ref, f = _autograd(objective, x, data, nodes)
    torch.testing.assert_close(objective.grad(x, data, nodes), ref, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(objective.loss(x, data, nodes), f, rtol=1e-12, atol=1e-13)
    idx = sample_indices(5, 2, torch.arange(3), nodes, 4, data.m)
    ref_b, _ = _autograd(objective, x, data, nodes, idx)
    torch.testing.assert_close(objective.grad(x, data, nodes, idx), ref_b, rtol=1e-12, atol=1e-13)


def test_sample_indices_are_uniform_and_independent_of_grouping():
    idx = sample_indices(1, 7, torch.arange(4), torch.arange(8), 5000, 10)
    counts = torch.bincount(idx.flatten(), minlength=10).double()
    expected = idx.numel() / 10
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 40  # 9 degrees of freedom: P(chi2 > 40) ~ 1e-5
    alone = sample_indices(1, 7, torch.arange(4), torch.tensor([5]), 5000, 10)
    assert torch.equal(idx[:, 5:6], alone)
    assert not torch.equal(sample_indices(1, 8, torch.arange(1), torch.arange(1), 50, 10),
                           sample_indices(1, 7, torch.arange(1), torch.arange(1), 50, 10))


def test_logistic_labels_follow_the_planted_model():
    data = logistic_data(2, 20000, 3, generator=G().manual_seed(0))
    p = torch.sigmoid(data.X @ data.x_star)
    # E[y] = 2p - 1; the mean of y - (2p - 1) is ~ N(0, 1/N)
    dev = float((data.y - (2 * p - 1)).mean())
    assert abs(dev) < 5 / (40000 ** 0.5)


def test_dirichlet_split_is_heterogeneous_for_small_alpha():
    X = torch.arange(1000.0)[:, None]
    y = torch.arange(1000) % 10

    def spread(alpha):
        d = dirichlet_split(X, y, 20, 200, alpha, G().manual_seed(0))
        assert ((d.X[..., 0].long() % 10) == d.y).all()
        frac = torch.stack([torch.bincount(row, minlength=10) for row in d.y]).double() / 200
        return float(frac.max(1).values.mean())

    assert spread(0.1) > 0.6 > 0.3 > spread(100.0)


def test_bad_input():
    with pytest.raises(ValueError, match="y has shape"):
        NodeData(torch.zeros(2, 3, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="NaN"):
        NodeData(torch.full((1, 1, 1), float("nan")), torch.zeros(1, 1))
    with pytest.raises(ValueError, match="labels in"):
        NonconvexLogistic().check(NodeData(torch.zeros(1, 2, 1), torch.tensor([[0.0, 1.0]])))
    with pytest.raises(ValueError, match="unknown name"):
        make_objective("hinge")
