"""A discrete-event simulator of one GPU serving LLM requests under a KV-cache limit.

Model (Ao, Luo, Simchi-Levi, Wang, arXiv 2504.11320, Section 2). A request with ``l``
prefill and ``l'`` decode tokens needs one prefill iteration (stage 0) and then decode
stages s = 1..l' (one output token each). An iteration processes a batch; its time is

    tau = d0 + d1 * (KV tokens read and written by the batch) [+ d2 * (prompt tokens prefilled)]

where a prefill touches l tokens, decode stage s touches l + s (it reads l + s - 1 and
writes one), and a prefill chunk of c tokens after p done touches p + c. The optional
``d2`` term (0 in the paper's model) charges the prompt tokens a batch prefills, for
hardware where prefill is compute-bound. KV memory: a resident request at stage s >= 1
holds l + s - 1 tokens and needs one more while its stage is processed; a request in
prefill holds its l tokens. The memory in use during an iteration (the peak: it only
grows inside an iteration) must stay <= C; the engine checks this for every batch. A
request with l + l' > C can never finish: it is dropped at arrival and counted (status
``dropped``), never silently lost.

The engine is a plain event loop, not a discrete-event library: the only events are
"the GPU finished an iteration" and "the arrival that lets an idle policy act", and
arrivals need no events of their own (they are a sorted array; the number arrived by
time t is a binary search). A policy (``l2o.serving.policy.Policy``) decides each batch
from aggregate counters, so the cost is a few microseconds per iteration and per
request: a million requests take seconds (``benchmarks/bench_serving.py``), where a
general library (SimPy) would pay a generator switch per request and stage.

Time to first token (TTFT) is the end of the request's first prefill iteration;
latency is completion minus arrival; throughput counts the decode tokens of requests
that completed by the last arrival time T, divided by T (the paper's effective
throughput over [0, T]: tokens of evicted attempts do not count).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np

from l2o.serving.base import Policy, SimState
from l2o.serving.workload import Workload

STATUS_DONE, STATUS_IN_SYSTEM, STATUS_DROPPED = "done", "in_system", "dropped"


@dataclasses.dataclass(frozen=True)
class GPU:
    """One GPU: iteration time ``d0 + d1 * tokens + d2 * prefill`` (seconds; ``d1`` per
    KV token read or written, ``d2`` per prompt token prefilled, 0 in the paper's model),
    KV-cache capacity ``memory`` C (tokens) and ``max_batch``, the batch-size limit B
    (requests resident at once for vLLM/Sarathi; WAIT's practical thresholds fill about
    B per batch).

    >>> round(GPU(d0=0.03, d1=1.2e-5, memory=137_000, max_batch=256).iteration_time(1000), 6)
    0.042
    """

    d0: float = 0.03
    d1: float = 1.2e-5
    memory: int = 137_000
    max_batch: int = 256
    d2: float = 0.0

    def __post_init__(self) -> None:
        for name in ("d0", "d1", "d2"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} is {v!r}; expected a finite number >= 0 (seconds)")
        if self.d0 == 0 and self.d1 == 0:
            raise ValueError("d0 and d1 are both 0; expected an iteration time > 0")
        for name in ("memory", "max_batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} is {v!r}; expected an integer >= 1")

    def iteration_time(self, tokens: float, prefill: float = 0) -> float:
        """tau = d0 + d1 * tokens + d2 * prefill (seconds)."""
        return self.d0 + self.d1 * tokens + self.d2 * prefill


@dataclasses.dataclass
class SimulationResult:
    """Records of one simulation (every array indexed by request, in arrival order).

    Requests: ``arrival``, ``prefill``, ``decode``, ``kind`` (type index),
    ``first_token`` and ``finish`` (seconds, NaN if never), ``evictions`` (restarts),
    ``status`` ("done", "in_system" at the end, "dropped": larger than the KV cache).
    Iterations: ``it_start``, ``it_time`` (seconds), ``it_memory`` (KV tokens in use
    during the iteration), ``it_tokens`` (KV tokens touched), ``it_batch`` (requests).

    >>> from l2o.serving import RequestType, make_policy, poisson_workload
    >>> r = simulate(poisson_workload([RequestType(8, 4, 5.0)], 30), make_policy("sarathi"), GPU(memory=200))
    >>> r.status.tolist().count("done"), sorted(r.records())[:3]
    (30, ['arrival', 'decode', 'evictions'])
    """

    policy: str
    gpu: GPU
    arrival: np.ndarray
    prefill: np.ndarray
    decode: np.ndarray
    kind: np.ndarray
    first_token: np.ndarray
    finish: np.ndarray
    evictions: np.ndarray
    dropped: np.ndarray
    it_start: np.ndarray
    it_time: np.ndarray
    it_memory: np.ndarray
    it_tokens: np.ndarray
    it_batch: np.ndarray
    end_time: float
    wall_seconds: float
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of requests (arrived over the run, dropped ones included)."""
        return int(self.arrival.shape[0])

    @property
    def status(self) -> np.ndarray:
        """Per request: "done", "in_system" or "dropped" (shape (N,), dtype object)."""
        s = np.full(self.n, STATUS_IN_SYSTEM, dtype=object)
        s[~np.isnan(self.finish)] = STATUS_DONE
        s[self.dropped] = STATUS_DROPPED
        return s

    @property
    def horizon(self) -> float:
        """T: the last arrival time (throughput is measured over [0, T])."""
        return float(self.arrival[-1]) if self.n else 0.0

    def summary(self) -> dict[str, Any]:
        """Aggregate metrics: counts (arrived = completed + in_system + dropped),
        throughput (decode tokens per second of requests completed by T), latency and
        TTFT (mean, p50, p90, p99 over completed requests, seconds), evictions (total
        restarts; ``eviction_rate`` = restarts per admitted request), memory (max and
        time-weighted mean over iterations, KV tokens), iterations and wall seconds.
        """
        done = ~np.isnan(self.finish)
        lat = self.finish[done] - self.arrival[done]
        has_ft = ~np.isnan(self.first_token)
        ttft = self.first_token[has_ft] - self.arrival[has_ft]
        t_end = self.horizon
        by_t = done & (self.finish <= t_end)
        tput = float(self.decode[by_t].sum()) / t_end if t_end > 0 else math.nan
        busy = float(self.it_time.sum())
        admitted = int((~self.dropped).sum())

        def q(x: np.ndarray, p: float) -> float:
            return float(np.percentile(x, p)) if x.size else math.nan

        return {
            "policy": self.policy,
            "arrived": self.n,
            "completed": int(done.sum()),
            "in_system": int(self.n - done.sum() - self.dropped.sum()),
            "dropped": int(self.dropped.sum()),
            "throughput": tput,
            "latency_mean": float(lat.mean()) if lat.size else math.nan,
            "latency_p50": q(lat, 50), "latency_p90": q(lat, 90), "latency_p99": q(lat, 99),
            "ttft_mean": float(ttft.mean()) if ttft.size else math.nan,
            "ttft_p50": q(ttft, 50), "ttft_p90": q(ttft, 90), "ttft_p99": q(ttft, 99),
            "evictions": int(self.evictions.sum()),
            "eviction_rate": float(self.evictions.sum()) / admitted if admitted else 0.0,
            "evicted_requests": int((self.evictions > 0).sum()),
            "max_memory": int(self.it_memory.max()) if self.it_memory.size else 0,
            "mean_memory": float(np.sum(self.it_memory * self.it_time) / busy) if busy > 0 else 0.0,
            "memory_cap": self.gpu.memory,
            "iterations": int(self.it_time.size),
            "mean_batch": float(self.it_batch.mean()) if self.it_batch.size else 0.0,
            "horizon": t_end,
            "end_time": self.end_time,
            "wall_seconds": self.wall_seconds,
            **{k: v for k, v in self.info.items() if isinstance(v, (int, float, str, bool))},
        }

    def window(self, start: float = 0.5, stop: float = 1.0) -> dict[str, float]:
        """Steady-state statistics over the arrival-time window [start T, stop T]:
        ``offered`` (arrivals per second), ``completion_rate`` (completions per second in
        the window), their ratio ``tracking``, ``throughput`` (decode tokens of the
        requests completed in the window, per second) and the mean latency of the requests
        that arrived in the window (NaN if some never completed).

        >>> from l2o.serving.workload import RequestType, poisson_workload
        >>> from l2o.serving.policy import make_policy
        >>> r = simulate(poisson_workload([RequestType(8, 4, 5.0)], 400, seed=0), make_policy("vllm"),
        ...              GPU(d0=0.01, d1=1e-4, memory=1000, max_batch=32))
        >>> 0.9 < r.window()["tracking"] < 1.1
        True
        """
        t_end = self.horizon
        a, b = start * t_end, stop * t_end
        if b <= a:
            raise ValueError(f"window [{start}, {stop}] is empty; expected 0 <= start < stop <= 1")
        arrived = (self.arrival >= a) & (self.arrival <= b) & ~self.dropped
        in_window = (self.finish >= a) & (self.finish <= b)  # NaN compares False
        completions = int(in_window.sum())
        offered = int(arrived.sum())
        lat = self.finish[arrived] - self.arrival[arrived]
        return {
            "offered": offered / (b - a),
            "completion_rate": completions / (b - a),
            "tracking": completions / offered if offered else math.nan,
            "throughput": float(self.decode[in_window].sum()) / (b - a),
            "latency_mean": float(lat.mean()) if lat.size and not np.isnan(lat).any() else math.nan,
        }

    def records(self) -> dict[str, np.ndarray]:
        """The per-request records as a tidy table: columns of shape (N,)."""
        return {
            "id": np.arange(self.n), "type": self.kind, "arrival": self.arrival, "prefill": self.prefill,
            "decode": self.decode, "first_token": self.first_token, "finish": self.finish,
            "latency": self.finish - self.arrival, "ttft": self.first_token - self.arrival,
            "evictions": self.evictions, "status": self.status,
        }

    def iterations(self) -> dict[str, np.ndarray]:
        """The per-iteration records: start, time, memory, tokens, batch (shape (I,))."""
        return {"start": self.it_start, "time": self.it_time, "memory": self.it_memory,
                "tokens": self.it_tokens, "batch": self.it_batch}


def simulate(workload: Workload, policy: Policy, gpu: GPU, *, drain: bool = True,
             max_iterations: int | None = None) -> SimulationResult:
    """Simulate ``policy`` serving ``workload`` on ``gpu``.

    ``drain=True`` runs until every admitted request completes (WAIT and Nested WAIT
    then lower their thresholds to 1 once the last request has arrived); ``drain=False``
    starts no iteration after the last arrival, so requests still in flight stay
    ``in_system``. ``max_iterations`` stops a run early (for bounded tests).

    >>> from l2o.serving.workload import RequestType, poisson_workload
    >>> from l2o.serving.policy import make_policy
    >>> w = poisson_workload([RequestType(prefill=64, decode=8, rate=10.0)], 200, seed=0)
    >>> r = simulate(w, make_policy("sarathi"), GPU(d0=0.01, d1=1e-5, memory=4096, max_batch=64))
    >>> s = r.summary()
    >>> s["completed"] + s["in_system"] + s["dropped"] == s["arrived"] == 200, s["max_memory"] <= 4096
    (True, True)
    """
    if not isinstance(policy, Policy):
        raise ValueError(f"policy is {type(policy).__name__}; expected an l2o.serving Policy (make_policy(name))")
    wall0 = time.perf_counter()
    n_all = workload.n
    dropped = (workload.prefill + workload.decode) > gpu.memory
    keep = np.flatnonzero(~dropped)
    arrival = np.ascontiguousarray(workload.arrival[keep])
    state = SimState(
        arrival=arrival,
        prefill=np.ascontiguousarray(workload.prefill[keep]),
        decode=np.ascontiguousarray(workload.decode[keep]),
        kind=np.ascontiguousarray(workload.kind[keep]),
        types=workload.types,
        memory=int(gpu.memory),
        max_batch=int(gpu.max_batch),
        d0=float(gpu.d0), d1=float(gpu.d1), d2=float(gpu.d2),
        drain=bool(drain),
        first_token=np.full(keep.size, np.nan),
        finish=np.full(keep.size, np.nan),
        evictions=np.zeros(keep.size, dtype=np.int64),
    )
    policy.start(state)
    m = keep.size
    starts: list[float] = []
    times: list[float] = []
    mems: list[int] = []
    toks: list[int] = []
    batches: list[int] = []
    d0, d1, d2, cap = gpu.d0, gpu.d1, gpu.d2, gpu.memory
    t = float(arrival[0]) if m else 0.0
    t_last = float(arrival[-1]) if m else 0.0
    n_arr = 0
    searchsorted = np.searchsorted
    limit = math.inf if max_iterations is None else max_iterations
    while m and len(times) < limit:
        if n_arr < m:
            n_arr = int(searchsorted(arrival, t, side="right"))
        if not drain and t > t_last:
            break
        batch = policy.schedule(t, n_arr)
        if batch is None:
            nxt = policy.wake(t, n_arr)
            if nxt is None:
                break
            if not nxt > t:
                raise RuntimeError(f"policy {policy.name!r} asked to wake at {nxt} <= now {t} without acting")
            if not drain and nxt > t_last:
                break
            t = nxt
            continue
        tokens, mem, size, computed = batch
        if mem > cap:
            raise RuntimeError(f"policy {policy.name!r} formed a batch using {mem} KV tokens > memory {cap}")
        tau = d0 + d1 * tokens + d2 * computed
        starts.append(t)
        times.append(tau)
        mems.append(mem)
        toks.append(tokens)
        batches.append(size)
        t += tau
        policy.finish(t)
    first = np.full(n_all, np.nan)
    fin = np.full(n_all, np.nan)
    ev = np.zeros(n_all, dtype=np.int64)
    first[keep] = state.first_token
    fin[keep] = state.finish
    ev[keep] = state.evictions
    return SimulationResult(
        policy=policy.name, gpu=gpu, arrival=workload.arrival, prefill=workload.prefill, decode=workload.decode,
        kind=workload.kind, first_token=first, finish=fin, evictions=ev, dropped=dropped,
        it_start=np.asarray(starts, dtype=np.float64), it_time=np.asarray(times, dtype=np.float64),
        it_memory=np.asarray(mems, dtype=np.int64), it_tokens=np.asarray(toks, dtype=np.int64),
        it_batch=np.asarray(batches, dtype=np.int64), end_time=t, wall_seconds=time.perf_counter() - wall0,
        info=dict(policy.info()),
    )


__all__ = ["GPU", "SimulationResult", "simulate", "STATUS_DONE", "STATUS_IN_SYSTEM", "STATUS_DROPPED"]
