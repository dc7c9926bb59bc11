"""The fluid benchmark and threshold conditions against closed forms and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest

from l2o.serving import fluid


def _brute_work(l, lp):
    """Tokens a request touches, summed stage by stage: prefill l, decode stage s: l + s."""
    return l + sum(l + s for s in range(1, lp + 1))


def _fixed_point_dt(l, lp, rate, d0, d1, d2=0.0, iters=20_000):
    """Balanced fluid iteration time by fixed-point iteration of dT = d0 + d1 M + d2 P-part with
    n_j = lambda_j dT (independent of the closed form)."""
    dt = d0
    for _ in range(iters):
        n = [r * dt for r in rate]
        m = sum(nj * _brute_work(lj, lpj) for nj, lj, lpj in zip(n, l, lp))
        dt_new = d0 + d1 * m + d2 * sum(nj * lj for nj, lj in zip(n, l))
        if abs(dt_new - dt) < 1e-15:
            break
        dt = dt_new
    return dt, m


def test_work_is_the_stage_sum():
    for l, lp in [(1, 1), (512, 20), (10, 300), (7, 1)]:
        assert fluid.work([l], [lp])[0] == _brute_work(l, lp)


@pytest.mark.parametrize("seed", range(5))
def test_fluid_memory_matches_fixed_point_and_single_type_closed_form(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 4))
    l = rng.integers(1, 600, size=m).tolist()
    lp = rng.integers(1, 300, size=m).tolist()
    w = [_brute_work(a, b) for a, b in zip(l, lp)]
    d0, d1 = float(rng.uniform(0.005, 0.3)), float(rng.uniform(1e-7, 1e-5))
    # rates at 60% of the d1 limit so that the equilibrium exists
    scale = 0.6 / (d1 * sum(w))
    rate = (rng.uniform(0.2, 1.0, size=m) * scale).tolist()
    dt, m_fp = _fixed_point_dt(l, lp, rate, d0, d1)
    assert fluid.fluid_memory(l, lp, rate, d0, d1) == pytest.approx(m_fp, rel=1e-9)
    assert fluid.processing_time(l, lp, rate, d0, d1) == pytest.approx(dt, rel=1e-9)
    if m == 1:  # the paper's single-type form: n* = d0 lam (l'+1) / (1 - d1 lam (l'+1)(l + l'/2)), M* = n* (l + l'/2)
        lam = rate[0]
        n_star = d0 * lam * (lp[0] + 1) / (1 - d1 * lam * (lp[0] + 1) * (l[0] + lp[0] / 2))
        assert fluid.fluid_memory(l, lp, rate, d0, d1) == pytest.approx(n_star * (l[0] + lp[0] / 2), rel=1e-12)


def test_prefill_term_d2_matches_fixed_point():
    l, lp, rate = [512, 100], [20, 50], [3.0, 1.0]
    d0, d1, d2 = 0.013, 1e-6, 4e-5
    dt, m_fp = _fixed_point_dt(l, lp, rate, d0, d1, d2)
    assert fluid.processing_time(l, lp, rate, d0, d1, d2) == pytest.approx(dt, rel=1e-9)
    assert fluid.fluid_memory(l, lp, rate, d0, d1, d2) == pytest.approx(m_fp, rel=1e-9)


def test_throughput_and_unstable_memory():
    assert fluid.fluid_throughput([20, 50], [14.0, 6.0]) == 14 * 20 + 6 * 50
    assert math.isinf(fluid.fluid_memory([512], [20], [1000.0], 0.03, 1.2e-5))
    assert math.isinf(fluid.processing_time([512], [20], [1000.0], 0.03, 1.2e-5))


@pytest.mark.parametrize("seed", range(20))
def test_load_below_one_iff_fluid_memory_fits(seed):
    rng = np.random.default_rng(seed)
    l, lp = rng.integers(1, 600, size=2), rng.integers(1, 300, size=2)
    rate = rng.uniform(0.1, 20, size=2)
    d0, d1, d2 = rng.uniform(0.001, 0.3), rng.uniform(1e-7, 2e-5), rng.choice([0.0, 1e-5])
    C = float(rng.integers(1000, 300_000))
    rho = fluid.load(l, lp, rate, d0, d1, C, d2)
    assert (rho <= 1) == (fluid.fluid_memory(l, lp, rate, d0, d1, d2) <= C)
    # the stability limit puts the load at exactly 1
    lim = fluid.stability_limit(l, lp, rate, d0, d1, C, d2)
    assert fluid.load(l, lp, rate * lim / rate.sum(), d0, d1, C, d2) == pytest.approx(1.0, rel=1e-12)
    assert fluid.fluid_memory(l, lp, rate * lim / rate.sum(), d0, d1, d2) == pytest.approx(C, rel=1e-9)


def test_wait_conditions_at_the_fluid_equilibrium():
    l, lp, rate, d0, d1 = [512, 20], [20, 100], [4.0, 2.0], 0.03, 1e-6
    dt = fluid.processing_time(l, lp, rate, d0, d1)
    n = [r * dt for r in rate]  # n*_j = lambda_j dT*: equality in every condition
    c = fluid.wait_conditions(n, l, lp, rate, d0, d1, memory=1e9)
    assert c.ok and not c.strict
    assert c.memory_use == pytest.approx(fluid.fluid_memory(l, lp, rate, d0, d1), rel=1e-9)
    smaller = fluid.wait_conditions([0.9 * x for x in n], l, lp, rate, d0, d1, memory=1e9)
    assert not all(smaller.balance) and not smaller.covers_fluid
    assert not fluid.wait_conditions([2 * x for x in n], l, lp, rate, d0, d1, memory=c.memory_use).memory


def test_fluid_wait_thresholds_meet_the_conditions_strictly():
    for rate in ([2.0], [5.0], [7.0]):
        n, ok = fluid.fluid_wait_thresholds([512], [20], rate, 0.03, 1.2e-5, 137_000, 256)
        assert ok
        c = fluid.wait_conditions(n, [512], [20], rate, 0.03, 1.2e-5, 137_000)
        assert c.ok and c.strict
    # above the limit: the largest thresholds that fit, flagged
    n, ok = fluid.fluid_wait_thresholds([512], [20], [9.0], 0.03, 1.2e-5, 137_000, 256)
    assert not ok and fluid.wait_memory(n, [512], [20]) <= 137_000
    assert fluid.wait_memory(n + 1, [512], [20]) > 137_000 or int(np.sum((n + 1) * 21)) > 256


def test_practical_thresholds():
    # one type: both rules give B / (l' + 1)
    assert fluid.practical_wait_thresholds([20], [7.0], 256, "paper").tolist() == [256 // 21]
    assert fluid.practical_wait_thresholds([20], [7.0], 256, "balanced").tolist() == [256 // 21]
    # the 2025 high-demand workload, B = 448: paper rule n_j = B rho_j / (l'_j + 1)
    n = fluid.practical_wait_thresholds([100, 200, 300], [6000, 4000, 2000], 448, "paper")
    assert n.tolist() == [max(1, int(448 * r / 12000 / (d + 1))) for r, d in ((6000, 100), (4000, 200), (2000, 300))]
    # balanced: n_j / lambda_j is the same for every type (up to rounding)
    nb = fluid.practical_wait_thresholds([10, 20], [1000, 3000], 640, "balanced")
    assert nb.tolist() == [int(640 * 1000 / 74000), int(640 * 3000 / 74000)]  # sum lambda (l'+1) = 74000
    with pytest.raises(ValueError, match="rule"):
        fluid.practical_wait_thresholds([10], [1.0], 10, "other")


def _brute_nested_memory(n, b, l):
    total, prev = 0.0, -1
    for nk, bk in zip(n, b):
        total += nk * sum(l + s for s in range(prev + 1, bk + 1))
        prev = bk
    return total


def test_nested_memory_is_the_stage_sum():
    for n, b, l in [([4], [1], 1.0), ([5, 2], [20, 50], 512.0), ([15, 14, 12, 8], [20, 40, 80, 160], 10.0)]:
        assert fluid.nested_memory(n, b, l) == pytest.approx(_brute_nested_memory(n, b, l), rel=1e-12)
    assert fluid.nested_memory([3], [20], 512.0) == fluid.wait_memory([3], [512], [20])


def test_continuation_probabilities_brute_force():
    decode, rate, b = [20, 40, 80, 160], [20.0, 40.0, 80.0, 160.0], [20, 40, 80, 160]
    p = fluid.continuation_probabilities(b, decode, rate)
    total = sum(rate)
    expect = [(total - sum(rate[:k])) / (total - sum(rate[:k - 1])) for k in range(1, 4)]
    np.testing.assert_allclose(p, expect, rtol=1e-12)
    # coarser segments: rates are pooled per segment
    assert fluid.segment_rates([40, 160], decode, rate).tolist() == [60.0, 240.0]


@pytest.mark.parametrize("seed", range(30))
def test_theta_solves_its_equation_and_the_paper_bound(seed):
    rng = np.random.default_rng(seed)
    n_prev = float(rng.integers(2, 200))
    p = float(rng.uniform(0.01, 0.99))
    n_k = float(rng.uniform(p * n_prev * 1.001, n_prev * 0.999))
    th = fluid.nested_theta(n_prev, n_k, p)
    # exp(-theta n_k) (1 - p + p e^theta)^n_prev = 1, in logs (the powers overflow)
    log_lhs = -th * n_k + n_prev * (th + math.log(p + (1 - p) * math.exp(-th)))
    assert abs(log_lhs) < 1e-6 * max(1.0, th * n_k)
    assert th >= 8 * (n_k - n_prev * p) / n_prev * (1 - 1e-9)
    assert math.isinf(fluid.nested_theta(10, 10, 0.5))
    with pytest.raises(ValueError, match="negative drift"):
        fluid.nested_theta(10, 2, 0.5)


def test_nested_required_memory_adds_the_buffer():
    n, b, l, dec, rate = [10, 4], [20, 50], 512.0, [20, 50], [0.7, 0.3]
    base = fluid.nested_memory(n, b, l)
    th = fluid.nested_theta(10, 4, 0.3)
    log_term = math.log(2 * (1 + 1000 / 0.03) / 0.01)
    expect = base + (512 + 20) * (4 + log_term / th)
    assert fluid.nested_required_memory(n, b, l, dec, rate, d0=0.03, horizon=1000.0, delta=0.01) == pytest.approx(
        expect, rel=1e-12)
    # the buffer grows like log(T)
    m1 = fluid.nested_required_memory(n, b, l, dec, rate, d0=0.03, horizon=1e3)
    m2 = fluid.nested_required_memory(n, b, l, dec, rate, d0=0.03, horizon=1e6)
    assert 0 < m2 - m1 < (512 + 20) * math.log(1e3 + 1) / th + 1


def test_nested_thresholds_rules():
    n, ok = fluid.nested_fluid_thresholds([20, 50], 512.0, [20, 50], [7.0, 3.0], d0=0.03, d1=1e-6, slack=0.0, eta=0.0)
    assert ok
    c = fluid.nested_conditions(n, [20, 50], 512.0, [20, 50], [7.0, 3.0], 0.03, 1e-6, 1e9)
    assert c.cycle_time == pytest.approx(n[0] / 10.0, rel=1e-9)  # equality at slack 0
    assert n[1] / n[0] == pytest.approx(0.3)
    n2, _ = fluid.nested_fluid_thresholds([20, 50], 512.0, [20, 50], [7.0, 3.0], d0=0.03, d1=1e-6, slack=0.2,
                                          eta=0.05)
    c2 = fluid.nested_conditions(n2, [20, 50], 512.0, [20, 50], [7.0, 3.0], 0.03, 1e-6, 1e9)
    assert c2.ok and c2.strict
    _, ok = fluid.nested_fluid_thresholds([20, 50], 512.0, [20, 50], [700.0, 300.0], d0=0.03, d1=1e-5)
    assert not ok
