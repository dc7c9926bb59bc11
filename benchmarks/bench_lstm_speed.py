"""Does a coordinatewise-LSTM solver's iteration cost what its arithmetic costs?

In one run, on this machine (torch threads ``--threads``, 1 by default: the machine is
shared, and two BLAS threads competing with other processes for two cores measure the
contention, not the code; ``l2o.utils.performance.tune_allocator()`` applied):

(a) GEMM throughput, float32 and float64, on the solvers' own GEMM shapes: the
    per-coordinate layers at N = batch x n coordinates (K x 4H gate GEMMs with
    K = in + H, H x H and H x heads output layers), each timed in three standard
    layouts (rows: (N, K) @ (K, M); columns: (M, K) @ (K, N); batched per instance:
    (M, K) @ (B, K, n)), whole and in chunks of 16 instances, best time per shape;
    the throughput of a solver's GEMM set is its FLOPs / the sum of those best times.
    For reference also a square 1000 x 1000 GEMM.
(b) FLOPs of one iteration of each LSTM-based solver (math_l2o PA, go_math_l2o,
    l2o_dm, rnnprop) at the LASSO preset, counted analytically from the layer shapes
    (2 N in out per linear map, 2 N (in + H) 4H per LSTM layer) plus the problem's
    Gram products (2 B n^2 per gradient), and checked against
    ``torch.utils.flop_counter.FlopCounterMode`` on one step (the counter sees only
    matrix products it can dispatch: fused LSTM kernels are invisible to it, which
    the table reports).
(c) The measured cost of one ``step`` (no grad, as evaluation runs it) of each solver
    and of a ``fista_restart`` step on the same batch, interleaved round-robin,
    median of ``--repeats`` rounds. Every time is process CPU time by default (``--clock cpu``,
    with 1 thread: what the work costs, without the waits for a core that a loaded shared
    machine adds to elapsed time; cache and memory-bandwidth contention still count);
    ``--clock wall`` measures elapsed time.
(d) ratio = measured step time / (FLOPs / throughput of that solver's GEMM set);
    target <= 2 in float32 and float64 for every solver. ``ratio_peak`` uses the square
    GEMM's throughput instead (a stricter yardstick, reported alongside).
(e) For training: one forward + backward of a 10-step unroll (meta-loss F(x_10), batch
    ``--train-batch``, best of 3), per step: the autograd path, not the target's subject.
(f) What bounds the ratio: the non-GEMM work that no implementation of one step avoids, each
    part timed alone (best of ``--gemm-repeats``): the LSTM's nonlinearities, one sigmoid per
    layer and coordinate for each of the 4H gates and for tanh(c') (5H values; tanh evaluated
    as a sigmoid, the cheapest exact form here), over chunk workspaces of the implementation's
    size (in cache), plus RNNprop's ELU input layer (H values); and reading the recurrent state
    h, c ``(B, layers, H, n)`` and writing the new one (one copy of each into a fresh tensor).
    floor = arithmetic + those; ``floor / arithmetic`` is the least ratio step / arithmetic
    that an implementation doing nothing else could reach; ``step / floor`` is the rest.

    python benchmarks/bench_lstm_speed.py --label before|after|before2|after2 [--batch 128] [--repeats 15]

merges the run under its label into ``benchmarks/results/lstm_speed.json`` and rewrites
``lstm_speed.md`` from all labels (each with its date, command and load average).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import l2o
from _common import write_results  # benchmarks/_common.py: the script's folder is sys.path[0]
from l2o import make_family, make_solver
from l2o.learned import coordinatewise
from l2o.utils.performance import tune_allocator

RESULTS = Path(__file__).parent / "results"
STEM = "lstm_speed"
PRESET = "lasso_250x500"
SOLVERS = ("math_l2o", "go_math_l2o", "l2o_dm", "rnnprop")
BASELINE = "fista_restart"
DTYPES = (torch.float32, torch.float64)
#: problem gradients (Gram products) per step of each solver on LASSO.
GRADS_PER_STEP = {"math_l2o": 1, "go_math_l2o": 1, "l2o_dm": 1, "rnnprop": 1, BASELINE: 1}
CHUNK_INSTANCES = 16


def dname(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def gemm_shapes(module: nn.Module) -> list[tuple[int, int]]:
    """(K, M) of every per-coordinate linear map of ``module``: an ``nn.LSTM`` layer is one
    (in + H, 4H) map (input and hidden weights together), an ``nn.Linear`` one (in, out)."""
    shapes = []
    for sub in module.modules():
        if isinstance(sub, nn.LSTM):
            for layer in range(sub.num_layers):
                k_in = sub.input_size if layer == 0 else sub.hidden_size
                shapes.append((k_in + sub.hidden_size, 4 * sub.hidden_size))
        elif isinstance(sub, nn.Linear):
            shapes.append((sub.in_features, sub.out_features))
    return shapes


def analytic_flops(module: nn.Module, batch: int, n: int, grads: int) -> dict[str, int]:
    """Matrix-product FLOPs of one step: network (2 N K M per map, N = B n) and Gram products."""
    N = batch * n
    net = sum(2 * N * k * m for k, m in gemm_shapes(module))
    return {"network": net, "gram": grads * 2 * batch * n * n, "total": net + grads * 2 * batch * n * n}


#: The clock of every timing: ``time.process_time`` (``--clock cpu``) or ``time.perf_counter`` (``wall``).
CLOCK = {"cpu": time.process_time, "wall": time.perf_counter}
clock = time.process_time


def best_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = clock()
        fn()
        times.append(clock() - t)
    return min(times)


def gemm_time(k: int, m: int, batch: int, n: int, dtype: torch.dtype, repeats: int) -> dict[str, float]:
    """Seconds of the (N, K) x (K, M) product (N = batch n, bias added) in each layout; best is the min."""
    gen = torch.Generator().manual_seed(0)
    N = batch * n
    W = torch.randn(m, k, generator=gen, dtype=dtype)
    bias = torch.randn(m, generator=gen, dtype=dtype)
    X_rows = torch.randn(N, k, generator=gen, dtype=dtype)
    X_cols = X_rows.t().contiguous()
    X_inst = X_rows.reshape(batch, n, k).transpose(1, 2).contiguous()
    cb = min(CHUNK_INSTANCES, batch)
    out_rows, out_cols = torch.empty(N, m, dtype=dtype), torch.empty(m, N, dtype=dtype)
    out_inst = torch.empty(batch, m, n, dtype=dtype)
    col_bias, Wt = bias[:, None], W.t()

    def rows_chunked():
        for s in range(0, N, cb * n):
            torch.addmm(bias, X_rows[s:s + cb * n], Wt, out=out_rows[s:s + cb * n])

    def cols_chunked():
        for s in range(0, N, cb * n):
            torch.addmm(col_bias, W, X_cols[:, s:s + cb * n], out=out_cols[:, s:s + cb * n])

    def inst_chunked():
        for s in range(0, batch, cb):
            e = min(s + cb, batch)
            torch.baddbmm(col_bias, W.expand(e - s, m, k), X_inst[s:e], out=out_inst[s:e])

    layouts = {
        "rows": lambda: torch.addmm(bias, X_rows, Wt, out=out_rows),
        "rows_chunked": rows_chunked,
        "columns": lambda: torch.addmm(col_bias, W, X_cols, out=out_cols),
        "columns_chunked": cols_chunked,
        "instances_chunked": inst_chunked,
    }
    return {name: best_time(fn, repeats) for name, fn in layouts.items()}


def measure_gemms(solvers: dict[str, nn.Module], batch: int, n: int, repeats: int) -> dict:
    out = {}
    shapes = sorted({s for mod in solvers.values() for s in gemm_shapes(mod)})
    for dtype in DTYPES:
        d = {}
        for k, m in shapes:
            times = gemm_time(k, m, batch, n, dtype, repeats)
            best = min(times.values())
            flops = 2 * batch * n * k * m
            d[f"{k}x{m}"] = {"flops": flops, "seconds": times, "best_s": best, "gflops": flops / best / 1e9}
        a = torch.randn(1000, 1000, dtype=dtype, generator=torch.Generator().manual_seed(1))
        sq = best_time(lambda a=a: a @ a, repeats)
        gram = torch.randn(n, n, dtype=dtype)
        x = torch.randn(batch, n, dtype=dtype)
        gram_s = best_time(lambda: x @ gram, repeats)
        out[dname(dtype)] = {"shapes": d, "square_1000_gflops": 2e9 / sq / 1e9,
                             "gram_product_s": gram_s, "gram_product_gflops": 2 * batch * n * n / gram_s / 1e9}
    return out


def chunk_shape(batch: int, n: int, dtype: torch.dtype) -> tuple[int, int]:
    """``coordinatewise.chunk_shape`` on CPU (its rule written out when measuring older code, which lacks it)."""
    if hasattr(coordinatewise, "chunk_shape"):
        return coordinatewise.chunk_shape(batch, n, dtype)
    cols = coordinatewise.CHUNK * 8 // torch.empty((), dtype=dtype).element_size()
    return min(batch, max(1, cols // min(n, cols))), min(n, cols)


def measure_floor(batch: int, n: int, hidden: int, layers: int, repeats: int) -> dict:
    """Seconds, per dtype, of the unavoidable non-GEMM work of one step, each part alone (see (f)):
    ``sigmoid_layer``: 5 hidden sigmoids per coordinate (one layer), chunked as the implementation chunks;
    ``elu``: hidden ELUs per coordinate, chunked alike; ``state``: h and c copied once into fresh tensors."""
    out = {}
    gen = torch.Generator().manual_seed(3)
    for dtype in DTYPES:
        cb, cw = chunk_shape(batch, n, dtype)
        chunks = -(-batch // cb) * -(-n // cw)
        src = torch.randn(cb, 5 * hidden, cw, generator=gen, dtype=dtype)
        dst = torch.empty_like(src)
        elu_src, elu_dst = src[:, :hidden], dst[:, :hidden]

        def sigmoids(src=src, dst=dst, chunks=chunks):
            for _ in range(chunks):
                torch.sigmoid(src, out=dst)

        def elus(src=elu_src, dst=elu_dst, chunks=chunks):
            for _ in range(chunks):
                torch.ops.aten.elu.out(src, 1.0, 1, 1, out=dst)  # F.elu without allocating

        h = torch.randn(batch, layers, hidden, n, generator=gen, dtype=dtype)
        c = torch.randn_like(h)

        def state(h=h, c=c):
            torch.empty_like(h).copy_(h)
            torch.empty_like(c).copy_(c)

        out[dname(dtype)] = {"chunk": [cb, cw], "sigmoid_layer_s": best_time(sigmoids, repeats),
                             "elu_s": best_time(elus, repeats), "state_s": best_time(state, repeats)}
    return out


def count_flops(solver, problem, state) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        solver.step(problem, state)
    return int(counter.get_total_flops())


def measure_steps(names: list[str], batch: int, repeats: int, seed: int) -> dict:
    family = make_family(PRESET)
    out = {}
    for dtype in DTYPES:
        problem = family.sample(batch, generator=seed, dtype=dtype)
        problem.smoothness()
        solvers, states = {}, {}
        for name in names:
            s = make_solver(name)
            if isinstance(s, nn.Module):
                s = s.to(dtype)
            solvers[name] = s
            with torch.no_grad():
                st = s.init(problem, problem.initial_point())
                for _ in range(3):  # warm-up (and past k = 0)
                    st = s.step(problem, st)
            states[name] = st
        times: dict[str, list[float]] = {name: [] for name in names}
        with torch.no_grad():
            for _ in range(repeats):  # interleaved: every round times each solver once
                for name in names:
                    t = clock()
                    st = solvers[name].step(problem, states[name])
                    times[name].append(clock() - t)
                    states[name] = st
        d = {}
        for name in names:
            entry = {"median_s": statistics.median(times[name]), "min_s": min(times[name])}
            if isinstance(solvers[name], nn.Module):
                entry["flop_counter"] = count_flops(solvers[name], problem, states[name])
            d[name] = entry
        out[dname(dtype)] = d
    return out


def measure_training(names: list[str], batch: int, seed: int, unroll: int = 10, repeats: int = 3) -> dict:
    """Seconds per step of a forward + backward unroll (best of ``repeats``), per dtype and solver."""
    family = make_family(PRESET)
    out: dict[str, dict[str, float]] = {}
    for dtype in DTYPES:
        problem = family.sample(batch, generator=seed + 1, dtype=dtype)
        for name in names:
            solver = make_solver(name).to(dtype)

            def unrolled(solver=solver, problem=problem):
                state = solver.init(problem, problem.initial_point())
                for _ in range(unroll):
                    state = solver.step(problem, state)
                problem.objective(state.x).mean().backward()

            out.setdefault(dname(dtype), {})[name] = best_time(unrolled, repeats) / unroll
    return out


def run(args: argparse.Namespace) -> dict:
    global clock
    clock = CLOCK[args.clock]
    torch.set_num_threads(args.threads)
    allocator = tune_allocator()
    n = make_family(PRESET).n
    modules = {name: make_solver(name) for name in SOLVERS}
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    gemms = measure_gemms(modules, args.batch, n, args.gemm_repeats)
    steps = measure_steps([*SOLVERS, BASELINE], args.batch, args.repeats, args.seed)
    training = measure_training(list(SOLVERS), args.train_batch, args.seed)
    shapes = {(mod.lstm.hidden_size, mod.lstm.layers) for mod in modules.values()}
    floors = {hl: measure_floor(args.batch, n, *hl, args.gemm_repeats) for hl in sorted(shapes)}
    solvers = {}
    for dt in map(dname, DTYPES):
        g = gemms[dt]
        base = steps[dt][BASELINE]["median_s"]
        for name, mod in modules.items():
            fl = analytic_flops(mod, args.batch, n, GRADS_PER_STEP[name])
            # arithmetic time: each network GEMM at its best measured time, the Gram products at the measured one
            arith_s = sum(g["shapes"][f"{k}x{m}"]["best_s"] for k, m in gemm_shapes(mod))
            arith_s += GRADS_PER_STEP[name] * g["gram_product_s"]
            peak_s = fl["total"] / (g["square_1000_gflops"] * 1e9)
            meas = steps[dt][name]["median_s"]
            fl_parts = floors[(mod.lstm.hidden_size, mod.lstm.layers)][dt]
            nonlin_s = mod.lstm.layers * fl_parts["sigmoid_layer_s"]
            nonlin_s += fl_parts["elu_s"] if getattr(mod, "inp", None) is not None else 0.0  # RNNprop's ELU layer
            floor_s = arith_s + nonlin_s + fl_parts["state_s"]
            solvers.setdefault(name, {})[dt] = {
                "flops": fl, "flop_counter": steps[dt][name]["flop_counter"],
                "gemm_gflops": fl["total"] / arith_s / 1e9, "arithmetic_s": arith_s,
                "step_median_s": meas, "step_min_s": steps[dt][name]["min_s"],
                "vs_fista_restart": meas / base, "ratio": meas / arith_s, "ratio_peak": meas / peak_s,
                "target_reached": meas / arith_s <= 2.0,
                "floor": {"chunk": fl_parts["chunk"], "nonlinearities_s": nonlin_s, "state_s": fl_parts["state_s"],
                          "floor_s": floor_s, "floor_over_arithmetic": floor_s / arith_s,
                          "step_over_floor": meas / floor_s},
            }
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "note": args.note, "l2o_source": str(Path(l2o.__file__).resolve().parent),
        "torch": torch.__version__, "threads": args.threads, "clock": args.clock, "allocator_tuned": allocator,
        "cell_backend": coordinatewise.cell_backend() if hasattr(coordinatewise, "cell_backend") else "eager",
        "load_average_start_end": [list(load_start), list(os.getloadavg())],
        "seconds": time.perf_counter() - t0,
        "preset": PRESET, "batch": args.batch, "n": n, "repeats": args.repeats,
        "train_batch": args.train_batch, "training_step_s": training,
        "gemm": gemms, "fista_restart": {dt: steps[dt][BASELINE] for dt in steps}, "solvers": solvers,
    }


def comparisons(runs: dict) -> list[tuple[str, str]]:
    """(before, after) label pairs: ``afterX`` against every ``beforeX`` and ``beforeX-...`` (same suffix X)."""
    pairs = []
    for after in [label for label in runs if label.startswith("after")]:
        suffix = after[len("after"):]
        pairs += [(b, after) for b in runs if b.startswith("before") and b[len("before"):].split("-")[0] == suffix]
    return pairs


def markdown(runs: dict) -> str:
    lines = ["# Coordinatewise-LSTM solvers: iteration cost against arithmetic cost", "",
             "\n\n".join(__doc__.split("\n\n")[1:3]).strip(), "",
             "FLOPs count matrix products only (network layers and Gram products), as FlopCounterMode does; "
             "the elementwise work (gate activations, cell update, features) is what the ratio charges "
             "against the implementation.", ""]
    for label, r in runs.items():
        lines += [f"## {label} ({r['date']})", "",
                  f"Command: `{r['command']}`; {r['machine']}; torch {r['torch']}, threads {r['threads']}, "
                  f"clock {r.get('clock', 'wall')}, cell update on CPU: {r.get('cell_backend', 'eager')}, "
                  f"allocator tuned: {r['allocator_tuned']}; load average at start / end: "
                  f"{[round(x, 2) for x in r['load_average_start_end'][0]]} / "
                  f"{[round(x, 2) for x in r['load_average_start_end'][1]]} (shared machine: ratios +-20%)."
                  + (f" Note: {r['note']}" if r.get("note") else ""),
                  "", f"Preset `{r['preset']}`, batch {r['batch']} (N = {r['batch'] * r['n']} coordinates), "
                  f"median of {r['repeats']} interleaved steps (no grad).", ""]
        lines += ["| dtype | square 1000 GEMM GFLOP/s | Gram product (B x n) @ (n x n) ms | GFLOP/s | "
                  "fista_restart step ms |", "|---|---|---|---|---|"]
        for dt, g in r["gemm"].items():
            lines.append(f"| {dt} | {g['square_1000_gflops']:.1f} | {1e3 * g['gram_product_s']:.3f} | "
                         f"{g['gram_product_gflops']:.1f} | {1e3 * r['fista_restart'][dt]['median_s']:.3f} |")
        lines += ["", "GEMM shapes (K x M at N coordinates), best layout:", "",
                  "| dtype | shape | GFLOP/s | best ms | layouts ms (rows / rows chunked / columns / columns chunked / "
                  "per-instance chunked) |", "|---|---|---|---|---|"]
        for dt, g in r["gemm"].items():
            for shape, s in g["shapes"].items():
                lay = " / ".join(f"{1e3 * v:.2f}" for v in s["seconds"].values())
                lines.append(f"| {dt} | {shape} | {s['gflops']:.1f} | {1e3 * s['best_s']:.2f} | {lay} |")
        lines += ["", "| solver | dtype | MFLOP/step (network + Gram) | FlopCounterMode MFLOP | GEMM-set GFLOP/s | "
                  "arithmetic ms | step ms | x fista_restart | ratio step / arithmetic | ratio vs square-GEMM peak | "
                  "target <= 2 |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, per in r["solvers"].items():
            for dt, s in per.items():
                fl = s["flops"]
                lines.append(
                    f"| {name} | {dt} | {fl['total'] / 1e6:.0f} ({fl['network'] / 1e6:.0f} + {fl['gram'] / 1e6:.0f}) | "
                    f"{s['flop_counter'] / 1e6:.0f} | {s['gemm_gflops']:.1f} | {1e3 * s['arithmetic_s']:.2f} | "
                    f"{1e3 * s['step_median_s']:.2f} | {s['vs_fista_restart']:.1f}x | {s['ratio']:.2f} | "
                    f"{s['ratio_peak']:.2f} | {'reached' if s['target_reached'] else 'NOT reached'} |")
        if any("floor" in s for per in r["solvers"].values() for s in per.values()):
            lines += ["", "What bounds the ratio (f): the non-GEMM work no implementation avoids, each part "
                      "timed alone (the nonlinearities at torch.sigmoid's speed); floor = arithmetic + "
                      "nonlinearities + state; floor / arithmetic is the least ratio reachable at that speed:", "",
                      "| solver | dtype | chunk (instances x columns) | arithmetic ms | nonlinearities ms (5H sigmoids "
                      "per layer, + ELU) | state read + write ms | floor ms | floor / arithmetic | step / floor |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for name, per in r["solvers"].items():
                for dt, s in per.items():
                    f = s.get("floor")
                    if f is not None:
                        lines.append(
                            f"| {name} | {dt} | {f['chunk'][0]} x {f['chunk'][1]} | {1e3 * s['arithmetic_s']:.2f} | "
                            f"{1e3 * f['nonlinearities_s']:.2f} | {1e3 * f['state_s']:.2f} | "
                            f"{1e3 * f['floor_s']:.2f} | "
                            f"{f['floor_over_arithmetic']:.2f} | {f['step_over_floor']:.2f} |")
        if "training_step_s" in r:
            lines += ["", f"Training (autograd path): ms per step of a 10-step unroll, forward + backward, batch "
                      f"{r['train_batch']}, best of 3:", "", "| solver | " + " | ".join(r["training_step_s"]) + " |",
                      "|---|" + "---|" * len(r["training_step_s"])]
            for name in SOLVERS:
                lines.append(f"| {name} | " + " | ".join(f"{1e3 * r['training_step_s'][dt][name]:.1f}"
                                                        for dt in r["training_step_s"]) + " |")
        lines.append("")
    for before, after in comparisons(runs):
        b, a = runs[before]["solvers"], runs[after]["solvers"]
        clocks = runs[before].get("clock", "wall"), runs[after].get("clock", "wall")
        caveat = ("" if clocks[0] == clocks[1] else
                  f" Different clocks ({clocks[0]} / {clocks[1]}) and loads: not a like-for-like comparison.")
        lines += [f"## {before} -> {after}", "", f"{before}: {runs[before]['date']}, clock {clocks[0]}; {after}: "
                  f"{runs[after]['date']}, clock {clocks[1]}.{caveat}", "",
                  "| solver | dtype | step ms before -> after | speedup | "
                  "x fista_restart before -> after | ratio before -> after |", "|---|---|---|---|---|---|"]
        for name in a:
            for dt in a[name]:
                if name in b and dt in b[name]:
                    sb, sa = b[name][dt], a[name][dt]
                    lines.append(
                        f"| {name} | {dt} | {1e3 * sb['step_median_s']:.2f} -> {1e3 * sa['step_median_s']:.2f} | "
                        f"{sb['step_median_s'] / sa['step_median_s']:.1f}x | {sb['vs_fista_restart']:.1f}x -> "
                        f"{sa['vs_fista_restart']:.1f}x | {sb['ratio']:.2f} -> {sa['ratio']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", required=True, help="name of this run in the results file (before, after, ...)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=15, help="interleaved timed steps per solver")
    parser.add_argument("--gemm-repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-batch", type=int, default=16)
    parser.add_argument("--clock", choices=sorted(CLOCK), default="cpu",
                        help="cpu: process CPU time (default; with 1 thread, the time the work takes without the "
                             "waits for a core on a shared machine); wall: elapsed time")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--note", default="", help="recorded with the run (e.g. which code it measured)")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.repeats < 1 or args.threads < 1:
        print("error: --batch, --repeats and --threads must be >= 1", file=sys.stderr)
        return 2
    result = run(args)
    path = Path(args.out) / f"{STEM}.json"
    runs = json.loads(path.read_text())["runs"] if path.exists() else {}
    runs[args.label] = result
    write_results(args.out, STEM, {"runs": runs}, markdown(runs))
    for name, per in result["solvers"].items():
        for dt, s in per.items():
            print(f"{name:12s} {dt}: step {1e3 * s['step_median_s']:.2f} ms = {s['vs_fista_restart']:.1f}x "
                  f"fista_restart, ratio to arithmetic {s['ratio']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
