"""Certified reference optima: ``reference(problem) -> Reference``.

The closed form where the instances offer one (``Instances.closed_form``: unconstrained
QPs by Cholesky, least squares by the pseudo-inverse), else the solver the instances
declare (``Instances.reference_solver``, a registry name, with
``reference_solver_kwargs``), run by the one solve loop (``l2o.evaluation.solve``) from
the projection of the origin until the family's certificate is <= tol, in float64, then
polished on its active set (``Instances.polish``) where that verifies the optimality
conditions. An uncertified reference is an error, never a silent approximation.

Nothing is cached on the instances: callers keep the ``Reference`` and pass it along
(``run(reference=ref)``, ``compare(reference=ref)``).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from l2o.evaluation.solve import SolveResult, solve
from l2o.evaluation.stopping import Certificate, RelativeChange
from l2o.optimizers.base import Optimizer
from l2o.problems.base import GAP_FLOOR, Instances
from l2o.problems.shift import ShiftedInstances
from l2o.registry import make_solver

#: Iterations between certificate checks of a reference solve, per solver (default 10):
#: Newton's iterations are few and expensive, so it is checked after each one.
CHECK_EVERY = {"newton": 1}


@dataclasses.dataclass(frozen=True)
class Reference:
    """A certified reference optimum of a batch.

    Attributes:
        x: ``(B, n)`` minimizer (float64).
        objective: ``(B,)`` F(x*) (float64).
        certificate: ``(B,)`` relative duality gap or KKT residual at ``x``.
        gap_denominator: ``(B,)`` denominator of the relative gap (see
            ``l2o.problems.base.GAP_FLOOR``).
        method: how the reference was computed, in words.
    """

    x: Tensor
    objective: Tensor
    certificate: Tensor
    gap_denominator: Tensor
    method: str

    def relative_gap(self, objective: Tensor) -> Tensor:
        """(F - F*) / denominator, computed in float64. ``objective``: ``(B,)``."""
        obj = objective.to(torch.float64)
        return (obj - self.objective.to(obj.device)) / self.gap_denominator.to(obj.device)

    def index(self, idx: Tensor) -> Reference:
        """The reference of the sub-batch ``idx`` (a ``(B',)`` long tensor)."""
        return dataclasses.replace(self, x=self.x[idx], objective=self.objective[idx],
                                   certificate=self.certificate[idx], gap_denominator=self.gap_denominator[idx])


def _solve_iteratively(exact: Instances, tol: float, max_iter: int) -> Tensor:
    """x* of the declared reference solver run by ``solve`` to certificate <= tol."""
    name = exact.reference_solver
    solver = make_solver(name, **dict(exact.reference_solver_kwargs))
    x0 = exact.prox(torch.zeros(exact.batch_size, exact.dim, dtype=exact.dtype, device=exact.device),
                    1.0 / exact.smoothness())
    res = solve(solver, exact, x0=x0, stop=Certificate(tol), max_iter=max_iter, check_every=CHECK_EVERY.get(name, 10))
    if not bool(res.converged.all()):
        raise RuntimeError(
            f"reference solver did not certify {int((~res.converged).sum())} of {exact.batch_size} instances to "
            f"{tol:g} in {max_iter} iterations (worst certificate {float(res.certificate.max()):.3g})"
        )
    return res.x


def run_to_stationarity(solver: Optimizer, problem: Instances, x0: Tensor, rtol: float, max_iter: int,
                        check_every: int = 10) -> SolveResult:
    """``solve`` from ``x0`` until the smooth objective changes by at most ``rtol``
    (relative) in one iteration on each instance (``RelativeChange``), at most ``max_iter``
    iterations: how local solvers of nonconvex families (WMMSE) are run to convergence."""
    stop = RelativeChange(rtol, of=lambda p, x: p.smooth_objective(x))
    return solve(solver, problem, x0=x0, stop=stop, max_iter=max_iter, check_every=check_every)


def best_of_starts(exact: Instances, max_iter: int) -> tuple[Tensor, str]:
    """``(x*, method)``: per instance, the best (lowest objective) of the runs of the
    declared ``reference_solver`` from every point of ``exact.reference_starts()``, each
    run by ``run_to_stationarity`` with ``exact.reference_rtol`` and at most
    ``min(max_iter, exact.reference_max_iter)`` iterations. A best-effort local optimum,
    not a certified global one (for MIMO, the gap (R* - R) / R* of another solver can be
    slightly negative); all starts run as one batch of ``S * B`` instances."""
    starts = exact.reference_starts()
    S, B = len(starts), exact.batch_size
    big = exact.index(torch.arange(B, device=exact.device).repeat(S))
    solver = make_solver(exact.reference_solver, **dict(exact.reference_solver_kwargs))
    res = run_to_stationarity(solver, big, torch.cat([x for _, x in starts]), exact.reference_rtol,
                              min(max_iter, exact.reference_max_iter))
    value = big.smooth_objective(res.x).reshape(S, B)
    best = value.argmin(0)
    x_star = res.x.reshape(S, B, -1)[best, torch.arange(B, device=exact.device)]
    names = ", ".join(name for name, _ in starts)
    return x_star, (
        f"best of {exact.reference_solver.upper()} runs from {names} (per instance; each until the relative "
        f"objective change per iteration < {exact.reference_rtol:g}, at most {int(res.iterations.max())} "
        "iterations used): a local optimum, not certified global"
    )


def _minimizer(exact: Instances, tol: float, max_iter: int) -> tuple[Tensor, str]:
    """``(x*, method)`` of float64 instances."""
    if isinstance(exact, ShiftedInstances):  # x* - t, from the inner problem's reference
        inner = reference(exact.inner, tol, max_iter)
        return inner.x - exact.t, inner.method + " (shifted)"
    if exact.reference_starts() is not None:  # nonconvex: the best of several local runs
        return best_of_starts(exact, max_iter)
    closed = exact.closed_form()
    if closed is not None:
        return closed
    x = _solve_iteratively(exact, tol, max_iter)
    method = exact.reference_method.format(solver=exact.reference_solver, tol=tol)
    # Polish where the family can (LASSO support, box-QP active set): a certificate as tight
    # as the LASSO one stops the solver as soon as F - F* <= tol, and the polish makes the
    # reference exact wherever it verifies the optimality conditions.
    z, accepted = exact.polish(x)
    if bool(accepted.any()):
        keep = accepted & (exact.certificate(z) <= tol)
        if bool(keep.any()):
            x = torch.where(keep.unsqueeze(-1), z, x)
            method += ", then polished on its active set where that verifies optimality"
    return x, method


@torch.no_grad()
def reference(problem: Instances, tol: float = 1e-10, max_iter: int = 100_000) -> Reference:
    """A certified optimum of every instance of ``problem``, computed in float64.

    Args:
        tol: certificate the reference solver must reach on every instance.
        max_iter: iteration cap of the reference solver.

    Raises:
        RuntimeError: the reference solver did not certify every instance to ``tol``.

    Example (a box QP: no closed form; checked against the projected-gradient fixed point):
        >>> import torch, l2o
        >>> problem = l2o.QuadraticFamily(n=5, condition_number=10.0, box=0.1).sample(4, generator=0)
        >>> ref = l2o.reference(problem)
        >>> ref.method
        'accelerated projected gradient with restart to KKT residual <= 1e-10, then polished ...'
        >>> bool((ref.certificate <= 1e-10).all())
        True
        >>> x = ref.x  # optimality: x = clip(x - grad f(x)) onto the box
        >>> bool((x - torch.clamp(x - problem.grad(x), -0.1, 0.1)).abs().max() < 1e-12)
        True
        >>> ref.relative_gap(problem.objective(torch.zeros_like(x))).tolist()  # F(0) = 0: gap |F*| / |F*|
        [1.0, 1.0, 1.0, 1.0]
    """
    exact = problem.as_float64()
    x_star, method = _minimizer(exact, tol, max_iter)
    f_star = exact.objective(x_star)
    cert = exact.certificate(x_star)
    f_origin = exact.objective(exact.prox(torch.zeros_like(x_star), 1.0 / exact.smoothness()))
    denom = torch.maximum(f_star.abs(), GAP_FLOOR * (f_origin - f_star).abs())
    denom = torch.where(denom > 0, denom, torch.ones_like(denom))
    return Reference(x=x_star, objective=f_star, certificate=cert, gap_denominator=denom, method=method)
