"""The multi-query paradox of zeroth-order optimization, measured; and batched queries vs a loop.

Lin, Song, Xu, *The Multi-Query Paradox in Zeroth-Order Optimization* (arXiv 2509.15552),
abstract: at a fixed total budget Q of function queries, with q queries per iteration,
ZO-Avg (averaging q random-direction estimates) is best with q = 1, and ZO-Align
(projection onto the span of the q directions) is best with q = n. The paper's body could
not be read, so its accounting is unknown; this script measures the q-sweep of both rules
under three explicit accountings (``l2o.zeroth_order.QueryAccounting``):

* ``q+1``: forward differences with the base value f(x) shared and counted;
* ``q``:   forward differences, one query per direction (the base value free);
* ``2q``:  central differences, both evaluations counted.

For each dimension n, problem, noise level, rule and q in {1, 2, 4, ..., n}, ``zo_gd`` (the
library's optimizer; Gaussian directions for ZO-Avg, orthonormal ones for ZO-Align; constant
step) runs on 3 instances x a grid of 17 step sizes c / L (c = 2^3, 2^2.5, ..., 2^0.5, 2^0, 2^-1,
..., 2^-10) in one batch until the budget is spent; the step is tuned per (problem, n, noise, rule, q,
accounting) as the grid value with the smallest median final gap over the instances, and
that median (with min and max) is reported. The ``q+1`` and ``q`` accountings come from one
forward-difference run read at their own iteration counts; ``2q`` from a central-difference
run.

Problems (3 instances each): diagonal quadratics with spectrum log-spaced in [1, kappa],
kappa = 10 and 100 (Gaussian directions and both rules are rotation invariant, so a
diagonal quadratic stands for every quadratic with that spectrum), l2-regularised
logistic regression (lam = 0.01, N = 2n Gaussian samples shared, labels of a planted
vector with label noise per instance), and the chained Rosenbrock function (non-convex,
f* = 0 at 1, started at 0). Measure: relative gap (F(x) - F*) / (F(x0) - F*). Noisy runs
add N(0, sigma^2) to every function value the method sees, sigma = 1e-4 (F(x0) - F*), with
mu = 1e-3 (deterministic runs: mu = 1e-7).

Speed: one estimate (q + 1 points per instance) as one batched objective call vs the usual
Python loop over queries (one call per query), on ``QuadraticInstances`` with a dense
shared Q; queries per second and their ratio, best of several repeats, with a check that
both compute the same estimate from the same directions.

    python benchmarks/bench_zeroth_order.py                   # n = 10, 100, Q = 20 n
    python benchmarks/bench_zeroth_order.py --dims 10 --quick # a smoke run

writes ``benchmarks/results/zeroth_order.{json,md}`` and ``zeroth_order-n{n}.png``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
import zlib
from pathlib import Path

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_common.py, also when a test imports this file

import l2o  # noqa: E402
from _common import write_results  # noqa: E402
from l2o.problems.base import Instances  # noqa: E402
from l2o.zeroth_order import ZOGD, QueryAccounting, estimate_gradient, instances_objective  # noqa: E402
from l2o.zeroth_order.estimators import aggregate, differences_from_values, query_points  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

#: accounting name -> (differences, QueryAccounting)
ACCOUNTINGS = {
    "q+1": QueryAccounting("forward", "shared", "evaluations"),
    "q": QueryAccounting("forward", "shared", "directions"),
    "2q": QueryAccounting("central", "shared", "evaluations"),
}
FRACTIONS = (0.125, 0.25, 0.5, 1.0)
RULES = ("avg", "align")
#: ZO-Avg with Gaussian directions (the de facto estimator); ZO-Align with orthonormal ones (its
#: natural basis: with exact values Gaussian directions give the same projection, but at q near n a
#: Gaussian U is ill-conditioned and its inverse amplifies noise).
DIRECTIONS = {"avg": "gaussian", "align": "orthonormal"}


# ----- problems -----------------------------------------------------------------------------------
class DiagonalQuadratic(Instances):
    """f(x) = 1/2 sum_j d_j x_j^2 + c_b^T x with d shared ``(n,)`` and c ``(B, n)``; x* = -c / d."""

    def __init__(self, d: Tensor, c: Tensor):
        self.d, self.c = d, c

    batch_size = property(lambda self: self.c.shape[0])
    dim = property(lambda self: self.c.shape[1])
    dtype = property(lambda self: self.c.dtype)
    device = property(lambda self: self.c.device)

    def index(self, idx):
        return DiagonalQuadratic(self.d, self.c[idx])

    def to(self, dtype=None, device=None):
        return DiagonalQuadratic(self.d.to(dtype=dtype, device=device), self.c.to(dtype=dtype, device=device))

    def smooth_objective(self, x):
        return (x * (0.5 * self.d * x + self.c)).sum(-1)

    def grad(self, x):
        return self.d * x + self.c

    def smoothness(self):
        return self.d.max().expand(self.batch_size).clone()

    def minimum(self) -> Tensor:
        return -0.5 * (self.c.square() / self.d).sum(-1)


class Rosenbrock(Instances):
    """Chained Rosenbrock sum_j 100 (x_{j+1} - x_j^2)^2 + (1 - x_j)^2, B copies; f* = 0 at 1.
    ``smoothness`` is the largest Hessian eigenvalue at the minimiser (the curvature near x*)."""

    def __init__(self, B: int, n: int, dtype=torch.float64):
        self._B, self._n, self._dtype = B, n, dtype

    batch_size = property(lambda self: self._B)
    dim = property(lambda self: self._n)
    dtype = property(lambda self: self._dtype)
    device = property(lambda self: torch.device("cpu"))

    def index(self, idx):
        return Rosenbrock(int(idx.numel()), self._n, self._dtype)

    def to(self, dtype=None, device=None):
        return Rosenbrock(self._B, self._n, dtype or self._dtype)

    def smooth_objective(self, x):
        return (100 * (x[..., 1:] - x[..., :-1] ** 2) ** 2 + (1 - x[..., :-1]) ** 2).sum(-1)

    def grad(self, x):
        with torch.enable_grad():
            z = x.detach().requires_grad_()
            return torch.autograd.grad(self.smooth_objective(z).sum(), z)[0]

    def smoothness(self):
        ones = torch.ones(self._n, dtype=self._dtype)
        H = torch.autograd.functional.hessian(lambda z: self.smooth_objective(z.unsqueeze(0))[0], ones)
        return torch.linalg.eigvalsh(H)[-1].expand(self._B).clone()


def make_problems(n: int, seeds: int) -> dict[str, dict]:
    """name -> {problem (seeds instances), F* (seeds,), x0, what}."""
    g = torch.Generator().manual_seed(1000 + n)
    out = {}
    for kappa in (10, 100):
        d = torch.logspace(0, math.log10(kappa), n, dtype=torch.float64)
        c = torch.randn(seeds, n, generator=g, dtype=torch.float64)
        p = DiagonalQuadratic(d, c)
        out[f"quadratic_k{kappa}"] = {"problem": p, "f_star": p.minimum(),
                                      "what": f"1/2 x'Dx + c'x, spectrum log-spaced in [1, {kappa}]"}
    N = 2 * n
    X = torch.randn(N, n, generator=g, dtype=torch.float64)
    w = torch.randn(seeds, n, generator=g, dtype=torch.float64) / math.sqrt(n)
    y = torch.sign(X @ w.T + 0.5 * torch.randn(N, seeds, generator=g, dtype=torch.float64)).T
    y = torch.where(y == 0, torch.ones_like(y), y)
    p = l2o.LogisticInstances(X, y.contiguous(), 0.01, penalty="l2")
    out["logistic_l2"] = {"problem": p, "f_star": l2o.reference(p).objective,
                          "what": f"l2 logistic, N = {N} shared Gaussian samples, lam = 0.01"}
    p = Rosenbrock(seeds, n)
    out["rosenbrock"] = {"problem": p, "f_star": torch.zeros(seeds, dtype=torch.float64),
                         "what": "chained Rosenbrock, non-convex, x0 = 0"}
    for v in out.values():
        v["x0"] = torch.zeros(seeds, n, dtype=torch.float64)
        v["f0"] = v["problem"].objective(v["x0"])
    return out


def q_values(n: int) -> list[int]:
    qs, q = [], 1
    while q < n:
        qs.append(q)
        q *= 2
    return qs + [n]


# ----- one run: a batch of (instance, step) rows ---------------------------------------------------
def sweep_run(spec: dict, rule: str, q: int, differences: str, noise: float, mu: float, grid: Tensor,
              record: dict[str, list[int]], seed: int) -> dict[str, Tensor]:
    """Run zo_gd on every (instance, step c) row; the relative gap ``(seeds, G)`` at each
    iteration listed in ``record`` (accounting -> iterations)."""
    base = spec["problem"]
    S, G = base.batch_size, grid.numel()
    rows = torch.arange(S).repeat_interleave(G)
    p = base.index(rows)
    lr = grid.repeat(S) / p.smoothness()
    f_star, f0 = spec["f_star"][rows], spec["f0"][rows]
    solver = ZOGD(rule=rule, queries=q, directions=DIRECTIONS[rule], differences=differences, mu=mu, lr=lr,
                  noise=noise, independent=True, seed=seed)
    state = solver.init(p, spec["x0"][rows])
    wanted = sorted({k for ks in record.values() for k in ks})
    gaps: dict[int, Tensor] = {}
    if 0 in wanted:
        gaps[0] = torch.ones(S, G, dtype=torch.float64)
    for k in range(1, max(wanted) + 1):
        state = solver.step(p, state)
        if k in wanted:
            F = p.objective(state.x)
            gap = (F - f_star) / (f0 - f_star)
            gap = torch.where(torch.isfinite(gap) & ~state.failed, gap, torch.full_like(gap, math.inf))
            gaps[k] = gap.reshape(S, G)
    return {name: torch.stack([gaps[k] for k in ks]) for name, ks in record.items()}  # (fractions, S, G)


def tune(gaps: Tensor) -> dict:
    """gaps ``(fractions, seeds, G)``: the step index with the smallest median final gap, and the
    gaps with that step at every budget fraction."""
    med = gaps[-1].median(dim=0).values  # (G,)
    med = torch.where(torch.isfinite(med), med, torch.full_like(med, math.inf))
    best = int(torch.argmin(med))
    at = gaps[:, :, best]
    return {"step_index": best, "at_edge": best in (0, gaps.shape[-1] - 1),
            "median": float(at[-1].median()), "min": float(at[-1].min()), "max": float(at[-1].max()),
            "median_by_fraction": [float(v) for v in at.median(dim=1).values]}


def sweep(n: int, budget: int, seeds: int, grid_exponents: list[int], noise_rel: float, log) -> list[dict]:
    grid = torch.tensor([2.0**e for e in grid_exponents], dtype=torch.float64)
    rows = []
    problems = make_problems(n, seeds)
    for pname, spec in problems.items():
        sigma = noise_rel * float((spec["f0"] - spec["f_star"]).mean())
        for noisy in (False, True):
            noise, mu = (sigma, 1e-3) if noisy else (0.0, 1e-7)
            for rule in RULES:
                t0 = time.perf_counter()
                for q in q_values(n):
                    for differences, names in (("forward", ("q+1", "q")), ("central", ("2q",))):
                        record = {name: [int(f * budget) // ACCOUNTINGS[name].charge(q) for f in FRACTIONS]
                                  for name in names}
                        seed = zlib.crc32(repr((n, pname, noisy, rule, q, differences)).encode())
                        got = sweep_run(spec, rule, q, differences, noise, mu, grid, record, seed)
                        for name in names:
                            t = tune(got[name])
                            rows.append({
                                "n": n, "problem": pname, "noisy": noisy, "noise_sigma": noise, "mu": mu,
                                "rule": rule, "q": q, "accounting": name, "budget": budget,
                                "iterations": record[name][-1], "step_c": float(grid[t["step_index"]]),
                                **{k: v for k, v in t.items() if k != "step_index"},
                            })
                log(f"n={n} {pname:15s} {'noisy' if noisy else 'exact'} {rule:5s} {time.perf_counter() - t0:6.1f} s")
    return rows


# ----- verdicts --------------------------------------------------------------------------------------
def verdicts(rows: list[dict]) -> list[dict]:
    """Per (n, problem, noise, accounting): the best q of each rule and whether the paper's
    claim (avg: q = 1; align: q = n) holds; ``ratio`` = gap at the claimed q / best gap."""
    out = []
    keys = sorted({(r["n"], r["problem"], r["noisy"], r["accounting"]) for r in rows},
                  key=lambda k: (k[0], k[1], k[2], list(ACCOUNTINGS).index(k[3])))
    for n, pname, noisy, acc in keys:
        v = {"n": n, "problem": pname, "noisy": noisy, "accounting": acc}
        for rule, claimed in (("avg", 1), ("align", n)):
            sel = {r["q"]: r["median"] for r in rows if (r["n"], r["problem"], r["noisy"], r["accounting"], r["rule"])
                   == (n, pname, noisy, acc, rule)}
            best_q = min(sel, key=lambda q: (sel[q], q))
            v[f"{rule}_best_q"] = best_q
            v[f"{rule}_claim_holds"] = best_q == claimed
            v[f"{rule}_ratio"] = sel[claimed] / sel[best_q] if sel[best_q] > 0 else math.nan
        out.append(v)
    return out


# ----- speed -----------------------------------------------------------------------------------------
def loop_estimate(problem: Instances, x: Tensor, q: int, mu: float, generator: torch.Generator) -> Tensor:
    """ZO-Avg written the way most zeroth-order code is: one objective call per query."""
    f0 = problem.objective(x)
    g = torch.zeros_like(x)
    for _ in range(q):
        u = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        g += ((problem.objective(x + mu * u) - f0) / mu).unsqueeze(-1) * u
    return g / q


def same_estimate(problem: Instances, x: Tensor, q: int, mu: float) -> float:
    """Max relative difference between the batched path and the loop on the same directions."""
    B, n = x.shape
    U = torch.randn(B, q, n, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    P = query_points(x, U, mu, "forward", "shared")
    values = instances_objective(problem, q + 1)(P.reshape(-1, n)).reshape(q + 1, B)
    batched = aggregate(differences_from_values(values, q, mu, "forward", "shared"), U, "avg")
    f0 = problem.objective(x)
    loop = sum(((problem.objective(x + mu * U[:, i]) - f0) / mu).unsqueeze(-1) * U[:, i] for i in range(q)) / q
    return float((batched - loop).abs().max() / loop.abs().max())


def best_time(fn, repeats: int, min_seconds: float = 0.2) -> float:
    """Best over ``repeats`` of the mean time of enough calls to last ``min_seconds``."""
    fn()
    calls = 1
    while True:
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        if time.perf_counter() - t >= min_seconds or calls >= 4096:
            break
        calls *= 2
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t) / calls)
    return best


def speed(cases: list[tuple[int, int, int]], repeats: int) -> list[dict]:
    rows = []
    for n, q, B in cases:
        p = l2o.QuadraticFamily(n=n, condition_number=10.0).sample(B, 0)
        x = torch.randn(B, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        mu = 1e-6
        gen = torch.Generator()
        fn = instances_objective(p, q + 1)
        t_batched = best_time(lambda: estimate_gradient(fn, x, q, "avg", "gaussian", "forward", mu, gen), repeats)
        t_loop = best_time(lambda: loop_estimate(p, x, q, mu, gen), repeats)
        queries = (q + 1) * B
        rows.append({"n": n, "q": q, "B": B, "queries_per_estimate": queries,
                     "batched_queries_per_s": queries / t_batched, "loop_queries_per_s": queries / t_loop,
                     "ratio": t_loop / t_batched, "batched_ms": 1e3 * t_batched, "loop_ms": 1e3 * t_loop,
                     "same_estimate_rel_diff": same_estimate(p, x, q, mu)})
    return rows


# ----- report ----------------------------------------------------------------------------------------
def fmt(v: float) -> str:
    return "inf" if not math.isfinite(v) else f"{v:.2e}"


def to_markdown(res: dict) -> str:
    s = res["settings"]
    budgets = ", ".join(f"{s['budget_per_dim'] * n} at n = {n}" for n in s["dims"])
    L = ["# Zeroth-order optimization: the multi-query paradox and batched queries", "",
         f"Measured by `python benchmarks/bench_zeroth_order.py {s['argv']}` on {res['machine']} "
         f"({res['threads']} torch thread(s), load average at start {res['load_average']}); "
         f"{res['seconds']:.0f} s in all. Nothing here is copied from the paper: its body could not be read "
         "(`../shared/RESEARCH-2.md` §2), so the claims below are the abstract's.", "",
         "## What was run", "",
         f"* Dimensions n = {', '.join(map(str, s['dims']))}; q in {{1, 2, 4, ..., n}}; total budget Q = "
         f"{s['budget_per_dim']} n queries per instance ({budgets}).",
         f"* {s['seeds']} instances per problem; step sizes c / L with c = 2^k, k in {s['grid']} "
         "(all in one batch); the step is tuned per (problem, n, noise, rule, q, accounting) as the c with the "
         "smallest median final gap over the instances; tables give that median gap (rows flagged * had their best "
         "c at the edge of the grid).",
         "* `zo_gd`: ZO-Avg with Gaussian directions, ZO-Align with orthonormal ones; constant step, no momentum, "
         "draws independent per row; "
         f"deterministic runs mu = 1e-7; noisy runs sigma = {s['noise_rel']:g} (F(x0) - F*), mu = 1e-3.",
         "* Gap: (F(x) - F*) / (F(x0) - F*) at the end of the budget (inf: diverged or NaN at every step).",
         "* Accountings (per iteration): `q+1` forward differences, base f(x) shared and counted; `q` forward "
         "differences, one query per direction (base free); `2q` central differences. `q+1` and `q` are read "
         "from the same forward-difference run at their own iteration counts.", "",
         "Problems: " + "; ".join(f"`{k}`: {v}" for k, v in res["problems"].items()) + ".", "",
         "## The paper's two claims, per accounting", "",
         "Best q by median final gap (ties to the smaller q). Claim 1: ZO-Avg is best at q = 1. Claim 2: ZO-Align "
         "is best at q = n. `ratio` = gap at the claimed q / gap at the best q (1 where the claim holds).", ""]
    V = res["verdicts"]
    for acc in ACCOUNTINGS:
        sub = [v for v in V if v["accounting"] == acc]
        h1 = sum(v["avg_claim_holds"] for v in sub)
        h2 = sum(v["align_claim_holds"] for v in sub)
        L.append(f"* `{acc}`: claim 1 holds in {h1}/{len(sub)} settings, claim 2 in {h2}/{len(sub)}.")
    L += ["", "| n | problem | noise | accounting | Avg best q | Avg: gap(q=1)/best | Align best q | "
          "Align: gap(q=n)/best |", "|---|---|---|---|---|---|---|---|"]
    for v in V:
        L.append(f"| {v['n']} | {v['problem']} | {'noisy' if v['noisy'] else 'exact'} | {v['accounting']} | "
                 f"{v['avg_best_q']}{'' if v['avg_claim_holds'] else ' (claim fails)'} | {v['avg_ratio']:.3g} | "
                 f"{v['align_best_q']}{'' if v['align_claim_holds'] else ' (claim fails)'} | {v['align_ratio']:.3g} |")
    L += ["", "## Final gap against q", "",
          "Median relative gap over the instances at the tuned step; one table per (n, problem, noise).", ""]
    rows = res["sweep"]
    for n in s["dims"]:
        for pname in res["problems"]:
            for noisy in (False, True):
                sel = [r for r in rows if (r["n"], r["problem"], r["noisy"]) == (n, pname, noisy)]
                if not sel:
                    continue
                qs = sorted({r["q"] for r in sel})
                L += [f"**n = {n}, {pname}, {'noisy' if noisy else 'exact'}**", "",
                      "| rule | accounting | " + " | ".join(f"q={q}" for q in qs) + " |",
                      "|---|---|" + "---|" * len(qs)]
                for rule in RULES:
                    for acc in ACCOUNTINGS:
                        cells = []
                        for q in qs:
                            r = next(r for r in sel if (r["rule"], r["accounting"], r["q"]) == (rule, acc, q))
                            cells.append(fmt(r["median"]) + ("*" if r["at_edge"] else ""))
                        L.append(f"| {rule} | {acc} | " + " | ".join(cells) + " |")
                L.append("")
    L += ["Plots: " + ", ".join(f"`{f}`" for f in res.get("plots", [])) + " (rows: problems; columns: "
          "accountings; solid exact, dashed noisy).", "",
          "## Speed: one batched call vs a Python loop over queries", "",
          "One ZO-Avg estimate with forward differences, (q + 1) B queries, on `QuadraticInstances` (dense shared Q, "
          "kappa = 10): `estimate_gradient` with all queries in one objective call against the usual loop with one "
          "call per query. Best of several repeats; `same` is the relative difference of the two estimates computed "
          "from the same directions.", "",
          "| n | q | B | queries | batched queries/s | loop queries/s | ratio | same |",
          "|---|---|---|---|---|---|---|---|"]
    for r in res["speed"]:
        L.append(f"| {r['n']} | {r['q']} | {r['B']} | {r['queries_per_estimate']} | "
                 f"{r['batched_queries_per_s']:.3g} | {r['loop_queries_per_s']:.3g} | {r['ratio']:.1f}x | "
                 f"{r['same_estimate_rel_diff']:.1e} |")
    return "\n".join(L) + "\n"


def plot(res: dict, out: Path, suffix: str = "") -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    rows = res["sweep"]
    for n in res["settings"]["dims"]:
        probs = list(res["problems"])
        fig, axes = plt.subplots(len(probs), len(ACCOUNTINGS), figsize=(4 * len(ACCOUNTINGS), 2.8 * len(probs)),
                                 squeeze=False)
        for i, pname in enumerate(probs):
            for j, acc in enumerate(ACCOUNTINGS):
                ax = axes[i][j]
                for rule, color in (("avg", "tab:blue"), ("align", "tab:orange")):
                    for noisy, style in ((False, "-"), (True, "--")):
                        sel = sorted((r for r in rows if (r["n"], r["problem"], r["accounting"], r["rule"],
                                                          r["noisy"]) == (n, pname, acc, rule, noisy)),
                                     key=lambda r: r["q"])
                        ys = [r["median"] if math.isfinite(r["median"]) else math.nan for r in sel]
                        ax.plot([r["q"] for r in sel], ys, style, color=color, marker="o", ms=3,
                                label=f"{rule}{' noisy' if noisy else ''}")
                ax.set_xscale("log", base=2)
                ax.set_yscale("log")
                ax.set_title(f"{pname}, Q/iter = {acc}", fontsize=9)
                if i == len(probs) - 1:
                    ax.set_xlabel("q (queries per iteration)")
                if j == 0:
                    ax.set_ylabel("final relative gap")
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"n = {n}, budget Q = {res['settings']['budget_per_dim'] * n}: final gap vs q (tuned step)")
        fig.tight_layout()
        path = out / f"zeroth_order{suffix}-n{n}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        files.append(path.name)
    return files


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dims", default="10,100", help="comma-separated dimensions n (default 10,100)")
    ap.add_argument("--budget-per-dim", type=int, default=20, help="total budget Q = this x n queries per instance")
    ap.add_argument("--seeds", type=int, default=3, help="instances per problem")
    ap.add_argument("--noise", type=float, default=1e-4, help="noise sigma relative to F(x0) - F*")
    ap.add_argument("--quick", action="store_true", help="a smoke run: short budget, 4 steps, 2 instances")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dims = [int(d) for d in args.dims.split(",")]
    grid = [3, 2.5, 2, 1.5, 1, 0.5, *range(0, -11, -1)] if not args.quick else [2, 0, -3, -6, -9]
    budget_per_dim = 20 if args.quick else args.budget_per_dim
    seeds = 2 if args.quick else args.seeds
    start = time.perf_counter()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s] {msg}", flush=True)

    rows = []
    for n in dims:
        rows += sweep(n, budget_per_dim * n, seeds, grid, args.noise, log)
    speed_cases = [(10, 10, 1), (10, 10, 32), (100, 16, 1), (100, 16, 32), (100, 100, 32), (1000, 16, 32)]
    if args.quick:
        speed_cases = [(10, 10, 32)]
    speeds = speed(speed_cases, repeats=3 if args.quick else 5)
    log("speed done")
    problems = {k: v["what"] for k, v in make_problems(dims[0], 1).items()}
    res = {
        "settings": {"dims": dims, "budget_per_dim": budget_per_dim, "seeds": seeds, "grid": grid,
                     "noise_rel": args.noise, "fractions": FRACTIONS, "argv": " ".join(sys.argv[1:] if argv is None
                                                                                      else argv)},
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "threads": args.threads, "load_average": round(load, 2),
        "problems": problems, "accountings": {k: v.describe() for k, v in ACCOUNTINGS.items()},
        "sweep": rows, "verdicts": verdicts(rows), "speed": speeds,
    }
    res["seconds"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if args.quick else ""
    res["plots"] = plot(res, args.out, suffix)
    write_results(args.out, "zeroth_order" + suffix, res, to_markdown(res))
    log(f"wrote {args.out}/zeroth_order{suffix}.{{json,md}} and {', '.join(res['plots'])}")
    return res


if __name__ == "__main__":
    main()
