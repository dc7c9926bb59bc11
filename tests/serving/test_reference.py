"""The fast engine against the textbook reference (tests/serving/reference.py): the same
decisions, so the same first-token times, completion times, evictions, and the same
memory and tokens at every iteration, on random small workloads chosen to exercise
evictions, chunking, padding limits, thresholds and draining."""

from __future__ import annotations

import numpy as np
import pytest

from l2o.serving import GPU, VLLM, NestedWait, Sarathi, Wait, poisson_workload, simulate
from l2o.serving.workload import RequestType, workload_from_arrays

from .reference import reference_fcfs, reference_nested, reference_wait


def _workload(seed, types, n):
    return poisson_workload(types, n, seed=seed)


def _assert_same(res, ref):
    np.testing.assert_array_equal(res.it_memory, ref["it_memory"])
    np.testing.assert_array_equal(res.it_tokens, ref["it_tokens"])
    np.testing.assert_array_equal(res.evictions, ref["evictions"])
    np.testing.assert_allclose(res.first_token, ref["first_token"], rtol=0, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(res.finish, ref["finish"], rtol=0, atol=1e-9, equal_nan=True)


@pytest.mark.parametrize("seed", range(5))
def test_vllm_matches_reference(seed):
    rng = np.random.default_rng(seed)
    types = [RequestType(int(rng.integers(4, 40)), int(rng.integers(1, 12)), float(rng.uniform(1, 6)))
             for _ in range(2)]
    w = _workload(seed, types, 150)
    memory = int(rng.integers(120, 400))
    gpu = GPU(d0=0.05, d1=1e-3, memory=memory, max_batch=int(rng.integers(4, 40)))
    kw = dict(watermark=float(rng.choice([0.0, 0.01, 0.05])), max_tokens=int(rng.integers(40, 200)))
    keep = w.prefill + w.decode <= memory
    res = simulate(w, VLLM(**kw), gpu)
    ref = reference_fcfs(w.arrival[keep], w.prefill[keep], w.decode[keep], d0=0.05, d1=1e-3, memory=memory,
                         max_batch=gpu.max_batch, variant="vllm", **kw)
    res_kept = _subset(res, keep)
    _assert_same(res_kept, ref)
    assert res.evictions.sum() > 0  # the tight caches do evict


@pytest.mark.parametrize("seed", range(5))
def test_sarathi_matches_reference(seed):
    rng = np.random.default_rng(100 + seed)
    types = [RequestType(int(rng.integers(4, 60)), int(rng.integers(1, 12)), float(rng.uniform(1, 6)))
             for _ in range(2)]
    w = _workload(seed, types, 150)
    memory = int(rng.integers(150, 500))
    gpu = GPU(d0=0.05, d1=1e-3, memory=memory, max_batch=int(rng.integers(4, 40)), d2=float(rng.choice([0, 1e-3])))
    kw = dict(watermark=float(rng.choice([0.0, 0.01])), chunk=int(rng.integers(8, 64)))
    keep = w.prefill + w.decode <= memory
    res = simulate(w, Sarathi(**kw), gpu)
    ref = reference_fcfs(w.arrival[keep], w.prefill[keep], w.decode[keep], d0=0.05, d1=1e-3, memory=memory,
                         max_batch=gpu.max_batch, variant="sarathi", d2=gpu.d2, **kw)
    _assert_same(_subset(res, keep), ref)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("all_types", [False, True])
def test_wait_matches_reference(seed, all_types):
    rng = np.random.default_rng(200 + seed)
    types = [RequestType(int(rng.integers(2, 30)), int(rng.integers(1, 9)), float(rng.uniform(1, 6)))
             for _ in range(3)]
    w = _workload(seed, types, 200)
    n = [int(x) for x in rng.integers(1, 4, size=3)]
    gpu = GPU(d0=0.05, d1=1e-3, memory=100_000, max_batch=1000, d2=float(rng.choice([0, 1e-3])))
    for drain in (True, False):
        res = simulate(w, Wait(thresholds=n, all_types=all_types), gpu, drain=drain)
        ref = reference_wait(w.arrival, w.prefill, w.decode, w.kind, n, d0=0.05, d1=1e-3, drain=drain,
                             all_types=all_types, d2=gpu.d2)
        _assert_same(res, ref)


@pytest.mark.parametrize("seed", range(4))
def test_nested_wait_matches_reference(seed):
    rng = np.random.default_rng(300 + seed)
    decodes = sorted(rng.choice(np.arange(1, 15), size=3, replace=False).tolist())
    types = [RequestType(int(rng.integers(2, 30)), int(d), float(rng.uniform(1, 6))) for d in decodes]
    w = _workload(seed, types, 200)
    bounds = [int(b) for b in decodes]
    n = sorted((int(x) for x in rng.integers(1, 5, size=3)), reverse=True)
    gpu = GPU(d0=0.05, d1=1e-3, memory=100_000, max_batch=1000, d2=float(rng.choice([0, 1e-3])))
    for drain in (True, False):
        res = simulate(w, NestedWait(boundaries=bounds, thresholds=n), gpu, drain=drain)
        ref = reference_nested(w.arrival, w.prefill, w.decode, bounds, n, d0=0.05, d1=1e-3, drain=drain, d2=gpu.d2)
        _assert_same(res, ref)


@pytest.mark.parametrize("variant", ["vllm", "sarathi"])
def test_fcfs_eviction_cascade_matches_reference(variant):
    # the authors' example (l = l' = 1, C = 12, four arrivals per unit-time iteration), started from
    # [6 prefill, 3 decode]: thousands of evictions, decided identically by both implementations
    arr = np.concatenate([[0.0] * 3, [1.0] * 6, np.repeat(np.arange(2, 120, dtype=float), 4)])
    ones = np.ones(arr.size, dtype=np.int64)
    w = workload_from_arrays(arr, ones, ones)
    pol = VLLM(watermark=0.0) if variant == "vllm" else Sarathi(watermark=0.0)
    res = simulate(w, pol, GPU(d0=1.0, d1=0.0, memory=12, max_batch=100))
    ref = reference_fcfs(arr, ones, ones, d0=1.0, d1=0.0, memory=12, max_batch=100, watermark=0.0, variant=variant)
    _assert_same(res, ref)
    assert res.evictions.sum() > 100


def _subset(res, keep):
    """The result restricted to the requests that fit (the reference never sees the others)."""
    class R:
        pass
    r = R()
    r.it_memory, r.it_tokens = res.it_memory, res.it_tokens
    r.evictions, r.first_token, r.finish = res.evictions[keep], res.first_token[keep], res.finish[keep]
    return r
