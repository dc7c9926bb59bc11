"""Building blocks shared by the families: batched linear maps and penalties.

Data matrices are either shared by the batch, shape ``(m, n)``, or one per
instance, shape ``(B, m, n)``. The helpers below hide that difference and use
one GEMM for a shared matrix (the fast path) and one batched GEMM otherwise.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from l2o.problems.base import column


def matvec(A: Tensor, x: Tensor) -> Tensor:
    """A x for a batch: A ``(m, n)`` or ``(B, m, n)``, x ``(B, n)`` -> ``(B, m)``."""
    if A.ndim == 2:
        return x @ A.mT
    return torch.bmm(A, x.unsqueeze(-1)).squeeze(-1)


def rmatvec(A: Tensor, r: Tensor) -> Tensor:
    """A^T r for a batch: A ``(m, n)`` or ``(B, m, n)``, r ``(B, m)`` -> ``(B, n)``."""
    if A.ndim == 2:
        return r @ A
    return torch.bmm(r.unsqueeze(-2), A).squeeze(-2)


def spectral_norm_squared(A: Tensor) -> Tensor:
    """||A||_2^2 = lambda_max(A^T A): ``(m, n) -> ()`` or ``(B, m, n) -> (B,)``, exact."""
    return torch.linalg.matrix_norm(A, ord=2) ** 2


def soft_threshold(v: Tensor, threshold: Tensor | float) -> Tensor:
    """eta_theta(v) = sign(v) max(|v| - theta, 0), elementwise (theta broadcasts)."""
    return v - torch.clamp(v, -threshold, threshold)


class Penalty(Protocol):
    """A nonsmooth part r of F = f + r, batched: what ``AutogradInstances`` needs of its
    ``penalty`` (``L1`` and ``Box`` are two)."""

    def value(self, x: Tensor) -> Tensor:
        """r(x): ``(B, n) -> (B,)``."""
        ...

    def prox(self, v: Tensor, step: Tensor | float) -> Tensor:
        """prox_{step r}(v): ``(B, n) -> (B, n)``; ``step`` ``(B,)`` or broadcastable to ``(B, n)``."""
        ...

    def subdifferential_bounds(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Ends ``(c, d)`` of the interval dr(x)_i per coordinate, each ``(B, n)``."""
        ...


class L1:
    """r(x) = lam sum_i w_i |x_i| with a per-instance weight ``lam`` of shape ``(B,)`` and
    optional per-coordinate weights ``w`` of shape ``(n,)`` (None: all ones; a 0 leaves that
    coordinate unpenalized, e.g. an intercept).

    >>> L1(torch.tensor([1.0]), torch.tensor([1.0, 0.0])).prox(torch.tensor([[2.0, 2.0]]), 0.5)
    tensor([[1.5000, 2.0000]])
    """

    def __init__(self, lam: Tensor, weights: Tensor | None = None):
        self.lam = lam
        self.weights = weights

    def _weighted(self, x: Tensor) -> Tensor:
        return x if self.weights is None else x * self.weights

    def value(self, x: Tensor) -> Tensor:
        return self.lam * self._weighted(x.abs()).sum(-1)

    def prox(self, v: Tensor, step: Tensor | float) -> Tensor:
        threshold = column(self.lam) * column(step)
        return soft_threshold(v, threshold if self.weights is None else threshold * self.weights)

    def subdifferential_bounds(self, x: Tensor) -> tuple[Tensor, Tensor]:
        lam = column(self.lam)
        sign = torch.sign(x)
        # x_i != 0: both ends lam sign(x_i); x_i = 0: the interval [-lam, lam] (times w_i).
        lower = torch.where(sign == 0, -lam.expand_as(x), lam * sign)
        upper = torch.where(sign == 0, lam.expand_as(x), lam * sign)
        return self._weighted(lower), self._weighted(upper)


class Box:
    """r(x) = indicator of {lower <= x <= upper}; bounds ``(n,)`` or ``(B, n)``, may be +-inf."""

    def __init__(self, lower: Tensor, upper: Tensor):
        self.lower = lower
        self.upper = upper

    def value(self, x: Tensor) -> Tensor:
        # Iterates of projected methods are feasible; an infeasible point is +inf
        # beyond a rounding tolerance so that a bug never looks like progress. The
        # tolerance follows the dtype: a shifted batch evaluates the box at (x - t) + t,
        # which float32 rounds off the bound by ~eps32 |t| (1e-9 made every float32
        # iterate on a bound +inf).
        # The tolerance admits float32 roundings of the bounds (a float32 iterate that
        # sits on a bound is off by up to 6e-8 relative when evaluated in float64).
        scale = (1e-7 if x.dtype == torch.float64 else 1e-5) * (1.0 + x.abs())
        violation = (self.lower - x - scale).clamp(min=0) + (x - self.upper - scale).clamp(min=0)
        bad = (violation > 0).any(-1)
        return torch.where(bad, torch.full_like(x[:, 0], float("inf")), torch.zeros_like(x[:, 0]))

    def prox(self, v: Tensor, step: Tensor | float) -> Tensor:
        return torch.clamp(v, self.lower, self.upper)

    def subdifferential_bounds(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # Normal cone of the box: (-inf, 0] at a lower bound, [0, inf) at an upper one.
        inf = torch.full_like(x, float("inf"))
        zero = torch.zeros_like(x)
        at_lower = x <= self.lower
        at_upper = x >= self.upper
        return torch.where(at_lower, -inf, zero), torch.where(at_upper, inf, zero)


def solve_on_index_sets(H: Tensor, rhs: Tensor, mask: Tensor, chunk: int = 64) -> tuple[Tensor, Tensor]:
    """Solve H_II z_I = rhs_I for each instance's index set I, with H shared.

    Args:
        H: ``(n, n)`` symmetric positive definite on every I (shared by the batch).
        rhs: ``(B, n)``; only entries in I are used.
        mask: ``(B, n)`` bool, True on I.
        chunk: instances factorized together.

    Returns:
        z: ``(B, n)``, zero outside I; ok: ``(B,)`` False where the factorization failed.

    The sets have different sizes: the instances are sorted by set size and taken
    ``chunk`` at a time, each chunk padded to its largest size k with identity rows (a
    padded slot solves 1 * z = 0); the cost is one batched Cholesky of ``(chunk, k, k)``
    per chunk, cheap when the sets are small (supports, free sets). Chunks of similar
    sizes pad little, and their gathered blocks stay in cache (faster than one padded
    batch: ``benchmarks/results/design-notes.md``). Each chunk is solved by a Cholesky
    factorization and two triangular solves.
    """
    B, n = rhs.shape
    sizes = mask.sum(-1)
    z = torch.zeros_like(rhs)
    ok = torch.ones(B, dtype=torch.bool, device=rhs.device)
    if B == 0 or int(sizes.max()) == 0:
        return z, ok
    # Indices of I first (stable sort keeps them in increasing order), then padding.
    cols = torch.argsort((~mask).to(torch.int8), dim=-1, stable=True)
    order = torch.argsort(sizes)
    sorted_sizes = sizes[order].tolist()
    zero = torch.zeros((), dtype=rhs.dtype, device=rhs.device)
    for start in range(0, B, chunk):
        rows = order[start:start + chunk]
        k = sorted_sizes[min(start + chunk, B) - 1]
        if k == 0:
            continue
        idx = cols[rows, :k]
        valid = torch.arange(k, device=rhs.device) < sizes[rows].unsqueeze(-1)
        H_II = H[idx.unsqueeze(-1), idx.unsqueeze(-2)]
        pair = valid.unsqueeze(-1) & valid.unsqueeze(-2)
        H_II = torch.where(pair, H_II, torch.eye(k, dtype=H.dtype, device=H.device))
        r = torch.where(valid, rhs[rows].gather(1, idx), zero).unsqueeze(-1)
        chol, info = torch.linalg.cholesky_ex(H_II)
        # two triangular solves rather than cholesky_solve (faster on small batched systems:
        # benchmarks/results/design-notes.md)
        y = torch.linalg.solve_triangular(chol, r, upper=False)
        sol = torch.linalg.solve_triangular(chol.mT, y, upper=True).squeeze(-1)
        sol = torch.where(valid, sol, zero)
        z[rows] = torch.zeros(len(rows), n, dtype=rhs.dtype, device=rhs.device).scatter_(1, idx, sol)
        ok[rows] = info == 0
    return z, ok
