"""`l2o solve` on a LASSO file against scikit-learn's multi-target Lasso, to 1e-6 on every instance.

The file holds ``--batch`` instances of the preset ``lasso_250x500`` (A 250 x 500 shared,
lam = 0.1), written with the project's own writer (``l2o.io.save_npz_atomic``), and is
solved two ways:

* ``l2o solve --problem lasso --data FILE --tol T --json --out X.npz`` in a FRESH Python
  process, as a user runs it (default solver and threads); the time is the solve's own
  ``seconds`` from its JSON output (it excludes the imports and reading the file, and
  includes the cold first iterations and every certificate check);
* the same path with float32 iterates certified in float64 (``l2o.solve(...,
  iterate_dtype=torch.float32)`` on the file's instances, a fresh process, ``seconds``):
  what ``l2o solve`` does once the command passes ``iterate_dtype`` (a proposed change);
* scikit-learn's ``Lasso(alpha=lam/m, fit_intercept=False, tol=T, precompute=P)``
  ``.fit(A, B.T)`` (one fit with a 2-D target), P in {True, False} and BLAS threads in
  {1, default}; the time is the wall time of ``fit`` after a warm-up fit of one instance;
  the fastest configuration is reported.

Each solver uses the LOOSEST tolerance of its own stopping rule (a ladder from loose to
tight) at which EVERY instance reaches relative suboptimality (F - F*) / |F*| <= 1e-6
against l2o's certified reference at 1e-12 (``l2o.reference``, polished: exact), F in
float64; at that tolerance each is timed ``--repeats`` times, interleaved, best of.
``--before SRC`` also times another l2o source tree (e.g. an export of an older
commit) the same way, side by side.

    python benchmarks/bench_solve.py [--batch 1000] [--repeats 5] [--before /tmp/old/src]

writes ``benchmarks/results/solve.json`` and ``solve.md`` (atomically).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import l2o
from _common import write_results  # benchmarks/_common.py: the script's folder is sys.path[0]
from l2o.io import save_npz_atomic

RESULTS = Path(__file__).parent / "results"
PRESET = "lasso_250x500"
TARGET = 1e-6
REFERENCE_TOL = 1e-12
#: Stopping tolerances tried, loose to tight (l2o: the certificate; scikit-learn: its tol).
L2O_LADDER = (1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6, 3e-7, 1e-7, 3e-8, 1e-8, 1e-9, 1e-10)
SKLEARN_LADDER = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10)
L2O_SOURCE = Path(l2o.__file__).resolve().parents[1]


def objective(A: np.ndarray, X: np.ndarray, B: np.ndarray, lam: float) -> np.ndarray:
    """F(x_i) = 1/2 ||A x_i - b_i||^2 + lam ||x_i||_1 in float64: ``(k, n) -> (k,)``."""
    R = X @ A.T - B
    return 0.5 * np.einsum("ij,ij->i", R, R) + lam * np.abs(X).sum(axis=1)


class Gaps:
    """Worst relative suboptimality over the batch against the reference."""

    def __init__(self, A: np.ndarray, B: np.ndarray, lam: float, f_star: np.ndarray, denominator: np.ndarray):
        self.A, self.B, self.lam, self.f_star, self.den = A, B, lam, f_star, denominator

    def worst(self, X: np.ndarray) -> float:
        return float(np.max((objective(self.A, X, self.B, self.lam) - self.f_star) / self.den))


def l2o_solve(source: Path, data: Path, tol: float, workdir: Path) -> dict:
    """One ``l2o solve`` in a fresh process with ``source`` first on its path."""
    out = workdir / "x.npz"
    env = {**os.environ, "PYTHONPATH": str(source)}
    cmd = [sys.executable, "-c", "import sys; from l2o.cli import main; sys.exit(main())",
           "solve", "--problem", "lasso", "--data", str(data), "--tol", repr(tol), "--json", "--out", str(out)]
    wall = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - wall
    if proc.returncode != 0:
        raise RuntimeError(f"l2o solve failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    summary = json.loads(proc.stdout)
    with np.load(out) as f:
        X, its, conv = f["x"], f["iterations"], f["converged"]
    return {"seconds": float(summary["seconds"]), "process_seconds": wall, "solver": summary["solver"], "x": X,
            "iterations_median": float(np.median(its)), "iterations_max": int(its.max()),
            "converged": int(conv.sum())}


#: ``l2o solve``'s path (read the file, ``l2o.solve`` with the default LASSO solver) with
#: float32 iterates certified in float64 (``iterate_dtype``): the change to the command
#: that the report proposes, timed the same way.
FLOAT32_DRIVER = """
import json, sys, numpy as np, torch, l2o
from l2o.io import load
from l2o.utils.performance import tune_allocator
tune_allocator()
data, tol, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
loaded = load("lasso", data)
r = l2o.solve(l2o.make_solver("fista_restart"), loaded.instances, tol=tol, iterate_dtype=torch.float32)
np.savez(out, x=r.x.numpy(), iterations=r.iterations.numpy(), converged=r.converged.numpy())
print(json.dumps({"seconds": r.seconds, "solver": "fista_restart"}))
"""


def l2o_float32_iterates(source: Path, data: Path, tol: float, workdir: Path) -> dict:
    """``FLOAT32_DRIVER`` in a fresh process with ``source`` first on its path."""
    out = workdir / "x32.npz"
    env = {**os.environ, "PYTHONPATH": str(source)}
    wall = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", FLOAT32_DRIVER, str(data), repr(tol), str(out)], env=env,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - wall
    if proc.returncode != 0:
        raise RuntimeError(f"float32 driver failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    summary = json.loads(proc.stdout)
    with np.load(out) as f:
        X, its, conv = f["x"], f["iterations"], f["converged"]
    return {"seconds": float(summary["seconds"]), "process_seconds": wall, "solver": summary["solver"], "x": X,
            "iterations_median": float(np.median(its)), "iterations_max": int(its.max()),
            "converged": int(conv.sum())}


def sklearn_fit(A: np.ndarray, B: np.ndarray, lam: float, tol: float, precompute: bool, threads: int | None) -> dict:
    """One multi-target fit (``threads``: BLAS limit, None for the default)."""
    # optional dependencies of the benchmark (scikit-learn brings threadpoolctl)
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso
    from threadpoolctl import threadpool_limits

    m = A.shape[0]
    limit = threadpool_limits(limits=threads, user_api="blas") if threads else contextlib.nullcontext()
    with limit, warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = Lasso(alpha=lam / m, fit_intercept=False, tol=tol, precompute=precompute, max_iter=100_000)
        t = time.perf_counter()
        est.fit(A, B.T)
        seconds = time.perf_counter() - t
    return {"seconds": seconds, "x": np.atleast_2d(est.coef_)}


def scan(run, ladder, gaps: Gaps, name: str) -> dict:
    """Climb ``ladder`` (loose to tight) to the first tolerance whose worst gap is <= TARGET."""
    rungs = []
    for tol in ladder:
        r = run(tol)
        worst = gaps.worst(r.pop("x"))
        rungs.append({"tol": tol, "worst_gap": worst, **r})
        print(f"  {name:28s} tol {tol:8.0e}: worst gap {worst:9.2e}, {r['seconds']:.3f} s", flush=True)
        if worst <= TARGET:
            return {"tol": tol, "ladder": rungs}
    return {"tol": None, "ladder": rungs}


def breakdown(problem, tol: float) -> dict:
    """Where the time of one in-process ``l2o.solve`` goes (warm: a second solve)."""
    solver = l2o.make_solver("fista_restart")
    times = {"steps": 0.0, "checks": 0.0}
    step, certified = solver.step, type(problem).certified

    def timed_step(p, s):
        t = time.perf_counter()
        out = step(p, s)
        times["steps"] += time.perf_counter() - t
        return out

    def timed_certified(self, x, tol):
        t = time.perf_counter()
        out = certified(self, x, tol)
        times["checks"] += time.perf_counter() - t
        return out

    l2o.solve(solver, problem, tol=tol)  # warm-up
    solver.step = timed_step
    type(problem).certified = timed_certified
    try:
        times = {"steps": 0.0, "checks": 0.0}
        res = l2o.solve(solver, problem, tol=tol)
    finally:
        type(problem).certified = certified
    total = res.seconds
    return {"tol": tol, "seconds": total, "steps": times["steps"], "checks": times["checks"],
            "rest": total - times["steps"] - times["checks"], "instance_iterations": int(res.iterations.sum()),
            "torch_threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--before", type=Path, help="another l2o source tree (its src folder) to time side by side")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    problem = l2o.make_family(PRESET).sample(args.batch, args.seed)
    A, B, lam = problem.A.numpy(), problem.b.numpy(), float(problem.lam[0])
    t = time.perf_counter()
    ref = l2o.reference(problem, tol=REFERENCE_TOL)
    ref_seconds = time.perf_counter() - t
    gaps = Gaps(A, B, lam, ref.objective.numpy(), ref.gap_denominator.numpy())
    print(f"reference: {ref.method} ({ref_seconds:.1f} s)", flush=True)

    sources = {"l2o": L2O_SOURCE}
    if args.before is not None:
        sources["l2o (before)"] = args.before.resolve()
    sk_configs = {
        f"sklearn precompute={p} threads={th or 'default'}": (p, th) for p in (True, False) for th in (1, None)
    }
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "lasso.npz"
        save_npz_atomic(data, {"A": A, "b": B, "lam": np.float64(lam)})
        runners = {name: (lambda tol, src=src: l2o_solve(src, data, tol, work)) for name, src in sources.items()}
        runners["l2o.solve, float32 iterates"] = lambda tol: l2o_float32_iterates(L2O_SOURCE, data, tol, work)
        for name, (pre, th) in sk_configs.items():
            runners[name] = lambda tol, pre=pre, th=th: sklearn_fit(A, B, lam, tol, pre, th)
        sklearn_fit(A, B[:1], lam, 1e-4, True, 1)  # warm-up: imports, first call
        print("scanning tolerances", flush=True)
        ladders = {name: scan(run, L2O_LADDER if name.startswith("l2o") else SKLEARN_LADDER, gaps, name)
                   for name, run in runners.items()}
        print(f"timing at the chosen tolerances, best of {args.repeats}, interleaved", flush=True)
        timings: dict[str, list[dict]] = {name: [] for name in runners if ladders[name]["tol"] is not None}
        for _ in range(args.repeats):
            for name in timings:
                r = runners[name](ladders[name]["tol"])
                r["worst_gap"] = gaps.worst(r.pop("x"))
                timings[name].append(r)
    load_after = os.getloadavg()

    rows = []
    for name, runs in timings.items():
        best = min(runs, key=lambda r: r["seconds"])
        rows.append({"name": name, "tol": ladders[name]["tol"], "seconds": best["seconds"],
                     "seconds_all": [r["seconds"] for r in runs], "worst_gap": max(r["worst_gap"] for r in runs),
                     **{k: v for k, v in best.items() if k not in ("seconds", "worst_gap")}})
    ours = next(r for r in rows if r["name"] == "l2o")
    sklearn = min((r for r in rows if r["name"].startswith("sklearn")), key=lambda r: r["seconds"])
    import sklearn as sk  # optional dependency of the benchmark

    results = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "preset": PRESET, "batch": args.batch, "seed": args.seed,
        "target": TARGET, "reference": ref.method, "reference_tol": REFERENCE_TOL, "reference_seconds": ref_seconds,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "torch": torch.__version__, "sklearn": sk.__version__, "load_average_before": load_before,
        "load_average_after": load_after, "repeats": args.repeats, "sources": {k: str(v) for k, v in sources.items()},
        "ladders": ladders, "rows": rows, "ratio_sklearn_over_l2o": sklearn["seconds"] / ours["seconds"],
        "ratio_sklearn_over_l2o_float32_iterates": sklearn["seconds"] / next(
            r["seconds"] for r in rows if r["name"] == "l2o.solve, float32 iterates"),
        "fastest_sklearn": sklearn["name"], "breakdown": breakdown(problem, ours["tol"]),
    }
    write_results(args.out, "solve", results, to_markdown(results))
    print(to_markdown(results))


def to_markdown(res: dict) -> str:
    lines = [f"# `l2o solve` vs scikit-learn on LASSO ({res['date']})", "",
             f"Command: `python benchmarks/bench_solve.py --batch {res['batch']} --repeats {res['repeats']}"
             + (" --before SRC`" if len(res["sources"]) > 1 else "`"), "",
             f"{res['batch']} instances of `{res['preset']}` (A 250 x 500 shared, lam = 0.1) in one .npz file; every "
             f"solver at the loosest tolerance of its own stopping rule at which EVERY instance reaches relative "
             f"suboptimality <= {res['target']:g} against the reference ({res['reference']}). l2o: `l2o solve "
             f"--problem lasso` in a fresh process, its own `seconds` (process wall in the last column); "
             f"scikit-learn: one multi-target `Lasso.fit(A, B.T)`, wall time. Best of {res['repeats']}, interleaved.",
             "", f"Machine: {res['machine']}; torch {res['torch']}, scikit-learn {res['sklearn']}; load average "
             f"{res['load_average_before'][0]:.2f} before, {res['load_average_after'][0]:.2f} after (the machine is "
             "shared: times vary between runs).", "",
             "| solver | tolerance | seconds (best) | all runs | worst gap | iterations (median / max) "
             "| process wall |",
             "|---|---|---|---|---|---|---|"]
    for r in sorted(res["rows"], key=lambda r: r["seconds"]):
        its = f"{r['iterations_median']:g} / {r['iterations_max']}" if "iterations_max" in r else ""
        wall = f"{r['process_seconds']:.2f}" if "process_seconds" in r else ""
        runs = ", ".join(f"{s:.3f}" for s in r["seconds_all"])
        lines.append(f"| {r['name']} | {r['tol']:g} | {r['seconds']:.3f} | {runs} | {r['worst_gap']:.2e} | {its} "
                     f"| {wall} |")
    b = res["breakdown"]
    lines += ["", f"l2o vs the fastest scikit-learn ({res['fastest_sklearn']}): "
              f"{res['ratio_sklearn_over_l2o']:.2f}x as `l2o solve` runs today, "
              f"{res['ratio_sklearn_over_l2o_float32_iterates']:.2f}x with float32 iterates (> 1: l2o faster).", "",
              f"Where the time of one warm in-process `l2o.solve` (fista_restart, tol {b['tol']:g}, "
              f"{b['torch_threads']} torch threads) goes: {b['seconds']:.3f} s = steps {b['steps']:.3f} s "
              "+ certificate "
              f"checks {b['checks']:.3f} s + the rest (compaction, float64 copies) {b['rest']:.3f} s; "
              f"{b['instance_iterations']} instance-iterations."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
