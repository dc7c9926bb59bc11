"""Reproductions of Ao, Luo, Simchi-Levi, Wang, *Optimizing LLM Inference: Fluid-Guided
Online Scheduling with Memory Constraints* (arXiv 2504.11320) with ``l2o.serving``.

What runs (all on this machine, in one process, side by side):

1. **p512d20** (2026 revision, single type; the paper: lambda* = 23 WAIT, 22 Sarathi,
   19 vLLM req/s; WAIT lowest latency at every lambda in 12..24, gap to Sarathi ~2% at 12,
   >70% at 23): a rate sweep of vLLM, Sarathi, WAIT (fluid thresholds) and WAIT with the
   appendix's total threshold 21 (n = 1 per stage), KV cap C = 137,000 tokens (the revision's
   Llama-2-7B / A100-80GB cache), batch budget B = 512, under three sets of iteration-time
   constants (``CONSTANTS``): the revision's fitted values as printed, the issue's example,
   and an A100 roofline with a prefill term. lambda*: the largest swept rate at which (and
   below which) completions keep up with >= 97% of arrivals over the second half of the
   run (mean of the replications).
2. **0.7 p512d20 + 0.3 p512d50** (revision, two types; the paper: lambda* = 22 Nested WAIT,
   21 Sarathi, 18 vLLM): Nested WAIT with segments 1-20 and 21-50.
3. **The 2025 synthetic workloads** (arXiv v1/v2, figures only: "WAIT has higher
   throughput at all tested rates"; Nested WAIT four-segment case "improved throughput and
   latency"): throughput and latency at loads below and above the fluid limit.
4. **A synthetic stand-in for lmsys-chat-1m** (the real trace cannot be downloaded here):
   prompt lengths lognormal (median 21, mean 58.6) and output lengths from a histogram with
   the paper's published statistics (31% <= 50, median 116, mean 147.3, 14% > 300, all
   < 500), drawn independently (the real data's correlation is unknown here). Nested WAIT
   with 5 and 10 equal segments against vLLM and Sarathi, and M*(lambda) beside the
   revision's table (crossing C at 74.1 req/s with the authors' fitted constants).
5. **Theorem 1**: WAIT's throughput gap in the scaling lambda -> zeta lambda, d -> d / zeta
   over a fixed horizon: O(1 / (zeta T)) with strict balance, O((zeta T)^-1/2) at the boundary.
6. **Speed**: one million p512d20 requests per policy (issue's constants, 6 req/s).

    python benchmarks/bench_serving.py [--quick] [--out DIR]

writes ``serving.json``, ``serving.md`` and the figures ``serving-*.png`` into
``benchmarks/results`` (atomically).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_common.py, also when a test imports this file
from _common import write_results  # noqa: E402
from l2o.serving import (  # noqa: E402
    GPU,
    NestedWait,
    RequestType,
    Wait,
    fluid,
    make_policy,
    poisson_workload,
    simulate,
    workload_from_arrays,
)
from l2o.serving.plots import plot_sweep  # noqa: E402
from l2o.serving.sweep import rate_sweep  # noqa: E402

RESULTS = Path(__file__).parent / "results"
C = 137_000  # KV-cache tokens: Llama-2-7B FP16 on an A100 80GB after weights and a 1% margin (revision, Sec. 6)
B = 512      # batch budget of the revision's appendix table (Sarathi's admission cap)

#: Iteration-time constants (seconds): tau = d0 + d1 * KV tokens touched + d2 * prompt tokens prefilled.
CONSTANTS = {
    "paper": {"d0": 0.276, "d1": 1.15e-5, "d2": 0.0,
              "note": "the revision's fitted values as printed (appendix: d0 ~ 276 ms, d1 ~ 0.0115 ms per KV "
                      "token), read as per-iteration constants"},
    "issue": {"d0": 0.03, "d1": 1.2e-5, "d2": 0.0, "note": "issue 19's example config (d0 = 30 ms, d1 = 12 us)"},
    "roofline": {"d0": 13.5e9 / 2.039e12, "d1": 524288 / 2.039e12, "d2": 2 * 6.74e9 / 312e12,
                 "note": "A100-80GB roofline for Llama-2-7B at ideal efficiency, not fitted to any result: "
                         "d0 = 13.5 GB of FP16 weights / 2.039 TB/s = 6.6 ms; d1 = 0.5 MiB of KV per token / "
                         "2.039 TB/s = 0.26 us; d2 = 2 x 6.74e9 FLOP per prompt token / 312 TFLOPS = 43 us"},
}
PAPER_P512D20 = {"wait": 23.0, "sarathi": 22.0, "vllm": 19.0}
PAPER_TWO_TYPE = {"nested_wait": 22.0, "sarathi": 21.0, "vllm": 18.0}
PAPER_LMSYS_MSTAR = {50: 34_377, 60: 55_758, 70: 100_327, 80: 250_509}


def gpu_of(name: str, max_batch: int = B) -> GPU:
    c = CONSTANTS[name]
    return GPU(d0=c["d0"], d1=c["d1"], d2=c["d2"], memory=C, max_batch=max_batch)


def limit_of(types: list[RequestType], gpu: GPU) -> float:
    l = [t.prefill for t in types]
    lp = [t.decode for t in types]
    r = [t.rate for t in types]
    return fluid.stability_limit(l, lp, r, gpu.d0, gpu.d1, gpu.memory, gpu.d2)


def sweep_block(label: str, types: list[RequestType], policies: dict, gpu: GPU, fractions: list[float], n: int,
                reps: int, reference: dict[str, float] | None, out: Path, fig_name: str | None) -> dict:
    """A rate sweep at ``fractions`` of the fluid limit, ``reps`` replications of ``n`` requests."""
    lim = limit_of(types, gpu)
    rates = [round(f * lim, 4) for f in fractions]
    t0 = time.perf_counter()
    res = rate_sweep(poisson_workload(types, n, seed=0), policies, gpu, rates, replications=reps,
                     reseed=lambda k: poisson_workload(types, n, seed=k))
    res["fluid_limit"] = lim
    res["fractions"] = fractions
    res["seconds"] = time.perf_counter() - t0
    res["requests"] = n
    res["replications"] = reps
    if fig_name:
        plot_sweep(res, out / fig_name, fluid_limit=lim, title=label, reference=reference)
        res["figure"] = fig_name
    return res


def p512d20(args, out: Path) -> dict:
    types = [RequestType(512, 20, 1.0)]
    pols = {"vllm": lambda: make_policy("vllm"), "sarathi": lambda: make_policy("sarathi"),
            "wait": lambda: make_policy("wait"), "wait (n=1)": lambda: Wait(thresholds=[1])}
    fr = [0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1] if not args.quick else [0.5, 0.9, 1.1]
    blocks = {}
    for cname in CONSTANTS:
        blocks[cname] = sweep_block(f"p512d20, constants '{cname}'", types, pols, gpu_of(cname), fr, args.n,
                                    args.reps, None, out, f"serving-p512d20-{cname}.png")
    return blocks


def two_type(args, out: Path) -> dict:
    types = [RequestType(512, 20, 0.7), RequestType(512, 50, 0.3)]
    pols = {"vllm": lambda: make_policy("vllm"), "sarathi": lambda: make_policy("sarathi"),
            "nested_wait": lambda: NestedWait(boundaries=[20, 50]),
            "nested_wait (tl=30)": lambda: NestedWait(boundaries=[20, 50], thresholds=[1, 1])}
    fr = [0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1] if not args.quick else [0.5, 1.1]
    return {c: sweep_block(f"0.7 p512d20 + 0.3 p512d50, constants '{c}'", types, pols, gpu_of(c), fr, args.n,
                           args.reps, None, out, f"serving-two-type-{c}.png" if c == "roofline" else None)
            for c in ("paper", "roofline")}


def load_table(label: str, types: list[RequestType], policies: dict, gpu: GPU, loads: list[float], n: int) -> dict:
    """Throughput and latency at fixed loads rho (multiples of the fluid limit), drained runs."""
    lim = limit_of(types, gpu)
    base = poisson_workload(types, n, seed=0)
    rows = []
    for rho in loads:
        rate = rho * lim
        for name, make in policies.items():
            r = simulate(base.scaled(rate / base.total_rate), make(), gpu)
            s = r.summary()
            win = r.window(0.5, 1.0)
            rows.append({"policy": name, "load": rho, "rate": rate, "throughput": win["throughput"],
                         "throughput_0_T": s["throughput"], "tracking": win["tracking"],
                         "latency_mean": s["latency_mean"], "ttft_mean": s["ttft_mean"],
                         "eviction_rate": s["eviction_rate"], "max_memory": s["max_memory"],
                         "throughput_star": min(1.0, 1.0 / rho) * fluid.fluid_throughput(
                             [t.decode for t in types], [t.rate * rate / sum(x.rate for x in types) for t in types])})
    return {"label": label, "fluid_limit": lim, "rows": rows, "requests": n}


def v1_workloads(args, out: Path) -> dict:
    gpu = gpu_of("roofline", max_batch=448)
    loads = [0.5, 0.9, 1.5, 3.0] if not args.quick else [0.5, 1.5]
    n = args.n
    low = [RequestType(10, 10, 1000.0), RequestType(10, 20, 1000.0)]
    high = [RequestType(20, 100, 6000.0), RequestType(20, 200, 4000.0), RequestType(20, 300, 2000.0)]
    pols = {"vllm": lambda: make_policy("vllm"), "sarathi": lambda: make_policy("sarathi"),
            "wait (paper rule, B=448)": lambda: Wait(rule="paper"), "wait (fluid)": lambda: Wait(rule="fluid")}
    four = [RequestType(10, d, float(d)) for d in (20, 40, 80, 160)]
    nested = {"vllm": lambda: make_policy("vllm"), "sarathi": lambda: make_policy("sarathi"),
              "nested_wait (15:14:12:8)": lambda: NestedWait(boundaries=[20, 40, 80, 160], thresholds=[15, 14, 12, 8]),
              "nested_wait (fluid)": lambda: NestedWait(boundaries=[20, 40, 80, 160])}
    return {
        "low_demand": load_table("low demand: l=(10,10), l'=(10,20), rates 1:1", low, pols, gpu, loads, n),
        "high_demand": load_table("high demand: l=20, l'=(100,200,300), rates 6:4:2", high, pols, gpu, loads, n),
        # thresholds 15:14:12:8 per stage fill sum_k delta_k n_k = 1715 prompts in a full batch: the same batch
        # limit for every policy (the 2025 text: "the same batch size limits across all algorithms")
        "four_segment": load_table("Nested WAIT four segments: l=10, l'=(20,40,80,160), rates 20:40:80:160, B=1715",
                                   four, nested, GPU(d0=gpu.d0, d1=gpu.d1, d2=gpu.d2, memory=C, max_batch=1715),
                                   loads, n),
    }


# ----- lmsys stand-in ------------------------------------------------------------------------------
#: Output-length histogram (bin edges, masses) matching the revision's published statistics of the
#: filtered lmsys-chat-1m sample: 31% <= 50, median 116, mean 147.3, 14% > 300, all < 500.
DECODE_BINS = ((1, 50, 0.31), (51, 116, 0.19), (117, 200, 0.21), (201, 300, 0.15), (301, 400, 0.10), (401, 499, 0.04))
PREFILL_LOGNORMAL = (1.9222, 22.541)  # sigma, scale: median 21, mean 58.6 after truncation to [1, 499]


def lmsys_standin(n: int, rate: float, seed: int):
    """A synthetic stand-in for the revision's lmsys-chat-1m sample (NOT the real trace)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    arrival = np.cumsum(rng.exponential(1.0 / rate, size=n))
    lo, hi, p = (np.array(x) for x in zip(*DECODE_BINS))
    b = rng.choice(len(p), size=n, p=p / p.sum())
    decode = rng.integers(lo[b], hi[b] + 1)
    sigma, scale = PREFILL_LOGNORMAL
    prefill = np.empty(n, dtype=np.int64)
    filled = 0
    while filled < n:
        x = np.rint(scale * np.exp(sigma * rng.standard_normal(2 * n))).astype(np.int64)
        x = x[(x >= 1) & (x <= 499)][: n - filled]
        prefill[filled:filled + x.size] = x
        filled += x.size
    return workload_from_arrays(arrival, prefill, decode, source=f"lmsys stand-in (seed {seed})")


def lmsys(args, out: Path) -> dict:
    n = 5000 if not args.quick else 400
    gpu = gpu_of("roofline")
    big = lmsys_standin(200_000 if not args.quick else 20_000, 1.0, seed=123)
    stats = {"prefill_mean": float(big.prefill.mean()), "prefill_median": float(np.median(big.prefill)),
             "decode_mean": float(big.decode.mean()), "decode_median": float(np.median(big.decode)),
             "decode_le_50": float((big.decode <= 50).mean()), "decode_gt_300": float((big.decode > 300).mean())}
    # fluid memory per arrival rate: E over the empirical length distribution
    w_tok = float(np.mean(fluid.work(big.prefill, big.decode)))
    p_tok = float(big.prefill.mean())

    def m_star(lam: float, c: dict) -> float:
        a, pp = lam * w_tok, lam * p_tok
        u = c["d1"] * a + c["d2"] * pp
        return c["d0"] * a / (1 - u) if u < 1 else math.inf

    mtab = [{"rate": lam, "published": PAPER_LMSYS_MSTAR[lam], **{c: m_star(lam, CONSTANTS[c]) for c in CONSTANTS}}
            for lam in PAPER_LMSYS_MSTAR]
    lim = {c: 1.0 / (w_tok * (v["d0"] + v["d1"] * C) / C + v["d2"] * p_tok) for c, v in CONSTANTS.items()}
    pols = {"vllm": lambda: make_policy("vllm"), "sarathi": lambda: make_policy("sarathi"),
            "nested_wait (L=5)": lambda: NestedWait(segments=5), "nested_wait (L=10)": lambda: NestedWait(segments=10)}
    fr = [0.3, 0.5, 0.7, 0.8, 0.9, 1.0, 1.1] if not args.quick else [0.5, 1.1]
    rates = [round(f * lim["roofline"], 3) for f in fr]
    t0 = time.perf_counter()
    sw = rate_sweep(lmsys_standin(n, 1.0, 0), pols, gpu, rates, replications=args.reps,
                    reseed=lambda k: lmsys_standin(n, 1.0, k))
    sw["seconds"] = time.perf_counter() - t0
    sw["fluid_limit"] = lim["roofline"]
    sw["requests"] = n
    sw["replications"] = args.reps
    sw["fractions"] = fr
    plot_sweep(sw, out / "serving-lmsys-standin.png", fluid_limit=lim["roofline"],
               title="lmsys stand-in (synthetic lengths), constants 'roofline'")
    return {"stats": stats, "work_mean": w_tok, "m_star": mtab, "fluid_limit": lim, "sweep": sw,
            "figure": "serving-lmsys-standin.png"}


def theorem1(args) -> dict:
    """WAIT's throughput gap (tokens still in flight at T per unit of scaled time, against the
    realized arrivals) as zeta grows: strict balance (lambda = 10) and boundary (lambda = 40)."""
    zetas = [1, 4, 16, 64] if not args.quick else [1, 2]
    seeds = 6 if not args.quick else 1
    scale = 1 if not args.quick else 10
    out = {}
    for label, lam, per in (("strict", 10.0, 1000 // scale), ("boundary", 40.0, 2000 // scale)):
        rows = []
        for z in zetas:
            gaps = []
            for s in range(seeds):
                w = poisson_workload([RequestType(8, 4, lam * z)], per * z, seed=s)
                r = simulate(w, Wait(thresholds=[1]), GPU(d0=0.02 / z, d1=1e-4 / z, memory=1000, max_batch=100),
                             drain=False)
                t_end = r.horizon
                gaps.append((r.decode.sum() - r.decode[r.finish <= t_end].sum()) / (z * t_end))
            g = float(np.mean(gaps))
            rows.append({"zeta": z, "gap": g, "gap_x_zeta": g * z, "gap_x_sqrt_zeta": g * math.sqrt(z),
                         "relative_gap": g / (lam * 4)})
        ch = fluid.wait_conditions([1], [8], [4], [lam], 0.02, 1e-4, 1000)
        slope = float(np.polyfit(np.log([r["zeta"] for r in rows]), np.log([r["gap"] for r in rows]), 1)[0])
        out[label] = {"rate": lam, "cycle_time": ch.cycle_time, "n_over_lambda": 1 / lam, "strict": ch.strict,
                      "rows": rows, "slope": slope, "seeds": seeds}
    return out


def speed(args) -> dict:
    n = 1_000_000 if not args.quick else 2_000
    w = poisson_workload([RequestType(512, 20, 6.0)], n, seed=0)
    gpu = gpu_of("issue", max_batch=256)
    rows = []
    for name in ("vllm", "sarathi", "wait", "nested_wait"):
        t0 = time.perf_counter()
        r = simulate(w, make_policy(name), gpu)
        wall = time.perf_counter() - t0
        s = r.summary()
        rows.append({"policy": name, "requests": n, "seconds": wall, "requests_per_second": n / wall,
                     "iterations": s["iterations"], "completed": s["completed"], "latency_mean": s["latency_mean"]})
    return {"rows": rows, "workload": "p512d20 at 6 req/s, constants 'issue', C = 137000, B = 256"}


# ----- report --------------------------------------------------------------------------------------
def _fmt(x: float, f: str = ".3g") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, f)


def _sweep_md(title: str, block: dict, paper: dict[str, float] | None) -> list[str]:
    lim = block["fluid_limit"]
    trans = block["transition"]
    lines = [f"**{title}** (fluid limit {lim:.3g} req/s; {block['replications']} x {block['requests']} requests "
             f"per point, {block['seconds']:.0f} s)", "",
             "| policy | lambda* (req/s) | lambda* / fluid limit | lambda* / WAIT's |" +
             (" paper lambda* | paper ratio |" if paper else ""),
             "|---|---|---|---|" + ("---|---|" if paper else "")]
    ref = next((v for k, v in trans.items() if k.startswith("wait") or k.startswith("nested_wait")), math.nan)
    pref = next((v for k, v in (paper or {}).items() if k in ("wait", "nested_wait")), math.nan)
    for name, lam in trans.items():
        row = f"| {name} | {_fmt(lam)} | {_fmt(lam / lim, '.2f')} | {_fmt(lam / ref, '.2f')} |"
        if paper:
            p = paper.get(name)
            row += f" {_fmt(p, 'g') if p else '-'} | {_fmt(p / pref, '.2f') if p else '-'} |"
        lines.append(row)
    # latency at fixed fractions of the fluid limit
    fracs = block["fractions"]
    names = list(trans)
    lines += ["", "mean latency (s) at fractions of the fluid limit (* : completions/arrivals in [T/2, T] < 0.97):",
              "", "| load | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for f, rate in zip(fracs, sorted({r["rate"] for r in block["rows"]})):
        cells = []
        for nm in names:
            r = next(x for x in block["rows"] if x["policy"] == nm and x["rate"] == rate)
            cells.append(_fmt(r["latency_mean"], ".3g") + ("" if r["stable"] else "*"))
        lines.append(f"| {f:.2f} ({rate:.3g}/s) | " + " | ".join(cells) + " |")
    return lines + [""]


def to_markdown(res: dict) -> str:
    L = ["# LLM serving: WAIT, Nested WAIT, vLLM and Sarathi (`benchmarks/bench_serving.py`)", "",
         f"Measured on this machine ({res['machine']}) with `python benchmarks/bench_serving.py"
         f"{' --quick' if res['quick'] else ''}` in {res['seconds']:.0f} s. "
         "Simulator: `l2o.serving` (plain event loop, numpy). Paper: Ao, Luo, Simchi-Levi, Wang, arXiv 2504.11320 "
         "(2026 revision for lambda*; the 2025 version for the synthetic workloads).", "",
         "Iteration-time constants (tau = d0 + d1 x KV tokens touched + d2 x prompt tokens prefilled), "
         f"C = {C} KV tokens, B = {B}:", ""]
    for k, v in CONSTANTS.items():
        L.append(f"- `{k}`: d0 = {v['d0']:.4g} s, d1 = {v['d1']:.4g} s, d2 = {v['d2']:.4g} s. {v['note']}.")
    L += ["", "## Summary", ""]
    for c, block in res["p512d20"].items():
        t, lim = block["transition"], block["fluid_limit"]
        order = ", ".join(f"{k} {t[k] / lim:.2f}" for k in ("wait", "sarathi", "vllm"))
        L.append(f"- p512d20, constants '{c}': lambda* / fluid limit: {order} (paper, lambda* / WAIT's: "
                 "WAIT 1, Sarathi 0.96, vLLM 0.83).")
    if res["quick"]:
        L += ["- (--quick: a smoke run with too few requests for conclusions; the findings of the full run are "
              "omitted.)", ""]
    else:
        L += FINDINGS + [
            "- Theorem 1: WAIT's throughput gap falls like 1 / zeta with strict balance (fitted slope "
            f"{res['theorem1']['strict']['slope']:.2f}) and like zeta^-1/2 at the boundary "
            f"({res['theorem1']['boundary']['slope']:.2f}).",
            f"- Speed: one million requests in {max(r['seconds'] for r in res['speed']['rows']):.0f} s or less per "
            "policy (target: under a minute).", ""]
    L += ["## 1. p512d20: stability transition lambda* (paper: WAIT 23, Sarathi 22, vLLM 19 req/s)", ""]
    return _sections(res, L)


#: What the full run shows, in words (checked against serving.md's tables when the benchmark changes).
FINDINGS = [
        "- WAIT with fluid thresholds reaches the fluid stability limit in every constant set (it is stable at 1.00 "
        "and unstable at 1.05 of the limit), as Theorem 1 says; no policy can pass the limit (a test checks this "
        "at 1.15).",
        "- The paper's order between the baselines (Sarathi above vLLM) is NOT reproduced: in this linear "
        "iteration-time model Sarathi's 512-token chunk admits at most one 512-token prompt per iteration, which "
        "caps it at one request per iteration (WAIT with the appendix's n = 1 per stage has the same cap and the "
        "same lambda*), while vLLM batches up to 8 prompts (4096 tokens) per prefill iteration. vLLM's evictions "
        "are rare for one type with staggered arrivals (at most 0.015 restarts per request in section 1); they "
        "cascade in the 2025 four-segment workload (section 3).",
        "- Latency at low load is NOT lowest for WAIT / Nested WAIT here, unlike the paper's figures: Algorithms 1 "
        "and 2 as written are not work-conserving (a type's decode stages advance only when its prefill queue "
        "reaches the threshold; in Nested WAIT nothing advances until segment 1's queue does), so at low load a "
        "request waits about one inter-arrival time per stage. The paper's Vidur runs of WAIT use a chunk size "
        "(appendix) that Algorithm 1 does not have; their implementation may differ from the algorithm in this "
        "respect.",
        "- The printed constants ('paper': d0 = 276 ms per iteration) put the fluid limit of p512d20 at 6.75 "
        "req/s, not near 23; 276 ms is about 21 x 13 ms, the time of the 21 iterations of the appendix's "
        "p256d20 validation batch, so the printed d0 may be per batch rather than per iteration. Absolute "
        "lambda* values are therefore compared through ratios; the roofline constants (prefill-bound) put the "
        "limit at 39 req/s.",
        "- lmsys stand-in: Nested WAIT with integer per-stage thresholds (at least 1 on each of ~500 decode "
        "stages) cannot meet the fluid conditions there (its full batch needs more memory than C and a longer "
        "cycle than n_1 / lambda): it admits about one request per iteration and has the LOWEST lambda*, unlike "
        "the paper. The revision spreads fractional per-stage thresholds over each segment; that variant is not "
        "implemented.",
        "- 2025 workloads (section 3, the same batch limit B for every policy, 'roofline' constants): from 0.9 of "
        "the fluid limit up, WAIT has the highest throughput in the low-demand case (fluid thresholds) and in the "
        "high-demand case (the paper's practical rule), as the 2025 figures show; in the four-segment case Nested "
        "WAIT has the highest throughput at 0.5-1.5 of the limit and Sarathi at 3x, and vLLM restarts 0.45-0.58 "
        "times per request at 0.9-3x (eviction cascades) against 0.02-0.03 for Nested WAIT with fluid thresholds.",
]


def _sections(res: dict, L: list[str]) -> str:
    for c, block in res["p512d20"].items():
        L += _sweep_md(f"constants '{c}'", block, PAPER_P512D20)
    L += ["Paper, latency: WAIT lowest at every lambda in 12..24; gap to Sarathi ~2% at 12 (0.52 of WAIT's "
          "lambda*) and >70% at 23.", ""]
    L += ["## 2. 0.7 p512d20 + 0.3 p512d50 (paper: Nested WAIT 22, Sarathi 21, vLLM 18 req/s)", ""]
    for c, block in res["two_type"].items():
        L += _sweep_md(f"constants '{c}'", block, PAPER_TWO_TYPE)
    L += ["## 3. The 2025 synthetic workloads (constants 'roofline'; paper: figures only, WAIT / Nested WAIT with "
          "higher throughput at every tested rate)", ""]
    for key, tab in res["v1"].items():
        names = list(dict.fromkeys(r["policy"] for r in tab["rows"]))
        L += [f"**{tab['label']}** (fluid limit {tab['fluid_limit']:.4g} req/s, {tab['requests']} requests, "
              "drained): throughput (decode tokens/s completed over [T/2, T]) / mean latency (s) [/ restarts per "
              "request]", "",
              "| load | " + " | ".join(names) + " | throughput* |", "|---|" + "---|" * (len(names) + 1)]
        for rho in sorted({r["load"] for r in tab["rows"]}):
            rs = [r for r in tab["rows"] if r["load"] == rho]
            cells = [f"{_fmt(r['throughput'], '.4g')} / {_fmt(r['latency_mean'], '.3g')}"
                     + (f" / {r['eviction_rate']:.2f} restarts" if r["eviction_rate"] >= 0.005 else "")
                     for nm in names for r in rs if r["policy"] == nm]
            L.append(f"| {rho:g} | " + " | ".join(cells) + f" | {_fmt(rs[0]['throughput_star'], '.4g')} |")
        L.append("")
    lm = res["lmsys"]
    st = lm["stats"]
    L += ["## 4. lmsys-chat-1m stand-in (SYNTHETIC lengths; the real trace is not available here)", "",
          f"Stand-in statistics (200,000 draws): prompt mean {st['prefill_mean']:.1f} (paper 58.6), median "
          f"{st['prefill_median']:.0f} (21); output mean {st['decode_mean']:.1f} (147.3), median "
          f"{st['decode_median']:.0f} (116), <= 50: {st['decode_le_50']:.1%} (31%), > 300: "
          f"{st['decode_gt_300']:.1%} (14%). Prompt and output lengths are independent here.", "",
          "M*(lambda) in KV tokens (paper: the authors' fitted service-time parameters; here: ours on the "
          "stand-in):", "", "| lambda | published | " + " | ".join(CONSTANTS) + " |",
          "|---|---|" + "---|" * len(CONSTANTS)]
    for r in lm["m_star"]:
        L.append(f"| {r['rate']} | {r['published']:,} | " + " | ".join(_fmt(r[c], ',.0f') for c in CONSTANTS) + " |")
    L += ["", "Fluid limit (M* = C) on the stand-in: " + ", ".join(f"'{c}' {v:.3g} req/s" for c, v in
                                                                   lm["fluid_limit"].items()) +
          " (paper: 74.1 req/s).", ""]
    sw = lm["sweep"]
    L += _sweep_md("stand-in, constants 'roofline'", sw, None)
    L += ["## 5. Theorem 1: WAIT's throughput gap as the scale zeta grows", "",
          "Single type l = 8, l' = 4, threshold n = 1, d0 = 0.02 / zeta, d1 = 1e-4 / zeta, horizon fixed; gap = "
          "decode tokens still in flight at T per unit of scaled time (against the realized arrivals).", "",
          "| balance | zeta | gap | gap x zeta | gap x sqrt(zeta) |", "|---|---|---|---|---|"]
    for label, blk in res["theorem1"].items():
        for r in blk["rows"]:
            L.append(f"| {label} (dT = {blk['cycle_time']:.3g}, n/lambda = {blk['n_over_lambda']:.3g}) | {r['zeta']} "
                     f"| {r['gap']:.4g} | {r['gap_x_zeta']:.3g} | {r['gap_x_sqrt_zeta']:.3g} |")
        L.append(f"| {label}: fitted slope of log gap vs log zeta | | {blk['slope']:.2f} | "
                 f"(theory {'-1' if label == 'strict' else '-1/2'}) | |")
    L += ["", f"## 6. Speed: {res['speed']['rows'][0]['requests']:,} requests", "",
          f"Workload: {res['speed']['workload']}.", "",
          "| policy | requests | seconds | requests/s | iterations |", "|---|---|---|---|---|"]
    for r in res["speed"]["rows"]:
        L.append(f"| {r['policy']} | {r['requests']:,} | {r['seconds']:.1f} | {r['requests_per_second']:,.0f} | "
                 f"{r['iterations']:,} |")
    L += ["", "Target: a million requests in under a minute on this machine."]
    return "\n".join(L) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run; not the reported numbers)")
    ap.add_argument("--n", type=int, default=6000, help="requests per sweep point")
    ap.add_argument("--reps", type=int, default=3, help="replications per sweep point")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.quick:
        args.n, args.reps = min(args.n, 400), 1
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res = {"quick": args.quick, "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                                           f"load {os.getloadavg()[0]:.1f}",
           "constants": CONSTANTS, "memory": C, "batch": B}
    for name, fn in (("p512d20", p512d20), ("two_type", two_type), ("v1", v1_workloads), ("lmsys", lmsys)):
        t1 = time.perf_counter()
        res[name] = fn(args, args.out)
        print(f"{name}: {time.perf_counter() - t1:.0f} s", file=sys.stderr, flush=True)
    res["theorem1"] = theorem1(args)
    res["speed"] = speed(args)
    res["seconds"] = time.perf_counter() - t0
    write_results(args.out, "serving", res, to_markdown(res))
    print(f"wrote {args.out / 'serving.json'} and serving.md ({res['seconds']:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
