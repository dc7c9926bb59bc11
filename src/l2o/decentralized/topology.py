"""Directed communication graphs: a weight matrix, its pull and push matrices, checks and metrics.

A topology is one non-negative weight matrix ``W`` (n, n) with ``W[i, j] > 0`` when node j
sends to node i (self-loops on the diagonal). From it come

* ``A = Row(W)``, row-normalized (``A 1 = 1``): the *pull* matrix, node i averages what it receives;
* ``B = Col(W)``, column-normalized (``1^T B = 1^T``): the *push* matrix, node j splits what it sends.

Metrics (Liang, Chen, Luo, Yuan, ICML 2025, "Achieving linear speedup ... over row-stochastic
networks", arXiv 2506.04600, section 3):

* ``pi_A``: the left Perron vector, ``pi_A^T A = pi_A^T``, ``1^T pi_A = 1``;
* ``kappa_A = max(pi_A) / min(pi_A)`` (equilibrium skewness);
* ``beta_A = ||A - 1 pi_A^T||_pi`` with ``||M||_pi = ||Pi^(1/2) M Pi^(-1/2)||_2`` (1 - beta_A is the
  generalized spectral gap);
* ``theta_A = max_k 1 / [A^k]_ii`` (bounded diagonals, finite iff every node has a self-loop);
* ``R = ceil(3 (1 + ln kappa_A + ln n) / (1 - beta_A))``, the gossip rounds of Theorem 3 (MG-Pull-Diag-GT).

Generators follow the authors' code (Luoxiaogan/ICML2025_project, pkumelon/PushPull): self-loops
everywhere, integer weights drawn uniformly from ``{1, ..., high}`` (``weights=high``) or all ones
(``weights="uniform"``, which makes ``A`` the ``1 / (1 + in-degree)`` rule).
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import torch
from torch import Tensor

#: Tolerance of the stochasticity checks (absolute, on row/column sums).
STOCHASTIC_TOL = 1e-10


def _check_square(name: str, M: Tensor) -> Tensor:
    M = torch.as_tensor(M, dtype=torch.float64)
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.shape[0] < 1:
        raise ValueError(f"{name} has shape {tuple(M.shape)}; expected a square (n, n) matrix with n >= 1")
    if not torch.isfinite(M).all():
        raise ValueError(f"{name} holds NaN or infinite entries; expected finite non-negative weights")
    if (M < 0).any():
        raise ValueError(f"{name} has negative entries; expected non-negative weights")
    return M


def row_normalize(W: Tensor) -> Tensor:
    """``Row(W)``: W divided by its row sums (rows must not be zero).

    >>> row_normalize(torch.tensor([[1.0, 1.0], [0.0, 2.0]])).tolist()
    [[0.5, 0.5], [0.0, 1.0]]
    """
    s = W.sum(dim=1, keepdim=True)
    if (s <= 0).any():
        raise ValueError(f"W has an empty row (node {int((s[:, 0] <= 0).nonzero()[0])} receives nothing); "
                         "expected every node to have a self-loop or an in-neighbour")
    return W / s


def col_normalize(W: Tensor) -> Tensor:
    """``Col(W)``: W divided by its column sums.

    >>> col_normalize(torch.tensor([[1.0, 1.0], [0.0, 3.0]])).tolist()
    [[1.0, 0.25], [0.0, 0.75]]
    """
    s = W.sum(dim=0, keepdim=True)
    if (s <= 0).any():
        raise ValueError(f"W has an empty column (node {int((s[0] <= 0).nonzero()[0])} sends nothing); "
                         "expected every node to have a self-loop or an out-neighbour")
    return W / s


def is_row_stochastic(M: Tensor, tol: float = STOCHASTIC_TOL) -> bool:
    """Non-negative with rows summing to 1.

    >>> is_row_stochastic(torch.tensor([[0.5, 0.5], [0.0, 1.0]]))
    True
    """
    return bool((M >= 0).all() and (M.sum(dim=1) - 1).abs().max() <= tol)


def is_column_stochastic(M: Tensor, tol: float = STOCHASTIC_TOL) -> bool:
    """Non-negative with columns summing to 1.

    >>> is_column_stochastic(torch.tensor([[0.5, 0.0], [0.5, 1.0]]))
    True
    """
    return bool((M >= 0).all() and (M.sum(dim=0) - 1).abs().max() <= tol)


def is_doubly_stochastic(M: Tensor, tol: float = STOCHASTIC_TOL) -> bool:
    """Row- and column-stochastic.

    >>> is_doubly_stochastic(torch.full((3, 3), 1 / 3))
    True
    """
    return is_row_stochastic(M, tol) and is_column_stochastic(M, tol)


def has_self_loops(M: Tensor) -> bool:
    """Every diagonal entry positive.

    >>> has_self_loops(torch.eye(2))
    True
    """
    return bool((torch.diagonal(M) > 0).all())


def is_strongly_connected(M: Tensor) -> bool:
    """Every node reaches every other along edges ``j -> i`` where ``M[i, j] > 0`` (two breadth-first
    searches from node 0, forward and backward).

    >>> is_strongly_connected(torch.tensor([[1.0, 1.0], [0.0, 1.0]]))  # 1 -> 0 only
    False
    """
    adj = (M > 0).to(torch.float64)
    n = adj.shape[0]

    def reach(G: Tensor) -> int:
        seen = torch.zeros(n, dtype=torch.bool)
        seen[0] = True
        frontier = seen.clone()
        while frontier.any():
            new = (G @ frontier.to(torch.float64) > 0) & ~seen
            seen |= new
            frontier = new
        return int(seen.sum())

    return reach(adj) == n and reach(adj.T) == n


def perron_vector(A: Tensor) -> Tensor:
    """The left Perron vector ``pi`` of a row-stochastic, strongly connected A: ``pi^T A = pi^T``,
    ``sum(pi) = 1``, ``pi > 0``; shape (n,). Solved as the null space of ``A^T - I`` with the
    normalization row appended (least squares, float64).

    >>> [round(v, 12) for v in perron_vector(torch.tensor([[0.5, 0.5], [0.25, 0.75]])).tolist()]
    [0.333333333333, 0.666666666667]
    """
    A = torch.as_tensor(A, dtype=torch.float64)
    n = A.shape[0]
    M = torch.cat([A.T - torch.eye(n, dtype=A.dtype), torch.ones(1, n, dtype=A.dtype)])
    rhs = torch.zeros(n + 1, dtype=A.dtype)
    rhs[-1] = 1.0
    pi = torch.linalg.lstsq(M, rhs.unsqueeze(1), driver="gelsd").solution[:, 0]
    return pi


def kappa(A: Tensor) -> float:
    """Equilibrium skewness ``max(pi_A) / min(pi_A)`` (1 for a doubly stochastic A).

    >>> round(kappa(torch.tensor([[0.5, 0.5], [0.25, 0.75]])), 12)
    2.0
    """
    pi = perron_vector(A)
    return float(pi.max() / pi.min())


def beta(A: Tensor) -> float:
    """``||A - 1 pi^T||_pi = ||Pi^(1/2) (A - 1 pi^T) Pi^(-1/2)||_2`` (spectral norm), in [0, 1) for a
    primitive row-stochastic A.

    >>> round(beta(torch.full((4, 4), 0.25)), 12)
    0.0
    """
    A = torch.as_tensor(A, dtype=torch.float64)
    pi = perron_vector(A)
    s = pi.sqrt()
    M = s[:, None] * (A - torch.outer(torch.ones_like(pi), pi)) / s[None, :]
    return float(torch.linalg.matrix_norm(M, ord=2))


def diagonal_powers(A: Tensor, k: int) -> Tensor:
    """``diag(A^t)`` for t = 1..k, shape (k, n) (float64).

    >>> diagonal_powers(torch.tensor([[0.5, 0.5], [0.5, 0.5]]), 2).tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """
    A = torch.as_tensor(A, dtype=torch.float64)
    out = torch.empty(k, A.shape[0], dtype=A.dtype)
    P = A.clone()
    for t in range(k):
        out[t] = torch.diagonal(P)
        P = P @ A
    return out


def theta(A: Tensor, k_max: int = 200) -> float:
    """``max_{1 <= k <= k_max} 1 / [A^k]_ii`` (infinite when some node lacks a self-loop and
    ``[A^k]_ii = 0`` for some k).

    >>> theta(torch.tensor([[0.5, 0.5], [0.5, 0.5]]))
    2.0
    """
    d = diagonal_powers(A, k_max)
    if (d <= 0).any():
        return math.inf
    return float((1.0 / d).max())


def gossip_rounds(A: Tensor) -> int:
    """Theorem 3's ``R = ceil(3 (1 + ln kappa_A + ln n) / (1 - beta_A))`` (MG-Pull-Diag-GT).

    >>> gossip_rounds(torch.full((4, 4), 0.25)) == math.ceil(3 * (1 + math.log(4)))
    True
    """
    A = torch.as_tensor(A, dtype=torch.float64)
    n = A.shape[0]
    return math.ceil(3 * (1 + math.log(kappa(A)) + math.log(n)) / (1 - beta(A)))


@dataclasses.dataclass(frozen=True)
class Topology:
    """A directed graph given by its weights: ``A`` (row-stochastic, pull) and ``B`` (column-stochastic,
    push), both (n, n) float64, ``A[i, j] > 0`` when node j sends to node i. ``W`` is the weight matrix
    they were normalized from (None when A and B were given directly). Build with ``from_weights`` or
    ``from_matrices``; ``name`` records the generator.

    >>> t = Topology.from_weights(torch.tensor([[1.0, 1.0], [1.0, 3.0]]))
    >>> t.n, t.A[1].tolist(), t.B[:, 1].tolist()
    (2, [0.25, 0.75], [0.25, 0.75])
    """

    A: Tensor
    B: Tensor
    W: Tensor | None = None
    name: str = "custom"

    @classmethod
    def from_weights(cls, W: Tensor, name: str = "custom") -> Topology:
        """A = Row(W), B = Col(W), after checking that W is square, finite and non-negative.

        >>> Topology.from_weights(torch.eye(3)).n
        3
        """
        W = _check_square("W", W)
        return cls(A=row_normalize(W), B=col_normalize(W), W=W, name=name)

    @classmethod
    def from_matrices(cls, A: Tensor, B: Tensor | None = None, name: str = "custom") -> Topology:
        """From a row-stochastic A and a column-stochastic B (default: B = Col(A), same support).

        >>> Topology.from_matrices(torch.full((2, 2), 0.5)).B.tolist()
        [[0.5, 0.5], [0.5, 0.5]]
        """
        A = _check_square("A", A)
        if not is_row_stochastic(A):
            raise ValueError(f"A is not row-stochastic (max |row sum - 1| = {(A.sum(1) - 1).abs().max():.3g}); "
                             "expected non-negative rows summing to 1")
        B = col_normalize(A) if B is None else _check_square("B", B)
        if B.shape != A.shape:
            raise ValueError(f"B has shape {tuple(B.shape)}; expected the shape of A, {tuple(A.shape)}")
        if not is_column_stochastic(B):
            raise ValueError(f"B is not column-stochastic (max |column sum - 1| = "
                             f"{(B.sum(0) - 1).abs().max():.3g}); expected non-negative columns summing to 1")
        return cls(A=A, B=B, W=None, name=name)

    @property
    def n(self) -> int:
        """Number of nodes."""
        return int(self.A.shape[0])

    def support(self) -> Tensor:
        """Boolean (n, n): ``[i, j]`` when j sends to i in A or B (self-loops included)."""
        return (self.A > 0) | (self.B > 0)

    def out_neighbours(self, j: int) -> list[int]:
        """Nodes that node j sends to (itself excluded).

        >>> ring_with_chord(4).out_neighbours(0)
        [1, 2]
        """
        s = self.support()
        return [i for i in range(self.n) if i != j and bool(s[i, j])]

    def in_neighbours(self, i: int) -> list[int]:
        """Nodes that node i receives from (itself excluded).

        >>> ring_with_chord(4).in_neighbours(2)
        [0, 1]
        """
        s = self.support()
        return [j for j in range(self.n) if j != i and bool(s[i, j])]

    def metrics(self, k_max: int = 200) -> dict[str, float]:
        """kappa_A, beta_A, theta_A (over k <= k_max), the rounds R, and the same kappa / beta for B
        (on B^T, whose Perron vector is the right one of B).

        >>> m = Topology.from_weights(torch.ones(4, 4)).metrics()
        >>> round(m["kappa_A"], 12), round(m["beta_A"], 12), round(m["theta_A"], 12)
        (1.0, 0.0, 4.0)
        """
        if not is_strongly_connected(self.A):
            raise ValueError("the graph is not strongly connected; its metrics are undefined")
        return {"n": self.n, "kappa_A": kappa(self.A), "beta_A": beta(self.A), "theta_A": theta(self.A, k_max),
                "rounds_R": gossip_rounds(self.A), "kappa_B": kappa(self.B.T), "beta_B": beta(self.B.T),
                "doubly_stochastic_A": is_doubly_stochastic(self.A)}


def check_topology(top: Topology, *, need: str, self_loops: bool = False, warn_doubly: bool = False) -> None:
    """Raise ValueError (one line) unless ``top`` fits an algorithm: strongly connected, and
    ``need`` in {"pull" (A row-stochastic), "push" (B column-stochastic), "push_pull" (both),
    "doubly" (A doubly stochastic)}; ``self_loops`` requires a positive diagonal. With ``warn_doubly``,
    warn when A (meant to be only row-stochastic) is doubly stochastic.

    >>> check_topology(ring_with_chord(4), need="pull", self_loops=True)
    """
    if not is_strongly_connected(top.support().to(torch.float64)):
        raise ValueError("the graph is not strongly connected; expected every node to reach every other")
    if need in ("pull", "push_pull", "doubly") and not is_strongly_connected(top.A):
        raise ValueError("A is not strongly connected; expected every node to reach every other")
    if need in ("push", "push_pull") and not is_strongly_connected(top.B):
        raise ValueError("B is not strongly connected; expected every node to reach every other")
    if need in ("pull", "push_pull", "doubly") and not is_row_stochastic(top.A):
        raise ValueError("A is not row-stochastic; expected rows summing to 1")
    if need in ("push", "push_pull") and not is_column_stochastic(top.B):
        raise ValueError("B is not column-stochastic; expected columns summing to 1")
    if need == "doubly" and not is_doubly_stochastic(top.A, 1e-8):
        raise ValueError(f"the weights are not doubly stochastic (max |column sum of A - 1| = "
                         f"{(top.A.sum(0) - 1).abs().max():.3g}); this method needs a doubly-stochastic matrix "
                         "(e.g. --topology exponential --weights uniform with n a power of two)")
    if self_loops:
        M = top.B if need == "push" else top.A
        if not has_self_loops(M):
            bad = int((torch.diagonal(M) <= 0).nonzero()[0])
            raise ValueError(f"node {bad} has no self-loop; this method needs a positive diagonal")
    if warn_doubly and is_doubly_stochastic(top.A):
        warnings.warn("A is doubly stochastic (kappa_A = 1): the row-stochastic setting is not exercised "
                      "(the authors' exponential graph is circulant for n a power of two)", stacklevel=2)


# --------------------------------------------------------------------------- generators


def _weights(mask: Tensor, weights: int | str, generator: torch.Generator | None) -> Tensor:
    """W on ``mask`` (bool (n, n), self-loops added): all ones for "uniform", else integers drawn
    uniformly from {1, ..., weights}."""
    mask = mask | torch.eye(mask.shape[0], dtype=torch.bool)
    if weights == "uniform":
        return mask.to(torch.float64)
    if not isinstance(weights, int) or weights < 1:
        raise ValueError(f"weights is {weights!r}; expected 'uniform' or an integer >= 1 (draws from 1..weights)")
    w = torch.randint(1, weights + 1, mask.shape, generator=generator).to(torch.float64)
    return w * mask


def _check_n(n: int, minimum: int = 1) -> None:
    if not isinstance(n, int) or n < minimum:
        raise ValueError(f"n is {n!r}; expected an integer >= {minimum}")


def exponential(n: int, weights: int | str = 2, generator: torch.Generator | None = None) -> Topology:
    """The directed exponential graph: node j sends to i when ``(i - j) mod n`` is a power of two,
    plus self-loops; ``weights`` as in the module docstring (the Push-Pull code: {1, 2}). With
    ``weights="uniform"`` it is the ICML 2025 code's matrix, every weight ``1 / (ceil(log2 n) + 1)``
    when n is a power of two -- then circulant and doubly stochastic.

    >>> exponential(4, weights="uniform").A[0].tolist()
    [0.3333333333333333, 0.0, 0.3333333333333333, 0.3333333333333333]
    """
    _check_n(n)
    i = torch.arange(n)
    diff = (i[:, None] - i[None, :]) % n
    mask = (diff > 0) & ((diff & (diff - 1)) == 0)
    return Topology.from_weights(_weights(mask, weights, generator), name="exponential")


def ring_with_chord(n: int) -> Topology:
    """The ICML 2025 code's ``ring1``: directed ring ``i - 1 -> i`` with self-loops (weights 1/2) and a
    chord ``0 -> n // 2`` (row n // 2 has three entries 1/3). Row-stochastic, not column-stochastic.

    >>> ring_with_chord(4).A[2].tolist()
    [0.3333333333333333, 0.3333333333333333, 0.3333333333333333, 0.0]
    """
    _check_n(n)
    mask = torch.zeros(n, n, dtype=torch.bool)
    if n > 1:
        mask[torch.arange(n), (torch.arange(n) - 1) % n] = True
        mask[n // 2, 0] = True
    return Topology.from_weights(_weights(mask, "uniform", None), name="ring_with_chord")


def ring_chords(n: int, weights: int | str = 2, generator: torch.Generator | None = None) -> Topology:
    """The Push-Pull code's ring: ``i -> i + 1`` with chords ``0 -> n // 4`` and ``n // 2 -> 3n // 4``,
    self-loops, weights in {1, 2}.

    >>> ring_chords(8, weights="uniform").in_neighbours(2)
    [0, 1]
    """
    _check_n(n)
    mask = torch.zeros(n, n, dtype=torch.bool)
    if n > 1:
        mask[(torch.arange(n) + 1) % n, torch.arange(n)] = True
        mask[n // 4, 0] = True
        mask[(3 * n) // 4, n // 2] = True
    return Topology.from_weights(_weights(mask, weights, generator), name="ring")


def grid(n: int, weights: int | str = 2, generator: torch.Generator | None = None) -> Topology:
    """The undirected ``sqrt(n) x sqrt(n)`` grid (n a perfect square), self-loops.

    >>> grid(4, weights="uniform").in_neighbours(0)
    [1, 2]
    """
    _check_n(n)
    s = math.isqrt(n)
    if s * s != n:
        raise ValueError(f"n is {n}; the grid needs a perfect square")
    mask = torch.zeros(n, n, dtype=torch.bool)
    for r in range(s):
        for c in range(s):
            k = r * s + c
            if c + 1 < s:
                mask[k, k + 1] = mask[k + 1, k] = True
            if r + 1 < s:
                mask[k, k + s] = mask[k + s, k] = True
    return Topology.from_weights(_weights(mask, weights, generator), name="grid")


def _connected(mask_fn, tries: int, what: str) -> Tensor:
    for _ in range(tries):
        mask = mask_fn()
        if is_strongly_connected(mask.to(torch.float64) + torch.eye(mask.shape[0], dtype=torch.float64)):
            return mask
    raise ValueError(f"no strongly connected {what} graph in {tries} draws; use more nodes or another seed")


def erdos_renyi(n: int, p: float = 1 / 3, weights: int | str = 3, generator: torch.Generator | None = None,
                tries: int = 100) -> Topology:
    """Undirected G(n, p) (drawn again until connected), self-loops, weights in {1, 2, 3}.

    >>> erdos_renyi(6, generator=torch.Generator().manual_seed(0)).n
    6
    """
    _check_n(n)
    if not 0 < p <= 1:
        raise ValueError(f"p is {p}; expected a probability in (0, 1]")

    def draw() -> Tensor:
        upper = torch.triu(torch.rand(n, n, generator=generator) < p, diagonal=1)
        return upper | upper.T

    return Topology.from_weights(_weights(_connected(draw, tries, "Erdos-Renyi"), weights, generator),
                                 name="erdos_renyi")


def _points(n: int, side: float, generator: torch.Generator | None) -> Tensor:
    return torch.rand(n, 2, generator=generator, dtype=torch.float64) * side


def geometric(n: int, radius: float = 5.0, side: float = 10.0, weights: int | str = 3,
              generator: torch.Generator | None = None, tries: int = 100) -> Topology:
    """Random geometric graph: n points uniform in ``[0, side]^2``, an undirected edge when closer than
    ``radius`` (drawn again until connected), self-loops, weights in {1, 2, 3}.

    >>> geometric(8, generator=torch.Generator().manual_seed(0)).n
    8
    """
    _check_n(n)

    def draw() -> Tensor:
        P = _points(n, side, generator)
        return torch.cdist(P, P) < radius

    return Topology.from_weights(_weights(_connected(draw, tries, "geometric"), weights, generator),
                                 name="geometric")


def nearest_neighbour(n: int, k: int = 3, side: float = 10.0, weights: int | str = 3,
                      generator: torch.Generator | None = None, tries: int = 100) -> Topology:
    """Directed k-nearest-neighbour graph: n points uniform in ``[0, side]^2``, node i receives from its
    k nearest points (drawn again until strongly connected), self-loops, weights in {1, 2, 3}.

    >>> [len(t) for t in map(nearest_neighbour(6, generator=torch.Generator().manual_seed(0)).in_neighbours,
    ...                      range(6))]
    [3, 3, 3, 3, 3, 3]
    """
    _check_n(n, 2)
    if not 1 <= k < n:
        raise ValueError(f"k is {k}; expected 1 <= k < n = {n}")

    def draw() -> Tensor:
        P = _points(n, side, generator)
        D = torch.cdist(P, P)
        D.fill_diagonal_(math.inf)
        nearest = D.topk(k, dim=1, largest=False).indices
        mask = torch.zeros(n, n, dtype=torch.bool)
        mask[torch.arange(n)[:, None], nearest] = True
        return mask

    return Topology.from_weights(_weights(_connected(draw, tries, "nearest-neighbour"), weights, generator),
                                 name="nearest_neighbour")


#: Generators by name (``l2o decentralized --topology NAME``).
GENERATORS = {
    "exponential": exponential,
    "ring_with_chord": ring_with_chord,
    "ring": ring_chords,
    "grid": grid,
    "erdos_renyi": erdos_renyi,
    "geometric": geometric,
    "nearest_neighbour": nearest_neighbour,
}


def make_topology(name: str, n: int, weights: int | str | None = None, seed: int = 0) -> Topology:
    """A generated topology by name (``GENERATORS``); ``weights`` None keeps the generator's default.

    >>> make_topology("ring_with_chord", 5).name
    'ring_with_chord'
    """
    if name not in GENERATORS:
        raise ValueError(f"topology: unknown name {name!r}; expected one of {', '.join(GENERATORS)}")
    fn = GENERATORS[name]
    if name == "ring_with_chord":
        if weights not in (None, "uniform"):
            raise ValueError("weights: ring_with_chord has the fixed 1/(1 + in-degree) weights; omit --weights")
        return fn(n)
    kw: dict = {"generator": torch.Generator().manual_seed(seed)}
    if weights is not None:
        kw["weights"] = weights
    return fn(n, **kw)


__all__ = ["Topology", "GENERATORS", "make_topology", "check_topology", "row_normalize", "col_normalize",
           "is_row_stochastic", "is_column_stochastic", "is_doubly_stochastic", "has_self_loops",
           "is_strongly_connected", "perron_vector", "kappa", "beta", "theta", "diagonal_powers", "gossip_rounds",
           "exponential", "ring_with_chord", "ring_chords", "grid", "erdos_renyi", "geometric", "nearest_neighbour"]
