"""``l2o.problems.mimo.reference``: the reference solution (best of several WMMSE runs)
against every one of its starts."""

from __future__ import annotations

import torch

from l2o.optimizers.wmmse import WMMSE
from l2o.problems.mimo.reference import reference_starts, run_wmmse_to_convergence


def test_reference_is_at_least_as_good_as_every_start(small_batch):
    p = small_batch
    ref = p.reference()
    r_star = -ref.objective
    assert "local optimum" in ref.method and "MRT" in ref.method
    torch.testing.assert_close(p.sum_rate(ref.x), r_star, rtol=1e-14, atol=0)
    assert bool((p.power(ref.x) <= p.budget * (1 + 1e-9)).all())
    starts = reference_starts(p)
    assert [name for name, _ in starts][:3] == ["MRT", "RZF", "ZF"] and len(starts) == 6
    for name, x0 in starts:
        assert bool((p.sum_rate(x0) <= r_star).all()), name
    # WMMSE from every start at once (one batch of 6 x 4), 150 iterations: never better than
    # the reference beyond the tail its stopping rule leaves (relative change < 1e-9 per step)
    big = p.index(torch.arange(4).repeat(len(starts)))
    x, _ = run_wmmse_to_convergence(big, torch.cat([x0 for _, x0 in starts]), WMMSE(), 0.0, 150)
    rates = big.sum_rate(x).reshape(len(starts), 4)
    assert bool((rates <= r_star * (1 + 1e-6)).all())
    assert bool((rates.max(0).values >= r_star * (1 - 1e-2)).all())  # and it is attained by one of them
    # the gap is (R* - R) / R*
    x0 = p.initial_point()
    torch.testing.assert_close(ref.relative_gap(p.objective(x0)), (r_star - p.sum_rate(x0)) / r_star)
    # a sub-batch gets the same starts (the random ones are shared by all instances)
    sub = p.index(torch.tensor([1]))
    for (_, a), (_, b) in zip(reference_starts(sub), starts):
        torch.testing.assert_close(a, b[1:2], rtol=1e-14, atol=0)
