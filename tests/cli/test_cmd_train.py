"""``l2o train``: the run config's ``[evaluation]`` table is checked when the config is
loaded (one line naming the file) and written resolved to the run's config.toml."""

from __future__ import annotations

import json
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


# ----- --steps and --set: overrides checked like the file, recorded in config.toml --------------------

def test_steps_and_set_override_the_file_and_are_recorded(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    res = invoke("train", path, "--out", tmp_path / "run", "--steps", 2, "--set", "training.lr=2e-3",
                 "--set", "training.random_unroll=true", "--set", "problem.lam=0.2", "--set", "solver.horizon=3")
    assert res.exit_code == 0, res.output
    assert "alista on lasso: 2 steps" in res.stdout
    written = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert written["training"]["steps"] == 2 and written["training"]["lr"] == 2e-3
    assert written["training"]["random_unroll"] is True and written["problem"]["lam"] == 0.2
    assert len((tmp_path / "run" / "log.csv").read_text().strip().splitlines()) == 1 + 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "training.lrr=1e-3"], "with training.lrr=1e-3: unknown key(s) 'lrr' in [training]; valid keys:"),
        (["--set", "training.steps=abc"], "[training] steps = 'abc' is a string; expected an integer"),
        (["--set", "training.steps=1.5"], "[training] steps = 1.5 is a number; expected an integer"),
        (["--steps", "0"], "with training.steps=0: [training] steps = 0; expected an integer >= 1"),
        (["--set", "steps=3"], "override 'steps=3' is not table.key=value (e.g. training.lr=1e-3)"),
        (["--set", "train.steps=3"], "override 'train.steps=3': unknown table [train]; valid tables: problem,"),
        (["--set", "solver.hidden=8"], "unknown key(s) 'hidden' in [solver] for 'alista'"),
    ],
)
def test_bad_overrides_are_one_line_like_bad_files(tmp_path, args, message):
    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    res = invoke("train", path, "--out", tmp_path / "run", *args)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}") and message in lines[0], lines
    assert not (tmp_path / "run").exists()


# ----- --resume ------------------------------------------------------------------------------------------

RESUMABLE = CONFIG.replace("steps = 1", "steps = 4").replace("checkpoint_every = 0", "checkpoint_every = 1")


class _Stop(Exception):
    pass


def _cut_off_run(tmp_path, at: int = 2):
    """A run of ``RESUMABLE`` (4 steps) killed after its checkpoint at step ``at``."""
    from l2o.training import RunConfig, train

    def stop(info):
        if info.step == at:
            raise _Stop

    path = tmp_path / "c.toml"
    path.write_text(RESUMABLE)
    with pytest.raises(_Stop):
        train(RunConfig.from_dict(tomllib.loads(RESUMABLE)), tmp_path / "run", callback=stop)
    return path


def test_resume_says_from_which_step_then_reports_a_finished_run(tmp_path):
    path = _cut_off_run(tmp_path)
    res = invoke("train", path, "--out", tmp_path / "run", "--resume")
    assert res.exit_code == 0, res.output
    assert f"resuming '{tmp_path / 'run'}' from step 2 of 4" in res.stderr
    assert "resumed from step 2; trained alista on lasso: 4 steps" in res.stdout
    weights = (tmp_path / "run" / "weights.safetensors").read_bytes()
    res = invoke("train", path, "--out", tmp_path / "run", "--resume")  # finished: nothing to do
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith(f"{tmp_path / 'run'} already finished: 4 of 4 steps; nothing to do")
    assert (tmp_path / "run" / "weights.safetensors").read_bytes() == weights
    res = invoke("train", path, "--out", tmp_path / "run", "--resume", "--steps", 5)  # more steps: continues
    assert res.exit_code == 0 and "from step 4 of 5" in res.stderr and ": 5 steps" in res.stdout


def test_resume_errors_speak_in_flags_and_leave_no_directory(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(RESUMABLE)
    res = invoke("train", path, "--out", tmp_path / "new" / "run", "--resume")
    assert res.exit_code == 2
    assert res.stderr.strip() == (f"error: cannot resume: '{tmp_path / 'new' / 'run'}' holds no run; "
                                  "start it without --resume")
    assert not (tmp_path / "new").exists()
    _cut_off_run(tmp_path)
    res = invoke("train", path, "--out", tmp_path / "run")
    assert res.exit_code == 2 and "resume=True" not in res.stderr
    assert res.stderr.strip() == (f"error: '{tmp_path / 'run'}' already holds a run (2 of 4 steps done); continue it "
                                  "with --resume (more steps: --resume --steps N), or choose another --out")


def test_a_failed_start_removes_the_directories_it_created(tmp_path, monkeypatch):
    from l2o.training.trainer import Trainer

    def broken(self):
        raise ValueError("no data today")

    monkeypatch.setattr(Trainer, "_setup_data", broken)
    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    res = invoke("train", path, "--out", tmp_path / "a" / "b" / "run")
    assert res.exit_code == 2 and res.stderr.strip() == "error: no data today"
    assert not (tmp_path / "a").exists()


def test_eval_of_an_unfinished_run_says_how_many_steps_it_has(tmp_path):
    _cut_off_run(tmp_path)
    res = invoke("eval", tmp_path / "run", "--batch", 4, "--iterations", 6, "--baselines", "fista", "--json",
                 "--out-dir", tmp_path / "e")
    assert res.exit_code == 0, res.output
    assert res.stderr.strip().splitlines()[0].startswith(
        "note: run has 2 of 4 steps (unfinished); evaluating its best checkpoint (step ")
    out = json.loads(res.stdout)
    assert out["steps_done"] == 2 and out["unfinished"].startswith("run has 2 of 4 steps")


def test_resume_trusts_the_checkpoint_over_metrics(tmp_path):
    """Killed while writing the final checkpoint: metrics.json (written before the state,
    the commit point) already says finished at 4 steps, the state is still at step 2."""
    path = _cut_off_run(tmp_path)
    metrics_path = tmp_path / "run" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics_path.write_text(json.dumps({**metrics, "finished": True, "steps_done": 4}))
    res = invoke("train", path, "--out", tmp_path / "run", "--resume")
    assert res.exit_code == 0, res.output
    assert "from step 2 of 4" in res.stderr and "already finished" not in res.stdout
    metrics_path.write_text("{not json")  # unreadable metrics: the state decides, as before
    res = invoke("train", path, "--out", tmp_path / "run", "--resume", "--steps", 5)
    assert res.exit_code == 0 and "from step 4 of 5" in res.stderr, res.output
