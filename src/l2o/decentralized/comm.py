"""The communication interface the algorithms are written against, and its two backends.

One call, ``mix(parts)``, is one communication round: every node sends one packed message (all the
parts, concatenated) to its out-neighbours and receives one from each in-neighbour; part ``(key, t)``
comes back as ``M t`` with ``M`` the matrix ``key``: ``"A"`` (row-stochastic, pull), ``"B"``
(column-stochastic, push) or ``"J"`` (``11^T / n``, exact averaging: every node talks to every other).
Local tensors have shape (..., k, c): k local nodes (their ids in ``nodes``), c columns, and any
leading dimensions (the repetitions; a part may have none, like the rows of ``A^t`` that
Pull-Diag-GT carries).

* ``SimulatedComm``: all n nodes in one tensor, ``mix`` is a matrix product ``M @ t`` (batched over
  repetitions; any dtype and device). For a sparse graph (``sparse=None``: at least 128 nodes and at most
  10% of the entries non-zero, like the exponential graph's log2(n) + 1 per row) A and B are kept in
  compressed-sparse-row form and ``M @ t`` costs O(nnz c) instead of O(n^2 c): the same sums, only the
  zero terms skipped (at n = 512 the mixing of Pull-Diag-GT's rows of A^k drops from O(n^3) to O(n^2 log n)
  per round).
* ``ProcessComm``: this process is one node (its rank); ``mix`` packs the node's parts into one
  flat buffer, ``isend``s it to each out-neighbour and ``irecv``s one from each in-neighbour with
  ``torch.distributed`` (point-to-point), then forms ``sum_j M[i, j] t_j``. Every wait has a
  timeout, and a lost or silent peer becomes a ``RuntimeError`` naming this node, the peer and the
  round.

Both count, per node, the messages and bytes it sent (``messages``, ``bytes``; one repetition's
worth in the simulated backend).
"""

from __future__ import annotations

import datetime
import re
import warnings

import torch
import torch.distributed as dist
from torch import Tensor

from l2o.decentralized.topology import Topology

MATRIX_KEYS = ("A", "B", "J")


def _matrices(top: Topology, dtype: torch.dtype, device: torch.device | str | None) -> dict[str, Tensor]:
    n = top.n
    return {"A": top.A.to(dtype=dtype, device=device), "B": top.B.to(dtype=dtype, device=device),
            "J": torch.full((n, n), 1.0 / n, dtype=dtype, device=device)}


def _check_parts(parts: list[tuple[str, Tensor]]) -> None:
    for key, _ in parts:
        if key not in MATRIX_KEYS:
            raise ValueError(f"mix: unknown matrix {key!r}; expected one of {MATRIX_KEYS}")


class SimulatedComm:
    """All n nodes stacked: ``mix`` returns ``M @ t`` for each part; ``reps`` repetitions share the
    graph. ``nodes`` = arange(n). ``sparse``: multiply by the CSR form of A and B (None: when n >= 128
    and at most 10% of their entries are non-zero); the same products, the zero terms skipped.

    >>> from l2o.decentralized.topology import exponential, ring_with_chord
    >>> comm = SimulatedComm(ring_with_chord(4), reps=2)
    >>> (out,) = comm.mix([("A", torch.ones(2, 4, 1, dtype=torch.float64))])
    >>> out.shape, comm.messages.tolist(), comm.sparse
    (torch.Size([2, 4, 1]), [2, 1, 1, 1], False)
    >>> SimulatedComm(exponential(256)).sparse
    True
    """

    def __init__(self, top: Topology, reps: int = 1, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None, sparse: bool | None = None) -> None:
        self.top, self.n = top, top.n
        self.M = _matrices(top, dtype, device)
        self.nodes = torch.arange(self.n, device=device)
        self.reps = torch.arange(reps, device=device)
        self.rounds = 0
        self.messages = torch.zeros(self.n, dtype=torch.long)
        self.bytes = torch.zeros(self.n, dtype=torch.long)
        if sparse is None:
            sparse = self.n >= 128 and all(int((self.M[k] != 0).sum()) <= 0.1 * self.n ** 2 for k in ("A", "B"))
        self.sparse = bool(sparse)
        self._csr: dict[str, Tensor] = {}
        if self.sparse:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "Sparse CSR tensor support is in beta state"
                self._csr = {k: self.M[k].to_sparse_csr() for k in ("A", "B")}
        self._outdeg: dict[frozenset[str], Tensor] = {}

    def _product(self, key: str, t: Tensor) -> Tensor:
        """``M @ t`` for t (..., n, c); through the CSR form when there is one."""
        if key not in self._csr:
            return self.M[key] @ t
        if t.ndim == 2:
            return self._csr[key] @ t
        cols = t.movedim(-2, 0)  # (n, ..., c)
        return (self._csr[key] @ cols.reshape(self.n, -1)).reshape(cols.shape).movedim(0, -2)

    def mix(self, parts: list[tuple[str, Tensor]]) -> list[Tensor]:
        _check_parts(parts)
        keys = frozenset(key for key, _ in parts)
        if keys not in self._outdeg:
            support = sum((self.M[k] != 0).long() for k in keys)
            self._outdeg[keys] = (support != 0).sum(0).cpu() - (torch.diagonal(support) != 0).long().cpu()
        outdeg = self._outdeg[keys]
        size = sum(t.shape[-1] * t.element_size() for _, t in parts)
        self.rounds += 1
        self.messages += outdeg
        self.bytes += outdeg * size
        return [self._product(key, t) for key, t in parts]


def _short(e: BaseException) -> str:
    """The first sentence of a gloo error, without its source-file prefix."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", " ".join(str(e).split()))
    return text.split(". ")[0][:200]


class PeerError(RuntimeError):
    """A node lost a peer (it died, hung up or stayed silent past the timeout)."""


class ProcessComm:
    """This process is node ``rank`` of an initialized ``torch.distributed`` group of n processes (one
    per node, rank = node id). ``mix`` sends one packed message per round to the out-neighbours of the
    matrices used in the round and receives one from each in-neighbour; ``timeout`` (seconds) bounds
    every wait. Needs the process group (see ``l2o.decentralized.processes``), so no doctest here; the
    tests spawn real processes.
    """

    def __init__(self, top: Topology, rank: int, dtype: torch.dtype = torch.float64, timeout: float = 60.0) -> None:
        self.top, self.n, self.rank = top, top.n, int(rank)
        self.M = _matrices(top, dtype, None)
        self.nodes = torch.tensor([self.rank])
        self.reps = torch.arange(1)
        self.timeout = datetime.timedelta(seconds=timeout)
        self.rounds = 0
        self.messages = torch.zeros(1, dtype=torch.long)
        self.bytes = torch.zeros(1, dtype=torch.long)
        self._peers: dict[frozenset[str], tuple[list[int], list[int]]] = {}

    def _neighbours(self, keys: frozenset[str]) -> tuple[list[int], list[int]]:
        if keys not in self._peers:
            support = sum((self.M[k] != 0).long() for k in keys) != 0
            i = self.rank
            outs = [j for j in range(self.n) if j != i and bool(support[j, i])]
            ins = [j for j in range(self.n) if j != i and bool(support[i, j])]
            self._peers[keys] = (outs, ins)
        return self._peers[keys]

    def wait(self, work: dist.Work, what: str, peer: int) -> None:
        """Wait for one send or receive, turning a failure or a timeout into a PeerError."""
        try:
            ok = work.wait(timeout=self.timeout)
        except Exception as e:  # gloo raises RuntimeError / DistBackendError on a closed connection or timeout
            raise PeerError(f"node {self.rank}: {what} node {peer} failed in round {self.rounds} "
                            f"(peer dead or silent for {self.timeout.total_seconds():g} s): "
                            f"{_short(e)}") from None
        if ok is False:
            raise PeerError(f"node {self.rank}: {what} node {peer} timed out in round {self.rounds}")

    def exchange(self, outs: list[int], ins: list[int], buf: Tensor) -> dict[int, Tensor]:
        """Send ``buf`` to every node in ``outs``, receive a buffer of the same size from every node in
        ``ins``; returns {peer: received}."""
        recv = {j: torch.empty_like(buf) for j in ins}
        works = [("sending to", j, dist.isend(buf, dst=j)) for j in outs]
        works += [("receiving from", j, dist.irecv(recv[j], src=j)) for j in ins]
        for what, j, w in works:
            self.wait(w, what, j)
        return recv

    def mix(self, parts: list[tuple[str, Tensor]]) -> list[Tensor]:
        _check_parts(parts)
        outs, ins = self._neighbours(frozenset(key for key, _ in parts))
        shapes = [t.shape for _, t in parts]
        buf = torch.cat([t.reshape(-1) for _, t in parts])
        recv = self.exchange(outs, ins, buf)
        self.rounds += 1
        self.messages += len(outs)
        self.bytes += len(outs) * buf.numel() * buf.element_size()
        i = self.rank
        bufs = {**recv, i: buf}
        out = []
        offset = 0
        for (key, _), shape in zip(parts, shapes, strict=True):
            size = shape.numel()
            M = self.M[key]
            senders = [j for j in range(self.n) if M[i, j] != 0]
            acc = None
            for j in senders:
                term = M[i, j] * bufs[j][offset:offset + size]
                acc = term if acc is None else acc + term
            out.append(acc.reshape(shape))
            offset += size
        return out


__all__ = ["SimulatedComm", "ProcessComm", "PeerError", "MATRIX_KEYS"]
