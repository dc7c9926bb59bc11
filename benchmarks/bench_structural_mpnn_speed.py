"""How fast is StructuralMPNN's forward, next to the paper's WMMSE on the same instances?

Issue 14, item 5: "at the moderate and large scales on CPU, a batch of 1000 solved at least 20x
faster than WMMSE with the paper's stopping rule on the same batch". In one run, on this machine,
one torch thread, float32 channels (as ``bench_infocom.py``), at each scale (``--scales``):

* the paper's WMMSE (``solve_paper_wmmse``: zero-forcing start with equal power, at most 50
  iterations, stopped instances removed from the batch), with the relative rule
  (|dR| / R < 0.01, issue 14's reading) and with the absolute rule (|dR| < 0.01);
* the bundled ``structural_mpnn-mimo_infocom_<scale>`` (T = 5 learned iterations after its
  start; x0 is not used by its ``rzf`` start, so a zero x0 is passed and nothing is timed
  that the model does not use), no grad;

each on the same batch of ``--batch`` instances at once and on ``--serial`` instances solved one
after another, ``--repeats`` rounds interleaved (WMMSE relative, WMMSE absolute, model), the best
(min) and median process CPU time per round (``time.process_time``: with one thread, what the
work costs, without the waits for a core that a loaded shared machine adds; wall time recorded
beside it). Also, once per scale: the FLOPs of one model iteration and one WMMSE iteration at the
batch (``torch.utils.flop_counter.FlopCounterMode``: matrix products only, a complex product
counted like a real one of its shape (a quarter of its real FLOPs), so WMMSE's count, mostly small
complex products, Cholesky factorizations, triangular solves and its bisection, is a loose lower
bound, the model's, mostly real products, nearly complete), and this machine's float32
GEMM throughput (1024^3 product, one thread), from which ``bound_s`` = model FLOPs / throughput,
the time the model's matrix products would take at that rate.

``--label before`` is meant to run on the code of main (``git archive main src`` unpacked in a
temporary folder first on PYTHONPATH), ``--label after`` on this branch: each label's run merges
into ``benchmarks/results/structural_mpnn_speed.json`` and ``structural_mpnn_speed.md`` is
rewritten from all labels (the l2o it imported, date, command, load average recorded with each).

    python benchmarks/bench_structural_mpnn_speed.py --label after [--scales moderate,large]
        [--batch 1000] [--serial 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

import l2o
from _common import write_results  # benchmarks/_common.py: the script's folder is sys.path[0]
from l2o.optimizers.wmmse_paper import paper_start, solve_paper_wmmse
from l2o.problems.mimo.channel import wmmse_update
from l2o.registry import make_family
from l2o.workflows.load import load_solver

RESULTS = Path(__file__).parent / "results"
STEM = "structural_mpnn_speed"
TARGET = 20.0
SEED = 2024


def cpu_wall(fn):
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - c0, time.perf_counter() - t0, out


@torch.no_grad()
def run_model(solver, problem, horizon: int) -> torch.Tensor:
    x0 = torch.zeros(problem.H.shape[0], 1, dtype=torch.float32)
    s = solver.init(problem, x0)
    for _ in range(horizon):
        s = solver.step(problem, s)
    return s.x


def gemm_throughput(repeats: int = 5) -> float:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(1024, 1024, generator=g), torch.randn(1024, 1024, generator=g)
    a @ b
    best = min(cpu_wall(lambda: a @ b)[0] for _ in range(repeats))
    return 2 * 1024**3 / best


def flops(fn) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return int(counter.get_total_flops())


def bench_scale(scale: str, args) -> dict:
    family = make_family(f"mimo_infocom_{scale}")
    batch = family.sample(args.batch, SEED, dtype=torch.float32)
    serial = [family.sample(1, SEED + 1 + i, dtype=torch.float32) for i in range(args.serial)]
    solver, _, horizon, _ = load_solver(f"structural_mpnn-mimo_infocom_{scale}")
    methods = {
        "wmmse_paper": lambda p: solve_paper_wmmse(p)[0],
        "wmmse_paper_absolute": lambda p: solve_paper_wmmse(p, rule="absolute")[0],
        "structural_mpnn": lambda p: run_model(solver, p, horizon),
    }
    times = {m: {"batched": [], "serial": []} for m in methods}
    rates, iterations = {}, {}
    for r in range(args.repeats):
        print(f"[{scale}] round {r + 1}/{args.repeats}", flush=True)
        for m, fn in methods.items():
            c, w, x = cpu_wall(lambda fn=fn: fn(batch))
            times[m]["batched"].append((c, w))
            rates[m] = float(batch.sum_rate(x).double().mean())
            c, w, _ = cpu_wall(lambda fn=fn: [fn(p) for p in serial])
            times[m]["serial"].append((c, w))
    for m, rule in (("wmmse_paper", "relative"), ("wmmse_paper_absolute", "absolute")):
        iterations[m] = float(solve_paper_wmmse(batch, rule=rule)[1].double().mean())
    out: dict = {"preset": f"mimo_infocom_{scale}", "batch": args.batch, "serial": args.serial,
                 "horizon": horizon, "mean_sum_rate": rates, "wmmse_mean_iterations": iterations, "methods": {}}
    for m, t in times.items():
        e = {}
        for mode, rows in t.items():
            cpu = [c for c, _ in rows]
            e[mode] = {"cpu_s_min": min(cpu), "cpu_s_median": statistics.median(cpu),
                       "wall_s_min": min(w for _, w in rows), "rounds": len(rows)}
        out["methods"][m] = e
    model = out["methods"]["structural_mpnn"]
    for ref in ("wmmse_paper", "wmmse_paper_absolute"):
        for mode in ("batched", "serial"):
            model[mode][f"speedup_over_{ref}"] = out["methods"][ref][mode]["cpu_s_min"] / model[mode]["cpu_s_min"]
    # FLOPs of one iteration at the batch (matrix products only)
    V = batch.unpack(paper_start(batch))
    step_flops = flops(lambda: solver.iteration(batch, V))
    wmmse_flops = flops(lambda: wmmse_update(batch.H, V, batch.noise, batch.weights, batch.budget))
    out["flops"] = {"model_iteration": step_flops, "wmmse_iteration_matmul_only": wmmse_flops,
                    "model_solve": horizon * step_flops}
    out["profile"] = profile_iteration(solver, batch, V)
    return out


def profile_iteration(solver, problem, V, top: int = 8) -> list:
    """The ``top`` operators of one model iteration by self CPU time (``torch.profiler``; the
    profiler's own overhead inflates the times, the shares show where the time goes)."""
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        solver.iteration(problem, V)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [{"op": e.key, "share": e.self_cpu_time_total / total, "calls": e.count} for e in events[:top]]


def render(data: dict) -> str:
    L = ["# StructuralMPNN forward speed vs the paper's WMMSE (issue 14, item 5)", "",
         "Written by `benchmarks/bench_structural_mpnn_speed.py`; see its docstring for what is measured. "
         "Process CPU time, one torch thread, float32 channels, best (min) of the rounds of each run; the "
         "WMMSE a label is compared with was timed in that label's run. `before`: the code of main "
         "(`git archive main src`), `after`: this branch. Speed-up = WMMSE CPU time / StructuralMPNN CPU "
         "time on the same instances (bundled `structural_mpnn-mimo_infocom_<scale>`, T = 5, its RZF start "
         "included). Target (batch of 1000, moderate and large, paper's stopping rule): "
         f"{TARGET:g}x.", ""]
    for label, run in data.items():
        L += [f"## `{label}`: {run['date']}, l2o from `{run['l2o']}`, load average {run['loadavg']}", "",
              f"`{run['command']}`; {run['machine']}; float32 GEMM {run['gemm_gflops']:.0f} GFLOP/s (one thread)", "",
              "| scale | mode | WMMSE rel. rule s | WMMSE abs. rule s | StructuralMPNN s (median) | "
              "speed-up vs rel. rule | vs abs. rule | 20x (rel. rule) |", "|---|---|---|---|---|---|---|---|"]
        for scale, e in run["scales"].items():
            ms = e["methods"]
            for mode in ("batched", "serial"):
                n = e["batch"] if mode == "batched" else e["serial"]
                m = ms["structural_mpnn"][mode]
                sp = m["speedup_over_wmmse_paper"]
                L.append(f"| {scale} | {mode} ({n}) | {ms['wmmse_paper'][mode]['cpu_s_min']:.3f} | "
                         f"{ms['wmmse_paper_absolute'][mode]['cpu_s_min']:.3f} | {m['cpu_s_min']:.3f} "
                         f"({m['cpu_s_median']:.3f}) | {sp:.2f}x | {m['speedup_over_wmmse_paper_absolute']:.2f}x | "
                         f"{'reached' if sp >= TARGET else 'NOT reached'} |")
        L += ["", "| scale | model GFLOP / iteration (solve) | bound_s at GEMM rate | measured batched s | "
              "speed-up vs rel. rule if the solve took bound_s | "
              "WMMSE GFLOP / iteration (matmuls only) | WMMSE iterations rel. (abs.) | mean sum-rate: WMMSE rel., "
              "abs., StructuralMPNN |", "|---|---|---|---|---|---|---|---|"]
        for scale, e in run["scales"].items():
            f = e["flops"]
            bound = f["model_solve"] / (run["gemm_gflops"] * 1e9)
            it = e["wmmse_mean_iterations"]
            r = e["mean_sum_rate"]
            L.append(f"| {scale} | {f['model_iteration'] / 1e9:.2f} ({f['model_solve'] / 1e9:.1f}) | {bound:.3f} | "
                     f"{e['methods']['structural_mpnn']['batched']['cpu_s_min']:.3f} | "
                     f"{e['methods']['wmmse_paper']['batched']['cpu_s_min'] / bound:.1f}x | "
                     f"{f['wmmse_iteration_matmul_only'] / 1e9:.3f} | {it['wmmse_paper']:.2f} "
                     f"({it['wmmse_paper_absolute']:.2f}) | {r['wmmse_paper']:.3f}, {r['wmmse_paper_absolute']:.3f}, "
                     f"{r['structural_mpnn']:.3f} |")
        L += ["", "Where one iteration's time goes (torch.profiler, self CPU share of the top operators):", ""]
        for scale, e in run["scales"].items():
            L.append(f"- {scale}: " + ", ".join(f"{p['op']} {100 * p['share']:.0f}% ({p['calls']} calls)"
                                                for p in e.get("profile", [])))
        L.append("")
    labels = list(data)
    if "before" in data and "after" in data:
        L += ["## before -> after (batched, CPU s, min)", "", "| scale | before s | after s | faster by |",
              "|---|---|---|---|"]
        for scale in data["after"]["scales"]:
            if scale in data["before"]["scales"]:
                b = data["before"]["scales"][scale]["methods"]["structural_mpnn"]["batched"]["cpu_s_min"]
                a = data["after"]["scales"][scale]["methods"]["structural_mpnn"]["batched"]["cpu_s_min"]
                L.append(f"| {scale} | {b:.3f} | {a:.3f} | {b / a:.1f}x |")
        L.append("")
    last = data[labels[-1]]
    L += [f"## What bounds the speed-up (`{labels[-1]}`)", ""]
    for scale, e in last["scales"].items():
        w = e["methods"]["wmmse_paper"]["batched"]["cpu_s_min"]
        bound = e["flops"]["model_solve"] / (last["gemm_gflops"] * 1e9)
        L.append(f"- {scale}: {TARGET:g}x over the paper's WMMSE (relative rule, {w:.3f} s for the batch of "
                 f"{e['batch']}, {e['wmmse_mean_iterations']['wmmse_paper']:.1f} iterations on average) needs the "
                 f"model's solve in {w / TARGET:.3f} s; the matrix products of its {e['horizon']} iterations "
                 f"alone ({e['flops']['model_solve'] / 1e9:.1f} GFLOP) take {bound:.3f} s at this machine's GEMM rate, "
                 f"{bound / (w / TARGET):.1f}x that budget; "
                 f"measured {e['methods']['structural_mpnn']['batched']['cpu_s_min']:.3f} s.")
    L += ["", f"Labels in this file: {', '.join(labels)}."]
    return "\n".join(L)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", required=True)
    ap.add_argument("--scales", default="moderate,large")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--serial", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of the results files")
    ap.add_argument("--render", action="store_true", help="only rewrite the .md from the .json")
    args = ap.parse_args(argv)
    if args.render:
        data = json.loads((args.results / f"{STEM}.json").read_text())
        write_results(args.results, STEM, data, render(data))
        return
    for key in ("batch", "serial", "repeats"):
        if getattr(args, key) < 1:
            print(f"error: --{key} must be a positive integer, got {getattr(args, key)}", file=sys.stderr)
            raise SystemExit(2)
    torch.set_num_threads(1)
    run = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
           "command": "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])]),
           "l2o": str(Path(l2o.__file__).parent), "machine": f"{platform.processor() or platform.machine()}, "
           f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}",
           "loadavg": ", ".join(f"{v:.1f}" for v in os.getloadavg()), "gemm_gflops": gemm_throughput() / 1e9,
           "scales": {}}
    for scale in args.scales.split(","):
        run["scales"][scale] = bench_scale(scale, args)
    path = args.results / f"{STEM}.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[args.label] = run
    data = dict(sorted(data.items(), key=lambda kv: (kv[0] != "before", kv[0])))
    write_results(args.results, STEM, data, render(data))
    print(render(data))


if __name__ == "__main__":
    main()
