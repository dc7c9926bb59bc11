"""Solving the instances of a data file, what ``l2o solve`` does: with a classical solver
(``solve_file``) or with the trained solver of a run directory, the file then read as
the kind of problem the run was trained on (``load_for_checkpoint``).

Nothing here prints; ``solve_file`` returns the solution as the documented output
arrays. Every error caused by the input is a ``ValueError`` (``l2o.io.DataError`` for
the data) with one line that names the parameter; ``names`` maps a parameter to the name
the caller uses for it (the command line passes its flags).
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from l2o.evaluation import SolveResult, solve
from l2o.evaluation.defaults import trained_horizon
from l2o.io import KINDS, DataError, Loaded, load, read_arrays, validate
from l2o.optimizers.base import Optimizer
from l2o.problems import Instances
from l2o.problems.family import ProblemFamily
from l2o.registry import FAMILIES, make_solver
from l2o.training import Run
from l2o.workflows.load import handover, load_checkpoint


def format_families(kind: str) -> list[type[ProblemFamily]]:
    """The registered family classes whose instances are read in the file format ``kind``
    (their declared ``file_format``), in registry order."""
    return [e.factory for e in FAMILIES.values() if getattr(e.factory, "file_format", None) == kind]


def kind_of_family(family: ProblemFamily) -> str:
    """The file format (``l2o.io`` kind) of a family's instances, as the family declares it
    (``family.file_format``): LASSO and least squares -> 'lasso' (least squares with
    lam = ``file_lam`` = 0 unless given), quadratic -> 'qp', logistic (synthetic or
    dataset) -> 'logistic', MIMO -> 'mimo'. ``ValueError`` for a family without one.

    >>> import l2o
    >>> kind_of_family(l2o.make_family("mimo_small")), kind_of_family(l2o.make_family("ls_32x25"))
    ('mimo', 'lasso')
    """
    kind = getattr(family, "file_format", None)
    if kind is None:
        supported = sorted(n for n, e in FAMILIES.items() if getattr(e.factory, "file_format", None) is not None)
        raise ValueError(f"the run's problem family {family_name(family)!r} has no file format for `l2o solve`; "
                         f"families with one: {', '.join(supported)}")
    return kind


def family_name(family: Any) -> str:
    """``family.name`` (the class name for a family without one), for messages."""
    return getattr(family, "name", type(family).__name__)


def default_solver(kind: str, instances: Instances) -> str:
    """The solver ``l2o solve -p KIND`` uses without ``--solver``: what the families read
    in that format declare for these instances (``solver_for``: qp 'apgd' with a box,
    else 'newton'; lasso 'fista_restart'; logistic 'newton' for l2, 'fista_restart' for
    l1; mimo 'wmmse')."""
    families = format_families(kind)
    if not families:
        raise DataError(f"unknown problem {kind!r}; expected one of {', '.join(KINDS)}")
    return families[0].solver_for(instances)


def check_every_for(solver: Any) -> int:
    """How often ``solve`` checks the certificate: every iteration for solvers with
    Hessian steps (few, expensive iterations), else every 10."""
    return 1 if getattr(solver, "needs_hessian", False) else 10


def solution_arrays(result: SolveResult, loaded: Loaded, solver: str) -> dict[str, np.ndarray]:
    """The documented output keys of ``l2o solve``; per-instance arrays lose the batch
    axis for one instance. MIMO (``loaded.kind == "mimo"``) adds ``V`` (the complex
    precoders) and ``sum_rate`` (nats) next to the packed x."""
    pick = (lambda a: a) if loaded.batched else (lambda a: a[0])  # noqa: E731
    extra = {}
    if loaded.kind == "mimo":
        inst = loaded.instances
        x64 = result.x.to(torch.float64)
        extra = {"V": pick(inst.unpack(x64).cpu().numpy()), "sum_rate": pick(inst.sum_rate(x64).cpu().numpy())}
    return {
        **extra,
        "x": pick(result.x.cpu().numpy()),
        "objective": pick(result.objective.cpu().numpy()),
        "iterations": pick(result.iterations.cpu().numpy()),
        "converged": pick(result.converged.cpu().numpy()),
        "certificate": pick(result.certificate.cpu().numpy()),
        "certificate_name": np.array(result.certificate_name),
        "solver": np.array(solver),
        "seconds": np.array(result.seconds),
    }


class TrainingMismatchWarning(UserWarning):
    """A trained solver applied to data unlike the instances it was trained on (another
    dimension, or a smooth problem for a solver trained on nonsmooth ones, ...)."""


def _kind_of_problem(p: Instances) -> str:
    if p.is_constrained:
        return "box-constrained"
    return "nonsmooth (penalized)" if p.has_nonsmooth else "smooth"


def training_mismatch(family: ProblemFamily, instances: Instances, solver: str = "solver") -> list[str]:
    """How ``instances`` differ from those of ``family`` (the family a solver named ``solver``
    was trained on), one line each, empty when they are alike: the dimension n and the
    kind of problem (smooth, nonsmooth, box-constrained). Compared with one instance
    sampled from the family (seed 0).

    >>> import l2o
    >>> fam = l2o.make_family("lasso", m=10, n=20, nnz=3)
    >>> training_mismatch(fam, fam.sample(2, 1))
    []
    >>> training_mismatch(fam, l2o.make_family("lasso", m=10, n=30, nnz=3).sample(1, 0), "lfista")[0][:74]
    "the checkpoint's lfista was trained on lasso instances of dimension n = 20"
    """
    trained = family.sample(1, 0)
    what = f"the checkpoint's {solver} was trained on {family_name(family)} instances"
    out = []
    if trained.dim != instances.dim:
        out.append(f"{what} of dimension n = {trained.dim}; this data has n = {instances.dim}: a learned solver may "
                   f"not transfer to another dimension")
    if _kind_of_problem(trained) != _kind_of_problem(instances):
        out.append(f"{what}, which are {_kind_of_problem(trained)}; this data is {_kind_of_problem(instances)}: a "
                   f"learned solver may not transfer to another kind of problem")
    return out


@dataclasses.dataclass
class CheckpointProblem:
    """A data file read for a trained solver: ``loaded`` (the validated batch, float64),
    ``kind`` (the io kind: 'qp', 'lasso', 'logistic', 'mimo'), ``solver`` (the learned
    module, eval mode), ``name`` (the learned solver's name), ``run`` (the loaded run) and
    ``notes`` (``training_mismatch``: how the data differ from the training instances)."""

    loaded: Loaded
    kind: str
    solver: Any
    name: str
    run: Run
    notes: list[str] = dataclasses.field(default_factory=list)


def load_for_checkpoint(
    checkpoint: str | os.PathLike[str],
    data: str | os.PathLike[str],
    problem: str | None = None,
    lam: float | None = None,
    penalty: str | None = None,
    run: Run | None = None,
    names: Mapping[str, str] | None = None,
) -> CheckpointProblem:
    """Read ``data`` as the kind of problem the run in ``checkpoint`` (a run directory
    or a bundled pretrained name, ``l2o.workflows.load.load_checkpoint``) was trained on.

    The kind comes from the run's family (``kind_of_family``); ``problem``, when given,
    must agree with it. A family that declares ``file_lam`` (least squares: 0) reads
    files without ``lam`` with that value unless one is given. The learned solver's own
    check runs here, so data a fixed-dimension solver cannot take (LISTA / ALISTA: their
    dictionary A) is one line, with the training dimension; data of another dimension or
    kind than the training instances that the solver accepts gives a
    ``TrainingMismatchWarning`` per difference (also in ``notes``).
    ``names``: how messages call the parameters ``problem``, ``lam`` and ``penalty``.
    """
    n = dict(names or {})
    if problem is not None and problem not in KINDS:
        raise DataError(f"unknown problem {problem!r}; expected one of {', '.join(KINDS)}")
    run = load_checkpoint(checkpoint) if run is None else run
    kind = kind_of_family(run.family)
    if problem is not None and problem != kind:
        p = n.get("problem", "problem")
        raise ValueError(f"{p} {problem} does not match the checkpoint: its solver was trained on the "
                         f"{family_name(run.family)} family, which reads {p} {kind} files")
    arrays = read_arrays(data, kind)
    file_lam = getattr(run.family, "file_lam", None)
    if file_lam is not None and lam is None and "lam" not in arrays:
        lam = file_lam
    loaded = validate(kind, arrays, lam=lam, penalty=penalty, source=f"'{data}'",
                      matlab=Path(data).suffix.lower() == ".mat", names=n)
    solver = run.solver
    notes = training_mismatch(run.family, loaded.instances, run.config.solver)
    try:
        solver.check_problem(loaded.instances)
    except ValueError as e:
        why = f" ({'; '.join(notes)})" if notes else ""
        raise ValueError(f"the checkpoint's solver cannot solve this data: {' '.join(str(e).split())}{why}") from None
    for note in notes:
        warnings.warn(note, TrainingMismatchWarning, stacklevel=2)
    return CheckpointProblem(loaded=loaded, kind=kind, solver=solver, name=run.config.solver, run=run, notes=notes)


@dataclasses.dataclass
class FileSolution:
    """What ``solve_file`` produced: the validated input (``loaded``, its ``kind``), the
    solver's name, the ``SolveResult`` and the output ``arrays`` (``solution_arrays``)."""

    loaded: Loaded
    kind: str
    solver: str
    result: SolveResult
    arrays: dict[str, np.ndarray]
    #: The dtype the iterates were computed in ("float32" or "float64").
    iterate_dtype: str = "float64"
    #: With a checkpoint: how the data differ from the training instances (``training_mismatch``).
    notes: list[str] = dataclasses.field(default_factory=list)


#: ``iterate_dtype="auto"`` computes float32 iterates for these kinds of problem with a
#: first-order classical solver on float64 data; the certificate stays in float64, so the
#: answer is certified to the same tolerance (instances that stall in float32 continue in
#: float64). About 1.6x faster per iteration on CPU (``benchmarks/results/solve.md``).
FLOAT32_ITERATE_KINDS = ("lasso", "qp", "logistic")
ITERATE_DTYPES = ("auto", "float32", "float64")


def iterate_dtype_for(choice: str, kind: str, method: Optimizer, instances: Instances,
                      trained: bool) -> torch.dtype:
    """The dtype of the iterates of ``solve_file`` for ``choice`` in ``ITERATE_DTYPES``."""
    if choice not in ITERATE_DTYPES:
        raise ValueError(f"iterate_dtype is {choice!r}; expected one of {', '.join(ITERATE_DTYPES)}")
    if choice == "float32":
        return torch.float32
    if choice == "float64":
        return instances.dtype
    first_order = not method.needs_hessian and method.float32_iterates
    if (not trained and first_order and kind in FLOAT32_ITERATE_KINDS and instances.dtype == torch.float64
            and instances.device.type == "cpu"):
        return torch.float32
    return instances.dtype


def check_solve_options(problem: str | None, checkpoint: Any, solver: str | None, tol: float, max_iter: int) -> None:
    """``ValueError`` naming the parameter for a bad combination or value."""
    if problem is None and checkpoint is None:
        raise ValueError("problem is required without checkpoint (a trained run directory)")
    if problem is not None and problem not in KINDS:
        raise DataError(f"unknown problem {problem!r}; expected one of {', '.join(KINDS)}")
    if checkpoint is not None and solver is not None:
        raise ValueError("solver and checkpoint exclude each other: the checkpoint's trained solver solves")
    if not (tol > 0 and math.isfinite(tol)):
        raise ValueError(f"tol is {tol}; expected a number > 0")
    if max_iter < 0:
        raise ValueError(f"max_iter is {max_iter}; expected an integer >= 0")


def solve_file(
    data: str | os.PathLike[str],
    problem: str | None = None,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    solver: str | None = None,
    tol: float = 1e-8,
    max_iter: int = 10_000,
    lam: float | None = None,
    penalty: str | None = None,
    names: Mapping[str, str] | None = None,
    iterate_dtype: str = "auto",
    device: str | None = None,
) -> FileSolution:
    """Solve the instances in ``data`` to a certificate <= ``tol``.

    Args:
        data: a problem file (``l2o.io``).
        problem: its kind (``l2o.io.KINDS``); required without ``checkpoint``.
        checkpoint: a run directory or a bundled pretrained name whose trained solver
            solves (``load_for_checkpoint``), handing over to the family's fallback past
            its training horizon (``l2o.workflows.load.handover``); excludes ``solver``.
        solver: a registered solver name (None: ``default_solver`` of the kind).
        tol, max_iter: of ``l2o.solve``; the certificate is checked every
            ``check_every_for(solver)`` iterations.
        lam, penalty: override (or supply) the file's ``lam`` / ``penalty``.
        names: how messages call the parameters ``problem``, ``lam``, ``penalty``.
        iterate_dtype: "auto" (float32 iterates for a first-order classical solver on
            float64 LASSO, QP or logistic data, see ``FLOAT32_ITERATE_KINDS``), "float32"
            or "float64"; the certificate is evaluated in float64 either way.
        device: solve on this device ("cpu", "cuda"; default: the CPU); the result comes back
            to the CPU.
    """
    check_solve_options(problem, checkpoint, solver, tol, max_iter)
    method: Optimizer
    notes: list[str] = []
    if checkpoint is not None:
        trained = load_for_checkpoint(checkpoint, data, problem, lam=lam, penalty=penalty, names=names)
        loaded, kind, name, method, notes = trained.loaded, trained.kind, trained.name, trained.solver, trained.notes
        method = handover(method, trained.run.family, trained_horizon(trained.solver, trained.run.config))
    else:
        assert problem is not None  # check_solve_options
        kind = problem
        if solver is not None:
            make_solver(solver)  # an unknown name: one line with the valid names, before reading the file
        loaded = load(kind, data, lam=lam, penalty=penalty, names=names)
        name = solver or default_solver(kind, loaded.instances)
        method = make_solver(name)
        method.check_problem(loaded.instances)
    dtype = iterate_dtype_for(iterate_dtype, kind, method, loaded.instances, trained=checkpoint is not None)
    result = solve(method, loaded.instances, tol=tol, max_iter=max_iter, check_every=check_every_for(method),
                   iterate_dtype=dtype, device=device)
    if result.x.device.type != "cpu":  # the solution arrays and the summary are read on the host
        result = dataclasses.replace(result, **{f: getattr(result, f).cpu() for f in
                                                ("x", "objective", "certificate", "iterations", "converged")})
    return FileSolution(loaded=loaded, kind=kind, solver=name, result=result,
                        arrays=solution_arrays(result, loaded, name), iterate_dtype=str(dtype).removeprefix("torch."),
                        notes=notes)


__all__ = [
    "format_families", "kind_of_family", "family_name", "default_solver", "check_every_for", "solution_arrays",
    "CheckpointProblem", "load_for_checkpoint", "TrainingMismatchWarning", "training_mismatch", "FileSolution",
    "FLOAT32_ITERATE_KINDS", "ITERATE_DTYPES", "iterate_dtype_for", "check_solve_options", "solve_file",
]
