"""``l2o demo``: train LFISTA on LASSO and compare it with classical solvers
(``l2o.workflows.demo.run_demo``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from l2o.cli.options import console, error, say, user_errors
from l2o.report.table import render_table
from l2o.workflows.demo import DEMO_PRESET, run_demo

#: How the library's parameters are called on ``l2o demo``'s command line.
FLAGS = {"batch": "--batch", "iterations": "--iterations", "record_every": "--record-every", "steps": "--steps"}

DEMO_HELP = "\n\n".join([
    "Train a learned solver and compare it with classical ones: the quickstart's main job.",
    "On the LASSO preset (default lasso_250x500, one 250 x 500 dictionary shared by all instances) it meta-trains "
    "LFISTA (FISTA with restart whose step, threshold and momentum are learned for 40 iterations; built-in config, "
    "300 meta-steps, under a minute on two quiet CPU cores) into OUT/run, then samples fresh instances, computes a "
    "certified reference F* and runs LFISTA (10 x its 40 learned iterations, FISTA-restart after them) and ista, "
    "fista, fista_restart and adam (--iterations each). A finished run "
    "already in OUT/run with the same config is reused; an interrupted one is resumed.",
    "Shows per solver the median and 90th percentile (over instances) of the iterations and seconds to reach 1e-2, "
    "1e-4 and 1e-6 relative suboptimality ('-' where not reached) and the final gap, and writes OUT/convergence.png "
    "and OUT/records.csv. --json prints per solver its name, whether it is learned, and those numbers (null where "
    "not reached).",
    "--no-train compares the classical solvers only (files are then written only with --out); presets without a "
    "shared dictionary have no built-in learned solver and are compared classically.",
])


def demo(
    problem: Annotated[str, typer.Option(help="a preset (see `l2o list`)")] = DEMO_PRESET,
    batch: Annotated[int, typer.Option(help="number of evaluation instances, >= 1")] = 256,
    iterations: Annotated[int, typer.Option(help="iterations per classical solver, >= 1")] = 1000,
    seed: Annotated[int, typer.Option(help="seed of the evaluation instances")] = 0,
    record_every: Annotated[int, typer.Option(help="record the gap every this many iterations")] = 1,
    train_: Annotated[
        bool, typer.Option("--train/--no-train", help="train the learned solver (--no-train: classical solvers only)")
    ] = True,
    steps: Annotated[int | None, typer.Option(help="meta-steps of the training (default 300)")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="output directory (default l2o-demo when training)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON on stdout")] = False,
) -> None:
    with user_errors(FLAGS):
        try:
            outcome = run_demo(problem=problem, batch=batch, iterations=iterations, seed=seed,
                               record_every=record_every, train=train_, out=out, steps=steps,
                               progress=not as_json and sys.stderr.isatty(), say=say)
        except KeyboardInterrupt:
            error("interrupted; run the same `l2o demo` again to resume the training from its last checkpoint")
            raise typer.Exit(130) from None
    for note in outcome.notes:
        say(f"note: {note}")
    if as_json:
        sys.stdout.write(json.dumps(outcome.summary) + "\n")
        return
    out = console()
    out.print(render_table(outcome.rows, title=outcome.title))
    out.print(f"relative suboptimality (F - F*) / |F*|; F* by {outcome.summary['reference']}")
    for path in (outcome.plot, outcome.records):
        if path is not None:
            out.print(f"wrote {path}")
