"""WAIT: Waiting for Accumulated Inference Threshold (known output lengths).

Ao, Luo, Simchi-Levi, Wang, arXiv 2504.11320, Algorithm 1. Each type j has a threshold
n_j. At a decision epoch, type j is eligible when at least n_j type-j requests wait for
prefill; every eligible type then contributes min(n_j, n_js) requests from each of its
stages s = 0..l'_j to the batch. If no type is eligible the GPU waits; requests already
admitted keep their KV caches. A type's stages s >= 1 never hold more than n_j requests,
so each type is a pipeline of cohorts of n_j requests that advance together, and the
memory never exceeds M^pi = sum_j n_j (l'_j + 1)(l_j + l'_j / 2): WAIT never evicts
when M^pi <= C (checked at start).

Thresholds (``rule``): ``"fluid"`` (default) from the fluid conditions
(``l2o.serving.fluid.fluid_wait_thresholds``: n_j = ceil((1 + slack) lambda_j dT*), the
smallest balanced thresholds with strict slack); ``"balanced"`` / ``"paper"`` the
practical rules from the batch-size limit B (``practical_wait_thresholds``); or explicit
``thresholds``, one per type in the order of the workload's types.

``all_types=True`` is the authors' simulator rule (Vidur ``BookingLimitReplicaScheduler``,
Feb-2025): a batch forms only when every type is eligible, and then all types take part.

With ``drain`` (the default of ``simulate``) thresholds drop to 1 once the last request
has arrived, so that everything completes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from l2o.serving import fluid
from l2o.serving.base import Policy, SimState

RULES = ("fluid", "balanced", "paper")


def _check_thresholds(name: str, v: Any) -> list[float] | None:
    if v is None:
        return None
    if isinstance(v, (str, bytes)) or not isinstance(v, Sequence) or len(v) == 0:
        raise ValueError(f"{name} is {v!r}; expected a non-empty list of numbers >= 1")
    out = []
    for x in v:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0:
            raise ValueError(f"{name} has {x!r}; expected numbers > 0 (requests per stage)")
        out.append(float(x))
    return out


def _check_slack(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ValueError(f"slack is {v!r}; expected a number >= 0")
    return float(v)


class Wait(Policy):
    """WAIT with per-type thresholds (see the module docstring).

    >>> from l2o.serving.simulator import GPU, simulate
    >>> from l2o.serving.workload import RequestType, poisson_workload
    >>> w = poisson_workload([RequestType(1, 1, 4.0)], 400, seed=0)
    >>> r = simulate(w, Wait(thresholds=[4]), GPU(d0=1.0, d1=0.0, memory=12, max_batch=8))
    >>> s = r.summary(); s["completed"], s["evictions"], s["max_memory"] <= 12
    (400, 0, True)
    """

    name = "wait"

    def __init__(self, thresholds: Sequence[int] | None = None, rule: str = "fluid", slack: float = 0.2,
                 all_types: bool = False) -> None:
        self.thresholds = _check_thresholds("thresholds", thresholds)
        if self.thresholds is not None and any(x != int(x) for x in self.thresholds):
            raise ValueError(f"thresholds is {thresholds!r}; expected integers >= 1")
        if rule not in RULES:
            raise ValueError(f"rule is {rule!r}; expected one of {', '.join(RULES)}")
        self.rule = rule
        self.slack = _check_slack(slack)
        if not isinstance(all_types, bool):
            raise ValueError(f"all_types is {all_types!r}; expected true or false")
        self.all_types = all_types

    def choose_thresholds(self, state: SimState) -> tuple[np.ndarray, bool]:
        """The thresholds for this workload and GPU, and whether they meet the fluid
        conditions (always True for explicit or practical thresholds that fit)."""
        types = state.types
        if self.thresholds is not None and len(self.thresholds) != len(types):
            raise ValueError(f"thresholds has {len(self.thresholds)} values; expected one per request type "
                             f"({len(types)})")
        live = state.present
        if not live.any():
            return np.ones(len(types), dtype=np.int64), True
        l = np.array([t.prefill for t in types], dtype=np.float64)[live]
        lp = np.array([t.decode for t in types], dtype=np.float64)[live]
        r = np.array([t.rate for t in types], dtype=np.float64)[live]
        n_all = np.ones(len(types), dtype=np.int64)
        if self.thresholds is not None:
            n = np.array(self.thresholds, dtype=np.int64)[live]
            if int(np.sum(n * (lp + 1))) > state.max_batch:
                shown = n.tolist() if n.size <= 8 else f"for {n.size} types"
                raise ValueError(f"thresholds {shown} put {int(np.sum(n * (lp + 1)))} requests in a full batch "
                                 f"> max_batch {state.max_batch}")
            ok = True
        elif self.rule == "fluid":
            n, ok = fluid.fluid_wait_thresholds(l, lp, r, state.d0, state.d1, state.memory, state.max_batch,
                                                self.slack, d2=state.d2)
        else:
            n = fluid.practical_wait_thresholds(lp, r, state.max_batch, self.rule)
            ok = True
        n_all[live] = n
        m_pi = fluid.wait_memory(n, l, lp)
        if m_pi > state.memory:
            if n.size > 8:
                raise ValueError(f"thresholds for {n.size} request types (distinct prefill/decode pairs) need "
                                 f"M^pi = {m_pi:.0f} KV tokens for a full WAIT batch > memory {state.memory}; WAIT "
                                 "keeps a pipeline per type: use nested_wait for many distinct lengths")
            raise ValueError(f"thresholds {n.tolist()} need M^pi = {m_pi:.0f} KV tokens for a full WAIT batch "
                             f"> memory {state.memory}; lower max_batch or the thresholds")
        return n_all, ok

    def start(self, state: SimState) -> None:
        self.s = state
        n, self.feasible = self.choose_thresholds(state)
        self.n = n.tolist()
        m = len(state.types)
        self.m = m
        self.l = [t.prefill for t in state.types]
        self.d = [t.decode for t in state.types]
        kind = state.kind
        self.idx = [np.flatnonzero(kind == j) for j in range(m)]
        self.times = [state.arrival[ix] for ix in self.idx]
        self.active_types = [j for j in range(m) if self.idx[j].size]
        self.arrived = [0] * m
        self.adm = [0] * m
        self.ptr = 0
        self.pipe: list[deque[np.ndarray]] = [deque() for _ in range(m)]
        self.R = [0] * m  # resident requests of type j
        self.H = [0] * m  # KV tokens they hold
        self.pending: list[tuple[int, np.ndarray]] = []
        self.kind_list = kind

    def _absorb(self, n_arrived: int) -> None:
        if n_arrived > self.ptr:
            if self.m == 1:
                self.arrived[0] += n_arrived - self.ptr
            else:
                cnt = np.bincount(self.kind_list[self.ptr:n_arrived], minlength=self.m)
                for j in range(self.m):
                    self.arrived[j] += int(cnt[j])
            self.ptr = n_arrived

    def schedule(self, t: float, n_arrived: int) -> tuple[int, int, int, int] | None:
        self._absorb(n_arrived)
        draining = self.s.drain and n_arrived == self.s.n
        n, arrived, adm, R = self.n, self.arrived, self.adm, self.R
        if draining:
            elig = [j for j in self.active_types if arrived[j] > adm[j] or R[j] > 0]
        else:
            elig = [j for j in self.active_types if arrived[j] - adm[j] >= n[j]]
            if self.all_types and len(elig) < len(self.active_types):
                elig = []
        if not elig:
            return None
        tokens = 0
        mem = sum(self.H)
        size = 0
        computed = 0
        pending = self.pending
        for j in elig:
            k = min(n[j], arrived[j] - adm[j])
            new = self.idx[j][adm[j]:adm[j] + k]
            adm[j] += k
            lj = self.l[j]
            tokens += self.H[j] + R[j] + k * lj
            mem += R[j] + k * lj
            size += R[j] + k
            computed += k * lj
            pending.append((j, new))
        return tokens, mem, size, computed

    def finish(self, t: float) -> None:
        first, fin = self.s.first_token, self.s.finish
        for j, new in self.pending:
            k = new.size
            if k:
                first[new] = t
            lj, dj = self.l[j], self.d[j]
            self.H[j] += self.R[j] + k * lj
            self.R[j] += k
            pipe = self.pipe[j]
            pipe.appendleft(new)
            if len(pipe) > dj:
                old = pipe.pop()
                if old.size:
                    fin[old] = t
                    self.R[j] -= old.size
                    self.H[j] -= old.size * (lj + dj)
        self.pending = []

    def wake(self, t: float, n_arrived: int) -> float | None:
        cands = []
        for j in self.active_types:
            need = self.adm[j] + self.n[j] - 1
            cands.append(float(self.times[j][need]) if need < self.idx[j].size else math.inf)
        nxt = (max(cands) if self.all_types else min(cands)) if cands else math.inf
        if self.s.drain and n_arrived < self.s.n:
            nxt = min(nxt, float(self.s.arrival[-1]))
        return None if math.isinf(nxt) else nxt

    def info(self) -> dict[str, Any]:
        return {"thresholds": " ".join(map(str, getattr(self, "n", []))), "rule": self.rule,
                "all_types": self.all_types, "fluid_feasible": bool(getattr(self, "feasible", True))}

    def __repr__(self) -> str:
        return (f"Wait(thresholds={self.thresholds}, rule={self.rule!r}, slack={self.slack}, "
                f"all_types={self.all_types})")


__all__ = ["Wait", "RULES"]
