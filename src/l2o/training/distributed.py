"""Meta-training over several processes: shards, seeds and the collectives of ``torch.distributed``.

A meta-batch of ``[training] batch_size`` instances is cut into ``[training] shards`` shards of
equal size. Shard ``s`` of meta-step ``t`` is sampled from a seed derived from the run seed,
``t`` and ``s`` only (``shard_seed``), and its meta-gradient is computed on its own; the
meta-gradient of the step is the mean of the shard gradients (their sum for
``reduction = "sum"``). A process group of W ranks gives each rank ``shards / W`` consecutive
shards (``local_shards``); the ranks sum their shards' gradients and add them up with one
``torch.distributed.all_reduce`` (gloo on CPU, NCCL on CUDA). So one process computing every
shard and W processes computing their shards together do the same arithmetic on the same
instances: the weights agree to rounding (the order of the floating-point sum differs), and a
run may be resumed with another number of processes. DDP is not used: it does not carry
gradients through an unrolled inner loop (facebookresearch/higher#99); the gradient is reduced
by hand, as torchopt and learned_optimization do.

A rank that dies or stops answering makes the collective of the others fail within the group's
timeout (``init_from_env(timeout=...)``): they raise ``DistributedError`` instead of hanging.
Errors that one rank finds (rank 0 reads the run directory) reach every rank through ``agree``.
Nothing here pickles: bytes travel as uint8 tensors (JSON, safetensors).

    >>> shard_seed(0, step=3, shard=1) == shard_seed(0, step=3, shard=1) != shard_seed(0, step=3, shard=2)
    True
    >>> list(local_shards(rank=1, world_size=2, shards=4))
    [2, 3]
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

BACKENDS = ("gloo", "nccl")
#: Seconds a collective waits for the other ranks before it fails (``l2o train --dist-timeout``).
DEFAULT_TIMEOUT = 600.0

# stream tags of shard_seed: the instances of a shard, its torch RNG, the step's unroll length and the
# step's permutation of a fixed training set
DATA, TORCH, UNROLL, PERM = 1, 2, 3, 4


_joined_timeout: float | None = None  # the timeout of the group init_from_env joined


def _first_line(e: BaseException) -> str:
    """The gist of a backend error: its first sentence without gloo's source location."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", str(e).strip())
    text = text.splitlines()[0] if text else type(e).__name__
    return text.split(". ")[0].rstrip(".")


class DistributedError(RuntimeError):
    """A collective failed: another rank died, stopped, or did not answer within the timeout."""


class PeerError(ValueError):
    """Raised on the ranks that did not find an error another rank found (``agree``); its
    message is that rank's, ``origin`` the rank that found it."""

    def __init__(self, message: str, origin: int):
        super().__init__(message)
        self.origin = origin


def shard_seed(seed: int, step: int, shard: int = 0, stream: int = DATA) -> int:
    """A 63-bit seed that depends only on the run ``seed``, the meta-step, the shard and the
    stream (numpy ``SeedSequence`` with spawn key ``(stream, step, shard)``), so that any process
    can draw any shard of any step.

    >>> shard_seed(0, 0, 0) != shard_seed(1, 0, 0)
    True
    """
    state = np.random.SeedSequence(seed, spawn_key=(stream, step, shard)).generate_state(1, dtype=np.uint64)
    return int(state[0]) & (2**63 - 1)


def local_shards(rank: int, world_size: int, shards: int) -> range:
    """The shards of ``rank`` out of ``shards`` over ``world_size`` ranks: consecutive,
    ``shards / world_size`` of them (``ValueError`` where that is not an integer).

    >>> local_shards(0, 1, 3)
    range(0, 3)
    """
    check_shards(shards, world_size)
    per = shards // world_size
    return range(rank * per, (rank + 1) * per)


def check_shards(shards: int, world_size: int) -> None:
    """``ValueError`` unless the meta-batch's ``shards`` divide over ``world_size`` processes.

    >>> check_shards(4, 2)
    """
    if world_size > 1 and shards == 0:
        raise ValueError(f"[training] shards = 0 (one sampling stream) cannot be split over {world_size} processes; "
                         f"set shards to a multiple of {world_size} that divides batch_size "
                         f"(e.g. --set training.shards={world_size})")
    if shards % world_size:
        raise ValueError(f"[training] shards = {shards} does not divide over {world_size} processes; "
                         f"expected a multiple of {world_size}")


@dataclasses.dataclass
class Distributed:
    """The process group a trainer runs in: ``rank`` of ``world_size``, the ``backend`` and the
    collective ``timeout`` in seconds (the default group of ``torch.distributed``)."""

    rank: int
    world_size: int
    backend: str
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def current(cls) -> Distributed | None:
        """The initialized default process group, or None (none, or a group of one process)."""
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return None
        return cls(dist.get_rank(), dist.get_world_size(), str(dist.get_backend()),
                   _joined_timeout if _joined_timeout is not None else DEFAULT_TIMEOUT)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")

    def _collective(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (RuntimeError, ConnectionError) as e:  # DistBackendError is a RuntimeError
            raise DistributedError(
                f"rank {self.rank} of {self.world_size}: {what} failed: another process died or did not answer "
                f"within {self.timeout:g} s ({_first_line(e)})") from None

    def all_reduce_sum(self, tensors: Sequence[Tensor]) -> list[Tensor]:
        """The elementwise sums over the ranks of ``tensors`` (one ``all_reduce`` of one flat
        buffer in the first tensor's dtype), in the tensors' shapes and dtypes."""
        flat = torch.cat([t.reshape(-1).to(dtype=tensors[0].dtype) for t in tensors]).to(self._device())
        self._collective("all_reduce of the meta-gradient", torch.distributed.all_reduce, flat)
        out, at = [], 0
        for t in tensors:
            out.append(flat[at:at + t.numel()].view(t.shape).to(device=t.device, dtype=t.dtype))
            at += t.numel()
        return out

    def broadcast_bytes(self, data: bytes | None, src: int = 0) -> bytes:
        """``data`` of rank ``src``, on every rank (a length, then the bytes as uint8)."""
        dev = self._device()
        n = torch.tensor([len(data) if self.rank == src else 0], dtype=torch.int64, device=dev)
        self._collective("broadcast", torch.distributed.broadcast, n, src)
        buf = (torch.frombuffer(bytearray(data), dtype=torch.uint8).to(dev) if self.rank == src and len(data)
               else torch.empty(int(n.item()), dtype=torch.uint8, device=dev))
        if int(n.item()):
            self._collective("broadcast", torch.distributed.broadcast, buf, src)
        return bytes(buf.cpu().numpy().tobytes())

    def agree(self, error: BaseException | None) -> None:
        """Make every rank stop when one found an error: re-raise ``error`` on the rank that
        has it (the lowest such rank's message reaches the others as ``PeerError``)."""
        flag = torch.tensor([self.world_size if error is None else self.rank], dtype=torch.int64,
                            device=self._device())
        self._collective("agreement", torch.distributed.all_reduce, flag, op=torch.distributed.ReduceOp.MIN)
        origin = int(flag.item())
        if origin == self.world_size:
            return
        message = self.broadcast_bytes(str(error).encode() if self.rank == origin else None, src=origin).decode()
        if error is not None:
            raise error
        raise PeerError(message, origin)


def init_from_env(backend: str | None = None, device: str = "cpu",
                  timeout: float = DEFAULT_TIMEOUT) -> Distributed | None:
    """Join the process group that ``torchrun`` (or any launcher) describes in the environment
    (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``; ``LOCAL_RANK`` picks the GPU).

    Returns None when ``WORLD_SIZE`` is unset or 1 (one process: nothing to join). ``backend``:
    "gloo" or "nccl", default NCCL for a CUDA ``device``, gloo otherwise; ``timeout``: seconds
    a collective waits for the others. ``ValueError`` for NCCL without CUDA or on a CPU device.

    >>> init_from_env() is None  # not launched by torchrun
    True
    """
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend is {backend!r}; expected one of {', '.join(BACKENDS)}")
    cuda = torch.device(device).type == "cuda"
    if backend == "nccl" and not torch.cuda.is_available():
        raise ValueError("backend nccl needs CUDA, but torch.cuda.is_available() is False here; use gloo")
    if backend == "nccl" and not cuda:
        raise ValueError(f"backend nccl needs a CUDA device, got device {device!r}; use device cuda or backend gloo")
    if not (timeout > 0):
        raise ValueError(f"timeout is {timeout!r}; expected a number of seconds > 0")
    if world < 2:
        return None
    backend = backend or ("nccl" if cuda else "gloo")
    if cuda:
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} needs CUDA, but torch.cuda.is_available() is False here")
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    td = datetime.timedelta(seconds=timeout)
    try:
        torch.distributed.init_process_group(backend, timeout=td)
    except (RuntimeError, ValueError, ConnectionError) as e:
        raise DistributedError(f"cannot join the process group ({backend}, WORLD_SIZE={world}): "
                               f"{_first_line(e)}") from None
    global _joined_timeout
    _joined_timeout = timeout
    group = Distributed(torch.distributed.get_rank(), torch.distributed.get_world_size(), backend, timeout)
    if backend == "gloo":  # names a rank that never arrived
        group._collective("start-up barrier", torch.distributed.monitored_barrier, timeout=td)
    return group


def shutdown(peers_alive: bool = True) -> None:
    """Leave the process group (if one was joined): with ``peers_alive``, a barrier first,
    so that no rank tears its connections down while another still uses them (gloo aborts
    the process, SIGABRT, when a peer's socket closes under it, e.g. when rank 0 exits first
    after an error that every rank agreed on), then ``destroy_process_group``. A failed
    barrier is ignored: the error that matters has been reported already. After a
    ``DistributedError`` (a peer died or hung) pass ``peers_alive=False``: no barrier,
    which would wait for the hung peer another timeout."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        try:
            if peers_alive:
                torch.distributed.barrier()
        except (RuntimeError, ConnectionError):  # DistBackendError is a RuntimeError
            pass
        torch.distributed.destroy_process_group()
