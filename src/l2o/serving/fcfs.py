"""FCFS baselines with eviction: vLLM-like and Sarathi-like batching.

Both admit waiting requests first come, first served, as long as the KV cache keeps a
reserve (``watermark``, 1% of C as in vLLM and Vidur) after the new request's prefill
tokens, and at most ``max_batch`` requests are resident. Neither accounts for the
decode growth of what it admitted: when the resident requests' next tokens do not fit,
the most recently admitted request is evicted (its KV cache discarded, its progress
lost) and goes back to the front of the queue to restart from prefill (LIFO eviction,
recompute preemption). This is the behaviour of Vidur's ``VLLMReplicaScheduler`` and
``SarathiReplicaScheduler`` that the paper compares against (arXiv 2504.11320, Section 6),
at token granularity (Vidur allocates blocks of 16 tokens).

* ``VLLM``: new arrivals first. If any waiting request can be admitted, the iteration
  is prefill-only: whole prefills of as many requests as fit (memory, ``max_batch``, and
  ``max_tokens`` = 4096 padded prefill tokens per batch, Vidur's default); otherwise a
  decode-only iteration of every resident request.
* ``Sarathi``: ongoing requests first. Every iteration decodes all resident requests and
  fills the rest of a ``chunk`` token budget (512; each decode counts one token) with
  prefill chunks: unfinished prefills first, then new admissions.

State is kept as counters: all resident decoding requests advance together, so with G
the number of decode rounds so far and g_i the round at which request i finished its
prefill, it is at stage G - g_i + 1 and holds l_i + G - g_i tokens; the total is
sum(l) + n G - sum(g). Completions are found in a table keyed by the round g_i + l'_i;
evictions pop a stack in admission order. Each request costs O(1) work per admission.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from l2o.serving.base import Policy, SimState

WAITING, PREFILL, RUNNING, DONE = 0, 1, 2, 3


def _check_fraction(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 <= v < 1):
        raise ValueError(f"{name} is {v!r}; expected a fraction of the KV cache in [0, 1)")
    return float(v)


def _check_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} is {v!r}; expected an integer >= 1")
    return v


class _FCFS(Policy):
    """Shared state of the FCFS baselines (see the module docstring)."""

    def __init__(self, watermark: float = 0.01) -> None:
        self.watermark = _check_fraction("watermark", watermark)

    def start(self, state: SimState) -> None:
        self.s = state
        self.l = state.prefill.tolist()
        self.d = state.decode.tolist()
        n = len(self.l)
        self.C = state.memory
        self.cap = state.max_batch
        self.limit = state.memory - self.watermark * state.memory
        self.fresh = 0
        self.restart: deque[int] = deque()
        self.state = bytearray(n)
        self.join = [0] * n
        self.stack: list[int] = []
        self.rounds: dict[int, list[int]] = {}
        self.G = 0
        self.n_run = 0
        self.sum_l = 0
        self.sum_g = 0
        self.first = state.first_token
        self.fin = state.finish
        self.ev = state.evictions

    # -- helpers ---------------------------------------------------------------------------------
    def _next_admissible(self, n_arrived: int, residents: int, mem: int) -> int | None:
        """The next request in FCFS order (the evicted ones first, then the arrived fresh
        ones) if it fits beside ``residents`` running requests holding ``mem`` KV tokens
        (the batch cap, and the memory limit unless it would run alone); else None."""
        if self.restart:
            i = self.restart[0]
        elif self.fresh < n_arrived:
            i = self.fresh
        else:
            return None
        if residents >= self.cap or (residents > 0 and mem + self.l[i] > self.limit):
            return None
        return i

    def _admit(self, i: int) -> None:
        """Take ``i`` (what ``_next_admissible`` returned) off its queue into prefill."""
        if self.restart:
            self.restart.popleft()
        else:
            self.fresh += 1
        self.state[i] = PREFILL

    def held(self) -> int:
        """KV tokens held by the resident decoding requests."""
        return self.sum_l + self.n_run * self.G - self.sum_g

    def _evict_until(self, extra: int) -> None:
        """Evict the most recently admitted decoding requests until their next tokens
        (one each) plus ``extra`` reserved tokens fit in C."""
        C, state, stack = self.C, self.state, self.stack
        victims: list[int] = []
        while self.sum_l + self.n_run * (self.G + 1) - self.sum_g + extra > C:
            i = stack.pop()
            if state[i] != RUNNING:
                continue
            state[i] = WAITING
            self.n_run -= 1
            self.sum_l -= self.l[i]
            self.sum_g -= self.join[i]
            self.ev[i] += 1
            victims.append(i)
        if victims:
            self.restart.extendleft(victims)  # the earliest admitted victim ends up first

    def _join(self, i: int, t: float) -> None:
        """Request i finished its prefill at time t: it decodes from the next round on."""
        if self.first[i] != self.first[i]:  # NaN: the first time
            self.first[i] = t
        self.state[i] = RUNNING
        g = self.G
        self.join[i] = g
        self.n_run += 1
        self.sum_l += self.l[i]
        self.sum_g += g
        self.stack.append(i)
        key = g + self.d[i]
        lst = self.rounds.get(key)
        if lst is None:
            self.rounds[key] = [i]
        else:
            lst.append(i)

    def _decode_round(self, t: float) -> None:
        """All resident requests decoded one token: complete those at their last stage."""
        self.G += 1
        g = self.G
        lst = self.rounds.pop(g, None)
        if lst:
            state, join, d, l, fin = self.state, self.join, self.d, self.l, self.fin
            for i in lst:
                if state[i] == RUNNING and join[i] + d[i] == g:
                    state[i] = DONE
                    self.n_run -= 1
                    self.sum_l -= l[i]
                    self.sum_g -= join[i]
                    fin[i] = t
        if len(self.stack) > 4 * self.n_run + 1024:
            self.stack = [i for i in self.stack if self.state[i] == RUNNING]

    def wake(self, t: float, n_arrived: int) -> float | None:
        # schedule() waits only when nothing is resident or queued: wake at the next arrival
        return float(self.s.arrival[n_arrived]) if n_arrived < self.s.n else None

    def info(self) -> dict[str, Any]:
        return {"watermark": self.watermark}


class VLLM(_FCFS):
    """vLLM-like FCFS: new arrivals first, full prefills in prefill-only iterations,
    decode-only iterations otherwise, LIFO eviction on overflow.

    ``watermark``: fraction of C kept free at admission (0.01); ``max_tokens``: the most
    padded prefill tokens per batch (batch size x longest prefill, 4096 as in Vidur; a
    single longer prompt is still admitted alone).

    >>> from l2o.serving.simulator import GPU, simulate
    >>> from l2o.serving.workload import RequestType, poisson_workload
    >>> r = simulate(poisson_workload([RequestType(16, 4, 50.0)], 300, seed=0), VLLM(),
    ...              GPU(d0=0.01, d1=1e-4, memory=400, max_batch=64))
    >>> r.summary()["completed"]
    300
    """

    name = "vllm"

    def __init__(self, watermark: float = 0.01, max_tokens: int = 4096) -> None:
        super().__init__(watermark)
        self.max_tokens = _check_int("max_tokens", max_tokens)

    def start(self, state: SimState) -> None:
        super().start(state)
        self.pending: list[int] | None = None

    def schedule(self, t: float, n_arrived: int) -> tuple[int, int, int, int] | None:
        held = self.held()
        residents = self.n_run
        mem = held
        batch: list[int] = []
        maxl = 0
        l, max_tokens = self.l, self.max_tokens
        while (i := self._next_admissible(n_arrived, residents, mem)) is not None:
            li = l[i]
            if batch and (len(batch) + 1) * max(maxl, li) > max_tokens:
                break
            self._admit(i)
            batch.append(i)
            mem += li
            residents += 1
            if li > maxl:
                maxl = li
        if batch:
            self.pending = batch
            return mem - held, mem, len(batch), mem - held
        if self.n_run == 0:
            return None
        self._evict_until(0)
        self.pending = None
        need = self.held() + self.n_run
        return need, need, self.n_run, 0

    def finish(self, t: float) -> None:
        if self.pending is None:
            self._decode_round(t)
        else:
            for i in self.pending:
                self._join(i, t)
            self.pending = None

    def info(self) -> dict[str, Any]:
        return {"watermark": self.watermark, "max_tokens": self.max_tokens}

    def __repr__(self) -> str:
        return f"VLLM(watermark={self.watermark}, max_tokens={self.max_tokens})"


class Sarathi(_FCFS):
    """Sarathi-like FCFS with chunked prefill: ongoing requests first; each iteration
    decodes every resident request and spends the rest of a ``chunk``-token budget (512;
    a decode counts one token) on prefill chunks, unfinished prefills before new
    admissions; LIFO eviction on overflow. A prefill chunk of c tokens after p done
    touches p + c KV tokens (it reads the p cached ones).

    >>> from l2o.serving.simulator import GPU, simulate
    >>> from l2o.serving.workload import RequestType, poisson_workload
    >>> r = simulate(poisson_workload([RequestType(100, 4, 20.0)], 200, seed=0), Sarathi(chunk=64),
    ...              GPU(d0=0.01, d1=1e-5, memory=2000, max_batch=64))
    >>> s = r.summary(); s["completed"], s["max_memory"] <= 2000
    (200, True)
    """

    name = "sarathi"

    def __init__(self, watermark: float = 0.01, chunk: int = 512) -> None:
        super().__init__(watermark)
        self.chunk = _check_int("chunk", chunk)

    def start(self, state: SimState) -> None:
        super().start(state)
        self.partial: list[list[int]] = []  # [request, prefill tokens done], admission order
        self.partial_mem = 0
        self.pending: tuple[int, list[tuple[list[int], int]]] | None = None

    def schedule(self, t: float, n_arrived: int) -> tuple[int, int, int, int] | None:
        if self.n_run:
            self._evict_until(self.partial_mem)
        held = self.held()
        nd = self.n_run
        budget = self.chunk - nd
        tokens = held + nd
        mem = held + nd + self.partial_mem
        chunks: list[tuple[list[int], int]] = []
        computed = 0
        l = self.l
        for entry in self.partial:
            if budget <= 0:
                break
            c = min(l[entry[0]] - entry[1], budget)
            chunks.append((entry, c))
            tokens += entry[1] + c
            computed += c
            budget -= c
        residents = nd + len(self.partial)
        while budget > 0 and (i := self._next_admissible(n_arrived, residents, mem)) is not None:
            li = l[i]
            self._admit(i)
            entry = [i, 0]
            self.partial.append(entry)
            self.partial_mem += li
            mem += li
            residents += 1
            c = min(li, budget)
            chunks.append((entry, c))
            tokens += c
            computed += c
            budget -= c
        if nd == 0 and not chunks:
            return None
        self.pending = (nd, chunks)
        return tokens, mem, nd + len(chunks), computed

    def finish(self, t: float) -> None:
        assert self.pending is not None
        nd, chunks = self.pending
        self.pending = None
        if nd:
            self._decode_round(t)
        finished = False
        l = self.l
        for entry, c in chunks:
            entry[1] += c
            if entry[1] >= l[entry[0]]:
                finished = True
        if finished:
            keep: list[list[int]] = []
            for entry in self.partial:
                i = entry[0]
                if entry[1] >= l[i]:
                    self.partial_mem -= l[i]
                    self._join(i, t)
                else:
                    keep.append(entry)
            self.partial = keep

    def info(self) -> dict[str, Any]:
        return {"watermark": self.watermark, "chunk": self.chunk}

    def __repr__(self) -> str:
        return f"Sarathi(watermark={self.watermark}, chunk={self.chunk})"


__all__ = ["VLLM", "Sarathi"]
