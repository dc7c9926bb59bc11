"""The fluid benchmark of LLM serving under a KV-cache limit, and the threshold rules of
WAIT and Nested WAIT (Ao, Luo, Simchi-Levi, Wang, arXiv 2504.11320, Sections 3-5).

Model. Type j has prefill l_j, decode l'_j, Poisson rate lambda_j. An iteration that
touches x KV tokens takes ``tau = d0 + d1 x``; the prefill of a type-j prompt touches
l_j tokens and its decode stage s touches l_j + s, so one request touches

    W_j = sum_{s=0}^{l'_j} (l_j + s) = (l'_j + 1)(l_j + l'_j / 2)

tokens over its life. In the balanced fluid state every iteration serves n_j prompts
of type j at each of its l'_j + 1 stages, with n_j = lambda_j * tau (arrivals per
iteration = completions per iteration). Its memory is M = sum_j n_j W_j and
tau = d0 + d1 M, so with A = sum_j lambda_j W_j (KV tokens per second):

    M* = d0 A / (1 - d1 A),  processing time* = d0 + d1 M*,  throughput* = sum_j lambda_j l'_j

(decode tokens per second; the 2025 version counted l'_j + 1 per request). Stability.
An iteration touches at most C tokens (all it touches is in memory), and x / (d0 + d1 x)
grows with x, so no policy processes more than C / (d0 + d1 C) tokens per second: the
load rho = A (d0 + d1 C) / C must be <= 1, which is the same as d1 A < 1 and M* <= C.
(The paper's text states the instability condition with d0 where the derivation gives
d1; the authors' revision notes flag those d0/d1 typos. This module uses the derivation.)

WAIT (eq. wait_thresholds): thresholds n_j with

    dT(n) = d0 + d1 M^pi <= n_j / lambda_j for all j,   M^pi = sum_j n_j W_j,   M* <= M^pi <= C.

Nested WAIT (eq. nested_wait_thresholds): decode boundaries b_1 < ... < b_K, segment k
covers decode stages b_{k-1}+1 .. b_k (segment 1 also the prefill stage 0), thresholds
n_k per stage, a common prefill l, continuation probabilities
p_k = sum_{r>=k} lambda'_r / sum_{r>=k-1} lambda'_r (lambda'_r: the rate of requests whose
decode length ends in segment r), and

    dT(n) < n_1 / sum(lambda),   p_k < n_k / n_{k-1} < 1,
    M^pi = sum_k n_k (l + sbar_k) delta_k,  delta_1 = b_1 + 1, sbar_1 = b_1 / 2,
                                            delta_k = b_k - b_{k-1}, sbar_k = (b_{k-1} + 1 + b_k) / 2;

Theorem 2's memory (with the safety buffer) is
M_req = M^pi + sum_{k>=2} (l + b_{k-1}) (n_k + ln(K (1 + zeta T / d0) / delta) / theta_k), where
theta_k > 0 solves exp(-theta n_k) (1 - p_k + p_k e^theta)^{n_{k-1}} = 1.

Prefill compute (an extension, 0 by default as in the paper): with ``d2`` seconds per
prompt token prefilled, tau = d0 + d1 x + d2 (prompt tokens in the batch), and with
P = sum_j lambda_j l_j the formulas become dT* = d0 / (1 - d1 A - d2 P), M* = A dT* and
rho = A (d0 + d1 C) / C + d2 P; the threshold conditions add d2 sum_j n_j l_j to dT(n).

All arrays are numpy arrays of shape (m,) (types) or (K,) (segments).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


def _arr(x: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be a non-empty sequence of finite numbers")
    return a


def work(prefill: ArrayLike, decode: ArrayLike) -> np.ndarray:
    """W_j = (l'_j + 1)(l_j + l'_j / 2): KV tokens a type-j request touches over its life.

    >>> work([1], [1]).tolist()     # prefill touches 1 token, the decode 2
    [3.0]
    """
    l, lp = _arr(prefill, "prefill"), _arr(decode, "decode")
    return (lp + 1.0) * (l + lp / 2.0)


def token_rate(prefill: ArrayLike, decode: ArrayLike, rate: ArrayLike) -> float:
    """A = sum_j lambda_j W_j: KV tokens per second that the offered load needs touched.

    >>> token_rate([1], [1], [4.0])
    12.0
    """
    return float(np.sum(_arr(rate, "rate") * work(prefill, decode)))


def prefill_rate(prefill: ArrayLike, rate: ArrayLike) -> float:
    """P = sum_j lambda_j l_j: prompt tokens per second to prefill.

    >>> prefill_rate([512, 10], [2.0, 1.0])
    1034.0
    """
    return float(np.sum(_arr(rate, "rate") * _arr(prefill, "prefill")))


def fluid_memory(prefill: ArrayLike, decode: ArrayLike, rate: ArrayLike, d0: float, d1: float,
                 d2: float = 0.0) -> float:
    """M* = d0 A / (1 - d1 A - d2 P) (KV tokens); ``inf`` when d1 A + d2 P >= 1 (no finite
    equilibrium).

    The authors' KV-cache example: l = l' = 1, four arrivals per unit-time iteration
    (d0 = 1, d1 = 0) give four prompts at each of the two stages, M* = 4 * 1 + 4 * 2:

    >>> fluid_memory([1], [1], [4.0], d0=1.0, d1=0.0)
    12.0
    """
    a = token_rate(prefill, decode, rate)
    u = d1 * a + d2 * prefill_rate(prefill, rate)
    if u >= 1.0:
        return math.inf
    return d0 * a / (1.0 - u)


def processing_time(prefill: ArrayLike, decode: ArrayLike, rate: ArrayLike, d0: float, d1: float,
                    d2: float = 0.0) -> float:
    """Iteration time in the fluid equilibrium, dT* = d0 + d1 M* + d2 P dT* (seconds; ``inf``
    if unstable).

    >>> processing_time([1], [1], [4.0], d0=1.0, d1=0.0)
    1.0
    """
    a = token_rate(prefill, decode, rate)
    u = d1 * a + d2 * prefill_rate(prefill, rate)
    return d0 / (1.0 - u) if u < 1.0 else math.inf


def fluid_throughput(decode: ArrayLike, rate: ArrayLike) -> float:
    """Throughput* = sum_j lambda_j l'_j (decode tokens per second).

    >>> fluid_throughput([20, 50], [14.0, 6.0])
    580.0
    """
    return float(np.sum(_arr(rate, "rate") * _arr(decode, "decode")))


def load(prefill: ArrayLike, decode: ArrayLike, rate: ArrayLike, d0: float, d1: float, memory: float,
         d2: float = 0.0) -> float:
    """rho = A (d0 + d1 C) / C + d2 P: the GPU time per second the offered load needs at
    the best possible batching (iterations touching all C tokens). rho <= 1 iff M* <= C
    (stable in the fluid model); a rate scale of 1 / rho puts the load on the limit.

    >>> load([1], [1], [4.0], d0=1.0, d1=0.0, memory=12)
    1.0
    """
    if memory <= 0:
        raise ValueError(f"memory is {memory!r}; expected > 0 tokens")
    return token_rate(prefill, decode, rate) * (d0 + d1 * memory) / memory + d2 * prefill_rate(prefill, rate)


def stability_limit(prefill: ArrayLike, decode: ArrayLike, rate: ArrayLike, d0: float, d1: float,
                    memory: float, d2: float = 0.0) -> float:
    """The total arrival rate (requests per second) at which the fluid load reaches 1 for
    this type mix: sum(lambda) / rho.

    >>> stability_limit([1], [1], [2.0], d0=1.0, d1=0.0, memory=12)
    4.0
    """
    r = _arr(rate, "rate")
    return float(r.sum()) / load(prefill, decode, r, d0, d1, memory, d2)


# ----- WAIT ---------------------------------------------------------------------------------------

def wait_memory(thresholds: ArrayLike, prefill: ArrayLike, decode: ArrayLike) -> float:
    """M^pi = sum_j n_j W_j: the KV tokens of a full WAIT batch (n_j prompts of type j at
    each of its l'_j + 1 stages); also the most memory WAIT ever holds.

    >>> wait_memory([4], [1], [1])
    12.0
    """
    return float(np.sum(_arr(thresholds, "thresholds") * work(prefill, decode)))


def wait_cycle_time(thresholds: ArrayLike, prefill: ArrayLike, decode: ArrayLike, d0: float, d1: float,
                    d2: float = 0.0) -> float:
    """dT(n) = d0 + d1 M^pi (+ d2 sum_j n_j l_j): the time of a full WAIT iteration (seconds).

    >>> wait_cycle_time([4], [1], [1], d0=1.0, d1=0.5)
    7.0
    """
    n = _arr(thresholds, "thresholds")
    return d0 + d1 * wait_memory(n, prefill, decode) + d2 * float(np.sum(n * _arr(prefill, "prefill")))


@dataclasses.dataclass(frozen=True)
class ThresholdCheck:
    """The threshold conditions of WAIT (or Nested WAIT), evaluated.

    ``balance``: per type (WAIT) or for segment 1 (Nested WAIT), dT <= n / lambda;
    ``strict``: all balance inequalities strict (O(1) latency in Theorem 1);
    ``memory``: M^pi (or M_req) <= C; ``covers_fluid``: M^pi >= M* (WAIT only);
    ``ordering``: p_k < n_k / n_{k-1} (Nested WAIT only).

    >>> ThresholdCheck(1.0, 12.0, (True,), False, True).ok
    True
    """

    cycle_time: float
    memory_use: float
    balance: tuple[bool, ...]
    strict: bool
    memory: bool
    covers_fluid: bool = True
    ordering: tuple[bool, ...] = ()

    @property
    def ok(self) -> bool:
        """All conditions hold."""
        return all(self.balance) and self.memory and self.covers_fluid and all(self.ordering)


def wait_conditions(thresholds: ArrayLike, prefill: ArrayLike, decode: ArrayLike, rate: ArrayLike,
                    d0: float, d1: float, memory: float, d2: float = 0.0) -> ThresholdCheck:
    """Check eq. (wait_thresholds): dT(n) <= n_j / lambda_j for all j, M* <= M^pi <= C.

    >>> c = wait_conditions([4], [1], [1], [4.0], d0=1.0, d1=0.0, memory=12)
    >>> c.ok, c.strict
    (True, False)
    """
    n, r = _arr(thresholds, "thresholds"), _arr(rate, "rate")
    m_pi = wait_memory(n, prefill, decode)
    dt = wait_cycle_time(n, prefill, decode, d0, d1, d2)
    tol = 1e-12 * max(1.0, dt)
    bal = tuple(bool(dt <= nj / lj + tol) for nj, lj in zip(n, r))
    strict = all(dt < nj / lj - tol for nj, lj in zip(n, r))
    m_star = fluid_memory(prefill, decode, r, d0, d1, d2)
    return ThresholdCheck(dt, m_pi, bal, bool(strict), bool(m_pi <= memory),
                          bool(m_pi >= m_star * (1 - 1e-12)))


def practical_wait_thresholds(decode: ArrayLike, rate: ArrayLike, max_batch: int, rule: str = "balanced"
                              ) -> np.ndarray:
    """Integer WAIT thresholds from a batch-size limit B (at least 1 each).

    ``rule="paper"``: n_j = B rho_j / (l'_j + 1), rho_j = lambda_j / sum(lambda) (the
    OPRE-2025 text); ``rule="balanced"``: n_j = B lambda_j / sum_i lambda_i (l'_i + 1) (the
    authors' Vidur scheduler ``BookingLimitReplicaScheduler``), which keeps n_j / lambda_j
    equal across types as the balance condition asks. Both put about B prompts in a full
    batch and agree for one type. Rounded down (the authors' ``int(max(x, 1))``).

    >>> practical_wait_thresholds([20], [20.0], 256).tolist()
    [12]
    >>> practical_wait_thresholds([10, 20], [1000.0, 1000.0], 64, rule="paper").tolist()
    [2, 1]
    """
    lp, r = _arr(decode, "decode"), _arr(rate, "rate")
    if rule == "paper":
        x = max_batch * (r / r.sum()) / (lp + 1)
    elif rule == "balanced":
        x = max_batch * r / float(np.sum(r * (lp + 1)))
    else:
        raise ValueError(f"rule is {rule!r}; expected 'balanced' or 'paper'")
    return np.maximum(np.floor(x + 1e-9), 1).astype(np.int64)


def fluid_wait_thresholds(prefill: ArrayLike, decode: ArrayLike, rate: ArrayLike, d0: float, d1: float,
                          memory: float, max_batch: int | None = None, slack: float = 0.2,
                          d2: float = 0.0) -> tuple[np.ndarray, bool]:
    """Integer WAIT thresholds from the fluid conditions: n_j = ceil(kappa lambda_j) with
    kappa = (1 + slack) d0 / (1 - d1 A - d2 P) (the fluid n*_j = lambda_j dT*, scaled up by
    ``slack`` so that the balance inequalities are strict), raised until
    dT(n) < n_j / lambda_j holds after rounding.

    Returns ``(n, feasible)``. When no thresholds satisfy the conditions within memory C
    (and ``max_batch`` prompts per batch), the load is above what WAIT can serve: the
    largest thresholds that fit are returned with ``feasible=False``.

    >>> n, ok = fluid_wait_thresholds([1], [1], [4.0], d0=1.0, d1=0.0, memory=24, slack=0.2)
    >>> n.tolist(), ok
    ([5], True)
    """
    l, lp, r = _arr(prefill, "prefill"), _arr(decode, "decode"), _arr(rate, "rate")
    if slack < 0:
        raise ValueError(f"slack is {slack!r}; expected >= 0")
    w = work(l, lp)
    a = float(np.sum(r * w))
    u = d1 * a + d2 * float(np.sum(r * l))

    def fits(n: np.ndarray) -> bool:
        return (float(np.sum(n * w)) <= memory
                and (max_batch is None or int(np.sum(n * (lp + 1))) <= max_batch))

    def balanced(n: np.ndarray) -> bool:
        dt = d0 + d1 * float(np.sum(n * w)) + d2 * float(np.sum(n * l))
        return bool(np.all(dt < n / r))

    if u < 1.0:
        kappa = (1.0 + slack) * d0 / (1.0 - u)
        for _ in range(200):
            n = np.maximum(np.ceil(kappa * r - 1e-9), 1).astype(np.int64)
            if not fits(n):
                break
            if balanced(n) or slack == 0 and bool(np.all(d0 + d1 * float(np.sum(n * w)) + d2 * float(np.sum(n * l))
                                                          <= n / r + 1e-12)):
                return n, True
            kappa *= 1.05
    # infeasible: the largest proportional thresholds that fit
    lo, hi = 0.0, max(1.0, memory / max(float(np.sum(r * w)), 1e-300))
    while fits(np.maximum(np.ceil(hi * r - 1e-9), 1).astype(np.int64)) and hi < 1e12:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        if fits(np.maximum(np.ceil(mid * r - 1e-9), 1).astype(np.int64)):
            lo = mid
        else:
            hi = mid
    n = np.maximum(np.ceil(lo * r - 1e-9), 1).astype(np.int64)
    return n, False


# ----- Nested WAIT --------------------------------------------------------------------------------

def _bounds(boundaries: ArrayLike) -> np.ndarray:
    b = _arr(boundaries, "boundaries")
    if np.any(b < 1) or np.any(np.diff(b) <= 0) or np.any(b != np.round(b)):
        raise ValueError("boundaries must be increasing integers >= 1 (decode stages)")
    return b


def segment_sizes(boundaries: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(delta_k, sbar_k): the number of stages of each segment (segment 1 includes the
    prefill stage 0) and their mean decode stage.

    >>> d, s = segment_sizes([20, 50])
    >>> d.tolist(), s.tolist()
    ([21.0, 30.0], [10.0, 35.5])
    """
    b = _bounds(boundaries)
    prev = np.concatenate([[0.0], b[:-1]])
    delta = b - prev
    delta[0] = b[0] + 1
    sbar = (prev + 1 + b) / 2
    sbar[0] = b[0] / 2
    return delta, sbar


def nested_memory(thresholds: ArrayLike, boundaries: ArrayLike, prefill: float) -> float:
    """M^pi = sum_k n_k (l + sbar_k) delta_k (eq. nested_wait_memory).

    With one segment it is WAIT's memory n (l' + 1)(l + l'/2):

    >>> nested_memory([4], [1], 1.0) == wait_memory([4], [1], [1])
    True
    """
    n = _arr(thresholds, "thresholds")
    delta, sbar = segment_sizes(boundaries)
    if n.shape != delta.shape:
        raise ValueError(f"thresholds has {n.size} values; expected one per segment ({delta.size})")
    return float(np.sum(n * (prefill + sbar) * delta))


def segment_rates(boundaries: ArrayLike, decode: ArrayLike, rate: ArrayLike) -> np.ndarray:
    """lambda'_k: the arrival rate of requests whose decode length ends in segment k,
    (b_{k-1}, b_k] (requests longer than the last boundary count in the last segment).

    >>> segment_rates([20, 50], [20, 50], [14.0, 6.0]).tolist()
    [14.0, 6.0]
    """
    b = _bounds(boundaries)
    lp, r = _arr(decode, "decode"), _arr(rate, "rate")
    seg = np.minimum(np.searchsorted(b, lp, side="left"), b.size - 1)
    return np.bincount(seg, weights=r, minlength=b.size).astype(np.float64)


def continuation_probabilities(boundaries: ArrayLike, decode: ArrayLike, rate: ArrayLike) -> np.ndarray:
    """p_k for k = 2..K (shape (K-1,)): the probability that a prompt leaving segment
    k - 1 continues into segment k, sum_{r>=k} lambda'_r / sum_{r>=k-1} lambda'_r.

    >>> continuation_probabilities([20, 50], [20, 50], [14.0, 6.0]).tolist()
    [0.3]
    """
    lam = segment_rates(boundaries, decode, rate)
    tail = np.cumsum(lam[::-1])[::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(tail[:-1] > 0, tail[1:] / np.where(tail[:-1] > 0, tail[:-1], 1.0), 0.0)
    return p


def nested_conditions(thresholds: ArrayLike, boundaries: ArrayLike, prefill: float, decode: ArrayLike,
                      rate: ArrayLike, d0: float, d1: float, memory: float, d2: float = 0.0) -> ThresholdCheck:
    """Check eq. (nested_wait_thresholds): dT(n) < n_1 / sum(lambda) and
    p_k < n_k / n_{k-1} (the ``ordering``), and M^pi <= C (``memory``; the safety
    buffer of Theorem 2 is ``nested_required_memory``). ``prefill`` is the common (mean)
    prefill length l.

    >>> c = nested_conditions([5, 2], [20, 50], 512.0, [20, 50], [0.7, 0.3], d0=0.01, d1=1e-6, memory=1e6)
    >>> c.balance, c.ordering, c.memory
    ((True,), (True,), True)
    """
    n = _arr(thresholds, "thresholds")
    r = _arr(rate, "rate")
    m_pi = nested_memory(n, boundaries, prefill)
    dt = d0 + d1 * m_pi + d2 * float(n[0]) * prefill
    lam = float(r.sum())
    p = continuation_probabilities(boundaries, decode, r)
    ordering = tuple(bool(pk < n[k + 1] / n[k]) for k, pk in enumerate(p))
    return ThresholdCheck(dt, m_pi, (bool(dt < n[0] / lam),), bool(dt < n[0] / lam), bool(m_pi <= memory),
                          True, ordering)


def nested_theta(n_prev: float, n_k: float, p: float) -> float:
    """theta_k > 0 with exp(-theta n_k) (1 - p + p e^theta)^{n_prev} = 1 (Theorem 2); ``inf``
    when n_k >= n_prev or p = 0 (the boundary queue is then bounded, no tail term).
    Requires n_k > p n_prev (negative drift).

    >>> t = nested_theta(10, 5, 0.3)
    >>> abs(-t * 5 + 10 * math.log(0.7 + 0.3 * math.exp(t))) < 1e-9, t >= 8 * (5 - 10 * 0.3) / 10
    (True, True)
    """
    if not (0 <= p <= 1):
        raise ValueError(f"p is {p!r}; expected a probability in [0, 1]")
    if n_k <= p * n_prev:
        raise ValueError(f"n_k = {n_k:g} <= p n_prev = {p * n_prev:g}; expected n_k > p n_prev (negative drift)")
    if n_k >= n_prev or p == 0:
        return math.inf

    def f(t: float) -> float:
        return -t * n_k + n_prev * (math.log(p) + t + math.log1p((1 - p) * math.exp(-t) / p)) if t > 30 else \
            -t * n_k + n_prev * math.log(1 - p + p * math.exp(t))

    lo, hi = 1e-12, 1.0
    while f(hi) <= 0:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if f(mid) > 0:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


def nested_required_memory(thresholds: ArrayLike, boundaries: ArrayLike, prefill: float, decode: ArrayLike,
                           rate: ArrayLike, d0: float, horizon: float, delta: float = 0.01,
                           zeta: float = 1.0) -> float:
    """Theorem 2's memory M_req = M^pi + sum_{k>=2} (l + b_{k-1}) (n_k + ln(K (1 + zeta T / d0)
    / delta) / theta_k): with C >= M_req, Nested WAIT does not overflow over a horizon
    T (seconds) with probability >= 1 - delta.

    >>> m = nested_required_memory([5, 2], [20, 50], 512.0, [20, 50], [0.7, 0.3], d0=0.03, horizon=1000.0)
    >>> m > nested_memory([5, 2], [20, 50], 512.0)
    True
    """
    n = _arr(thresholds, "thresholds")
    b = _bounds(boundaries)
    if not (0 < delta < 1):
        raise ValueError(f"delta is {delta!r}; expected a probability in (0, 1)")
    if horizon <= 0 or d0 <= 0:
        raise ValueError("horizon and d0 must be > 0")
    p = continuation_probabilities(b, decode, rate)
    log_term = math.log(b.size * (1 + zeta * horizon / d0) / delta)
    total = nested_memory(n, b, prefill)
    for k in range(1, b.size):
        theta = nested_theta(float(n[k - 1]), float(n[k]), float(p[k - 1]))
        total += (prefill + b[k - 1]) * (n[k] + (log_term / theta if math.isfinite(theta) else 0.0))
    return float(total)


def nested_practical_thresholds(boundaries: ArrayLike, decode: ArrayLike, rate: ArrayLike, total: float,
                                eta: float = 0.05) -> np.ndarray:
    """Real-valued per-stage thresholds of the 2026 revision's real-data runs: with
    q_k = min(p_k + eta, 0.99), n_k = n_1 prod_{r<=k} q_r, and n_1 such that
    sum_k delta_k n_k = ``total`` (the system-wide batch-size cap tl). The revision's
    example: tl = 30 on 0.7 p512d20 + 0.3 p512d50 gives segment caps of about 21 and 9.

    >>> n = nested_practical_thresholds([20, 50], [20, 50], [0.7, 0.3], total=30, eta=0.0)
    >>> [round(float(x), 4) for x in n], [round(float(x * k), 4) for x, k in zip(n, segment_sizes([20, 50])[0])]
    ([1.0, 0.3], [21.0, 9.0])
    """
    b = _bounds(boundaries)
    delta, _ = segment_sizes(b)
    q = np.minimum(continuation_probabilities(b, decode, rate) + eta, 0.99)
    c = np.concatenate([[1.0], np.cumprod(q)])
    n1 = total / float(np.sum(delta * c))
    return n1 * c


def nested_fluid_thresholds(boundaries: ArrayLike, prefill: float, decode: ArrayLike, rate: ArrayLike,
                            d0: float, d1: float, slack: float = 0.2, eta: float = 0.05, d2: float = 0.0,
                            ) -> tuple[np.ndarray, bool]:
    """Real-valued Nested WAIT thresholds from the drift conditions: n_k = n_1 c_k with
    c_k = prod q_r (q = min(p + eta, 0.99)) and the smallest n_1 with
    d0 + d1 n_1 sum_k c_k (l + sbar_k) delta_k (+ d2 n_1 l) <= n_1 / sum(lambda), scaled by
    1 + slack. Returns ``(n, feasible)``; infeasible returns ``(c, False)``.

    >>> n, ok = nested_fluid_thresholds([20, 50], 512.0, [20, 50], [7.0, 3.0], d0=0.03, d1=1e-6)
    >>> ok, round(float(n[1] / n[0]), 2)
    (True, 0.35)
    """
    b = _bounds(boundaries)
    delta, sbar = segment_sizes(b)
    q = np.minimum(continuation_probabilities(b, decode, rate) + eta, 0.99)
    c = np.concatenate([[1.0], np.cumprod(q)])
    g = float(np.sum(c * (prefill + sbar) * delta))
    lam = float(np.sum(_arr(rate, "rate")))
    u = d1 * lam * g + d2 * lam * prefill
    if u >= 1.0:
        return c, False
    n1 = (1.0 + slack) * d0 * lam / (1.0 - u)
    return n1 * c, True


__all__ = [
    "work", "token_rate", "prefill_rate", "fluid_memory", "processing_time", "fluid_throughput", "load",
    "stability_limit",
    "wait_memory", "wait_cycle_time", "ThresholdCheck", "wait_conditions", "practical_wait_thresholds",
    "fluid_wait_thresholds", "segment_sizes", "nested_memory", "segment_rates", "continuation_probabilities",
    "nested_conditions", "nested_theta", "nested_required_memory", "nested_practical_thresholds",
    "nested_fluid_thresholds",
]
