"""``solve``: the one certified solve loop, with per-instance stopping and batch compaction.

Each instance stops on its own stopping criterion (``l2o.evaluation.stopping``: the
family's certificate by default), checked every ``check_every`` iterations, and
converged instances leave the batch, so the tail of slow instances does not pay for the
fast ones. References (``l2o.evaluation.reference``) are computed by this loop too.
"""

from __future__ import annotations

import dataclasses
import time

import torch
from torch import Tensor

from l2o.evaluation.stopping import Certificate, Residual, StoppingCriterion
from l2o.optimizers.base import Optimizer, select_state
from l2o.problems.base import Instances

CRITERIA = ("certificate", "residual")


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so that wall-clock times are right."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclasses.dataclass
class SolveResult:
    """Per-instance outcome of ``solve``.

    Attributes:
        x: ``(B, n)`` solutions; objective, certificate: ``(B,)``;
        iterations: ``(B,)`` iterations each instance ran; converged: ``(B,)`` bool;
        seconds: wall time of the solve (whole batch); certificate_name: what the
        certificate measures.
    """

    x: Tensor
    objective: Tensor
    certificate: Tensor
    iterations: Tensor
    converged: Tensor
    seconds: float
    certificate_name: str


def make_criterion(criterion: str, tol: float) -> StoppingCriterion:
    """The stopping criterion named by ``l2o.solve``'s ``criterion`` and ``tol`` arguments."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be 'certificate' or 'residual', got {criterion!r}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    return Certificate(tol) if criterion == "certificate" else Residual(tol)


@torch.no_grad()
def solve(
    solver: Optimizer,
    problem: Instances,
    x0: Tensor | None = None,
    tol: float = 1e-8,
    max_iter: int = 10_000,
    check_every: int = 10,
    criterion: str = "certificate",
    stop: StoppingCriterion | None = None,
) -> SolveResult:
    """Solve every instance until its stopping criterion holds (or ``max_iter``).

    The criterion is checked at the start, every ``check_every`` iterations and at
    ``max_iter``; converged instances leave the batch (their state is kept as it was),
    so the work per iteration shrinks as instances finish. Instances that cannot be
    sub-batched (``problem.can_index`` False) stay in the batch and keep their iterate
    of the check at which they converged.

    Args:
        x0: ``(B, n)`` starting point (default ``problem.initial_point()``).
        tol, criterion: build the stopping criterion when ``stop`` is None:
            ``"certificate"`` (default) stops on the family's certificate <= tol,
            always evaluated in float64 (a float32 duality gap is rounding noise below
            about 1e-5, while float32 iterates themselves get much closer);
            ``"residual"`` on the relative fixed-point residual
            ``problem.fixed_point_residual`` <= tol in the working dtype (for float32
            solves to high accuracy, where a float64 duality gap of a float32 iterate
            cannot drop below about 1e-6 although the iterate itself is more accurate).
        stop: a ``StoppingCriterion`` (``Certificate``, ``Residual``, ``RelativeChange``)
            used instead of ``tol`` / ``criterion``.

    Returns:
        ``SolveResult``; its objective and certificate are evaluated in float64 at the
        end, whatever the stopping criterion.
    """
    if stop is None:
        stop = make_criterion(criterion, tol)
    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0, got {max_iter}")
    if check_every < 1:
        raise ValueError(f"check_every must be >= 1, got {check_every}")
    B = problem.batch_size
    x = problem.initial_point() if x0 is None else x0.to(dtype=problem.dtype, device=problem.device)
    if x.shape != (B, problem.dim):
        raise ValueError(f"x0 must have shape {(B, problem.dim)}, got {tuple(x.shape)}")
    sync(problem.device)
    start = time.perf_counter()
    x_out = x.clone()
    iterations = torch.zeros(B, dtype=torch.long)
    converged = torch.zeros(B, dtype=torch.bool)
    compact = problem.can_index
    active = torch.arange(B, device=problem.device)  # rows of the batch in the sub-batch
    live = torch.ones(B, dtype=torch.bool, device=problem.device)  # not yet converged, per row of the sub-batch
    n_live = B
    sub = problem
    # float64 instances for a float64 criterion (timed: part of a certified solve),
    # kept in step with the sub-batch
    full = problem.as_float64() if stop.float64 else None
    exact = full
    state = solver.init(problem, x)

    def check(k: int, previous: Tensor | None) -> None:
        nonlocal active, live, n_live, sub, exact, state
        if exact is not None:
            prev64 = None if previous is None else previous.to(torch.float64)
            done = stop.done(exact, state.x.to(torch.float64), prev64)
        else:
            done = stop.done(sub, state.x, previous)
        if not compact:
            done = done & live
        if not bool(done.any()):
            return
        idx = active[done]
        x_out[idx] = state.x[done]
        iterations[idx.cpu()] = k
        converged[idx.cpu()] = True
        if not compact:
            live = live & ~done
            n_live = int(live.sum())
            return
        keep = torch.nonzero(~done).squeeze(-1)
        active, live, n_live = active[keep], live[keep], int(keep.numel())
        if n_live:
            same = exact is sub
            sub = sub.index(keep)
            if exact is not None:
                exact = sub if same else exact.index(keep)
            state = select_state(state, keep)

    check(0, None)
    k = 0
    while n_live and k < max_iter:
        k += 1
        at_check = k % check_every == 0 or k == max_iter
        previous = state.x if at_check and stop.needs_previous else None
        state = solver.step(sub, state)
        if at_check:
            check(k, previous)
    if n_live:
        x_out[active[live]] = state.x[live]
        iterations[active[live].cpu()] = k
    sync(problem.device)
    seconds = time.perf_counter() - start
    full = full if full is not None else problem.as_float64()
    x64 = x_out.to(torch.float64)
    return SolveResult(
        x=x_out, objective=full.objective(x64), certificate=full.certificate(x64),
        iterations=iterations, converged=converged, seconds=seconds, certificate_name=problem.certificate_name(),
    )
