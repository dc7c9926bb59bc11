"""``evaluate_run``: a trained run directory against baselines on fresh instances of its
family (``compare``), with the summary table, the convergence plot and the tidy records
written next to the run. What ``l2o eval DIR`` does.

A baseline is a classical solver name (``l2o list``), a bundled pretrained solver
(``l2o list --pretrained``) or another run directory written by ``l2o train``
(``resolve_baselines``): learned baselines run on the same instances, from the same
start, for the same iterations and on the same clock as the evaluated run, and are
marked learned in the table, the plot, the records and the JSON summary.

Nothing here prints (a progress display on stderr only when the caller asks for one,
``progress``). Every error caused by the input is a ``ValueError`` (or
``OSError``) with one line that names the parameter.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from l2o.evaluation.compare import Comparison, compare
from l2o.evaluation.defaults import default_baselines, eval_seed, evaluation_iterations, trained_horizon
from l2o.evaluation.guarantee import Guarantee, guarantee_table
from l2o.pretrained import bundled_names
from l2o.registry import CLASSICAL, make_solver
from l2o.report.plots import plot_convergence
from l2o.report.table import DEFAULT_TOLERANCES, by_solver, summarize_comparison
from l2o.training import Run
from l2o.utils.jsonable import jsonable
from l2o.utils.progress import Progress, as_progress
from l2o.workflows.load import checkpoint_source, is_bundled, load_checkpoint

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


def _fractions(traj: Any, t: int) -> dict[str, float]:
    """Median, p10 and mean over the instances of 1 - relative gap at recorded index ``t``."""
    frac = (1.0 - traj.gap[t]).to(torch.float64)
    frac = torch.where(torch.isfinite(frac), frac, torch.zeros_like(frac))  # an infeasible point counts as 0
    return {"median": float(frac.quantile(0.5)), "p10": float(frac.quantile(0.1)), "mean": float(frac.mean())}


def sum_rate_summary(comparison: Comparison, problem: Any,
                     horizons: Mapping[str, int] | None = None) -> dict[str, dict[str, Any]] | None:
    """Per solver, for families whose objective is minus a rate (``problem.sum_rate``, the
    MIMO family): the final sum-rate as a fraction of the reference's, 1 - relative gap
    (= R / R* where the gap is relative to |F*|), its median, 10th percentile and mean over
    the instances, the iterations run and the solver's seconds for the whole batch (all its
    iterations). For the solvers of ``horizons`` (name -> trained horizon T, the learned
    ones) also the same fraction and seconds after T iterations (``sum_rate_fraction_at_
    horizon_*``, ``seconds_at_horizon``), where T is within the recorded iterations.
    None for other families or without a reference."""
    if not hasattr(problem, "sum_rate") or comparison.reference is None:
        return None
    out: dict[str, dict[str, Any]] = {}
    for name, traj in comparison.trajectories.items():
        f = _fractions(traj, -1)
        entry: dict[str, Any] = {
            "sum_rate_fraction_median": f["median"], "sum_rate_fraction_p10": f["p10"],
            "sum_rate_fraction_mean": f["mean"], "iterations_run": int(traj.iterations[-1]),
            "seconds_per_batch": float(traj.time[-1]),
        }
        T = (horizons or {}).get(name)
        hit = (traj.iterations == T).nonzero() if T else None
        if hit is not None and hit.numel():
            t = int(hit[0, 0])
            fh = _fractions(traj, t)
            entry.update({"horizon": int(T), "sum_rate_fraction_at_horizon_median": fh["median"],
                          "sum_rate_fraction_at_horizon_p10": fh["p10"],
                          "sum_rate_fraction_at_horizon_mean": fh["mean"], "seconds_at_horizon": float(traj.time[t])})
        out[name] = entry
    return out


def sum_rate_lines(extra: Mapping[str, Mapping[str, Any]], learned: Collection[str] = ()) -> list[str]:
    """The lines ``l2o eval`` prints under its table for ``sum_rate_summary``: per solver
    (learned ones marked) the sum-rate fraction (median, p10, mean) and the seconds for the
    batch at the last iteration, and for learned solvers the same after their training
    horizon T.

    >>> e = {"sum_rate_fraction_median": 0.97, "sum_rate_fraction_p10": 0.9, "sum_rate_fraction_mean": 0.96,
    ...      "iterations_run": 50, "seconds_per_batch": 0.5}
    >>> sum_rate_lines({"wmmse": e})[1]
    '  wmmse  median 0.9700  p10 0.9000  mean 0.9600  0.5 s (50 it.)'
    """
    label = {n: n + (" (learned)" if n in learned else "") for n in extra}
    width = max(len(v) for v in label.values())
    lines = [("sum-rate as a fraction of the reference R* (1 - relative gap) and solver seconds for the whole batch "
              "(after the warm-up):")]
    def fractions(key: str, seconds: float, what: str) -> str:
        return (f"median {e[key + 'median']:.4f}  p10 {e[key + 'p10']:.4f}  mean {e[key + 'mean']:.4f}"
                f"  {seconds:.3g} s ({what})")

    for name, e in extra.items():
        lines.append(f"  {label[name]:<{width}}  "
                     + fractions("sum_rate_fraction_", e["seconds_per_batch"], f"{e['iterations_run']} it."))
        if "horizon" in e:
            lines.append(f"  {'':<{width}}  " + fractions("sum_rate_fraction_at_horizon_", e["seconds_at_horizon"],
                                                          f"{e['horizon']} it. = its training horizon"))
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


# ----- baselines: classical, bundled or another run ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Baseline:
    """One baseline of ``evaluate_run``.

    Attributes:
        name: its name in the comparison, the table and the records: the classical
            solver's name, the bundled name, or ``"<solver> (<run directory name>)"``
            for a run directory (with `` #2``, `` #3`` ... where that is taken).
        solver: the solver object (a classical ``Optimizer`` or a learned ``nn.Module``).
        learned: whether it is a trained solver (a bundle or a run directory).
        source: what was given (the solver name, the bundled name or the directory).
        family: for a learned one, the family it was trained on (its config's); else None.
        horizon: for a learned one, its training horizon; else None.

    >>> (b,) = resolve_baselines(["lgd-ls_32x25"])
    >>> b.name, b.learned, b.family, b.horizon
    ('lgd-ls_32x25', True, 'ls_32x25', 100)
    """

    name: str
    solver: Any
    learned: bool
    source: str
    family: str | None = None
    horizon: int | None = None


def _same_place(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def resolve_baselines(items: Sequence[str | os.PathLike[str]], taken: Collection[str] = (),
                      exclude: str | os.PathLike[str] | None = None) -> list[Baseline]:
    """The baselines named by ``items``: each a classical solver name (``CLASSICAL``), a
    bundled pretrained name (``l2o list --pretrained``) or a run directory written by
    ``l2o train`` (or a bundle folder); learned ones are loaded with
    ``l2o.workflows.load.load_checkpoint``. Names are unique (see ``Baseline.name``) and
    differ from those in ``taken`` (the evaluated solver's). ``exclude`` is the evaluated
    run's directory: naming it again is an error. Whether a baseline fits the problem is
    checked later, on the sampled instances (``check_baseline_fits``).

    Raises:
        ValueError: ``baselines: ...`` for an item that is none of the three, a run that
            cannot be loaded, or the evaluated run itself.

    >>> [(b.name, b.learned) for b in resolve_baselines(["fista", "lista-lasso_50x100"])]
    [('fista', False), ('lista-lasso_50x100', True)]
    """
    names, out = set(taken), []
    bundled: list[str] | None = None
    for item in items:
        text = str(item)
        if text in CLASSICAL:  # a classical name wins over a folder of that name (give that one as ./NAME)
            if text in names:
                raise ValueError(f"baselines names {text!r} twice, or the evaluated solver's own name")
            names.add(text)
            out.append(Baseline(name=text, solver=make_solver(text), learned=False, source=text))
            continue
        if not Path(text).is_dir():
            bundled = bundled_names() if bundled is None else bundled
            if text not in bundled:
                if os.sep in text or text.startswith("."):
                    raise ValueError(f"baselines: run directory '{text}' does not exist")
                raise ValueError(f"baselines: unknown solver {text!r}; valid solvers: {', '.join(sorted(CLASSICAL))}; "
                                 f"or a bundled pretrained name ({', '.join(bundled) or 'none'}) or a run directory "
                                 f"written by l2o train")
        kind, where = checkpoint_source(text)
        try:
            run = load_checkpoint(text)
        except (ValueError, OSError) as e:
            raise ValueError(f"baselines: {text}: {e}") from None
        if exclude is not None and (_same_place(Path(run.directory), Path(exclude)) or str(exclude) == text):
            raise ValueError(f"baselines names {text!r}, the evaluated run itself")
        if isinstance(where, str):  # a bundled name
            base = text
        else:
            base = f"{run.config.solver} ({Path(where).resolve().name})"
        name, k = base, 1
        while name in names:
            k += 1
            name = f"{base} #{k}"
        names.add(name)
        out.append(Baseline(name=name, solver=run.solver, learned=True, source=text, family=run.config.family,
                            horizon=trained_horizon(run.solver, run.config)))
    return out


def check_baseline_fits(baseline: Baseline, problem: Any, family: str) -> None:
    """``ValueError`` (one line, ``baselines: ...``) when ``baseline`` does not fit
    ``problem``, the sampled instances of ``family``: the solver's ``skip`` decides (its
    ``check_problem``, and for a generic learned solver the MIMO family); for a learned
    baseline the line also names the family it was trained on.

    >>> import l2o
    >>> (b,) = resolve_baselines(["wmmse"])
    >>> try:
    ...     check_baseline_fits(b, l2o.make_family("lasso_50x100").sample(2, 0), "lasso_50x100")
    ... except ValueError as e:
    ...     print(str(e)[:50])
    baselines: solver 'wmmse' solves the MIMO sum-rate
    """
    reason = baseline.solver.skip(problem) if hasattr(baseline.solver, "skip") else None
    if reason is None:
        return
    if not baseline.learned:
        raise ValueError(f"baselines: {reason}")
    raise ValueError(f"baselines: {baseline.name} (trained on {baseline.family}) does not fit {family}: {reason}")


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
    """Evaluate a trained run against baselines (classical or learned) on fresh instances.

    Args:
        run_dir: a run directory written by ``l2o.training.train`` / ``l2o train``, or a
            bundled pretrained name (``l2o.workflows.load.load_checkpoint``).
        baselines: each a classical solver name, a bundled pretrained name or a run
            directory (``resolve_baselines``); learned ones join the comparison under
            their ``Baseline.name`` and must fit the sampled instances
            (``check_baseline_fits``). None: ``default_baselines`` of the family (ista,
            fista, fista_restart, adam for nonsmooth problems; gd, nesterov,
            fista_restart, adam, lbfgs for smooth ones; wmmse, mrt, zf, rzf for MIMO),
            less those that do not fit the problem.
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

    Example (a bundled LISTA against FISTA and a bundled ALISTA that does not fit):
        >>> import tempfile
        >>> out = evaluate_run("lista-lasso_50x100", baselines=["fista"], batch=4, iterations=5,
        ...                    out_dir=tempfile.mkdtemp())
        >>> [(s["name"], s["learned"]) for s in out.summary["solvers"]]
        [('lista', True), ('fista', False)]
        >>> try:
        ...     evaluate_run("lista-lasso_50x100", baselines=["alista-lasso_250x500"], batch=4, iterations=5,
        ...                  out_dir=tempfile.mkdtemp())
        ... except ValueError as e:
        ...     print(str(e)[:84])
        baselines: alista-lasso_250x500 (trained on lasso_250x500) does not fit lasso_50x100
    """
    check_positive("batch", batch)
    check_positive("iterations", iterations)
    dev = _device(device)
    run = load_checkpoint(run_dir) if run is None else run
    config = run.config
    name = config.solver
    chosen = None if baselines is None else resolve_baselines(list(baselines), taken=(name,), exclude=run.directory)
    want_dtype = config.training.torch_dtype if dtype is None else dtype
    seed = eval_seed(config.training.seed) if seed is None else int(seed)
    out = make_out_dir(default_out_dir(run_dir, run) if out_dir is None else Path(out_dir))

    phases = as_progress(progress)
    solver = run.solver.to(device=dev)
    with phases.phase(f"sampling {batch} instances of {config.family}"):
        problem = run.family.sample(batch, seed, dtype=want_dtype, device=dev)
    if chosen is None:
        chosen = [Baseline(name=b, solver=make_solver(b), learned=False, source=b)
                  for b in default_baselines(problem, run.family) if fits(make_solver(b), problem)]
    for b in chosen:
        check_baseline_fits(b, problem, config.family)
    names = [b.name for b in chosen]
    solvers = {name: solver, **{b.name: b.solver.to(device=dev) if b.learned else b.solver for b in chosen}}
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
    sources = {name: str(run_dir), **{b.name: b.source for b in chosen if b.learned}}
    for entry in summary["solvers"]:
        if entry["name"] in sources:  # the evaluated run and the learned baselines: where they came from
            entry["source"] = sources[entry["name"]]
    summary["learned_baselines"] = [b.name for b in chosen if b.learned]
    horizons = {name: horizon, **{b.name: b.horizon for b in chosen if b.learned and b.horizon}}
    extra = sum_rate_summary(comparison, problem, horizons)
    notes: list[str] = []
    if extra is not None:
        for entry in summary["solvers"]:
            entry.update(extra.get(entry["name"], {}))
        notes = sum_rate_lines(extra, comparison.learned)
    # an unfinished run is evaluated as it is (its best checkpoint), and says so
    summary["steps_done"], summary["unfinished"] = run.metrics.get("steps_done"), unfinished_note(run)
    return EvalOutcome(comparison=comparison, rows=rows, summary=jsonable(summary), title=title, plot=plot,
                       records=records, notes=notes, guarantee=guarantee)


__all__ = [
    "EVAL_PLOT", "EVAL_RECORDS", "CSV_POINTS", "EvalOutcome", "evaluate_run", "sum_rate_summary", "sum_rate_lines",
    "csv_every", "check_positive", "check_solver_names", "make_out_dir", "fits", "dtype_name", "unfinished_note",
    "default_out_dir", "Baseline", "resolve_baselines", "check_baseline_fits",
]
