"""``run_demo``: the quickstart's main job, what ``l2o demo`` does.

Meta-train LFISTA on the LASSO preset with a built-in config (``DEMO_CONFIG``), or
reuse / resume the run already there, then compare it with ISTA, FISTA, FISTA with
restart and Adam on fresh instances; ``train=False`` compares the classical solvers only.

Nothing here prints: progress lines go to the ``say`` callback, and progress displays
(on stderr) appear only when the caller asks for them (``progress``). Every error caused by
the input is a ``ValueError`` with one line that names the parameter.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from l2o.evaluation.compare import Comparison, compare
from l2o.evaluation.defaults import HORIZON_FACTOR, evaluation_iterations, trained_horizon
from l2o.registry import PRESETS, make_solver
from l2o.report.plots import plot_convergence
from l2o.report.table import DEFAULT_TOLERANCES, by_solver, summarize_comparison
from l2o.training import Run, RunConfig, load_run, run_status, train
from l2o.training.checkpoint import read_json
from l2o.utils.jsonable import jsonable
from l2o.utils.progress import Progress, as_progress
from l2o.workflows.evaluate import check_positive, csv_every, make_out_dir
from l2o.workflows.robustness import resolve_evaluation

#: Files of ``run_demo`` in its output directory (the trained run goes to ``run/``).
DEMO_PLOT = "convergence.png"
DEMO_RECORDS = "records.csv"
DEMO_RUN = "run"
DEMO_SOLVERS = ("ista", "fista", "fista_restart", "adam")

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
    """Whether the demo has a built-in learned solver for the preset ``problem``: its
    training config (``DEMO_CONFIG``, LFISTA) is tuned for the demo preset's family with
    one dictionary shared by all instances (whose Gram matrix gives LFISTA its one-GEMM
    step), so the preset must be of that family class, share its matrix, and be accepted
    by the demo's solver (``skip`` is None on one sampled instance).

    >>> demo_trains("lasso_250x500"), demo_trains("qp_100"), demo_trains("logistic_1000x50")
    (True, False, False)
    """
    family = PRESETS[problem][0]
    if type(family) is not type(PRESETS[DEMO_PRESET][0]) or not getattr(family, "shared_matrix", False):
        return False
    hparams = {k: v for k, v in DEMO_CONFIG["solver"].items() if k != "name"}
    solver = make_solver(DEMO_CONFIG["solver"]["name"], **hparams)
    return solver.skip(family.sample(1, 0)) is None


def demo_config(problem: str = DEMO_PRESET, steps: int | None = None) -> RunConfig:
    """The built-in ``RunConfig`` of the demo (``DEMO_CONFIG`` on ``problem``)."""
    data = {k: dict(v) for k, v in DEMO_CONFIG.items()}
    data["problem"]["family"] = problem
    if steps is not None:
        data["training"]["steps"] = steps
        data["training"]["val_every"] = max(1, min(data["training"]["val_every"], steps))
    return RunConfig.from_dict(data)


def train_demo(run_dir: Path, config: RunConfig, progress: bool = False,
               say: Callable[[str], None] = lambda m: None) -> tuple[Run, dict[str, Any]]:
    """Train the demo's run in ``run_dir``, or reuse (resume) the run already there when
    its config is the same. Returns ``(Run, info)``.

    The config's ``[evaluation]`` table is checked and resolved first (as ``l2o train``
    does), so the run's config.toml holds it with every default filled in.
    """
    config = resolve_evaluation(config)
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
    progress: Progress | bool = False,
    say: Callable[[str], None] = lambda m: None,
) -> DemoOutcome:
    """The demo: train LFISTA on ``problem`` (when ``train`` and the preset has a shared
    dictionary), then compare it with ``DEMO_SOLVERS`` on ``batch`` fresh instances.

    The classical solvers run ``iterations`` iterations, the learned one
    ``HORIZON_FACTOR`` (10) x its horizon. With training, the run goes to ``out/run``
    and the plot and records to ``out`` (default ``l2o-demo``); without, files are
    written only when ``out`` is given. ``say`` receives the progress lines; ``progress``
    shows the training's progress bar and the phases of the comparison (the reference,
    each solver): True (on stderr when it is a terminal), a ``l2o.utils.progress.Progress``
    (phases only), or False.
    """
    if problem not in PRESETS:
        raise ValueError(f"unknown preset {problem!r}; expected one of {', '.join(PRESETS)}")
    for name, value in (("batch", batch), ("iterations", iterations), ("record_every", record_every),
                        ("steps", steps)):
        check_positive(name, value)
    notes: list[str] = []
    learn = train and demo_trains(problem)
    if train and not learn:
        notes.append(f"no built-in learned solver for {problem} (the demo's LFISTA is for LASSO with a shared "
                     f"dictionary); "
                     f"comparing the classical solvers only")
    out_dir = Path(out) if out is not None else (Path("l2o-demo") if learn else None)
    if out_dir is not None:
        make_out_dir(out_dir)
    bar = progress.enabled if isinstance(progress, Progress) else bool(progress)  # training's progress bar
    training = None
    solvers: dict[str, Any] = {}
    max_iter: dict[str, int] = {}
    dtype = torch.float64
    if learn:
        config = demo_config(problem, steps)
        run, training = train_demo(out_dir / DEMO_RUN, config, progress=bar, say=say)
        solvers[config.solver] = run.solver
        max_iter[config.solver] = evaluation_iterations(trained_horizon(run.solver, config))
        dtype = config.training.torch_dtype
    for name in DEMO_SOLVERS:
        solvers[name] = make_solver(name)
        max_iter[name] = iterations
    phases = as_progress(progress)
    with phases.phase(f"sampling {batch} instances of {problem}"):
        instances = PRESETS[problem][0].sample(batch, seed, dtype=dtype)
    comparison = compare(solvers, instances, max_iter=max_iter, record_every=record_every, progress=phases)
    rows = summarize_comparison(comparison)
    learned = next(iter(comparison.learned), None)
    title = f"{problem}: {batch} instances (seed {seed}), {iterations} iterations"
    if learned is not None:
        title += (f" ({max_iter[learned]} for {learned}, {HORIZON_FACTOR} x its {max_iter[learned] // HORIZON_FACTOR} "
                  f"learned iterations)")
    plot = records = None
    if out_dir is not None:
        K = max(max_iter.values())
        with phases.phase(f"writing {DEMO_PLOT} and {DEMO_RECORDS}"):
            plot = plot_convergence(comparison, out_dir / DEMO_PLOT, title=title, tolerances=DEFAULT_TOLERANCES)
            records = comparison.to_csv(out_dir / DEMO_RECORDS, every=csv_every(K // record_every))
    summary = {
        "problem": problem, "batch": batch, "iterations": iterations, "seed": seed,
        "reference": comparison.reference.method if comparison.reference is not None else None,
        "tolerances": list(DEFAULT_TOLERANCES), "solvers": by_solver(rows), "training": training,
        "plot": plot, "records": records,
    }
    return DemoOutcome(comparison=comparison, rows=rows, summary=jsonable(summary), title=title, plot=plot,
                       records=records, training=training, notes=notes)


__all__ = [
    "DEMO_PLOT", "DEMO_RECORDS", "DEMO_RUN", "DEMO_SOLVERS", "DEMO_PRESET", "DEMO_CONFIG", "DemoOutcome",
    "demo_trains", "demo_config", "train_demo", "run_demo",
]
