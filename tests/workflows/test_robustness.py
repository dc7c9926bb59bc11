"""``l2o.workflows.robustness``: the ``[evaluation]`` table (``EvaluationConfig``), checked
where it is used, and the parameter checks of ``evaluate_ood``."""

from __future__ import annotations

import pytest

from l2o.training import RunConfig
from l2o.workflows.robustness import EvaluationConfig, evaluate_ood, evaluation_config, resolve_evaluation

BASE = {"problem": {"family": "lasso_250x500"}, "solver": {"name": "alista"}}


@pytest.mark.parametrize(
    "table, message",
    [
        ({"splits": ["x0_+7"]}, "[evaluation] splits: unknown split 'x0_+7'"),
        ({"split": ["id"]},
         "unknown key(s) 'split' in [evaluation]; valid keys: batch, check_every, fallback, rule, splits"),
        ({"rule": "magic"}, "[evaluation] rule = 'magic'"),
        ({"fallback": "nope"}, "[evaluation] fallback = 'nope' is not a solver"),
        ({"splits": "id"}, "expected an array of split names"),
    ],
)
def test_bad_evaluation_table(table, message):
    config = RunConfig.from_dict({**BASE, "evaluation": table})  # training keeps the table as given
    with pytest.raises(ValueError) as e:
        evaluation_config(config)
    assert message in str(e.value)


def test_evaluation_table_defaults_and_resolution():
    config = RunConfig.from_dict(BASE)
    assert config.evaluation == {} and evaluation_config(config) == EvaluationConfig()
    resolved = resolve_evaluation(config)
    assert resolved.evaluation == {"splits": [], "fallback": "", "rule": "descent", "check_every": 1, "batch": 64}
    assert RunConfig.from_dict(resolved.to_dict()) == resolved  # the round trip of a run's config.toml
    given = RunConfig.from_dict({**BASE, "evaluation": {"splits": ["x0_-10"], "batch": 3}})
    ev = evaluation_config(given)
    assert ev.splits == ("x0_-10",) and ev.batch == 3 and ev.rule == "descent"
    with pytest.raises(ValueError, match=r"\[evaluation\] batch = 'x' is a string; expected an integer"):
        evaluation_config(RunConfig.from_dict({**BASE, "evaluation": {"batch": "x"}}))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch": 0}, "batch is 0; expected an integer >= 1"),
        ({"iterations": 0}, "iterations is 0; expected an integer >= 1"),
        ({"check_every": 0}, "check_every is 0; expected an integer >= 1"),
        ({"rule": "magic"}, "rule: unknown safeguard rule 'magic'; valid rules:"),
    ],
)
def test_evaluate_ood_errors_name_the_parameter(tmp_path, kwargs, message):
    with pytest.raises(ValueError) as e:
        evaluate_ood(tmp_path / "no-run", **kwargs)
    assert str(e.value).startswith(message) and "--" not in str(e.value)
