"""The real-process backend: one process per node, ``torch.distributed`` point-to-point messages.

* ``launch(jobs, ...)`` starts n local processes (``spawn``) that rendezvous on
  ``tcp://127.0.0.1:<free port>`` (gloo), runs each job (``RunSpec``) in turn and returns their results
  from node 0. A watchdog in the parent turns a node that dies, or a run past ``timeout``, into one
  ``RuntimeError`` naming the node(s); the nodes themselves bound every wait (``comm_timeout``), so a
  dead peer makes its neighbours fail with a ``PeerError`` instead of hanging.
* ``run_node(spec, rank, n)`` is what each node runs, in an initialized process group: the same
  ``run_loop`` as the simulated backend over a ``ProcessComm``; at the end every node sends its recorded
  iterates to node 0, which computes the metrics (``simulate.metrics``) and returns a ``Result``.
* ``run_from_env(spec)`` is the entry for ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
  ``MASTER_PORT`` from the environment).

The process group carries only the algorithm's messages (``ProcessComm.mix``) and the final gather;
bytes and messages are counted per node by ``ProcessComm``.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import socket
import tempfile
import time
import traceback
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor

from l2o.decentralized.algorithms import Context, make_algorithm
from l2o.decentralized.comm import PeerError, ProcessComm
from l2o.decentralized.objectives import NodeData, Objective
from l2o.decentralized.simulate import Result, check_run, metrics, run_loop, start_point
from l2o.decentralized.topology import Topology
from l2o.utils.files import atomic_write, read_safetensors, save_safetensors


@dataclasses.dataclass
class RunSpec:
    """One run: the algorithm's name, the topology, objective and per-node data, the step size, the number
    of iterations, the batch (None: full local data), the gossip rounds, the sampling seed, the start x0
    ((d,) or (n, d); None: the objective's default), how often to record, the dtype. ``crash_at``
    (node, iteration) makes that node exit abruptly at that iteration, or with ``fault="hang"`` stop
    answering (sleep): fault injection for tests.

    >>> from l2o.decentralized.topology import ring_with_chord
    >>> from l2o.decentralized.objectives import LeastSquares, least_squares_data
    >>> spec = RunSpec("push_pull", ring_with_chord(4), LeastSquares(), least_squares_data(4, 5, 2), 0.1, 3)
    >>> spec.n
    4
    """

    algorithm: str
    topology: Topology
    objective: Objective
    data: NodeData
    lr: float
    iterations: int
    batch: int | None = None
    rounds: int = 1
    seed: int = 0
    x0: Tensor | None = None
    record_every: int = 1
    dtype: torch.dtype = torch.float64
    crash_at: tuple[int, int] | None = None
    fault: str = "exit"

    @property
    def n(self) -> int:
        return self.topology.n

    def check(self) -> None:
        """Validate the run (one-line ValueError) before any process starts."""
        check_run(make_algorithm(self.algorithm), self.topology, self.objective, self.data, self.lr,
                  self.iterations, self.batch, self.rounds)


@dataclasses.dataclass
class NodeStats:
    """Per node: seconds in the loop, seconds inside ``mix`` (sending, receiving, combining), rounds."""

    loop_seconds: Tensor
    comm_seconds: Tensor
    rounds: int


class _TimedComm(ProcessComm):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seconds = 0.0

    def mix(self, parts):
        t = time.perf_counter()
        out = super().mix(parts)
        self.seconds += time.perf_counter() - t
        return out


def run_node(spec: RunSpec, rank: int, comm_timeout: float = 60.0) -> tuple[Result, NodeStats] | None:
    """Run ``spec`` as node ``rank`` of an initialized process group of ``spec.n`` processes. Node 0 returns
    the run's ``Result`` (final iterates and metrics of all nodes) and the per-node ``NodeStats``; the other
    nodes return None. Needs a process group: the tests run it through ``launch``."""
    n = spec.n
    if dist.get_world_size() != n:
        raise ValueError(f"the process group has {dist.get_world_size()} processes but the graph has {n} nodes; "
                         "expected one process per node")
    algo = make_algorithm(spec.algorithm)
    data = spec.data.to(dtype=spec.dtype)
    comm = _TimedComm(spec.topology, rank, dtype=spec.dtype, timeout=comm_timeout)
    ctx = Context(comm, spec.objective, data, float(spec.lr), spec.batch, spec.rounds, spec.seed)
    x0 = start_point(spec.x0, spec.objective, data, 1, comm.nodes)
    its: list[int] = []
    hist: list[Tensor] = []

    def record(k: int, x: Tensor) -> None:
        its.append(k)
        hist.append(x[0, 0].clone())
        if spec.crash_at is not None and spec.crash_at == (rank, k):
            if spec.fault == "hang":
                time.sleep(3600)
            os._exit(17)

    t0 = time.perf_counter()
    run_loop(algo, ctx, x0, spec.iterations, spec.record_every, record)
    loop_seconds = time.perf_counter() - t0
    mine = torch.stack(hist)  # (T, d)
    stats = torch.tensor([loop_seconds, comm.seconds, float(comm.messages[0]), float(comm.bytes[0])],
                         dtype=torch.float64)
    if rank != 0:
        comm.rounds = -1  # errors in the gather say "round -1"
        for what, buf in (("history", mine), ("stats", stats)):
            comm.wait(dist.isend(buf, dst=0), f"sending the {what} to", 0)
        return None
    all_x = torch.empty(n, *mine.shape, dtype=mine.dtype)
    all_stats = torch.empty(n, 4, dtype=torch.float64)
    all_x[0], all_stats[0] = mine, stats
    for j in range(1, n):
        comm.wait(dist.irecv(all_x[j], src=j), "receiving the history from", j)
        comm.wait(dist.irecv(all_stats[j], src=j), "receiving the stats from", j)
    X = all_x.transpose(0, 1)  # (T, n, d): the recorded iterations play the repetitions of metrics()
    m = metrics(spec.objective, data, X)
    result = Result(x=X[-1:].clone(), iterations=torch.tensor(its), grad_norm=m["grad_norm"][:, None],
                    consensus=m["consensus"][:, None], loss=m["loss"][:, None],
                    messages=all_stats[:, 2].long(), bytes=all_stats[:, 3].long(), rounds=comm.rounds)
    return result, NodeStats(all_stats[:, 0], all_stats[:, 1], comm.rounds)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    >>> 0 < free_port() < 65536
    True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_RESULT_KEYS = ("x", "iterations", "grad_norm", "consensus", "loss", "messages", "bytes")


def _save(path: Path, result: Result, stats: NodeStats) -> None:
    tensors = {k: getattr(result, k).contiguous() for k in _RESULT_KEYS}
    tensors["loop_seconds"], tensors["comm_seconds"] = stats.loop_seconds, stats.comm_seconds
    save_safetensors(path, tensors, {"rounds": str(result.rounds)})


def _load(path: Path) -> tuple[Result, NodeStats]:
    t, meta = read_safetensors(path)
    rounds = int(meta["rounds"])
    return (Result(**{k: t[k] for k in _RESULT_KEYS}, rounds=rounds),
            NodeStats(t["loop_seconds"], t["comm_seconds"], rounds))


def _worker(rank: int, n: int, port: int, jobs: list[RunSpec], folder: str, comm_timeout: float) -> None:
    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=n,
                                timeout=datetime.timedelta(seconds=comm_timeout))
        for i, spec in enumerate(jobs):
            out = run_node(spec, rank, comm_timeout)
            if out is not None:
                _save(Path(folder) / f"result-{i}.safetensors", *out)
        dist.destroy_process_group()
    except BaseException as e:  # report the node's own error to the parent, then exit non-zero
        msg = str(e) if isinstance(e, PeerError) else f"node {rank}: {type(e).__name__}: {e}"
        atomic_write(Path(folder) / f"error-{rank}.txt", " ".join(msg.split())[:500])
        if not isinstance(e, PeerError):
            traceback.print_exc()
        os._exit(3)


def launch(jobs: list[RunSpec], timeout: float = 120.0, comm_timeout: float = 30.0,
           port: int | None = None) -> list[tuple[Result, NodeStats]]:
    """Run ``jobs`` (all on the same number of nodes n) with n local processes, one per node, that talk over
    gloo on 127.0.0.1; returns each job's (Result, NodeStats) from node 0. ``timeout`` (seconds) bounds the
    whole launch, ``comm_timeout`` every wait of a node. Raises RuntimeError naming the node that died or
    timed out (and the errors its peers reported). Needs a free port and a few seconds per process to
    import torch, so no doctest here."""
    if not jobs:
        raise ValueError("jobs is empty; expected at least one RunSpec")
    n = jobs[0].n
    for spec in jobs:
        if spec.n != n:
            raise ValueError(f"jobs have {spec.n} and {n} nodes; expected one node count per launch")
        spec.check()
    port = free_port() if port is None else port
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="l2o-dec-") as folder:
        procs = [ctx.Process(target=_worker, args=(r, n, port, jobs, folder, comm_timeout), daemon=True)
                 for r in range(n)]
        for p in procs:
            p.start()
        deadline = time.monotonic() + timeout
        failed_at: float | None = None
        while any(p.is_alive() for p in procs):
            if any(p.exitcode not in (None, 0) for p in procs) and failed_at is None:
                failed_at = time.monotonic()
            now = time.monotonic()
            # once a node failed, give the others comm_timeout to notice and report, then stop them
            if now > deadline or (failed_at is not None and now > failed_at + comm_timeout + 5):
                break
            time.sleep(0.05)
        timed_out = [r for r, p in enumerate(procs) if p.is_alive()]
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join(5)
        codes = {r: p.exitcode for r, p in enumerate(procs)}
        errors = {r: (Path(folder) / f"error-{r}.txt").read_text() for r in range(n)
                  if (Path(folder) / f"error-{r}.txt").exists()}
        dead = [r for r, c in codes.items() if c not in (0, None) and r not in errors and r not in timed_out]
        if dead or errors or timed_out:
            parts = [f"node {r} died (exit code {codes[r]})" for r in dead]
            if timed_out and not dead and not errors:
                parts.append(f"nodes {timed_out} still running after {timeout:g} s (stopped)")
            parts += list(errors.values())[:3]
            raise RuntimeError("decentralized run failed: " + "; ".join(parts))
        return [_load(Path(folder) / f"result-{i}.safetensors") for i in range(len(jobs))]


def run_from_env(spec: RunSpec, comm_timeout: float = 60.0) -> tuple[Result, NodeStats] | None:
    """The node entry under ``torchrun``: rank and world size from the environment, gloo rendezvous
    through ``MASTER_ADDR:MASTER_PORT``; node 0 returns the result, the others None."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if world != spec.n:
        raise ValueError(f"torchrun started {world} processes but the graph has {spec.n} nodes; "
                         f"expected --nproc-per-node {spec.n}")
    spec.check()
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="env://", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=comm_timeout))
    try:
        return run_node(spec, rank, comm_timeout)
    finally:
        dist.destroy_process_group()


__all__ = ["RunSpec", "NodeStats", "run_node", "launch", "run_from_env", "free_port"]
