"""``l2o.report.table``: quantiles with unreached targets, summary rows and the rich table."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from l2o.evaluation import Trajectory
from l2o.report.table import quantile, render_table, summarize


def test_quantile_treats_unreached_as_infinite():
    assert quantile(np.array([1.0, 2.0, 3.0]), 0.5) == 2.0
    assert quantile(np.array([1.0, 2.0, np.inf]), 0.5) == 2.0
    assert quantile(np.array([1.0, 2.0, np.inf]), 0.9) is None
    assert quantile(np.array([np.nan, 1.0]), 0.5) is None
    assert quantile(np.arange(11.0), 0.9) == pytest.approx(9.0)
    assert quantile(np.array([*range(10), np.inf]), 0.9) == pytest.approx(9.0)

def test_summarize_and_render():
    gap = torch.tensor([[1.0, 1.0], [1e-3, 0.5], [1e-5, 1e-3]], dtype=torch.float64)
    traj = Trajectory(solver="s", iterations=torch.tensor([0, 10, 20]), objective=gap, gap=gap, certificate=None,
                      time=torch.tensor([0.0, 0.1, 0.2], dtype=torch.float64), x=torch.zeros(2, 1))
    rows = summarize({"s": traj}, (1e-2, 1e-4), learned={"s"})
    assert [r["tol"] for r in rows] == [1e-2, 1e-4]
    assert rows[0]["iterations_median"] == 15 and rows[0]["iterations_p90"] == 19 and rows[0]["reached"] == 1.0
    assert rows[1]["iterations_median"] is None and rows[1]["reached"] == 0.5 and rows[0]["learned"] is True
    assert math.isclose(rows[0]["seconds_median"], 0.15)
    table = render_table(rows, title="t")
    assert table.row_count == 2 and len(table.columns) == 8
