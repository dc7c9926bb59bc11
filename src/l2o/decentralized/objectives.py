"""Per-node objectives ``f_i(x) = (1/m) sum_l F(x; X[i, l], y[i, l])`` and their data.

Shapes: data ``X`` (n, m, p) and ``y`` (n, m), one row per node; a point ``x`` is (..., k, d) where
``k`` is the number of *local* nodes (all n in the simulated backend, one in a node process) and
``...`` the repetitions. ``nodes`` (k,) says which nodes the rows of x are. Gradients are exact
closed forms (no autograd), so that both backends compute bit-for-bit the same arithmetic.

Minibatches come from ``sample_indices``: a counter-based hash (splitmix64) of (seed, iteration,
repetition, node, slot), so node i draws the same samples whether it runs stacked with the others
or alone in its own process.

Objectives (Liang, Chen, Luo, Yuan, ICML 2025; Liang, Luo, Yuan, arXiv 2506.18075):

* ``NonconvexLogistic(rho)``: ``log(1 + exp(-y h^T x)) + rho sum_j x_j^2 / (1 + x_j^2)`` (rho = 0.01);
* ``Logistic(lam)``: ``log(1 + exp(-y h^T x)) + (lam / 2) ||x||^2``;
* ``LeastSquares()``: ``(1/2) (h^T x - y)^2``;
* ``MLP(hidden)``: a one-hidden-layer ReLU network with softmax cross-entropy (scikit-learn's digits
  in place of MNIST), parameters flattened into x.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

_MASK63 = (1 << 63) - 1


def _signed(c: int) -> int:
    return c - (1 << 64) if c >= 1 << 63 else c


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_M1 = _signed(0xBF58476D1CE4E5B9)
_M2 = _signed(0x94D049BB133111EB)


def _shr(z: Tensor, s: int) -> Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def _splitmix(z: Tensor) -> Tensor:
    z = z + _GOLDEN
    z = (z ^ _shr(z, 30)) * _M1
    z = (z ^ _shr(z, 27)) * _M2
    return z ^ _shr(z, 31)


def sample_indices(seed: int, step: int, reps: Tensor, nodes: Tensor, size: int, m: int) -> Tensor:
    """Minibatch indices in [0, m), shape (len(reps), len(nodes), size): a hash of (seed, step,
    repetition, node, slot), drawn with replacement, independent of how nodes are grouped.

    >>> a = sample_indices(0, 3, torch.arange(2), torch.arange(4), 5, 100)
    >>> b = sample_indices(0, 3, torch.arange(2), torch.tensor([2]), 5, 100)
    >>> a.shape, bool((a[:, 2:3] == b).all()), int(a.max()) < 100
    (torch.Size([2, 4, 5]), True, True)
    """
    key = _splitmix(torch.tensor(seed, dtype=torch.int64))
    key = _splitmix(key ^ step)
    r = _splitmix(key ^ reps.to(torch.int64))[:, None, None]
    z = _splitmix(r ^ nodes.to(torch.int64)[None, :, None])
    z = _splitmix(z ^ torch.arange(size, dtype=torch.int64)[None, None, :])
    return (z & _MASK63) % m


@dataclasses.dataclass(frozen=True)
class NodeData:
    """Per-node data: ``X`` (n, m, p) float, ``y`` (n, m) (labels +-1, real targets, or class indices for
    the MLP). ``x_star`` (d,) is the planted parameter where there is one.

    >>> NodeData(torch.zeros(3, 5, 2), torch.ones(3, 5)).n
    3
    """

    X: Tensor
    y: Tensor
    x_star: Tensor | None = None

    def __post_init__(self) -> None:
        if self.X.ndim != 3:
            raise ValueError(f"X has shape {tuple(self.X.shape)}; expected (n_nodes, m, d)")
        if self.y.shape != self.X.shape[:2]:
            raise ValueError(f"y has shape {tuple(self.y.shape)}; expected (n_nodes, m) = {tuple(self.X.shape[:2])}")
        if self.X.is_floating_point() and not torch.isfinite(self.X).all():
            raise ValueError("X holds NaN or infinite values; expected finite features")
        if self.y.is_floating_point() and not torch.isfinite(self.y).all():
            raise ValueError("y holds NaN or infinite values; expected finite targets")

    @property
    def n(self) -> int:
        """Number of nodes."""
        return int(self.X.shape[0])

    @property
    def m(self) -> int:
        """Samples per node."""
        return int(self.X.shape[1])

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> NodeData:
        """Features (and real targets) in ``dtype`` on ``device``; integer labels keep their dtype."""
        y = self.y.to(device=device, dtype=dtype) if self.y.is_floating_point() else self.y.to(device)
        xs = None if self.x_star is None else self.x_star.to(device=device, dtype=dtype)
        return NodeData(self.X.to(device=device, dtype=dtype), y, xs)


def _batch(data: NodeData, nodes: Tensor, idx: Tensor | None) -> tuple[Tensor, Tensor]:
    """(features, targets) of the local nodes: full data (k, m, p), (k, m), or a minibatch
    (R, k, b, p), (R, k, b) for indices idx (R, k, b)."""
    if idx is None:
        if len(nodes) == data.n and bool((nodes == torch.arange(data.n, device=nodes.device)).all()):
            return data.X, data.y  # all nodes, in order: no copy
        return data.X[nodes], data.y[nodes]
    flat = (nodes.to(idx.device)[None, :, None] * data.m + idx).reshape(-1)  # rows of the (n m, p) view
    Xb = data.X.reshape(-1, data.X.shape[-1]).index_select(0, flat).reshape(*idx.shape, data.X.shape[-1])
    return Xb, data.y.reshape(-1).index_select(0, flat).reshape(idx.shape)


class Objective:
    """Base class: ``grad(x, data, nodes, idx)`` -> (..., k, d) and ``loss(x, data, nodes)`` -> (..., k)."""

    name = "objective"
    #: whether the objective has a regularizer weighted by ``rho`` (its constructor's argument)
    regularized = True

    def dim(self, data: NodeData) -> int:
        """Dimension d of x."""
        return int(data.X.shape[2])

    def check(self, data: NodeData) -> None:
        """Raise ValueError when ``data`` does not fit this objective."""

    def init(self, data: NodeData, generator: torch.Generator | None = None) -> Tensor:
        """A default starting point (d,): zeros."""
        return torch.zeros(self.dim(data), dtype=data.X.dtype)

    def grad(self, x: Tensor, data: NodeData, nodes: Tensor, idx: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def loss(self, x: Tensor, data: NodeData, nodes: Tensor) -> Tensor:
        raise NotImplementedError


def _margins(x: Tensor, Xb: Tensor) -> Tensor:
    """h_l^T x: x (..., k, p), Xb (..., k, b, p) -> (..., k, b) (elementwise products summed: one small
    reduction per sample, the same arithmetic however many nodes are stacked)."""
    return (Xb * x.unsqueeze(-2)).sum(-1)


def _mean_outer(coef: Tensor, Xb: Tensor) -> Tensor:
    """(1/b) sum_l coef_l h_l: coef (..., k, b), Xb (..., k, b, p) -> (..., k, p)."""
    return (coef.unsqueeze(-1) * Xb).sum(-2) / Xb.shape[-2]


class _LogisticBase(Objective):
    def check(self, data: NodeData) -> None:
        if not ((data.y == 1) | (data.y == -1)).all():
            raise ValueError(f"y: the {self.name} objective needs labels in {{-1, +1}}")

    def _reg_grad(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _reg(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def grad(self, x: Tensor, data: NodeData, nodes: Tensor, idx: Tensor | None = None) -> Tensor:
        Xb, yb = _batch(data, nodes, idx)
        z = _margins(x, Xb)
        return _mean_outer(-yb * torch.sigmoid(-yb * z), Xb) + self._reg_grad(x)

    def loss(self, x: Tensor, data: NodeData, nodes: Tensor) -> Tensor:
        Xb, yb = _batch(data, nodes, None)
        return torch.nn.functional.softplus(-yb * _margins(x, Xb)).mean(-1) + self._reg(x)


class NonconvexLogistic(_LogisticBase):
    """``f_i(x) = (1/m) sum_l log(1 + exp(-y_l h_l^T x)) + rho sum_j x_j^2 / (1 + x_j^2)``, the papers'
    synthetic objective; gradient of the regularizer ``2 rho x / (1 + x^2)^2``.

    >>> data = NodeData(torch.ones(1, 1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64))
    >>> NonconvexLogistic(0.01).grad(torch.zeros(1, 1, dtype=torch.float64), data, torch.arange(1)).item()
    -0.5
    """

    name = "nonconvex_logistic"

    def __init__(self, rho: float = 0.01) -> None:
        if not rho >= 0:
            raise ValueError(f"rho is {rho}; expected a non-negative number")
        self.rho = float(rho)

    def _reg_grad(self, x: Tensor) -> Tensor:
        return 2 * self.rho * x / (1 + x * x) ** 2

    def _reg(self, x: Tensor) -> Tensor:
        return self.rho * (x * x / (1 + x * x)).sum(-1)


class Logistic(_LogisticBase):
    """l2-regularized logistic regression ``(1/m) sum_l log(1 + exp(-y_l h_l^T x)) + (lam/2) ||x||^2``.

    >>> data = NodeData(torch.ones(1, 1, 1, dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64))
    >>> round(Logistic(0.5).grad(torch.ones(1, 1, dtype=torch.float64), data, torch.arange(1)).item(), 6)
    0.231059
    """

    name = "logistic"

    def __init__(self, lam: float = 0.01) -> None:
        if not lam >= 0:
            raise ValueError(f"rho is {lam}; expected a non-negative number")
        self.lam = float(lam)

    def _reg_grad(self, x: Tensor) -> Tensor:
        return self.lam * x

    def _reg(self, x: Tensor) -> Tensor:
        return 0.5 * self.lam * (x * x).sum(-1)


class LeastSquares(Objective):
    """``f_i(x) = (1/(2m)) sum_l (h_l^T x - y_l)^2`` (real targets).

    >>> data = NodeData(torch.ones(1, 2, 1, dtype=torch.float64), torch.tensor([[1.0, 3.0]], dtype=torch.float64))
    >>> LeastSquares().grad(torch.zeros(1, 1, dtype=torch.float64), data, torch.arange(1)).item()
    -2.0
    """

    name = "least_squares"
    regularized = False

    def grad(self, x: Tensor, data: NodeData, nodes: Tensor, idx: Tensor | None = None) -> Tensor:
        Xb, yb = _batch(data, nodes, idx)
        return _mean_outer(_margins(x, Xb) - yb, Xb)

    def loss(self, x: Tensor, data: NodeData, nodes: Tensor) -> Tensor:
        Xb, yb = _batch(data, nodes, None)
        return 0.5 * ((_margins(x, Xb) - yb) ** 2).mean(-1)


class MLP(Objective):
    """A p -> hidden -> classes ReLU network with softmax cross-entropy, parameters flattened as
    ``[W1 (p, hidden), b1, W2 (hidden, classes), b2]``; ``y`` holds class indices. Gradients by hand
    (backpropagation written out), batched over repetitions and nodes.

    >>> f = MLP(hidden=4, classes=3)
    >>> data = NodeData(torch.ones(2, 5, 6, dtype=torch.float64), torch.zeros(2, 5, dtype=torch.long))
    >>> x = f.init(data, torch.Generator().manual_seed(0)).expand(2, -1)
    >>> f.grad(x, data, torch.arange(2)).shape, f.dim(data)
    (torch.Size([2, 43]), 43)
    """

    name = "mlp"

    def __init__(self, hidden: int = 32, classes: int = 10) -> None:
        self.hidden, self.classes = int(hidden), int(classes)

    def dim(self, data: NodeData) -> int:
        p, h, c = int(data.X.shape[2]), self.hidden, self.classes
        return p * h + h + h * c + c

    def check(self, data: NodeData) -> None:
        if data.y.is_floating_point() or int(data.y.min()) < 0 or int(data.y.max()) >= self.classes:
            raise ValueError(f"y: the MLP needs integer class labels in [0, {self.classes})")

    def init(self, data: NodeData, generator: torch.Generator | None = None) -> Tensor:
        """Kaiming-uniform weights, zero biases (all nodes start from the same point)."""
        p, h, c = int(data.X.shape[2]), self.hidden, self.classes
        W1 = (torch.rand(p, h, generator=generator, dtype=torch.float64) * 2 - 1) * math.sqrt(6 / p)
        W2 = (torch.rand(h, c, generator=generator, dtype=torch.float64) * 2 - 1) * math.sqrt(6 / h)
        return torch.cat([W1.flatten(), torch.zeros(h), W2.flatten(), torch.zeros(c)]).to(data.X.dtype)

    def _unpack(self, x: Tensor, p: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        h, c = self.hidden, self.classes
        sizes = [p * h, h, h * c, c]
        W1, b1, W2, b2 = torch.split(x, sizes, dim=-1)
        return W1.unflatten(-1, (p, h)), b1, W2.unflatten(-1, (h, c)), b2

    def _forward(self, x: Tensor, Xb: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        W1, b1, W2, b2 = self._unpack(x, int(Xb.shape[-1]))
        H = torch.relu(Xb @ W1 + b1.unsqueeze(-2))
        logits = H @ W2 + b2.unsqueeze(-2)
        return H, logits, (W1, b1, W2, b2)

    def grad(self, x: Tensor, data: NodeData, nodes: Tensor, idx: Tensor | None = None) -> Tensor:
        Xb, yb = _batch(data, nodes, idx)
        H, logits, (W1, b1, W2, b2) = self._forward(x, Xb)
        b = Xb.shape[-2]
        P = torch.softmax(logits, dim=-1)
        P = (P - torch.nn.functional.one_hot(yb, self.classes).to(P.dtype)) / b
        gW2 = H.transpose(-1, -2) @ P
        gb2 = P.sum(-2)
        dH = (P @ W2.transpose(-1, -2)) * (H > 0)
        gW1 = Xb.transpose(-1, -2) @ dH
        gb1 = dH.sum(-2)
        shape = torch.broadcast_shapes(x.shape[:-1], gW1.shape[:-2])
        parts = [gW1.flatten(-2), gb1, gW2.flatten(-2), gb2]
        return torch.cat([t.expand(*shape, t.shape[-1]) for t in parts], dim=-1)

    def loss(self, x: Tensor, data: NodeData, nodes: Tensor) -> Tensor:
        Xb, yb = _batch(data, nodes, None)
        _, logits, _ = self._forward(x, Xb)
        logp = torch.log_softmax(logits, dim=-1)
        yy = yb.expand(logp.shape[:-1])
        return -logp.gather(-1, yy.unsqueeze(-1)).squeeze(-1).mean(-1)

    def accuracy(self, x: Tensor, X: Tensor, y: Tensor) -> Tensor:
        """Classification accuracy of parameters x (..., d) on X (N, p), y (N,)."""
        _, logits, _ = self._forward(x.unsqueeze(-2), X)
        return (logits.argmax(-1) == y).to(X.dtype).mean(-1)


#: Objectives by name (``l2o decentralized --objective``); ``rho`` is the regularization weight.
OBJECTIVES = {"nonconvex_logistic": NonconvexLogistic, "logistic": Logistic, "least_squares": LeastSquares}


def make_objective(name: str, rho: float | None = None) -> Objective:
    """An objective by name; ``rho`` (default 0.01) weights the regularizer of the logistic ones.

    >>> make_objective("nonconvex_logistic").rho
    0.01
    """
    if name not in OBJECTIVES:
        raise ValueError(f"objective: unknown name {name!r}; expected one of {', '.join(OBJECTIVES)}")
    cls = OBJECTIVES[name]
    if not cls.regularized:
        if rho not in (None, 0, 0.0):
            raise ValueError(f"rho: {name} has no regularizer; omit --rho")
        return cls()
    return cls(0.01 if rho is None else rho)


# --------------------------------------------------------------------------- data


def logistic_data(n_nodes: int, m: int, d: int = 10, heterogeneity: float = 0.0,
                  generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64) -> NodeData:
    """The papers' synthetic classification data: features ``h ~ N(0, I_d)``, a planted
    ``x* ~ N(0, I_d)``, node i's own optimum ``x*_i = x* + heterogeneity * N(0, I_d)`` (0: iid), labels
    ``y = +1`` with probability ``1 / (1 + exp(-h^T x*_i))``, else -1 (the code's ``1/z > 1 + exp(-h^T x)``
    with z ~ U(0, 1)). X (n_nodes, m, d), y (n_nodes, m).

    >>> data = logistic_data(4, 50, generator=torch.Generator().manual_seed(0))
    >>> data.X.shape, sorted(set(data.y.flatten().tolist()))
    (torch.Size([4, 50, 10]), [-1.0, 1.0])
    """
    for name, v in (("n_nodes", n_nodes), ("m", m), ("d", d)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} is {v!r}; expected a positive integer")
    x_star = torch.randn(d, generator=generator, dtype=torch.float64)
    local = x_star + heterogeneity * torch.randn(n_nodes, d, generator=generator, dtype=torch.float64)
    X = torch.randn(n_nodes, m, d, generator=generator, dtype=torch.float64)
    z = torch.rand(n_nodes, m, generator=generator, dtype=torch.float64)
    p = torch.sigmoid((X @ local.unsqueeze(-1)).squeeze(-1))
    y = torch.where(z < p, 1.0, -1.0).to(torch.float64)
    return NodeData(X.to(dtype), y.to(dtype), x_star.to(dtype))


def least_squares_data(n_nodes: int, m: int, d: int = 10, heterogeneity: float = 0.0, noise: float = 0.1,
                       generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64) -> NodeData:
    """``y = h^T x*_i + noise * N(0, 1)`` with ``h ~ N(0, I_d)``, ``x*_i = x* + heterogeneity * N(0, I_d)``.

    >>> least_squares_data(2, 5, 3, generator=torch.Generator().manual_seed(0)).y.shape
    torch.Size([2, 5])
    """
    x_star = torch.randn(d, generator=generator, dtype=torch.float64)
    local = x_star + heterogeneity * torch.randn(n_nodes, d, generator=generator, dtype=torch.float64)
    X = torch.randn(n_nodes, m, d, generator=generator, dtype=torch.float64)
    y = (X @ local.unsqueeze(-1)).squeeze(-1) + noise * torch.randn(n_nodes, m, generator=generator,
                                                                    dtype=torch.float64)
    return NodeData(X.to(dtype), y.to(dtype), x_star.to(dtype))


def split_iid(X: Tensor, y: Tensor, n_nodes: int, generator: torch.Generator | None = None) -> NodeData:
    """Shuffle (X (N, p), y (N,)) and deal it evenly to n_nodes nodes (the last N mod n_nodes samples
    are dropped): X (n_nodes, N // n_nodes, p).

    >>> split_iid(torch.zeros(10, 2), torch.zeros(10), 3).X.shape
    torch.Size([3, 3, 2])
    """
    m = X.shape[0] // n_nodes
    if m < 1:
        raise ValueError(f"n_nodes is {n_nodes}; expected at most the number of samples, {X.shape[0]}")
    perm = torch.randperm(X.shape[0], generator=generator)[: m * n_nodes]
    return NodeData(X[perm].reshape(n_nodes, m, *X.shape[1:]), y[perm].reshape(n_nodes, m))


def dirichlet_split(X: Tensor, y: Tensor, n_nodes: int, m: int, alpha: float = 0.9,
                    generator: torch.Generator | None = None) -> NodeData:
    """Heterogeneous labels: node i draws class proportions ``p_i ~ Dirichlet(alpha)`` (Gamma(alpha) draws
    normalized), then m labels from p_i and for each an example of that class (with replacement). Lower
    alpha: more heterogeneous. X (N, p), y (N,) class indices -> NodeData (n_nodes, m, p).

    >>> d = dirichlet_split(torch.arange(8.0)[:, None], torch.arange(8) % 2, 3, 4,
    ...                     generator=torch.Generator().manual_seed(0))
    >>> d.X.shape, bool(((d.X[..., 0].long() % 2) == d.y).all())
    (torch.Size([3, 4, 1]), True)
    """
    if not alpha > 0:
        raise ValueError(f"alpha is {alpha}; expected a positive concentration")
    classes = torch.unique(y)
    c = len(classes)
    # Gamma(alpha) by Marsaglia-Tsang on alpha + 1, times U^(1/alpha), with the explicit generator
    a = alpha + 1.0
    dd, cc = a - 1 / 3, 1 / math.sqrt(9 * (a - 1 / 3))
    g = torch.empty(n_nodes, c, dtype=torch.float64)
    for i in range(n_nodes):
        for k in range(c):
            while True:
                z = float(torch.randn(1, generator=generator, dtype=torch.float64))
                v = (1 + cc * z) ** 3
                u = float(torch.rand(1, generator=generator, dtype=torch.float64))
                if v > 0 and math.log(u) < 0.5 * z * z + dd - dd * v + dd * math.log(v):
                    break
            g[i, k] = dd * v * float(torch.rand(1, generator=generator, dtype=torch.float64)) ** (1 / alpha)
    p = g / g.sum(1, keepdim=True)
    labels = torch.multinomial(p, m, replacement=True, generator=generator)  # (n, m) class positions
    pools = [torch.nonzero(y == cl).flatten() for cl in classes]
    idx = torch.empty(n_nodes, m, dtype=torch.long)
    for k, pool in enumerate(pools):
        where = labels == k
        idx[where] = pool[torch.randint(len(pool), (int(where.sum()),), generator=generator)]
    return NodeData(X[idx], y[idx])


def digits_data(n_nodes: int, split: str = "iid", alpha: float = 0.9, test_fraction: float = 0.2,
                seed: int = 0, dtype: torch.dtype = torch.float64) -> tuple[NodeData, Tensor, Tensor]:
    """scikit-learn's 8x8 digits (1797 images, 10 classes; pixels scaled to [0, 1]) for the neural-network
    experiments: (train split over n_nodes nodes, X_test (N, 64), y_test (N,)). ``split`` "iid" deals the
    training set evenly; "dirichlet" draws each node's labels from Dirichlet(alpha) proportions.

    >>> train, Xt, yt = digits_data(4)
    >>> train.X.shape[0], train.X.shape[2], Xt.shape[1]
    (4, 64, 64)
    """
    from sklearn.datasets import load_digits  # scikit-learn: an optional dependency (the test/bench extras)

    X_np, y_np = load_digits(return_X_y=True)
    X = torch.as_tensor(X_np, dtype=dtype) / 16.0
    y = torch.as_tensor(y_np, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=gen)
    n_test = int(round(test_fraction * len(y)))
    test, train = perm[:n_test], perm[n_test:]
    if split == "iid":
        data = split_iid(X[train], y[train], n_nodes, gen)
    elif split == "dirichlet":
        data = dirichlet_split(X[train], y[train], n_nodes, len(train) // n_nodes, alpha, gen)
    else:
        raise ValueError(f"split is {split!r}; expected 'iid' or 'dirichlet'")
    return data, X[test], y[test]


__all__ = ["NodeData", "Objective", "NonconvexLogistic", "Logistic", "LeastSquares", "MLP", "OBJECTIVES",
           "make_objective", "sample_indices", "logistic_data", "least_squares_data", "split_iid",
           "dirichlet_split", "digits_data"]
