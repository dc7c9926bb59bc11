"""Running a solver on a batch: trajectories for analysis (``solve``, in
``l2o.evaluation.solve``, is for use).

``run`` records per instance and per iteration the objective, the relative
suboptimality (F - F*) / max(|F*|, floor) (the rule is in ``l2o.problems.base``)
and the elapsed solver time. Time counts only the solver's own steps: the
bookkeeping (objective and gap in float64) is excluded, so trajectories of
different solvers are on the same clock.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import torch
from torch import Tensor

from l2o.evaluation.reference import Reference
from l2o.evaluation.reference import reference as compute_reference
from l2o.evaluation.solve import sync
from l2o.optimizers.base import Optimizer
from l2o.problems.base import Instances


@dataclasses.dataclass
class Trajectory:
    """What ``run`` records; ``T`` recorded iterations of a batch of ``B`` instances.

    Attributes:
        solver: the solver's name.
        iterations: ``(T,)`` iteration numbers (0 is the starting point).
        objective: ``(T, B)`` F at the iterate, float64.
        gap: ``(T, B)`` relative suboptimality, or None when no reference was given.
        certificate: ``(T, B)`` the family's certificate, or None if not recorded.
        time: ``(T,)`` cumulative seconds spent in the solver's steps.
        x: ``(B, n)`` last iterate.
        fallback: ``(T, B)`` bool, the iterate came from a safeguard's fallback
            (``l2o.safeguard``), or None for solvers without a safeguard.
    """

    solver: str
    iterations: Tensor
    objective: Tensor
    gap: Tensor | None
    certificate: Tensor | None
    time: Tensor
    x: Tensor
    fallback: Tensor | None = None

    def _measure(self) -> Tensor:
        if self.gap is not None:
            return self.gap
        if self.certificate is not None:
            return self.certificate
        raise ValueError("this trajectory has neither a reference gap nor a certificate")

    def iterations_to(self, tol: float) -> Tensor:
        """``(B,)`` first recorded iteration with gap <= tol (-1 where never reached)."""
        hit = self._measure() <= tol
        first = torch.where(hit.any(0), hit.float().argmax(0), torch.full_like(hit[0], -1, dtype=torch.long))
        return torch.where(first >= 0, self.iterations[first.clamp(min=0)], first)

    def time_to(self, tol: float) -> Tensor:
        """``(B,)`` solver seconds until gap <= tol (nan where never reached)."""
        hit = self._measure() <= tol
        first = hit.float().argmax(0)
        t = self.time.to(torch.float64)[first]
        return torch.where(hit.any(0), t, torch.full_like(t, math.nan))

    def records(self, **extra: Any) -> list[dict]:
        """Tidy rows, one per (iteration, instance): solver, iteration, instance, time,
        objective, gap, certificate (plus ``extra`` columns)."""
        rows = []
        T, B = self.objective.shape
        for t in range(T):
            for b in range(B):
                rows.append({
                    **extra, "solver": self.solver, "iteration": int(self.iterations[t]), "instance": b,
                    "time": float(self.time[t]), "objective": float(self.objective[t, b]),
                    "gap": None if self.gap is None else float(self.gap[t, b]),
                    "certificate": None if self.certificate is None else float(self.certificate[t, b]),
                })
        return rows


def solver_name(solver: Optimizer) -> str:
    return getattr(solver, "name", type(solver).__name__)


@torch.no_grad()
def run(
    solver: Optimizer,
    problem: Instances,
    x0: Tensor | None = None,
    max_iter: int = 100,
    reference: Reference | bool | None = True,
    tol: float | None = None,
    record_every: int = 1,
    record_certificate: bool = False,
) -> Trajectory:
    """Run ``solver`` on the batch ``problem`` and record its trajectory.

    Args:
        x0: ``(B, n)`` starting point (default ``problem.initial_point()``).
        max_iter: number of iterations K.
        reference: a ``Reference``, True to compute ``l2o.reference(problem)``, or None.
        tol: stop early once every instance's gap (or certificate, without a
            reference) is <= tol, checked at recorded iterations.
        record_every: record every this many iterations (and the last one).
        record_certificate: also record the family's certificate.

    Example:
        >>> import torch, l2o
        >>> problem = l2o.LassoFamily(m=20, n=40, nnz=3).sample(8, generator=0)
        >>> traj = l2o.run(l2o.make_solver("fista_restart"), problem, max_iter=100)  # gaps vs l2o.reference
        >>> tuple(traj.gap.shape), tuple(traj.time.shape), tuple(traj.x.shape)  # (T, B), (T,), (B, n)
        ((101, 8), (101,), (8, 40))
        >>> x0 = problem.initial_point()  # recorded as iteration 0
        >>> torch.equal(traj.objective[0], problem.objective(x0)), bool((traj.time[0] == 0).all())
        (True, True)
        >>> its = traj.iterations_to(1e-8)  # per instance, -1 where never reached
        >>> bool((its > 0).all()), bool((traj.time_to(1e-8) > 0).all())
        (True, True)
    """
    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0, got {max_iter}")
    if record_every < 1:
        raise ValueError(f"record_every must be >= 1, got {record_every}")
    ref = compute_reference(problem) if reference is True else (reference or None)
    exact = problem.as_float64()
    x = problem.initial_point() if x0 is None else x0.to(dtype=problem.dtype, device=problem.device)
    if x.shape != (problem.batch_size, problem.dim):
        raise ValueError(f"x0 must have shape {(problem.batch_size, problem.dim)}, got {tuple(x.shape)}")
    if ref is None and tol is not None:
        record_certificate = True

    its, objs, gaps, certs, times, fired = [], [], [], [], [], []
    elapsed = 0.0

    def record(k: int, st: Any) -> bool:
        x64 = st.x.to(torch.float64)
        if hasattr(st, "fired"):
            fired.append(st.fired.cpu())
        obj = exact.objective(x64)
        its.append(k)
        objs.append(obj)
        times.append(elapsed)
        if ref is not None:
            gaps.append(ref.relative_gap(obj))
        if record_certificate:
            certs.append(exact.certificate(x64))
        if tol is None:
            return False
        measure = gaps[-1] if ref is not None else certs[-1]
        return bool((measure <= tol).all())

    state = solver.init(problem, x)
    done = record(0, state)
    for k in range(1, max_iter + 1):
        if done:
            break
        sync(problem.device)
        start = time.perf_counter()
        state = solver.step(problem, state)
        sync(problem.device)
        elapsed += time.perf_counter() - start
        if k % record_every == 0 or k == max_iter:
            done = record(k, state)
    return Trajectory(
        solver=solver_name(solver),
        iterations=torch.tensor(its),
        objective=torch.stack(objs),
        gap=torch.stack(gaps) if gaps else None,
        certificate=torch.stack(certs) if certs else None,
        time=torch.tensor(times, dtype=torch.float64),
        x=state.x,
        fallback=torch.stack(fired) if fired else None,
    )
