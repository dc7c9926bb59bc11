"""Does worse conditioning leave a learned solver more room? The 5x yardstick of
``bench_speed.py`` on LASSO presets with correlated dictionary columns.

For each correlation rho (Toeplitz rho^|i-j| between columns; 0 is the preset) it trains
LFISTA with the settings of ``examples/lfista_lasso.toml`` on that family, then counts on
1000 fresh float64 instances the iterations until every instance (and the median one)
is at 1e-4 relative suboptimality for LFISTA and FISTA with restart, and the Gram
products that CG on the optimal support and signs (``lasso_oracle``) needs. Iteration
counts only: both solvers cost one Gram product per iteration (``bench_speed.py``).

    python benchmarks/bench_conditioning.py [--correlations 0,0.5,0.8]

writes ``benchmarks/results/conditioning.{json,md}`` (atomically); runs go to
``runs/bench-conditioning`` (``l2o.training.prepare_run``: a cut-off run is resumed, a
finished one reused).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import lasso_oracle  # noqa: E402
from _common import write_results  # noqa: E402
from l2o import make_solver, run  # noqa: E402
from l2o.evaluation import reference  # noqa: E402
from l2o.training import RunConfig, load_run, prepare_run  # noqa: E402
from l2o.training.config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1e-4


def measure(rho: float, workdir: Path, batch: int, seed: int = 2024) -> dict:
    data = load_config(ROOT / "examples" / "lfista_lasso.toml").to_dict()
    data["problem"] = {"family": "lasso_250x500", "correlation": rho}
    config = RunConfig.from_dict(data)
    run_dir = workdir / f"lfista_rho_{rho:g}"
    status = prepare_run(config, run_dir)
    learned = load_run(run_dir)
    problem = learned.family.sample(batch, seed, dtype=torch.float64)
    ref = reference(problem)
    row = {"correlation": rho, "run": status}
    for name, solver in (("lfista", learned.solver.double()), ("fista_restart", make_solver("fista_restart"))):
        its = run(solver, problem, max_iter=2000, reference=ref).iterations_to(TARGET)
        row[name] = {"all": int(its.max()) if bool((its >= 0).all()) else None,
                     "median": float(its.double().median())}
    gaps = lasso_oracle.support_oracle_cg(problem, ref, 300)
    row["oracle_cg"] = {"all": lasso_oracle.first_iteration_all(gaps["F"], TARGET),
                        "median": lasso_oracle.first_iteration_median(gaps["F"], TARGET)}
    kappa = lasso_oracle.support_condition_numbers(problem, ref)
    row["support_condition"] = {"median": float(kappa.median()), "max": float(kappa.max())}
    row["support_size_median"] = float((ref.x != 0).sum(-1).double().median())
    return row


def to_markdown(results: dict) -> str:
    lines = [f"# Conditioning and the 5x yardstick ({results['date']})", "", f"Command: `{results['command']}`", "",
             f"Iterations (Gram products) until every instance / the median instance of {results['batch']} fresh "
             f"float64 instances is at relative suboptimality {TARGET:g}. LFISTA is retrained on each family.", "",
             "| correlation | cond(A_S^T A_S) median / max | FISTA-restart | oracle CG | LFISTA | "
             "FISTA-restart / oracle | LFISTA speedup |", "|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        f, o, lf = r["fista_restart"], r["oracle_cg"], r["lfista"]
        ratio = lambda a, b: "-" if a is None or b is None else f"{a / b:.1f}x"  # noqa: E731
        lines.append(f"| {r['correlation']:g} | {r['support_condition']['median']:.1f} / "
                     f"{r['support_condition']['max']:.1f} | {f['all']} / {f['median']:.0f} | "
                     f"{o['all']} / {o['median']:.0f} | {lf['all']} / {lf['median']:.0f} | "
                     f"{ratio(f['all'], o['all'])} | {ratio(f['all'], lf['all'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--correlations", default="0,0.5,0.8")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "bench-conditioning")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    torch.set_num_threads(2)
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join(["python"] + sys.argv),
               "batch": args.batch, "rows": []}
    for rho in (float(c) for c in args.correlations.split(",")):
        print(f"correlation {rho:g}", flush=True)
        results["rows"].append(measure(rho, args.workdir, args.batch))
        write_results(args.out, "conditioning", results, to_markdown(results))
    print(to_markdown(results))


if __name__ == "__main__":
    main()
