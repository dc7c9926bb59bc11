"""``l2o eval DIR --ood``: a trained solver, its safeguarded form and the classical
baselines on every out-of-distribution split of its family.

For each split (``l2o.problems.splits``) fresh instances are sampled from the split's
family, a reference F* is computed, and every solver runs 10x the learned solver's
training horizon from the split's start (stopping early once every instance of every
solver is below the finest tolerance). A solver that cannot run on a split (ALISTA on
another dictionary size) is listed as skipped with the reason.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from l2o.evaluation.compare import compare
from l2o.problems.splits import Split, resolve_splits
from l2o.registry import SOLVERS, make_solver
from l2o.report.robustness import (
    SplitReport,
    add_fallback_rates,
    summary_of,
    write_html,
)
from l2o.report.table import summarize_comparison
from l2o.safeguard import RULES, Safeguard

OOD_TOLERANCES: tuple[float, ...] = (1e-4, 1e-6)
OOD_DIR = "ood"
OOD_HTML = "report.html"
#: Iterations of every solver on a split, in units of the training horizon.
HORIZON_FACTOR = 10


def default_fallback(family: Any) -> str:
    """The classical solver a safeguard falls back to: WMMSE for the MIMO family (when
    registered), else FISTA with restart (smooth or composite, any family here)."""
    return "wmmse" if getattr(family, "name", "") == "mimo" and "wmmse" in SOLVERS else "fista_restart"


@dataclasses.dataclass
class RobustnessOutcome:
    """Reports per split, the JSON-ready summary and the HTML page's path."""

    reports: list[SplitReport]
    summary: dict[str, Any]
    html: Path


def evaluate_ood(
    run_dir: str | os.PathLike[str],
    splits: Sequence[str] | None = None,
    baselines: Sequence[str] | None = None,
    batch: int | None = None,
    seed: int | None = None,
    dtype: str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    fallback: str | None = None,
    rule: str | None = None,
    check_every: int | None = None,
    iterations: int | None = None,
    run: Any = None,
    progress: Any = None,
) -> RobustnessOutcome:
    """Run the robustness report of a trained run.

    Args:
        run_dir: a run directory (``l2o train``).
        splits: split names (None: the run config's ``[evaluation] splits``, else every
            split of the family). ``batch``, ``fallback``, ``rule``, ``check_every``: None
            takes the run config's ``[evaluation]`` value (defaults 64, the family's
            default fallback, "descent", 1).
        baselines: classical solvers (None: the family's default baselines).
        batch, seed, dtype: the instances of every split (seed None: ``eval_seed``).
        out_dir: where ``ood/`` goes (None: the run directory).
        fallback: the safeguard's classical solver (None: ``default_fallback``).
        rule, check_every: the safeguard's rule and check period (``l2o.safeguard``);
            the safeguarded solver hands over to its fallback after the horizon.
        iterations: per solver (None: 10 x the training horizon).
        progress: called with a line of text before each split (None: silent).

    Raises:
        ValueError: unknown split, baseline, fallback or rule; an unreadable run.
    """
    from l2o.commands import check_positive_option, eval_seed, parse_dtype_option, trained_horizon
    from l2o.training import load_run

    check_positive_option("--batch", batch)
    check_positive_option("--iterations", iterations)
    check_positive_option("--check-every", check_every)
    if rule is not None and rule not in RULES:
        raise ValueError(f"--rule: unknown safeguard rule {rule!r}; valid rules: {', '.join(RULES)}")
    run = load_run(run_dir) if run is None else run
    config = run.config
    ev = config.evaluation
    batch = ev.batch if batch is None else batch
    rule = ev.rule if rule is None else rule
    check_every = ev.check_every if check_every is None else check_every
    if splits is None and ev.splits:
        splits = ev.splits
    chosen = resolve_splits(run.family, list(splits) if splits is not None else None)
    fb_name = fallback or ev.fallback or default_fallback(run.family)
    if fb_name not in SOLVERS:
        raise ValueError(f"--fallback: unknown solver {fb_name!r}; valid solvers: {', '.join(sorted(SOLVERS))}")
    for b in baselines or ():
        if b not in SOLVERS:
            raise ValueError(f"--baselines: unknown solver {b!r}; valid solvers: {', '.join(sorted(SOLVERS))}")
    want_dtype = parse_dtype_option(dtype) or config.training.torch_dtype
    seed = eval_seed(config.training.seed) if seed is None else int(seed)
    root = Path(run_dir) if out_dir is None else Path(out_dir)
    out = root / OOD_DIR
    out.mkdir(parents=True, exist_ok=True)
    learned = run.solver
    name = config.solver
    horizon = trained_horizon(learned, config)
    K = iterations if iterations is not None else HORIZON_FACTOR * horizon
    learned_solvers = {
        name: learned,
        f"safeguarded_{name}": Safeguard(learned, make_solver(fb_name), rule=rule, check_every=check_every,
                                         after_horizon="fallback", horizon=horizon),
    }
    reports = []
    for split in chosen:
        if progress is not None:
            progress(f"split {split.name}: {split.description}")
        reports.append(_one_split(split, run.family, learned_solvers, baselines, fb_name, horizon, K, batch, seed,
                                  want_dtype, out))
    title = f"Robustness of {name} trained on {config.family}"
    notes = [
        f"{batch} fresh instances per split (seed {seed}, {str(want_dtype).replace('torch.', '')}); every solver runs "
        f"{K} iterations = {K / horizon:g} x the training horizon {horizon} (stopping once all instances are below "
        f"{OOD_TOLERANCES[-1]:g}).",
        f"safeguarded_{name}: Safeguard({name}, {fb_name}, rule={rule!r}, check_every={check_every}), handing over "
        f"to {fb_name} after the horizon; the fallback rate is the share of the first {horizon} iterations taken "
        f"by {fb_name}.",
    ]
    page = write_html(out / OOD_HTML, title, reports, notes)
    summary = {
        "run": str(run_dir), "solver": name, "family": config.family, "batch": batch, "seed": seed,
        "dtype": str(want_dtype).replace("torch.", ""), "horizon": horizon, "iterations": K, "fallback": fb_name,
        "rule": rule, "check_every": check_every, "tolerances": list(OOD_TOLERANCES), "html": str(page),
        "splits": summary_of(reports),
    }
    from l2o.commands import plain

    return RobustnessOutcome(reports=reports, summary=plain(summary), html=page)


def _one_split(split: Split, base, learned_solvers: dict, baselines, fallback: str, horizon: int, K: int,
               batch: int, seed: int, dtype, out: Path) -> SplitReport:
    """Sample the split's instances, run the learned solvers and the baselines (the
    family's defaults when None, plus the fallback), and draw the split's figure."""
    from l2o.commands import default_baselines
    from l2o.report.plots import plot_convergence

    family = split.apply(base)
    problem = family.sample(batch, seed, dtype=dtype)
    names = list(baselines) if baselines is not None else list(default_baselines(problem.has_nonsmooth, family))
    if fallback not in names:
        names.append(fallback)
    candidates = {**learned_solvers, **{b: make_solver(b) for b in names if b not in learned_solvers}}
    solvers, skipped = {}, {}
    for n, s in candidates.items():
        try:
            s.check_problem(problem)
            solvers[n] = s
        except ValueError as e:
            skipped[n] = str(e).splitlines()[0]
    if not solvers:
        return SplitReport(split.name, split.description, [], skipped, None)
    with torch.no_grad():
        comparison = compare(solvers, problem, max_iter=K, stop_at=OOD_TOLERANCES[-1])
    rows = add_fallback_rates(summarize_comparison(comparison, OOD_TOLERANCES), comparison.trajectories, horizon)
    plot = plot_convergence(comparison, out / f"{split.name}.png", title=f"{split.name}: {split.description}",
                            tolerances=OOD_TOLERANCES)
    return SplitReport(split.name, split.description, rows, skipped, plot)
