"""The LQN example configs are the models of ``benchmarks/bench_quasi_newton.py``: one per
task of the paper (ridge logistic regression, log-sum-exp, least squares), trained at
d = 100, so ``l2o train examples/lqn_*.toml`` and the bundles ``lqn-<preset>`` made from
them (``benchmarks/train_pretrained.py``) are the models whose figures
``benchmarks/results/quasi_newton.md`` reports: each example equals the config the
benchmark's results file records for its task, and the config its ``train_config`` builds
with the command-line defaults."""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import pathlib
import re

import pytest

from l2o.training import RunConfig, load_config

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = {"logistic": "lqn_logistic.toml", "logsumexp": "lqn_logsumexp.toml", "least_squares": "lqn_ls.toml"}
#: bench_quasi_newton's command-line defaults for the training (--train-steps, --loss, --lr)
DEFAULTS = argparse.Namespace(train_steps=300, loss="log_gap", lr=1e-2)


@pytest.fixture(scope="module")
def bench():
    path = ROOT / "benchmarks" / "bench_quasi_newton.py"
    spec = importlib.util.spec_from_file_location("bench_quasi_newton", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_task_has_an_example(bench):
    assert set(EXAMPLES) == set(bench.TASKS)
    source = (ROOT / "benchmarks" / "bench_quasi_newton.py").read_text()
    for flag, default in (("--train-steps", DEFAULTS.train_steps), ("--loss", DEFAULTS.loss), ("--lr", DEFAULTS.lr)):
        line = next(ln for ln in source.splitlines() if f'add_argument("{flag}"' in ln)
        value = ast.literal_eval(re.search(r"default=([^,)]+)", line).group(1))
        assert value == default, (flag, line)  # DEFAULTS are still the benchmark's


@pytest.mark.parametrize("task", sorted(EXAMPLES))
def test_each_example_is_the_benchmarks_model(bench, task):
    example = load_config(ROOT / "examples" / EXAMPLES[task]).to_dict()
    assert example == RunConfig.from_dict(bench.train_config(task, DEFAULTS)).to_dict()
    assert example["problem"]["family"] == bench.TASKS[task](bench.TRAIN_DIM)
    recorded = json.loads((ROOT / "benchmarks" / "results" / "quasi_newton.json").read_text())["models"][task]
    assert example == RunConfig.from_dict(recorded["config"]).to_dict()
