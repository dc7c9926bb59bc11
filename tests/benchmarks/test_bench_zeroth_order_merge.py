"""How ``benchmarks/bench_zeroth_order.py`` merges a run for some dimensions into the results on
file: other (n, problem) entries keep the run (date, command, load) that measured them, and the
claims table counts every dimension."""

from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest

PATH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "bench_zeroth_order.py"
spec = importlib.util.spec_from_file_location("bench_zeroth_order_merge", PATH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def rows_for(n: int, problem: str, best_avg_q: int, best_align_q: int, gap: float = 1e-3,
             per_dim: int = 20) -> list[dict]:
    """Synthetic sweep rows of one (n, problem) pair: every (noise, rule, q, accounting), with the
    smallest median gap at ``best_avg_q`` for avg and ``best_align_q`` for align."""
    out = []
    for noisy in (False, True):
        for rule, best in (("avg", best_avg_q), ("align", best_align_q)):
            for q in bench.q_values(n):
                for acc in bench.ACCOUNTINGS:
                    value = gap if q == best else 2 * gap
                    out.append({"n": n, "problem": problem, "noisy": noisy, "rule": rule, "q": q, "accounting": acc,
                                "budget": per_dim * n, "iterations": per_dim * n // bench.ACCOUNTINGS[acc].charge(q),
                                "step_c": 1.0, "at_edge": False, "median": value, "min": value, "max": value,
                                "median_by_fraction": [value], "theory_median": value,
                                "theory_median_by_fraction": [value]})
    return out


def speed_row(ratio: float) -> dict:
    return {"n": 10, "q": 10, "B": 1, "queries_per_estimate": 11, "batched_queries_per_s": 5e4,
            "loop_queries_per_s": 5e4 / ratio, "ratio": ratio, "batched_ms": 0.2, "loop_ms": 0.2 * ratio,
            "same_estimate_rel_diff": 1e-16}


def legacy_file(tmp_path: pathlib.Path) -> pathlib.Path:
    """A results file as written before runs were recorded: n = 4 and 8, two problems, speed rows."""
    rows = []
    for n in (4, 8):
        rows += rows_for(n, "quadratic_k10", 1, n) + rows_for(n, "logistic_l2", 2, n)
    data = {"settings": {"dims": [4, 8], "budget_per_dim": 20, "seeds": 3, "grid": [1, 0, -1], "noise_rel": 1e-6,
                         "noise_mu": 1e-4, "fractions": [1.0], "argv": ""},
            "machine": "old machine", "threads": 1, "load_average": 6.16,
            "problems": {"quadratic_k10": "quad", "logistic_l2": "logistic"}, "accountings": {},
            "sweep": rows, "verdicts": bench.verdicts(rows),
            "speed": [speed_row(3.0)], "seconds": 300.0, "cpu_seconds": 170.0,
            "plots": ["zeroth_order-n4-exact.png"]}
    path = tmp_path / "zeroth_order.json"
    path.write_text(json.dumps(data))
    return path


def new_run(**extra) -> dict:
    return {"date": "2026-11-28T12:00:00Z", "command": "python benchmarks/bench_zeroth_order.py --dims 16",
            "grid_kind": "relative", "budget_per_dim": 10, "seeds": 2, "grid": [2, 1], "noise_rel": 1e-6,
            "noise_mu": 1e-4, "fractions": [1.0], "machine": "this machine", "threads": 1, "load_average": 9.5,
            "seconds": 60.0, "cpu_seconds": 30.0, "complete": True, **extra}


def test_a_legacy_file_becomes_one_run_with_its_own_settings(tmp_path):
    prev = bench.load_previous(legacy_file(tmp_path))
    (run,) = prev["runs"]
    assert run["id"] == 1 and run["command"] == "python benchmarks/bench_zeroth_order.py"
    assert (run["load_average"], run["seeds"], run["budget_per_dim"], run["grid_kind"]) == (6.16, 3, 20, "absolute")
    assert {r["run"] for r in prev["sweep"]} == {1} and prev["speed"][0]["run"] == 1


def test_a_run_for_a_new_dimension_is_added_beside_the_others(tmp_path):
    prev = bench.load_previous(legacy_file(tmp_path))
    added = rows_for(16, "quadratic_k10", 1, 8)
    res = bench.merge(prev, new_run(), added, None, {"quadratic_k10": "quad"})
    assert [r["id"] for r in res["runs"]] == [1, 2]
    by_run = {i: {(r["n"], r["problem"]) for r in res["sweep"] if r["run"] == i} for i in (1, 2)}
    assert by_run[1] == {(4, "quadratic_k10"), (8, "quadratic_k10"), (4, "logistic_l2"), (8, "logistic_l2")}
    assert by_run[2] == {(16, "quadratic_k10")}
    assert len(res["sweep"]) == len(prev["sweep"]) + len(added)
    # the old rows are kept unchanged, the speed rows too (this run did not measure speed)
    old = {(r["n"], r["problem"], r["noisy"], r["rule"], r["q"], r["accounting"]): r for r in prev["sweep"]}
    for r in res["sweep"]:
        if r["run"] == 1:
            assert r == old[(r["n"], r["problem"], r["noisy"], r["rule"], r["q"], r["accounting"])]
    assert res["speed"] == prev["speed"]
    # verdicts over every dimension: 5 (n, problem) pairs x 2 noise levels x 3 accountings
    assert len(res["verdicts"]) == 5 * 2 * 3
    n16 = [v for v in res["verdicts"] if v["n"] == 16]
    assert {v["run"] for v in n16} == {2} and all(v["avg_tuned_claim_holds"] for v in n16)
    assert not any(v["align_tuned_claim_holds"] for v in n16)  # best align q = 8, not n = 16


def test_rerunning_a_pair_replaces_it_and_drops_runs_nothing_refers_to(tmp_path):
    prev = bench.load_previous(legacy_file(tmp_path))
    first = bench.merge(prev, new_run(), rows_for(16, "quadratic_k10", 1, 16), None, {"quadratic_k10": "quad"})
    again = bench.merge(first, new_run(date="later"), rows_for(16, "quadratic_k10", 2, 16, gap=5e-4), None,
                        {"quadratic_k10": "quad"})
    assert [r["id"] for r in again["runs"]] == [1, 3]  # run 2 measured only what run 3 replaced
    n16 = [r for r in again["sweep"] if r["n"] == 16]
    assert {r["run"] for r in n16} == {3} and len(n16) == len(rows_for(16, "quadratic_k10", 1, 16))
    assert min(r["median"] for r in n16) == 5e-4
    # a run that replaces everything old leaves only itself (and the run that measured the speed rows)
    everything = [r for n in (4, 8) for p in ("quadratic_k10", "logistic_l2") for r in rows_for(n, p, 1, n)]
    replaced = bench.merge(again, new_run(), everything, [speed_row(4.0)], {"quadratic_k10": "q", "logistic_l2": "l"})
    assert [r["id"] for r in replaced["runs"]] == [3, 4]
    assert replaced["speed"] == [{**speed_row(4.0), "run": 4}]


def test_markdown_counts_every_dimension_and_names_the_runs(tmp_path):
    prev = bench.load_previous(legacy_file(tmp_path))
    res = bench.merge(prev, new_run(complete=False), rows_for(16, "quadratic_k10", 1, 16, per_dim=10), None,
                      {"quadratic_k10": "quad"})
    md = bench.to_markdown(res)
    assert "Not measured at n = 16: logistic_l2 (exact), logistic_l2 (noisy)." in md
    assert "Budgets differ between dimensions (Q = 20 n at n = 4, Q = 20 n at n = 8, Q = 10 n at n = 16)" in md
    assert "python benchmarks/bench_zeroth_order.py --dims 16" in md and "(partial" in md
    assert "| 1 | not recorded |" in md or "| 1 | 20" in md  # the legacy run's date: its commit's, if any
    # claims over n = 4, 8 (run 1) and 16 (run 2): 5 (n, problem) pairs x 2 noise levels per accounting;
    # avg is best at q = 1 on the quadratics (n = 4, 8, 16) but at q = 2 on the logistic (n = 4, 8)
    assert "n = 4, 8, 16; run 1, run 2" in md
    assert "| all | run 1, run 2 | `q+1` | 6/10 | 6/10 | 10/10 | 10/10 |" in md
    assert "| 16 | run 2 | `q+1` | 2/2 | 2/2 | 2/2 | 2/2 |" in md
    assert "| 4 | run 1 | `2q` | 2/4 | 2/4 | 4/4 | 4/4 |" in md
    assert "**n = 16, quadratic_k10, exact**" in md


def test_an_unreadable_file_gives_fresh_results(tmp_path, capsys):
    path = tmp_path / "zeroth_order.json"
    path.write_text("{not json")
    assert bench.load_previous(path) is None
    assert "could not be read" in capsys.readouterr().err
    assert bench.load_previous(tmp_path / "missing.json") is None
    res = bench.merge(None, new_run(), rows_for(4, "quadratic_k10", 1, 4), None, {"quadratic_k10": "quad"})
    assert [r["id"] for r in res["runs"]] == [1] and len(res["verdicts"]) == 2 * 3


@pytest.mark.parametrize("relative", [False, True])
def test_step_grid_and_tuning_with_the_theory_step_in_the_grid(relative):
    grid = bench.step_grid("avg", 4, 16, [2, 1], relative)
    theory = bench.descent_factor("avg", "gaussian", 4, 16)
    assert grid.tolist() == ([4 * theory, 2 * theory] if relative else [4.0, 2.0])
    import torch

    gaps = torch.tensor([[[3.0, 1.5, 2.0, 1.0], [3.0, 1.5, 2.0, 1.0]]])  # (fractions, seeds, G + 1): theory best
    t = bench.tune(gaps, theory_in_grid=relative)  # absolute grid: the theory step is reported, not a candidate
    assert t["step_index"] == (3 if relative else 1) and t["at_edge"] == relative
    assert t["theory_median"] == 1.0


def test_cli_rejects_unknown_problems(capsys):
    with pytest.raises(SystemExit, match="--problems must name some of"):
        bench.main(["--dims", "4", "--problems", "rosenbrock", "--quick"])


def test_a_run_for_one_noise_level_keeps_the_other_level_of_the_same_problem(tmp_path):
    prev = bench.load_previous(legacy_file(tmp_path))
    exact = [r for r in rows_for(4, "quadratic_k10", 2, 4) if not r["noisy"]]
    res = bench.merge(prev, new_run(), exact, None, {"quadratic_k10": "quad"})
    pair = [r for r in res["sweep"] if (r["n"], r["problem"]) == (4, "quadratic_k10")]
    assert {(r["noisy"], r["run"]) for r in pair} == {(False, 2), (True, 1)}
    assert len(pair) == len(rows_for(4, "quadratic_k10", 2, 4))
    v = {(x["noisy"], x["accounting"]): x for x in res["verdicts"] if (x["n"], x["problem"]) == (4, "quadratic_k10")}
    assert not v[False, "q+1"]["avg_tuned_claim_holds"] and v[True, "q+1"]["avg_tuned_claim_holds"]
    assert (v[False, "q"]["run"], v[True, "q"]["run"]) == (2, 1)


def test_report_only_rewrites_the_markdown_from_the_file(tmp_path):
    legacy_file(tmp_path)
    res = bench.main(["--report-only", "--no-plots", "--out", str(tmp_path)])
    assert [r["id"] for r in res["runs"]] == [1]
    md = (tmp_path / "zeroth_order.md").read_text()
    assert "| all | run 1 | `q+1` | 4/8 | 4/8 | 8/8 | 8/8 |" in md
    data = json.loads((tmp_path / "zeroth_order.json").read_text())
    assert data["runs"][0]["load_average"] == 6.16 and {r["run"] for r in data["sweep"]} == {1}
