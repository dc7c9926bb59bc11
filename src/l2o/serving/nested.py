"""Nested WAIT: WAIT for unknown output lengths (Ao, Luo, Simchi-Levi, Wang,
arXiv 2504.11320, Algorithm 2 and its full event-driven version).

The decode horizon is cut at boundaries b_1 < ... < b_K (b_K >= the longest output).
Segment 1 covers the prefill stage 0 and decode stages 1..b_1; segment k >= 2 covers
decode stages b_{k-1}+1..b_k. Every arrival enters segment 1; a request whose output
ends inside a segment completes there, the others wait at the next segment's entry
(the *boundary queue*, resident: they keep their KV cache). The policy never looks at
a request's output length: it learns that a request continues only when the request
reaches a boundary without finishing.

Batch rule: find the largest k such that segments 1..k all have at least n_{k'}
requests at their entry (segment 1: waiting for prefill); the batch takes
min(n_{k'}, Q_{k',s}) requests from every stage s of those segments. Later segments
pause with their KV caches kept. Interior stages hold at most n_k requests, so a
segment is a pipeline of cohorts that advance together, and the memory of the
pipelines never exceeds M^pi = sum_k n_k (l + sbar_k) delta_k.

Memory repair (the full algorithm): if a batch would exceed C, the most recently
admitted requests waiting in boundary queues (not selected for this batch) are evicted
first and restart from prefill; if that is not enough (possible only with heterogeneous
prefill lengths above the mean used in M^pi) the most recently admitted resident
requests are evicted, as the baselines do.

When M^pi exceeds C (long horizons cut into many stages need at least one request per
stage), the policy still runs: the pipelines are rarely all full, and the memory repair
evicts when they would overflow, as in the revision's real-data runs ("exceeding the
memory cap triggers eviction and restart"); ``info()`` reports M^pi and the flag.

Thresholds: ``rule="fluid"`` (default) from the drift conditions
(``fluid.nested_fluid_thresholds``, q_k = min(p_k + eta, 0.99)); ``rule="batch"`` the 2026
revision's practical rule with the total cap tl = max_batch
(``fluid.nested_practical_thresholds``); or explicit ``thresholds`` (one per segment).
Real-valued thresholds are rounded up per stage (the authors' ``ceil``), at least 1.
Boundaries: explicit ``boundaries``, ``segments`` = L equal-width segments of the decode
horizon, or by default the distinct output lengths of the request types (at most 16;
else 10 equal-width segments). Formulas use the rate-weighted mean prefill length.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from l2o.serving import fluid
from l2o.serving.base import Policy, SimState
from l2o.serving.wait import _check_slack, _check_thresholds

OUT, BOUNDARY, ENTERING, PIPE, DONE = 0, 1, 2, 3, 4
RULES = ("fluid", "batch")


class NestedWait(Policy):
    """Nested WAIT (see the module docstring).

    >>> from l2o.serving.simulator import GPU, simulate
    >>> from l2o.serving.workload import RequestType, poisson_workload
    >>> w = poisson_workload([RequestType(16, 4, 7.0), RequestType(16, 10, 3.0)], 300, seed=0)
    >>> p = NestedWait(boundaries=[4, 10], thresholds=[3, 1])
    >>> s = simulate(w, p, GPU(d0=0.02, d1=1e-5, memory=2000, max_batch=64)).summary()
    >>> s["completed"], s["evictions"], s["max_memory"] <= 2000
    (300, 0, True)
    """

    name = "nested_wait"

    def __init__(self, boundaries: Sequence[int] | None = None, segments: int | None = None,
                 thresholds: Sequence[float] | None = None, rule: str = "fluid", slack: float = 0.2,
                 eta: float = 0.05) -> None:
        if boundaries is not None and segments is not None:
            raise ValueError("boundaries and segments are both given; expected one of them")
        if boundaries is not None:
            if isinstance(boundaries, (str, bytes)) or not isinstance(boundaries, Sequence) or not boundaries:
                raise ValueError(f"boundaries is {boundaries!r}; expected a list of increasing integers >= 1")
            if any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in boundaries) or any(
                    b2 <= b1 for b1, b2 in zip(boundaries, boundaries[1:])):
                raise ValueError(f"boundaries is {list(boundaries)!r}; expected increasing integers >= 1 "
                                 "(decode stages)")
        if segments is not None and (isinstance(segments, bool) or not isinstance(segments, int) or segments < 1):
            raise ValueError(f"segments is {segments!r}; expected an integer >= 1")
        self.boundaries = list(boundaries) if boundaries is not None else None
        self.segments = segments
        self.thresholds = _check_thresholds("thresholds", thresholds)
        if rule not in RULES:
            raise ValueError(f"rule is {rule!r}; expected one of {', '.join(RULES)}")
        self.rule = rule
        self.slack = _check_slack(slack)
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not (0 <= eta < 1):
            raise ValueError(f"eta is {eta!r}; expected a number in [0, 1)")
        self.eta = float(eta)

    # -- set-up -------------------------------------------------------------------------------------
    def choose_boundaries(self, state: SimState) -> list[int]:
        """The decode boundaries b_1 < ... < b_K for this workload."""
        dmax = int(state.decode.max()) if state.n else 1
        live = [t for t, ok in zip(state.types, state.present) if ok] or list(state.types)
        if self.boundaries is not None:
            if self.boundaries[-1] < dmax:
                raise ValueError(f"boundaries end at {self.boundaries[-1]}; expected the last boundary >= the "
                                 f"longest output ({dmax} decode tokens)")
            return list(self.boundaries)
        if self.segments is None:
            distinct = sorted({t.decode for t in live})
            if len(distinct) <= 16:
                return distinct
            count = 10
        else:
            count = self.segments
        b = sorted({max(1, int(round(k * dmax / count))) for k in range(1, count + 1)})
        b[-1] = max(b[-1], dmax)
        return b

    def choose_thresholds(self, state: SimState, b: list[int]) -> tuple[list[int], bool, float]:
        """Integer per-stage thresholds per segment, whether they meet the drift
        conditions, and the mean prefill length used in the formulas."""
        types = [t for t, ok in zip(state.types, state.present) if ok] or list(state.types)
        r = np.array([t.rate for t in types], dtype=np.float64)
        lp = np.array([t.decode for t in types], dtype=np.float64)
        lbar = float(np.sum(r * np.array([t.prefill for t in types], dtype=np.float64)) / r.sum())
        delta, _ = fluid.segment_sizes(b)
        if self.thresholds is not None:
            if len(self.thresholds) != len(b):
                raise ValueError(f"thresholds has {len(self.thresholds)} values; expected one per segment ({len(b)})")
            x = np.array(self.thresholds)
            ok = True
        elif self.rule == "batch":
            x = fluid.nested_practical_thresholds(b, lp, r, total=state.max_batch, eta=self.eta)
            ok = True
        else:
            x, ok = fluid.nested_fluid_thresholds(b, lbar, lp, r, state.d0, state.d1, self.slack, self.eta,
                                                  d2=state.d2)
            # keep within the batch-size limit and the memory (largest that fits, flagged)
            for cap_ok in (lambda y: float(np.sum(delta * np.ceil(y - 1e-9))) <= state.max_batch,
                           lambda y: fluid.nested_memory(np.maximum(np.ceil(y - 1e-9), 1), b, lbar) <= state.memory):
                if not ok or not cap_ok(x):
                    lo, hi = 0.0, float(max(x.max(), 1.0)) * (1.0 if ok else 1e6)
                    base = x / x.max()
                    for _ in range(100):
                        mid = (lo + hi) / 2
                        if cap_ok(base * mid):
                            lo = mid
                        else:
                            hi = mid
                    x = base * max(lo, 1e-12)
                    ok = False
        n = np.maximum(np.ceil(x - 1e-9), 1).astype(np.int64)
        longest = int(state.prefill.max()) if state.n else 0
        if int(n[0]) * longest > state.memory:
            raise ValueError(f"thresholds start with {int(n[0])}: {int(n[0])} prompts of {longest} tokens exceed "
                             f"memory {state.memory}; lower the first threshold")
        self.memory_bound = fluid.nested_memory(n, b, lbar)
        return n.tolist(), bool(ok and self.memory_bound <= state.memory), lbar

    def start(self, state: SimState) -> None:
        self.s = state
        b = self.choose_boundaries(state)
        n, self.feasible, self.lbar = self.choose_thresholds(state, b)
        self.b, self.n, self.K = b, n, len(b)
        self.e = [0] + [b[k - 1] + 1 for k in range(1, self.K)]
        self.l = state.prefill.tolist()
        self.d = state.decode.tolist()
        N = state.n
        self.where = bytearray(N)
        self.seg = [0] * N
        self.tag = [0] * N
        self.aseq = [0] * N
        self.seq = 0
        self.fresh = 0
        self.restart: deque[int] = deque()
        K = self.K
        self.B: list[deque[int]] = [deque() for _ in range(K)]
        self.nB = [0] * K
        self.HB = [0] * K
        self.clock = [0] * K
        self.R = [0] * K
        self.H = [0] * K
        self.done_b: list[dict[int, list[int]]] = [{} for _ in range(K)]
        self.exit_b: list[dict[int, list[int]]] = [{} for _ in range(K)]
        self.stack: list[int] = []
        self.pending: tuple[list[int], dict[int, list[int]]] | None = None

    # -- helpers ------------------------------------------------------------------------------------
    def _evict(self, i: int) -> None:
        self.where[i] = OUT
        self.s.evictions[i] += 1
        self.restart.appendleft(i)

    def _repair(self, mem: int, tokens: int, active: list[int], entering: dict[int, list[int]]) -> tuple[int, int]:
        """Evict until the batch fits in C: boundary queues first (LIFO), then residents,
        then (only if the batch alone is larger than C) the batch's own entries."""
        C = self.s.memory
        where, l, b = self.where, self.l, self.b
        while mem > C and any(self.nB[k] for k in range(1, self.K)):
            best, best_seq = -1, -1
            for k in range(1, self.K):
                dq = self.B[k]
                while dq and (where[dq[-1]] != BOUNDARY or self.seg[dq[-1]] != k):
                    dq.pop()
                if dq and self.aseq[dq[-1]] > best_seq:
                    best, best_seq = k, self.aseq[dq[-1]]
            i = self.B[best].pop()
            held = l[i] + b[best - 1]
            self.nB[best] -= 1
            self.HB[best] -= held
            mem -= held
            self._evict(i)
        skipped: list[int] = []
        act = set(active)
        while mem > C and self.stack:
            i = self.stack.pop()
            w = where[i]
            if w == PIPE:
                k = self.seg[i]
                held = l[i] + self.e[k] + self.clock[k] - self.tag[i]
                self.R[k] -= 1
                self.H[k] -= held
                if k in act:
                    mem -= held + 1
                    tokens -= held + 1
                else:
                    mem -= held
                self._evict(i)
            elif w in (BOUNDARY, ENTERING):
                skipped.append(i)
        self.stack.extend(reversed(skipped))
        for k in sorted(entering, reverse=True):  # the batch alone exceeds C (a threshold x prompt > C)
            ids = entering[k]
            while mem > C and ids:
                i = ids.pop()
                cost = l[i] + self.e[k]
                mem -= cost
                tokens -= cost
                if k == 0:  # never admitted: back to the head of the queue
                    where[i] = OUT
                    self.restart.appendleft(i)
                else:
                    self._evict(i)
        return mem, tokens

    # -- protocol -----------------------------------------------------------------------------------
    def schedule(self, t: float, n_arrived: int) -> tuple[int, int, int, int] | None:
        n, K = self.n, self.K
        waiting1 = len(self.restart) + n_arrived - self.fresh
        if self.s.drain and n_arrived == self.s.n:
            active = [k for k in range(K) if (waiting1 if k == 0 else self.nB[k]) > 0 or self.R[k] > 0]
        else:
            active = []
            if waiting1 >= n[0]:
                active.append(0)
                for k in range(1, K):
                    if self.nB[k] >= n[k]:
                        active.append(k)
                    else:
                        break
        if not active:
            return None
        where, l, seg = self.where, self.l, self.seg
        entering: dict[int, list[int]] = {}
        mem = sum(self.H) + sum(self.HB)
        tokens = 0
        size = 0
        for k in active:
            ids: list[int] = []
            if k == 0:
                for _ in range(min(n[0], waiting1)):
                    if self.restart:
                        i = self.restart.popleft()
                    else:
                        i = self.fresh
                        self.fresh += 1
                    where[i] = ENTERING
                    ids.append(i)
                ent = sum(l[i] for i in ids)
            else:
                take = min(n[k], self.nB[k])
                dq = self.B[k]
                bk1 = self.b[k - 1]
                while len(ids) < take:
                    i = dq.popleft()
                    if where[i] != BOUNDARY or seg[i] != k:
                        continue
                    where[i] = ENTERING
                    ids.append(i)
                    self.nB[k] -= 1
                    self.HB[k] -= l[i] + bk1
                ent = sum(l[i] for i in ids) + len(ids) * self.e[k]
                mem -= sum(l[i] for i in ids) + len(ids) * bk1  # their held tokens, counted in ent now
            entering[k] = ids
            tokens += self.H[k] + self.R[k] + ent
            mem += self.R[k] + ent
            size += self.R[k] + len(ids)
        if mem > self.s.memory:
            mem, tokens = self._repair(mem, tokens, active, entering)
            size = sum(self.R[k] + len(entering[k]) for k in active)
        self.pending = (active, entering)
        computed = sum(l[i] for i in entering[0]) if 0 in entering else 0
        return tokens, mem, size, computed

    def finish(self, t: float) -> None:
        assert self.pending is not None
        active, entering = self.pending
        self.pending = None
        where, seg, tag, l, d = self.where, self.seg, self.tag, self.l, self.d
        first, fin = self.s.first_token, self.s.finish
        for k in active:
            self.clock[k] += 1
            c = self.clock[k]
            ek, bk = self.e[k], self.b[k]
            done_b, exit_b = self.done_b[k], self.exit_b[k]
            ids = entering[k]
            for i in ids:
                where[i] = PIPE
                seg[i] = k
                tag[i] = c
                if k == 0:
                    if first[i] != first[i]:
                        first[i] = t
                    self.seq += 1
                    self.aseq[i] = self.seq
                    self.stack.append(i)
                di = d[i]
                if di <= bk:
                    key, table = c + di - ek, done_b
                else:
                    key, table = c + bk - ek, exit_b
                lst = table.get(key)
                if lst is None:
                    table[key] = [i]
                else:
                    lst.append(i)
            self.H[k] += self.R[k] + sum(l[i] for i in ids) + len(ids) * ek
            self.R[k] += len(ids)
            lst = done_b.pop(c, None)
            if lst:
                for i in lst:
                    if where[i] == PIPE and seg[i] == k and tag[i] + d[i] - ek == c:
                        where[i] = DONE
                        fin[i] = t
                        self.R[k] -= 1
                        self.H[k] -= l[i] + d[i]
            lst = exit_b.pop(c, None)
            if lst:
                nxt = self.B[k + 1]
                for i in lst:
                    if where[i] == PIPE and seg[i] == k and tag[i] + bk - ek == c:
                        self.R[k] -= 1
                        held = l[i] + bk
                        self.H[k] -= held
                        where[i] = BOUNDARY
                        seg[i] = k + 1
                        nxt.append(i)
                        self.nB[k + 1] += 1
                        self.HB[k + 1] += held
        if len(self.stack) > 4 * (sum(self.R) + sum(self.nB)) + 1024:
            self.stack = [i for i in self.stack if where[i] in (PIPE, BOUNDARY, ENTERING)]

    def wake(self, t: float, n_arrived: int) -> float | None:
        N = self.s.n
        waiting1 = len(self.restart) + n_arrived - self.fresh
        idx = n_arrived + max(self.n[0] - waiting1, 1) - 1
        nxt = float(self.s.arrival[idx]) if idx < N else math.inf
        if self.s.drain and n_arrived < N:
            nxt = min(nxt, float(self.s.arrival[-1]))
        return None if math.isinf(nxt) else nxt

    def info(self) -> dict[str, Any]:
        return {"boundaries": " ".join(map(str, getattr(self, "b", []))),
                "thresholds": " ".join(map(str, getattr(self, "n", []))), "rule": self.rule,
                "fluid_feasible": bool(getattr(self, "feasible", True)),
                "memory_bound": float(getattr(self, "memory_bound", math.nan))}

    def __repr__(self) -> str:
        return (f"NestedWait(boundaries={self.boundaries}, segments={self.segments}, thresholds={self.thresholds}, "
                f"rule={self.rule!r}, slack={self.slack}, eta={self.eta})")


__all__ = ["NestedWait", "RULES"]
