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


def test_samples_change_only_the_logistic_data_and_f_star_is_computed_once():
    """``samples`` sets N of both logistic problems and leaves the quadratics' draws alone; F* of
    the l2 logistic is the minimum (its gradient vanishes there), computed only for the problems
    asked for, and a cached F* under the data's checksum is reused, not recomputed."""
    n, seeds = 6, 2
    default = bench.make_problems(n, seeds)
    small = bench.make_problems(n, seeds, samples=4, problems=["logistic_l2"], f_star_cache=(cache := {}))
    assert torch.equal(default["quadratic_k10"]["problem"].c, small["quadratic_k10"]["problem"].c)
    assert default["logistic_l2"]["problem"].X.shape == (2 * n, n)
    assert small["logistic_l2"]["problem"].X.shape == (4, n)
    assert small["nonconvex_logistic"]["problem"].H.shape == (4, n)
    assert "f_star" not in small["quadratic_k10"] and "scale" not in small["nonconvex_logistic"]
    [key] = cache
    assert "N=4" in key and f"n={n} logistic_l2 seeds={seeds}" in key
    p, f_star = small["logistic_l2"]["problem"], small["logistic_l2"]["f_star"]
    w = torch.zeros(seeds, n, dtype=torch.float64, requires_grad=True)  # f* independently, by torch's L-BFGS
    opt = torch.optim.LBFGS([w], max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")
    opt.step(lambda: (opt.zero_grad(), (loss := p.objective(w).sum()).backward(), loss)[2])
    assert torch.allclose(f_star, p.objective(w).detach(), rtol=1e-9, atol=1e-12)
    cache[key] = [123.0, 456.0]  # a cached value is what make_problems uses
    again = bench.make_problems(n, seeds, samples=4, problems=["logistic_l2"], f_star_cache=cache)
    assert again["logistic_l2"]["f_star"].tolist() == [123.0, 456.0]
    other = bench.make_problems(n, seeds, samples=5, problems=["logistic_l2"], f_star_cache=cache)
    assert len(cache) == 2 and torch.allclose(other["logistic_l2"]["scale"] + other["logistic_l2"]["f_star"],
                                              other["logistic_l2"]["problem"].objective(other["logistic_l2"]["x0"]))


def test_a_q_whose_budget_affords_no_iteration_is_skipped_and_reported(tmp_path):
    """n = 2 with Q = 1 n = 2 queries: q = 1 affords iterations under every accounting; q = 2 one
    under q (2 queries) but none under q+1 (3) nor 2q (4): no row there, and the claim that needs
    q = n under those accountings says it was not run."""
    res = bench.main(["--dims", "2", "--problems", "quadratic_k10", "--values", "exact", "--budget-per-dim", "1",
                      "--seeds", "2", "--grid-exponents", "1,0", "--no-plots", "--no-speed", "--out", str(tmp_path)])
    got = {(r["rule"], r["q"], r["accounting"]) for r in res["sweep"]}
    assert ("avg", 2, "q") in got and ("avg", 2, "q+1") not in got and ("avg", 2, "2q") not in got
    assert ("avg", 1, "2q") in got and ("avg", 1, "q+1") in got
    v = next(v for v in res["verdicts"] if v["accounting"] == "2q")
    assert v["align_tuned_best_q"] == 1 and not v["align_tuned_claim_holds"]
    md = (tmp_path / "zeroth_order.md").read_text()
    assert "(q=2: not run)" in md and "| - |" in md


def test_qs_samples_and_float32_are_recorded(tmp_path):
    res = bench.main(["--dims", "8", "--problems", "logistic_l2", "--values", "noisy", "--qs", "1,8", "--samples", "5",
                      "--dtype", "float32", "--quick", "--no-plots", "--no-speed", "--out", str(tmp_path)])
    assert {r["q"] for r in res["sweep"]} == {1, 8}
    assert {(r["samples"], r["dtype"]) for r in res["sweep"]} == {(5, "float32")}
    assert all(0 < r["median"] < 1.5 for r in res["sweep"])  # descends from x0 (measure 1) in float32 too
    assert len(res["f_star_cache"]) == 1
    md = (tmp_path / "zeroth_order-quick.md").read_text()
    assert "q in {1, 8}" in md and "N = 5 samples" in md and "in float32" in md


def test_a_run_with_other_q_values_completes_a_setting_measured_alike(tmp_path):
    """--qs 1,4 then --qs 2: the setting's sweep has q = 1, 2, 4 from the two runs; a run measured
    differently (another budget) replaces the setting instead; rerunning a q replaces that q."""
    common = ["--dims", "4", "--problems", "quadratic_k10", "--values", "exact", "--budget-per-dim", "4",
              "--seeds", "2", "--grid-exponents", "1,0", "--no-plots", "--no-speed", "--out", str(tmp_path)]
    first = bench.main([*common, "--qs", "1,4"])
    second = bench.main([*common, "--qs", "2"])
    assert {(r["q"], r["run"]) for r in second["sweep"]} == {(1, 1), (4, 1), (2, 2)}
    assert [r for r in second["sweep"] if r["run"] == 1] == [r for r in first["sweep"]]
    assert {v["run"] for v in second["verdicts"]} == {1} and len(second["verdicts"]) == 3
    again = bench.main([*common, "--qs", "4"])
    assert {(r["q"], r["run"]) for r in again["sweep"]} == {(1, 1), (2, 2), (4, 3)}
    other = bench.main([*common, "--qs", "2", "--budget-per-dim", "5"])  # the last value of an option wins
    assert {(r["q"], r["run"]) for r in other["sweep"]} == {(2, 4)}
    assert [r["id"] for r in other["runs"]] == [4]


def test_float32_check_compares_precisions_and_draws_and_merges_into_the_results(tmp_path):
    common = ["--dims", "6", "--problems", "quadratic_k10", "--budget-per-dim", "4", "--seeds", "2", "--no-plots",
              "--no-speed", "--out", str(tmp_path)]
    before = bench.main([*common, "--grid", "relative", "--qs", "1,6"])
    res = bench.main([*common, "--float32-check"])
    assert res["sweep"] == before["sweep"] and len(res["runs"]) == 1  # a check is no run of the sweep
    checks = res["float32_check"]
    assert {(c["noisy"], c["rule"], c["q"]) for c in checks} == {(noisy, r, 6) for noisy in (False, True)
                                                                  for r in ("avg", "align")}
    exact_align = next(c for c in checks if not c["noisy"] and c["rule"] == "align")
    # align with q = n = 6 orthonormal directions is gradient descent up to O(mu): float64 with any draws
    # gives the same iterates, float32 with mu = 1e-7 does not (its rounding is far above mu)
    assert exact_align["redrawn_change"] < 1e-3 < 1e-1 < exact_align["float32_change"]
    assert "## float32 or float64" in (tmp_path / "zeroth_order.md").read_text()
    again = bench.main([*common, "--float32-check"])
    assert len(again["float32_check"]) == len(checks)  # a new check of (n, problem) replaces the old one
