"""Arrival-rate sweeps and the stability transition lambda*.

The paper (arXiv 2504.11320, 2026 revision, Section 6) plots mean latency against the
arrival rate and marks lambda*, "the largest reported rate at which latency remains
controlled and effective completion rate still tracks the offered load". Here a run is
*stable* when, over the second half of the arrivals ([T/2, T], after the transient),
completions keep up with arrivals: completions per second >= ``tracking`` (0.97) x
arrivals per second. lambda* is the largest swept rate such that it and every smaller
swept rate are stable. Each rate simulates the same random numbers with arrival times
divided by the rate scale (``Workload.scaled``), so that policies and rates are compared
on like workloads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from l2o.serving.base import Policy
from l2o.serving.simulator import GPU, SimulationResult, simulate
from l2o.serving.workload import Workload

#: Default stability criterion: completions keep up with >= 97% of arrivals in [T/2, T].
TRACKING = 0.97


def is_stable(result: SimulationResult, tracking: float = TRACKING) -> bool:
    """Completions per second over the second half of the arrivals are at least
    ``tracking`` times the arrivals per second there (see the module docstring).

    >>> from l2o.serving import RequestType, make_policy, poisson_workload
    >>> w = poisson_workload([RequestType(8, 4, 1.0)], 300)
    >>> gpu = GPU(d0=0.01, d1=1e-4, memory=500, max_batch=32)
    >>> is_stable(simulate(w.scaled(5.0), make_policy("vllm"), gpu)), is_stable(simulate(w.scaled(500.0),
    ...     make_policy("vllm"), gpu))
    (True, False)
    """
    w = result.window(0.5, 1.0)
    return bool(w["tracking"] >= tracking)


def transition(rates: Sequence[float], stable: Sequence[bool]) -> float:
    """lambda*: the largest rate r such that every swept rate <= r is stable (NaN if the
    smallest is not).

    >>> transition([10, 12, 14, 16], [True, True, False, True])
    12
    """
    best = math.nan
    for r, ok in sorted(zip(rates, stable)):
        if not ok:
            break
        best = r
    return best


def rate_sweep(workload: Workload, policies: dict[str, Callable[[], Policy]], gpu: GPU, rates: Sequence[float],
               *, drain: bool = True, tracking: float = TRACKING, replications: int = 1,
               reseed: Callable[[int], Workload] | None = None) -> dict[str, Any]:
    """Simulate every policy at every total arrival rate in ``rates`` (requests per
    second; the workload is rescaled to each) and find each policy's lambda*.

    ``policies`` maps names to factories (a fresh policy per run). With
    ``replications`` > 1, ``reseed(k)`` gives the k-th workload (k = 0.. replications-1)
    and the metrics are averaged; a rate is stable if the mean tracking ratio is.
    Returns ``{"rows": [...], "transition": {policy: lambda*}}``; a row has the policy,
    the rate, the window statistics and the run summary's main metrics.

    >>> from l2o.serving.workload import RequestType, poisson_workload
    >>> from l2o.serving.policy import make_policy
    >>> w = poisson_workload([RequestType(16, 4, 1.0)], 300, seed=0)
    >>> out = rate_sweep(w, {"vllm": lambda: make_policy("vllm")}, GPU(d0=0.01, d1=1e-4, memory=500, max_batch=32),
    ...                  [5.0, 500.0])
    >>> [r["stable"] for r in out["rows"]], out["transition"]["vllm"]
    ([True, False], 5.0)
    """
    if not rates:
        raise ValueError("rates is empty; expected at least one arrival rate")
    if any(not (isinstance(r, (int, float)) and math.isfinite(r) and r > 0) for r in rates):
        raise ValueError(f"rates {list(rates)!r}: expected positive numbers (requests per second)")
    if replications < 1:
        raise ValueError(f"replications is {replications!r}; expected >= 1")
    if replications > 1 and reseed is None:
        raise ValueError("replications > 1 needs reseed (a function k -> workload)")
    bases = [workload] if replications == 1 else [reseed(k) for k in range(replications)]  # type: ignore[misc]
    rows: list[dict[str, Any]] = []
    for name, factory in policies.items():
        for rate in sorted(rates):
            acc: dict[str, float] = {}
            for base in bases:
                res = simulate(base.scaled(rate / base.total_rate), factory(), gpu, drain=drain)
                s = res.summary()
                w = res.window(0.5, 1.0)
                vals = {"tracking": w["tracking"], "window_latency": w["latency_mean"],
                        "completion_rate": w["completion_rate"], "offered": w["offered"],
                        "throughput": s["throughput"], "latency_mean": s["latency_mean"],
                        "latency_p99": s["latency_p99"], "ttft_mean": s["ttft_mean"],
                        "eviction_rate": s["eviction_rate"], "max_memory": s["max_memory"],
                        "wall_seconds": s["wall_seconds"]}
                for k, v in vals.items():
                    acc[k] = acc.get(k, 0.0) + float(v) / len(bases)
            rows.append({"policy": name, "rate": float(rate), "stable": bool(acc["tracking"] >= tracking), **acc})
    trans = {name: transition([r["rate"] for r in rows if r["policy"] == name],
                              [r["stable"] for r in rows if r["policy"] == name]) for name in policies}
    return {"rows": rows, "transition": trans, "tracking": tracking}


__all__ = ["TRACKING", "is_stable", "transition", "rate_sweep"]
