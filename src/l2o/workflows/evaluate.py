"""``evaluate_run``: a trained run directory against classical baselines on fresh
instances of its family (``compare``), with the summary table, the convergence plot and
the tidy records written next to the run. What ``l2o eval DIR`` does.

Nothing here prints (a progress display on stderr only when the caller asks for one,
``progress``). Every error caused by the input is a ``ValueError`` (or
``OSError``) with one line that names the parameter.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from l2o.evaluation.compare import Comparison, compare
from l2o.evaluation.defaults import default_baselines, eval_seed, evaluation_iterations, trained_horizon
from l2o.evaluation.guarantee import Guarantee, guarantee_table
from l2o.registry import CLASSICAL, make_solver
from l2o.report.plots import plot_convergence
from l2o.report.table import DEFAULT_TOLERANCES, by_solver, summarize_comparison
from l2o.training import Run
from l2o.utils.jsonable import jsonable
from l2o.utils.progress import Progress, as_progress
from l2o.workflows.load import is_bundled, load_checkpoint

#: Files that ``evaluate_run`` writes (into the run directory unless told otherwise).
EVAL_PLOT = "eval_convergence.png"
EVAL_RECORDS = "eval_records.csv"
#: The records CSV keeps about this many recorded iterations per solver (evenly spaced,
#: the first and last always), so that a file of 256 instances stays a few MB.
CSV_POINTS = 100


# ----- helpers ---------------------------------------------------------------------------------------


def check_positive(name: str, value: int | None) -> None:
    """``ValueError`` naming the parameter ``name`` unless ``value`` is None or >= 1."""
    if value is not None and value < 1:
        raise ValueError(f"{name} is {value}; expected an integer >= 1")


def check_solver_names(name: str, names: Sequence[str]) -> None:
    """``ValueError`` naming the parameter ``name`` for a name that is not a registered solver."""
    for b in names:
        if b not in CLASSICAL:
            raise ValueError(f"{name}: unknown solver {b!r}; valid solvers: {', '.join(sorted(CLASSICAL))}")


def dtype_name(dtype: torch.dtype) -> str:
    """torch.float64 -> 'float64'."""
    return str(dtype).replace("torch.", "")


def csv_every(iterations: int, points: int = CSV_POINTS) -> int:
    """Thinning of the records CSV: every how many recorded iterations a row is kept."""
    return max(1, math.ceil(iterations / points))


def make_out_dir(path: Path) -> Path:
    """``path`` as an existing directory (created with its parents)."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"output directory '{path}' exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return path


def fits(solver: Any, problem: Any) -> bool:
    """Whether ``solver.check_problem(problem)`` accepts the problem."""
    try:
        solver.check_problem(problem)
    except ValueError:
        return False
    return True


def sum_rate_summary(comparison: Comparison, problem: Any) -> dict[str, dict[str, Any]] | None:
    """Per solver, for families whose objective is minus a rate (``problem.sum_rate``, the
    MIMO family): the final sum-rate as a fraction of the reference's, 1 - relative gap
    (= R / R* where the gap is relative to |F*|), its median, 10th percentile and mean over
    the instances, and the solver's seconds for the whole batch (all its iterations).
    None for other families or without a reference."""
    if not hasattr(problem, "sum_rate") or comparison.reference is None:
        return None
    out: dict[str, dict[str, Any]] = {}
    for name, traj in comparison.trajectories.items():
        frac = (1.0 - traj.gap[-1]).to(torch.float64)
        frac = torch.where(torch.isfinite(frac), frac, torch.zeros_like(frac))  # an infeasible point counts as 0
        out[name] = {
            "sum_rate_fraction_median": float(frac.quantile(0.5)), "sum_rate_fraction_p10": float(frac.quantile(0.1)),
            "sum_rate_fraction_mean": float(frac.mean()), "seconds_per_batch": float(traj.time[-1]),
        }
    return out


def sum_rate_lines(extra: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The lines ``l2o eval`` prints under its table for ``sum_rate_summary``."""
    width = max(len(n) for n in extra)
    lines = [("sum-rate as a fraction of the reference R* (1 - relative gap) at the last iteration, and solver seconds "
              "for the batch:")]
    for name, e in extra.items():
        lines.append(f"  {name:<{width}}  median {e['sum_rate_fraction_median']:.4f}"
                     f"  p10 {e['sum_rate_fraction_p10']:.4f}"
                     f"  mean {e['sum_rate_fraction_mean']:.4f}  {e['seconds_per_batch']:.3g} s")
    return lines


def _device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"device {device!r} is not a torch device such as 'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} but CUDA is not available")
    return dev


def unfinished_note(run: Run) -> str | None:
    """For a run that did not finish its training (killed, or still running): how many of
    its steps it has and which weights are evaluated; None for a finished run."""
    m = run.metrics
    if m.get("finished", True) or not isinstance(m.get("steps_done"), int):
        return None
    return (f"run has {m['steps_done']} of {m.get('steps', run.config.training.steps)} steps (unfinished); "
            f"evaluating its best checkpoint (step {m.get('best_step', '?')})")


def _short_title(family: str, learned: str | None, batch: int, K: int, horizon: int | None) -> str:
    head = f"{family}: {batch} fresh instances, {K} iterations"
    if learned is None or not horizon:
        return head
    return f"{head} ({K / horizon:g} x the training horizon {horizon} of {learned})"


def default_out_dir(run_dir: str | os.PathLike[str], run: Run) -> Path:
    """Where ``l2o eval`` writes by default: the run directory, or for a bundled solver
    (installed with the package, not to be written into) ``l2o-eval-<name>``."""
    return Path(f"l2o-eval-{run.directory.name}") if is_bundled(run) else Path(run_dir)


# ----- l2o eval ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class EvalOutcome:
    """What ``evaluate_run`` produced.

    Attributes:
        comparison: the trajectories (learned solver first, then the baselines).
        rows: the summary rows (``l2o.report.table.summarize``).
        summary: a JSON-ready dict (run, family, batch, seed, iterations, files, solvers;
            for the MIMO family each solver also has sum_rate_fraction_median / _p10 /
            _mean and seconds_per_batch, see ``sum_rate_summary``).
        title: a one-line description for the table.
        plot, records: the files written.
        notes: extra lines to print under the table (the MIMO sum-rate fractions).
        guarantee: the guarantee table (``l2o.evaluation.guarantee``: per solver, tolerance
            and budget, the failure fraction and its 99% bound for the family).
    """

    comparison: Comparison
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    title: str
    plot: Path
    records: Path
    notes: list[str] = dataclasses.field(default_factory=list)
    guarantee: Guarantee | None = None


def evaluate_run(
    run_dir: str | os.PathLike[str],
    baselines: Sequence[str] | None = None,
    iterations: int | None = None,
    batch: int = 256,
    seed: int | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
    out_dir: str | os.PathLike[str] | None = None,
    tolerances: Sequence[float] = DEFAULT_TOLERANCES,
    run: Run | None = None,
    progress: Progress | bool | None = None,
) -> EvalOutcome:
    """Evaluate a trained run against classical baselines on fresh instances.

    Args:
        run_dir: a run directory written by ``l2o.training.train`` / ``l2o train``, or a
            bundled pretrained name (``l2o.workflows.load.load_checkpoint``).
        baselines: classical solver names (None: ``default_baselines`` of the family:
            ista, fista, fista_restart, adam for nonsmooth problems; gd, nesterov,
            fista_restart, adam, lbfgs for smooth ones; wmmse, mrt, zf, rzf for MIMO,
            less those that do not fit the problem).
        iterations: iterations of every solver (None: ``HORIZON_FACTOR`` (10) x the
            learned solver's horizon for all of them, the evaluation rule of l2o).
        batch: number of fresh instances.
        seed: of the instances (None: ``eval_seed`` of the training seed, so never the
            training or validation data).
        dtype: of the instances (None: the run's training dtype).
        device: torch device of the evaluation.
        out_dir: where the plot and the records go (None: the run directory; for a
            bundled solver ``l2o-eval-<name>`` in the working directory).
        run: an already loaded ``l2o.training.Run`` (skips ``load_run``).
        progress: reports the phases (sampling, the reference, each solver, the plot):
            a ``l2o.utils.progress.Progress``, True (``terminal_progress()``: on stderr
            when it is a terminal) or None / False (silent).

    Raises:
        ValueError: an unreadable run, a bad argument, a baseline that does not fit the
            problem (one line naming the parameter).
    """
    check_positive("batch", batch)
    check_positive("iterations", iterations)
    dev = _device(device)
    run = load_checkpoint(run_dir) if run is None else run
    config = run.config
    name = config.solver
    names = list(baselines) if baselines is not None else None
    if names is not None:
        check_solver_names("baselines", names)
        if name in names:
            raise ValueError(f"baselines names {name!r}, the learned solver's own name")
    want_dtype = config.training.torch_dtype if dtype is None else dtype
    seed = eval_seed(config.training.seed) if seed is None else int(seed)
    out = make_out_dir(default_out_dir(run_dir, run) if out_dir is None else Path(out_dir))

    phases = as_progress(progress)
    solver = run.solver.to(device=dev)
    with phases.phase(f"sampling {batch} instances of {config.family}"):
        problem = run.family.sample(batch, seed, dtype=want_dtype, device=dev)
    if names is None:
        names = [b for b in default_baselines(problem, run.family) if fits(make_solver(b), problem)]
    solvers = {name: solver, **{b: make_solver(b) for b in names}}
    for b in names:
        try:
            solvers[b].check_problem(problem)
        except ValueError as e:
            raise ValueError(f"baselines: {e}") from None
    horizon = trained_horizon(solver, config)
    max_iter: int | dict[str, int] = iterations if iterations is not None else evaluation_iterations(horizon)
    comparison = compare(solvers, problem, max_iter=max_iter, progress=phases)
    rows = summarize_comparison(comparison, tolerances)
    K = max(comparison.max_iter.values())
    title = (f"{name} vs {', '.join(names) or 'no baselines'} on {config.family}: {batch} fresh instances "
             f"(seed {seed}), {K} iterations = {K / horizon:g} x the training horizon {horizon}")
    with phases.phase(f"writing {EVAL_PLOT} and {EVAL_RECORDS}"):
        plot = plot_convergence(comparison, out / EVAL_PLOT,
                                title=_short_title(config.family, name, batch, K, horizon), tolerances=tolerances)
        records = comparison.to_csv(out / EVAL_RECORDS, every=csv_every(K))
    guarantee = guarantee_table(comparison, tolerances)
    summary = {
        "run": str(run_dir), "solver": name, "family": config.family, "batch": batch, "seed": seed,
        "dtype": dtype_name(want_dtype), "device": str(dev), "horizon": horizon,
        "iterations": comparison.max_iter, "baselines": names,
        "reference": comparison.reference.method if comparison.reference is not None else None,
        "tolerances": list(tolerances), "plot": str(plot), "records": str(records),
        "solvers": by_solver(rows), "guarantee": guarantee.to_json(),
    }
    extra = sum_rate_summary(comparison, problem)
    notes: list[str] = []
    if extra is not None:
        for entry in summary["solvers"]:
            entry.update(extra.get(entry["name"], {}))
        notes = sum_rate_lines(extra)
    # an unfinished run is evaluated as it is (its best checkpoint), and says so
    summary["steps_done"], summary["unfinished"] = run.metrics.get("steps_done"), unfinished_note(run)
    return EvalOutcome(comparison=comparison, rows=rows, summary=jsonable(summary), title=title, plot=plot,
                       records=records, notes=notes, guarantee=guarantee)


__all__ = [
    "EVAL_PLOT", "EVAL_RECORDS", "CSV_POINTS", "EvalOutcome", "evaluate_run", "sum_rate_summary", "sum_rate_lines",
    "csv_every", "check_positive", "check_solver_names", "make_out_dir", "fits", "dtype_name", "unfinished_note",
    "default_out_dir",
]
