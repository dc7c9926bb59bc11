"""MIMO sum-rate benchmark: GNN-WMMSE against WMMSE and the linear precoders.

Trains GNN-WMMSE from ``examples/gnn_wmmse_mimo.toml`` (or loads a trained run with
``--run DIR``), then on fresh realizations of ``mimo_medium`` (3 cells x 4 users, M = 8,
N = d = 2, P = 10, sigma^2 = 1), all solvers side by side in one process, best of
``--repeats`` wall-clock runs, float32:

* WMMSE "converged": the reference sum-rate R*_b of each instance is WMMSE from MRT run in
  float64 until the relative rate change per iteration is < 1e-9 (at most 3000
  iterations). The time of WMMSE to its converged sum-rate is that of a float32 run in
  which instance b leaves the batch after k_b iterations, k_b the first iteration where its
  sum-rate is within 1e-4 (relative) of R*_b (an oracle stopping rule: the rate checks are
  not timed, only the steps and the compaction); without compaction the batch would need
  max_b k_b iterations.
* WMMSE with a fixed 100 iterations (float32, and once in float64), and with as many
  iterations as GNN-WMMSE has layers.
* MRT, ZF, RZF (closed form).
* GNN-WMMSE: its ``horizon`` learned layers from the default start (MRT); also once with
  10 x the horizon (the WMMSE tail after the learned layers).

Per solver: the sum-rate as a fraction of R*_b (per instance: mean, median, 10th
percentile) and the wall and CPU time for the batch. Then the scaling with the number of users
per cell, I in {2, 4, 6, 8} (K = 3, M = 8, N = d = 2): WMMSE and GNN-WMMSE time and
fraction, GNN-WMMSE trained at I = 4 and run without retraining (transfer), and with
``--retrain-scaling STEPS`` a model trained at each size. ``--transfer`` adds the trained
model, unchanged, on other numbers of cells and antennas, another SNR, geometric channels
and the single-cell 30-user preset.

    python benchmarks/bench_mimo.py [--run DIR] [--threads 2] [--retrain-scaling 600] [--transfer] [--quick]

writes ``benchmarks/results/mimo.json`` and ``mimo.md`` (``mimo-quick.*`` with --quick).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import torch

from _common import write_results  # benchmarks/_common.py: the script's folder is sys.path[0]
from l2o.evaluation.defaults import eval_seed
from l2o.evaluation.reference import run_to_stationarity
from l2o.learned import GNNWMMSE
from l2o.optimizers.base import select_state
from l2o.optimizers.wmmse import MRT, WMMSE, RegularizedZeroForcing, ZeroForcing
from l2o.problems.mimo import MimoFamily
from l2o.registry import PRESETS
from l2o.training import load_run, train
from l2o.training.config import load_config

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
CONFIG = ROOT / "examples" / "gnn_wmmse_mimo.toml"
#: Reference runs (float64 WMMSE from MRT): relative rate change per iteration below this.
REFERENCE_RTOL = 1e-9
REFERENCE_MAX_ITER = 3000
#: "Converged": within this relative distance of the reference sum-rate.
CONVERGED_RTOL = 1e-4


# ----- helpers ------------------------------------------------------------------------------------
def timed(fn) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result) of one call. On a shared machine
    the CPU time (with one torch thread) is the steadier measure: other processes stretch
    the wall time, not the work done."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def interleaved(jobs: dict, repeats: int) -> tuple[dict, dict, dict]:
    """Best wall and CPU seconds per job over ``repeats`` rounds (every round runs every job,
    so all see the same machine state), and each job's result."""
    wall = {name: float("inf") for name in jobs}
    cpu = dict(wall)
    xs = {}
    for _ in range(repeats):
        for name, fn in jobs.items():
            w, c, xs[name] = timed(fn)
            wall[name], cpu[name] = min(wall[name], w), min(cpu[name], c)
    return wall, cpu, xs


def fractions(problem64, x: torch.Tensor, reference: torch.Tensor) -> dict:
    """Per-instance sum-rate / reference (float64): mean, median, p10, min."""
    r = problem64.sum_rate(x.to(torch.float64)) / reference
    return {"mean": float(r.mean()), "median": float(r.median()), "p10": float(r.quantile(0.1)),
            "min": float(r.min())}


def run_steps(solver, problem, steps: int) -> torch.Tensor:
    state = solver.init(problem, problem.initial_point())
    for _ in range(steps):
        state = solver.step(problem, state)
    return state.x


def converged_reference(problem64) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 WMMSE from MRT until the rate change is < REFERENCE_RTOL: (R* (B,), iterations (B,))."""
    res = run_to_stationarity(WMMSE(), problem64, problem64.initial_point(), REFERENCE_RTOL, REFERENCE_MAX_ITER)
    return problem64.sum_rate(res.x), res.iterations


def compacted_wmmse(problem, max_iter: int, finished) -> tuple[torch.Tensor, torch.Tensor]:
    """WMMSE from the default start where instance b leaves the batch at the first
    iteration t with ``finished(t, sub, state, active)[b]`` (a bool mask over the active
    instances): returns its iteration ``(B,)`` (max_iter where never) and iterate ``(B, n)``."""
    B = problem.batch_size
    k = torch.full((B,), max_iter, dtype=torch.long)
    x_out = problem.initial_point().clone()
    active = torch.arange(B)
    sub, solver = problem, WMMSE()
    state = solver.init(sub, sub.initial_point())
    for t in range(1, max_iter + 1):
        state = solver.step(sub, state)
        done = finished(t, sub, state, active)
        if bool(done.any()):
            k[active[done]] = t
            x_out[active[done]] = state.x[done]
            keep = torch.nonzero(~done).squeeze(-1)
            active = active[keep]
            if not active.numel():
                break
            sub, state = sub.index(keep), select_state(state, keep)
    if active.numel():
        x_out[active] = state.x
    return k, x_out


def iterations_to_converge(problem, reference: torch.Tensor, max_iter: int) -> torch.Tensor:
    """``(B,)`` first WMMSE iteration (float32 run) whose sum-rate is within CONVERGED_RTOL of
    the reference (max_iter where never: censored); instances leave the batch once there."""
    target = reference * (1 - CONVERGED_RTOL)
    return compacted_wmmse(
        problem, max_iter, lambda t, sub, state, active: sub.sum_rate(state.x).to(torch.float64) >= target[active])[0]


def wmmse_oracle_run(problem, k: torch.Tensor) -> torch.Tensor:
    """WMMSE where instance b stops after k_b iterations (compacted batch); returns x (B, n)."""
    return compacted_wmmse(problem, int(k.max()), lambda t, sub, state, active: k[active] == t)[1]


# ----- training ----------------------------------------------------------------------------------
def train_model(config, workdir: Path, steps: int | None = None, family_overrides: dict | None = None) -> tuple:
    if steps is not None or family_overrides:
        training = config.training
        if steps is not None:
            training = dataclasses.replace(training, steps=steps, val_every=max(1, min(training.val_every, steps)))
        params = {**config.family_params, **(family_overrides or {})}
        config = dataclasses.replace(config, training=training, family_params=params)
    if workdir.exists():
        shutil.rmtree(workdir)
    t0 = time.perf_counter()
    result = train(config, workdir)
    seconds = time.perf_counter() - t0
    info = {"steps": config.training.steps, "batch_size": config.training.batch_size, "unroll": config.training.unroll,
            "loss": config.training.loss, "train_seconds": seconds, "trainer_seconds": result.seconds,
            "initial_val_gap": result.initial_val_gap, "best_val_gap": result.best_val_gap,
            "best_step": result.best_step, "parameters": sum(p.numel() for p in result.solver.parameters())}
    return load_run(workdir), info


# ----- measurements ----------------------------------------------------------------------------------
@torch.no_grad()
def main_comparison(solver: GNNWMMSE, family: MimoFamily, batch: int, seed: int, repeats: int, max_iter: int) -> dict:
    p = family.sample(batch, seed, dtype=torch.float32)
    p64 = p.as_float64()
    t0 = time.perf_counter()
    R_ref, ref_its = converged_reference(p64)
    ref_seconds = time.perf_counter() - t0
    k = iterations_to_converge(p, R_ref, max_iter)
    T = solver.horizon
    linear = {"mrt": MRT().precoder, "zf": ZeroForcing().precoder, "rzf": RegularizedZeroForcing().precoder}
    if p.tx_antennas < p.users * p.streams:
        linear.pop("zf")
    jobs = {
        "gnn_wmmse": lambda: run_steps(solver, p, T),
        f"wmmse_{T}": lambda: run_steps(WMMSE(), p, T),
        "wmmse_100": lambda: run_steps(WMMSE(), p, 100),
        "wmmse_converged": lambda: wmmse_oracle_run(p, k),
        **{name: (lambda f=f: f(p)) for name, f in linear.items()},
    }
    wall, cpu, xs = interleaved(jobs, repeats)
    rows = {name: {"seconds": wall[name], "cpu_seconds": cpu[name], "fraction": fractions(p64, xs[name], R_ref)}
            for name in jobs}
    w, c, x = timed(lambda: run_steps(WMMSE(), p64, 100))
    rows["wmmse_100_float64"] = {"seconds": w, "cpu_seconds": c, "fraction": fractions(p64, x, R_ref), "repeats": 1}
    w, c, x = timed(lambda: run_steps(solver, p, 10 * T))
    rows[f"gnn_wmmse_{10 * T}"] = {"seconds": w, "cpu_seconds": c, "fraction": fractions(p64, x, R_ref), "repeats": 1}
    kf = k.to(torch.float64)
    return {
        "family": "mimo_medium", "batch": batch, "seed": seed, "dtype": "float32", "horizon": T,
        "reference": {"method": f"float64 WMMSE from MRT until the relative rate change per iteration < "
                                f"{REFERENCE_RTOL:g} (at most {REFERENCE_MAX_ITER} iterations)",
                      "iterations_median": float(ref_its.double().median()), "iterations_max": int(ref_its.max()),
                      "mean_sum_rate_nats": float(R_ref.mean()), "seconds": ref_seconds},
        "wmmse_iterations_to_converge": {"rtol": CONVERGED_RTOL, "mean": float(kf.mean()),
                                         "median": float(kf.median()), "p90": float(kf.quantile(0.9)),
                                         "max": int(k.max()), "censored": int((k >= max_iter).sum()),
                                         "max_iter": max_iter},
        "solvers": rows,
    }


@torch.no_grad()
def scaling(solver: GNNWMMSE, users: list[int], batch: int, seed: int, repeats: int, max_iter: int,
            retrained: dict[int, GNNWMMSE]) -> list[dict]:
    out = []
    base = PRESETS["mimo_medium"][0]
    T = solver.horizon
    for I in users:
        family = dataclasses.replace(base, users=I)
        p = family.sample(batch, seed + I, dtype=torch.float32)
        p64 = p.as_float64()
        R_ref, _ = converged_reference(p64)
        k = iterations_to_converge(p, R_ref, max_iter)
        jobs = {"gnn_wmmse": lambda p=p: run_steps(solver, p, T),
                "wmmse_100": lambda p=p: run_steps(WMMSE(), p, 100),
                "wmmse_converged": lambda p=p, k=k: wmmse_oracle_run(p, k),
                f"wmmse_{T}": lambda p=p: run_steps(WMMSE(), p, T)}
        if I in retrained:
            jobs["gnn_wmmse_retrained"] = lambda m=retrained[I], p=p: run_steps(m, p, m.horizon)
        wall, cpu, xs = interleaved(jobs, repeats)
        out.append({"users": I, "batch": batch, "wmmse_iterations_mean": float(k.double().mean()),
                    "solvers": {name: {"seconds": wall[name], "cpu_seconds": cpu[name],
                                       "fraction": fractions(p64, xs[name], R_ref)} for name in jobs}})
    return out


def transfer_cases() -> dict[str, tuple[MimoFamily, int]]:
    """Shifts of ``mimo_medium`` (and other presets) for ``--transfer``: name -> (family, batch)."""
    med = PRESETS["mimo_medium"][0]
    return {
        "mimo_small (K 3, I 2, M 4)": (PRESETS["mimo_small"][0], 200),
        "K 2 cells": (dataclasses.replace(med, cells=2), 200),
        "K 4 cells": (dataclasses.replace(med, cells=4), 200),
        "N = d = 1": (dataclasses.replace(med, rx_antennas=1, streams=1), 200),
        "P = 100 (SNR +10 dB)": (dataclasses.replace(med, power=100.0), 200),
        "geometric channels, 8 dB shadowing": (dataclasses.replace(med, channel="geometric", shadowing_db=8.0), 200),
        "mimo_single_cell_30 (K 1, I 30, M 64, P 100)": (PRESETS["mimo_single_cell_30"][0], 50),
    }


@torch.no_grad()
def transfer(solver: GNNWMMSE, seed: int) -> list[dict]:
    """The model trained on mimo_medium, unchanged, on other families: fractions of the float64
    converged WMMSE sum-rate after its layers, WMMSE after as many and twice as many
    iterations, and the CPU time of a WMMSE iteration over that of a layer."""
    out = []
    T = solver.horizon
    for name, (family, batch) in transfer_cases().items():
        p = family.sample(batch, seed, dtype=torch.float32)
        p64 = p.as_float64()
        R_ref, its = converged_reference(p64)
        _, c_gnn, x = timed(lambda p=p: run_steps(solver, p, T))
        _, c_w, xw = timed(lambda p=p: run_steps(WMMSE(), p, T))
        out.append({"case": name, "batch": batch, "gnn_wmmse": fractions(p64, x, R_ref),
                    f"wmmse_{T}": fractions(p64, xw, R_ref),
                    f"wmmse_{2 * T}": fractions(p64, run_steps(WMMSE(), p, 2 * T), R_ref),
                    "iteration_cost_ratio": c_w / c_gnn, "reference_iterations_mean": float(its.double().mean())})
    return out


# ----- report -----------------------------------------------------------------------------------------
def _s(row: dict) -> str:
    return f"{row['seconds']:.3f} ({row['cpu_seconds']:.3f})"


def to_markdown(res: dict) -> str:
    m = res["main"]
    T = m["horizon"]
    conv = m["solvers"]["wmmse_converged"]["seconds"]
    w100 = m["solvers"]["wmmse_100"]["seconds"]
    conv_c = m["solvers"]["wmmse_converged"]["cpu_seconds"]
    w100_c = m["solvers"]["wmmse_100"]["cpu_seconds"]
    lines = [
        f"# MIMO sum-rate: GNN-WMMSE vs WMMSE ({res['date']})", "",
        (f"Command: `{res['command']}`. Machine: {res['machine']}; torch threads {res['threads']} "
        f"(shared machine: wall and CPU times are each the best of {res['repeats']} rounds, every round running "
        "all solvers in one process; with one torch thread the CPU time is the steadier measure, since other "
        "processes stretch wall times; compare ratios)."), "",
        (f"Training: `{res['training'].get('config', '-')}`, {res['training'].get('steps')} meta-steps of "
        f"{res['training'].get('batch_size')} instances, {res['training'].get('train_seconds', 0):.0f} s "
        f"(validation gap 1 - R/R* vs the best of six WMMSE runs: {res['training'].get('initial_val_gap') or 0:.4f} "
        f"untrained -> {res['training'].get('best_val_gap') or 0:.4f}); "
        f"{res['training'].get('parameters')} parameters."),
        "",
        f"## mimo_medium, {m['batch']} fresh instances (seed {m['seed']}), float32", "",
        (f"Reference R*: {m['reference']['method']}; mean {m['reference']['mean_sum_rate_nats']:.3f} nats. "
        f"WMMSE (float32) gets within {CONVERGED_RTOL:g} (relative) of R* after "
        f"{m['wmmse_iterations_to_converge']['mean']:.0f} "
        f"iterations on average (median {m['wmmse_iterations_to_converge']['median']:.0f}, p90 "
        f"{m['wmmse_iterations_to_converge']['p90']:.0f}, max {m['wmmse_iterations_to_converge']['max']}; "
        f"{m['wmmse_iterations_to_converge']['censored']} censored at "
        f"{m['wmmse_iterations_to_converge']['max_iter']})."),
        "",
        ("| solver | sum-rate / R* mean | median | p10 | seconds per batch | speed-up vs WMMSE converged | "
        "vs WMMSE 100 it. | CPU s | CPU speed-up vs converged | vs 100 it. |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in m["solvers"].items():
        f = row["fraction"]
        note = " (1 run)" if row.get("repeats") == 1 else ""
        lines.append(f"| {name}{note} | {f['mean']:.4f} | {f['median']:.4f} | {f['p10']:.4f} | {row['seconds']:.3f} | "
                     f"{conv / row['seconds']:.1f}x | {w100 / row['seconds']:.1f}x | {row['cpu_seconds']:.3f} | "
                     f"{conv_c / row['cpu_seconds']:.1f}x | {w100_c / row['cpu_seconds']:.1f}x |")
    g = m["solvers"]["gnn_wmmse"]
    lines += ["", (f"Target (>= 95% of WMMSE's sum-rate in >= 20x less time): GNN-WMMSE ({T} layers) keeps "
              f"{100 * g['fraction']['mean']:.1f}% on average (p10 {100 * g['fraction']['p10']:.1f}%) in "
              f"{conv / g['seconds']:.0f}x less wall time than WMMSE to convergence and "
              f"{w100 / g['seconds']:.0f}x less "
              f"than 100 WMMSE iterations (CPU time: {conv_c / g['cpu_seconds']:.0f}x and "
              f"{w100_c / g['cpu_seconds']:.0f}x). `gnn_wmmse_{10 * T}`: the learned layers then WMMSE iterations "
              f"(the solver's tail) up to 10 x the horizon."), ""]
    lines += ["## Scaling with the number of users per cell (K = 3, M = 8, N = d = 2)", "",
              ("GNN-WMMSE trained at I = 4 and run unchanged at every I (transfer); `retrained`: a model trained at "
              "that I (if run). Fractions of the float64 converged WMMSE sum-rate; seconds per batch."), "",
              ("| I | batch | WMMSE it. to 1e-4 | WMMSE conv. s (CPU) | WMMSE 100 it. s (CPU) | GNN-WMMSE s (CPU) | "
              f"GNN-WMMSE mean | p10 | WMMSE {T} it. mean | retrained mean | retrained p10 |"),
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["scaling"]:
        s = r["solvers"]
        rt = s.get("gnn_wmmse_retrained")
        lines.append(
            f"| {r['users']} | {r['batch']} | {r['wmmse_iterations_mean']:.0f} | {_s(s['wmmse_converged'])} | "
            f"{_s(s['wmmse_100'])} | {_s(s['gnn_wmmse'])} | "
            f"{s['gnn_wmmse']['fraction']['mean']:.4f} | {s['gnn_wmmse']['fraction']['p10']:.4f} | "
            f"{s[f'wmmse_{T}']['fraction']['mean']:.4f} | "
            f"{'-' if rt is None else format(rt['fraction']['mean'], '.4f')} | "
            f"{'-' if rt is None else format(rt['fraction']['p10'], '.4f')} |")
    if res.get("retrained"):
        lines += ["", "Retrained models: "
                  + ", ".join(f"I = {I}: {v['steps']} steps, {v['train_seconds']:.0f} s, best validation gap "
                              f"{v['best_val_gap']:.4f}" for I, v in res["retrained"].items())]
    if res.get("transfer"):
        lines += ["", "## Transfer without retraining (the model trained on mimo_medium)", "",
                  ("Fractions of the float64 converged WMMSE sum-rate (mean, p10); `cost ratio`: CPU time of "
                  "a WMMSE iteration over that of a GNN-WMMSE layer."), "",
                  f"| family | batch | GNN-WMMSE mean | p10 | WMMSE {T} it. mean | WMMSE {2 * T} it. mean "
                  "| cost ratio |",
                  "|---|---|---|---|---|---|---|"]
        for r in res["transfer"]:
            lines.append(f"| {r['case']} | {r['batch']} | {r['gnn_wmmse']['mean']:.4f} | {r['gnn_wmmse']['p10']:.4f} | "
                         f"{r[f'wmmse_{T}']['mean']:.4f} | {r[f'wmmse_{2 * T}']['mean']:.4f} | "
                         f"{r['iteration_cost_ratio']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=None, help="a trained run directory (skips training)")
    ap.add_argument("--steps", type=int, default=None, help="meta-steps (default: the config's)")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--scaling-batch", type=int, default=200)
    ap.add_argument("--users", default="2,4,6,8")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-iter", type=int, default=2000, help="cap of the float32 WMMSE iterations to converge")
    ap.add_argument("--retrain-scaling", type=int, default=0, metavar="STEPS",
                    help="also train a model at each number of users with this many meta-steps (0: no)")
    ap.add_argument("--transfer", action="store_true",
                    help="also run the trained model, unchanged, on other families (cells, antennas, SNR, channels)")
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "bench_mimo")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 20 meta-steps, small batches, 1 repeat")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.quick:
        args.steps, args.batch, args.scaling_batch, args.repeats, args.max_iter = 20, 64, 32, 1, 500
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    config = load_config(CONFIG)
    if args.run is not None:
        run_ = load_run(args.run)
        training = {"config": str(args.run), **{k: run_.metrics.get(k) for k in (
            "steps_done", "seconds", "initial_val_gap", "best_val_gap", "best_step", "parameters")}}
        training["steps"], training["train_seconds"] = training.pop("steps_done"), training.pop("seconds")
        training["batch_size"] = run_.config.training.batch_size
    else:
        run_, training = train_model(config, args.workdir / "gnn_wmmse_mimo", args.steps)
        training["config"] = str(CONFIG.relative_to(ROOT))
        print(f"trained in {training['train_seconds']:.0f} s", flush=True)
    solver = run_.solver.eval()
    family = run_.family
    seed = eval_seed(run_.config.training.seed)
    main_res = main_comparison(solver, family, args.batch, seed, args.repeats, args.max_iter)
    print(json.dumps({k: v["fraction"]["mean"] for k, v in main_res["solvers"].items()}), flush=True)
    users = [int(u) for u in args.users.split(",")]
    retrained, retrained_info = {}, {}
    for I in users if args.retrain_scaling else []:
        if I == family.users:
            retrained[I] = solver
            continue
        r, info = train_model(config, args.workdir / f"gnn_wmmse_users{I}", args.retrain_scaling, {"users": I})
        retrained[I] = r.solver.eval()
        retrained_info[I] = {k: info[k] for k in ("steps", "train_seconds", "best_val_gap")}
    scale = scaling(solver, users, args.scaling_batch, seed, args.repeats, args.max_iter, retrained)
    moved = transfer(solver, seed) if args.transfer else []
    res = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "command": "python " + " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                   f"torch {torch.__version__}",
        "threads": torch.get_num_threads(), "repeats": args.repeats, "training": training,
        "main": main_res, "scaling": scale, "retrained": retrained_info, "transfer": moved,
        "total_seconds": time.perf_counter() - start,
    }
    stem = "mimo-quick" if args.quick else "mimo"
    write_results(args.out, stem, res, to_markdown(res))
    print(to_markdown(res))
    print(f"total {res['total_seconds']:.0f} s; wrote {args.out / (stem + '.md')}")


if __name__ == "__main__":
    main()
