"""``l2o.workflows.demo``: the built-in config and the parameter checks of ``run_demo``
(the command is tested in tests/cli/test_cmd_demo.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from l2o.training.config import load_config
from l2o.workflows.demo import demo_config, demo_trains, run_demo


def test_the_demo_config_is_the_lfista_example():
    """The built-in config and examples/lfista_lasso.toml are one setting: a change to
    either must be made to both (the README quotes the example's figures for the demo)."""
    example = Path(__file__).resolve().parents[2] / "examples" / "lfista_lasso.toml"
    assert demo_config().to_dict() == load_config(example).to_dict()


def test_demo_trains_only_on_a_shared_dictionary_lasso():
    assert demo_trains("lasso_250x500") and not demo_trains("qp_100")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch": 0}, "batch is 0; expected an integer >= 1"),
        ({"iterations": 0}, "iterations is 0; expected an integer >= 1"),
        ({"record_every": 0}, "record_every is 0; expected an integer >= 1"),
        ({"steps": 0}, "steps is 0; expected an integer >= 1"),
        ({"problem": "nope"}, "unknown preset 'nope'; expected one of"),
    ],
)
def test_run_demo_errors_name_the_parameter(kwargs, message):
    with pytest.raises(ValueError) as e:
        run_demo(**kwargs)
    assert str(e.value).startswith(message) and "--" not in str(e.value)


def test_run_demo_classical_returns_data_and_prints_nothing(capsys):
    lines = []
    outcome = run_demo(batch=3, iterations=10, train=False, say=lines.append)
    assert capsys.readouterr().out == "" and outcome.plot is None and outcome.training is None
    assert [s["name"] for s in outcome.summary["solvers"]] == ["ista", "fista", "fista_restart", "adam"]
