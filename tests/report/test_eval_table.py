"""The evaluation table: median and 90th percentile of iterations and seconds to reach
1e-2, 1e-4, 1e-6, the final gap and the learned flag, on hand-made trajectories whose
answers are known; the same from records; rendering."""

from __future__ import annotations

import pytest
import torch

from l2o.evaluation import Trajectory
from l2o.evaluation.compare import Comparison, trajectories_from_records
from l2o.report.table import (
    DEFAULT_TOLERANCES,
    by_solver,
    render_table,
    summarize,
    summarize_comparison,
    summarize_records,
)


def hand_made() -> dict[str, Trajectory]:
    """Ten instances; instance b reaches 1e-2 at iteration b + 1, 1e-4 at 2 (b + 1)
    (instances 0..8 only) and 1e-6 never; time is 0.5 s per iteration."""
    T, B = 21, 10
    gap = torch.ones(T, B, dtype=torch.float64)
    for b in range(B):
        gap[b + 1:, b] = 1e-3
        if b < 9:
            gap[2 * (b + 1):, b] = 1e-5
    its = torch.arange(T)
    traj = Trajectory(solver="learned", iterations=its, objective=gap.clone(), gap=gap, certificate=None,
                      time=0.5 * its.to(torch.float64), x=torch.zeros(B, 1))
    fast = Trajectory(solver="fast", iterations=its, objective=gap.clone(),
                      gap=torch.full((T, B), 1e-8, dtype=torch.float64), certificate=None,
                      time=0.1 * its.to(torch.float64), x=torch.zeros(B, 1))
    return {"learned": traj, "fast": fast}


def test_quantiles_of_iterations_and_seconds():
    rows = summarize(hand_made(), DEFAULT_TOLERANCES, learned={"learned"})
    assert [(r["solver"], r["tol"]) for r in rows] == [
        ("learned", 1e-2), ("learned", 1e-4), ("learned", 1e-6), ("fast", 1e-2), ("fast", 1e-4), ("fast", 1e-6)]
    r2, r4, r6 = rows[:3]
    # 1e-2 reached at 1..10: median 5.5, p90 at position 8.1 -> 9.1
    assert r2["iterations_median"] == pytest.approx(5.5) and r2["iterations_p90"] == pytest.approx(9.1)
    assert r2["seconds_median"] == pytest.approx(2.75) and r2["seconds_p90"] == pytest.approx(4.55)
    assert r2["reached"] == 1.0 and r2["learned"] is True and r2["measure"] == "gap"
    # 1e-4 reached at 2, 4, ..., 18 by 9 of 10: median 10 (instances 4 and 5 -> 10 and 12 -> 11), p90 unreached
    assert r4["iterations_median"] == 11 and r4["iterations_p90"] is None and r4["reached"] == pytest.approx(0.9)
    assert r4["seconds_median"] == pytest.approx(5.5) and r4["seconds_p90"] is None
    assert r6["iterations_median"] is None and r6["seconds_median"] is None and r6["reached"] == 0.0
    # final gap: 1e-5 for nine instances, 1e-3 for one
    assert r2["final_median"] == pytest.approx(1e-5) and r2["final_p90"] == pytest.approx(1e-5 + 0.1 * (1e-3 - 1e-5))
    fast = rows[3]
    assert fast["iterations_median"] == 0 and fast["seconds_median"] == 0.0 and fast["learned"] is False
    assert isinstance(fast["iterations_median"], int)


def test_from_comparison_and_from_records_agree():
    trajs = hand_made()
    comp = Comparison(trajectories=trajs, learned=frozenset({"learned"}), reference=None,
                      max_iter={"learned": 20, "fast": 20})
    direct = summarize_comparison(comp)
    assert direct == summarize(trajs, DEFAULT_TOLERANCES, learned={"learned"})
    from_rows = summarize_records(comp.records())
    assert len(from_rows) == len(direct)
    for a, b in zip(from_rows, direct):
        for k, v in b.items():
            if isinstance(v, float):
                assert a[k] == pytest.approx(v)
            else:
                assert a[k] == v
    back, learned = trajectories_from_records(comp.records())
    assert learned == {"learned"} and back["learned"].x.shape == (10, 0)


def test_json_nesting_and_rendering():
    rows = summarize(hand_made(), DEFAULT_TOLERANCES, learned={"learned"})
    nested = by_solver(rows)
    assert [s["name"] for s in nested] == ["learned", "fast"] and nested[0]["learned"] is True
    tol = nested[0]["tolerances"][0]
    assert set(tol) == {"tol", "reached", "iterations_median", "iterations_p90", "seconds_median", "seconds_p90"}
    assert nested[0]["tolerances"][2]["iterations_median"] is None
    table = render_table(rows, title="hand-made")
    assert table.row_count == 6 and len(table.columns) == 8
    first = [c._cells[0] for c in table.columns]
    assert str(first[0]) == "learned (learned)"
    assert first[1:7] == ["1e-2", "6", "9", "2.75", "4.55", "100%"]  # 5.5 iterations shows as 6
