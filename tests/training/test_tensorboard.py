"""`l2o train --tensorboard DIR` (the optional extra ``l2o[tensorboard]``): the curves read back
with TensorBoard's own reader equal the run's log.csv and metrics.json; without the extra, one
clear error line before any work."""

from __future__ import annotations

import csv
import json
import sys

import pytest
from typer.testing import CliRunner

from l2o.cli import app
from l2o.training import RunConfig, train

runner = CliRunner()


def config(**training) -> RunConfig:
    t = {"steps": 5, "batch_size": 4, "unroll": 8, "lr": 1e-2, "loss": "mean", "val_batch": 6, "val_every": 2,
         "checkpoint_every": 2, "dtype": "float64", "grad_clip": 0.5}
    t.update(training)
    return RunConfig.from_dict({"problem": {"family": "lasso", "m": 8, "n": 16, "nnz": 3},
                                "solver": {"name": "lfista"}, "training": t})


def scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = event_accumulator.EventAccumulator(str(log_dir), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_curves_read_back_equal_the_log(tmp_path):
    pytest.importorskip("tensorboard")
    result = train(config(), tmp_path / "run", tensorboard=tmp_path / "tb")
    got = scalars(tmp_path / "tb")
    rows = list(csv.DictReader((tmp_path / "run" / "log.csv").open()))
    assert len(rows) == 5
    for tag, column in (("loss", "loss"), ("lr", "lr"), ("grad_norm", "grad_norm")):
        assert [s for s, _ in got[tag]] == [1, 2, 3, 4, 5]
        assert [v for _, v in got[tag]] == pytest.approx([float(r[column]) for r in rows], rel=1e-6)  # float32 events
    assert got["val_gap"] == [(s, pytest.approx(float(rows[s - 1]["val_gap"]), rel=1e-6)) for s in (2, 4, 5)]
    rejected, total = [], 0
    for r in rows:
        total += int(r["rejected"])
        rejected.append(total)
    assert [v for _, v in got["rejected_steps"]] == rejected
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert got["final/val_gap"] == [(5, pytest.approx(metrics["final_val_gap"], rel=1e-6))]
    assert got["final/best_val_gap"] == [(5, pytest.approx(result.best_val_gap, rel=1e-6))]
    assert got["final/initial_val_gap"] == [(5, pytest.approx(metrics["initial_val_gap"], rel=1e-6))]
    assert got["final/best_step"] == [(5, float(result.best_step))]


def test_resumed_run_continues_the_curves(tmp_path):
    pytest.importorskip("tensorboard")

    class Killed(Exception):
        pass

    def kill_at_3(info):
        if info.step == 3:
            raise Killed

    with pytest.raises(Killed):
        train(config(), tmp_path / "run", tensorboard=tmp_path / "tb", callback=kill_at_3)
    train(config(), tmp_path / "run", resume=True, tensorboard=tmp_path / "tb")
    got = scalars(tmp_path / "tb")
    # the killed session logged step 3 after its last checkpoint (2); the resumed one purges it and redoes 3..5
    assert [s for s, _ in got["loss"]] == [1, 2, 3, 4, 5]


def test_cli_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    path = tmp_path / "c.toml"
    path.write_text(config().to_toml())
    res = runner.invoke(app, ["train", str(path), "--out", str(tmp_path / "run"), "--tensorboard",
                              str(tmp_path / "tb")])
    assert res.exit_code == 0, res.output
    assert sorted(scalars(tmp_path / "tb")) == ["final/best_step", "final/best_val_gap", "final/initial_val_gap",
                                                "final/rejected_steps", "final/seconds", "final/val_gap",
                                                "grad_norm", "loss", "lr", "rejected_steps", "val_gap"]


def test_cli_without_the_extra_is_one_line_error(tmp_path, monkeypatch):
    """tensorboard absent: ``import torch.utils.tensorboard`` fails (None in sys.modules)."""
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    path = tmp_path / "c.toml"
    path.write_text(config().to_toml())
    res = runner.invoke(app, ["train", str(path), "--out", str(tmp_path / "run"), "--tensorboard",
                              str(tmp_path / "tb")])
    assert res.exit_code == 2
    assert res.stderr.strip() == ("error: --tensorboard needs the tensorboard package, which is not installed: "
                                  "pip install 'l2o[tensorboard]'")
    assert not (tmp_path / "run").exists() and not (tmp_path / "tb").exists()
    # without --tensorboard, training goes on without curves
    res = runner.invoke(app, ["train", str(path), "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
