"""Rendering the guarantee table (``l2o.report.guarantee``) and its wiring into ``l2o eval``:
the outcome and ``--json`` of ``evaluate_run``, the printed table, and the robustness HTML."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from l2o.cli import app
from l2o.evaluation import Trajectory
from l2o.evaluation.guarantee import guarantee_table, kl_upper_bound
from l2o.report.guarantee import format_bound, guarantee_html, guarantee_sentences, render_guarantee
from l2o.report.robustness import SplitReport, summary_of, write_html
from l2o.workflows.evaluate import evaluate_run

training = pytest.importorskip("l2o.training", reason="the meta-training engine (l2o.training) is not available")


def staircase(hits, name="s", T=20) -> Trajectory:
    """Instance b has gap 1 before iteration hits[b] and 1e-9 from it on (None: never)."""
    gap = torch.ones(T + 1, len(hits), dtype=torch.float64)
    for b, h in enumerate(hits):
        if h is not None:
            gap[h:, b] = 1e-9
    return Trajectory(name, torch.arange(T + 1), torch.zeros_like(gap), gap, None,
                      torch.zeros(T + 1, dtype=torch.float64), torch.zeros(len(hits), 1))


def text(renderable) -> str:
    console = Console(record=True, width=200)
    console.print(renderable)
    return console.export_text()


def test_format_bound_rounds_up():
    rng = np.random.default_rng(0)
    for p in np.concatenate([rng.uniform(0, 1, 200), 10.0 ** rng.uniform(-5, 0, 200), [0.018, 0.1, 0.5, 1.0]]):
        shown = float(format_bound(p).rstrip("%")) / 100
        assert shown >= p - 1e-15  # a printed bound still holds
        step = 0.01 if p >= 0.1 else 0.001 if p >= 0.01 else 0.0001
        assert shown <= max(p, 0.0001) + step + 1e-12  # and is at most one printed unit above
    assert format_bound(0.018) == "1.8%" and format_bound(None) == "-"


def test_rendered_table_and_sentence():
    hits = [0, 3, 5, 5, 8, 12, None, 20]
    g = guarantee_table({"learned": staircase(hits, "learned"), "fista": staircase([1] * 8, "fista")},
                        tolerances=[1e-2, 1e-4], budgets=[5, 20])
    out = text(render_guarantee(g))
    assert "> 5 it" in out and "> 20 it" in out and "99% confidence" in out and "1e-4" in out
    b5, b20 = float(kl_upper_bound(4, 8)), float(kl_upper_bound(1, 8))
    assert f"{format_bound(b5)} (4/8)" in out and f"{format_bound(b20)} (1/8)" in out
    assert f"{format_bound(float(kl_upper_bound(0, 8)))} (0/8)" in out  # fista: every instance at iteration 1
    assert guarantee_sentences(g) == [
        f"with 99% confidence, at most {format_bound(b20)} of instances from this family need more than 20 "
        f"iterations to reach 1e-2 (learned: 1 of 8 fresh instances did)",
        f"with 99% confidence, at most {format_bound(b20)} of instances from this family need more than 20 "
        f"iterations to reach 1e-4 (learned: 1 of 8 fresh instances did)",
    ]
    assert len(guarantee_sentences(g, solvers=["learned", "fista"])) == 4
    # the earliest budget at which the bound is lowest: fista has every instance there at iteration 1
    assert "need more than 5 iterations to reach 1e-2 (fista: 0 of 8" in guarantee_sentences(g, ["fista"])[0]


def test_html_fragment_is_escaped_and_complete(tmp_path):
    g = guarantee_table({"<lfista>": staircase([1, 2, None])}, tolerances=[1e-4], budgets=[1, 2, 20])
    frag = guarantee_html(g)
    assert "&lt;lfista&gt;" in frag and "<lfista>" not in frag
    assert frag.count("<tr>") == 2 and "&gt; 20 it" in frag and "(1/3)" in frag
    page = write_html(tmp_path / "r.html", "t", [SplitReport("id", "in distribution", [], {}, None, guarantee=g)])
    assert "id: guarantee" in page.read_text() and "(1/3)" in page.read_text()
    assert summary_of([SplitReport("id", "d", [], {}, None, guarantee=g)])[0]["guarantee"]["rows"][0]["failures"] == 2


@pytest.fixture(scope="module")
def ls_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lgd"
    training.train(training.RunConfig.from_dict({
        "problem": {"family": "least_squares", "d": 8, "m": 12},
        "solver": {"name": "lgd", "hidden": 16, "expansion": 10.0},
        "training": {"steps": 2, "batch_size": 8, "unroll": 5, "val_batch": 8, "val_every": 1, "checkpoint_every": 0},
    }), out)
    return out


def test_evaluate_run_returns_the_guarantee(ls_run, tmp_path):
    outcome = evaluate_run(ls_run, baselines=["gd"], batch=12, out_dir=tmp_path)
    g = outcome.guarantee
    assert {r.solver for r in g.rows} == {"lgd", "gd"} and {r.budget for r in g.rows} == {5, 10, 25, 50}
    assert {r.tol for r in g.rows} == {1e-2, 1e-4, 1e-6} and all(r.instances == 12 for r in g.rows)
    reached = {(s["name"], t["tol"]): t["reached"] for s in outcome.summary["solvers"] for t in s["tolerances"]}
    for r in g.rows:
        if r.budget == 50:
            assert r.empirical == pytest.approx(1 - reached[(r.solver, r.tol)])
    j = outcome.summary["guarantee"]
    assert j["delta"] == 0.01 and len(j["rows"]) == len(g.rows) and json.dumps(j)


def test_cli_eval_prints_the_table_and_json(ls_run, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["eval", str(ls_run), "--batch", "6", "--baselines", "gd", "--out-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "guarantee (99% confidence)" in res.stdout and "> 50 it" in res.stdout
    assert re.search(r"with 99% confidence, at most [0-9.]+% of instances from this family need more than 50 "
                     r"iterations to reach 1e-2 \(lgd: \d of 6 fresh instances did\)", res.stdout.replace("\n", " "))
    res = runner.invoke(app, ["eval", str(ls_run), "--batch", "6", "--baselines", "gd", "--out-dir", str(tmp_path),
                              "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["guarantee"]["rows"]
    assert {r["solver"] for r in rows} == {"lgd", "gd"} and all(r["instances"] == 6 for r in rows)


def test_cli_split_report_prints_and_writes_the_guarantee(ls_run, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["eval", str(ls_run), "--split", "id", "--batch", "4", "--baselines", "gd",
                              "--out-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "id: guarantee" in res.stdout
    page = (tmp_path / "ood" / "report.html").read_text()
    assert "id: guarantee" in page and "(99% confidence)" in page
