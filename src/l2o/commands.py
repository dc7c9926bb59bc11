"""What ``l2o eval``, ``l2o solve --checkpoint`` and ``l2o demo`` do, as plain functions.

The command line (``l2o.cli``) parses options and prints; the work is here, so that
it can be called from Python and tested without a terminal:

* ``evaluate_run``: a trained run directory against classical baselines on fresh
  instances of its family (``compare``), with the summary table, the convergence
  plot and the tidy records written next to the run.
* ``load_for_checkpoint``: a user's data file read as the kind of problem a trained
  solver was trained on, checked against the solver.
* ``run_demo``: the quickstart's main job: meta-train LFISTA on the LASSO preset with
  a built-in config (``DEMO_CONFIG``), then compare it with ISTA, FISTA, FISTA with
  restart and Adam on fresh instances; ``train=False`` compares the classical
  solvers only.

Every error caused by the input is a ``ValueError`` (or ``OSError``) with a one-line
message, which the CLI prints as ``error: ...`` with exit status 2.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from l2o.evaluation.compare import Comparison, compare, thin
from l2o.io import KINDS, DataError, Loaded, read_arrays, validate
from l2o.registry import PRESETS, SOLVERS, make_solver
from l2o.report.table import DEFAULT_TOLERANCES, summarize_comparison

#: Files that ``evaluate_run`` writes (into the run directory unless told otherwise).
EVAL_PLOT = "eval_convergence.png"
EVAL_RECORDS = "eval_records.csv"
#: Files of ``run_demo`` in its output directory (the trained run goes to ``run/``).
DEMO_PLOT = "convergence.png"
DEMO_RECORDS = "records.csv"
DEMO_RUN = "run"
DEMO_SOLVERS = ("ista", "fista", "fista_restart", "adam")
#: The records CSV keeps about this many recorded iterations per solver (evenly spaced,
#: the first and last always), so that a file of 256 instances stays a few MB.
CSV_POINTS = 100

#: Baselines of ``l2o eval`` when none are named: by the kind of problem.
BASELINES_NONSMOOTH = ("ista", "fista", "fista_restart", "adam")
BASELINES_SMOOTH = ("gd", "nesterov", "fista_restart", "adam", "lbfgs")
#: ... and of the MIMO sum-rate family: WMMSE and the linear precoders (ZF is left out
#: where it does not fit, M < I d).
BASELINES_MIMO = ("wmmse", "mrt", "zf", "rzf")

#: The demo's built-in training run: LFISTA (``l2o.learned.lfista``, the same settings as
#: ``examples/lfista_lasso.toml``, checked by a test) on the LASSO preset: FISTA with
#: restart whose step, threshold and momentum scalars are learned for 40 iterations
#: (120 numbers), so one iteration costs what a FISTA step costs and the comparison in
#: seconds is the one a user cares about. 300 meta-steps of full backpropagation
#: through the 40 iterations, in float64, take well under a minute on two CPU cores.
DEMO_PRESET = "lasso_250x500"
DEMO_CONFIG: dict[str, Any] = {
    "problem": {"family": DEMO_PRESET},
    "solver": {"name": "lfista", "max_step": 2.5, "threshold": True, "guard": 1.2, "restart": True},
    "training": {
        "steps": 300, "batch_size": 64, "unroll": 40, "segment": 40, "loss": "log_gap", "log_eps": 1e-5,
        "meta_optimizer": "adam", "lr": 3e-2, "schedule": "cosine", "min_lr": 1e-3, "train_set_size": 2048,
        "val_batch": 1024, "val_every": 20, "checkpoint_every": 100, "seed": 0, "dtype": "float64",
        "gradient_checkpointing": False,
    },
}


# ----- helpers ---------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """JSON values: tensors and arrays -> lists, numpy scalars -> numbers, nan/inf -> None,
    paths -> strings; dicts and lists recursively."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value] if value.ndim else plain(value.item())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def parse_names(text: str | None, option: str = "--baselines") -> list[str] | None:
    """'fista, ista' -> ['fista', 'ista'] (checked against the solver registry, duplicates
    dropped); None -> None; '' or 'none' -> []."""
    if text is None:
        return None
    if text.strip().lower() in ("", "none"):
        return []
    names: list[str] = []
    for name in (n.strip() for n in text.split(",")):
        if not name:
            raise ValueError(f"{option} {text!r} has an empty name; expected comma-separated solver names")
        if name not in SOLVERS:
            raise ValueError(f"{option}: unknown solver {name!r}; valid solvers: {', '.join(sorted(SOLVERS))}")
        if name not in names:
            names.append(name)
    return names


def default_baselines(has_nonsmooth: bool, family: Any = None) -> tuple[str, ...]:
    """The baselines of ``l2o eval``: ``BASELINES_MIMO`` for the MIMO sum-rate family
    (``family.name == "mimo"``), else by smoothness."""
    if getattr(family, "name", None) == "mimo":
        return BASELINES_MIMO
    return BASELINES_NONSMOOTH if has_nonsmooth else BASELINES_SMOOTH


def _fits(solver: Any, problem: Any) -> bool:
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
        lines.append(f"  {name:<{width}}  median {e['sum_rate_fraction_median']:.4f}  p10 {e['sum_rate_fraction_p10']:.4f}"
                     f"  mean {e['sum_rate_fraction_mean']:.4f}  {e['seconds_per_batch']:.3g} s")
    return lines


def eval_seed(training_seed: int) -> int:
    """The default seed of evaluation instances: derived from the training seed but
    distinct from every stream training draws from (those come from
    ``SeedSequence(seed)``; this is ``SeedSequence([seed, 'eval'])``)."""
    tag = int.from_bytes(b"eval", "big")
    return int(np.random.SeedSequence([int(training_seed), tag]).generate_state(1, dtype=np.uint32)[0])


def csv_every(iterations: int, points: int = CSV_POINTS) -> int:
    """Thinning of the records CSV: every how many recorded iterations a row is kept."""
    return max(1, math.ceil(iterations / points))


def check_positive_option(option: str, value: int | None) -> None:
    """``ValueError`` naming the CLI ``option`` unless ``value`` is None or >= 1."""
    if value is not None and value < 1:
        raise ValueError(f"{option} is {value}; expected an integer >= 1")


def parse_dtype_option(name: str | None) -> torch.dtype | None:
    """A ``--dtype`` value ("float32" / "float64" / None) as a torch dtype."""
    if name is None:
        return None
    from l2o.training.config import torch_dtype

    try:
        return torch_dtype(name)
    except ValueError:
        raise ValueError(f"--dtype is {name!r}; expected 'float32' or 'float64'") from None


def _out_dir(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise ValueError(f"output directory '{path}' exists and is not a directory")
    path.mkdir(parents=True, exist_ok=True)
    return path


def trained_horizon(solver: Any, config: Any) -> int:
    """The horizon a learned solver was trained for (its own, else the config's unroll)."""
    h = getattr(solver, "horizon", None)
    return int(h) if h is not None else int(config.training.unroll)


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
    """

    comparison: Comparison
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    title: str
    plot: Path
    records: Path
    notes: list[str] = dataclasses.field(default_factory=list)


def evaluate_run(
    run_dir: str | os.PathLike[str],
    baselines: Sequence[str] | None = None,
    iterations: int | None = None,
    batch: int = 256,
    seed: int | None = None,
    dtype: str | None = None,
    device: str = "cpu",
    out_dir: str | os.PathLike[str] | None = None,
    tolerances: Sequence[float] = DEFAULT_TOLERANCES,
    run: Any = None,
) -> EvalOutcome:
    """Evaluate a trained run against classical baselines on fresh instances.

    Args:
        run_dir: a run directory written by ``l2o.training.train`` / ``l2o train``.
        baselines: classical solver names (None: ``default_baselines`` of the family:
            ista, fista, fista_restart, adam for nonsmooth problems; gd, nesterov,
            fista_restart, adam, lbfgs for smooth ones; wmmse, mrt, zf, rzf for MIMO,
            less those that do not fit the problem).
        iterations: iterations of every solver (None: 10 x the learned solver's
            horizon for all of them, the evaluation rule of l2o).
        batch: number of fresh instances.
        seed: of the instances (None: ``eval_seed`` of the training seed, so never the
            training or validation data).
        dtype: "float32" or "float64" of the instances (None: the run's training dtype).
        device: torch device of the evaluation.
        out_dir: where the plot and the records go (None: the run directory).
        run: an already loaded ``l2o.training.Run`` (skips ``load_run``).

    Raises:
        ValueError: an unreadable run, a bad option, a baseline that does not fit the
            problem (one line naming it).
    """
    from l2o.report.plots import plot_convergence
    from l2o.training import load_run

    check_positive_option("--batch", batch)
    check_positive_option("--iterations", iterations)
    want_dtype = parse_dtype_option(dtype)
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {device!r} is not a torch device such as 'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device!r} but CUDA is not available")
    run = load_run(run_dir) if run is None else run
    config = run.config
    name = config.solver
    names = list(baselines) if baselines is not None else None
    if names is not None:
        for b in names:
            if b not in SOLVERS:
                raise ValueError(f"--baselines: unknown solver {b!r}; valid solvers: {', '.join(sorted(SOLVERS))}")
        if name in names:
            raise ValueError(f"--baselines names {name!r}, the learned solver's own name")
    if want_dtype is None:
        want_dtype = config.training.torch_dtype
    seed = eval_seed(config.training.seed) if seed is None else int(seed)
    out = _out_dir(Path(run_dir) if out_dir is None else Path(out_dir))

    solver = run.solver.to(device=dev)
    problem = run.family.sample(batch, seed, dtype=want_dtype, device=dev)
    if names is None:
        names = [b for b in default_baselines(problem.has_nonsmooth, run.family) if _fits(make_solver(b), problem)]
    solvers = {name: solver, **{b: make_solver(b) for b in names}}
    for b in names:
        try:
            solvers[b].check_problem(problem)
        except ValueError as e:
            raise ValueError(f"--baselines: {e}") from None
    horizon = trained_horizon(solver, config)
    max_iter: int | dict[str, int] = iterations if iterations is not None else 10 * horizon
    comparison = compare(solvers, problem, max_iter=max_iter)
    rows = summarize_comparison(comparison, tolerances)
    K = max(comparison.max_iter.values())
    title = (f"{name} vs {', '.join(names) or 'no baselines'} on {config.family}: {batch} fresh instances "
             f"(seed {seed}), {K} iterations = {K / horizon:g} x the training horizon {horizon}")
    plot = plot_convergence(comparison, out / EVAL_PLOT, title=_short_title(config.family, name, batch, K, horizon),
                            tolerances=tolerances)
    records = comparison.to_csv(out / EVAL_RECORDS, every=csv_every(K))
    summary = {
        "run": str(run_dir), "solver": name, "family": config.family, "batch": batch, "seed": seed,
        "dtype": str(want_dtype).replace("torch.", ""), "device": str(dev), "horizon": horizon,
        "iterations": comparison.max_iter, "baselines": names,
        "reference": comparison.reference.method if comparison.reference is not None else None,
        "tolerances": list(tolerances), "plot": str(plot), "records": str(records),
        "solvers": _by_solver(rows),
    }
    extra = sum_rate_summary(comparison, problem)
    notes: list[str] = []
    if extra is not None:
        for entry in summary["solvers"]:
            entry.update(extra.get(entry["name"], {}))
        notes = sum_rate_lines(extra)
    return EvalOutcome(comparison=comparison, rows=rows, summary=plain(summary), title=title, plot=plot, records=records,
                       notes=notes)


def _short_title(family: str, learned: str | None, batch: int, K: int, horizon: int | None) -> str:
    head = f"{family}: {batch} fresh instances, {K} iterations"
    if learned is None or not horizon:
        return head
    return f"{head} ({K / horizon:g} x the training horizon {horizon} of {learned})"


def _by_solver(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    from l2o.report.table import by_solver

    return by_solver(rows)


# ----- l2o solve --checkpoint ---------------------------------------------------------------------


#: Problem family name -> the ``l2o solve`` file format its instances are read in.
FAMILY_KINDS = {
    "lasso": "lasso",
    "least_squares": "lasso",  # the lasso format (A, b) with lam = 0 unless given
    "quadratic": "qp",
    "logistic": "logistic",
    "logistic_dataset": "logistic",
}


def kind_of_family(family: Any) -> str:
    """The data format of a family's instances: LASSO -> 'lasso'; least squares
    1/2||Wx - y||^2 -> 'lasso' with lam = 0 (keys A = W, b = y, lam optional); quadratic
    -> 'qp'; logistic (synthetic or dataset) -> 'logistic'."""
    name = getattr(family, "name", type(family).__name__)
    if name not in FAMILY_KINDS:
        raise ValueError(f"the run's problem family {name!r} has no file format for `l2o solve`; "
                         f"supported: {', '.join(sorted(FAMILY_KINDS))}")
    return FAMILY_KINDS[name]


@dataclasses.dataclass
class CheckpointProblem:
    """A data file read for a trained solver: ``loaded`` (the validated batch, float64),
    ``kind`` ('qp', 'lasso', 'logistic'), ``solver`` (the learned module, eval mode),
    ``name`` (the learned solver's name) and ``run`` (the loaded run)."""

    loaded: Loaded
    kind: str
    solver: Any
    name: str
    run: Any


def load_for_checkpoint(
    checkpoint: str | os.PathLike[str],
    data: str | os.PathLike[str],
    problem: str | None = None,
    lam: float | None = None,
    penalty: str | None = None,
    run: Any = None,
) -> CheckpointProblem:
    """Read ``data`` as the kind of problem the run in ``checkpoint`` was trained on.

    The kind comes from the run's family (``kind_of_family``); ``problem``, when given,
    must agree with it. A least-squares run reads the lasso format with lam = 0 when
    the file has no ``lam`` and none is given. The learned solver's own check (for
    instance ALISTA's: the same dictionary A) runs here, so a mismatch is one line.
    """
    from l2o.training import load_run

    if problem is not None and problem not in KINDS:
        raise DataError(f"unknown problem {problem!r}; expected one of {', '.join(KINDS)}")
    run = load_run(checkpoint) if run is None else run
    kind = kind_of_family(run.family)
    family_name = getattr(run.family, "name", "?")
    if problem is not None and problem != kind:
        raise ValueError(f"--problem {problem} does not match the checkpoint: its solver was trained on the "
                         f"{family_name} family, which reads --problem {kind} files")
    arrays = read_arrays(data, kind)
    if family_name == "least_squares" and lam is None and "lam" not in arrays:
        lam = 0.0
    loaded = validate(kind, arrays, lam=lam, penalty=penalty, source=f"'{data}'",
                      matlab=Path(data).suffix.lower() == ".mat")
    solver = run.solver
    try:
        solver.check_problem(loaded.instances)
    except ValueError as e:
        raise ValueError(f"the checkpoint's solver cannot solve this data: {' '.join(str(e).split())}") from None
    return CheckpointProblem(loaded=loaded, kind=kind, solver=solver, name=run.config.solver, run=run)


# ----- l2o demo -----------------------------------------------------------------------------------


@dataclasses.dataclass
class DemoOutcome:
    """What ``run_demo`` produced: the comparison, summary rows, a JSON-ready summary,
    the table title, the files written (None when nothing was written), and the
    training info (None without training)."""

    comparison: Comparison
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    title: str
    plot: Path | None
    records: Path | None
    training: dict[str, Any] | None
    notes: list[str]


def demo_trains(problem: str) -> bool:
    """Whether the demo has a built-in learned solver for the preset: LFISTA's config is
    tuned for the LASSO preset (one dictionary shared by all instances, whose Gram
    matrix gives its one-GEMM step)."""
    family = PRESETS[problem][0]
    return getattr(family, "name", "") == "lasso" and bool(getattr(family, "shared_matrix", False))


def demo_config(problem: str = DEMO_PRESET, steps: int | None = None):
    """The built-in ``RunConfig`` of the demo (``DEMO_CONFIG`` on ``problem``)."""
    from l2o.training import RunConfig

    data = {k: dict(v) for k, v in DEMO_CONFIG.items()}
    data["problem"]["family"] = problem
    if steps is not None:
        data["training"]["steps"] = steps
        data["training"]["val_every"] = max(1, min(data["training"]["val_every"], steps))
    return RunConfig.from_dict(data)


def train_demo(run_dir: Path, config: Any, progress: bool = False,
               say: Callable[[str], None] = lambda m: None) -> tuple[Any, dict[str, Any]]:
    """Train the demo's run in ``run_dir``, or reuse (resume) the run already there when
    its config is the same. Returns ``(Run, info)``."""
    from l2o.training import load_run, run_status, train
    from l2o.training.checkpoint import read_json

    info: dict[str, Any] = {"solver": config.solver, "run": str(run_dir), "steps": config.training.steps,
                            "horizon": config.training.unroll}
    status = run_status(config, run_dir)  # another config there: ValueError, nothing overwritten
    if status == "finished":
        say(f"reusing the trained {config.solver} in {run_dir} (delete it to train again)")
        metrics = read_json(run_dir / "metrics.json")
        info.update(reused=True, seconds=metrics.get("seconds"), train_seconds=0.0,
                    initial_val_gap=metrics.get("initial_val_gap"), best_val_gap=metrics.get("best_val_gap"))
        return load_run(run_dir), info
    resume = status == "cut_off"
    say(f"{'resuming' if resume else 'training'} {config.solver} ({config.training.unroll} learned iterations) on "
        f"{config.family}: {config.training.steps} meta-steps of {config.training.batch_size} instances -> {run_dir}")
    start = time.perf_counter()
    result = train(config, run_dir, resume=resume, progress=progress)
    elapsed = time.perf_counter() - start
    say(f"trained in {elapsed:.0f} s: mean validation gap at iteration {config.training.unroll} "
        f"{_g(result.initial_val_gap)} -> {_g(result.best_val_gap)} (best step {result.best_step})")
    info.update(reused=False, resumed=resume, seconds=result.seconds, train_seconds=elapsed,
                initial_val_gap=result.initial_val_gap, best_val_gap=result.best_val_gap)
    return load_run(run_dir), info


def _g(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def run_demo(
    problem: str = DEMO_PRESET,
    batch: int = 256,
    iterations: int = 1000,
    seed: int = 0,
    record_every: int = 1,
    train: bool = True,
    out: str | os.PathLike[str] | None = None,
    steps: int | None = None,
    progress: bool = False,
    say: Callable[[str], None] = lambda m: None,
) -> DemoOutcome:
    """The demo: train LFISTA on ``problem`` (when ``train`` and the preset has a shared
    dictionary), then compare it with ``DEMO_SOLVERS`` on ``batch`` fresh instances.

    The classical solvers run ``iterations`` iterations, the learned one 10 x its
    horizon. With training, the run goes to ``out/run`` and the plot and records to
    ``out`` (default ``l2o-demo``); without, files are written only when ``out`` is given.
    """
    if problem not in PRESETS:
        raise ValueError(f"unknown preset {problem!r}; expected one of {', '.join(PRESETS)}")
    for option, value in (("--batch", batch), ("--iterations", iterations), ("--record-every", record_every)):
        if value < 1:
            raise ValueError(f"{option} is {value}; expected an integer >= 1")
    if steps is not None and steps < 1:
        raise ValueError(f"--steps is {steps}; expected an integer >= 1")
    notes: list[str] = []
    learn = train and demo_trains(problem)
    if train and not learn:
        notes.append(f"no built-in learned solver for {problem} (the demo's LFISTA is for LASSO with a shared dictionary); "
                     f"comparing the classical solvers only")
    out_dir = Path(out) if out is not None else (Path("l2o-demo") if learn else None)
    if out_dir is not None:
        _out_dir(out_dir)
    training = None
    solvers: dict[str, Any] = {}
    max_iter: dict[str, int] = {}
    dtype = torch.float64
    if learn:
        config = demo_config(problem, steps)
        run, training = train_demo(out_dir / DEMO_RUN, config, progress=progress, say=say)
        solvers[config.solver] = run.solver
        max_iter[config.solver] = 10 * trained_horizon(run.solver, config)
        dtype = config.training.torch_dtype
    for name in DEMO_SOLVERS:
        solvers[name] = make_solver(name)
        max_iter[name] = iterations
    instances = PRESETS[problem][0].sample(batch, seed, dtype=dtype)
    comparison = compare(solvers, instances, max_iter=max_iter, record_every=record_every)
    rows = summarize_comparison(comparison)
    learned = next(iter(comparison.learned), None)
    title = f"{problem}: {batch} instances (seed {seed}), {iterations} iterations"
    if learned is not None:
        title += f" ({max_iter[learned]} for {learned}, 10 x its {max_iter[learned] // 10} learned iterations)"
    plot = records = None
    if out_dir is not None:
        from l2o.report.plots import plot_convergence

        K = max(max_iter.values())
        plot = plot_convergence(comparison, out_dir / DEMO_PLOT, title=title, tolerances=DEFAULT_TOLERANCES)
        records = comparison.to_csv(out_dir / DEMO_RECORDS, every=csv_every(K // record_every))
    summary = {
        "problem": problem, "batch": batch, "iterations": iterations, "seed": seed,
        "reference": comparison.reference.method if comparison.reference is not None else None,
        "tolerances": list(DEFAULT_TOLERANCES), "solvers": _by_solver(rows), "training": training,
        "plot": plot, "records": records,
    }
    return DemoOutcome(comparison=comparison, rows=rows, summary=plain(summary), title=title, plot=plot,
                       records=records, training=training, notes=notes)


def stderr_say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


__all__ = [
    "evaluate_run", "EvalOutcome", "load_for_checkpoint", "CheckpointProblem", "kind_of_family", "run_demo",
    "DemoOutcome", "demo_config", "train_demo", "DEMO_CONFIG", "parse_names", "default_baselines", "eval_seed",
    "plain", "thin",
]
