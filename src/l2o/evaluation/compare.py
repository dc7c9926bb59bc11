"""Comparing solvers on the same instances: trajectories and tidy records.

``compare`` runs every solver of a dict on the same batch, from the same starting
point, against the same reference optimum, and keeps the ``Trajectory`` of each. As
in benchopt, the result is data: ``Comparison.records()`` is a tidy table with one
row per solver x recorded iteration x instance, ``to_csv`` writes it (atomically),
and tables and plots (``l2o.report``) are drawn from trajectories or records without
running any solver again.

Every solver is warmed up before it is timed: ``warmup`` untimed steps (3 by default)
on the same instances from the same start, as the benchmarks do, so that one-time costs
of a fresh process (the allocator, first-call kernel and dispatch set-up, lazily built
caches) do not land on the first timed iterations; a learned solver's first call costs
about twice a warm one. Solvers keep their state explicit, so the warm-up does not change
any iterate.

Learned solvers (``torch.nn.Module``s) run in eval mode under ``torch.no_grad()``
(``run`` is a no-grad function); their training mode is restored afterwards. By
default a learned solver runs ten times the horizon it was trained for, since a
learned solver that only looks good up to its training horizon is the most common
disappointment of learned optimizers.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from l2o.evaluation.defaults import HORIZON_FACTOR
from l2o.evaluation.reference import Reference
from l2o.evaluation.reference import reference as compute_reference
from l2o.evaluation.run import Trajectory, run
from l2o.evaluation.solve import sync
from l2o.optimizers.base import Optimizer
from l2o.problems.base import Instances
from l2o.utils.files import atomic_write
from l2o.utils.progress import Progress

#: Iterations of classical solvers when no learned solver sets the horizon.
DEFAULT_MAX_ITER = 1000
#: Untimed steps every solver takes on the instances before its timed run (``warm_up``).
WARMUP_STEPS = 3
#: Significant digits of the numbers in the records CSV (relative error 5e-10).
FLOAT_DIGITS = 10
#: Columns of ``Comparison.records()`` and of the CSV, in order.
COLUMNS = ("solver", "learned", "iteration", "instance", "time", "objective", "gap", "certificate")


def learned_module(solver: Any) -> torch.nn.Module | None:
    """The network of a learned solver: the solver itself (an ``nn.Module``, as every
    ``l2o.learned.LearnedOptimizer``) or the learned solver a wrapper such as
    ``l2o.safeguard.Safeguard`` holds in ``.learned``; None for a classical solver."""
    if isinstance(solver, torch.nn.Module):
        return solver
    inner = getattr(solver, "learned", None)
    return inner if isinstance(inner, torch.nn.Module) else None


def is_learned(solver: Any) -> bool:
    """A learned solver is an ``nn.Module`` or wraps one (a safeguarded learned solver)."""
    return learned_module(solver) is not None


def default_iterations(solvers: Mapping[str, Optimizer], factor: int = HORIZON_FACTOR,
                       default: int = DEFAULT_MAX_ITER) -> dict[str, int]:
    """Iterations per solver when none are given: ``factor * horizon`` for each learned
    solver; the classical ones run as long as the longest learned one (``default``
    without learned solvers), so that every curve covers the learned solvers' range."""
    learned = {name: factor * int(getattr(s, "horizon", default // factor))
               for name, s in solvers.items() if is_learned(s)}
    classical = max(learned.values(), default=default)
    return {name: learned.get(name, classical) for name in solvers}


@dataclasses.dataclass
class Comparison:
    """The trajectories of several solvers on the same batch of ``B`` instances.

    Attributes:
        trajectories: solver name -> ``Trajectory`` (``gap`` ``(T, B)``, ``time`` ``(T,)``),
            in the order the solvers were given.
        learned: names of the learned solvers.
        reference: the reference optimum the gaps are relative to (None: no gaps,
            the trajectories hold the family's certificate instead).
        max_iter: solver name -> iterations it ran.
    """

    trajectories: dict[str, Trajectory]
    learned: frozenset[str]
    reference: Reference | None
    max_iter: dict[str, int]

    @property
    def solvers(self) -> list[str]:
        return list(self.trajectories)

    @property
    def batch_size(self) -> int:
        return next(iter(self.trajectories.values())).objective.shape[1] if self.trajectories else 0

    def records(self, every: int = 1) -> list[dict[str, Any]]:
        """Tidy rows, one per solver x recorded iteration x instance, with the keys
        ``COLUMNS``: solver, learned (bool), iteration, instance, time (cumulative solver
        seconds of the batch), objective, gap (relative suboptimality, None without a
        reference), certificate (None unless recorded).

        ``every`` thins the rows to every ``every``-th recorded point (the first and
        the last recorded iterations are always kept), for files of a practical size.
        """
        rows: list[dict[str, Any]] = []
        for name, traj in self.trajectories.items():
            rows.extend(trajectory_records(_select(traj, thin(traj.iterations.shape[0], every)),
                                           name=name, learned=name in self.learned))
        return rows

    def to_csv(self, path: str | os.PathLike[str], every: int = 1) -> Path:
        """Write ``records(every)`` as CSV with a header line, atomically (a temporary
        file in the same folder, then renamed). Empty cells are missing values."""
        return write_records_csv(path, self.records(every))


def trajectory_records(traj: Trajectory, name: str | None = None, learned: bool = False) -> list[dict[str, Any]]:
    """The rows of one trajectory with the keys ``COLUMNS`` (the same content as
    ``Trajectory.records``, built from whole arrays at once: fast for large batches)."""
    T, B = traj.objective.shape
    its = traj.iterations.tolist()
    times = traj.time.tolist()
    obj = traj.objective.tolist()
    gap = traj.gap.tolist() if traj.gap is not None else None
    cert = traj.certificate.tolist() if traj.certificate is not None else None
    solver = traj.solver if name is None else name
    return [
        {"solver": solver, "learned": learned, "iteration": its[t], "instance": b, "time": times[t],
         "objective": obj[t][b], "gap": None if gap is None else gap[t][b],
         "certificate": None if cert is None else cert[t][b]}
        for t in range(T) for b in range(B)
    ]


def thin(T: int, every: int) -> list[int]:
    """Indices ``0, every, 2 every, ...`` of ``T`` records, always with the last one."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    keep = list(range(0, T, every))
    if T and keep[-1] != T - 1:
        keep.append(T - 1)
    return keep


def _select(traj: Trajectory, keep: list[int]) -> Trajectory:
    if len(keep) == traj.iterations.shape[0]:
        return traj
    idx = torch.tensor(keep, dtype=torch.long)
    pick = lambda t: None if t is None else t[idx]  # noqa: E731
    return dataclasses.replace(traj, iterations=traj.iterations[idx], objective=traj.objective[idx],
                               gap=pick(traj.gap), certificate=pick(traj.certificate), time=traj.time[idx],
                               fallback=pick(traj.fallback))


@torch.no_grad()
def warm_up(solver: Optimizer, problem: Instances, x0: Tensor, steps: int = WARMUP_STEPS) -> None:
    """Run ``solver`` untimed for ``steps`` steps on ``problem`` from ``x0`` and discard the
    result, so that the timed run that follows starts warm (same shapes, same code path)."""
    if steps <= 0:
        return
    state = solver.init(problem, x0)
    for _ in range(steps):
        state = solver.step(problem, state)
    sync(problem.device)


def compare(
    solvers: Mapping[str, Optimizer],
    problem: Instances,
    reference: Reference | bool | None = None,
    max_iter: int | Mapping[str, int] | None = None,
    x0: Tensor | None = None,
    record_every: int = 1,
    stop_at: float | None = None,
    warmup: int = WARMUP_STEPS,
    progress: Progress | None = None,
) -> Comparison:
    """Run every solver on the same instances and collect their trajectories.

    Args:
        solvers: name -> solver (classical ``Optimizer`` or learned ``nn.Module``).
        problem: the batch of ``B`` instances, shared by all solvers.
        reference: a ``Reference``; None or True computes ``l2o.reference(problem)`` once
            (shared by all solvers); False records the certificate instead of a gap.
        max_iter: iterations for every solver (an int), per solver (a mapping; missing
            names get the default), or None for the default: ``10 * horizon`` for a
            learned solver, and for classical solvers the longest learned run
            (``DEFAULT_MAX_ITER`` = 1000 when there is no learned solver).
        x0: ``(B, n)`` common starting point (default ``problem.initial_point()``).
        record_every: record every this many iterations (and the last one).
        stop_at: stop a solver early once every instance's gap (certificate without a
            reference) is <= this, checked at recorded iterations (None: run them all).
        warmup: untimed steps of each solver on the same instances before its timed run
            (``warm_up``; at most its ``max_iter``; 0: time it cold).
        progress: reports the phases (the reference, each solver); None: silent.

    Raises:
        ValueError: an empty ``solvers``, a solver that does not fit the problem
            (message from its ``check_problem``, naming the solver), bad iterations.

    Example:
        >>> import l2o
        >>> problem = l2o.LassoFamily(m=20, n=40, nnz=3).sample(8, generator=0)
        >>> solvers = {name: l2o.make_solver(name) for name in ("ista", "fista_restart")}
        >>> comparison = l2o.compare(solvers, problem, max_iter=50)  # one reference for both
        >>> comparison.solvers, comparison.batch_size
        (['ista', 'fista_restart'], 8)
        >>> gaps = {name: float(t.gap[-1].max()) for name, t in comparison.trajectories.items()}
        >>> gaps["fista_restart"] < gaps["ista"]
        True
        >>> len(comparison.records())  # tidy rows: 2 solvers x 51 iterations x 8 instances
        816
    """
    if not solvers:
        raise ValueError("compare needs at least one solver")
    iters = default_iterations(solvers)
    if isinstance(max_iter, Mapping):
        unknown = sorted(set(max_iter) - set(solvers))
        if unknown:
            raise ValueError(f"max_iter names unknown solver(s) {unknown}; solvers: {', '.join(solvers)}")
        iters.update({k: int(v) for k, v in max_iter.items()})
    elif max_iter is not None:
        iters = {name: int(max_iter) for name in solvers}
    for name, k in iters.items():
        if k < 0:
            raise ValueError(f"max_iter of {name!r} is {k}; expected an integer >= 0")
    if warmup < 0:
        raise ValueError(f"warmup is {warmup}; expected an integer >= 0")
    progress = progress if progress is not None else Progress()
    for name, solver in solvers.items():
        check = getattr(solver, "check_problem", None)
        if check is not None:
            try:
                check(problem)
            except ValueError as e:
                text = str(e)
                text = text if f"'{name}'" in text else f"solver '{name}' does not fit this problem: {text}"
                raise ValueError(text) from None
    if reference is None or reference is True:
        with progress.phase(f"reference optimum of {problem.batch_size} instances"):
            ref: Reference | None = compute_reference(problem)
    elif reference is False:
        ref = None
    else:
        ref = reference
    start = problem.initial_point() if x0 is None else x0
    trajectories = {}
    for name, solver in solvers.items():
        with progress.phase(f"{name}: {iters[name]} iterations on {problem.batch_size} instances"), _eval_mode(solver):
            warm_up(solver, problem, start, min(warmup, iters[name]))
            traj = run(solver, problem, x0=start, max_iter=iters[name], reference=ref, record_every=record_every,
                       tol=stop_at, record_certificate=ref is None)
        trajectories[name] = dataclasses.replace(traj, solver=name)
    learned = frozenset(name for name, s in solvers.items() if is_learned(s))
    return Comparison(trajectories=trajectories, learned=learned, reference=ref, max_iter=iters)


class _eval_mode:
    """Put a module in eval mode for the block and restore its training flags after."""

    def __init__(self, solver: Any):
        self.module = learned_module(solver)
        self.flags: list[tuple[torch.nn.Module, bool]] = []

    def __enter__(self) -> None:
        if self.module is not None:
            self.flags = [(m, m.training) for m in self.module.modules()]
            self.module.eval()

    def __exit__(self, *exc: Any) -> None:
        for m, flag in self.flags:
            m.training = flag


# ----- records on disk ------------------------------------------------------------------------------


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isfinite(v):
            return f"{v:.{FLOAT_DIGITS}g}"
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return str(v)


def write_records_csv(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]],
                      columns: tuple[str, ...] = COLUMNS) -> Path:
    """Write tidy rows as CSV (header line, then one line per row) atomically: the text
    goes to a temporary file in the target folder, which then replaces ``path``."""

    def write(fh: Any) -> None:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow([_cell(r.get(c)) for c in columns])

    return atomic_write(path, write, binary=False)


def trajectories_from_records(rows: Iterable[Mapping[str, Any]]) -> tuple[dict[str, Trajectory], frozenset[str]]:
    """Rebuild trajectories from tidy rows (``records()`` or ``read_records_csv``), in the
    order solvers first appear, and the names of the learned ones. Missing values are
    nan; the last iterates are not in the records, so ``x`` is ``(B, 0)``."""
    by: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["solver"], []).append(r)
    trajectories, learned = {}, set()
    for name, rs in by.items():
        its = sorted({int(r["iteration"]) for r in rs})
        insts = sorted({int(r["instance"]) for r in rs})
        ti = {k: i for i, k in enumerate(its)}
        bi = {k: i for i, k in enumerate(insts)}
        T, B = len(its), len(insts)
        arrays = {k: torch.full((T, B), math.nan, dtype=torch.float64) for k in ("objective", "gap", "certificate")}
        seen = {k: False for k in arrays}
        time = torch.full((T,), math.nan, dtype=torch.float64)
        for r in rs:
            t, b = ti[int(r["iteration"])], bi[int(r["instance"])]
            for k in arrays:
                v = r.get(k)
                if v is not None:
                    arrays[k][t, b] = float(v)
                    seen[k] = True
            if r.get("time") is not None:
                time[t] = float(r["time"])
        if rs[0].get("learned"):
            learned.add(name)
        trajectories[name] = Trajectory(
            solver=name, iterations=torch.tensor(its, dtype=torch.long), objective=arrays["objective"],
            gap=arrays["gap"] if seen["gap"] else None,
            certificate=arrays["certificate"] if seen["certificate"] else None,
            time=time, x=torch.zeros(B, 0, dtype=torch.float64),
        )
    return trajectories, frozenset(learned)


def read_records_csv(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read rows written by ``write_records_csv`` back, with the types of ``records()``:
    iteration and instance int, learned bool, numbers float, empty cells None."""
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            row: dict[str, Any] = {}
            for k, v in r.items():
                if k in ("solver",):
                    row[k] = v
                elif k == "learned":
                    row[k] = v.strip().lower() in ("true", "1")
                elif k in ("iteration", "instance"):
                    row[k] = int(v)
                else:
                    row[k] = None if v == "" else float(v)
            out.append(row)
    return out
