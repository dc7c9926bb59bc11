"""How few Gram products could any solver need on a batch of shared-dictionary LASSOs?

Two measurements behind the speed target of ``bench_speed.py``:

* ``support_oracle_cg``: conjugate gradients on the LASSO restricted to the support S
  and signs s of the optimum x*, i.e. on the quadratic

      q(z) = 1/2 z^T G_SS z - c_S^T z,    c = A^T b - lam s,    G = A^T A,

  from z = 0 (the solvers' start). For z supported on S, ||z||_1 >= s^T z gives
  F(z) >= q(z) + 1/2 ||b||^2 with equality at x*, so q(z_k) - q(x*) is a lower bound on
  F(z_k) - F*. CG minimizes q over the Krylov space span{c_S, G_SS c_S, ...,
  G_SS^{k-1} c_S}, so no method whose k-th iterate lies in that space (k products with
  G, plus a free oracle for S and s) has a smaller q-gap after k products. It is a
  yardstick, not a theorem about every learned solver: a nonlinear method (thresholds,
  learned matrices) is not bound to that Krylov space, but it also does not know S.
* ``sign_identification``: the first iteration at which a solver's iterate has exactly
  the support and signs of x*, per instance; once it holds, one restricted solve
  (``LeastSquaresInstances.polish``) finishes the instance.

Shapes: a batch of B instances with a shared ``(m, n)`` A; x* is ``(B, n)``.
"""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def support_oracle_cg(problem, reference, iterations: int) -> dict[str, Tensor]:
    """CG on the support and signs of ``reference.x``, batched with masks.

    Args:
        problem: float64 ``LeastSquaresInstances`` with a shared A (lam > 0).
        reference: its ``Reference`` (x*, F*, gap denominator).
        iterations: CG steps to record.

    Returns:
        ``{"F": (iterations, B), "q": (iterations, B)}``: relative gaps
        (F(z_k) - F*) / d and (q(z_k) - q(x*)) / d with d the reference's gap
        denominator, after k = 1 .. iterations products with G.
    """
    if problem.A.ndim != 2:
        raise ValueError("support_oracle_cg needs a shared dictionary A of shape (m, n)")
    x_star = reference.x.to(torch.float64)
    G = problem.A.mT @ problem.A
    Atb = problem.b @ problem.A
    lam = problem.lam.unsqueeze(-1)
    support = x_star != 0
    c = torch.where(support, Atb - lam * torch.sign(x_star), torch.zeros_like(Atb))

    def q(z: Tensor) -> Tensor:
        return 0.5 * ((z @ G) * z).sum(-1) - (c * z).sum(-1)

    q_star, denom = q(x_star), reference.gap_denominator.to(torch.float64)
    z = torch.zeros_like(x_star)
    r = c.clone()  # residual c_S - G_SS z
    d = r.clone()
    rr = (r * r).sum(-1)
    tiny = torch.finfo(torch.float64).tiny
    F_gaps, q_gaps = [], []
    for _ in range(iterations):
        Gd = torch.where(support, d @ G, torch.zeros_like(d))  # one product with G, kept on S
        alpha = rr / (d * Gd).sum(-1).clamp_min(tiny)  # converged rows: d = 0, alpha = 0
        z = z + alpha.unsqueeze(-1) * d
        r = r - alpha.unsqueeze(-1) * Gd
        rr_next = (r * r).sum(-1)
        d = r + (rr_next / rr.clamp_min(tiny)).unsqueeze(-1) * d
        rr = rr_next
        F_gaps.append(reference.relative_gap(problem.objective(z)))
        q_gaps.append(((q(z) - q_star) / denom).clamp_min(0))
    return {"F": torch.stack(F_gaps), "q": torch.stack(q_gaps)}


@torch.no_grad()
def sign_identification(solver, problem, reference, iterations: int) -> Tensor:
    """``(B,)`` the first iteration (1-based) at which ``solver``'s iterate has exactly the
    support and signs of ``reference.x`` (-1 where it never does within ``iterations``)."""
    target = torch.sign(reference.x.to(torch.float64))
    first = torch.full((problem.batch_size,), -1, dtype=torch.long)
    state = solver.init(problem, problem.initial_point())
    for k in range(1, iterations + 1):
        state = solver.step(problem, state)
        same = (torch.sign(state.x.to(torch.float64)) == target).all(-1)
        first = torch.where((first < 0) & same, torch.full_like(first, k), first)
    return first


def first_iteration_all(gaps: Tensor, target: float) -> int | None:
    """First k (1-based) with every instance's gap at or below ``target`` (None: never)."""
    every = (gaps <= target).all(-1)
    return int(every.float().argmax()) + 1 if bool(every.any()) else None


def first_iteration_median(gaps: Tensor, target: float) -> float | None:
    """The (lower, as torch.median) median over instances of the first k with gap <= target
    (None if one never does)."""
    hit = gaps <= target
    if not bool(hit.any(0).all()):
        return None
    return float((hit.float().argmax(0) + 1).double().median())


@torch.no_grad()
def support_condition_numbers(problem, reference) -> Tensor:
    """``(B,)`` the condition number of A_S^T A_S on the support S of each ``reference.x``
    (accelerated methods on the support need about sqrt of it iterations per e-fold)."""
    A = problem.A.to(torch.float64)
    out = torch.empty(problem.batch_size, dtype=torch.float64)
    for i, x in enumerate(reference.x):
        S = torch.nonzero(x).squeeze(-1)
        ev = torch.linalg.eigvalsh(A[:, S].mT @ A[:, S]) if S.numel() else torch.ones(1, dtype=torch.float64)
        out[i] = ev[-1] / ev[0]
    return out
