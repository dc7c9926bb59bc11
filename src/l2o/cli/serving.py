"""``l2o serving``: simulate LLM serving under a KV-cache limit (``l2o.serving``).

    l2o serving simulate CONFIG.toml [--policy NAME ...] [--json] [--out DIR]
    l2o serving fluid CONFIG.toml [--json]
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from l2o.cli.options import USAGE_ERROR, say, user_errors
from l2o.serving import POLICIES, simulate
from l2o.serving.analysis import fluid_report, format_fluid_report
from l2o.serving.config import ServingConfig
from l2o.serving.plots import plot_memory, plot_sweep
from l2o.serving.records import SUMMARY_COLUMNS, format_table, write_result, write_summary
from l2o.serving.sweep import rate_sweep
from l2o.utils.files import json_safe

SIMULATE_HELP = "\n\n".join([
    "Simulate one GPU serving the requests of CONFIG.toml under each batching policy.",
    "CONFIG tables: gpu (d0, d1: seconds per iteration and per KV token touched; d2: per prompt token "
    "prefilled, default 0; memory: KV-cache tokens C; max_batch), an array of types (prefill, decode, rate: "
    "Poisson arrivals) or a top-level trace = \"requests.csv\" (columns arrival,prefill,decode), policy (name "
    "plus its parameters; policy.NAME sub-tables for the others), run (requests, seed, drain), optional sweep "
    "(rates or scale, a list). Unknown keys are errors.",
    f"Policies: {', '.join(POLICIES)}. --policy (repeatable or comma-separated) runs the same workload under "
    "each; default: the config's policy name.",
    "Prints a table of the metrics per policy (--json: an object with a 'policies' list of rows with policy, "
    "arrived, completed, throughput (decode tokens/s), latency_mean, latency_p99, ttft_mean, evictions, "
    "max_memory and more). A load above the fluid stability limit is simulated but flagged on stderr.",
    "--out DIR writes summary.json, requests-POLICY.csv and iterations-POLICY.csv (tidy records), memory.png "
    "(memory over time) and, with a sweep table, sweep.json and latency.png (latency against the arrival rate with "
    f"each policy's stability transition marked). Bad input: one line 'error: ...', exit status {USAGE_ERROR}.",
])

FLUID_HELP = "\n\n".join([
    "The fluid benchmark of CONFIG.toml's workload: M*, throughput*, the processing time, the load and the "
    "stability limit, WAIT's thresholds (fluid rule, practical rules, and the config's) with their conditions, "
    "and Nested WAIT's boundaries, thresholds and Theorem 2's memory with the safety buffer.",
])

app = typer.Typer(name="serving", help="LLM-serving simulator: batching policies under a KV-cache limit.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _policy_names(values: list[str] | None, default: str) -> list[str]:
    if not values:
        return [default]
    names: list[str] = []
    for v in values:
        for name in (x.strip() for x in v.split(",")):
            if not name:
                raise ValueError(f"--policy {v!r} has an empty name; expected names from {', '.join(POLICIES)}")
            if name not in POLICIES:
                raise ValueError(f"--policy: unknown policy {name!r}; expected one of {', '.join(POLICIES)}")
            if name not in names:
                names.append(name)
    return names


@app.command("simulate", help=SIMULATE_HELP)
def simulate_cmd(
    config: Annotated[Path, typer.Argument(help="serving config (TOML)")],
    policy: Annotated[list[str] | None, typer.Option("--policy", "-p", help="policy to run (repeatable)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the metrics as JSON on stdout")] = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write records and plots to this folder")] = None,
) -> None:
    with user_errors():
        cfg = ServingConfig.from_toml(config)
        names = _policy_names(policy, cfg.policy)
        workload = cfg.workload()
        rep = fluid_report(workload, cfg.gpu)
        too_big = int(((workload.prefill + workload.decode) > cfg.gpu.memory).sum())
        if too_big:
            say(f"warning: {too_big} request(s) need more KV cache than memory {cfg.gpu.memory} (prefill + decode "
                "tokens): dropped and counted as 'dropped'")
        if not rep["stable"]:
            say(f"warning: the offered load is {rep['load']:.3g} x the fluid stability limit "
                f"({workload.total_rate:.4g} requests/s offered, limit {rep['stability_limit']:.4g} at this mix); "
                "simulated anyway: queues and latency grow with the run length")
        if out is not None:
            if out.exists() and not out.is_dir():
                raise ValueError(f"--out '{out}' exists and is not a folder")
            out.mkdir(parents=True, exist_ok=True)
        results = []
        for name in names:
            pol = cfg.make_policy(name)
            say(f"simulating {name} on {workload.n} requests ...")
            results.append(simulate(workload, pol, cfg.gpu, drain=cfg.drain))
        summaries = [r.summary() for r in results]
        rates = cfg.sweep_rates(workload)
        sweep = None
        if rates is not None:
            say(f"rate sweep: {len(rates)} rates x {len(names)} policies ...")
            sweep = rate_sweep(workload, {n: (lambda n=n: cfg.make_policy(n)) for n in names}, cfg.gpu, rates,
                               drain=cfg.drain, tracking=cfg.tracking)
        fluid_info = {"load": rep["load"], "stable": rep["stable"], "stability_limit": rep["stability_limit"],
                      "fluid_memory": rep["fluid_memory"], "fluid_throughput": rep["throughput"]}
        if out is not None:
            for r in results:
                write_result(r, out)
            write_summary(out / "summary.json", summaries, fluid=fluid_info, config=str(config))
            plot_memory(results, out / "memory.png")
            if sweep is not None:
                write_summary(out / "sweep.json", [], sweep=sweep)
                plot_sweep(sweep, out / "latency.png", fluid_limit=rep["stability_limit"])
            else:
                say("note: add a [sweep] table (rates = [...]) for the latency-against-rate plot")
            say(f"wrote records and plots to {out}")
    if as_json:
        payload = {"policies": summaries, "fluid": fluid_info}
        if sweep is not None:
            payload["sweep"] = sweep
        print(json.dumps(json_safe(payload), indent=2, allow_nan=False))
        return
    print(format_table(summaries, SUMMARY_COLUMNS))
    print(f"fluid: load {rep['load']:.3f} ({'stable' if rep['stable'] else 'above the stability limit'}), "
          f"limit {rep['stability_limit']:.4g} requests/s, throughput* {rep['throughput']:.4g} tokens/s, "
          f"M* {rep['fluid_memory']:.4g} of C = {cfg.gpu.memory}")
    if sweep is not None:
        rows = [{"policy": r["policy"], "rate": r["rate"], "latency": r["latency_mean"],
                 "tracking": r["tracking"], "stable": "yes" if r["stable"] else "no"} for r in sweep["rows"]]
        print(format_table(rows, [("policy", "policy", "s"), ("rate", "rate", ".4g"), ("latency", "latency", ".3f"),
                                  ("tracking", "completions/arrivals", ".3f"), ("stable", "stable", "s")]))
        print("lambda*: " + ", ".join(f"{k} {v:.4g}" if not math.isnan(v) else f"{k} -"
                                      for k, v in sweep["transition"].items()))


@app.command("fluid", help=FLUID_HELP)
def fluid_cmd(
    config: Annotated[Path, typer.Argument(help="serving config (TOML)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON on stdout")] = False,
) -> None:
    with user_errors():
        cfg = ServingConfig.from_toml(config)
        workload = cfg.workload()
        wait = cfg.make_policy("wait")
        nested = cfg.make_policy("nested_wait")
        rep = fluid_report(workload, cfg.gpu, wait=wait, nested=nested)  # type: ignore[arg-type]
    if as_json:
        print(json.dumps(json_safe(rep), indent=2, allow_nan=False))
    else:
        print(format_fluid_report(rep))


__all__ = ["app", "simulate_cmd", "fluid_cmd", "SIMULATE_HELP", "FLUID_HELP"]
