"""``l2o decentralized``: run a decentralized algorithm over a directed graph (``l2o.decentralized``).

    l2o decentralized --algorithm push_pull --graph G.npz --data D.npz --lr 0.05 --iterations 100
    l2o decentralized --algorithm pull_diag_gt --topology ring_with_chord --nodes 8 --samples 100 ...
    l2o decentralized run.toml [--backend processes]
    torchrun --standalone --nproc-per-node 4 -m l2o.cli decentralized --backend processes ...
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import torch
import typer

from l2o.cli.options import USAGE_ERROR, error, say, user_errors
from l2o.decentralized import ALGORITHMS, GENERATORS, OBJECTIVES, make_objective, make_topology, simulate
from l2o.decentralized.files import load_data, load_graph, load_x0, result_arrays, write_result
from l2o.decentralized.objectives import least_squares_data, logistic_data
from l2o.decentralized.processes import RunSpec, launch, run_from_env
from l2o.decentralized.topology import beta, kappa
from l2o.utils.files import read_toml

DECENTRALIZED_HELP = "\n\n".join([
    "Decentralized optimization over a directed graph: n nodes minimize (1/n) sum_i f_i(x), node i holding "
    "only its own data and talking to its neighbours.",
    f"Algorithms: {', '.join(ALGORITHMS)}. push_pull / push_pull_atc use A = Row(W) and B = Col(W); "
    "pull_diag_gt / mg_pull_diag_gt only A (self-loops needed; --rounds R gossip rounds per mix for MG); "
    "dsgd / gradient_tracking need a doubly-stochastic W; push_sum uses B; centralized_sgd averages exactly.",
    "Graph: --graph G.npz holding W (n, n), W[i, j] > 0 when node j sends to node i (or A and B), or "
    f"--topology NAME --nodes N [--weights uniform|K] with NAME in {', '.join(GENERATORS)}. "
    "Data: --data D.npz holding X (n_nodes, m, d) and y (n_nodes, m) (labels +-1; real targets for "
    "least_squares), or synthetic data from --seed with --samples M per node, --dim D, --heterogeneity H.",
    f"Objectives: {', '.join(OBJECTIVES)} (--rho weights the regularizer, default 0.01). Every node starts "
    "at 0 unless --x0 FILE.npy gives (d,) or (n_nodes, d). --batch B samples per node and iteration "
    "(default full: exact gradients, a deterministic run).",
    "--backend simulated stacks all nodes in one process; --backend processes starts one process per node "
    "on 127.0.0.1 (gloo, point-to-point messages to out-neighbours), or, under torchrun, runs as the node "
    "of its RANK. Both give the same iterates.",
    "CONFIG.toml may hold the same keys (underscores or hyphens; flags override it; unknown keys are "
    "errors). --out OUT.npz writes x (n_nodes, d) and, per recorded iteration, grad_norm (the norm of the "
    "average gradient at the mean iterate), consensus, loss, and per node the messages and bytes sent. "
    f"Bad input: one line 'error: ...', exit status {USAGE_ERROR}; a node that fails: exit status 1.",
])

_KEYS = ("algorithm", "graph", "topology", "nodes", "weights", "data", "samples", "dim", "heterogeneity",
         "objective", "rho", "lr", "iterations", "batch", "rounds", "backend", "seed", "x0", "out",
         "record_every", "timeout", "dtype")


def _config(path: Path | None, flags: dict[str, Any]) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    if path is not None:
        raw = read_toml(path)
        for key, value in raw.items():
            k = key.replace("-", "_")
            if k not in _KEYS:
                raise ValueError(f"config {str(path)!r}: unknown key {key!r}; expected keys among {', '.join(_KEYS)}")
            if k in ("graph", "data", "x0", "out") and value is not None:
                value = str(path.parent / str(value))
            cfg[k] = value
    cfg.update({k: v for k, v in flags.items() if v is not None})
    return cfg


def _need(cfg: dict[str, Any], key: str) -> Any:
    if cfg.get(key) is None:
        raise ValueError(f"--{key.replace('_', '-')} is missing; give it as a flag or in the config")
    return cfg[key]


def _batch(value: Any) -> int | None:
    if value is None or str(value) == "full":
        return None
    try:
        b = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"--batch is {value!r}; expected a positive integer or 'full'") from None
    if b < 1:
        raise ValueError(f"--batch is {b}; expected a positive integer or 'full'")
    return b


def _weights(value: Any) -> int | str | None:
    if value is None or value == "uniform":
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"--weights is {value!r}; expected 'uniform' or an integer >= 1") from None


def _build(cfg: dict[str, Any]) -> tuple[RunSpec, str, str]:
    algorithm = _need(cfg, "algorithm")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"--algorithm: unknown name {algorithm!r}; expected one of {', '.join(ALGORITHMS)}")
    backend = cfg.get("backend", "simulated")
    if backend not in ("simulated", "processes"):
        raise ValueError(f"--backend is {backend!r}; expected 'simulated' or 'processes'")
    dtype = {"float64": torch.float64, "float32": torch.float32}.get(cfg.get("dtype", "float64"))
    if dtype is None:
        raise ValueError(f"--dtype is {cfg['dtype']!r}; expected 'float64' or 'float32'")
    seed = int(cfg.get("seed", 0))
    if cfg.get("graph") is not None and cfg.get("topology") is not None:
        raise ValueError("--graph and --topology both given; expected one of them")
    if cfg.get("graph") is not None:
        top = load_graph(cfg["graph"])
    elif cfg.get("topology") is not None:
        top = make_topology(cfg["topology"], int(_need(cfg, "nodes")), _weights(cfg.get("weights")), seed)
    else:
        raise ValueError("--graph is missing; expected --graph G.npz or --topology NAME --nodes N")
    if cfg.get("nodes") is not None and int(cfg["nodes"]) != top.n:
        raise ValueError(f"--nodes is {cfg['nodes']} but the graph has {top.n} nodes")
    objective_name = cfg.get("objective", "nonconvex_logistic")
    objective = make_objective(objective_name, cfg.get("rho"))
    if cfg.get("data") is not None:
        data = load_data(cfg["data"])
    else:
        gen = torch.Generator().manual_seed(seed)
        make = least_squares_data if objective_name == "least_squares" else logistic_data
        data = make(top.n, int(cfg.get("samples", 100)), int(cfg.get("dim", 10)),
                    heterogeneity=float(cfg.get("heterogeneity", 0.0)), generator=gen)
    x0 = load_x0(cfg["x0"]) if cfg.get("x0") is not None else None
    if x0 is None:
        x0 = torch.zeros(objective.dim(data), dtype=torch.float64)
    spec = RunSpec(algorithm, top, objective, data, float(_need(cfg, "lr")), int(_need(cfg, "iterations")),
                   batch=_batch(cfg.get("batch")), rounds=int(cfg.get("rounds", 1)), seed=seed, x0=x0,
                   record_every=int(cfg.get("record_every", 1)), dtype=dtype)
    spec.check()
    return spec, backend, top.name


def _summary(spec: RunSpec, backend: str, graph: str, arrays: dict[str, Any]) -> dict[str, Any]:
    return {"algorithm": spec.algorithm, "backend": backend, "graph": graph, "nodes": spec.n,
            "dim": int(arrays["x"].shape[1]), "iterations": spec.iterations, "kappa_A": kappa(spec.topology.A),
            "beta_A": beta(spec.topology.A), "grad_norm_start": float(arrays["grad_norm"][0]),
            "grad_norm": float(arrays["grad_norm"][-1]), "consensus": float(arrays["consensus"][-1]),
            "loss": float(arrays["loss"][-1]), "messages": arrays["messages"].tolist(),
            "bytes": arrays["bytes"].tolist()}


def decentralized(
    config: Annotated[Path | None, typer.Argument(help="run config (TOML) with the keys of the flags")] = None,
    algorithm: Annotated[str | None, typer.Option("--algorithm", "-a", help="algorithm name")] = None,
    graph: Annotated[Path | None, typer.Option("--graph", help="G.npz with W (or A and B)")] = None,
    topology: Annotated[str | None, typer.Option("--topology", help="generate a graph by name")] = None,
    nodes: Annotated[int | None, typer.Option("--nodes", "-n", help="nodes of a generated graph")] = None,
    weights: Annotated[str | None, typer.Option("--weights", help="'uniform' or K: integer weights 1..K")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="D.npz with X (n_nodes, m, d), y (n_nodes, m)")] = None,
    samples: Annotated[int | None, typer.Option("--samples", help="synthetic data: samples per node")] = None,
    dim: Annotated[int | None, typer.Option("--dim", help="synthetic data: dimension d (default 10)")] = None,
    heterogeneity: Annotated[float | None, typer.Option("--heterogeneity", help="synthetic: spread of local "
                                                        "optima")] = None,
    objective: Annotated[str | None, typer.Option("--objective", help="objective name")] = None,
    rho: Annotated[float | None, typer.Option("--rho", help="regularization weight (default 0.01)")] = None,
    lr: Annotated[float | None, typer.Option("--lr", help="step size alpha")] = None,
    iterations: Annotated[int | None, typer.Option("--iterations", "-k", help="iterations")] = None,
    batch: Annotated[str | None, typer.Option("--batch", help="samples per node and iteration, or 'full'")] = None,
    rounds: Annotated[int | None, typer.Option("--rounds", help="gossip rounds R (mg_pull_diag_gt)")] = None,
    backend: Annotated[str | None, typer.Option("--backend", help="simulated | processes")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="seed of graphs, data and minibatches")] = None,
    x0: Annotated[Path | None, typer.Option("--x0", help="start (d,) or (n_nodes, d), .npy")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="write OUT.npz")] = None,
    record_every: Annotated[int | None, typer.Option("--record-every", help="record metrics every k "
                                                     "iterations")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="processes: seconds before a silent peer "
                                                  "is an error (default 60)")] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="float64 (default) | float32")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    flags = {k: v for k, v in locals().items() if k in _KEYS}
    with user_errors():
        cfg = _config(config, flags)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            spec, backend_name, graph_name = _build(cfg)
        for w in caught:
            say(f"warning: {w.message}")
        wait = float(cfg.get("timeout", 60.0))
        if not wait > 0:
            raise ValueError(f"--timeout is {wait}; expected positive seconds")
        under_torchrun = "RANK" in os.environ and "WORLD_SIZE" in os.environ
        if cfg.get("out") is not None:
            out_path = Path(cfg["out"])
            if not out_path.parent.is_dir():
                raise ValueError(f"--out {str(out_path)!r}: the folder does not exist")
    try:
        if backend_name == "simulated":
            result = simulate(spec.algorithm, spec.topology, spec.objective, spec.data, spec.lr, spec.iterations,
                              spec.batch, spec.rounds, seed=spec.seed, x0=spec.x0, record_every=spec.record_every,
                              dtype=spec.dtype)
        elif under_torchrun:
            got = run_from_env(spec, comm_timeout=wait)
            if got is None:  # not node 0: node 0 reports
                return
            result = got[0]
        else:
            iters = max(spec.iterations, 1) * max(spec.rounds, 1)
            result = launch([spec], timeout=max(120.0, 60.0 + 0.05 * iters * spec.n), comm_timeout=wait)[0][0]
    except RuntimeError as e:
        error(str(e))
        raise typer.Exit(1) from None
    except ValueError as e:
        error(str(e))
        raise typer.Exit(USAGE_ERROR) from None
    arrays = result_arrays(result)
    if cfg.get("out") is not None:
        with user_errors():
            write_result(cfg["out"], result)
    summary = _summary(spec, backend_name, graph_name, arrays)
    if as_json:
        print(json.dumps(summary, allow_nan=True))
        return
    msgs = summary["messages"]
    print(f"{spec.algorithm} on {graph_name} (n={spec.n}, d={summary['dim']}, kappa_A={summary['kappa_A']:.3g}, "
          f"beta_A={summary['beta_A']:.4g}), backend {backend_name}: {spec.iterations} iterations, "
          f"{result.rounds} communication rounds")
    gn = summary["grad_norm"]
    print(f"grad_norm {gn:.4e} (start {summary['grad_norm_start']:.4e}), consensus {summary['consensus']:.4e}, "
          f"loss {summary['loss']:.6g}" + ("" if math.isfinite(gn) else "  (diverged: lower --lr)"))
    print(f"per node: {sum(msgs) / len(msgs):.1f} messages, {sum(summary['bytes']) / len(msgs):.0f} bytes sent "
          f"(mean; max {max(summary['bytes'])})")
    if cfg.get("out") is not None:
        print(f"wrote {cfg['out']}", file=sys.stderr)
