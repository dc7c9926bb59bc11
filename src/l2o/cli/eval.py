"""``l2o eval``: a trained run against classical and learned baselines (``l2o.workflows.evaluate``),
or with ``--ood`` / ``--split`` the robustness report (``l2o.workflows.robustness``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import torch
import typer

from l2o.cli.options import check_positive, console, parse_names, say, user_errors
from l2o.report.guarantee import guarantee_sentences, render_guarantee
from l2o.report.robustness import render_split
from l2o.report.table import render_table
from l2o.safeguard import RULES
from l2o.training.config import DTYPES, torch_dtype
from l2o.workflows.evaluate import default_out_dir, evaluate_run, unfinished_note
from l2o.workflows.load import load_checkpoint
from l2o.workflows.robustness import evaluate_ood

#: How the library's parameters are called on ``l2o eval``'s command line.
FLAGS = {"batch": "--batch", "iterations": "--iterations", "baselines": "--baselines", "device": "--device",
         "dtype": "--dtype", "seed": "--seed", "fallback": "--fallback", "rule": "--rule",
         "check_every": "--check-every"}

EVAL_HELP = "\n\n".join([
    "Evaluate a trained run (a directory written by l2o train) or a bundled pretrained solver (DIR or "
    "--checkpoint NAME; l2o list --pretrained) against classical and learned baselines.",
    "--baselines takes comma-separated classical solvers (l2o list), bundled pretrained names and other run "
    "directories: the learned ones run on the same instances, for the same iterations and on the same clock, appear "
    "as '<solver> (<run directory name>)' or under their bundled name, and are marked learned in the table, the "
    "plot, the records and the JSON. A learned baseline must fit the run's family (its shapes, its problem kind); "
    "if it does not, one line says why and what it was trained on (exit 2).",
    "Samples fresh instances of the run's family (a seed distinct from training's unless --seed), computes a "
    "certified reference F*, runs the trained solver and the baselines on the same instances (by default 10 x the "
    "training horizon for all of them) and prints per solver the median and 90th percentile of the iterations and "
    "seconds to reach 1e-2, 1e-4 and 1e-6 relative suboptimality ('-' where not reached) and the final gap. "
    "A run whose training did not finish is evaluated as it is (its best checkpoint so far), after the line "
    "'note: run has K of N steps (unfinished); evaluating its best checkpoint (step S)' on stderr.",
    "Writes eval_convergence.png (gap against iterations and time: median and 10-90% band; learned solid, "
    "classical dashed) and eval_records.csv (tidy rows: solver, learned, iteration, instance, time, objective, gap, "
    "thinned to about 100 iterations per solver) into the run directory or --out-dir. --json prints the summary as "
    "JSON (null where not reached).",
    "Default baselines: ista, fista, fista_restart, adam for nonsmooth problems (LASSO, l1 logistic); gd, nesterov, "
    "fista_restart, adam, lbfgs for smooth ones; wmmse, mrt, zf, rzf for MIMO. For MIMO families the sum-rate as a "
    "fraction of the reference R* (median, p10, mean) and each solver's seconds for the batch are printed under the "
    "table, for learned solvers also after their training horizon.",
    "--ood (every split) or --split NAME (repeatable) writes the robustness report instead: the trained solver, its "
    "safeguarded form (Safeguard with --fallback and --rule, handing over to the fallback after the horizon) and the "
    "baselines on each out-of-distribution split of the family (the CVPR 2024 shifts x0_+10 ... x0_-100, "
    "objective_shift_1/10, and the family's own: data_scale_2, noise, nnz, lam, correlation, dimension, real "
    "datasets; `l2o list` shows them). Per split a table (iterations and seconds to 1e-4 and 1e-6, fraction reached "
    "within 10 x the horizon, fallback rate) and a figure; all gathered in ood/report.html. Batch default 64 there.",
])


def parse_dtype_option(name: str | None, option: str = "--dtype") -> torch.dtype | None:
    """A ``--dtype`` value ("float32" / "float64" / None) as a torch dtype."""
    if name is None:
        return None
    if name not in DTYPES:
        raise ValueError(f"{option} is {name!r}; expected 'float32' or 'float64'")
    return torch_dtype(name)


def eval_(
    run_dir: Annotated[
        Path | None, typer.Argument(metavar="DIR", help="run directory (l2o train) or bundled pretrained name")
    ] = None,
    baselines: Annotated[
        str | None, typer.Option(help="comma-separated classical solvers (see `l2o list`), bundled pretrained names "
                                      "or run directories; 'none' for none")
    ] = None,
    iterations: Annotated[
        int | None, typer.Option(help="iterations of every solver, >= 1 (default 10 x the training horizon)")
    ] = None,
    batch: Annotated[
        int | None, typer.Option(help="number of fresh instances, >= 1 (default 256; 64 per split with --ood)")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="seed of the instances (default: derived, not training's)")] = None,
    dtype: Annotated[str | None, typer.Option(help="float32 or float64 (default: the run's training dtype)")] = None,
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda")] = "cpu",
    out_dir: Annotated[
        Path | None, typer.Option("--out-dir", help="where the plot and records go (default: the run directory)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON on stdout")] = False,
    ood: Annotated[bool, typer.Option("--ood", help="robustness report on every OOD split of the family")] = False,
    split: Annotated[
        list[str] | None, typer.Option("--split", help="robustness report on this split (repeat for several)")
    ] = None,
    fallback: Annotated[
        str | None, typer.Option(help="safeguard fallback for --ood/--split (default fista_restart; wmmse for MIMO)")
    ] = None,
    rule: Annotated[
        str | None, typer.Option(help="safeguard rule for --ood/--split: descent (default) or residual")
    ] = None,
    check_every: Annotated[
        int | None, typer.Option(help="safeguard checks every this many learned iterations (default 1)")
    ] = None,
    checkpoint: Annotated[
        str | None, typer.Option("--checkpoint", "-c", help="run directory or bundled pretrained name (as DIR)")
    ] = None,
) -> None:
    with user_errors(FLAGS):
        if (run_dir is None) == (checkpoint is None):
            raise ValueError("give the run directory or bundled name once: as DIR or as --checkpoint"
                             if run_dir is not None else "Missing argument 'DIR' (or --checkpoint NAME_OR_DIR).")
    run_dir = Path(checkpoint) if run_dir is None else run_dir
    if ood or split:  # the run config's [evaluation] table fills what is not given
        _eval_ood(run_dir, split, baselines, iterations, batch, seed, dtype, out_dir, as_json,
                  fallback, rule, check_every)
        return
    with user_errors(FLAGS):
        names = parse_names(baselines, registered=False)
        batch = 256 if batch is None else batch
        check_positive("--batch", batch)
        check_positive("--iterations", iterations)
        run = load_checkpoint(run_dir)  # a run directory or a bundled name
        note = unfinished_note(run)
        if note is not None:  # evaluated as it is: say so before the work starts
            say(f"note: {note}")
        outcome = evaluate_run(run_dir, baselines=names, iterations=iterations, batch=batch, seed=seed,
                               dtype=parse_dtype_option(dtype), device=device,
                               out_dir=out_dir or default_out_dir(run_dir, run), run=run,
                               progress=True)  # phases on stderr when it is a terminal
    if as_json:
        sys.stdout.write(json.dumps(outcome.summary) + "\n")
        return
    out = console()
    out.print(render_table(outcome.rows, title=outcome.title))
    out.print(f"relative suboptimality (F - F*) / |F*|; F* by {outcome.summary['reference']}")
    for line in outcome.notes:  # the MIMO family: sum-rate fractions and seconds per batch
        out.print(line)
    if outcome.guarantee is not None:  # failure fractions and their bound for the family
        out.print(render_guarantee(outcome.guarantee))
        for line in guarantee_sentences(outcome.guarantee):
            out.print(line, soft_wrap=True)
    out.print(f"wrote {outcome.plot}")
    out.print(f"wrote {outcome.records}")


def _eval_ood(run_dir: Path, split: list[str] | None, baselines: str | None, iterations: int | None,
              batch: int | None, seed: int | None, dtype: str | None, out_dir: Path | None, as_json: bool,
              fallback: str | None, rule: str | None, check_every: int | None) -> None:
    out = console(stderr=as_json)
    progress: Any = None if as_json else out.print
    with user_errors(FLAGS):
        names = parse_names(baselines)
        check_positive("--batch", batch)
        check_positive("--iterations", iterations)
        check_positive("--check-every", check_every)
        if rule is not None and rule not in RULES:
            raise ValueError(f"--rule: unknown safeguard rule {rule!r}; valid rules: {', '.join(RULES)}")
        run = load_checkpoint(run_dir)  # a run directory or a bundled name
        outcome = evaluate_ood(run_dir, splits=split or None, baselines=names, batch=batch, seed=seed,
                               dtype=parse_dtype_option(dtype), out_dir=out_dir or default_out_dir(run_dir, run),
                               fallback=fallback, rule=rule, check_every=check_every, iterations=iterations,
                               progress=progress, run=run,
                               phases=True)  # each split's phases on stderr when it is a terminal
    if as_json:
        sys.stdout.write(json.dumps(outcome.summary) + "\n")
        return
    for report in outcome.reports:
        out.print(render_split(report))
        if report.guarantee is not None:
            out.print(render_guarantee(report.guarantee, title=f"{report.split}: guarantee"))
    out.print(f"wrote {outcome.html}", soft_wrap=True)
