"""Speed of the learned LFISTA against FISTA on the LASSO preset: wall time to a target on
every instance, and the cost of one iteration of each learned architecture.

In one run, on this machine (torch threads 2, ``l2o.utils.performance.tune_allocator()``):

1. Train LFISTA from ``examples/lfista_lasso.toml`` (or load the run directory given by
   ``--run``) and record the training time.
2. Sample ``--batch`` fresh instances of ``lasso_250x500`` (seed ``--seed``, distinct from
   the training seeds) and their float64 reference optima.
3. For lfista, fista_restart and fista, in float32 and float64, measure side by side
   (interleaved, best of ``--repeats``):

   * iterations until EVERY instance reaches relative suboptimality 1e-4 and 1e-6
     (from an untimed recorded run; gaps in float64 against the reference), and the
     median instance's;
   * "loop" seconds: a tight loop of exactly that many steps (the time of a solver
     stopped by an oracle at the right iteration: steps only, the same for all);
   * "solve" seconds: ``l2o.solve`` as bench_classical.py runs it, i.e. stopping on the
     family's certificate (float64 duality gap) or the fixed-point residual checked
     every 5 iterations, converged instances leaving the batch, over a ladder of
     tolerances 1e-1 ... 1e-10; the time to a target is the fastest setting whose
     true gap meets it on every instance (checks included).
4. Per-iteration cost on the whole batch (ms per step, best of ``--repeats``, interleaved):
   lfista inside its horizon and after it, fista_restart, fista, untrained Math-L2O and
   GO-Math-L2O, and the cost of a tiny per-coordinate gate (a 2 -> 4 -> 2 MLP on
   (grad_i / L, [x_i != 0])) alone, the cheapest learned per-coordinate feature map.
5. LFISTA at 10x its horizon (float32 and float64): the gap at K and at 10 K, and
   whether every instance reaches 1e-6.
6. What the 5x target would take (float64, ``benchmarks/lasso_oracle.py``): the Gram
   products a support-and-sign oracle with conjugate gradients needs to bring every
   instance to each target (a yardstick for one-product-per-iteration solvers), the
   iteration at which lfista and fista_restart identify the optimal support and signs,
   and the condition numbers of A_S^T A_S.

    python benchmarks/bench_speed.py [--run DIR] [--batch 1000] [--repeats 3] [--quick]

writes ``benchmarks/results/speed.json`` and ``speed.md`` (atomically; ``--quick``:
``speed-quick.*``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

from _common import write_results  # benchmarks/_common.py: the script's folder is sys.path[0]
from l2o import make_family, make_solver, solve
from l2o.evaluation import reference
from l2o.learned import GOMathL2O, MathL2O
from l2o.training import load_config, load_run, train
from l2o.training.trainer import _derive_seeds
from l2o.utils.performance import tune_allocator

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lasso_oracle  # noqa: E402  (a sibling module of this script)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
CONFIG = ROOT / "examples" / "lfista_lasso.toml"
TARGETS = (1e-4, 1e-6)
LADDER = tuple(10.0 ** -k for k in range(1, 11))
CRITERIA = ("certificate", "residual")
DTYPES = (torch.float32, torch.float64)
BASELINE = "fista_restart"


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def key(target: float) -> str:
    return f"{target:.0e}"


# ----- the model ------------------------------------------------------------------------------------------
def get_model(run_dir: Path | None, workdir: Path, steps: int | None) -> tuple[object, dict]:
    """The trained LFISTA: loaded from ``run_dir`` or trained from the example config."""
    if run_dir is not None:
        run = load_run(run_dir)
        info = {"source": str(run_dir), "trained_here": False, "train_seconds": run.metrics.get("seconds")}
    else:
        config = load_config(CONFIG)
        if steps is not None:
            config = dataclasses.replace(config, training=dataclasses.replace(config.training, steps=steps))
        out = workdir / "lfista_lasso"
        if out.exists():
            import shutil

            shutil.rmtree(out)
        start = time.perf_counter()
        train(config, out)
        wall = time.perf_counter() - start
        run = load_run(out)
        info = {"source": str(out), "trained_here": True, "train_seconds": run.metrics.get("seconds"),
                "train_wall_seconds": wall}
    t = run.config.training
    info.update({"config": CONFIG.name, "steps": t.steps, "batch_size": t.batch_size, "unroll": t.unroll,
                 "train_set_size": t.train_set_size, "loss": t.loss, "log_eps": t.log_eps, "dtype": t.dtype,
                 "best_step": run.metrics.get("best_step"), "initial_val_gap": run.metrics.get("initial_val_gap"),
                 "best_val_gap": run.metrics.get("best_val_gap"), "solver_params": run.config.solver_params,
                 "training_seeds": _derive_seeds(t.seed, 5)})
    return run, info


def model_in(run, dtype: torch.dtype):
    """A copy of the trained solver with parameters in ``dtype``, eval mode."""
    solver = type(run.solver)(**run.solver.hparams)
    solver.load_state_dict(run.solver.state_dict())
    return solver.to(dtype).eval()


# ----- iterations to a target (untimed) -------------------------------------------------------------------
@torch.no_grad()
def gap_trajectory(solver, problem, ref, exact, iterations: int) -> torch.Tensor:
    """``(iterations, B)`` float64 relative gaps after each step (untimed)."""
    state = solver.init(problem, problem.initial_point())
    gaps = []
    for _ in range(iterations):
        state = solver.step(problem, state)
        gaps.append(ref.relative_gap(exact.objective(state.x.to(torch.float64))))
    return torch.stack(gaps)


def iterations_to(gaps: torch.Tensor, target: float) -> dict:
    hit = gaps <= target
    every = hit.all(1)
    first = torch.where(hit.any(0), hit.float().argmax(0) + 1, torch.full_like(hit[0], -1, dtype=torch.long))
    reached = first[first > 0].double()
    return {"all": int(every.float().argmax()) + 1 if bool(every.any()) else None,
            "median": float(reached.median()) if bool((first > 0).all()) else None,
            "fraction": float((first > 0).double().mean())}


# ----- timing ---------------------------------------------------------------------------------------------
@torch.no_grad()
def loop_seconds(solver, problem, steps: int, start_at: int = 0) -> float:
    """Wall time of ``steps`` steps in a tight loop (after ``start_at`` untimed steps)."""
    state = solver.init(problem, problem.initial_point())
    for _ in range(start_at):
        state = solver.step(problem, state)
    t0 = time.perf_counter()
    for _ in range(steps):
        state = solver.step(problem, state)
    return time.perf_counter() - t0


def solve_seconds(make, problem, exact, ref, repeats: int, check_every: int) -> dict:
    """bench_classical's protocol: ``l2o.solve`` over a ladder of stopping tolerances; the
    time to a target is the fastest setting whose true gap meets it on every instance."""
    out: dict = {"time_to": {}, "setting": {}, "max_iterations": {}}
    for target in TARGETS:
        out["time_to"][key(target)] = None
        for criterion in CRITERIA:
            for tol in LADDER:
                best, result = math.inf, None
                for _ in range(repeats):
                    r = solve(make(), problem, tol=tol, max_iter=5000, check_every=check_every, criterion=criterion)
                    if r.seconds < best:
                        best, result = r.seconds, r
                gap = float(ref.relative_gap(exact.objective(result.x.to(torch.float64))).max())
                if gap <= target:
                    if out["time_to"][key(target)] is None or best < out["time_to"][key(target)]:
                        out["time_to"][key(target)] = best
                        out["setting"][key(target)] = {"criterion": criterion, "tol": tol}
                        out["max_iterations"][key(target)] = int(result.iterations.max())
                    break
    return out


def interleaved_best(fns: dict, repeats: int) -> dict:
    """Best (min) of ``repeats`` rounds, each round calling every function once in turn."""
    best = {name: math.inf for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            best[name] = min(best[name], fn())
    return best


# ----- per-iteration cost -----------------------------------------------------------------------------------
class TinyGate(torch.nn.Module):
    """The cheapest per-coordinate learned map worth the name: a 2 -> 4 -> 2 MLP on
    (grad_i / L, [x_i != 0]) giving a per-coordinate step and threshold multiplier
    (2 sigma). Timed alone: what a gate would add to an LFISTA step."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))

    def forward(self, grad: torch.Tensor, x: torch.Tensor, inv_L: float) -> tuple[torch.Tensor, torch.Tensor]:
        feats = torch.stack([grad * inv_L, (x != 0).to(x.dtype)], dim=-1)
        out = 2.0 * torch.sigmoid(self.net(feats))
        return out[..., 0], out[..., 1]


@torch.no_grad()
def per_iteration_ms(run, problems: dict, repeats: int, block: int) -> dict:
    """ms per step on the whole batch, interleaved, best of ``repeats``."""
    out = {}
    for dt, problem in problems.items():
        lf = model_in(run, dt)
        K = lf.horizon
        math_l2o = MathL2O().to(dt).eval()
        go_math_l2o = GOMathL2O().to(dt).eval()
        gate = TinyGate().to(dt)
        g = torch.Generator().manual_seed(0)
        grad = torch.randn(problem.batch_size, problem.dim, generator=g, dtype=torch.float64).to(dt)
        x = torch.where(torch.rand(grad.shape, generator=g, dtype=torch.float64) < 0.15, grad, 0.0).to(dt)
        inv_L = float(1.0 / problem.smoothness()[0])
        fns = {
            "lfista (learned steps, k < K)": (
                lambda: loop_seconds(lf, problem, min(block, K - 1), start_at=1) / min(block, K - 1)
            ),
            "lfista (template steps, k >= K)": lambda: loop_seconds(lf, problem, block, start_at=K) / block,
            "fista_restart": lambda: loop_seconds(make_solver("fista_restart"), problem, block, start_at=1) / block,
            "fista": lambda: loop_seconds(make_solver("fista"), problem, block, start_at=1) / block,
            "math_l2o (untrained, PA)": lambda: loop_seconds(math_l2o, problem, 2, start_at=1) / 2,
            "go_math_l2o (untrained)": lambda: loop_seconds(go_math_l2o, problem, 2, start_at=1) / 2,
            "tiny per-coordinate gate 2-4-2 (alone)": lambda: _time(lambda: gate(grad, x, inv_L), block) / block,
        }
        best = interleaved_best(fns, repeats)
        base = best[BASELINE]
        out[dtype_name(dt)] = {name: {"ms": 1e3 * s, "vs_fista_restart": s / base} for name, s in best.items()}
        per = ", ".join(f"{n} {1e3 * s:.2f} ms" for n, s in best.items())
        print(f"  per-iteration {dtype_name(dt)}: {per}", flush=True)
    return out


def _time(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - t0


# ----- the benchmark -----------------------------------------------------------------------------------------
def bench(run, batch: int, seed: int, repeats: int, check_every: int, max_iter: int) -> dict:
    family = make_family("lasso_250x500")
    problem64 = family.sample(batch, seed)
    t0 = time.perf_counter()
    ref = reference(problem64)
    ref_seconds = time.perf_counter() - t0
    exact = problem64
    problems = {dt: (problem64 if dt == torch.float64 else problem64.to(dtype=dt)) for dt in DTYPES}
    K = run.solver.horizon
    makers = {
        "lfista": lambda dt: (lambda: model_in(run, dt)),
        "fista_restart": lambda dt: (lambda: make_solver("fista_restart")),
        "fista": lambda dt: (lambda: make_solver("fista")),
    }
    rows = []
    for dt, problem in problems.items():
        # warm-up (first calls allocate, build caches)
        for make in makers.values():
            solve(make(dt)(), problem.index(torch.arange(min(8, batch))), tol=1e-6, max_iter=200)
        its = {}
        for name, make in makers.items():
            horizon = 10 * K if name == "lfista" else max_iter
            gaps = gap_trajectory(make(dt)(), problem, ref, exact, max(horizon, max_iter))
            its[name] = {key(t): iterations_to(gaps, t) for t in TARGETS}
            if name == "lfista":
                at_k, at_10k = gaps[K - 1], gaps[10 * K - 1]
                lf10 = {"horizon": K, "gap_at_K_median": float(at_k.median()), "gap_at_K_max": float(at_k.max()),
                        "gap_at_10K_median": float(at_10k.median()), "gap_at_10K_max": float(at_10k.max()),
                        "all_reach_1e-06_by_10K": bool((gaps[:10 * K] <= 1e-6).any(0).all()),
                        "max_gap_decreases_K_to_10K": bool(float(at_10k.max()) <= float(at_k.max()))}
        # loop seconds: every solver stopped at the iteration where its last instance reaches the target
        loop = {}
        for t in TARGETS:
            fns = {name: (lambda name=name, n=its[name][key(t)]["all"]: math.inf if n is None
                          else loop_seconds(makers[name](dt)(), problem, n)) for name in makers}
            loop[key(t)] = interleaved_best(fns, repeats)
        solved = {
            name: solve_seconds(make(dt), problem, exact, ref, repeats, check_every) for name, make in makers.items()
        }
        for name in makers:
            row = {"solver": name, "dtype": dtype_name(dt), "iterations": its[name],
                   "loop_seconds": {k_: (None if math.isinf(v[name]) else v[name]) for k_, v in loop.items()},
                   "solve": solved[name]}
            if name == "lfista":
                row["ten_x_horizon"] = lf10
            rows.append(row)
            print(f"  {name:14s} {dtype_name(dt)}: iterations {json.dumps(its[name])} loop {row['loop_seconds']} "
                  f"solve {solved[name]['time_to']}", flush=True)
    for row in rows:  # ratios against fista_restart in the same dtype
        base = next(r for r in rows if r["solver"] == BASELINE and r["dtype"] == row["dtype"])
        row["speedup_vs_fista_restart"] = {}
        for t in TARGETS:
            k_ = key(t)
            a, b = row["loop_seconds"][k_], base["loop_seconds"][k_]
            c, d = row["solve"]["time_to"][k_], base["solve"]["time_to"][k_]
            row["speedup_vs_fista_restart"][k_] = {"loop": None if not a or not b else b / a,
                                                   "solve": None if not c or not d else d / c}
    return {"preset": "lasso_250x500", "batch": batch, "seed": seed, "reference_seconds": ref_seconds,
            "reference": ref.method, "rows": rows, "per_iteration": per_iteration_ms(run, problems, repeats, block=20),
            "five_x": what_five_x_takes(run, problem64, ref, rows, max_iter)}


def what_five_x_takes(run, problem64, ref, rows: list, max_iter: int) -> dict:
    """The oracle yardstick and support identification next to the measured iterations."""
    gaps = lasso_oracle.support_oracle_cg(problem64, ref, 60)
    base = next(r for r in rows if r["solver"] == BASELINE and r["dtype"] == "float64")
    out: dict = {"targets": {}}
    for t in TARGETS:
        k_ = key(t)
        n = base["iterations"][k_]["all"]
        out["targets"][k_] = {
            "fista_restart_all": n, "budget_for_5x": None if n is None else n / 5,
            "oracle_cg_F_all": lasso_oracle.first_iteration_all(gaps["F"], t),
            "oracle_cg_F_median": lasso_oracle.first_iteration_median(gaps["F"], t),
            "oracle_cg_q_all": lasso_oracle.first_iteration_all(gaps["q"], t),
            "oracle_cg_q_median": lasso_oracle.first_iteration_median(gaps["q"], t),
        }
    ident = {}
    for name, solver in (("lfista", model_in(run, torch.float64)), (BASELINE, make_solver(BASELINE))):
        first = lasso_oracle.sign_identification(solver, problem64, ref, max_iter).double()
        found = first[first > 0]
        ident[name] = {"fraction": float((first > 0).double().mean()),
                       "median": float(found.median()) if found.numel() else None,
                       "p90": float(found.quantile(0.9)) if found.numel() else None,
                       "max": float(found.max()) if found.numel() else None}
    kappa = lasso_oracle.support_condition_numbers(problem64, ref)
    nnz = (ref.x != 0).sum(-1).double()
    out.update({"sign_identification": ident,
                "support_size": {"median": float(nnz.median()), "max": float(nnz.max())},
                "support_condition": {"median": float(kappa.median()), "p90": float(kappa.quantile(0.9)),
                                      "max": float(kappa.max())}})
    return out


def gemm_gflops(batch: int, n: int, dtype: torch.dtype, repeats: int = 20) -> float:
    g = torch.Generator().manual_seed(0)
    x, M, c = (torch.randn(*s, generator=g, dtype=dtype) for s in ((batch, n), (n, n), (batch, n)))
    for _ in range(3):
        torch.addmm(c, x, M)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        torch.addmm(c, x, M)
        times.append(time.perf_counter() - t)
    return 2 * batch * n * n / min(times) / 1e9  # best of: the machine is shared


# ----- report -------------------------------------------------------------------------------------------------
def to_markdown(res: dict) -> str:
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    b = res["bench"]
    tr = res["training"]
    lines = [f"# LFISTA speed benchmark ({res['date']})", "",
             f"Machine: {res['machine']}; torch {res['torch']}, threads {res['torch_threads']}, allocator tuned: "
             f"{res['allocator_tuned']}; load average at start / end: {res['load_start']} / {res['load_end']} "
             f"(the machine is shared: treat ratios as +-20%, absolute times as indicative).", "",
             f"Command: `{res['command']}`", "",
             f"LASSO preset `{b['preset']}`, batch {b['batch']} fresh instances (seed {b['seed']}, "
             "not a training seed), "
             f"reference: {b['reference']}. GEMM throughput of one (B, n) x (n, n) addmm: "
             + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in res["gemm_gflops"].items()) + ".", "",
             f"Training: `{tr['config']}`, {tr['steps']} meta-steps of {tr['batch_size']} instances from a fixed "
             f"set of {tr['train_set_size']}, unroll K = {tr['unroll']}, loss {tr['loss']} (eps {tr['log_eps']}), "
             f"{tr['dtype']}; "
             f"{fmt(tr.get('train_seconds'), '.0f')} s of training"
             + (f" ({fmt(tr.get('train_wall_seconds'), '.0f')} s wall with setup)" if tr.get("trained_here") else
                f" (loaded from {tr['source']})")
             + f"; best validation step {tr['best_step']}, mean validation gap at K "
             f"{fmt(tr['initial_val_gap'], '.2e')} "
             f"(template) -> {fmt(tr['best_val_gap'], '.2e')}.", "",
             "## Time until every instance reaches the target", "",
             "Iterations: first iteration at which all instances (median: the median instance) are at or below the "
             "target. Loop: a tight loop of exactly that many steps (an oracle stop; steps only, identical for all "
             f"solvers), best of {res['repeats']}, interleaved. Solve: `l2o.solve` stopping on the certificate or the "
             "residual checked every 5 iterations, over a ladder of tolerances (bench_classical's protocol), checks "
             "included. Speedup = fista_restart's time / the solver's (same dtype, same target).", "",
             "| solver | dtype | its to 1e-4 (all / median) | loop s to 1e-4 | speedup | solve s to 1e-4 | speedup "
             "| its to 1e-6 (all / median) | loop s to 1e-6 | speedup | solve s to 1e-6 | speedup |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in b["rows"]:
        cells = []
        for t in TARGETS:
            k_ = key(t)
            it = r["iterations"][k_]
            sp = r["speedup_vs_fista_restart"][k_]
            cells += [f"{fmt(it['all'], 'd')} / {fmt(it['median'], '.0f')}", fmt(r["loop_seconds"][k_], ".3f"),
                      fmt(sp["loop"], ".2f") + ("x" if sp["loop"] else ""), fmt(r["solve"]["time_to"][k_], ".3f"),
                      fmt(sp["solve"], ".2f") + ("x" if sp["solve"] else "")]
        lines.append(f"| {r['solver']} | {r['dtype']} | " + " | ".join(cells) + " |")
    lines += ["", "## Cost of one iteration on the whole batch", "",
              f"ms per step on {b['batch']} x 500 (best of {res['repeats']}, interleaved); "
              "ratio to a fista_restart step.",
              "", "| step | " + " | ".join(f"{d} ms | {d} ratio" for d in b["per_iteration"]) + " |",
              "|---" * (1 + 2 * len(b["per_iteration"])) + "|"]
    names = list(next(iter(b["per_iteration"].values())))
    for n in names:
        cells = []
        for d, v in b["per_iteration"].items():
            cells += [f"{v[n]['ms']:.2f}", f"{v[n]['vs_fista_restart']:.2f}x"]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", "## LFISTA past its horizon", "",
              "| dtype | K | median gap at K | max gap at K | median gap at 10 K | max gap at 10 K | every instance "
              "reaches 1e-6 by 10 K | max gap decreases from K to 10 K |", "|---|---|---|---|---|---|---|---|"]
    for r in b["rows"]:
        if "ten_x_horizon" in r:
            h = r["ten_x_horizon"]
            lines.append(f"| {r['dtype']} | {h['horizon']} | {h['gap_at_K_median']:.2e} | {h['gap_at_K_max']:.2e} | "
                         f"{h['gap_at_10K_median']:.2e} | {h['gap_at_10K_max']:.2e} | {h['all_reach_1e-06_by_10K']} | "
                         f"{h['max_gap_decreases_K_to_10K']} |")
    if b.get("five_x"):
        lines += five_x_markdown(b["five_x"])
    if res.get("coefficients"):
        lines += ["", "## Learned scalars (k = 0 .. K-1)", ""]
        for name, v in res["coefficients"].items():
            lines.append(f"- {name}: " + " ".join(f"{x:.2f}" for x in v))
    return "\n".join(lines) + "\n"


def five_x_markdown(f: dict) -> list[str]:
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    lines = ["", "## What the 5x target would take", "",
             "A 5x win in wall time at the cost of one FISTA step per iteration means reaching the target on every "
             "instance within a fifth of fista_restart's iterations. Yardstick: conjugate gradients on the LASSO "
             "restricted to the support and signs of x* (an oracle no solver has), from x = 0, one product with the "
             "Gram matrix per iteration. Its q-gap lower-bounds the F-gap of any iterate in the same Krylov space "
             "(benchmarks/lasso_oracle.py); nonlinear learned solvers are not bound to that space, but must also find "
             "the support. float64, the same instances as above.", "",
             "| target | fista_restart, all | budget for 5x | oracle CG q-gap, all / median "
             "| oracle CG F-gap, all / median |",
             "|---|---|---|---|---|"]
    for k_, v in f["targets"].items():
        lines.append(f"| {k_} | {fmt(v['fista_restart_all'], 'd')} | {fmt(v['budget_for_5x'], '.1f')} | "
                     f"{fmt(v['oracle_cg_q_all'], 'd')} / {fmt(v['oracle_cg_q_median'], '.0f')} | "
                     f"{fmt(v['oracle_cg_F_all'], 'd')} / {fmt(v['oracle_cg_F_median'], '.0f')} |")
    lines += ["", "Iteration at which the iterate first has exactly the support and signs of x* (after it, one "
              "restricted solve finishes an instance):", "",
              "| solver | instances identified | median | p90 | max |", "|---|---|---|---|---|"]
    for name, v in f["sign_identification"].items():
        lines.append(f"| {name} | {v['fraction']:.1%} | {fmt(v['median'], '.0f')} | {fmt(v['p90'], '.0f')} | "
                     f"{fmt(v['max'], '.0f')} |")
    sc, ss = f["support_condition"], f["support_size"]
    lines += ["", f"Support size median {ss['median']:.0f}, max {ss['max']:.0f}; condition number of A_S^T A_S "
              f"median {sc['median']:.1f}, p90 {sc['p90']:.1f}, max {sc['max']:.1f}."]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, default=None, help="load the trained LFISTA from this run directory")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=2024, help="seed of the test instances")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--check-every", type=int, default=5)
    ap.add_argument("--max-iter", type=int, default=400, help="iterations recorded for the classical solvers")
    ap.add_argument("--steps", type=int, default=None, help="override the config's meta-steps")
    ap.add_argument("--quick", action="store_true", help="batch 100, 1 repeat, 10 meta-steps (a smoke run)")
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "bench")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.quick:
        args.batch, args.repeats = 100, 1
        args.steps = args.steps or 10
    torch.set_num_threads(2)
    tuned = tune_allocator()
    load_start = [round(v, 2) for v in os.getloadavg()]
    run, info = get_model(args.run, args.workdir, args.steps)
    if args.seed in info["training_seeds"]:
        sys.exit(f"error: --seed {args.seed} is one of the training seeds")
    print(f"model: {json.dumps({k: v for k, v in info.items() if k != 'training_seeds'})}", flush=True)
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join(["python"] + sys.argv),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                   f"Python {platform.python_version()}",
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "allocator_tuned": tuned,
        "repeats": args.repeats, "load_start": load_start, "training": info,
        "gemm_gflops": {f"{dtype_name(dt)}, B={args.batch}": gemm_gflops(args.batch, 500, dt) for dt in DTYPES},
        "coefficients": {k: [float(x) for x in v.detach()] for k, v in run.solver.coefficients().items()},
    }
    results["bench"] = bench(run, args.batch, args.seed, args.repeats, args.check_every, args.max_iter)
    results["load_end"] = [round(v, 2) for v in os.getloadavg()]
    suffix = "-quick" if args.quick else ""
    md = to_markdown(results)
    write_results(args.out, f"speed{suffix}", results, md)
    print(md)


if __name__ == "__main__":
    main()
