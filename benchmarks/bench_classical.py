"""Classical solvers of l2o against the peer libraries, on the same instances and clock.

For a batch of LASSO-preset instances (A 250 x 500 shared, lam = 0.1) and of box QPs
(n = 100, shared Q), it measures the wall time for the WHOLE batch to reach 1e-4 and
1e-6 relative suboptimality on EVERY instance:

* l2o solvers run through ``l2o.solve``: each instance stops on its own criterion
  (the family's certificate in float64, or the fixed-point residual in the working
  dtype), converged instances leave the batch, and the time includes the checks.
  Like the peers, each runs over a ladder of stopping tolerances (1e-1 down), and
  the time to a target is the fastest setting whose true gap meets it. float64
  and float32.
* peers (``peers.py``) run over a ladder of their own tolerances.

It also measures this machine's GEMM throughput for the shape of one batched
iteration and reports, for our solvers, the ratio of the measured time to the time
their iteration count needs at that throughput.

    python benchmarks/bench_classical.py [--batch 1000] [--repeats 3] [--quick]

writes ``benchmarks/results/classical.json`` and ``classical.md`` (atomically).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import peers  # noqa: E402
from _common import write_results  # noqa: E402
from l2o import make_family, make_solver, solve  # noqa: E402
from l2o.evaluation import reference  # noqa: E402
from l2o.utils.performance import tune_allocator  # noqa: E402

RESULTS = Path(__file__).parent / "results"
TARGETS = (1e-4, 1e-6)


def gemm_throughput(batch: int, n: int, dtype: torch.dtype, repeats: int = 30) -> float:
    """GFLOP/s of torch ``addmm`` for ``(batch, n) @ (n, n)``: the GEMM of one iteration."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, n, generator=g, dtype=dtype)
    M = torch.randn(n, n, generator=g, dtype=dtype)
    c = torch.randn(batch, n, generator=g, dtype=dtype)
    for _ in range(3):
        torch.addmm(c, x, M)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        torch.addmm(c, x, M)
        times.append(time.perf_counter() - t)
    return 2 * batch * n * n / float(np.median(times)) / 1e9


LADDER = tuple(10.0 ** -k for k in range(1, 11))  # certificate tolerances 1e-1 ... 1e-10
CRITERIA = ("certificate", "residual")


def our_solver(problem, ref, name: str, dtype: torch.dtype, repeats: int, check_every: int) -> dict:
    """Time for ``name`` to bring every instance below each target (best of ``repeats``).

    Like the peers, the solver runs over a ladder of its own stopping settings: a
    criterion (the family's float64 certificate, or the fixed-point residual in the
    working dtype) and a tolerance from 1e-1 down; the time to a target is the
    fastest setting whose true gap (against the reference) meets it on every instance.
    """
    inst = problem.to(dtype=dtype)
    solve(make_solver(name), inst.index(torch.arange(min(8, inst.batch_size))), tol=1e-6)  # warm-up
    row = {"solver": name, "library": f"l2o (torch {torch.__version__})", "dtype": str(dtype).replace("torch.", ""),
           "time_to": {}, "instance_iterations": {}, "max_iterations": {}, "setting": {}, "ladder": []}
    worst = float("inf")
    for target in TARGETS:
        key = peers.target_key(target)
        row["time_to"][key] = None
        for criterion in CRITERIA:
            for tol in LADDER:
                best, result = float("inf"), None
                for _ in range(repeats):
                    r = solve(make_solver(name), inst, tol=tol, max_iter=5_000, check_every=check_every,
                              criterion=criterion)
                    if r.seconds < best:
                        best, result = r.seconds, r
                gap = float(ref.relative_gap(problem.objective(result.x.to(torch.float64))).max())
                row["ladder"].append({"criterion": criterion, "tol": tol, "seconds": best, "worst_gap": gap})
                worst = min(worst, gap)
                if gap <= target:
                    if row["time_to"][key] is None or best < row["time_to"][key]:
                        row["time_to"][key] = best
                        row["instance_iterations"][key] = int(result.iterations.sum())
                        row["max_iterations"][key] = int(result.iterations.max())
                        row["setting"][key] = {"criterion": criterion, "tol": tol}
                    break
    row["worst_gap"] = worst
    return row


def gemm_bound(row: dict, flops_per_instance_iteration: float, gflops: float) -> dict:
    """Measured time / (instance-iterations x flops per instance-iteration / throughput)."""
    out = {}
    for key, t in row["time_to"].items():
        its = row["instance_iterations"].get(key)
        if t is None or not its:
            continue
        need = its * flops_per_instance_iteration / (gflops * 1e9)
        out[key] = {"gemm_seconds": need, "ratio": t / need}
    return out


def bench_problem(
    kind: str, batch: int, repeats: int, ours: list[str], which_peers, gflops: dict, check_every: int
) -> dict:
    preset = {"lasso": "lasso_250x500", "box_qp": "box_qp_100"}[kind]
    problem = make_family(preset).sample(batch, 0)
    t = time.perf_counter()
    ref = reference(problem)
    ref_seconds = time.perf_counter() - t
    f_star = ref.objective.numpy()
    denom = ref.gap_denominator.numpy()
    rows = []
    n = problem.dim
    for dtype in (torch.float64, torch.float32):
        for name in ours:
            row = our_solver(problem, ref, name, dtype, repeats, check_every)
            # One batched iteration is one (B, n) x (n, n) GEMM: 2 n^2 flops per instance.
            row["gemm_bound"] = gemm_bound(row, 2.0 * n * n, gflops[(kind, row["dtype"])])
            rows.append(row)
            print(f"  {name:14s} {row['dtype']:8s} {row['time_to']}", flush=True)
    if kind == "lasso":
        peer_rows = peers.lasso_peers(problem.A.numpy(), problem.b.numpy(), float(problem.lam[0]), f_star, denom,
                                      TARGETS, which=which_peers, repeats=repeats)
    else:
        peer_rows = peers.box_qp_peers(problem.Q.numpy(), problem.q.numpy(), problem.lower.numpy(),
                                       problem.upper.numpy(), f_star, denom, TARGETS, which=which_peers,
                                       repeats=repeats)
    for r in peer_rows:
        r.setdefault("dtype", "float64")
        print(f"  {r['solver']:14s} {r['dtype']:8s} {r['time_to']} {r.get('error', '')}", flush=True)
    rows.extend(peer_rows)
    extra = {}
    if kind == "box_qp":
        extra["active_bound_fraction"] = float(((ref.x <= problem.lower) | (ref.x >= problem.upper)).double().mean())
    return {"preset": preset, "batch": batch, "reference_seconds": ref_seconds, "reference": ref.method,
            "rows": rows, **extra}


def fastest(rows: list[dict], key: str, library_prefix: str | None = None, exclude_prefix: str | None = None):
    cands = [r for r in rows if r["time_to"].get(key) is not None]
    if library_prefix:
        cands = [r for r in cands if r["library"].startswith(library_prefix)]
    if exclude_prefix:
        cands = [r for r in cands if not r["library"].startswith(exclude_prefix)]
    return min(cands, key=lambda r: r["time_to"][key]) if cands else None


def to_markdown(results: dict) -> str:
    lines = [f"# Classical benchmark ({results['date']})", "",
             f"Machine: {results['machine']}; torch threads {results['torch_threads']}.", "",
             "GEMM throughput of one batched iteration (torch addmm, (B, n) @ (n, n)):", ""]
    for k, v in results["gemm_gflops"].items():
        lines.append(f"- {k}: {v:.1f} GFLOP/s")
    for kind, res in results["problems"].items():
        lines += ["", f"## {res['preset']}: batch {res['batch']}", "",
                  "| solver | library | dtype | to 1e-4 (s) | to 1e-6 (s) | iterations (max, 1e-6) "
                  "| measured / GEMM-bound (1e-6) |",
                  "|---|---|---|---|---|---|---|"]
        for r in sorted(res["rows"], key=lambda r: (r["time_to"].get("1e-06") is None, r["time_to"].get("1e-06") or 0)):
            t4, t6 = r["time_to"].get("1e-04"), r["time_to"].get("1e-06")
            its = r.get("max_iterations", {}).get("1e-06", "")
            gb = r.get("gemm_bound", {}).get("1e-06", {}).get("ratio")
            fmt = lambda t: "-" if t is None else f"{t:.3f}"  # noqa: E731
            note = f" ({r['note']})" if r.get("note") else ""
            err = f" error: {r['error']}" if r.get("error") else ""
            lines.append(f"| {r['solver']}{note}{err} | {r['library']} | {r.get('dtype', 'float64')} | {fmt(t4)} | "
                         f"{fmt(t6)} | {its} | {'' if gb is None else f'{gb:.2f}x'} |")
        for key in ("1e-04", "1e-06"):
            for dt in ("float64", "float32"):
                ours = fastest([r for r in res["rows"] if r.get("dtype") == dt], key, library_prefix="l2o")
                peer = fastest(res["rows"], key, exclude_prefix="l2o")
                if ours and peer:
                    t_ours, t_peer = ours["time_to"][key], peer["time_to"][key]
                    lines.append(f"\n{key}, {dt}: fastest l2o `{ours['solver']}` {t_ours:.3f} s vs fastest peer "
                                 f"`{peer['solver']}` {t_peer:.3f} s: {t_peer / t_ours:.2f}x")
        if "active_bound_fraction" in res:
            lines.append(f"\nActive bounds at the optimum: {100 * res['active_bound_fraction']:.0f}%.")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--check-every", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="batch 100, 1 repeat, no CVXPY (a smoke run)")
    ap.add_argument("--only", choices=["lasso", "box_qp"], help="run one problem (results go to classical-<name>.*)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.quick:
        args.batch, args.repeats = 100, 1
    torch.set_num_threads(2)
    tune_allocator()
    lasso_peers = ["sklearn_loop", "sklearn_multitarget", "skglm", "celer"] + ([] if args.quick else ["cvxpy_osqp"])
    gflops = {}
    for kind, n in (("lasso", 500), ("box_qp", 100)):
        for dt in (torch.float64, torch.float32):
            gflops[(kind, str(dt).replace("torch.", ""))] = gemm_throughput(args.batch, n, dt)
    print("GEMM GFLOP/s:", {f"{k[0]}/{k[1]}": round(v, 1) for k, v in gflops.items()}, flush=True)
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}", "torch_threads": torch.get_num_threads(),
        "command": " ".join(["python"] + sys.argv), "targets": list(TARGETS),
        "gemm_gflops": {f"{k[0]} ({k[1]}, B={args.batch})": v for k, v in gflops.items()}, "problems": {},
    }
    ours = ["fista_polish", "fista_restart", "fista", "ista"]
    if args.only in (None, "lasso"):
        print("LASSO", flush=True)
        results["problems"]["lasso"] = bench_problem("lasso", args.batch, args.repeats, ours, lasso_peers, gflops,
                                                     args.check_every)
    if args.only in (None, "box_qp"):
        print("box QP", flush=True)
        results["problems"]["box_qp"] = bench_problem("box_qp", args.batch, args.repeats,
                                                      ["apgd", "fista_polish", "pgd"], None, gflops, args.check_every)
    suffix = ("-quick" if args.quick else "") + (f"-{args.only}" if args.only else "")
    md = to_markdown(results)
    write_results(args.out, f"classical{suffix}", results, md)
    print(md)


if __name__ == "__main__":
    main()
