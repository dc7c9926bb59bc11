"""``l2o solve``: solve one instance or a batch read from a file and write the solution
(``l2o.workflows.checkpoint_solve.solve_file``)."""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer

from l2o.cli.options import NOT_CONVERGED, USAGE_ERROR, console, user_errors
from l2o.evaluation import SolveResult
from l2o.io import KINDS, DataError, Loaded, check_output_path, save_npz_atomic
from l2o.registry import CLASSICAL, make_solver
from l2o.utils.jsonable import jsonable
from l2o.workflows.checkpoint_solve import ITERATE_DTYPES, TrainingMismatchWarning, solve_file

#: How the library's messages about the data file name ``l2o solve``'s options.
FLAGS = {"problem": "--problem", "lam": "--lam", "penalty": "--penalty"}

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
    "--checkpoint DIR_OR_NAME solves with the trained solver of a run directory (l2o train) or a bundled "
    "pretrained solver (l2o list --pretrained) instead: the problem kind follows the family it was trained on "
    "(lasso -> lasso; least_squares -> the lasso format with lam = 0 unless given; quadratic -> qp; logistic -> "
    "logistic; mimo -> mimo), and --problem, if given, must agree. Past its training horizon it hands over to "
    "its family's classical fallback (fista_restart; wmmse for mimo).",
    "--out FILE.npz (written atomically) holds x ((n,) for one instance, (B, n) for a batch), objective, "
    "iterations, converged, certificate, certificate_name, solver and seconds.",
    "--iterate-dtype: auto (default) iterates in float32 for the first-order solvers on float64 lasso/qp/logistic "
    "data and certifies every instance in float64 (an instance whose float32 iterates stall continues in float64); "
    "float32 or float64 force the dtype of the iterates.",
    f"Exit status: 0 when every instance converged; {NOT_CONVERGED} when some instance did not reach --tol within "
    "--max-iter (a 'warning: ...' line on stderr; the summary line 'converged K/B', the --json field 'converged' and "
    f"--out are still written); {USAGE_ERROR} for bad input or options (one line 'error: ...' on stderr).",
])


def solve(
    problem: Annotated[
        str | None,
        typer.Option("--problem", "-p", help=f"problem kind: {', '.join(KINDS)} (required without --checkpoint)"),
    ] = None,
    data: Annotated[Path, typer.Option("--data", "-d", help="input file: .npz, .mat (or .csv for logistic)")] = ...,
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", "-c", help="solve with the trained solver of this run "
                                     "directory or bundled pretrained name (l2o list --pretrained)")
    ] = None,
    solver: Annotated[
        str | None, typer.Option("--solver", "-s", help="solver name (see `l2o list`); default: above")
    ] = None,
    tol: Annotated[float, typer.Option(help="relative certificate at which an instance stops, > 0")] = 1e-8,
    max_iter: Annotated[int, typer.Option("--max-iter", help="iteration limit, >= 0")] = 10_000,
    lam: Annotated[
        float | None, typer.Option(help="lasso/logistic: regularization, overrides the file's 'lam'")
    ] = None,
    penalty: Annotated[
        str | None, typer.Option(help="logistic: 'l1' or 'l2', overrides the file's 'penalty'")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write the solution to this .npz file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON on stdout")] = False,
    iterate_dtype: Annotated[
        str, typer.Option("--iterate-dtype", help="auto (float32 iterates for first-order solvers on lasso/qp/"
                          "logistic data, certified in float64), float32 or float64")
    ] = "auto",
    device: Annotated[str, typer.Option(help="torch device of the solve: cpu or cuda")] = "cpu",
) -> None:
    with user_errors({"device": "--device"}):  # the options are checked here, with their flags, in this order
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
        if solver is not None and solver not in CLASSICAL:
            make_solver(solver)  # raises: unknown solver, with the valid names
        if iterate_dtype not in ITERATE_DTYPES:
            raise ValueError(f"--iterate-dtype is {iterate_dtype!r}; expected one of {', '.join(ITERATE_DTYPES)}")
        out_path = check_output_path(out, name="--out") if out is not None else None
        with warnings.catch_warnings():  # printed below as one line each
            warnings.simplefilter("ignore", TrainingMismatchWarning)
            solution = solve_file(data, problem, checkpoint=checkpoint, solver=solver, tol=tol, max_iter=max_iter,
                                  lam=lam, penalty=penalty, names=FLAGS, iterate_dtype=iterate_dtype,
                                  device=device)
        for note in solution.notes:  # data unlike the checkpoint's training instances
            print(f"warning: {note}", file=sys.stderr)
        if out_path is not None:
            save_npz_atomic(out_path, solution.arrays)
    loaded, result, name = solution.loaded, solution.result, solution.solver
    inst = loaded.instances
    n_bad = int((~result.converged).sum())
    if n_bad:
        worst = float(result.certificate.max())
        print(f"warning: {n_bad} of {inst.batch_size} instance(s) did not reach --tol {tol:g} in {max_iter} iterations "
              f"(worst certificate {worst:.3g}); try a larger --max-iter or another --solver", file=sys.stderr)
    if as_json:
        summary = {"problem": solution.kind, "solver": name, "batch_size": inst.batch_size, "dim": inst.dim,
                   "batched": loaded.batched, "tol": tol, "max_iter": max_iter, "data": str(data),
                   "out": None if out_path is None else str(out_path), "iterate_dtype": solution.iterate_dtype}
        if checkpoint is not None:
            summary["checkpoint"] = str(checkpoint)
        # V: complex, in --out only
        summary.update({k: jsonable(v) for k, v in solution.arrays.items() if k not in ("solver", "V")})
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        print_summary(solution.kind, name, loaded, result, tol, out_path)
    if n_bad:  # scripts see non-convergence in the exit status
        raise typer.Exit(NOT_CONVERGED)


def print_summary(problem: str, solver: str, loaded: Loaded, result: SolveResult, tol: float, out: Path | None) -> None:
    """A few lines for a person: what was solved, whether it converged, how far."""
    inst = loaded.instances
    con = console()  # no markup: file names may contain [brackets]
    B = inst.batch_size
    conv = int(result.converged.sum())
    its = result.iterations.double()
    con.print(f"{problem}: {B} instance{'s' if B > 1 else ''}, n = {inst.dim}, solver {solver}")
    if result.one_shot:  # a closed form (mrt, zf, rzf): one step, not iterated to --tol
        con.print(f"closed form: one step in {result.seconds:.3g} s (not iterated to --tol)")
    else:
        con.print(f"converged {conv}/{B} to {result.certificate_name} <= {tol:g} in {result.seconds:.3g} s")
    if B == 1:
        con.print(f"iterations {int(its[0])}, objective {float(result.objective[0]):.12g}, "
                  f"certificate {float(result.certificate[0]):.3g}")
    else:
        con.print(f"iterations median {float(its.median()):g} (max {float(its.max()):g}), "
                  f"worst certificate {float(result.certificate.max()):.3g}")
    if out is not None:
        con.print(f"wrote {out}")
