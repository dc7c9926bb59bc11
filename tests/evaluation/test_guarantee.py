"""The guarantee table's bound (binomial KL inverse) against its closed forms, an
independent root finder, scipy's exact binomial bound and simulation; and the table's
failure counts on trajectories whose hitting times are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.optimize import brentq

from l2o.evaluation import Trajectory, compare
from l2o.evaluation.guarantee import (
    KL_INVERSE_TOL,
    clopper_pearson_upper,
    default_budgets,
    guarantee_table,
    kl_bernoulli,
    kl_upper_bound,
)
from l2o.problems import LassoFamily
from l2o.registry import make_solver
from l2o.report.table import summarize_comparison

# ----- the bound -----------------------------------------------------------------------------------------


def test_kl_bernoulli_against_scipy_entropy():
    for a, q in [(0.3, 0.5), (0.01, 0.2), (0.9, 0.4), (0.0, 0.3), (1.0, 0.7)]:
        expected = stats.entropy([a, 1 - a], [q, 1 - q])  # sum a log(a/q), 0 log 0 = 0
        assert float(kl_bernoulli(a, q)) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert np.isinf(kl_bernoulli(0.5, 1.0)) and np.isinf(kl_bernoulli(0.5, 0.0))
    assert float(kl_bernoulli(1.0, 1.0)) == 0.0


@pytest.mark.parametrize("delta", [0.01, 0.05, 0.2])
@pytest.mark.parametrize("n", [1, 10, 100, 1000, 100_000])
def test_zero_failures_closed_form(n, delta):
    """n kl(0 || q) = -n log(1 - q) = log(1/delta)  <=>  q = 1 - delta^(1/n)."""
    exact = 1.0 - delta ** (1.0 / n)
    bound = float(kl_upper_bound(0, n, delta))
    assert exact <= bound <= exact + KL_INVERSE_TOL
    # and the exact Clopper-Pearson bound coincides with it at k = 0: P(Bin(n, q) = 0) = (1 - q)^n = delta
    assert float(clopper_pearson_upper(0, n, delta)) == pytest.approx(exact, rel=1e-9, abs=1e-15)


def test_all_failures_and_bounds_are_probabilities():
    assert float(kl_upper_bound(7, 7)) == 1.0
    b = kl_upper_bound(np.arange(51), 50, 0.01)
    assert np.all(np.diff(b) > 0) and np.all(b <= 1.0) and np.all(b >= np.arange(51) / 50)


@pytest.mark.parametrize("n,k", [(10, 1), (10, 5), (100, 3), (100, 50), (1000, 999), (256, 12)])
@pytest.mark.parametrize("delta", [0.01, 0.1])
def test_inversion_is_exact_to_the_bisection_tolerance(n, k, delta):
    """Against brentq on q -> n kl(k/n || q) - log(1/delta), an independent root finder."""
    a, c = k / n, math.log(1 / delta)
    exact = brentq(lambda q: n * float(kl_bernoulli(a, q)) - c, a + 1e-15, 1 - 1e-15, xtol=1e-15, rtol=1e-15)
    bound = float(kl_upper_bound(k, n, delta))
    assert exact - 1e-14 <= bound <= exact + KL_INVERSE_TOL
    assert n * float(kl_bernoulli(a, bound - KL_INVERSE_TOL)) <= c  # just below: still inside the set


def test_clopper_pearson_against_binomtest_and_never_above_kl():
    """The known relation: Chernoff's P(Bin(n, q) <= k) <= exp(-n kl(k/n || q)) makes the
    KL inverse at least the exact (Clopper-Pearson) bound, with equality at k = 0."""
    for n in [5, 20, 100, 500]:
        for delta in [0.01, 0.05]:
            ks = np.unique(np.linspace(0, n - 1, 12).round().astype(int))
            cp = clopper_pearson_upper(ks, n, delta)
            kl = kl_upper_bound(ks, n, delta)
            for k, c in zip(ks, cp):
                ref = stats.binomtest(int(k), n, alternative="less").proportion_ci(
                    confidence_level=1 - delta, method="exact").high
                assert c == pytest.approx(ref, rel=1e-9, abs=1e-12)
                # P(Bin(n, cp) <= k) = delta: the defining equation
                assert stats.binom.cdf(k, n, c) == pytest.approx(delta, rel=1e-6)
            assert np.all(cp <= kl + 1e-12)
            assert np.all(kl[ks > 0] > cp[ks > 0])  # strictly looser once there are failures
    # asymptotically both approach a = k/n; the KL inverse stays within Hoeffding's sqrt(log(1/delta) / (2n))
    n, k, delta = 10_000, 500, 0.01
    assert kl_upper_bound(k, n, delta) <= k / n + math.sqrt(math.log(1 / delta) / (2 * n))


@pytest.mark.parametrize("p,n", [(0.01, 50), (0.1, 20), (0.3, 100), (0.05, 200)])
def test_coverage_by_simulation(p, n):
    """Over many simulated samples of n instances with failure probability p, the bound
    covers p in at least 1 - delta of them; the empirical rate alone does not (so the
    test can fail)."""
    delta, reps = 0.1, 20_000
    k = np.random.default_rng(12345).binomial(n, p, size=reps)
    slack = 3 * math.sqrt(delta * (1 - delta) / reps)  # Monte Carlo error of a coverage of 1 - delta
    covered = np.mean(kl_upper_bound(k, n, delta) >= p)
    assert covered >= 1 - delta - slack
    assert np.mean(clopper_pearson_upper(k, n, delta) >= p) >= 1 - delta - slack
    assert np.mean(k / n >= p) < 1 - delta  # a point estimate is no bound


@pytest.mark.parametrize("call,message", [
    (lambda: kl_upper_bound(0, 10, 0.0), "delta must be in"),
    (lambda: kl_upper_bound(0, 10, 1.0), "delta must be in"),
    (lambda: kl_upper_bound(11, 10), "failures must be integers in"),
    (lambda: kl_upper_bound(1.5, 10), "failures must be integers in"),
    (lambda: kl_upper_bound(0, 0), "n must be an integer >= 1"),
])
def test_bad_bound_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ----- the table -------------------------------------------------------------------------------------------


def staircase(hits: list[int | None], T: int = 20, name: str = "s", stop: int | None = None) -> Trajectory:
    """A trajectory whose instance b has gap 1 before iteration hits[b] and 1e-9 from it
    on (None: never); recorded at every iteration up to T (or ``stop``)."""
    last = T if stop is None else stop
    its = torch.arange(last + 1)
    gap = torch.ones(last + 1, len(hits), dtype=torch.float64)
    for b, h in enumerate(hits):
        if h is not None:
            gap[h:, b] = 1e-9
    return Trajectory(name, its, torch.zeros_like(gap), gap, None, torch.zeros(last + 1, dtype=torch.float64),
                      torch.zeros(len(hits), 1))


def test_failure_counts_on_known_hitting_times():
    hits = [0, 3, 5, 5, 8, 12, None, 20]
    g = guarantee_table(staircase(hits), tolerances=[1e-4], budgets=[0, 4, 5, 11, 12, 20], delta=0.05)
    n = len(hits)
    expected = {0: 7, 4: 6, 5: 4, 11: 3, 12: 2, 20: 1}  # more than K iterations, or never
    assert [(r.budget, r.failures) for r in g.rows] == list(expected.items())
    for r in g.rows:
        assert r.instances == n and r.empirical == r.failures / n
        assert r.bound == pytest.approx(float(kl_upper_bound(r.failures, n, 0.05)))
    assert g.measure == "gap" and g.confidence == 0.95


def test_budgets_beyond_a_stopped_run():
    """A run that stopped early (every instance below its stop level) answers for any
    budget; one that stopped with an instance not there yet cannot (None)."""
    all_reached = guarantee_table(staircase([1, 2, 3], stop=5), tolerances=[1e-4], budgets=[2, 50])
    assert [r.failures for r in all_reached.rows] == [1, 0]
    unknown = guarantee_table(staircase([1, None], stop=5), tolerances=[1e-4], budgets=[5, 50])
    assert [r.failures for r in unknown.rows] == [1, None] and unknown.rows[1].bound is None
    tight = guarantee_table(staircase([1, 2, 3], stop=5), tolerances=[1e-12], budgets=[5])
    assert tight.rows[0].failures == 3  # the measure never went below 1e-12


def test_table_of_a_comparison_agrees_with_the_summary():
    """On a real comparison, at the full budget the failure fraction is 1 - reached of
    ``summarize``, for every solver and tolerance."""
    problem = LassoFamily(m=20, n=40, nnz=4, lam=0.05).sample(24, 3)
    comparison = compare({"ista": make_solver("ista"), "fista": make_solver("fista")}, problem, max_iter=200)
    g = guarantee_table(comparison)
    assert {r.budget for r in g.rows} == set(default_budgets(200)) == {20, 40, 100, 200}
    reached = {(r["solver"], r["tol"]): r["reached"] for r in summarize_comparison(comparison)}
    for r in g.rows:
        if r.budget == 200:
            assert r.empirical == pytest.approx(1 - reached[(r.solver, r.tol)])
    # more iterations never fail more instances
    by = {(r.solver, r.tol, r.budget): r.failures for r in g.rows}
    for (s, tol, K), k in by.items():
        later = [by[(s, tol, K2)] for K2 in (20, 40, 100, 200) if K2 > K]
        assert all(k2 <= k for k2 in later)
    assert g.to_json()["rows"][0].keys() >= {"solver", "tol", "budget", "instances", "failures", "empirical", "bound"}
    # a mapping of trajectories gives the same rows
    assert guarantee_table(comparison.trajectories).rows == g.rows


def test_certificate_trajectories_and_bad_table_inputs():
    t = staircase([1, 2])
    cert = Trajectory("c", t.iterations, t.objective, None, t.gap, t.time, t.x)
    assert guarantee_table(cert, tolerances=[1e-4], budgets=[1]).measure == "certificate"
    with pytest.raises(ValueError, match="tolerances must be numbers > 0"):
        guarantee_table(t, tolerances=[0.0])
    with pytest.raises(ValueError, match="budgets must be integers >= 0"):
        guarantee_table(t, budgets=[-1])
    with pytest.raises(ValueError, match="delta must be in"):
        guarantee_table(t, delta=2)
    with pytest.raises(ValueError, match="source must be a Comparison"):
        guarantee_table([t])
