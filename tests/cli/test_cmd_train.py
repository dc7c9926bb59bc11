"""``l2o train``: the run config's ``[evaluation]`` table is checked when the config is
loaded (one line naming the file) and written resolved to the run's config.toml."""

from __future__ import annotations

import tomllib

import pytest
from typer.testing import CliRunner

from l2o.cli import app

pytest.importorskip("l2o.training", reason="the meta-training engine (l2o.training) is not available")
runner = CliRunner()

CONFIG = """
[problem]
family = "lasso"
m = 10
n = 20
nnz = 3

[solver]
name = "alista"
horizon = 3

[training]
steps = 1
batch_size = 2
unroll = 3
val_batch = 2
val_every = 1
checkpoint_every = 0
"""


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize(
    "table, message",
    [
        ('splits = ["x0_+7"]', "[evaluation] splits: unknown split 'x0_+7'"),
        ('rule = "magic"', "[evaluation] rule = 'magic'"),
        ('split = ["id"]', "unknown key(s) 'split' in [evaluation]"),
    ],
)
def test_bad_evaluation_table_is_one_line_naming_the_file(tmp_path, table, message):
    path = tmp_path / "bad.toml"
    path.write_text(CONFIG + "\n[evaluation]\n" + table + "\n")
    res = invoke("train", path, "--out", tmp_path / "run")
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: ") and message in lines[0]
    assert not (tmp_path / "run").exists()


def test_config_toml_holds_the_resolved_evaluation_table(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text(CONFIG + '\n[evaluation]\nsplits = ["x0_-10"]\n')
    res = invoke("train", path, "--out", tmp_path / "run")
    assert res.exit_code == 0, res.output
    written = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert written["evaluation"] == {"splits": ["x0_-10"], "fallback": "", "rule": "descent", "check_every": 1,
                                     "batch": 64}
