"""How ``benchmarks/bench_learned.py`` keeps results across ``--only`` runs."""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib

import pytest

PATH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "bench_learned.py"
spec = importlib.util.spec_from_file_location("bench_learned", PATH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def fresh() -> dict:
    return {"date": "now", "command": "python bench_learned.py --only lgd", "note": "", "settings": {}}


def previous_file(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "learned-paper.json"
    path.write_text(json.dumps({
        "date": "earlier", "command": "python bench_learned.py --only math_l2o_lasso,lgd",
        "settings": {"math_l2o_lasso": {"training": {"steps": 500}}, "lgd": {"training": {"steps": 1}}},
        "speed": {"batch": 1000, "dtype": "float32", "rows": {}}}))
    return path


def test_settings_not_rerun_are_kept_with_their_own_date_and_command(tmp_path):
    merged = bench.merge_previous(fresh(), previous_file(tmp_path), ["lgd"])
    assert list(merged["settings"]) == ["math_l2o_lasso"]  # lgd is about to be remeasured
    kept = merged["settings"]["math_l2o_lasso"]
    assert kept["measured"] == "earlier" and "math_l2o_lasso" in kept["command"]
    assert merged["speed"]["measured"] == "earlier"
    assert "measured earlier by" in bench.to_markdown(merged)


def test_an_unreadable_previous_file_gives_a_fresh_result(tmp_path, capsys):
    path = tmp_path / "learned-paper.json"
    path.write_text("{not json")
    assert bench.merge_previous(fresh(), path, ["lgd"])["settings"] == {}
    assert "unreadable" in capsys.readouterr().err
    assert bench.merge_previous(fresh(), tmp_path / "missing.json", ["lgd"])["settings"] == {}


def test_quick_and_paper_runs_never_share_files_with_the_default_run():
    args = lambda quick, paper: argparse.Namespace(quick=quick, paper=paper)  # noqa: E731
    assert [bench.results_suffix(args(q, p)) for q, p in ((False, False), (True, False), (False, True))] == [
        "", "-quick", "-paper"]


def test_a_step_schedule_keeps_its_number_of_decays_when_the_steps_change():
    from l2o.training.config import load_config

    go = load_config(bench.EXAMPLES / "go_math_l2o_lasso.toml")  # 90 steps, decay every 30
    assert (go.training.steps, go.training.decay_every) == (90, 30)
    paper = bench.rescaled(go, 1500, 128).training
    assert (paper.steps, paper.decay_every, paper.batch_size) == (1500, 500, 128)  # the paper's epochs
    assert bench.rescaled(go, 2).training.decay_every == 1
    constant = load_config(bench.EXAMPLES / "math_l2o_lasso.toml")
    assert bench.rescaled(constant, 500).training.decay_every == constant.training.decay_every


TINY = """
[problem]
family = "least_squares"
d = 8
m = 12

[solver]
name = "lgd"
hidden = 16

[training]
steps = 3
batch_size = 8
unroll = 5
val_batch = 8
val_every = 1
checkpoint_every = 0
"""


def test_a_finished_run_is_reused_and_another_config_is_refused(tmp_path, monkeypatch):
    (tmp_path / "tiny.toml").write_text(TINY)
    monkeypatch.setattr(bench, "EXAMPLES", tmp_path)
    monkeypatch.setattr(bench, "SETTINGS", {"tiny": ("tiny.toml", "qp")})
    work = tmp_path / "work"
    _, first = bench.train_setting("tiny", None, work)
    assert first["run"] == "trained" and first["steps"] == 3 and first["train_seconds"] > 0
    weights = (work / "tiny" / "weights.safetensors").read_bytes()
    _, again = bench.train_setting("tiny", None, work)
    assert again["run"] == "reused" and again["train_seconds"] == first["train_seconds"]
    assert (work / "tiny" / "weights.safetensors").read_bytes() == weights
    with pytest.raises(SystemExit, match="holds a different training run"):
        bench.train_setting("tiny", 4, work)


def test_each_speed_table_stays_one_runs_measurement():
    def section(when, *names):
        rows = {n: {"seconds_to_1e-4_all": 1.0, "speedup_vs_fista_restart": 1.0, "ms_per_iteration": 1.0}
                for n in ("fista_restart",) + names}
        return {"batch": 1000, "dtype": "float32", "measured": when, "rows": rows}

    results = fresh() | {"speed": section("t1", "math_l2o_lasso", "lista"), "speed_earlier": []}
    bench.adopt_speed(results, section("t2", "go_math_l2o_lasso"))
    assert results["speed"]["measured"] == "t2"
    assert [(s["measured"], list(s["rows"])) for s in results["speed_earlier"]] == [
        ("t1", ["fista_restart", "math_l2o_lasso", "lista"])]
    bench.adopt_speed(results, section("t3", "math_l2o_lasso", "lista"))  # t1's solvers remeasured
    assert [(s["measured"], list(s["rows"])) for s in results["speed_earlier"]] == [
        ("t2", ["fista_restart", "go_math_l2o_lasso"])]
    md = bench.to_markdown(results)
    assert md.count("## Speed target") == 2 and "(measured t3)" in md and "(measured t2)" in md
