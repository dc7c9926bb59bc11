"""The reference solution of MIMO instances: the best of several WMMSE runs (a local optimum).

Kept apart from ``instances.py`` because it runs a solver (``l2o.optimizers.wmmse.WMMSE``):
the reference computation of every family is moving to ``l2o.evaluation.reference``, and
this module goes there with it; ``MimoInstances._solve_reference`` delegates here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from l2o.optimizers.base import select_state
from l2o.optimizers.wmmse import WMMSE
from l2o.problems.mimo.channel import mrt, pack, regularized_zero_forcing, scale_to_budget, zero_forcing
from l2o.problems.mimo.instances import MimoInstances

#: Convergence rule of the reference runs: relative change of the weighted sum-rate
#: in one WMMSE iteration below this.
REFERENCE_RTOL = 1e-9
#: Cap on the iterations of each reference run (and the number of random starts).
REFERENCE_MAX_ITER = 5000
REFERENCE_RANDOM_STARTS = 3


def reference_starts(problem: MimoInstances) -> list[tuple[str, Tensor]]:
    """The starts of the reference runs: MRT, RZF, ZF (where M >= I d) and
    ``REFERENCE_RANDOM_STARTS`` random feasible points (complex Gaussian precoders at
    full power, the same draws for every instance, so that a sub-batch gets the same
    starts as the batch)."""
    H, d, budget = problem.H, problem.streams, problem.budget
    starts = [("MRT", mrt(H, d, budget)), ("RZF", regularized_zero_forcing(H, d, budget, problem.noise))]
    if problem.tx_antennas >= problem.users * problem.streams:
        starts.append(("ZF", zero_forcing(H, d, budget)))
    g = torch.Generator().manual_seed(0)
    for s in range(REFERENCE_RANDOM_STARTS):
        z = torch.randn(1, problem.dim, generator=g, dtype=torch.float64).to(problem.dtype).to(problem.device)
        V = problem.unpack(z.expand(problem.batch_size, -1))
        starts.append((f"random {s}", pack(scale_to_budget(V, budget))))
    return starts


def solve_reference(problem: MimoInstances, tol: float, max_iter: int) -> tuple[Tensor, str]:
    """Best (highest weighted sum-rate, per instance) of WMMSE runs from every start of
    ``reference_starts``, each run until the relative change of the rate in one
    iteration is below REFERENCE_RTOL (at most min(max_iter, REFERENCE_MAX_ITER)
    iterations). A best-effort local optimum, not a certified global one: the gap
    (R* - R) / R* of another solver can be slightly negative. ``tol`` is not used.
    Returns ``(x* (B, n), a description of the method)``."""
    starts = reference_starts(problem)
    S, B = len(starts), problem.batch_size
    big = problem.index(torch.arange(B, device=problem.device).repeat(S))
    x0 = torch.cat([x for _, x in starts])
    x, iters = run_wmmse_to_convergence(big, x0, WMMSE(), REFERENCE_RTOL, min(max_iter, REFERENCE_MAX_ITER))
    rate = big.sum_rate(x).reshape(S, B)
    best = rate.argmax(0)
    x_star = x.reshape(S, B, -1)[best, torch.arange(B, device=problem.device)]
    names = ", ".join(name for name, _ in starts)
    return x_star, (
        f"best of WMMSE runs from {names} (per instance; each until the relative rate change per iteration "
        f"< {REFERENCE_RTOL:g}, at most {int(iters.max())} iterations used): a local optimum, not certified global"
    )


@torch.no_grad()
def run_wmmse_to_convergence(
    problem: MimoInstances, x0: Tensor, solver, rtol: float, max_iter: int, check_every: int = 10
) -> tuple[Tensor, Tensor]:
    """Iterate ``solver`` from ``x0`` until the relative change of the weighted sum-rate in
    one iteration is < ``rtol`` on each instance (checked every ``check_every`` iterations;
    converged instances leave the batch). Returns ``(x (B, n), iterations (B,))``."""
    B = problem.batch_size
    x_out = x0.clone()
    iterations = torch.full((B,), max_iter, dtype=torch.long)
    active = torch.arange(B, device=problem.device)
    sub, state = problem, solver.init(problem, x0)
    for k in range(1, max_iter + 1):
        prev = state.x
        state = solver.step(sub, state)
        if k % check_every and k != max_iter:
            continue
        r_new, r_old = sub.sum_rate(state.x), sub.sum_rate(prev)
        done = (r_new - r_old).abs() <= rtol * r_new.abs()
        if k == max_iter:
            done = torch.ones_like(done)
        if bool(done.any()):
            idx = active[done]
            x_out[idx] = state.x[done]
            iterations[idx.cpu()] = k
            keep = torch.nonzero(~done).squeeze(-1)
            active = active[keep]
            if not active.numel():
                break
            sub = sub.index(keep)
            state = select_state(state, keep)
    return x_out, iterations
