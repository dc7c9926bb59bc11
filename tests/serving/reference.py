"""A textbook reference of the serving model, for tests only.

Every request carries its own stage; queues are plain lists; the memory in use and the
tokens touched are recomputed from scratch at every iteration by summing over requests.
It is slow (O(requests) per iteration) and shares no code with ``l2o.serving``; the
fast engine must make exactly the same decisions.

Stage s of a request: 0 = waiting for prefill, s >= 1 = its s-th decode is next. A
resident request at stage s >= 1 holds l + s - 1 KV tokens; processing stage s touches
l + s (a prefill touches l); a request in (chunked) prefill holds its l tokens.
"""

from __future__ import annotations

import math

import numpy as np


class Req:
    def __init__(self, i, arrival, l, d, kind):
        self.i, self.arrival, self.l, self.d, self.kind = i, arrival, l, d, kind
        self.stage = 0
        self.done_prefill = 0
        self.first = math.nan
        self.finish = math.nan
        self.evictions = 0


def _records(reqs, iters):
    return {
        "first_token": np.array([r.first for r in reqs]),
        "finish": np.array([r.finish for r in reqs]),
        "evictions": np.array([r.evictions for r in reqs]),
        "it_memory": np.array([m for m, _ in iters], dtype=np.int64),
        "it_tokens": np.array([k for _, k in iters], dtype=np.int64),
    }


def _held(resident):
    return sum(r.l + r.stage - 1 for r in resident)


def _make(arrival, prefill, decode, kind):
    return [Req(i, float(a), int(p), int(d), int(k)) for i, (a, p, d, k) in
            enumerate(zip(arrival, prefill, decode, kind))]


def reference_fcfs(arrival, prefill, decode, *, d0, d1, memory, max_batch, watermark=0.01, variant="vllm",
                   max_tokens=4096, chunk=512, d2=0.0):
    """vLLM-like (``variant="vllm"``) or Sarathi-like FCFS with LIFO eviction."""
    reqs = _make(arrival, prefill, decode, np.zeros(len(arrival)))
    limit = memory - watermark * memory
    queue, running, partial = [], [], []
    nxt = 0
    t = reqs[0].arrival
    iters = []
    while True:
        while nxt < len(reqs) and reqs[nxt].arrival <= t:
            queue.append(reqs[nxt])
            nxt += 1
        if variant == "vllm":
            batch, mem, maxl = [], _held(running), 0
            for r in queue:
                if len(running) + len(batch) >= max_batch:
                    break
                if (running or batch) and mem + r.l > limit:
                    break
                if batch and (len(batch) + 1) * max(maxl, r.l) > max_tokens:
                    break
                batch.append(r)
                mem += r.l
                maxl = max(maxl, r.l)
            if batch:
                queue = queue[len(batch):]
                tokens = sum(r.l for r in batch)
                iters.append((mem, tokens))
                t += d0 + d1 * tokens + d2 * tokens
                for r in batch:
                    r.stage = 1
                    if math.isnan(r.first):
                        r.first = t
                    running.append(r)
                continue
            if not running:
                if nxt >= len(reqs):
                    break
                t = reqs[nxt].arrival
                continue
            victims = []
            while _held(running) + len(running) > memory:
                v = running.pop()
                v.stage = 0
                v.evictions += 1
                victims.insert(0, v)
            queue = victims + queue
            tokens = sum(r.l + r.stage for r in running)
            iters.append((tokens, tokens))
            t += d0 + d1 * tokens
            still = []
            for r in running:
                if r.stage == r.d:
                    r.finish = t
                else:
                    r.stage += 1
                    still.append(r)
            running = still
        else:  # sarathi
            if running:
                victims = []
                while _held(running) + len(running) + sum(r.l for r in partial) > memory:
                    v = running.pop()
                    v.stage = 0
                    v.evictions += 1
                    victims.insert(0, v)
                queue = victims + queue
            budget = chunk - len(running)
            chunks = []
            for r in partial:
                if budget <= 0:
                    break
                c = min(r.l - r.done_prefill, budget)
                chunks.append((r, c))
                budget -= c
            mem = _held(running) + len(running) + sum(r.l for r in partial)
            while budget > 0 and queue:
                r = queue[0]
                if len(running) + len(partial) >= max_batch:
                    break
                if (running or partial) and mem + r.l > limit:
                    break
                queue.pop(0)
                r.done_prefill = 0
                partial.append(r)
                mem += r.l
                c = min(r.l, budget)
                chunks.append((r, c))
                budget -= c
            if not running and not chunks:
                if nxt >= len(reqs):
                    break
                t = reqs[nxt].arrival
                continue
            tokens = sum(r.l + r.stage for r in running) + sum(r.done_prefill + c for r, c in chunks)
            iters.append((mem, tokens))
            t += d0 + d1 * tokens + d2 * sum(c for _, c in chunks)
            still = []
            for r in running:
                if r.stage == r.d:
                    r.finish = t
                else:
                    r.stage += 1
                    still.append(r)
            running = still
            for r, c in chunks:
                r.done_prefill += c
            keep = []
            for r in partial:
                if r.done_prefill >= r.l:
                    r.stage = 1
                    if math.isnan(r.first):
                        r.first = t
                    running.append(r)
                else:
                    keep.append(r)
            partial = keep
    return _records(reqs, iters)


def reference_wait(arrival, prefill, decode, kind, thresholds, *, d0, d1, drain=True, all_types=False, d2=0.0):
    """WAIT, Algorithm 1: queues per (type, stage); eligible types take min(n_j, |Q_js|)
    from every stage."""
    reqs = _make(arrival, prefill, decode, kind)
    m = len(thresholds)
    dmax = {j: max([r.d for r in reqs if r.kind == j], default=0) for j in range(m)}
    Q = {(j, s): [] for j in range(m) for s in range(dmax[j] + 1)}
    types_present = sorted({r.kind for r in reqs})
    nxt, t, iters = 0, reqs[0].arrival, []
    while True:
        while nxt < len(reqs) and reqs[nxt].arrival <= t:
            Q[(reqs[nxt].kind, 0)].append(reqs[nxt])
            nxt += 1
        if not drain and t > reqs[-1].arrival:
            break  # no iteration starts after the last arrival
        draining = drain and nxt == len(reqs)
        if draining:
            elig = [j for j in types_present if any(Q[(j, s)] for s in range(dmax[j] + 1))]
        else:
            elig = [j for j in types_present if len(Q[(j, 0)]) >= thresholds[j]]
            if all_types and len(elig) < len(types_present):
                elig = []
        if not elig:
            if nxt >= len(reqs):
                break
            t = reqs[nxt].arrival
            continue
        batch = []
        for j in elig:
            for s in range(dmax[j] + 1):
                k = min(thresholds[j], len(Q[(j, s)]))
                batch += [(r, s) for r in Q[(j, s)][:k]]
                Q[(j, s)] = Q[(j, s)][k:]
        resident = [r for (j, s), q in Q.items() if s >= 1 for r in q]
        mem = _held(resident) + sum(r.l + s for r, s in batch)
        tokens = sum(r.l + s for r, s in batch)
        iters.append((mem, tokens))
        t += d0 + d1 * tokens + d2 * sum(r.l for r, s in batch if s == 0)
        moved = []
        for r, s in batch:
            if s == 0:
                r.first = t
            if s == r.d:
                r.finish = t
            else:
                r.stage = s + 1
                moved.append(r)
        for r in moved:
            Q[(r.kind, r.stage)].append(r)
    return _records(reqs, iters)


def reference_nested(arrival, prefill, decode, boundaries, thresholds, *, d0, d1, drain=True, d2=0.0):
    """Nested WAIT, Algorithm 2 (without memory repair): stage queues; segment k covers
    stages e_k..b_k (e_1 = 0, e_k = b_{k-1} + 1); the largest prefix of segments whose
    entry queues meet their thresholds takes min(n_k, |Q_s|) from each of its stages."""
    reqs = _make(arrival, prefill, decode, np.zeros(len(arrival)))
    K = len(boundaries)
    e = [0] + [boundaries[k - 1] + 1 for k in range(1, K)]
    Q = {s: [] for s in range(boundaries[-1] + 2)}
    nxt, t, iters = 0, reqs[0].arrival, []
    while True:
        while nxt < len(reqs) and reqs[nxt].arrival <= t:
            Q[0].append(reqs[nxt])
            nxt += 1
        if not drain and t > reqs[-1].arrival:
            break  # no iteration starts after the last arrival
        if drain and nxt == len(reqs):
            active = [k for k in range(K) if any(Q[s] for s in range(e[k], boundaries[k] + 1))]
        else:
            active = []
            for k in range(K):
                if len(Q[e[k]]) >= thresholds[k]:
                    active.append(k)
                else:
                    break
        if not active:
            if nxt >= len(reqs):
                break
            t = reqs[nxt].arrival
            continue
        batch = []
        for k in active:
            for s in range(e[k], boundaries[k] + 1):
                n = min(thresholds[k], len(Q[s]))
                batch += [(r, s) for r in Q[s][:n]]
                Q[s] = Q[s][n:]
        resident = [r for s, q in Q.items() if s >= 1 for r in q]
        mem = _held(resident) + sum(r.l + s for r, s in batch)
        tokens = sum(r.l + s for r, s in batch)
        iters.append((mem, tokens))
        t += d0 + d1 * tokens + d2 * sum(r.l for r, s in batch if s == 0)
        moved = []
        for r, s in batch:
            if s == 0 and math.isnan(r.first):
                r.first = t
            if s == r.d:
                r.finish = t
            else:
                r.stage = s + 1
                moved.append(r)
        for r in moved:
            Q[r.stage].append(r)
    return _records(reqs, iters)
