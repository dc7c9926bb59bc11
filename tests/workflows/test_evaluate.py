"""``l2o.workflows.evaluate``: ``evaluate_run`` called from Python on a tiny trained run
(the command is tested in tests/cli/test_cmd_eval.py)."""

from __future__ import annotations

import pytest
import torch

from l2o.evaluation.defaults import HORIZON_FACTOR
from l2o.workflows.evaluate import CSV_POINTS, csv_every, evaluate_run

training = pytest.importorskip("l2o.training", reason="the meta-training engine (l2o.training) is not available")


@pytest.fixture(scope="module")
def ls_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lgd"
    training.train(training.RunConfig.from_dict({
        "problem": {"family": "least_squares", "d": 8, "m": 12},
        "solver": {"name": "lgd", "hidden": 16, "expansion": 10.0},
        "training": {"steps": 2, "batch_size": 8, "unroll": 5, "val_batch": 8, "val_every": 1, "checkpoint_every": 0},
    }), out)
    return out


def test_csv_every():
    assert csv_every(CSV_POINTS) == 1 and csv_every(10 * CSV_POINTS) == 10 and csv_every(1) == 1


def test_evaluate_run_typed_arguments_and_default_horizon(ls_run, tmp_path):
    outcome = evaluate_run(ls_run, baselines=["gd"], batch=3, dtype=torch.float32, out_dir=tmp_path)
    assert outcome.summary["dtype"] == "float32" and outcome.summary["iterations"] == {"lgd": 5 * HORIZON_FACTOR,
                                                                                       "gd": 5 * HORIZON_FACTOR}
    assert outcome.plot.exists() and outcome.records.exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch": 0}, "batch is 0; expected an integer >= 1"),
        ({"iterations": 0}, "iterations is 0; expected an integer >= 1"),
        ({"device": "nodevice"}, "device 'nodevice' is not a torch device"),
        ({"baselines": ["nope"]}, "baselines: unknown solver 'nope'; valid solvers:"),
        ({"baselines": ["wmmse"]}, "baselines: solver 'wmmse' solves the MIMO sum-rate family only"),
    ],
)
def test_evaluate_run_errors_name_the_parameter(ls_run, tmp_path, kwargs, message):
    with pytest.raises(ValueError) as e:
        evaluate_run(ls_run, out_dir=tmp_path, **{"batch": 2, **kwargs})
    assert str(e.value).startswith(message) and "--" not in str(e.value)
