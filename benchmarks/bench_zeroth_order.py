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
step, no momentum) runs on 3 instances x (17 step sizes c / L, c = 2^3, 2^2.5, ..., 2^0.5,
2^0, 2^-1, ..., 2^-10, plus the theory step ``descent_factor / L``) in one batch until the
budget is spent. The tuned step is the grid value with the smallest median final measure
over the instances, per (problem, n, noise, rule, q, accounting); both the tuned and the
theory step are reported. The ``q+1`` and ``q`` accountings come from one forward-difference
run read at their own iteration counts; ``2q`` from a central-difference run.

Problems (3 instances each): diagonal quadratics with spectrum log-spaced in [1, kappa],
kappa = 10 and 100 (Gaussian and orthonormal directions and both rules are rotation
invariant, so a diagonal quadratic stands for every quadratic with that spectrum),
l2-regularised logistic regression (lam = 0.01, N = 2n Gaussian samples shared, labels of a
planted vector with label noise per instance), and the non-convex logistic regression of
``../shared/RESEARCH-2.md`` §3 (rho = 0.01, N = 5n). Measure: (F(x) - F*) / (F(x0) - F*),
for the non-convex problem ||grad f(x)||^2 / ||grad f(x0)||^2 (exact gradient, for
measuring only). Noisy runs add N(0, sigma^2) to every function value the method sees,
sigma = 1e-6 |F(x0) - F*| by default, with mu = 1e-4 (exact runs: mu = 1e-7).

Speed: one estimate (q + 1 points per instance) as one batched objective call vs the usual
Python loop over queries (one call per query), on ``QuadraticInstances`` with a dense
shared Q; queries per second and their ratio, best of several repeats, with a check that
both compute the same estimate from the same directions.

    python benchmarks/bench_zeroth_order.py                   # n = 10, 100, Q = 20 n
    python benchmarks/bench_zeroth_order.py --dims 10 --quick # a smoke run
    python benchmarks/bench_zeroth_order.py --dims 1000 --problems quadratic_k10 --budget-per-dim 10 \
        --seeds 2 --grid relative --no-speed                  # what n = 1000 affords on 2 shared cores
    python benchmarks/bench_zeroth_order.py --dims 1000 --problems logistic_l2 --samples 1000 \
        --budget-per-dim 10 --seeds 2 --grid relative --qs 1,4,16,64,256,1000 --values noisy --dtype float32
    python benchmarks/bench_zeroth_order.py --dims 1000 --problems logistic_l2 --samples 1000 \
        --budget-per-dim 2 --seeds 2 --float32-check          # is float32 good enough? (merged into the results)

writes ``benchmarks/results/zeroth_order.{json,md}`` and ``zeroth_order-n{n}-{exact,noisy}.png``.
A run MERGES into the results on file: its (n, problem, noise level) settings replace those already
there, every other setting keeps the run that measured it (``runs``: date, command, settings, machine, load,
times), and the verdicts and claim counts are recomputed over every dimension (``--fresh``
replaces the file instead). Rows reach the file after each (problem, noise level), under a lock
on the folder, so runs for different problems or noise levels (``--values``) can go side by side
and an interrupted run keeps what it measured (marked partial).

``--grid relative`` tunes over steps ``descent_factor x 2^k / L`` (k = 4, 3, 2, 1 and the theory
step, k = 0) instead of the absolute grid ``2^k / L``: at n = 100 the tuned step was 2^0.5 to
2^3 times the theory step for every (problem, rule, q), so five points a factor 2 apart cover
what seventeen absolute ones did. Cost at n = 1000: a query of the logistic problems costs
O(N n) (N = 2n, 5n), 10 to 25 times a quadratic's, and ZO-Align's orthonormal frames cost a QR
of n x q per row and iteration, O(n q^2), which dominates the quadratics at q >= 256.

Cheaper runs at n = 1000, measuring the same thing: ``--samples N`` sets the data size of both
logistic problems (a query costs O(N n); the quadratics' draws do not depend on it); F* of the l2
logistic is computed for the problems run only and cached in the results under a checksum of the
data; ``--qs`` runs some q values, and a later run with other q values of a setting measured alike
(same budget, noise, instances, steps, N, precision) adds to it (so a sweep can be split between
processes); a q whose budget affords no iteration under an accounting gives no row; ``--dtype
float32`` halves a query's cost, which ``--float32-check`` shows is admissible for noisy values
(the measure moves as much as with other draws) and not for exact ones (mu = 1e-7 is below
float32's resolution). Every (instance, step) row of a (rule, q) run is one batch already.
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
from _common import results_lock, write_results  # noqa: E402
from l2o.problems.base import Instances  # noqa: E402
from l2o.zeroth_order import ZOGD, QueryAccounting, descent_factor, estimate_gradient, instances_objective  # noqa: E402
from l2o.zeroth_order.estimators import aggregate, differences_from_values, query_points  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

#: accounting name -> (differences, QueryAccounting)
ACCOUNTINGS = {
    "q+1": QueryAccounting("forward", "shared", "evaluations"),
    "q": QueryAccounting("forward", "shared", "directions"),
    "2q": QueryAccounting("central", "shared", "evaluations"),
}
FRACTIONS = (0.125, 0.25, 0.5, 1.0)
PROBLEMS = ("quadratic_k10", "quadratic_k100", "logistic_l2", "nonconvex_logistic")
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


class NonconvexLogistic(Instances):
    """f(x) = (1/N) sum_i log(1 + exp(-y_i h_i'x)) + rho sum_j x_j^2 / (1 + x_j^2) with H ``(N, n)``
    shared and labels ``(B, N)``: the synthetic non-convex logistic regression of Liang et al.
    (ICML 2025; ``../shared/RESEARCH-2.md`` §3), rho = 0.01. ``smoothness`` bounds L by
    ||H||^2 / (4N) + 2 rho."""

    def __init__(self, H: Tensor, y: Tensor, rho: float = 0.01):
        self.H, self.y, self.rho = H, y, rho

    batch_size = property(lambda self: self.y.shape[0])
    dim = property(lambda self: self.H.shape[1])
    dtype = property(lambda self: self.H.dtype)
    device = property(lambda self: self.H.device)

    def index(self, idx):
        return NonconvexLogistic(self.H, self.y[idx], self.rho)

    def to(self, dtype=None, device=None):
        return NonconvexLogistic(self.H.to(dtype=dtype, device=device), self.y.to(dtype=dtype, device=device),
                                 self.rho)

    def smooth_objective(self, x):
        z = self.y * (x @ self.H.T)
        penalty = (x.square() / (1 + x.square())).sum(-1)
        return torch.nn.functional.softplus(-z, threshold=40.0).mean(-1) + self.rho * penalty

    def grad(self, x):
        z = self.y * (x @ self.H.T)
        r = -self.y * torch.sigmoid(-z) / self.y.shape[1]
        return r @ self.H + self.rho * 2 * x / (1 + x.square()) ** 2

    def smoothness(self):
        L = torch.linalg.matrix_norm(self.H, ord=2) ** 2 / (4 * self.H.shape[0]) + 2 * self.rho
        return L.expand(self.batch_size).clone()


def data_checksum(*tensors: Tensor) -> str:
    """A CRC-32 of the bytes of ``tensors`` (the key under which an F* is cached: same data, same F*)."""
    crc = 0
    for t in tensors:
        crc = zlib.crc32(t.detach().cpu().contiguous().numpy().tobytes(), crc)
    return f"{crc:08x}"


def make_problems(n: int, seeds: int, samples: int | None = None, problems: list[str] | None = None,
                  f_star_cache: dict[str, list[float]] | None = None) -> dict[str, dict]:
    """name -> {problem (seeds instances), x0, measure(x) -> (B,) relative measure, what}.

    ``samples``: the number N of data points of both logistic problems (None: N = 2n for
    ``logistic_l2``, 5n for ``nonconvex_logistic``). The data of every problem are drawn in the
    same order whatever ``problems`` selects (the quadratics first, so N does not change them);
    F* and the scale of the measure are computed for the selected ``problems`` only (None: all).
    ``f_star_cache``: key (n, problem, seeds, N, checksum of the data) -> F* per instance; an F*
    found there is not recomputed, one computed here is added."""
    g = torch.Generator().manual_seed(1000 + n)
    out = {}
    for kappa in (10, 100):
        d = torch.logspace(0, math.log10(kappa), n, dtype=torch.float64)
        c = torch.randn(seeds, n, generator=g, dtype=torch.float64)
        out[f"quadratic_k{kappa}"] = {
            "problem": DiagonalQuadratic(d, c), "x0": torch.zeros(seeds, n, dtype=torch.float64),
            "what": f"1/2 x'Dx + c'x, D = diag of a spectrum log-spaced in [1, {kappa}]"}
    N = 2 * n if samples is None else samples
    X = torch.randn(N, n, generator=g, dtype=torch.float64)
    w = torch.randn(seeds, n, generator=g, dtype=torch.float64) / math.sqrt(n)
    y = torch.sign(X @ w.T + 0.5 * torch.randn(N, seeds, generator=g, dtype=torch.float64)).T
    y = torch.where(y == 0, torch.ones_like(y), y)
    out["logistic_l2"] = {"problem": l2o.LogisticInstances(X, y.contiguous(), 0.01, penalty="l2"),
                          "x0": torch.zeros(seeds, n, dtype=torch.float64), "samples": N,
                          "what": "l2 logistic, lam = 0.01, N shared Gaussian samples (N = 2n unless the run says "
                                  "otherwise), labels of a planted vector with label noise"}
    N = 5 * n if samples is None else samples
    H = torch.randn(N, n, generator=g, dtype=torch.float64)
    x_opt = torch.randn(seeds, n, generator=g, dtype=torch.float64)
    z = torch.rand(seeds, N, generator=g, dtype=torch.float64)
    y = torch.where(1 / z > 1 + torch.exp(-(x_opt @ H.T)), 1.0, -1.0)
    out["nonconvex_logistic"] = {
        "problem": NonconvexLogistic(H, y), "x0": 0.01 * torch.randn(seeds, n, generator=g, dtype=torch.float64),
        "samples": N,
        "what": "non-convex logistic (RESEARCH-2 §3), rho = 0.01, N samples (N = 5n unless the run says otherwise); "
                "measure ||grad f||^2 / ||grad f(x0)||^2",
        "gradient_norm": True}
    for name, v in out.items():
        if problems is not None and name not in problems:
            continue
        p = v["problem"]
        if v.get("gradient_norm"):
            v["scale"] = p.grad(v["x0"]).square().sum(-1)
            continue
        if isinstance(p, l2o.LogisticInstances):
            key = f"n={n} {name} seeds={seeds} N={v['samples']} data={data_checksum(p.X, p.y)}"
            if f_star_cache is not None and key in f_star_cache:
                v["f_star"] = torch.tensor(f_star_cache[key], dtype=torch.float64)
            else:
                v["f_star"] = l2o.reference(p).objective
                if f_star_cache is not None:
                    f_star_cache[key] = [float(f) for f in v["f_star"]]
        else:
            v["f_star"] = p.minimum()
        v["scale"] = p.objective(v["x0"]) - v["f_star"]
    return out


def relative_measure(spec: dict, p: Instances, x: Tensor, rows: Tensor) -> Tensor:
    """(F(x) - F*) / (F(x0) - F*), or ||grad f(x)||^2 / ||grad f(x0)||^2 for the non-convex problem
    (the exact gradient, for measuring only)."""
    if spec.get("gradient_norm"):
        return p.grad(x).square().sum(-1) / spec["scale"][rows]
    return (p.objective(x) - spec["f_star"][rows]) / spec["scale"][rows]


def q_values(n: int) -> list[int]:
    qs, q = [], 1
    while q < n:
        qs.append(q)
        q *= 2
    return qs + [n]


# ----- one run: a batch of (instance, step) rows ---------------------------------------------------
def sweep_run(spec: dict, rule: str, q: int, differences: str, noise: float, mu: float, grid: Tensor,
              record: dict[str, list[int]], seed: int, dtype: torch.dtype = torch.float64) -> dict[str, Tensor]:
    """Run zo_gd on every (instance, step) row, the steps being c / L for c in ``grid`` and the
    theory step ``descent_factor / L`` last; the relative measure ``(fractions, seeds, G + 1)``
    at the iterations listed in ``record`` (accounting -> iterations). ``dtype``: the precision of
    the objective and the iterates (the measure is computed in float64 from the iterate)."""
    base = spec["problem"]
    S, G, n = base.batch_size, grid.numel(), base.dim
    theory = descent_factor(rule, DIRECTIONS[rule], q, n)
    c = torch.cat([grid, torch.tensor([theory], dtype=grid.dtype)])
    rows = torch.arange(S).repeat_interleave(G + 1)
    p64 = base.index(rows)
    p = p64 if dtype == torch.float64 else p64.to(dtype=dtype)
    solver = ZOGD(rule=rule, queries=q, directions=DIRECTIONS[rule], differences=differences, mu=mu,
                  lr=(c.repeat(S) / p64.smoothness()).to(dtype), noise=noise, independent=True, seed=seed)
    state = solver.init(p, spec["x0"][rows].to(dtype))
    wanted = sorted({k for ks in record.values() for k in ks})
    gaps: dict[int, Tensor] = {}
    if 0 in wanted:
        gaps[0] = torch.ones(S, G + 1, dtype=torch.float64)
    for k in range(1, max(wanted) + 1):
        state = solver.step(p, state)
        if k in wanted:
            gap = relative_measure(spec, p64, state.x.to(torch.float64), rows)
            gap = torch.where(torch.isfinite(gap) & ~state.failed, gap, torch.full_like(gap, math.inf))
            gaps[k] = gap.reshape(S, G + 1)
    return {name: torch.stack([gaps[k] for k in ks]) for name, ks in record.items()}  # (fractions, S, G + 1)


def tune(gaps: Tensor, theory_in_grid: bool = False) -> dict:
    """gaps ``(fractions, seeds, G + 1)``: the grid step (the first G columns; all G + 1 when
    ``theory_in_grid``, the relative grid whose last point is the theory step) with the smallest
    median final gap, the gaps with that step at every budget fraction, and those of the theory
    step (the last column). ``at_edge``: the tuned step is the first or last candidate."""
    candidates = gaps.shape[-1] if theory_in_grid else gaps.shape[-1] - 1
    med = gaps[-1, :, :candidates].median(dim=0).values  # (candidates,)
    med = torch.where(torch.isfinite(med), med, torch.full_like(med, math.inf))
    best = int(torch.argmin(med))
    at, th = gaps[:, :, best], gaps[:, :, -1]
    return {"step_index": best, "at_edge": best in (0, candidates - 1),
            "median": float(at[-1].median()), "min": float(at[-1].min()), "max": float(at[-1].max()),
            "median_by_fraction": [float(v) for v in at.median(dim=1).values],
            "theory_median": float(th[-1].median()),
            "theory_median_by_fraction": [float(v) for v in th.median(dim=1).values]}


def step_grid(rule: str, q: int, n: int, exponents: list[float], relative: bool) -> Tensor:
    """The step factors c (steps c / L) tried beside the theory step: ``2^k`` for k in
    ``exponents`` (absolute grid), or ``descent_factor * 2^k`` (relative grid: the theory step,
    k = 0, is then the grid's last point and is not listed in ``exponents``)."""
    scale = descent_factor(rule, DIRECTIONS[rule], q, n) if relative else 1.0
    return torch.tensor([scale * 2.0**e for e in exponents], dtype=torch.float64)


def sweep(n: int, budget: int, seeds: int, grid_exponents: list[float], noise_rel: float, noise_mu: float,
          log, problems: list[str] | None = None, relative: bool = False, done=None,
          noise_levels: tuple[bool, ...] = (False, True), samples: int | None = None,
          f_star_cache: dict | None = None, dtype: torch.dtype = torch.float64,
          qs: list[int] | None = None) -> list[dict]:
    """The q-sweep at dimension n for ``problems`` (None: all); ``done(rows)`` is called with
    the rows of a problem measured so far after each noise level. ``samples``, ``f_star_cache``:
    see ``make_problems``; ``dtype``: see ``sweep_run``. A (q, differences) run whose budget
    affords no iteration under any of its accountings is skipped, and an accounting with no
    iteration gives no row. ``qs``: the q values (None: ``q_values(n)``; those above n are dropped)."""
    rows = []
    qs = q_values(n) if qs is None else [q for q in qs if q <= n]
    specs = make_problems(n, seeds, samples, problems, f_star_cache)
    for pname, spec in specs.items():
        if problems is not None and pname not in problems:
            continue
        prows = []
        f_range = spec["scale"] if "f_star" in spec else spec["problem"].objective(spec["x0"])
        sigma = noise_rel * float(f_range.abs().mean())
        for noisy in noise_levels:
            noise, mu = (sigma, noise_mu) if noisy else (0.0, 1e-7)
            for rule in RULES:
                t0 = time.perf_counter()
                for q in qs:
                    grid = step_grid(rule, q, n, grid_exponents, relative)
                    for differences, names in (("forward", ("q+1", "q")), ("central", ("2q",))):
                        record = {name: [int(f * budget) // ACCOUNTINGS[name].charge(q) for f in FRACTIONS]
                                  for name in names if budget // ACCOUNTINGS[name].charge(q) >= 1}
                        if not record:
                            continue
                        seed = zlib.crc32(repr((n, pname, noisy, rule, q, differences)).encode())
                        got = sweep_run(spec, rule, q, differences, noise, mu, grid, record, seed, dtype)
                        for name in record:
                            t = tune(got[name], theory_in_grid=relative)
                            i = t["step_index"]
                            c = float(grid[i]) if i < grid.numel() else descent_factor(rule, DIRECTIONS[rule], q, n)
                            prows.append({
                                "n": n, "problem": pname, "noisy": noisy, "noise_sigma": noise, "mu": mu,
                                "rule": rule, "q": q, "accounting": name, "budget": budget,
                                "iterations": record[name][-1], "step_c": c, "samples": spec.get("samples"),
                                "dtype": str(dtype).removeprefix("torch."),
                                **{k: v for k, v in t.items() if k != "step_index"},
                            })
                log(f"n={n} {pname:15s} {'noisy' if noisy else 'exact'} {rule:5s} {time.perf_counter() - t0:6.1f} s")
            if done is not None:
                done(list(prows))
        rows += prows
    return rows


# ----- float32 or float64 ----------------------------------------------------------------------------
def float32_check(n: int, budget: int, seeds: int, grid_exponents: list[float], noise_rel: float, noise_mu: float,
                  problems: list[str], samples: int | None = None, f_star_cache: dict | None = None,
                  cells: tuple[tuple[str, int], ...] = (("avg", 16), ("align", 256))) -> list[dict]:
    """Whether float32 measures what float64 does: for each problem, noise level and (rule, q) cell,
    one forward-difference run (the ``q`` accounting, the relative step grid) in float64, the same
    with the same seed in float32, and in float64 with another seed (other directions and noise:
    how much the measure moves from draw to draw). Per cell: the largest relative change of the
    final measure over the (instance, step) rows, float32 against float64 and redrawn against
    float64, and the step each picks (smallest median over the instances)."""
    specs = make_problems(n, seeds, samples, problems, f_star_cache)
    out = []
    for pname in problems:
        spec = specs[pname]
        f_range = spec["scale"] if "f_star" in spec else spec["problem"].objective(spec["x0"])
        sigma = noise_rel * float(f_range.abs().mean())
        for noisy in (False, True):
            noise, mu = (sigma, noise_mu) if noisy else (0.0, 1e-7)
            for rule, q in cells:
                q = min(q, n)
                grid = step_grid(rule, q, n, grid_exponents, True)
                record = {"q": [budget // q]}
                seed = zlib.crc32(repr(("float32 check", n, pname, noisy, rule, q)).encode())
                got = {label: sweep_run(spec, rule, q, "forward", noise, mu, grid, record, s, dt)["q"][-1]
                       for label, s, dt in (("float64", seed, torch.float64), ("float32", seed, torch.float32),
                                            ("redrawn", seed + 1, torch.float64))}
                ref = got["float64"]
                out.append({"n": n, "problem": pname, "noisy": noisy, "rule": rule, "q": q, "budget": budget,
                            "samples": spec.get("samples"), "mu": mu, "noise_sigma": noise,
                            "float32_change": float((got["float32"] / ref - 1).abs().max()),
                            "redrawn_change": float((got["redrawn"] / ref - 1).abs().max()),
                            **{f"{k}_step": int(v.median(dim=0).values.argmin()) for k, v in got.items()},
                            **{f"{k}_median": float(v.median(dim=0).values.min()) for k, v in got.items()}})
    return out


# ----- verdicts --------------------------------------------------------------------------------------
def predicted_best_q(rule: str, n: int, accounting: str, qs: list[int]) -> int | None:
    """Best q by the one-step heuristic of ``../shared/RESEARCH-2.md`` §2 with the theory step:
    expected decrease per iteration (x ||grad f||^2 / 2L) ``descent_factor`` = q/(q+n+1) for avg and
    E||P_U grad f||^2 / ||grad f||^2 = q/n for align, so total progress over the budget
    ``progress / charge(q)``; None where it is flat in q."""
    def progress(q: int) -> float:
        return descent_factor(rule, DIRECTIONS[rule], q, n) if rule == "avg" else min(q, n) / n

    score = {q: progress(q) / ACCOUNTINGS[accounting].charge(q) for q in qs}
    top = max(score.values())
    if all(abs(v - top) <= 1e-9 * top for v in score.values()):
        return None
    return max(score, key=lambda q: (score[q], -q))


def verdicts(rows: list[dict]) -> list[dict]:
    """Per (n, problem, noise, accounting): the best q of each rule, with the tuned step and with
    the theory step, and whether the paper's claim (avg: q = 1; align: q = n) holds;
    ``ratio`` = gap at the claimed q / best gap."""
    out = []
    keys = sorted({(r["n"], r["problem"], r["noisy"], r["accounting"]) for r in rows},
                  key=lambda k: (k[0], k[1], k[2], list(ACCOUNTINGS).index(k[3])))
    for n, pname, noisy, acc in keys:
        v = {"n": n, "problem": pname, "noisy": noisy, "accounting": acc}
        runs = {r.get("run") for r in rows if (r["n"], r["problem"], r["noisy"], r["accounting"])
                == (n, pname, noisy, acc)}
        v["run"] = min(runs, key=lambda i: (i is None, i or 0))
        v["runs"] = sorted(i for i in runs if i is not None)  # every run that measured a q of this setting
        for rule, claimed in (("avg", 1), ("align", n)):
            sel = [r for r in rows if (r["n"], r["problem"], r["noisy"], r["accounting"], r["rule"])
                   == (n, pname, noisy, acc, rule)]
            v[f"{rule}_predicted_q"] = predicted_best_q(rule, n, acc, [r["q"] for r in sel])
            for step, key in (("tuned", "median"), ("theory", "theory_median")):
                gap = {r["q"]: r[key] for r in sel}
                best_q = min(gap, key=lambda q: (gap[q], q))
                v[f"{rule}_{step}_best_q"] = best_q
                v[f"{rule}_{step}_claim_holds"] = best_q == claimed
                v[f"{rule}_{step}_ratio"] = (gap[claimed] / gap[best_q] if claimed in gap and gap[best_q] > 0
                                             else math.nan)
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


def speed(cases: list[tuple[int, int, int]], repeats: int, min_seconds: float = 0.2) -> list[dict]:
    rows = []
    for n, q, B in cases:
        p = l2o.QuadraticFamily(n=n, condition_number=10.0).sample(B, 0)
        x = torch.randn(B, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        mu = 1e-6
        gen = torch.Generator()
        fn = instances_objective(p, q + 1)
        t_batched = best_time(lambda: estimate_gradient(fn, x, q, "avg", "gaussian", "forward", mu, gen), repeats,
                              min_seconds)
        t_loop = best_time(lambda: loop_estimate(p, x, q, mu, gen), repeats, min_seconds)
        queries = (q + 1) * B
        rows.append({"n": n, "q": q, "B": B, "queries_per_estimate": queries,
                     "batched_queries_per_s": queries / t_batched, "loop_queries_per_s": queries / t_loop,
                     "ratio": t_loop / t_batched, "batched_ms": 1e3 * t_batched, "loop_ms": 1e3 * t_loop,
                     "same_estimate_rel_diff": same_estimate(p, x, q, mu)})
    return rows


# ----- merging runs ----------------------------------------------------------------------------------
RUN_KEYS = ("budget_per_dim", "seeds", "grid", "grid_kind", "noise_rel", "noise_mu", "fractions", "machine", "threads",
            "load_average", "seconds", "cpu_seconds", "samples", "dtype")


def git_date(path: Path) -> str | None:
    """The commit date of ``path`` (how a results file written before runs were recorded gets its date)."""
    import subprocess

    try:
        out = subprocess.run(["git", "log", "-1", "--format=%cI", "--", path.name], cwd=path.parent,
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def normalise(data: dict, path: Path | None = None) -> dict:
    """A results dict in the current layout (``runs`` plus rows tagged with their ``run``). A file
    written before runs were recorded is one run: its settings, machine, load and times, dated by
    the commit that last changed the file."""
    if "runs" in data:
        return data
    s = data["settings"]
    run = {"id": 1, "date": git_date(path) if path is not None else None,
           "command": ("python benchmarks/bench_zeroth_order.py " + s.get("argv", "")).strip(),
           "grid_kind": "absolute", "complete": True,
           **{k: s[k] for k in ("budget_per_dim", "seeds", "grid", "noise_rel", "noise_mu", "fractions")},
           **{k: data[k] for k in ("machine", "threads", "load_average", "seconds", "cpu_seconds")}}
    return {"runs": [run], "problems": data["problems"], "accountings": data["accountings"],
            "sweep": [{**r, "run": 1} for r in data["sweep"]], "speed": [{**r, "run": 1} for r in data["speed"]],
            "plots": data.get("plots", [])}


def load_previous(path: Path) -> dict | None:
    """The results already at ``path`` (normalised), or None where there are none or they cannot be read."""
    import json

    if not path.exists():
        return None
    try:
        return normalise(json.loads(path.read_text()), path)
    except (ValueError, KeyError, TypeError) as e:
        print(f"warning: {path} could not be read ({type(e).__name__}: {e}); writing fresh results", file=sys.stderr)
        return None


#: what must agree for rows of one setting measured by two runs (different q values) to stand side by side
ROW_SETTINGS = ("budget", "noise_sigma", "mu")
RUN_SETTINGS = ("seeds", "grid", "grid_kind", "noise_rel", "noise_mu", "fractions", "samples", "dtype")


def completes(old: dict, rows: list[dict], run: dict, runs: list[dict]) -> bool:
    """Whether ``old``, a row of a setting (n, problem, noise level) that ``rows`` of ``run`` measure
    again, stays beside them: its q is not among theirs (a run with ``--qs`` adds q values to a
    setting) and it was measured alike (same budget, noise, radius, instances, step grid, data
    size and precision), so that the q-sweep of the setting stays one experiment."""
    key = (old["n"], old["problem"], old["noisy"])
    same = [r for r in rows if (r["n"], r["problem"], r["noisy"]) == key]
    if any(r["q"] == old["q"] for r in same):
        return False
    old_run = next((r for r in runs if r["id"] == old.get("run")), None)
    if old_run is None:
        return False
    defaults = {"samples": None, "dtype": "float64"}

    def setting(r: dict, k: str):
        v = r.get(k, defaults.get(k))
        return list(v) if isinstance(v, tuple) else v  # a tuple in memory is a list once read from JSON

    return (all(old.get(k) == same[0].get(k) for k in ROW_SETTINGS)
            and all(setting(old_run, k) == setting(run, k) for k in RUN_SETTINGS))


def merge(previous: dict | None, run: dict, rows: list[dict], speed_rows: list[dict] | None,
          problems: dict[str, str]) -> dict:
    """The results with ``rows`` (and ``speed_rows`` if measured) of ``run`` in place of what
    ``previous`` had for the same (n, problem, noise level) settings (and the same speed cases); every other entry is
    kept with the run that measured it, and so are the rows of such a setting at q values this run did not measure
    where they were measured alike (``completes``). Runs no entry refers to any more are dropped; the verdicts
    are recomputed over everything kept. A run without an ``id`` gets one more than the largest so
    far; a run with one replaces the run of that id (a later save of the same run)."""
    prev = previous or {"runs": [], "problems": {}, "accountings": {}, "sweep": [], "speed": []}
    if run.get("id") is None:
        run = {**run, "id": max((r["id"] for r in prev["runs"]), default=0) + 1}
    prev = {**prev, "runs": [r for r in prev["runs"] if r["id"] != run["id"]]}  # an earlier save of this run
    keys = {(r["n"], r["problem"], r["noisy"]) for r in rows}
    sweep_rows = [r for r in prev["sweep"] if (r["n"], r["problem"], r["noisy"]) not in keys
                  or completes(r, rows, run, prev["runs"])] + [{**r, "run": run["id"]} for r in rows]
    sweep_rows.sort(key=lambda r: (r["n"], r["problem"], r["noisy"], r["rule"], r["q"],
                                   list(ACCOUNTINGS).index(r["accounting"])))
    if speed_rows is None:
        speeds = list(prev["speed"])
    else:
        cases = {(r["n"], r["q"], r["B"]) for r in speed_rows}
        speeds = [r for r in prev["speed"] if (r["n"], r["q"], r["B"]) not in cases] + [
            {**r, "run": run["id"]} for r in speed_rows]
    used = {r["run"] for r in sweep_rows} | {r["run"] for r in speeds} | {run["id"]}
    runs = [r for r in prev["runs"] if r["id"] in used] + [run]
    measured = {r["problem"] for r in sweep_rows}
    all_problems = {**prev["problems"], **problems}
    return {"runs": runs, "problems": {k: v for k, v in all_problems.items() if k in measured},
            "accountings": {k: v.describe() for k, v in ACCOUNTINGS.items()},
            "sweep": sweep_rows, "verdicts": verdicts(sweep_rows), "speed": speeds,
            "plots": list(prev.get("plots", [])), "f_star_cache": dict(prev.get("f_star_cache", {})),
            "float32_check": list(prev.get("float32_check", []))}


# ----- report ----------------------------------------------------------------------------------------
def fmt(v: float) -> str:
    return "inf" if not math.isfinite(v) else f"{v:.2e}"


def _best(v: dict, rule: str, step: str, claimed: int) -> str:
    q, ratio = v[f"{rule}_{step}_best_q"], v[f"{rule}_{step}_ratio"]
    if q == claimed:
        return f"{q}"
    return f"{q} (q={claimed}: x{ratio:.3g})" if math.isfinite(ratio) else f"{q} (q={claimed}: not run)"


def dims_of(res: dict) -> list[int]:
    return sorted({r["n"] for r in res["sweep"]})


def _grid_text(run: dict) -> str:
    ks = ", ".join(f"{k:g}" for k in run["grid"])
    if run.get("grid_kind") == "relative":
        return (f"c = `descent_factor` x 2^k, k in {{{ks}, 0}} (k = 0 is the theory step, so it takes part in the "
                "tuning)")
    return f"c = 2^k, k in {{{ks}}}, plus the theory step (reported, not tuned)"


def verdict_runs(vs: list[dict]) -> list:
    """The runs behind verdicts ``vs`` (``runs``; a file written before it was recorded: ``run``)."""
    return [i for v in vs for i in (v.get("runs") or [v["run"]])]


def runs_of(res: dict, run_ids) -> str:
    return ", ".join(f"run {i}" for i in sorted(set(run_ids)))


def coverage_notes(res: dict) -> list[str]:
    """Lines saying which settings were not measured and where budgets differ between dimensions."""
    rows, out = res["sweep"], []
    dims = dims_of(res)
    for n in dims:
        missing = [f"{p} ({'noisy' if noisy else 'exact'})" for p in res["problems"] for noisy in (False, True)
                   if not any((r["n"], r["problem"], r["noisy"]) == (n, p, noisy) for r in rows)]
        if missing:
            out.append(f"Not measured at n = {n}: {', '.join(missing)}.")
    per_dim = {n: sorted({r["budget"] // n for r in rows if r["n"] == n}) for n in dims}
    if len({tuple(v) for v in per_dim.values()}) > 1:
        out.append("Budgets differ between dimensions (" + ", ".join(
            f"Q = {'/'.join(map(str, v))} n at n = {n}" for n, v in per_dim.items()) + "): the number of "
            "full-gradient equivalents Q/n differs, so compare the curves within a dimension.")
    return [" ".join(out), ""] if out else []


def to_markdown(res: dict) -> str:
    runs = res["runs"]
    L = ["# Zeroth-order optimization: the multi-query paradox and batched queries", "",
         "Measured on this machine by the runs below (each (n, problem, noise level) setting comes from the run "
         "that last measured it: `python benchmarks/bench_zeroth_order.py --dims ...` merges into this file and keeps "
         "the other entries with their own date, command and load). Nothing here is copied from the paper: its body "
         "could not be read (`../shared/RESEARCH-2.md` §2), so the claims tested are the abstract's.", "",
         "| run | date (UTC) | command | n, problems | machine | torch threads | load avg. at start | wall | CPU |",
         "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        measured = sorted({(x["n"], x["problem"], x["noisy"]) for x in res["sweep"] if x.get("run") == r["id"]})
        names = {}
        for n, p, noisy in measured:
            names.setdefault(n, {}).setdefault(p, []).append("noisy" if noisy else "exact")
        what = "; ".join(f"n = {n}: " + ", ".join(f"{p} ({', '.join(v)})" for p, v in ps.items())
                         for n, ps in names.items())
        if any(x.get("run") == r["id"] for x in res["speed"]):
            what += ("; " if what else "") + "speed"
        partial = "" if r.get("complete", True) else " (partial: interrupted or still running)"
        partial += f" ({r['note']})" if r.get("note") else ""
        L.append(f"| {r['id']} | {r.get('date') or 'not recorded'} | `{r['command']}` | {what}{partial} | "
                 f"{r['machine']} | {r['threads']} | {r['load_average']} | {r['seconds']:.0f} s | "
                 f"{r['cpu_seconds']:.0f} s |")
    L += ["", "## What was run", ""]
    for r in runs:
        dims = sorted({x["n"] for x in res["sweep"] if x.get("run") == r["id"]})
        if not dims:
            continue
        budgets = ", ".join(f"{r['budget_per_dim'] * n} at n = {n}" for n in dims)
        qtext = ("{1, 2, 4, ..., n} (the powers of 2 below n, then n)" if not r.get("qs") else
                 "{" + ", ".join(map(str, r["qs"])) + "}")
        L.append(f"* Run {r['id']}: n = {', '.join(map(str, dims))}; q in {qtext}; budget Q = {r['budget_per_dim']} "
                 f"n queries per instance ({budgets}); {r['seeds']} "
                 f"instances per problem; steps c / L with {_grid_text(r)}, all in one batch. Noisy runs: "
                 f"sigma = {r['noise_rel']:g} x |F(x0) - F*| (|F(x0)| for the non-convex problem), "
                 f"mu = {r['noise_mu']:g}."
                 + (f" Both logistic problems with N = {r['samples']} samples." if r.get("samples") else "")
                 + (f" Objective and iterates in {r['dtype']} (the measure in float64)."
                    if r.get("dtype", "float64") != "float64" else ""))
    L += ["* The theory step: c = `descent_factor`, q/(q+n+1) for ZO-Avg and 1 for ZO-Align, the step that "
          "maximises the expected one-step decrease. The tuned step is the grid c with the smallest median final gap "
          "over the instances, per (problem, n, noise, rule, q, accounting); * marks a tuned c at the edge of the "
          "grid.",
          "* `zo_gd`: ZO-Avg with Gaussian directions, ZO-Align with orthonormal ones (the same projection as "
          "Gaussian directions with exact values, better conditioned under noise); constant step, no momentum; "
          "directions drawn independently per row. Exact runs: mu = 1e-7. Noisy runs: N(0, sigma^2) on every value.",
          "* Measure: (F(x) - F*) / (F(x0) - F*) at the end of the budget; for the non-convex problem "
          "||grad f(x)||^2 / ||grad f(x0)||^2. inf: diverged.",
          "* Accountings (queries charged per iteration): `q+1` forward differences, the base f(x) shared and "
          "counted; `q` forward differences, one query per direction (the base free); `2q` central differences. "
          "`q+1` and `q` are read from the same forward-difference run at their own iteration counts.", "",
          "Problems: " + "; ".join(f"`{k}`: {v}" for k, v in res["problems"].items()) + ".", "",
          *coverage_notes(res),
          "## The paper's two claims", "",
          "Claim 1: ZO-Avg is best at q = 1. Claim 2: ZO-Align is best at q = n. Counts of the settings (n x problem "
          "x noise) where the measured best q (median final gap) is the claimed one, over every dimension measured "
          f"(n = {', '.join(map(str, dims_of(res)))}; {runs_of(res, verdict_runs(res['verdicts']))}), "
          "then per dimension:", "",
          "| n | runs | accounting | claim 1, tuned step | claim 1, theory step | claim 2, tuned step | "
          "claim 2, theory step |",
          "|---|---|---|---|---|---|---|"]
    V = res["verdicts"]
    for n in [None, *dims_of(res)]:
        for acc in ACCOUNTINGS:
            sub = [v for v in V if v["accounting"] == acc and n in (None, v["n"])]
            cells = [f"{sum(v[f'{rule}_{step}_claim_holds'] for v in sub)}/{len(sub)}"
                     for rule in ("avg", "align") for step in ("tuned", "theory")]
            label = "all" if n is None else str(n)
            L.append(f"| {label} | {runs_of(res, verdict_runs(sub))} | `{acc}` | " + " | ".join(cells) + " |")
    L += ["", "Per setting: the best q, and where it is not the claimed one, how much worse the claimed q is "
          "(x gap ratio). `predicted`: the best q of the one-step heuristic of RESEARCH-2 §2 with the theory step "
          "(expected decrease per iteration q/(q+n+1) for ZO-Avg and q/n for ZO-Align, "
          "divided by the queries charged per iteration; `flat`: the same for every q).", "",
          "| n | problem | noise | acc. | Avg tuned | Avg theory step | Avg predicted | Align tuned | "
          "Align theory step | Align predicted |", "|---|---|---|---|---|---|---|---|---|---|"]
    for v in V:
        n = v["n"]
        pa, pl = v["avg_predicted_q"], v["align_predicted_q"]
        L.append(f"| {n} | {v['problem']} | {'noisy' if v['noisy'] else 'exact'} | {v['accounting']} | "
                 f"{_best(v, 'avg', 'tuned', 1)} | {_best(v, 'avg', 'theory', 1)} | {pa if pa else 'flat'} | "
                 f"{_best(v, 'align', 'tuned', n)} | {_best(v, 'align', 'theory', n)} | {pl if pl else 'flat'} |")
    L += ["", "## Final gap against q", "",
          "Median over the instances of the final measure, with the tuned step and with the theory step.", ""]
    rows = res["sweep"]
    for n in dims_of(res):
        for pname in res["problems"]:
            for noisy in (False, True):
                sel = [r for r in rows if (r["n"], r["problem"], r["noisy"]) == (n, pname, noisy)]
                if not sel:
                    continue
                qs = sorted({r["q"] for r in sel})
                L += [f"**n = {n}, {pname}, {'noisy' if noisy else 'exact'}**", "",
                      "| rule | step | accounting | " + " | ".join(f"q={q}" for q in qs) + " |",
                      "|---|---|---|" + "---|" * len(qs)]
                for rule in RULES:
                    for step, key in (("tuned", "median"), ("theory", "theory_median")):
                        for acc in ACCOUNTINGS:
                            cells = []
                            for q in qs:
                                r = next((r for r in sel if (r["rule"], r["accounting"], r["q"]) == (rule, acc, q)),
                                         None)
                                if r is None:  # the budget affords no iteration of this q
                                    cells.append("-")
                                    continue
                                cells.append(fmt(r[key]) + ("*" if step == "tuned" and r["at_edge"] else ""))
                            L.append(f"| {rule} | {step} | {acc} | " + " | ".join(cells) + " |")
                L.append("")
    L += float32_markdown(res.get("float32_check", []))
    L += ["Plots: " + ", ".join(f"`{f}`" for f in res.get("plots", [])) + " (rows: problems; columns: accountings; "
          "solid: tuned step, dotted: theory step).", "",
          "## Speed: one batched call vs a Python loop over queries", "",
          "One ZO-Avg estimate with forward differences, (q + 1) B queries, on `QuadraticInstances` (dense shared Q, "
          "kappa = 10): `estimate_gradient` with all queries in one objective call against the usual loop with one "
          "call per query (each call batched over the B instances). Best of several repeats; `same` is the relative "
          "difference of the two estimates computed from the same directions. "
          f"Measured by {runs_of(res, (r['run'] for r in res['speed']))}.", "",
          "| n | q | B | queries | batched queries/s | loop queries/s | ratio | same |",
          "|---|---|---|---|---|---|---|---|"]
    for r in res["speed"]:
        L.append(f"| {r['n']} | {r['q']} | {r['B']} | {r['queries_per_estimate']} | "
                 f"{r['batched_queries_per_s']:.3g} | {r['loop_queries_per_s']:.3g} | {r['ratio']:.1f}x | "
                 f"{r['same_estimate_rel_diff']:.1e} |")
    return "\n".join(L) + "\n"


def float32_markdown(checks: list[dict]) -> list[str]:
    if not checks:
        return []
    L = ["## float32 or float64", "",
         "`--float32-check`: cells of the sweep (forward differences, the `q` accounting, the relative step grid) run "
         "in float64, in float32 with the same draws, and in float64 with other draws. `change`: the largest "
         "|measure / measure in float64 - 1| over the (instance, step) rows; `step`: the index of the step each "
         "picks (0 = the largest). A float32 change no larger than the redrawn one means float32 measures what "
         "float64 does, up to the draws.", "",
         "| n | problem | noise | rule | q | Q | N | float32 change | redrawn change | step f64 / f32 / redrawn | "
         "tuned median f64 / f32 / redrawn | measured |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in checks:
        L.append(f"| {c['n']} | {c['problem']} | {'noisy' if c['noisy'] else 'exact'} | {c['rule']} | {c['q']} | "
                 f"{c['budget']} | {c.get('samples') or '-'} | {c['float32_change']:.3g} | {c['redrawn_change']:.3g} | "
                 f"{c['float64_step']} / {c['float32_step']} / {c['redrawn_step']} | "
                 f"{fmt(c['float64_median'])} / {fmt(c['float32_median'])} / {fmt(c['redrawn_median'])} | "
                 f"{c.get('date', '')} `{c.get('command', '')}` |")
    return L + [""]


def plot(res: dict, out: Path, suffix: str = "") -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    rows = res["sweep"]
    for n in dims_of(res):
        for noisy in (False, True):
            probs = [p for p in res["problems"] if any((r["n"], r["problem"], r["noisy"]) == (n, p, noisy)
                                                       for r in rows)]
            if not probs:  # this noise level was not measured at this n
                continue
            budget = "/".join(str(b) for b in sorted({r["budget"] for r in rows if (r["n"], r["noisy"]) == (n, noisy)}))
            fig, axes = plt.subplots(len(probs), len(ACCOUNTINGS), figsize=(4 * len(ACCOUNTINGS), 2.6 * len(probs)),
                                     squeeze=False)
            for i, pname in enumerate(probs):
                for j, acc in enumerate(ACCOUNTINGS):
                    ax = axes[i][j]
                    for rule, color in (("avg", "tab:blue"), ("align", "tab:orange")):
                        sel = sorted((r for r in rows if (r["n"], r["problem"], r["accounting"], r["rule"],
                                                          r["noisy"]) == (n, pname, acc, rule, noisy)),
                                     key=lambda r: r["q"])
                        for key, style, label in (("median", "-", "tuned"), ("theory_median", ":", "theory step")):
                            ys = [r[key] if math.isfinite(r[key]) else math.nan for r in sel]
                            ax.plot([r["q"] for r in sel], ys, style, color=color, marker="o", ms=3,
                                    label=f"ZO-{rule.capitalize()}, {label}")
                    ax.set_xscale("log", base=2)
                    if any(0 < r[k] < math.inf for r in rows if (r["n"], r["problem"], r["accounting"], r["noisy"])
                           == (n, pname, acc, noisy) for k in ("median", "theory_median")):
                        ax.set_yscale("log")
                    ax.set_title(f"{pname}, {acc} queries/iteration", fontsize=9)
                    if i == len(probs) - 1:
                        ax.set_xlabel("q (directions per iteration)")
                    if j == 0:
                        ax.set_ylabel("final relative measure")
            axes[0][0].legend(fontsize=7)
            fig.suptitle(f"n = {n}, {'noisy' if noisy else 'exact'} values, budget Q = {budget}: final measure vs q")
            fig.tight_layout()
            path = out / f"zeroth_order{suffix}-n{n}-{'noisy' if noisy else 'exact'}.png"
            fig.savefig(path, dpi=80)
            plt.close(fig)
            files.append(path.name)
    return files


def parse_list(text: str, kind, what: str) -> list:
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"error: {what} must be a comma-separated list, got {text!r}") from None


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dims", default="10,100", help="comma-separated dimensions n (default 10,100)")
    ap.add_argument("--problems", default=None,
                    help="comma-separated problems to run (default: all of " + ", ".join(PROBLEMS) + ")")
    ap.add_argument("--budget-per-dim", type=int, default=20, help="total budget Q = this x n queries per instance")
    ap.add_argument("--seeds", type=int, default=3, help="instances per problem")
    ap.add_argument("--grid", choices=("absolute", "relative"), default="absolute",
                    help="absolute: steps 2^k / L; relative: steps descent_factor x 2^k / L, the theory step (k = 0) "
                         "being the grid's last point (default absolute)")
    ap.add_argument("--grid-exponents", default=None,
                    help="comma-separated exponents k, descending (default: 3, 2.5, ..., 0.5, 0, -1, ..., -10 for "
                         "the absolute grid, 4, 3, 2, 1 for the relative one)")
    ap.add_argument("--noise", type=float, default=1e-6, help="noise sigma relative to |F(x0) - F*|")
    ap.add_argument("--values", choices=("exact", "noisy", "both"), default="both",
                    help="exact function values, noisy ones, or both (default)")
    ap.add_argument("--noise-mu", type=float, default=1e-4, help="smoothing radius mu of the noisy runs")
    ap.add_argument("--qs", default=None,
                    help="comma-separated q values (default: 1, 2, 4, ..., the powers of 2 below n, then n)")
    ap.add_argument("--samples", type=int, default=None,
                    help="data points N of both logistic problems (default: N = 2n for logistic_l2, 5n for "
                         "nonconvex_logistic)")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                    help="precision of the objective and the iterates (default float64; the measure is float64)")
    ap.add_argument("--float32-check", action="store_true",
                    help="measure no sweep: compare float32 with float64 on a few cells of --problems at --dims "
                         "(budget, instances, samples as given) and merge that check into the results")
    ap.add_argument("--quick", action="store_true", help="a smoke run: short budget, 4 steps, 2 instances")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    ap.add_argument("--no-speed", action="store_true", help="skip the speed measurement (keep the one on file)")
    ap.add_argument("--fresh", action="store_true", help="do not merge into the results on file: replace them")
    ap.add_argument("--report-only", action="store_true",
                    help="measure nothing: rewrite the markdown (and plots) from the results on file")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dims = parse_list(args.dims, int, "--dims")
    problems = None if args.problems is None else parse_list(args.problems, str, "--problems")
    unknown = [p for p in problems or [] if p not in PROBLEMS]
    if unknown or problems == []:
        raise SystemExit(f"error: --problems must name some of {', '.join(PROBLEMS)}; got {args.problems!r}")
    qs = None if args.qs is None else parse_list(args.qs, int, "--qs")
    if qs is not None and (not qs or min(qs) < 1):
        raise SystemExit(f"error: --qs must be positive integers, got {args.qs!r}")
    if args.samples is not None and args.samples < 1:
        raise SystemExit(f"error: --samples must be a positive number of data points, got {args.samples}")
    if any(n < 2 for n in dims):
        raise SystemExit(f"error: --dims must be integers >= 2, got {args.dims!r}")
    relative = args.grid == "relative"
    if args.grid_exponents is not None:
        grid = parse_list(args.grid_exponents, float, "--grid-exponents")
    elif args.quick:
        grid = [2, 1] if relative else [2, 0, -3, -6, -9]
    else:
        grid = [4, 3, 2, 1] if relative else [3, 2.5, 2, 1.5, 1, 0.5, *range(0, -11, -1)]
    budget_per_dim = 20 if args.quick else args.budget_per_dim
    seeds = 2 if args.quick else args.seeds
    start, cpu_start = time.perf_counter(), time.process_time()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    stem = "zeroth_order" + ("-quick" if args.quick else "")
    if args.report_only:
        res = load_previous(args.out / f"{stem}.json")
        if res is None:
            raise SystemExit(f"error: --report-only needs results at {args.out / stem}.json; there are none")
        res = {**res, "verdicts": verdicts(res["sweep"])}
        if not args.no_plots:
            res["plots"] = plot(res, args.out, "-quick" if args.quick else "")
        write_results(args.out, stem, res, to_markdown(res))
        return res
    argv_text = " ".join(sys.argv[1:] if argv is None else argv)
    run = {"id": None, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "command": f"python benchmarks/bench_zeroth_order.py {argv_text}".strip(),
           "grid_kind": args.grid, "budget_per_dim": budget_per_dim, "seeds": seeds, "grid": grid,
           "noise_rel": args.noise, "noise_mu": args.noise_mu, "fractions": FRACTIONS,
           "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
           "threads": args.threads, "load_average": round(load, 2), "samples": args.samples, "dtype": args.dtype,
           "qs": qs}
    # descriptions only: no F* is computed for them (problems=[])
    descriptions = {k: v["what"] for k, v in make_problems(2, 1, problems=[]).items()
                    if problems is None or k in problems}
    previous = load_previous(args.out / f"{stem}.json")
    f_star_cache: dict[str, list[float]] = {} if args.fresh or previous is None else dict(
        previous.get("f_star_cache", {}))
    fresh = [args.fresh]

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s] {msg}", flush=True)

    def save(rows: list[dict], speeds: list[dict] | None, complete: bool, plots: bool) -> dict:
        """Merge this run into the file as it is now (another run may have written it meanwhile: the
        read-merge-write holds a lock on the folder), keeping this run's id across saves."""
        timing = {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu_start,
                  "complete": complete}
        args.out.mkdir(parents=True, exist_ok=True)
        with results_lock(args.out):
            previous = None if fresh[0] else load_previous(args.out / f"{stem}.json")
            fresh[0] = False
            res = merge(previous, {**run, **timing}, rows, speeds, descriptions)
            res["f_star_cache"] = {**res["f_star_cache"], **f_star_cache}
            run["id"] = res["runs"][-1]["id"]
            write_results(args.out, stem, res, to_markdown(res))  # before plotting: a failed plot loses nothing
            if plots:
                res["plots"] = plot(res, args.out, "-quick" if args.quick else "")
                write_results(args.out, stem, res, to_markdown(res))
        return res

    measured: dict[tuple[int, str], list[dict]] = {}

    def done(problem_rows: list[dict]) -> None:  # rows reach the file after each (problem, noise level)
        measured[problem_rows[0]["n"], problem_rows[0]["problem"]] = problem_rows  # the problem's rows so far
        save([r for rs in measured.values() for r in rs], None, complete=False, plots=False)
        log(f"merged {problem_rows[0]['problem']} (n = {problem_rows[0]['n']}) into {args.out}/{stem}.json")

    if args.float32_check:
        checks = [{**c, "date": run["date"], "command": run["command"], "load_average": run["load_average"]}
                  for n in dims for c in float32_check(n, budget_per_dim * n, seeds, [4, 3, 2, 1], args.noise,
                                                       args.noise_mu, problems or list(PROBLEMS), args.samples,
                                                       f_star_cache)]
        args.out.mkdir(parents=True, exist_ok=True)
        with results_lock(args.out):
            prev = load_previous(args.out / f"{stem}.json")
            if prev is None:
                raise SystemExit(f"error: --float32-check merges into results at {args.out / stem}.json; "
                                 "there are none")
            keys = {(c["n"], c["problem"]) for c in checks}
            res = {**prev, "verdicts": verdicts(prev["sweep"]),
                   "f_star_cache": {**prev.get("f_star_cache", {}), **f_star_cache},
                   "float32_check": [c for c in prev.get("float32_check", []) if (c["n"], c["problem"]) not in keys]
                   + checks}
            write_results(args.out, stem, res, to_markdown(res))
        log(f"float32 check merged into {args.out}/{stem}.json")
        return res
    for n in dims:
        levels = {"exact": (False,), "noisy": (True,), "both": (False, True)}[args.values]
        sweep(n, budget_per_dim * n, seeds, grid, args.noise, args.noise_mu, log, problems, relative, done, levels,
              args.samples, f_star_cache, getattr(torch, args.dtype), qs)
    speeds = None
    if not args.no_speed:
        speed_cases = [(10, 10, 1), (10, 10, 32), (100, 16, 1), (100, 16, 32), (100, 100, 32), (1000, 16, 32)]
        if args.quick:
            speed_cases = [(10, 10, 32)]
        speeds = speed(speed_cases, repeats=2 if args.quick else 5, min_seconds=0.02 if args.quick else 0.2)
        log("speed done")
    res = save([r for rs in measured.values() for r in rs], speeds, complete=True, plots=not args.no_plots)
    log(f"wrote {args.out}/{stem}.{{json,md}} and {', '.join(res['plots'])}")
    return res


if __name__ == "__main__":
    main()
