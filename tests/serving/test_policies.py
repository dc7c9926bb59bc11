"""Behaviour of the policies: the authors' eviction-cascade example, memory never above C,
no request lost, reproducibility, dropped requests, the all-types variant, Nested WAIT's
blindness to output lengths and its memory repair, the fluid limit as an upper bound,
and Theorem 1's throughput gap shrinking like 1 / (zeta T)."""

from __future__ import annotations

import numpy as np
import pytest

from l2o.serving import GPU, NestedWait, RequestType, Wait, fluid, make_policy, poisson_workload, simulate
from l2o.serving.sweep import is_stable
from l2o.serving.workload import workload_from_arrays

POLICIES = ["vllm", "sarathi", "wait", "nested_wait"]


def _toy(start_from_6_3: bool, horizon: int = 300):
    """l = l' = 1, C = 12, four arrivals at every integer time; d0 = 1, d1 = 0 (unit iterations).
    With ``start_from_6_3``: 3 arrivals at t = 0 are prefilled first, then 6 arrive at t = 1, so that a
    greedy mixed batch is [6 prefill, 3 decode] as in the authors' example."""
    if start_from_6_3:
        arr = np.concatenate([[0.0] * 3, [1.0] * 6, np.repeat(np.arange(2, horizon, dtype=float), 4)])
    else:
        arr = np.repeat(np.arange(0, horizon, dtype=float), 4)
    ones = np.ones(arr.size, dtype=np.int64)
    return workload_from_arrays(arr, ones, ones), GPU(d0=1.0, d1=0.0, memory=12, max_batch=100)


def _completions_per_iteration(res, lo=100, hi=250):
    fin = res.finish[~np.isnan(res.finish)]
    return ((fin > lo) & (fin <= hi)).sum() / (hi - lo)


def test_fcfs_eviction_cascade_of_the_authors_example():
    # Sarathi-like FCFS processes the [6, 3] batch, overflows, evicts, and settles in a cycle of
    # [12 prefill] -> 6 evictions -> [6 decode]: 3 completions per iteration instead of 4
    w, gpu = _toy(True)
    res = simulate(w, make_policy("sarathi", watermark=0.0), gpu, drain=False)
    assert res.it_batch[1] == 9 and res.it_memory[1] == 6 * 1 + 3 * 2  # the [6, 3] batch fits exactly
    assert _completions_per_iteration(res) == pytest.approx(3.0)
    assert res.evictions.sum() > 100
    steady = res.it_batch[50:60].tolist()
    assert sorted(set(steady)) == [6, 12] and steady[0::2] != steady[1::2]  # alternating 12 and 6
    # vLLM-like FCFS falls into the same cycle from an empty start
    w0, _ = _toy(False)
    res = simulate(w0, make_policy("vllm", watermark=0.0), gpu, drain=False)
    assert _completions_per_iteration(res) == pytest.approx(3.0)
    # every decode iteration of the cycle evicts 6 prompts: 6 evictions per 2 iterations
    evicted = res.evictions.sum()
    assert evicted == pytest.approx(3 * len(res.it_batch), rel=0.05)


def test_wait_holds_the_balanced_state():
    # the balanced state [4 prefill, 4 decode] uses 4 * 1 + 4 * 2 = 12 = C and completes 4 per iteration
    for start in (True, False):
        w, gpu = _toy(start)
        res = simulate(w, Wait(thresholds=[4]), gpu, drain=False)
        assert _completions_per_iteration(res) == pytest.approx(4.0)
        assert res.evictions.sum() == 0
        assert res.it_memory[10:200].tolist() == [12] * 190
        assert fluid.fluid_memory([1], [1], [4.0], d0=1.0, d1=0.0) == 12.0


def _random_case(seed):
    rng = np.random.default_rng(seed)
    types = [RequestType(int(rng.integers(8, 200)), int(rng.integers(1, 40)), float(rng.uniform(0.5, 3)))
             for _ in range(int(rng.integers(1, 4)))]
    w = poisson_workload(types, 600, seed=seed)
    need = max(t.prefill + t.decode for t in types)
    # tight for the FCFS baselines, yet room for WAIT's smallest full batch (one prompt per stage per type)
    smallest_wait = sum(t.work for t in types)
    memory = int(max(need * rng.uniform(3, 12), smallest_wait * rng.uniform(1.0, 1.3)))
    max_batch = int(max(rng.integers(8, 64), sum(t.decode + 1 for t in types)))
    gpu = GPU(d0=0.02, d1=2e-5, memory=memory, max_batch=max_batch)
    return w, gpu


def _make(name, w, gpu):
    if name == "wait":  # practical thresholds from the batch limit may not fit: use the fluid rule
        return make_policy("wait", rule="fluid")
    return make_policy(name)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("name", POLICIES)
def test_memory_never_exceeds_capacity_and_no_request_is_lost(name, seed):
    w, gpu = _random_case(seed)
    res = simulate(w, _make(name, w, gpu), gpu)
    s = res.summary()
    assert res.it_memory.max() <= gpu.memory
    assert s["completed"] + s["in_system"] + s["dropped"] == s["arrived"] == w.n
    assert s["in_system"] == 0  # drained
    done = ~np.isnan(res.finish)
    assert np.all(res.first_token[done] <= res.finish[done])
    # every completed request spent at least l' + 1 iterations of at least d0 after arriving
    assert np.all(res.finish[done] - res.arrival[done] >= (res.decode[done] + 1) * gpu.d0 - 1e-9)
    # the iterations tile the busy time without overlap
    assert np.all(np.diff(res.it_start) >= res.it_time[:-1] - 1e-9)


@pytest.mark.parametrize("name", POLICIES)
def test_counts_add_up_without_draining(name):
    w = poisson_workload([RequestType(64, 16, 30.0), RequestType(32, 40, 10.0)], 2000, seed=4)
    res = simulate(w, make_policy(name), GPU(d0=0.01, d1=2e-6, memory=6000, max_batch=128), drain=False)
    s = res.summary()
    status = res.status
    assert s["completed"] == (status == "done").sum() and s["in_system"] == (status == "in_system").sum()
    assert s["completed"] + s["in_system"] + s["dropped"] == 2000
    assert s["in_system"] > 0  # stopped at the last arrival with requests in flight
    assert np.all(res.it_start <= res.horizon)


@pytest.mark.parametrize("name", POLICIES)
def test_same_seed_same_records(name):
    w1 = poisson_workload([RequestType(64, 16, 30.0), RequestType(32, 40, 10.0)], 1500, seed=9)
    w2 = poisson_workload([RequestType(64, 16, 30.0), RequestType(32, 40, 10.0)], 1500, seed=9)
    gpu = GPU(d0=0.01, d1=2e-6, memory=5000, max_batch=128)
    a, b = simulate(w1, make_policy(name), gpu), simulate(w2, make_policy(name), gpu)
    for k, v in a.records().items():
        np.testing.assert_array_equal(v, b.records()[k])
    np.testing.assert_array_equal(a.it_memory, b.it_memory)
    c = simulate(poisson_workload([RequestType(64, 16, 30.0), RequestType(32, 40, 10.0)], 1500, seed=10),
                 make_policy(name), gpu)
    assert not np.array_equal(a.finish, c.finish)


@pytest.mark.parametrize("name", POLICIES)
def test_requests_larger_than_the_cache_are_dropped_and_counted(name):
    w = workload_from_arrays(np.arange(6, dtype=float), [10, 500, 10, 10, 300, 10], [5, 5, 5, 5, 250, 5])
    res = simulate(w, make_policy(name, **({"thresholds": [1] * len(w.types)} if name == "wait" else {})),
                   GPU(d0=0.01, d1=1e-4, memory=400, max_batch=16))
    assert res.status.tolist() == ["done", "dropped", "done", "done", "dropped", "done"]
    s = res.summary()
    assert s["dropped"] == 2 and s["completed"] == 4 and s["arrived"] == 6


def test_all_types_variant_waits_for_every_type():
    w = poisson_workload([RequestType(16, 4, 20.0), RequestType(16, 8, 2.0)], 400, seed=1)
    gpu = GPU(d0=0.01, d1=1e-5, memory=10_000, max_batch=200)
    per_type = simulate(w, Wait(thresholds=[2, 2]), gpu, drain=False)
    all_types = simulate(w, Wait(thresholds=[2, 2], all_types=True), gpu, drain=False)
    # authors' rule: a batch forms only when both types have 2 waiting, and both then prefill together
    t0 = set(all_types.first_token[(w.kind == 0) & ~np.isnan(all_types.first_token)].tolist())
    t1 = set(all_types.first_token[(w.kind == 1) & ~np.isnan(all_types.first_token)].tolist())
    assert t0 == t1 and len(t0) > 10
    assert len(all_types.it_time) < len(per_type.it_time)
    # the frequent type waits for the rare one: its latency grows (runs drained to completion)
    a = simulate(w, Wait(thresholds=[2, 2], all_types=True), gpu)
    p = simulate(w, Wait(thresholds=[2, 2]), gpu)
    lat = lambda r: float(np.mean((r.finish - r.arrival)[w.kind == 0]))  # noqa: E731
    assert lat(a) > 2 * lat(p)


def test_nested_wait_does_not_look_at_output_lengths():
    # same arrivals and prompts; output lengths differ but all exceed the first boundary (10): until the
    # first request reaches stage 10, Nested WAIT's batches must be identical
    rng = np.random.default_rng(0)
    arr = np.cumsum(rng.exponential(0.05, size=300))
    pre = rng.integers(5, 50, size=300)
    d1 = rng.integers(11, 30, size=300)
    d2 = rng.integers(11, 60, size=300)
    gpu = GPU(d0=0.02, d1=1e-5, memory=100_000, max_batch=500)
    pol = lambda: NestedWait(boundaries=[10, 30, 60], thresholds=[2, 2, 1])  # noqa: E731
    a = simulate(workload_from_arrays(arr, pre, d1), pol(), gpu)
    b = simulate(workload_from_arrays(arr, pre, d2), pol(), gpu)
    k = 11  # iterations 0..10: nobody has reached stage 11 yet
    assert a.it_memory[:k].tolist() == b.it_memory[:k].tolist()
    assert a.it_tokens[:k].tolist() == b.it_tokens[:k].tolist()


def test_nested_wait_repairs_memory_by_eviction():
    # thresholds that break the ordering condition (n_2 / n_1 = 0.5 = p_2): the boundary queue of
    # segment 2 drifts up, and long prompts (the thresholds' memory uses the mean prefill) fill the cache
    rng = np.random.default_rng(5)
    n = 800
    arr = np.cumsum(rng.exponential(0.02, size=n))
    pre = np.where(rng.random(n) < 0.2, 300, 10)
    dec = rng.choice([5, 20, 40], size=n, p=[0.5, 0.3, 0.2])
    w = workload_from_arrays(arr, pre, dec)
    gpu = GPU(d0=0.01, d1=1e-5, memory=4200, max_batch=500)
    res = simulate(w, NestedWait(boundaries=[5, 20, 40], thresholds=[2, 1, 1]), gpu)
    s = res.summary()
    assert res.it_memory.max() <= gpu.memory
    assert s["evictions"] > 0 and s["completed"] == n


def test_no_policy_beats_the_fluid_stability_limit():
    types = [RequestType(128, 16, 1.0)]
    gpu = GPU(d0=0.02, d1=1e-5, memory=20_000, max_batch=512)
    limit = fluid.stability_limit([128], [16], [1.0], gpu.d0, gpu.d1, gpu.memory)
    base = poisson_workload(types, 4000, seed=0)
    for name in POLICIES:
        over = simulate(base.scaled(1.15 * limit), make_policy(name), gpu)
        assert not is_stable(over), name
    under = simulate(base.scaled(0.9 * limit), make_policy("wait"), gpu)
    assert is_stable(under) and under.summary()["evictions"] == 0


def test_wait_throughput_gap_shrinks_like_one_over_zeta():
    # Theorem 1 (strict balance): in the scaling lambda -> zeta lambda, d -> d / zeta over a fixed
    # horizon T, the throughput gap is O(1 / (zeta T)): the decode tokens still in flight at T, per
    # unit of scaled time, fall like 1 / zeta (measured against the realized arrivals, so that Poisson
    # noise in the offered load does not enter)
    gaps = {}
    for zeta in (1, 16):
        g = []
        for seed in range(3):
            w = poisson_workload([RequestType(8, 4, 10.0 * zeta)], 1000 * zeta, seed=seed)
            gpu = GPU(d0=0.02 / zeta, d1=1e-4 / zeta, memory=1000, max_batch=100)
            res = simulate(w, Wait(thresholds=[1]), gpu, drain=False)
            t_end = res.horizon
            g.append((res.decode.sum() - res.decode[res.finish <= t_end].sum()) / (zeta * t_end))
        gaps[zeta] = float(np.mean(g))
    assert fluid.wait_conditions([1], [8], [4], [10.0], 0.02, 1e-4, 1000).strict
    assert gaps[16] < gaps[1] / 8  # 1 / zeta = 1/16; the square-root rate would give 1/4
    assert gaps[16] / 40.0 < 1e-3  # relative to throughput* = 40 decode tokens per unit time


def test_wait_rejects_thresholds_that_cannot_fit():
    w = poisson_workload([RequestType(512, 20, 5.0)], 10, seed=0)
    with pytest.raises(ValueError, match="M\\^pi = 131544"):
        simulate(w, Wait(thresholds=[12]), GPU(memory=100_000, max_batch=512))
    with pytest.raises(ValueError, match="max_batch 100"):
        simulate(w, Wait(thresholds=[5]), GPU(memory=137_000, max_batch=100))
    with pytest.raises(ValueError, match="one per request type"):
        simulate(w, Wait(thresholds=[1, 1]), GPU())
    with pytest.raises(ValueError, match="rule"):
        Wait(rule="magic")
    with pytest.raises(ValueError, match="boundaries end at 10"):
        simulate(w, NestedWait(boundaries=[10]), GPU())
