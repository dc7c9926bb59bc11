"""``benchmarks/bench_zeroth_order.py``: its measurement against a closed form, its heuristic
predictions, and a smoke run of the whole script."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_zeroth_order as bench  # noqa: E402


def test_predictions_of_the_one_step_heuristic():
    qs = bench.q_values(100)
    assert qs == [1, 2, 4, 8, 16, 32, 64, 100]
    assert bench.predicted_best_q("avg", 100, "q+1", qs) == 8  # q/((q+1)(q+n+1)) peaks near sqrt(n)
    assert bench.predicted_best_q("avg", 100, "2q", qs) == 1
    assert bench.predicted_best_q("align", 100, "q+1", qs) == 100
    assert bench.predicted_best_q("align", 100, "q", qs) is None  # flat


def test_sweep_measures_what_gradient_descent_gives_in_closed_form():
    """Align with q = n, central differences and the theory step is gradient descent with step
    1/L: on a diagonal quadratic the error of coordinate j after k steps is (1 - d_j/L)^k e_j."""
    n, seeds = 4, 2
    spec = bench.make_problems(n, seeds)["quadratic_k10"]
    p = spec["problem"]
    grid = torch.tensor([1.0, 0.25], dtype=torch.float64)
    got = bench.sweep_run(spec, "align", n, "central", 0.0, 1e-3, grid, {"2q": [0, 3, 7]}, seed=0)["2q"]
    x_star = -p.c / p.d
    L = float(p.d.max())
    for i, k in enumerate([0, 3, 7]):
        e = ((1 - p.d / L) ** k) * (spec["x0"] - x_star)
        gap = 0.5 * (p.d * e.square()).sum(-1) / spec["scale"]
        assert torch.allclose(got[i, :, -1], gap, rtol=1e-9, atol=1e-15)  # the theory-step column
        assert torch.allclose(got[i, :, 0], gap, rtol=1e-9, atol=1e-15)  # c = 1 is the same step


def test_quick_run_writes_results(tmp_path):
    res = bench.main(["--dims", "4", "--quick", "--no-plots", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "zeroth_order-quick.json").read_text())
    assert {r["accounting"] for r in data["sweep"]} == {"q+1", "q", "2q"}
    assert {r["q"] for r in data["sweep"]} == {1, 2, 4}
    assert len(data["verdicts"]) == 4 * 2 * 3  # problems x noise x accountings
    assert all(r["same_estimate_rel_diff"] < 1e-8 for r in res["speed"])
    assert "The paper's two claims" in (tmp_path / "zeroth_order-quick.md").read_text()
