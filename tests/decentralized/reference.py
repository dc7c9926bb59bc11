"""Textbook, unbatched reference loops (numpy, one node at a time) for every algorithm."""

from __future__ import annotations

import numpy as np
import torch

from l2o.decentralized.objectives import sample_indices


def node_grad(X, y, x, rho):
    """Gradient of (1/b) sum log(1 + exp(-y h^T x)) + rho sum x^2 / (1 + x^2) for one node."""
    z = X @ x
    coef = -y / (1 + np.exp(y * z))
    return X.T @ coef / len(y) + 2 * rho * x / (1 + x * x) ** 2


def make_grads(X, y, rho, batch, seed):
    """grads(x (n, d), key, samples) -> (n, d), node by node, drawing the documented minibatches."""
    n, m = y.shape

    def grads(x, key, samples=1):
        out = np.empty_like(x)
        for i in range(n):
            if batch is None:
                out[i] = node_grad(X[i], y[i], x[i], rho)
            else:
                idx = sample_indices(seed, key, torch.arange(1), torch.tensor([i]), samples * batch, m)[0, 0].numpy()
                out[i] = node_grad(X[i][idx], y[i][idx], x[i], rho)
        return out

    return grads


def mix(M, v):
    """sum_j M[i, j] v[j], node by node."""
    n = M.shape[0]
    return np.stack([sum(M[i, j] * v[j] for j in range(n) if M[i, j] != 0) for i in range(n)])


def reference(name, A, B, grads, x0, lr, K, R=1):
    """The iterates x_0..x_K (K + 1, n, d) of algorithm ``name`` (see l2o.decentralized.algorithms)."""
    n = A.shape[0]
    x = x0.copy()
    hist = [x.copy()]
    if name in ("push_pull", "push_pull_atc", "gradient_tracking"):
        Bm = A if name == "gradient_tracking" else B
        g = grads(x, 0)
        y = g.copy()
        for k in range(K):
            if name == "push_pull_atc":
                xn = mix(A, x - lr * y)
                gn = grads(xn, k + 1)
                y = mix(Bm, y + gn - g)
            else:
                xn = mix(A, x) - lr * y
                gn = grads(xn, k + 1)
                y = mix(Bm, y) + gn - g
            x, g = xn, gn
            hist.append(x.copy())
    elif name in ("pull_diag_gt", "mg_pull_diag_gt"):
        R = R if name == "mg_pull_diag_gt" else 1
        AR = np.linalg.matrix_power(A, R)
        g = grads(x, 0, R)
        y = g.copy()
        dinv = np.ones((n, 1))
        for t in range(K):
            xn = AR @ (x - lr * y)
            dn = 1 / np.diag(np.linalg.matrix_power(A, (t + 1) * R))[:, None]
            gn = grads(xn, t + 1, R)
            y = AR @ (y + dn * gn - dinv * g)
            x, g, dinv = xn, gn, dn
            hist.append(x.copy())
    elif name == "dsgd":
        for k in range(K):
            x = mix(A, x) - lr * grads(x, k)
            hist.append(x.copy())
    elif name == "push_sum":
        z, w = x.copy(), np.ones((n, 1))
        for k in range(K):
            u, w = mix(B, z), mix(B, w)
            x = u / w
            z = u - lr * grads(x, k + 1)
            hist.append(x.copy())
    elif name == "centralized_sgd":
        for k in range(K):
            gbar = grads(x, k).mean(0)
            x = x - lr * gbar[None, :]
            hist.append(x.copy())
    else:
        raise KeyError(name)
    return np.stack(hist)
