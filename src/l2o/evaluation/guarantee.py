"""Data-driven performance guarantees: how many instances of a family a solver leaves
above a tolerance after K iterations, with a high-probability bound for the family.

Sambharya and Stellato, *Data-driven performance guarantees for classical and learned
optimizers*, arXiv 2404.13831 (2024). Run a solver on N instances drawn i.i.d. from a
family (fresh ones: not the instances a learned solver was trained on). For a tolerance
eps and an iteration budget K, an instance *fails* when the solver has not brought its
measure (relative suboptimality, or the certificate without a reference) to <= eps
within K iterations. The number of failures k is Binomial(N, p) with p the family's
failure probability, so with probability at least 1 - delta over the sample

    p <= kl^{-1}(k / N, log(1/delta) / N) = max { q in [k/N, 1] : N kl(k/N || q) <= log(1/delta) },

kl(a || q) = a log(a / q) + (1 - a) log((1 - a) / (1 - q)) the Bernoulli KL divergence
(Langford and Schapire's binomial-tail inversion via the Chernoff bound
P(Bin(N, q) <= k) <= exp(-N kl(k/N || q)) for k/N <= q). The bound is never below the
exact Clopper-Pearson upper bound (the Chernoff bound overestimates the binomial tail)
and equals it, 1 - delta^(1/N), at k = 0. Each (solver, tolerance, budget) bound holds
with confidence 1 - delta on its own; for all rows of a table at once use
delta / (number of rows) (Bonferroni).

The first hitting time is read from the recorded iterations (``Trajectory.iterations_to``),
so with ``record_every > 1`` a failure count can only be too high (a conservative bound).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from l2o.evaluation.compare import Comparison
from l2o.evaluation.run import Trajectory

DEFAULT_DELTA = 0.01
GUARANTEE_TOLERANCES: tuple[float, ...] = (1e-2, 1e-4, 1e-6)
#: Default budgets, as fractions of the longest run (with a run of 10 x a learned solver's
#: horizon h: h, 2h, 5h and 10h iterations).
BUDGET_FRACTIONS: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0)
#: Bisection tolerance of ``kl_upper_bound``: the returned bound exceeds the exact
#: inverse by at most this (and is never below it).
KL_INVERSE_TOL = 1e-12


def _check_delta(delta: float) -> float:
    delta = float(delta)
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    return delta


def kl_bernoulli(a: Any, q: Any) -> np.ndarray:
    """Bernoulli KL divergence kl(a || q) elementwise (0 log 0 = 0; +inf where q hits
    0 or 1 and a does not). ``a``, ``q`` in [0, 1], broadcast together.

    >>> float(kl_bernoulli(0.5, 0.5)), round(float(kl_bernoulli(0.0, 0.5)), 6)
    (0.0, 0.693147)
    """
    a, q = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(q, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(a > 0, a * np.log(a / q), 0.0)
        right = np.where(a < 1, (1 - a) * np.log((1 - a) / (1 - q)), 0.0)
    return left + right


def kl_upper_bound(failures: Any, n: int, delta: float = DEFAULT_DELTA, tol: float = KL_INVERSE_TOL) -> np.ndarray:
    """Upper bound on a Bernoulli probability from ``failures`` successes in ``n`` trials,
    valid with probability >= 1 - delta: the largest q with n kl(failures/n || q) <= log(1/delta).

    Bisection on [failures/n, 1] (kl(a || q) increases in q there), vectorized over
    ``failures``; the result lies in [q*, q* + tol] for the exact inverse q*, so it is
    never below it. ``failures``: int or array of ints in [0, n].

    >>> round(float(kl_upper_bound(0, 100, 0.01)), 6) == round(1 - 0.01 ** (1 / 100), 6)
    True
    """
    delta = _check_delta(delta)
    if int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n}")
    k = np.asarray(failures, dtype=np.float64)
    if np.any((k < 0) | (k > n)) or np.any(k != np.round(k)):
        raise ValueError(f"failures must be integers in [0, n={n}], got {failures}")
    a = k / n
    c = math.log(1.0 / delta) / n
    lo, hi = a.copy(), np.ones_like(a)
    for _ in range(max(1, math.ceil(math.log2(1.0 / tol)))):
        mid = 0.5 * (lo + hi)
        inside = kl_bernoulli(a, mid) <= c
        lo, hi = np.where(inside, mid, lo), np.where(inside, hi, mid)
    return np.where(a >= 1, 1.0, hi)


def clopper_pearson_upper(failures: Any, n: int, delta: float = DEFAULT_DELTA) -> np.ndarray:
    """The exact one-sided (Clopper-Pearson) upper bound at confidence 1 - delta: the q
    with P(Bin(n, q) <= failures) = delta, i.e. the (1 - delta) quantile of
    Beta(failures + 1, n - failures) (1 where failures = n). Never above ``kl_upper_bound``.

    >>> round(float(clopper_pearson_upper(0, 100, 0.01)), 6) == round(1 - 0.01 ** (1 / 100), 6)
    True
    """
    delta = _check_delta(delta)
    k = np.asarray(failures, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        q = stats.beta.ppf(1 - delta, k + 1, np.maximum(n - k, 1e-300))
    return np.where(k >= n, 1.0, q)


@dataclasses.dataclass(frozen=True)
class GuaranteeRow:
    """One solver, tolerance and budget.

    Attributes:
        solver, tol, budget: the solver's name, the tolerance eps and the iterations K.
        instances: N, the number of instances.
        failures: k, instances not at <= tol within ``budget`` iterations (None where the
            run stopped before ``budget`` with some instance not there yet: unknown).
        empirical: k / N (None with ``failures``).
        bound: the KL-inverse upper bound on the family's failure probability (None with
            ``failures``).
    """

    solver: str
    tol: float
    budget: int
    instances: int
    failures: int | None
    empirical: float | None
    bound: float | None


@dataclasses.dataclass
class Guarantee:
    """The guarantee table: rows per solver x tolerance x budget, at confidence 1 - delta.

    Attributes:
        rows: ``GuaranteeRow``s, by solver, then tolerance, then budget.
        delta: 1 - the confidence of each bound.
        measure: "gap" (relative suboptimality) or "certificate".
    """

    rows: list[GuaranteeRow]
    delta: float
    measure: str

    @property
    def confidence(self) -> float:
        return 1.0 - self.delta

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: delta, confidence, measure, method and the rows as dicts."""
        return {"delta": self.delta, "confidence": self.confidence, "measure": self.measure,
                "method": "binomial KL inverse (Sambharya and Stellato, arXiv 2404.13831)",
                "rows": [dataclasses.asdict(r) for r in self.rows]}


def default_budgets(max_iter: int, fractions: Sequence[float] = BUDGET_FRACTIONS) -> tuple[int, ...]:
    """Budgets ``round(f * max_iter)`` (at least 1) for the ``fractions``, distinct and sorted.

    >>> default_budgets(400)
    (40, 80, 200, 400)
    """
    return tuple(sorted({max(1, int(round(f * max_iter))) for f in fractions}))


def _trajectories(source: Comparison | Mapping[str, Trajectory] | Trajectory) -> dict[str, Trajectory]:
    if isinstance(source, Comparison):
        return dict(source.trajectories)
    if isinstance(source, Trajectory):
        return {source.solver: source}
    if isinstance(source, Mapping) and all(isinstance(t, Trajectory) for t in source.values()):
        return dict(source)
    raise ValueError(f"source must be a Comparison, a Trajectory or a mapping name -> Trajectory, "
                     f"got {type(source).__name__}")


def guarantee_table(
    source: Comparison | Mapping[str, Trajectory] | Trajectory,
    tolerances: Sequence[float] = GUARANTEE_TOLERANCES,
    budgets: Sequence[int] | None = None,
    delta: float = DEFAULT_DELTA,
) -> Guarantee:
    """The guarantee table of solvers run on N instances of a family.

    Args:
        source: a ``Comparison``, a ``Trajectory`` or a mapping name -> ``Trajectory``
            (``(T, B)`` measures; B = N instances drawn i.i.d. from the family).
        tolerances: the levels eps of the measure (relative suboptimality, or the
            certificate for trajectories without a reference).
        budgets: iteration budgets K (None: ``default_budgets`` of the longest run).
        delta: each bound holds with probability >= 1 - delta.

    Returns:
        ``Guarantee``: per solver, tolerance and budget the failure count, its fraction
        and ``kl_upper_bound`` of it.

    >>> import torch
    >>> t = Trajectory("s", torch.tensor([0, 5, 10]), torch.zeros(3, 4), torch.tensor([[1.0] * 4, [1e-3, 1, 1, 1],
    ...     [1e-3, 1e-3, 1e-3, 1]]), None, torch.zeros(3), torch.zeros(4, 1))
    >>> [(r.budget, r.failures) for r in guarantee_table(t, tolerances=[1e-2], budgets=[5, 10]).rows]
    [(5, 3), (10, 1)]
    """
    delta = _check_delta(delta)
    trajectories = _trajectories(source)
    if not trajectories:
        raise ValueError("source holds no trajectories")
    tols = [float(t) for t in tolerances]
    if not tols or any(not t > 0 for t in tols):
        raise ValueError(f"tolerances must be numbers > 0, got {list(tolerances)}")
    if budgets is None:
        budgets = default_budgets(max(int(t.iterations[-1]) for t in trajectories.values()))
    budgets = [int(k) for k in budgets]
    if not budgets or any(k < 0 for k in budgets):
        raise ValueError(f"budgets must be integers >= 0, got {list(budgets)}")
    measures = {"gap" if t.gap is not None else "certificate" for t in trajectories.values()}
    rows: list[GuaranteeRow] = []
    for name, traj in trajectories.items():
        n = int(traj.objective.shape[1])
        last = int(traj.iterations[-1])
        for tol in tols:
            hit = traj.iterations_to(tol).numpy()  # -1: never
            never = hit < 0
            for K in budgets:
                if K > last and bool(never.any()):  # the run stopped before K: unknown
                    rows.append(GuaranteeRow(name, tol, K, n, None, None, None))
                    continue
                k = int((never | (hit > K)).sum())
                rows.append(GuaranteeRow(name, tol, K, n, k, k / n, float(kl_upper_bound(k, n, delta))))
    return Guarantee(rows=rows, delta=delta, measure=" / ".join(sorted(measures)))


__all__ = [
    "DEFAULT_DELTA", "GUARANTEE_TOLERANCES", "BUDGET_FRACTIONS", "KL_INVERSE_TOL", "kl_bernoulli", "kl_upper_bound",
    "clopper_pearson_upper", "GuaranteeRow", "Guarantee", "default_budgets", "guarantee_table",
]
