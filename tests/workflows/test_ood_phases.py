"""Issue 12 item 4, ``l2o eval --ood``: the phases inside every out-of-distribution split
(sampling its instances, the reference optimum, each solver's run, its figure) are
reported to a ``Progress``, each split's inside a phase of its own; silent by default, and
the results do not depend on it."""

from __future__ import annotations

import io

from rich.console import Console

from l2o.utils.progress import RichProgress
from l2o.workflows.robustness import evaluate_ood

SPLITS = ["data_scale_2", "noise_0.1"]



def test_evaluate_ood_reports_the_phases_of_every_split(go_run, tmp_path, recording):
    rec = recording()
    outcome = evaluate_ood(go_run, splits=SPLITS, baselines=["ista"], batch=3, iterations=4, out_dir=tmp_path,
                           phases=rec)
    solvers = ["go_math_l2o", "safeguarded_go_math_l2o", "ista", outcome.summary["fallback"]]
    expected = []
    for i, report in enumerate(outcome.reports, 1):
        expected += [f"split {report.split} ({i}/2): {report.description}", f"{report.split}: sampling 3 instances",
                     "reference optimum of 3 instances", *[f"{s}: 4 iterations on 3 instances" for s in solvers],
                     f"{report.split}: writing {report.split}.png"]
    assert [r.split for r in outcome.reports] == SPLITS
    assert rec.phases == expected


def test_evaluate_ood_shows_the_phases_on_the_given_console_only(go_run, tmp_path, capsys):
    buf = io.StringIO()
    shown = RichProgress(Console(file=buf, force_terminal=True, width=120), keep_after=0.0)
    quiet = evaluate_ood(go_run, splits=SPLITS[:1], baselines=["ista"], batch=3, iterations=4, out_dir=tmp_path / "a")
    loud = evaluate_ood(go_run, splits=SPLITS[:1], baselines=["ista"], batch=3, iterations=4, out_dir=tmp_path / "b",
                        phases=shown)
    text = buf.getvalue()
    for phase in ("data_scale_2: sampling 3 instances", "reference optimum of 3 instances",
                  "go_math_l2o: 4 iterations on 3 instances", "data_scale_2: writing data_scale_2.png",
                  "split data_scale_2 (1/1)"):
        assert f"done: {phase}" in text
    assert capsys.readouterr() == ("", "")
    strip = [{k: v for k, v in row.items() if not k.startswith("seconds")} for row in quiet.reports[0].rows]
    assert strip == [{k: v for k, v in row.items() if not k.startswith("seconds")} for row in loud.reports[0].rows]
