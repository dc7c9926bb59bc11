"""``evaluate_ood``: a trained solver, its safeguarded form and the classical baselines
on every out-of-distribution split of its family. What ``l2o eval DIR --ood`` does.

For each split (``l2o.problems.splits``) fresh instances are sampled from the split's
family, a reference F* is computed, and every solver runs ``HORIZON_FACTOR`` (10) x the
learned solver's training horizon from the split's start (stopping early once every
instance of every solver is below the finest tolerance). A solver that cannot run on a
split (ALISTA on another dictionary size) is listed as skipped with the reason.

``EvaluationConfig`` is the run config's optional ``[evaluation]`` table (the defaults of
this report); the run config keeps the table as given and it is checked here.

Nothing here prints. Every error caused by the input is a ``ValueError`` with one line
that names the parameter (or the ``[evaluation]`` key).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from l2o.evaluation.compare import compare
from l2o.evaluation.defaults import (
    default_baselines,
    default_fallback,
    eval_seed,
    evaluation_iterations,
    trained_horizon,
)
from l2o.evaluation.guarantee import default_budgets, guarantee_table
from l2o.problems.family import ProblemFamily
from l2o.problems.splits import Split, resolve_splits
from l2o.registry import CLASSICAL, make_solver
from l2o.report.plots import plot_convergence
from l2o.report.robustness import SplitReport, add_fallback_rates, summary_of, write_html
from l2o.report.table import summarize_comparison
from l2o.safeguard import RULES, Safeguard
from l2o.training import Run, RunConfig, load_run
from l2o.training.config import _check_keys, _coerce, _kind_of  # the config schema's own checks and messages
from l2o.utils.jsonable import jsonable
from l2o.utils.progress import Progress, as_progress
from l2o.workflows.evaluate import check_positive, check_solver_names, dtype_name

OOD_TOLERANCES: tuple[float, ...] = (1e-4, 1e-6)
OOD_DIR = "ood"
OOD_HTML = "report.html"


# ----- the [evaluation] table ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """The optional ``[evaluation]`` table of a run config: what ``l2o eval DIR --ood``
    runs by default.

    Attributes:
        splits: OOD split names (``l2o list`` shows them; empty: every split of the family).
        fallback: the safeguard's classical solver ("" = the family's default).
        rule: the safeguard rule, "descent" or "residual".
        check_every: learned iterations per safeguard check.
        batch: instances per split.
    """

    splits: tuple[str, ...] = ()
    fallback: str = ""
    rule: str = "descent"
    check_every: int = 1
    batch: int = 64

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> EvaluationConfig:
        """Check the keys and value types of an ``[evaluation]`` table (``ValueError``
        naming the key) and fill in the defaults."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        _check_keys("[evaluation]", table, fields)
        values: dict[str, Any] = {}
        for k, v in table.items():
            if k == "splits":
                if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
                    raise ValueError(f"[evaluation] splits = {v!r}; expected an array of split names such as "
                                     f"[\"id\", \"x0_+10\"]")
                values[k] = tuple(v)
            else:
                values[k] = _coerce("[evaluation]", k, v, _kind_of(fields[k].type, fields[k].default))
        return cls(**values)

    def validate(self, family: ProblemFamily) -> None:
        """Check the names against ``family``'s splits, the solvers and the safeguard rules."""
        if self.splits:
            try:
                resolve_splits(family, list(self.splits))
            except ValueError as e:
                raise ValueError(f"[evaluation] splits: {e}") from None
        if self.fallback and self.fallback not in CLASSICAL:
            raise ValueError(f"[evaluation] fallback = {self.fallback!r} is not a solver; valid: "
                             f"{', '.join(sorted(CLASSICAL))}")
        if self.rule not in RULES:
            raise ValueError(f"[evaluation] rule = {self.rule!r}; valid rules: {', '.join(RULES)}")
        if self.check_every < 1 or self.batch < 1:
            raise ValueError("[evaluation] check_every and batch must be >= 1")

    def to_table(self) -> dict[str, Any]:
        """The table with every default filled in (arrays as lists), as a run's config.toml holds it."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def evaluation_config(config: RunConfig, family: ProblemFamily | None = None) -> EvaluationConfig:
    """The checked ``[evaluation]`` table of ``config`` (names checked against ``family``,
    default ``config.make_family()``, unless the table is all defaults)."""
    ev = EvaluationConfig.from_table(config.evaluation)
    if ev != EvaluationConfig():
        ev.validate(config.make_family() if family is None else family)
    return ev


def resolve_evaluation(config: RunConfig) -> RunConfig:
    """``config`` with its ``[evaluation]`` table checked and every default filled in:
    what ``l2o train`` writes to the run's config.toml."""
    return dataclasses.replace(config, evaluation=evaluation_config(config).to_table())


# ----- the report ------------------------------------------------------------------------------------


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
    dtype: torch.dtype | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    fallback: str | None = None,
    rule: str | None = None,
    check_every: int | None = None,
    iterations: int | None = None,
    run: Run | None = None,
    progress: Callable[[str], Any] | None = None,
    phases: Progress | bool | None = None,
) -> RobustnessOutcome:
    """Run the robustness report of a trained run.

    Args:
        run_dir: a run directory (``l2o train``).
        splits: split names (None: the run config's ``[evaluation] splits``, else every
            split of the family). ``batch``, ``fallback``, ``rule``, ``check_every``: None
            takes the run config's ``[evaluation]`` value (defaults 64, the family's
            default fallback, "descent", 1).
        baselines: classical solvers (None: the family's default baselines).
        batch, seed, dtype: the instances of every split (seed None: ``eval_seed``;
            dtype None: the run's training dtype).
        out_dir: where ``ood/`` goes (None: the run directory).
        fallback: the safeguard's classical solver (None: ``default_fallback``).
        rule, check_every: the safeguard's rule and check period (``l2o.safeguard``);
            the safeguarded solver hands over to its fallback after the horizon.
        iterations: per solver (None: ``HORIZON_FACTOR`` x the training horizon).
        progress: called with a line of text before each split (None: silent).
        phases: reports the phases of every split (sampling its instances, the reference
            optimum, each solver's run, its figure), each split's inside a phase of its
            own: a ``l2o.utils.progress.Progress``, True (``terminal_progress()``: on
            stderr when it is a terminal) or None / False (silent).

    Raises:
        ValueError: unknown split, baseline, fallback or rule; a bad ``[evaluation]``
            table; an unreadable run (one line naming the parameter).
    """
    check_positive("batch", batch)
    check_positive("iterations", iterations)
    check_positive("check_every", check_every)
    if rule is not None and rule not in RULES:
        raise ValueError(f"rule: unknown safeguard rule {rule!r}; valid rules: {', '.join(RULES)}")
    run = load_run(run_dir) if run is None else run
    config = run.config
    ev = evaluation_config(config, run.family)
    batch = ev.batch if batch is None else batch
    rule = ev.rule if rule is None else rule
    check_every = ev.check_every if check_every is None else check_every
    if splits is None and ev.splits:
        splits = ev.splits
    chosen = resolve_splits(run.family, list(splits) if splits is not None else None)
    fb_name = fallback or ev.fallback or default_fallback(run.family)
    if fb_name not in CLASSICAL:
        raise ValueError(f"fallback: unknown solver {fb_name!r}; valid solvers: {', '.join(sorted(CLASSICAL))}")
    check_solver_names("baselines", baselines or ())
    want_dtype = config.training.torch_dtype if dtype is None else dtype
    seed = eval_seed(config.training.seed) if seed is None else int(seed)
    root = Path(run_dir) if out_dir is None else Path(out_dir)
    out = root / OOD_DIR
    out.mkdir(parents=True, exist_ok=True)
    learned = run.solver
    name = config.solver
    horizon = trained_horizon(learned, config)
    K = iterations if iterations is not None else evaluation_iterations(horizon)
    learned_solvers = {
        name: learned,
        f"safeguarded_{name}": Safeguard(learned, make_solver(fb_name), rule=rule, check_every=check_every,
                                         after_horizon="fallback", horizon=horizon),
    }
    reports = []
    shown = as_progress(phases)
    for i, split in enumerate(chosen, 1):
        if progress is not None:
            progress(f"split {split.name}: {split.description}")
        with shown.phase(f"split {split.name} ({i}/{len(chosen)}): {split.description}"):
            reports.append(_one_split(split, run.family, learned_solvers, baselines, fb_name, horizon, K, batch, seed,
                                      want_dtype, out, shown))
    title = f"Robustness of {name} trained on {config.family}"
    notes = [
        f"{batch} fresh instances per split (seed {seed}, {dtype_name(want_dtype)}); every solver runs "
        f"{K} iterations = {K / horizon:g} x the training horizon {horizon} (stopping once all instances are below "
        f"{OOD_TOLERANCES[-1]:g}).",
        f"safeguarded_{name}: Safeguard({name}, {fb_name}, rule={rule!r}, check_every={check_every}), handing over "
        f"to {fb_name} after the horizon; the fallback rate is the share of the first {horizon} iterations taken "
        f"by {fb_name}.",
    ]
    page = write_html(out / OOD_HTML, title, reports, notes)
    summary = {
        "run": str(run_dir), "solver": name, "family": config.family, "batch": batch, "seed": seed,
        "dtype": dtype_name(want_dtype), "horizon": horizon, "iterations": K, "fallback": fb_name,
        "rule": rule, "check_every": check_every, "tolerances": list(OOD_TOLERANCES), "html": str(page),
        "splits": summary_of(reports),
    }
    return RobustnessOutcome(reports=reports, summary=jsonable(summary), html=page)


def _one_split(split: Split, base: ProblemFamily, learned_solvers: dict[str, Any], baselines: Sequence[str] | None,
               fallback: str, horizon: int, K: int, batch: int, seed: int, dtype: torch.dtype,
               out: Path, phases: Progress) -> SplitReport:
    """Sample the split's instances, run the learned solvers and the baselines (the
    family's defaults when None, plus the fallback), and draw the split's figure; each
    phase reported to ``phases``."""
    family = split.apply(base)
    with phases.phase(f"{split.name}: sampling {batch} instances"):
        problem = family.sample(batch, seed, dtype=dtype)
    names = list(baselines) if baselines is not None else list(default_baselines(problem, family))
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
        comparison = compare(solvers, problem, max_iter=K, stop_at=OOD_TOLERANCES[-1], progress=phases)
    rows = add_fallback_rates(summarize_comparison(comparison, OOD_TOLERANCES), comparison.trajectories, horizon)
    with phases.phase(f"{split.name}: writing {split.name}.png"):
        plot = plot_convergence(comparison, out / f"{split.name}.png", title=f"{split.name}: {split.description}",
                                tolerances=OOD_TOLERANCES)
    return SplitReport(split.name, split.description, rows, skipped, plot,
                       guarantee=guarantee_table(comparison, OOD_TOLERANCES, budgets=default_budgets(K)))


__all__ = [
    "OOD_TOLERANCES", "OOD_DIR", "OOD_HTML", "EvaluationConfig", "evaluation_config", "resolve_evaluation",
    "RobustnessOutcome", "evaluate_ood",
]
