"""Run directories: exact resume, atomic writes, clear errors for bad files, and the
``l2o train`` command end to end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from l2o.cli import app
from l2o.training import RunConfig, load_run, read_safetensors, save_safetensors, train
from l2o.training.checkpoint import read_config
from l2o.utils.files import atomic_write

runner = CliRunner()




class Killed(Exception):
    """Stands for the process being killed."""


def lgd_config(**training) -> RunConfig:
    t = {"steps": 10, "batch_size": 6, "unroll": 12, "segment": 5, "update_per_segment": True, "lr": 3e-3,
         "loss": "weighted", "random_unroll": True, "schedule": "step", "decay": 0.5, "decay_every": 3,
         "val_batch": 8, "val_every": 3, "checkpoint_every": 5, "dtype": "float64"}
    t.update(training)
    return RunConfig.from_dict({
        "problem": {"family": "least_squares", "d": 6, "m": 9, "noise_std": 0.1},
        "solver": {"name": "lgd", "hidden": 16, "expansion": 10.0},
        "training": t,
    })


def math_l2o_config(**training) -> RunConfig:
    t = {"steps": 10, "batch_size": 4, "unroll": 10, "segment": 5, "lr": 1e-2, "loss": "log_gap",
         "train_set_size": 9, "grad_clip": 1.0, "val_batch": 6, "val_every": 4, "checkpoint_every": 5,
         "dtype": "float64"}
    t.update(training)
    return RunConfig.from_dict({
        "problem": {"family": "lasso", "m": 8, "n": 16, "nnz": 3},
        "solver": {"name": "math_l2o", "hidden": 6, "layers": 1},
        "training": t,
    })


def kill_at(step: int):
    def callback(info):
        if info.step == step:
            raise Killed

    return callback


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return read_safetensors(path)[0]


def assert_bitwise(a: Path, b: Path) -> None:
    ta, tb = tensors(a), tensors(b)
    assert ta.keys() == tb.keys()
    for k in ta:
        assert ta[k].dtype == tb[k].dtype and torch.equal(ta[k], tb[k]), (a.name, k)


def no_seconds(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


# ----- exact resume ------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [lgd_config, math_l2o_config], ids=["lgd", "math_l2o"])
def test_resume_reaches_the_same_weights_bitwise(tmp_path, make):
    cfg = make()
    whole = train(cfg, tmp_path / "whole")
    with pytest.raises(Killed):
        train(cfg, tmp_path / "split", callback=kill_at(7))  # last checkpoint: step 5
    assert json.loads((tmp_path / "split" / "state.json").read_text())["step"] == 5
    resumed = train(cfg, tmp_path / "split", resume=True)
    for name in ("weights.safetensors", "best.safetensors"):
        assert_bitwise(tmp_path / "whole" / name, tmp_path / "split" / name)
    sa, sb = tensors(tmp_path / "whole" / "state.safetensors"), tensors(tmp_path / "split" / "state.safetensors")
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)  # optimizer and RNG states too
    assert no_seconds(whole.log) == no_seconds(resumed.log)
    assert (whole.best_step, whole.best_val_gap, whole.final_val_gap) == (
        resumed.best_step, resumed.best_val_gap, resumed.final_val_gap)
    assert len((tmp_path / "split" / "log.csv").read_text().splitlines()) == 11


def test_resume_with_more_steps_continues_the_same_run(tmp_path):
    cfg10 = lgd_config(schedule="constant", random_unroll=False)
    cfg6 = RunConfig.from_dict({**cfg10.to_dict(), "training": {**cfg10.to_dict()["training"], "steps": 6}})
    train(cfg10, tmp_path / "whole")
    train(cfg6, tmp_path / "grow")
    res = train(cfg10, tmp_path / "grow", resume=True)
    assert res.steps == 10
    assert_bitwise(tmp_path / "whole" / "weights.safetensors", tmp_path / "grow" / "weights.safetensors")
    assert read_config(tmp_path / "grow").training.steps == 10
    again = train(cfg10, tmp_path / "grow", resume=True)  # a finished run: nothing to do
    assert again.steps == 10


def test_resume_and_fresh_start_guards(tmp_path):
    cfg = lgd_config(steps=2)
    with pytest.raises(ValueError, match="has no checkpoint"):
        train(cfg, tmp_path / "empty", resume=True)
    train(cfg, tmp_path / "run")
    with pytest.raises(ValueError, match="already holds a run"):
        train(cfg, tmp_path / "run")
    other = lgd_config(steps=2, lr=1e-2)
    with pytest.raises(ValueError, match=r"config differs from the run's config.toml in \[training\] lr"):
        train(other, tmp_path / "run", resume=True)
    # killed before its first checkpoint (config.toml only): --resume starts it again
    (tmp_path / "early").mkdir()
    (tmp_path / "early" / "config.toml").write_text(cfg.to_toml())
    res = train(cfg, tmp_path / "early", resume=True)
    assert res.steps == 2
    assert_bitwise(tmp_path / "run" / "weights.safetensors", tmp_path / "early" / "weights.safetensors")


# ----- the run directory ---------------------------------------------------------------------------------


def test_run_directory_files_and_load_run(tmp_path):
    cfg = lgd_config(steps=4, checkpoint_every=2)
    res = train(cfg, tmp_path / "run")
    names = sorted(os.listdir(tmp_path / "run"))
    assert names == sorted(["best.safetensors", "config.toml", "log.csv", "metrics.json", "state.json",
                            "state.safetensors", "weights.safetensors"])
    header = (tmp_path / "run" / "log.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["step", "loss", "val_gap", "lr", "seconds", "rejected"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["finished"] and metrics["steps_done"] == 4 and metrics["best_step"] == res.best_step
    run = load_run(tmp_path / "run")
    assert run.config == cfg and not run.solver.training
    assert next(run.solver.parameters()).dtype == torch.float64
    assert run.family == cfg.make_family() and run.metrics == metrics
    last = load_run(tmp_path / "run", which="last")
    assert last.weights.name == "weights.safetensors"
    with pytest.raises(ValueError, match="which must be"):
        load_run(tmp_path / "run", which="first")


def test_lista_run_gets_its_dictionary_from_the_family(tmp_path):
    cfg = RunConfig.from_dict({
        "problem": {"family": "lasso", "m": 8, "n": 16, "nnz": 3},
        "solver": {"name": "lista"},
        "training": {"steps": 3, "batch_size": 4, "unroll": 5, "val_batch": 4, "val_every": 3, "loss": "last"},
    })
    assert "A" not in cfg.solver_params and cfg.solver_params["horizon"] == 5
    res = train(cfg, tmp_path / "run")
    run = load_run(tmp_path / "run")
    torch.testing.assert_close(run.solver.A, cfg.make_family().dictionary().to(torch.float32))
    for a, b in zip(run.solver.state_dict().values(), res.solver.state_dict().values()):
        assert torch.equal(a, b)


# ----- atomic writes -----------------------------------------------------------------------------------------


def test_no_temporary_files_are_left(tmp_path):
    train(lgd_config(steps=4, checkpoint_every=1), tmp_path / "run")
    assert not [n for n in os.listdir(tmp_path / "run") if n.startswith(".") or n.endswith(".tmp")]


def test_a_failing_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "weights.safetensors"
    save_safetensors(path, {"w": torch.arange(4.0)})
    before = path.read_bytes()

    def half_then_fail(fh):
        fh.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == before

    def no_fsync(fd):
        raise OSError("I/O error")

    monkeypatch.setattr(os, "fsync", no_fsync)
    with pytest.raises(OSError, match="I/O error"):
        save_safetensors(path, {"w": torch.zeros(4)})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["weights.safetensors"]
    monkeypatch.undo()
    assert torch.equal(tensors(path)["w"], torch.arange(4.0))


# ----- bad files --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs") / "run"
    train(lgd_config(steps=2, checkpoint_every=1), root)
    return root


def copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


@pytest.mark.parametrize(
    "name, damage, match",
    [
        ("best.safetensors", lambda b: b[: len(b) // 2], r"cannot read '.*best.safetensors': truncated"),
        ("best.safetensors", lambda b: b[:5], r"best.safetensors': truncated safetensors file \(5 bytes"),
        ("best.safetensors", lambda b: b"", r"best.safetensors' is empty \(0 bytes\)"),
        ("best.safetensors", lambda b: b[:8] + b"{nonsense" + b[17:], r"best.safetensors': corrupt safetensors header"),
        ("best.safetensors", None, r"best.safetensors' does not exist"),
        ("config.toml", lambda b: b"[problem\n", r"cannot read '.*config.toml': invalid TOML"),
        ("config.toml", None, r"config.toml' does not exist"),
        ("config.toml", lambda b: b.replace(b"hidden = 16", b"hidden = 17"), r"best.safetensors'.*has shape"),
        ("metrics.json", lambda b: b[:10], r"cannot read '.*metrics.json': corrupt JSON"),
    ],
)
def test_load_run_errors_name_the_file(tmp_path, finished_run, name, damage, match):
    run = copy_run(finished_run, tmp_path / "run")
    if damage is None:
        (run / name).unlink()
    else:
        (run / name).write_bytes(damage((run / name).read_bytes()))
    with pytest.raises(ValueError, match=match):
        load_run(run)


def test_load_run_of_a_missing_directory(tmp_path):
    with pytest.raises(ValueError, match="run directory .* does not exist"):
        load_run(tmp_path / "nope")


@pytest.mark.parametrize(
    "name, damage, match",
    [
        ("state.safetensors", lambda b: b[:-7], r"state.safetensors': truncated safetensors file"),
        ("state.safetensors", lambda b: b"", r"state.safetensors' is empty"),
        ("state.json", lambda b: b"{", r"cannot read '.*state.json': corrupt JSON"),
        ("log.csv", lambda b: b"step,loss\n1,0.5\n", r"log.csv' has 1 rows up to step 2; expected 2"),
    ],
)
def test_resume_from_a_corrupt_checkpoint_fails_clearly(tmp_path, finished_run, name, damage, match):
    run = copy_run(finished_run, tmp_path / "run")
    (run / name).write_bytes(damage((run / name).read_bytes()))
    with pytest.raises(ValueError, match=match):
        train(lgd_config(steps=2, checkpoint_every=1), run, resume=True)


# ----- the command line ---------------------------------------------------------------------------------------------

TINY = """\
# a tiny LGD run
[problem]
family = "least_squares"
d = 6
m = 9

[solver]
name = "lgd"
hidden = 16

[training]
steps = 4
batch_size = 4
unroll = 8
val_batch = 4
val_every = 2
checkpoint_every = 2
"""


def test_cli_train_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.toml").write_text(TINY)
    res = runner.invoke(app, ["train", "tiny.toml"])
    assert res.exit_code == 0, res.output
    assert "trained lgd on least_squares: 4 steps" in res.stdout
    out = tmp_path / "runs" / "tiny"
    for name in ("weights.safetensors", "best.safetensors", "config.toml", "metrics.json", "log.csv",
                 "state.safetensors", "state.json"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "metrics.json").read_text())["steps_done"] == 4
    assert load_run(out).config.training.steps == 4
    # again without --resume: refused; with --resume: the run is finished, nothing to do
    res = runner.invoke(app, ["train", "tiny.toml"])
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines()[-1].startswith("error: 'runs/tiny' already holds a run")
    res = runner.invoke(app, ["train", "tiny.toml", "--resume"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["train", "tiny.toml", "--out", str(tmp_path / "other")])
    assert res.exit_code == 0 and (tmp_path / "other" / "best.safetensors").exists()


@pytest.mark.parametrize(
    "text, message",
    [
        (TINY.replace("steps = 4", "stepz = 4"), "error: tiny.toml: unknown key(s) 'stepz' in [training]; valid keys:"),
        (TINY.replace("hidden = 16", "hidden = 'wide'"), "error: tiny.toml: [solver] hidden = 'wide' is a string"),
        (TINY.replace('"lgd"', '"lgdd"'), "error: tiny.toml: [solver] name = 'lgdd' is not a learned solver"),
        ("[problem\n", "error: config file 'tiny.toml' is not valid TOML"),
    ],
)
def test_cli_train_bad_config_is_one_line(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.toml").write_text(text)
    res = runner.invoke(app, ["train", "tiny.toml"])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), res.stderr
    assert not (tmp_path / "runs").exists()


def test_cli_train_missing_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["train", "nope.toml"])
    assert res.exit_code == 2 and res.stderr.strip() == "error: config file 'nope.toml' does not exist"


def test_tensorboard_scalars_when_available(tmp_path, monkeypatch):
    """TensorBoard is optional (not installed here): a stand-in module shows what is logged."""
    import sys
    import types

    calls = []

    class SummaryWriter:
        def __init__(self, log_dir, purge_step=None):
            calls.append(("open", Path(log_dir).name, purge_step))

        def add_scalar(self, tag, value, step):
            calls.append((tag, step))

        def close(self):
            calls.append(("close",))

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=SummaryWriter))
    train(lgd_config(steps=3, val_every=3), tmp_path / "run", tensorboard=tmp_path / "run")
    assert calls[0] == ("open", "run", None) and calls[-1] == ("close",)
    assert ("loss", 3) in calls and ("lr", 1) in calls and ("val_gap", 3) in calls and ("val_gap", 1) not in calls
