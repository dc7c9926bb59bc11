"""Zeroth-order gradient estimates from function values only, batched over instances.

For a batch ``x`` of shape ``(B, n)``, ``q`` directions ``u_1..u_q`` (``directions``)
and a smoothing radius ``mu``, the directional differences are

    forward:  delta_i = (f(x + mu u_i) - f(x)) / mu           ~ u_i^T grad f(x) + O(mu)
    central:  delta_i = (f(x + mu u_i) - f(x - mu u_i)) / (2 mu) ~ u_i^T grad f(x) + O(mu^2)

(exact for a quadratic with central differences), and two rules aggregate them:

    ZO-Avg   (rule="avg"):   g = (1/q) sum_i delta_i u_i
    ZO-Align (rule="align"): g = U^T (U U^T)^{-1} delta,   U = [u_1; ...; u_q] in R^{q x n}

ZO-Avg is the de facto average; with Gaussian directions it is an unbiased estimate of
the gradient of the Gaussian smoothing f_mu(x) = E f(x + mu u) (Nesterov and Spokoiny,
FoCM 2017), and E||g - grad f||^2 = (n + 1) ||grad f||^2 / q on a quadratic with central
differences. ZO-Align is the minimum-norm g with u_i^T g = delta_i for every i: the
minimiser of the local model f(x) + g^T (y - x) + (L/2)||y - x||^2 restricted to the
span of the directions, i.e. the projection of grad f onto span(U) (for q <= n; for
q > n the least-squares fit of the linear model). q = n gives the full
finite-difference gradient. Both follow Lin, Song, Xu, *The Multi-Query Paradox in
Zeroth-Order Optimization* (arXiv 2509.15552); the paper's body could not be read, and
ZO-Align here is the reconstruction of ``../shared/RESEARCH-2.md`` §2.

All ``S x B`` points of one estimate (``S = q + 1`` or ``2q``, see
``l2o.zeroth_order.accounting``) go to ``fn`` in ONE call of shape ``(S * B, n)``, ordered
slot-major: row ``s * B + b`` is slot ``s`` of instance ``b``.

Unlike torchopt's forward estimator at 960fb0a (which overwrote its base value and
multiplied by sigma instead of dividing, ``../shared/ECOSYSTEM.md`` §1.4), every
estimate here is tested against the exact gradient (``tests/zeroth_order``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from l2o.zeroth_order.accounting import BASES, DIFFERENCES, QueryAccounting, check_accounting
from l2o.zeroth_order.directions import FRAMES, check_directions, draw_directions

RULES = ("avg", "align")


class Estimate(NamedTuple):
    """``grad``: ``(B, n)`` estimate (a row is non-finite where f was); ``evaluations``:
    evaluations of f per instance (``S``; ``fn`` saw ``S * B`` points in one call)."""

    grad: Tensor
    evaluations: int


def check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}; got {rule!r}")


def default_mu(x: Tensor, differences: str = "forward") -> Tensor:
    """``(B,)`` smoothing radius for the dtype of ``x``: ``c * max(1, ||x_b||_inf) / sqrt(n)``
    with ``c = eps^(1/2)`` for forward and ``eps^(1/3)`` for central differences (the
    classical balance of truncation and rounding error), divided by ``sqrt(n)`` because a
    direction has length about ``sqrt(n)``.

    >>> default_mu(torch.zeros(2, 4), "central").shape
    torch.Size([2])
    """
    eps = torch.finfo(x.dtype).eps
    c = eps ** (1 / 3) if differences == "central" else math.sqrt(eps)
    scale = x.detach().abs().amax(dim=-1).clamp(min=1.0)
    return (c / math.sqrt(x.shape[-1])) * scale


def _as_mu(mu: float | Tensor | None, x: Tensor, differences: str) -> float | Tensor:
    """The radius: a Python number > 0, or a ``(B,)`` tensor (the default is one);
    ``ValueError`` unless > 0 and finite."""
    if mu is None:
        return default_mu(x, differences)
    if isinstance(mu, (int, float)) and not isinstance(mu, bool):
        if not (mu > 0 and math.isfinite(mu)):
            raise ValueError(f"mu must be > 0 and finite, got {mu!r}")
        return float(mu)
    m = torch.as_tensor(mu, dtype=x.dtype, device=x.device)
    if m.ndim == 0:
        m = m.expand(x.shape[0])
    if m.shape != (x.shape[0],):
        raise ValueError(f"mu must be a number or a ({x.shape[0]},) tensor, got shape {tuple(m.shape)}")
    if not bool(((m > 0) & torch.isfinite(m)).all()):
        raise ValueError(f"mu must be > 0 and finite, got {mu!r}")
    return m


def _column(mu: float | Tensor) -> float | Tensor:
    """``(B,)`` -> ``(1, B, 1)`` to broadcast over (slots, batch, n); numbers pass through."""
    return mu.view(1, -1, 1) if isinstance(mu, Tensor) else mu


def query_points(x: Tensor, U: Tensor, mu: float | Tensor, differences: str, base: str) -> Tensor:
    """``(S, B, n)`` points for directions ``U`` of shape ``(1 or B, q, n)`` and ``mu`` a number or ``(B,)``:
    central ``[x + mu u_i; x - mu u_i]``, forward ``[x; x + mu u_i]`` (shared base) or
    ``[x (q times); x + mu u_i]`` (per-query base).

    >>> query_points(torch.zeros(2, 3), torch.eye(3)[None, :2], 0.5, "forward", "shared").shape
    torch.Size([3, 2, 3])
    """
    q = U.shape[1]
    step = _column(mu) * U.transpose(0, 1)  # (q, B or 1 -> B, n)
    X = x.unsqueeze(0)
    if differences == "central":
        return torch.cat([X + step, X - step])
    if base == "shared":
        return torch.cat([X, X + step])
    return torch.cat([X.expand(q, -1, -1), X + step])


def differences_from_values(values: Tensor, q: int, mu: float | Tensor, differences: str, base: str) -> Tensor:
    """``(B, q)`` directional differences delta from the ``(S, B)`` values of ``query_points``.

    >>> differences_from_values(torch.tensor([[1.0], [1.5], [3.0]]), 2, 0.5, "forward", "shared")
    tensor([[1., 4.]])
    """
    if differences == "central":
        delta = (values[:q] - values[q:]) / (2 * mu)
    elif base == "shared":
        delta = (values[1:] - values[:1]) / mu
    else:
        delta = (values[q:] - values[:q]) / mu
    return delta.mT.contiguous()  # a layout that does not depend on B (see aggregate)


def dual_directions(U: Tensor, rule: str, orthogonal: bool = False) -> Tensor:
    """``V`` of the shape of ``U`` ``(1 or B, q, n)`` with ``g = sum_i delta_i v_i``.

    avg: ``V = U / q``. align: ``V = (U U^T)^{-1} U`` (the dual frame, for q <= n) or
    ``V = U (U^T U)^{-1}`` (q > n: least squares), through a QR factorisation, never the
    normal equations, whose condition number is the square of U's. ``orthogonal``: the rows
    of U are orthogonal with squared norm n (orthonormal and coordinate directions), so
    ``U U^T = n I`` and align is ``V = U / n``.

    >>> U = torch.tensor([[[1.0, 1.0, 0.0]]])
    >>> dual_directions(U, "align")        # one direction: u / ||u||^2
    tensor([[[0.5000, 0.5000, 0.0000]]])
    """
    q, n = U.shape[1], U.shape[2]
    if rule == "avg":
        return U / q
    if orthogonal:
        return U / n
    if q == 1:
        return U / U.square().sum(-1, keepdim=True)
    if q <= n:
        Qm, R = torch.linalg.qr(U.mT)  # U^T = Q R, U U^T = R^T R: V = (U U^T)^{-1} U = R^{-1} Q^T
        return torch.linalg.solve_triangular(R, Qm.mT, upper=True)
    Qm, R = torch.linalg.qr(U)  # U = Q R, U (U^T U)^{-1} = Q R^{-T}
    return torch.linalg.solve_triangular(R, Qm.mT, upper=True).mT


def aggregate(delta: Tensor, U: Tensor, rule: str, orthogonal: bool = False) -> Tensor:
    """``(B, n)`` estimate ``sum_i delta_i v_i`` from differences ``(B, q)`` and directions
    ``(1 or B, q, n)`` (``dual_directions``).

    The sum is an elementwise product and a reduction over q, not a matrix product: a
    GEMM's rounding depends on the batch size, and a finite difference amplifies a
    rounding change of x by 1/mu, so that a GEMM here makes an instance's iterates depend
    on the rest of its batch at the 1e-9 level.

    >>> U = torch.eye(3).unsqueeze(0) * 3 ** 0.5           # coordinate frame, E[uu'] = I
    >>> delta = torch.tensor([[1.0, 2.0, 3.0]]) * 3 ** 0.5  # u_i'g for g = (1, 2, 3)
    >>> aggregate(delta, U, "align", orthogonal=True)
    tensor([[1.0000, 2.0000, 3.0000]])
    """
    return (delta.unsqueeze(-1) * dual_directions(U, rule, orthogonal)).sum(-2)


def check_options(rule: str, directions: str, differences: str, base: str, queries: int, dim: int | None) -> None:
    """``ValueError`` naming the parameter for any bad option of ``estimate_gradient``."""
    check_rule(rule)
    check_directions(directions, queries, dim)
    check_accounting(differences, base, "evaluations")


def estimate_gradient(
    fn: Callable[[Tensor], Tensor],
    x: Tensor,
    queries: int,
    rule: str = "avg",
    directions: str = "gaussian",
    differences: str = "forward",
    mu: float | Tensor | None = None,
    generator: torch.Generator | None = None,
    *,
    base: str = "shared",
    independent: bool = True,
) -> Estimate:
    """A zeroth-order estimate of grad f at every row of ``x`` (module docstring).

    Args:
        fn: f on a batch of points, ``(R, n) -> (R,)``; row r of the output depends only on
            row r of the input. Called once, with ``R = S * B`` rows (slot-major).
        x: ``(B, n)`` points.
        queries: q >= 1 directions per instance (<= n for orthonormal and coordinate).
        rule: ``"avg"`` (ZO-Avg) or ``"align"`` (ZO-Align, projection onto span(U)).
        directions: ``"gaussian"``, ``"sphere"``, ``"orthonormal"`` or ``"coordinate"``
            (``l2o.zeroth_order.directions``).
        differences: ``"forward"`` or ``"central"``.
        mu: smoothing radius > 0, a number or ``(B,)``; None: ``default_mu``.
        generator: the ``torch.Generator`` of the directions (on x's device).
        base: forward differences: ``"shared"`` (one f(x) for the q directions, q + 1
            evaluations) or ``"per_query"`` (f(x) evaluated with each direction, 2q).
        independent: True draws directions per instance; False draws one set shared by
            the batch (then an instance's estimate does not depend on the rest of the batch).

    Returns:
        ``Estimate(grad (B, n), evaluations)``, evaluations per instance as counted by
        ``QueryAccounting(differences, base).evaluations(queries)``.

    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.tensor([[1.0, -2.0, 3.0]], dtype=torch.float64)
    >>> est = estimate_gradient(lambda z: z.square().sum(-1), x, 3, "align", "orthonormal", "central", 1e-3, g)
    >>> torch.allclose(est.grad, 2 * x), est.evaluations      # central differences: exact on a quadratic
    (True, 6)
    """
    if x.ndim != 2:
        raise ValueError(f"x must have shape (B, n), got {tuple(x.shape)}")
    B, n = x.shape
    check_options(rule, directions, differences, base, queries, n)
    m = _as_mu(mu, x, differences)
    U = draw_directions(directions, queries, n, B if independent else 1, generator, x.dtype, x.device)
    P = query_points(x, U, m, differences, base)
    S = P.shape[0]
    values = fn(P.reshape(S * B, n))
    if not isinstance(values, Tensor) or values.shape != (S * B,):
        got = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise ValueError(f"fn must map ({S * B}, {n}) points to ({S * B},) values, got {got}")
    delta = differences_from_values(values.reshape(S, B).to(x.dtype), queries, m, differences, base)
    grad = aggregate(delta, U, rule, orthogonal=directions in FRAMES)
    assert S == QueryAccounting(differences, base).evaluations(queries)
    return Estimate(grad, S)


__all__ = ["Estimate", "estimate_gradient", "default_mu", "aggregate", "dual_directions", "query_points",
           "differences_from_values",
           "RULES", "DIFFERENCES", "BASES"]
