"""The MIMO reference of ``l2o.evaluation.reference`` (best of several WMMSE runs from
``MimoInstances.reference_starts``) against every one of its starts."""

from __future__ import annotations

import torch

from l2o.evaluation.reference import reference, run_to_stationarity
from l2o.optimizers.wmmse import WMMSE
from l2o.problems import MimoFamily


def small_batch():
    return MimoFamily(cells=3, users=2, tx_antennas=4, rx_antennas=2, streams=2, power=10.0, noise=1.0).sample(4, 0)


def test_reference_is_at_least_as_good_as_every_start():
    p = small_batch()
    ref = reference(p)
    r_star = -ref.objective
    assert "local optimum" in ref.method and "MRT" in ref.method
    torch.testing.assert_close(p.sum_rate(ref.x), r_star, rtol=1e-14, atol=0)
    assert bool((p.power(ref.x) <= p.budget * (1 + 1e-9)).all())
    starts = p.reference_starts()
    assert [name for name, _ in starts][:3] == ["MRT", "RZF", "ZF"] and len(starts) == 6
    for name, x0 in starts:
        assert bool((p.sum_rate(x0) <= r_star).all()), name
    # WMMSE from every start at once (one batch of 6 x 4), 150 iterations: never better than
    # the reference beyond the tail its stopping rule leaves (relative change < 1e-9 per step)
    big = p.index(torch.arange(4).repeat(len(starts)))
    x = run_to_stationarity(WMMSE(), big, torch.cat([x0 for _, x0 in starts]), 0.0, 150).x
    rates = big.sum_rate(x).reshape(len(starts), 4)
    assert bool((rates <= r_star * (1 + 1e-6)).all())
    assert bool((rates.max(0).values >= r_star * (1 - 1e-2)).all())  # and it is attained by one of them
    # the gap is (R* - R) / R*
    x0 = p.initial_point()
    torch.testing.assert_close(ref.relative_gap(p.objective(x0)), (r_star - p.sum_rate(x0)) / r_star)
    # a sub-batch gets the same starts (the random ones are shared by all instances)
    sub = p.index(torch.tensor([1]))
    for (_, a), (_, b) in zip(sub.reference_starts(), starts):
        torch.testing.assert_close(a, b[1:2], rtol=1e-14, atol=0)


def test_reference_is_the_old_loop_bitwise():
    """The one solve loop with RelativeChange gives what the dedicated MIMO loop gave: a
    plain WMMSE iteration checked every 10 steps on the rate change of the last step."""
    p = small_batch()
    solver = WMMSE()
    starts = p.reference_starts()
    x0 = starts[0][1]
    res = run_to_stationarity(solver, p, x0, 1e-6, 2000)
    state, x_prev = solver.init(p, x0), None
    done_at = torch.full((4,), -1)
    xs = torch.zeros_like(x0)
    for k in range(1, 2001):
        x_prev, state = state.x, solver.step(p, state)
        if k % 10 == 0:
            r_new, r_old = p.sum_rate(state.x), p.sum_rate(x_prev)
            new = ((r_new - r_old).abs() <= 1e-6 * r_new.abs()) & (done_at < 0)
            xs[new] = state.x[new]
            done_at[new] = k
    assert bool((done_at > 0).all())
    torch.testing.assert_close(res.iterations, done_at)
    torch.testing.assert_close(res.x, xs, rtol=1e-12, atol=1e-12)
