"""``solve``: the one certified solve loop, with per-instance stopping and batch compaction.

Each instance stops on its own stopping criterion (``l2o.evaluation.stopping``: the
family's certificate by default), checked every ``check_every`` iterations, and
converged instances leave the batch, so the tail of slow instances does not pay for the
fast ones. References (``l2o.evaluation.reference``) are computed by this loop too.
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import torch
from torch import Tensor

from l2o.evaluation.stopping import Certificate, Residual, StoppingCriterion
from l2o.optimizers.base import Optimizer, select_state
from l2o.problems.base import Instances

CRITERIA = ("certificate", "residual")


def to_device(solver: Optimizer, problem: Instances, device: str | torch.device) -> tuple[Optimizer, Instances]:
    """``solver`` and ``problem`` on ``device``: the instances copied there, the solver's
    ``nn.Module`` parts (a learned model, the learned model inside a wrapper such as the
    safeguard) moved there in place. ``ValueError`` for CUDA without a GPU.

    >>> import l2o
    >>> solver, problem = to_device(l2o.make_solver("fista"), l2o.LassoFamily(m=4, n=6, nnz=2).sample(2, 0), "cpu")
    >>> problem.device.type
    'cpu'
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a torch device such as 'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} needs CUDA, but torch.cuda.is_available() is False here; "
                         f"use device 'cpu'")
    for part in (solver, *getattr(solver, "__dict__", {}).values()):
        if isinstance(part, torch.nn.Module):
            part.to(device=dev)
    return solver, (problem if problem.device == dev else problem.to(device=dev))


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so that wall-clock times are right."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclasses.dataclass
class SolveResult:
    """Per-instance outcome of ``solve``.

    Attributes:
        x: ``(B, n)`` solutions; objective, certificate: ``(B,)``;
        iterations: ``(B,)`` iterations each instance ran; converged: ``(B,)`` bool,
        True where the stopping criterion held, and everywhere for a one-shot solver;
        seconds: wall time of the solve (whole batch); certificate_name: what the
        certificate measures.
        one_shot: the solver is a closed form (``solver.one_shot``, e.g. the MIMO linear
            precoders): it ran one step, its answer is final (iterating would not change
            it), so ``converged`` is True and ``certificate`` says how far the closed form
            is from a solution (not a tolerance it was run to).
    """

    x: Tensor
    objective: Tensor
    certificate: Tensor
    iterations: Tensor
    converged: Tensor
    seconds: float
    certificate_name: str
    one_shot: bool = False


def make_criterion(criterion: str, tol: float) -> StoppingCriterion:
    """The stopping criterion named by ``l2o.solve``'s ``criterion`` and ``tol`` arguments."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be 'certificate' or 'residual', got {criterion!r}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    return Certificate(tol) if criterion == "certificate" else Residual(tol)


#: An iterate in a dtype coarser than float64 has stalled once it changed by at most this many
#: units in the last place (relative) between two checks, at STALL_CHECKS checks in a row: it
#: sits at the resolution of its dtype (float32 iterates jitter by about 10 ulps there) and
#: its criterion will not improve any more.
STALL_ULPS = 64
STALL_CHECKS = 3


@dataclasses.dataclass
class _Outcome:
    """Per row of one loop: last iterate, iterations, converged, stalled."""

    x: Tensor
    iterations: Tensor
    converged: Tensor
    stalled: Tensor


def _loop(
    solver: Optimizer, work: Instances, exact: Instances | None, x: Tensor, stop: StoppingCriterion,
    max_iter: int, check_every: int,
) -> _Outcome:
    """Iterate ``solver`` on ``work`` from ``x`` with compaction (``exact``: float64 copies of
    the same rows for a float64 criterion, or None). In a dtype coarser than float64, rows
    whose iterate stalls (``STALL_ULPS``) leave the batch unconverged."""
    B = work.batch_size
    x_out = x.clone()
    iterations = torch.zeros(B, dtype=torch.long)
    converged = torch.zeros(B, dtype=torch.bool)
    stalled = torch.zeros(B, dtype=torch.bool)
    compact = work.can_index
    eps = torch.finfo(work.dtype).eps
    detect_stall = eps > torch.finfo(torch.float64).eps
    active = torch.arange(B, device=work.device)  # rows of the batch in the sub-batch
    live = torch.ones(B, dtype=torch.bool, device=work.device)  # not yet retired, per row of the sub-batch
    n_live = B
    sub = work
    state = solver.init(work, x)
    last = state.x.clone() if detect_stall else None  # iterates at the last check
    still = torch.zeros(B, dtype=torch.long, device=work.device)  # checks in a row without change

    def check(k: int, previous: Tensor | None) -> None:
        nonlocal active, live, n_live, sub, exact, state, last, still
        if exact is not None:
            prev64 = None if previous is None else previous.to(torch.float64)
            done = stop.done(exact, state.x.to(torch.float64), prev64)
        else:
            done = stop.done(sub, state.x, previous)
        stuck = torch.zeros_like(done)
        if detect_stall and k > 0:
            change = torch.linalg.vector_norm(state.x - last, dim=-1)
            size = torch.linalg.vector_norm(state.x, dim=-1)
            still = torch.where(change <= STALL_ULPS * eps * size, still + 1, torch.zeros_like(still))
            stuck = ~done & (still >= STALL_CHECKS)
            last = state.x.clone()
        if not compact:
            done, stuck = done & live, stuck & live
        leave = done | stuck
        if not bool(leave.any()):
            return
        idx = active[leave]
        x_out[idx] = state.x[leave]
        iterations[idx.cpu()] = k
        converged[active[done].cpu()] = True
        stalled[active[stuck].cpu()] = True
        if not compact:
            live = live & ~leave
            n_live = int(live.sum())
            return
        keep = torch.nonzero(~leave).squeeze(-1)
        active, live, n_live = active[keep], live[keep], int(keep.numel())
        if n_live:
            same = exact is sub
            sub = sub.index(keep)
            if exact is not None:
                exact = sub if same else exact.index(keep)
            state = select_state(state, keep)
            if detect_stall:
                last, still = last[keep], still[keep]

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
    return _Outcome(x_out, iterations, converged, stalled)


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
    iterate_dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
) -> SolveResult:
    """Solve every instance until its stopping criterion holds (or ``max_iter``).

    The criterion is checked at the start, every ``check_every`` iterations and at
    ``max_iter``; converged instances leave the batch (their state is kept as it was),
    so the work per iteration shrinks as instances finish. Instances that cannot be
    sub-batched (``problem.can_index`` False) stay in the batch and keep their iterate
    of the check at which they converged.

    A one-shot solver (class attribute ``one_shot = True``: a closed form such as the MIMO
    precoders ``mrt``, ``zf``, ``rzf``, whose ``step`` keeps the point ``init`` computed)
    runs one step and returns, every instance counted as converged (``SolveResult.one_shot``).

    Iterates in a dtype coarser than float64 (float32) stop improving at the resolution
    of their dtype: an instance whose iterate no longer changes (by more than
    ``STALL_ULPS`` units in the last place between checks, ``STALL_CHECKS`` checks in a
    row) before its criterion holds leaves the batch unconverged, with a warning that
    names the remedies, instead of running to ``max_iter``.

    Args:
        x0: ``(B, n)`` starting point (default ``problem.initial_point()``).
        tol, criterion: build the stopping criterion when ``stop`` is None:
            ``"certificate"`` (default) stops on the family's certificate <= tol,
            always evaluated in float64 (a float32 duality gap is rounding noise below
            about 1e-5, while float32 iterates themselves get much closer);
            ``"residual"`` on the relative fixed-point residual
            ``problem.fixed_point_residual`` <= tol in the working dtype.
        stop: a ``StoppingCriterion`` (``Certificate``, ``Residual``, ``RelativeChange``)
            used instead of ``tol`` / ``criterion``.
        iterate_dtype: iterate in this dtype (e.g. ``torch.float32`` for float64
            instances: about 1.6x faster on CPU) while a float64 criterion is evaluated
            on the instances themselves; instances that stall in it (where the criterion
            needs more accuracy than the dtype has) continue in the instances' dtype from
            where they stalled, within ``max_iter`` iterations in all. The solutions are
            returned in the instances' dtype.
        device: solve on this device ("cpu", "cuda"; default: where the instances are): the
            instances are copied there and the solver's learned model moved there
            (``to_device``); the result's tensors are on it. Between two checks of the
            criterion the loop makes no host synchronisation (the safeguard steps masked
            on CUDA, ``l2o.safeguard``).

    Returns:
        ``SolveResult``; its objective and certificate are evaluated in float64 at the
        end, whatever the stopping criterion.

    Example:
        >>> import torch, l2o
        >>> problem = l2o.LassoFamily(m=20, n=40, nnz=3).sample(8, generator=0)
        >>> result = l2o.solve(l2o.make_solver("fista_restart"), problem, tol=1e-8)
        >>> bool(result.converged.all()), bool((result.certificate <= 1e-8).all())  # duality gap
        (True, True)
        >>> tuple(result.x.shape), result.iterations.dtype  # per-instance iteration counts
        ((8, 40), torch.int64)
        >>> ref = l2o.reference(problem)  # the certificate bounds the true relative gap
        >>> bool((ref.relative_gap(result.objective) <= 1e-8).all())
        True
    """
    if stop is None:
        stop = make_criterion(criterion, tol)
    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0, got {max_iter}")
    if check_every < 1:
        raise ValueError(f"check_every must be >= 1, got {check_every}")
    if device is not None:
        solver, problem = to_device(solver, problem, device)
    B = problem.batch_size
    x = problem.initial_point() if x0 is None else x0.to(dtype=problem.dtype, device=problem.device)
    if x.shape != (B, problem.dim):
        raise ValueError(f"x0 must have shape {(B, problem.dim)}, got {tuple(x.shape)}")
    one_shot = bool(getattr(solver, "one_shot", False))
    if one_shot:
        max_iter = min(max_iter, 1)
    sync(problem.device)
    start = time.perf_counter()
    # float64 instances for a float64 criterion (timed: part of a certified solve)
    full = problem.as_float64() if stop.float64 else None
    work = problem if iterate_dtype in (None, problem.dtype) else problem.to(dtype=iterate_dtype)
    out = _loop(solver, work, full, x.to(work.dtype), stop, max_iter, check_every)
    x_out = out.x.to(problem.dtype)
    iterations, converged, stalled = out.iterations, out.converged, out.stalled
    if work is not problem and problem.can_index and bool(stalled.any()):
        # refine in the instances' own dtype, from where the coarser iterates stalled
        rows = torch.nonzero(stalled).squeeze(-1)
        done = int(iterations[rows].max())
        more = _loop(solver, problem.index(rows.to(problem.device)), None if full is None else full.index(rows),
                     x_out[rows.to(problem.device)], stop, max_iter - done, check_every)
        x_out[rows.to(problem.device)] = more.x
        iterations[rows] += more.iterations
        converged[rows], stalled[rows] = more.converged, more.stalled
    sync(problem.device)
    seconds = time.perf_counter() - start
    n_stalled = int(stalled.sum())
    if n_stalled:
        dtype = str(problem.dtype if work is problem else iterate_dtype).replace("torch.", "")
        warnings.warn(
            f"l2o.solve: {n_stalled} of {B} instance(s) stopped before meeting {stop!r}: their {dtype} iterates no "
            f"longer change (the criterion needs more accuracy than {dtype} holds); solve float64 instances "
            f"(problem.to(dtype=torch.float64)) or use a larger tol", RuntimeWarning, stacklevel=2)
    full = full if full is not None else problem.as_float64()
    x64 = x_out.to(torch.float64)
    if one_shot:
        converged = torch.ones_like(converged)
    return SolveResult(
        x=x_out, objective=full.objective(x64), certificate=full.certificate(x64),
        iterations=iterations, converged=converged, seconds=seconds, certificate_name=problem.certificate_name(),
        one_shot=one_shot,
    )
