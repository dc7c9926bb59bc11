"""The ``l2o`` command line: a thin layer over the Python API.

    l2o list                                   families, presets and solvers
    l2o solve --problem lasso --data d.npz     solve instances read from a file
    l2o eval runs/x                            a trained run against classical baselines
    l2o demo                                   train LFISTA on LASSO, compare with classical solvers

Every error caused by the input (a bad file, a bad option value, a solver that does
not fit the problem) is one line ``error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

import l2o
from l2o.commands import load_for_checkpoint, plain
from l2o.io import KINDS, DataError, Loaded, check_output_path, load, save_npz_atomic
from l2o.problems import Instances
from l2o.registry import FAMILIES, PRESETS, SOLVERS, make_solver
from l2o.report.table import render_table

#: Exit status for errors in the input or the options.
USAGE_ERROR = 2

# typer >= 0.22 vendors click; find its ClickException wherever it lives.
_ClickException: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _error(message: str) -> None:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)


class _OneLineErrors(TyperGroup):
    """Report click's usage errors (missing option, value of the wrong type) as one
    ``error: ...`` line, like the errors of the commands themselves."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
            code = rv if isinstance(rv, int) else 0
        except _ClickException as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # plain `l2o`: the help, not an error
                text = e.format_message()  # typer's rich help has already printed itself
                if text.strip():
                    print(text)
                code = 0
            else:
                _error(e.format_message())
                code = getattr(e, "exit_code", USAGE_ERROR)
        except typer.Abort:
            print("Aborted!", file=sys.stderr)
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=_OneLineErrors,
    name="l2o",
    help="Learning to optimize: solve problems from files, list solvers, compare solvers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Turn errors caused by the input into one line on stderr and exit status 2."""
    try:
        yield
    except (ValueError, OSError, NotImplementedError) as e:  # DataError is a ValueError
        if isinstance(e, OSError) and e.filename is not None and e.strerror:
            _error(f"{e.strerror}: '{e.filename}'")
        else:
            _error(str(e) or type(e).__name__)
        raise typer.Exit(USAGE_ERROR) from None


# ----- list -----------------------------------------------------------------------------------


def _split_names() -> dict[str, str]:
    from l2o.problems.splits import common_splits

    common = ", ".join(sp.name for sp in common_splits())
    out = {"every family": common}
    for name, (family, _) in PRESETS.items():
        natural = [sp.name for sp in family.natural_splits()]
        if natural:
            out[name] = ", ".join(natural)
    return out


@app.command("list")
def list_() -> None:
    """Show the problem families, presets and solvers, with a one-line description each."""
    console = Console()
    sections = (
        ("families", {k: e.description for k, e in FAMILIES.items()}),
        ("presets", {k: d for k, (_, d) in PRESETS.items()}),
        ("solvers", {k: e.description for k, e in SOLVERS.items()}),
        ("out-of-distribution splits (l2o eval --split NAME)", _split_names()),
    )
    for title, items in sections:
        table = Table(title=title, title_justify="left")
        table.add_column("name", no_wrap=True)
        table.add_column("description")
        for name, description in items.items():
            table.add_row(Text(name), Text(description))  # Text: no rich markup in descriptions
        console.print(table)


# ----- solve ----------------------------------------------------------------------------------


def default_solver(kind: str, instances: Instances) -> str:
    """qp: 'apgd' with a box, else 'newton'; lasso: 'fista_restart'; logistic:
    'newton' for l2, 'fista_restart' for l1; mimo: 'wmmse'."""
    if kind == "mimo":
        return "wmmse"
    if kind == "qp":
        return "apgd" if instances.is_constrained else "newton"
    if kind == "logistic" and getattr(instances, "penalty", "l1") == "l2":
        return "newton"
    return "fista_restart"


# typer keeps the line breaks of a help text: one paragraph per line, blank lines between.
SOLVE_HELP = "\n\n".join([
    "Solve one instance or a batch read from FILE and write the solution.",
    "Files: .npz (numpy.savez) or .mat (MATLAB v5/v7), keys below; logistic also reads .csv (one sample per row, "
    "features then the label in the last column, with or without a header line). A leading batch axis B is optional "
    "on every array (arrays without it are shared by the batch); input without one is a single instance. "
    "Unknown keys are errors.",
    "qp: Q (n, n) or (B, n, n) symmetric positive semidefinite; q (n,) or (B, n); optional lower, upper (n,) or "
    "(B, n), may hold -inf/+inf. Objective 1/2 x'Qx + q'x.",
    "lasso: A (m, n) or (B, m, n); b (m,) or (B, m); lam scalar or (B,) >= 0, required (in the file or --lam). "
    "Objective 1/2 ||Ax - b||^2 + lam ||x||_1.",
    "logistic: X (N, d) or (B, N, d); y (N,) or (B, N) in {-1, +1} or {0, 1}; lam (default 1/N, like "
    "scikit-learn's C=1); penalty 'l1' or 'l2' (default 'l2'). Objective mean log(1 + exp(-y Xw)) + lam ||w||_1 "
    "or (lam/2) ||w||^2, no intercept.",
    "mimo: H complex (K, I, K, N, M) or (B, K, I, K, N, M), H[k, i, j] = channel from base station j to user i of "
    "cell k; streams d (default min(M, N)); power scalar, (K,) or (B, K) (default 1); noise scalar or (B,) "
    "(default 1); weights (K, I) or (B, K, I) (default ones). Maximizes the weighted sum-rate (nats) under per-cell "
    "power budgets; default solver wmmse (certificate: relative change of one WMMSE step). --out adds V (the "
    "complex precoders) and sum_rate.",
    "Default solver: qp 'apgd' with a box, else 'newton'; lasso 'fista_restart'; logistic 'newton' for l2, "
    "'fista_restart' for l1. Each instance stops when its certificate (relative duality gap or KKT residual) "
    "is <= --tol.",
    "--checkpoint DIR solves with the trained solver of a run directory (l2o train) instead: the problem kind "
    "follows the family it was trained on (lasso -> lasso; least_squares -> the lasso format with lam = 0 unless "
    "given; quadratic -> qp; logistic -> logistic), and --problem, if given, must agree.",
    "--out FILE.npz (written atomically) holds x ((n,) for one instance, (B, n) for a batch), objective, "
    "iterations, converged, certificate, certificate_name, solver and seconds. Bad input: one line "
    f"'error: ...' on stderr, exit status {USAGE_ERROR}.",
])


@app.command(help=SOLVE_HELP)
def solve(
    problem: Annotated[
        Optional[str],
        typer.Option("--problem", "-p", help=f"problem kind: {', '.join(KINDS)} (required without --checkpoint)"),
    ] = None,
    data: Annotated[Path, typer.Option("--data", "-d", help="input file: .npz, .mat (or .csv for logistic)")] = ...,
    checkpoint: Annotated[
        Optional[Path], typer.Option("--checkpoint", "-c", help="solve with the trained solver of this run directory")
    ] = None,
    solver: Annotated[
        Optional[str], typer.Option("--solver", "-s", help="solver name (see `l2o list`); default: above")
    ] = None,
    tol: Annotated[float, typer.Option(help="relative certificate at which an instance stops, > 0")] = 1e-8,
    max_iter: Annotated[int, typer.Option("--max-iter", help="iteration limit, >= 0")] = 10_000,
    lam: Annotated[
        Optional[float], typer.Option(help="lasso/logistic: regularization, overrides the file's 'lam'")
    ] = None,
    penalty: Annotated[
        Optional[str], typer.Option(help="logistic: 'l1' or 'l2', overrides the file's 'penalty'")
    ] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="write the solution to this .npz file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON on stdout")] = False,
) -> None:
    with _user_errors():
        if problem is None and checkpoint is None:
            raise ValueError("Missing option '--problem' / '-p' (or --checkpoint DIR to solve with a trained solver).")
        if problem is not None and problem not in KINDS:
            raise DataError(f"unknown problem {problem!r}; expected one of {', '.join(KINDS)}")
        if checkpoint is not None and solver is not None:
            raise ValueError("--solver and --checkpoint exclude each other: the checkpoint's trained solver solves")
        if not (tol > 0 and math.isfinite(tol)):
            raise ValueError(f"--tol is {tol}; expected a number > 0")
        if max_iter < 0:
            raise ValueError(f"--max-iter is {max_iter}; expected an integer >= 0")
        if solver is not None and solver not in SOLVERS:
            make_solver(solver)  # raises: unknown solver, with the valid names
        out_path = check_output_path(out) if out is not None else None
        if checkpoint is not None:  # the kind of problem comes from the run's family (l2o.commands)

            trained = load_for_checkpoint(checkpoint, data, problem, lam=lam, penalty=penalty)
            loaded, problem, name, method = trained.loaded, trained.kind, trained.name, trained.solver
        else:
            loaded = load(problem, data, lam=lam, penalty=penalty)
            name = solver or default_solver(problem, loaded.instances)
            method = make_solver(name)
            method.check_problem(loaded.instances)
        check_every = 1 if getattr(method, "needs_hessian", False) else 10
        result = l2o.solve(method, loaded.instances, tol=tol, max_iter=max_iter, check_every=check_every)
        arrays = _solution_arrays(result, loaded, name)
        if out_path is not None:
            save_npz_atomic(out_path, arrays)
    inst = loaded.instances
    n_bad = int((~result.converged).sum())
    if n_bad:
        worst = float(result.certificate.max())
        print(f"warning: {n_bad} of {inst.batch_size} instance(s) did not reach --tol {tol:g} in {max_iter} iterations "
              f"(worst certificate {worst:.3g}); try a larger --max-iter or another --solver", file=sys.stderr)
    if as_json:
        summary = {"problem": problem, "solver": name, "batch_size": inst.batch_size, "dim": inst.dim,
                   "batched": loaded.batched, "tol": tol, "max_iter": max_iter, "data": str(data),
                   "out": None if out_path is None else str(out_path)}
        if checkpoint is not None:
            summary["checkpoint"] = str(checkpoint)
        summary.update({k: plain(v) for k, v in arrays.items() if k not in ("solver", "V")})  # V: complex, in --out
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    _print_solve_summary(problem, name, loaded, result, tol, out_path)


def _solution_arrays(result: l2o.SolveResult, loaded: Loaded, solver: str) -> dict[str, np.ndarray]:
    """The documented output keys; per-instance arrays lose the batch axis for one instance."""
    pick = (lambda a: a) if loaded.batched else (lambda a: a[0])  # noqa: E731
    extra = {}
    if loaded.kind == "mimo":  # the precoders themselves and the sum-rate (nats) next to the packed x
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


def _print_solve_summary(
    problem: str, solver: str, loaded: Loaded, result: l2o.SolveResult, tol: float, out: Path | None
) -> None:
    """A few lines for a person: what was solved, whether it converged, how far."""
    inst = loaded.instances
    console = Console(highlight=False, markup=False)  # file names may contain [brackets]
    B = inst.batch_size
    conv = int(result.converged.sum())
    its = result.iterations.double()
    console.print(f"{problem}: {B} instance{'s' if B > 1 else ''}, n = {inst.dim}, solver {solver}")
    console.print(f"converged {conv}/{B} to {result.certificate_name} <= {tol:g} in {result.seconds:.3g} s")
    if B == 1:
        console.print(f"iterations {int(its[0])}, objective {float(result.objective[0]):.12g}, "
                      f"certificate {float(result.certificate[0]):.3g}")
    else:
        console.print(f"iterations median {float(its.median()):g} (max {float(its.max()):g}), "
                      f"worst certificate {float(result.certificate.max()):.3g}")
    if out is not None:
        console.print(f"wrote {out}")


# ----- train ----------------------------------------------------------------------------------


TRAIN_HELP = "\n\n".join([
    "Meta-train a learned solver from a run config: a TOML file with the tables problem, solver and training "
    "(see examples/).",
    "Writes the run directory (default runs/<config stem>): weights.safetensors, best.safetensors (best "
    "validation), config.toml (resolved), metrics.json, log.csv and a resumable state. --resume continues a "
    "killed run from its last checkpoint to the same result as an uninterrupted one.",
])


@app.command(help=TRAIN_HELP)
def train(
    config: Annotated[Path, typer.Argument(help="run config (.toml)")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="run directory (default runs/<config stem>)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the run checkpointed in the run directory")] = False,
) -> None:
    from l2o.training import load_config
    from l2o.training import train as train_run

    out_dir = out if out is not None else Path("runs") / config.stem
    with _user_errors():
        run_config = load_config(config)
        try:
            result = train_run(run_config, out_dir, resume=resume, progress=True)
        except KeyboardInterrupt:
            _error(f"interrupted; continue from the last checkpoint with: l2o train {config} --out {out_dir} --resume")
            raise typer.Exit(130) from None
    console = Console(highlight=False, markup=False)
    gap = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
    console.print(f"trained {run_config.solver} on {run_config.family}: {result.steps} steps in {result.seconds:.1f} s"
                  + (f", {result.rejected} rejected" if result.rejected else ""))
    console.print(f"validation gap {gap(result.initial_val_gap)} (untrained) -> {gap(result.final_val_gap)} (last), "
                  f"best {gap(result.best_val_gap)} at step {result.best_step}")
    console.print(f"wrote {out_dir}")


# ----- eval -----------------------------------------------------------------------------------


EVAL_HELP = "\n\n".join([
    "Evaluate a trained run (a directory written by l2o train) against classical baselines.",
    "Samples fresh instances of the run's family (a seed distinct from training's unless --seed), computes a "
    "certified reference F*, runs the trained solver and the baselines on the same instances (by default 10 x the "
    "training horizon for all of them) and prints per solver the median and 90th percentile of the iterations and "
    "seconds to reach 1e-2, 1e-4 and 1e-6 relative suboptimality ('-' where not reached) and the final gap.",
    "Writes eval_convergence.png (gap against iterations and time: median and 10-90% band; learned solid, "
    "classical dashed) and eval_records.csv (tidy rows: solver, learned, iteration, instance, time, objective, gap, "
    "thinned to about 100 iterations per solver) into the run directory or --out-dir. --json prints the summary as "
    "JSON (null where not reached).",
    "Default baselines: ista, fista, fista_restart, adam for nonsmooth problems (LASSO, l1 logistic); gd, nesterov, "
    "fista_restart, adam, lbfgs for smooth ones.",
    "--ood (every split) or --split NAME (repeatable) writes the robustness report instead: the trained solver, its "
    "safeguarded form (Safeguard with --fallback and --rule, handing over to the fallback after the horizon) and the "
    "baselines on each out-of-distribution split of the family (the CVPR 2024 shifts x0_+10 ... x0_-100, "
    "objective_shift_1/10, and the family's own: data_scale_2, noise, nnz, lam, correlation, dimension, real "
    "datasets; `l2o list` shows them). Per split a table (iterations and seconds to 1e-4 and 1e-6, fraction reached "
    "within 10 x the horizon, fallback rate) and a figure; all gathered in ood/report.html. Batch default 64 there.",
])


@app.command("eval", help=EVAL_HELP)
def eval_(
    run_dir: Annotated[Path, typer.Argument(metavar="DIR", help="run directory (l2o train)")],
    baselines: Annotated[
        Optional[str], typer.Option(help="comma-separated classical solvers (see `l2o list`); 'none' for none")
    ] = None,
    iterations: Annotated[
        Optional[int], typer.Option(help="iterations of every solver, >= 1 (default 10 x the training horizon)")
    ] = None,
    batch: Annotated[
        Optional[int], typer.Option(help="number of fresh instances, >= 1 (default 256; 64 per split with --ood)")
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help="seed of the instances (default: derived, not training's)")] = None,
    dtype: Annotated[Optional[str], typer.Option(help="float32 or float64 (default: the run's training dtype)")] = None,
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda")] = "cpu",
    out_dir: Annotated[
        Optional[Path], typer.Option("--out-dir", help="where the plot and records go (default: the run directory)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON on stdout")] = False,
    ood: Annotated[bool, typer.Option("--ood", help="robustness report on every OOD split of the family")] = False,
    split: Annotated[
        Optional[list[str]], typer.Option("--split", help="robustness report on this split (repeat for several)")
    ] = None,
    fallback: Annotated[
        Optional[str], typer.Option(help="safeguard fallback for --ood/--split (default fista_restart; wmmse for MIMO)")
    ] = None,
    rule: Annotated[
        Optional[str], typer.Option(help="safeguard rule for --ood/--split: descent (default) or residual")
    ] = None,
    check_every: Annotated[
        Optional[int], typer.Option(help="safeguard checks every this many learned iterations (default 1)")
    ] = None,
) -> None:
    from l2o.commands import evaluate_run, parse_names

    if ood or split:  # the run config's [evaluation] table fills what is not given
        _eval_ood(run_dir, split, baselines, iterations, batch, seed, dtype, out_dir, as_json,
                  fallback, rule, check_every)
        return
    with _user_errors():
        outcome = evaluate_run(run_dir, baselines=parse_names(baselines), iterations=iterations, batch=256 if batch is None else batch,
                               seed=seed, dtype=dtype, device=device, out_dir=out_dir)
    if as_json:
        sys.stdout.write(json.dumps(outcome.summary) + "\n")
        return
    console = Console(highlight=False, markup=False)
    console.print(render_table(outcome.rows, title=outcome.title))
    console.print(f"relative suboptimality (F - F*) / |F*|; F* by {outcome.summary['reference']}")
    for line in outcome.notes:  # the MIMO family: sum-rate fractions and seconds per batch
        console.print(line)
    console.print(f"wrote {outcome.plot}")
    console.print(f"wrote {outcome.records}")


def _eval_ood(run_dir, split, baselines, iterations, batch, seed, dtype, out_dir, as_json, fallback, rule,
              check_every) -> None:
    from l2o.commands import parse_names
    from l2o.evaluation.robustness import evaluate_ood
    from l2o.report.robustness import render_split

    console = Console(highlight=False, markup=False, stderr=as_json)
    with _user_errors():
        outcome = evaluate_ood(run_dir, splits=split or None, baselines=parse_names(baselines), batch=batch, seed=seed,
                               dtype=dtype, out_dir=out_dir, fallback=fallback, rule=rule, check_every=check_every,
                               iterations=iterations, progress=None if as_json else console.print)
    if as_json:
        sys.stdout.write(json.dumps(outcome.summary) + "\n")
        return
    for report in outcome.reports:
        console.print(render_split(report))
    console.print(f"wrote {outcome.html}", soft_wrap=True)


# ----- demo -----------------------------------------------------------------------------------


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


@app.command(help=DEMO_HELP)
def demo(
    problem: Annotated[str, typer.Option(help="a preset (see `l2o list`)")] = "lasso_250x500",
    batch: Annotated[int, typer.Option(help="number of evaluation instances, >= 1")] = 256,
    iterations: Annotated[int, typer.Option(help="iterations per classical solver, >= 1")] = 1000,
    seed: Annotated[int, typer.Option(help="seed of the evaluation instances")] = 0,
    record_every: Annotated[int, typer.Option(help="record the gap every this many iterations")] = 1,
    train_: Annotated[
        bool, typer.Option("--train/--no-train", help="train the learned solver (--no-train: classical solvers only)")
    ] = True,
    steps: Annotated[Optional[int], typer.Option(help="meta-steps of the training (default 300)")] = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="output directory (default l2o-demo when training)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON on stdout")] = False,
) -> None:
    from l2o.commands import run_demo, stderr_say

    with _user_errors():
        try:
            outcome = run_demo(problem=problem, batch=batch, iterations=iterations, seed=seed,
                               record_every=record_every, train=train_, out=out, steps=steps,
                               progress=not as_json and sys.stderr.isatty(), say=stderr_say)
        except KeyboardInterrupt:
            _error("interrupted; run the same `l2o demo` again to resume the training from its last checkpoint")
            raise typer.Exit(130) from None
    for note in outcome.notes:
        stderr_say(f"note: {note}")
    if as_json:
        sys.stdout.write(json.dumps(outcome.summary) + "\n")
        return
    console = Console(highlight=False, markup=False)
    console.print(render_table(outcome.rows, title=outcome.title))
    console.print(f"relative suboptimality (F - F*) / |F*|; F* by {outcome.summary['reference']}")
    for path in (outcome.plot, outcome.records):
        if path is not None:
            console.print(f"wrote {path}")


def main() -> None:
    """Console-script entry point (``l2o = "l2o.cli:main"``)."""
    from l2o.utils.performance import tune_allocator

    tune_allocator()  # the CLI owns its process: keep large temporaries in the heap
    app()


if __name__ == "__main__":
    main()
