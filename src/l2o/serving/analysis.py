"""The fluid analysis of a workload on a GPU, as one report (``l2o serving fluid``).

For the workload's request types (a trace's types are its distinct (prefill, decode)
pairs with their empirical rates): M*, throughput*, the processing time, the load rho
and the stability limit; WAIT's thresholds by the fluid rule and the two practical
rules with their conditions; Nested WAIT's boundaries, thresholds, conditions and
Theorem 2's memory with the safety buffer (horizon = the workload's span, delta = 0.01).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from l2o.serving import fluid
from l2o.serving.base import SimState
from l2o.serving.nested import NestedWait
from l2o.serving.simulator import GPU
from l2o.serving.wait import Wait
from l2o.serving.workload import Workload


def sim_state(workload: Workload, gpu: GPU, drain: bool = True) -> SimState:
    """A ``SimState`` of the requests that fit in the KV cache (for threshold rules).

    >>> from l2o.serving.workload import RequestType, poisson_workload
    >>> sim_state(poisson_workload([RequestType(8, 4, 1.0)], 5), GPU(memory=100)).n
    5
    """
    keep = (workload.prefill + workload.decode) <= gpu.memory
    m = int(keep.sum())
    return SimState(workload.arrival[keep], workload.prefill[keep], workload.decode[keep], workload.kind[keep],
                    workload.types, int(gpu.memory), int(gpu.max_batch), float(gpu.d0), float(gpu.d1),
                    float(gpu.d2), drain, np.full(m, np.nan), np.full(m, np.nan), np.zeros(m, dtype=np.int64))


def fluid_report(workload: Workload, gpu: GPU, wait: Wait | None = None, nested: NestedWait | None = None,
                 delta: float = 0.01) -> dict[str, Any]:
    """The fluid benchmark and the threshold rules for ``workload`` on ``gpu``.

    >>> from l2o.serving.workload import RequestType, poisson_workload
    >>> rep = fluid_report(poisson_workload([RequestType(1, 1, 4.0)], 10), GPU(d0=1.0, d1=0.0, memory=12, max_batch=8))
    >>> rep["fluid_memory"], rep["throughput"], rep["load"]
    (12.0, 4.0, 1.0)
    """
    types = workload.types
    l = np.array([t.prefill for t in types], dtype=np.float64)
    lp = np.array([t.decode for t in types], dtype=np.float64)
    r = np.array([t.rate for t in types], dtype=np.float64)
    d0, d1, d2, C = gpu.d0, gpu.d1, gpu.d2, gpu.memory
    m_star = fluid.fluid_memory(l, lp, r, d0, d1, d2)
    rho = fluid.load(l, lp, r, d0, d1, C, d2)
    rep: dict[str, Any] = {
        "types": [{"prefill": t.prefill, "decode": t.decode, "rate": t.rate} for t in types][:50],
        "n_types": len(types),
        "total_rate": float(r.sum()),
        "fluid_memory": m_star,
        "memory_cap": C,
        "processing_time": fluid.processing_time(l, lp, r, d0, d1, d2),
        "throughput": fluid.fluid_throughput(lp, r),
        "load": rho,
        "stable": bool(rho <= 1.0),
        "stability_limit": fluid.stability_limit(l, lp, r, d0, d1, C, d2),
        "dropped_types": int(np.sum(l + lp > C)),
    }
    state = sim_state(workload, gpu)
    w_rules: dict[str, Any] = {}
    for name, pol in (("fluid", Wait(rule="fluid", slack=(wait.slack if wait else 0.2))),
                      ("balanced", Wait(rule="balanced")), ("paper", Wait(rule="paper")),
                      ("config", wait)):
        if pol is None:
            continue
        try:
            n, ok = pol.choose_thresholds(state)
        except ValueError as e:
            w_rules[name] = {"error": str(e)}
            continue
        chk = fluid.wait_conditions(n, l, lp, r, d0, d1, C, d2)
        w_rules[name] = {"thresholds": n.tolist(), "cycle_time": chk.cycle_time, "memory_use": chk.memory_use,
                         "balance": all(chk.balance), "strict": chk.strict, "fits_memory": chk.memory,
                         "covers_fluid": chk.covers_fluid, "conditions_hold": chk.ok, "feasible": bool(ok)}
    rep["wait"] = w_rules
    nested = nested if nested is not None else NestedWait()
    try:
        b = nested.choose_boundaries(state)
        n, ok, lbar = nested.choose_thresholds(state, b)
        chk = fluid.nested_conditions(n, b, lbar, lp, r, d0, d1, C, d2)
        horizon = float(workload.arrival[-1] - workload.arrival[0]) or 1.0
        try:
            m_req = fluid.nested_required_memory(n, b, lbar, lp, r, d0 if d0 > 0 else 1e-9, horizon, delta)
        except ValueError:
            m_req = math.nan  # the drift condition fails: no finite buffer
        rep["nested_wait"] = {
            "boundaries": b, "thresholds": n, "rule": nested.rule if nested.thresholds is None else "explicit",
            "continuation": fluid.continuation_probabilities(b, lp, r).tolist(), "prefill_mean": lbar,
            "cycle_time": chk.cycle_time, "memory_use": chk.memory_use, "balance": all(chk.balance),
            "ordering": list(chk.ordering), "required_memory": m_req, "horizon": horizon, "delta": delta,
            "fits_memory": bool(math.isfinite(m_req) and m_req <= C), "feasible": bool(ok),
        }
    except ValueError as e:
        rep["nested_wait"] = {"error": str(e)}
    return rep


def format_fluid_report(rep: dict[str, Any]) -> str:
    """``fluid_report`` as readable lines.

    >>> from l2o.serving.workload import RequestType, poisson_workload
    >>> rep = fluid_report(poisson_workload([RequestType(1, 1, 4.0)], 10), GPU(d0=1.0, d1=0.0, memory=12, max_batch=8))
    >>> format_fluid_report(rep).splitlines()[1]
    'M* (fluid memory)          12 KV tokens  (capacity C = 12)'
    """
    lines = [
        f"request types: {rep['n_types']}, total arrival rate {rep['total_rate']:.6g} requests/s",
        f"M* (fluid memory)          {rep['fluid_memory']:.6g} KV tokens  (capacity C = {rep['memory_cap']})",
        f"throughput*                {rep['throughput']:.6g} decode tokens/s",
        f"processing time*           {rep['processing_time']:.6g} s per iteration",
        f"load rho                   {rep['load']:.4f}  "
        f"({'stable' if rep['stable'] else 'ABOVE the fluid stability limit'} in the fluid model)",
        f"stability limit            {rep['stability_limit']:.6g} requests/s at this type mix",
    ]
    for name, w in rep["wait"].items():
        if "error" in w:
            lines.append(f"WAIT thresholds ({name}): {w['error']}")
            continue
        lines.append(f"WAIT thresholds ({name:8s}) {w['thresholds']}: cycle {w['cycle_time']:.4g} s, "
                     f"M^pi {w['memory_use']:.6g}, balance {'ok' if w['balance'] else 'FAILS'}"
                     f"{' (strict)' if w['strict'] else ''}, memory {'ok' if w['fits_memory'] else 'EXCEEDS C'}"
                     f"{'' if w['covers_fluid'] else ', M^pi < M*'}")
    nw = rep["nested_wait"]
    if "error" in nw:
        lines.append(f"Nested WAIT: {nw['error']}")
    else:
        lines.append(f"Nested WAIT boundaries {nw['boundaries']}, thresholds {nw['thresholds']} ({nw['rule']}), "
                     f"continuation p {[round(p, 4) for p in nw['continuation']]}")
        lines.append(f"Nested WAIT cycle {nw['cycle_time']:.4g} s, M^pi {nw['memory_use']:.6g}, "
                     f"balance {'ok' if nw['balance'] else 'FAILS'}, ordering {nw['ordering']}, "
                     f"M_req (Theorem 2, T = {nw['horizon']:.4g} s, delta = {nw['delta']}) {nw['required_memory']:.6g}"
                     f" -> {'fits' if nw['fits_memory'] else 'does NOT fit'} in C")
    return "\n".join(lines)


__all__ = ["sim_state", "fluid_report", "format_fluid_report"]
