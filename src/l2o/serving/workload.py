"""Workloads: typed requests with arrival times, prefill lengths and decode lengths.

A request of type j has ``l_j`` prefill (prompt) tokens and ``l'_j`` decode (output)
tokens; it needs one prefill iteration and then one decode iteration per output token
(Ao, Luo, Simchi-Levi, Wang, *Optimizing LLM Inference: Fluid-Guided Online Scheduling
with Memory Constraints*, arXiv 2504.11320, Section 2). Requests come either from
independent Poisson processes, one per type (``poisson_workload``), or from a trace file
(``read_trace``: CSV with the columns ``arrival,prefill,decode``).

A ``Workload`` holds the requests sorted by arrival time as numpy arrays of shape
``(N,)`` and the request types with their rates (for a trace: the distinct
``(prefill, decode)`` pairs with their empirical rates, count / time span). Randomness
comes only from the explicit ``seed`` (numpy's PCG64).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from pathlib import Path

import numpy as np

from l2o.utils.files import atomic_write

#: The columns of a trace file (any order; other columns are ignored).
TRACE_COLUMNS = ("arrival", "prefill", "decode")


@dataclasses.dataclass(frozen=True)
class RequestType:
    """A request type: ``prefill`` tokens l_j >= 1, ``decode`` tokens l'_j >= 1 and a
    Poisson arrival ``rate`` lambda_j > 0 (requests per second).

    >>> RequestType(prefill=512, decode=20, rate=20.0).work
    10962.0
    """

    prefill: int
    decode: int
    rate: float

    def __post_init__(self) -> None:
        for name in ("prefill", "decode"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} is {v!r}; expected an integer >= 1 (tokens)")
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)) or not (
                math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"rate is {self.rate!r}; expected a finite number > 0 (requests per second)")

    @property
    def work(self) -> float:
        """KV tokens touched over the request's life, W_j = (l'_j + 1)(l_j + l'_j / 2):
        the prefill touches l_j tokens and decode stage s touches l_j + s."""
        return (self.decode + 1) * (self.prefill + self.decode / 2)


@dataclasses.dataclass(frozen=True)
class Workload:
    """Requests sorted by arrival: ``arrival`` (N,) float64 seconds, ``prefill`` and
    ``decode`` (N,) int64 tokens, ``kind`` (N,) int64 index into ``types``.

    ``types`` are the request types with their arrival rates (a trace's types are its
    distinct ``(prefill, decode)`` pairs, with rate = count / time span of the trace).

    >>> w = poisson_workload([RequestType(10, 5, 2.0)], 4, seed=0)
    >>> w.n, bool((w.decode == 5).all()), bool((np.diff(w.arrival) >= 0).all())
    (4, True, True)
    """

    arrival: np.ndarray
    prefill: np.ndarray
    decode: np.ndarray
    kind: np.ndarray
    types: tuple[RequestType, ...]
    source: str = "poisson"

    @property
    def n(self) -> int:
        """Number of requests."""
        return int(self.arrival.shape[0])

    @property
    def total_rate(self) -> float:
        """Sum of the types' arrival rates (requests per second)."""
        return float(sum(t.rate for t in self.types))

    def scaled(self, factor: float) -> Workload:
        """The same requests with every arrival rate multiplied by ``factor`` (arrival
        times divided by it): a Poisson workload at ``factor`` times the rates, drawn
        from the same random numbers, so that rate sweeps compare like with like.

        >>> w = poisson_workload([RequestType(10, 5, 2.0)], 3, seed=0)
        >>> bool(np.allclose(w.scaled(2.0).arrival, w.arrival / 2))
        True
        """
        if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 0):
            raise ValueError(f"factor is {factor!r}; expected a finite number > 0")
        types = tuple(dataclasses.replace(t, rate=t.rate * factor) for t in self.types)
        return dataclasses.replace(self, arrival=self.arrival / factor, types=types)


def poisson_workload(types: list[RequestType] | tuple[RequestType, ...], n: int, seed: int = 0) -> Workload:
    """``n`` requests from independent Poisson processes, one per type (equivalently: one
    Poisson process of rate sum(lambda_j) whose arrivals are of type j with probability
    lambda_j / sum(lambda)). Arrival times start after the first exponential gap.

    >>> w = poisson_workload([RequestType(10, 5, 1.0), RequestType(20, 8, 3.0)], 1000, seed=1)
    >>> 0.7 < float((w.kind == 1).mean()) < 0.8
    True
    """
    types = tuple(types)
    if not types:
        raise ValueError("types is empty; expected at least one request type")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"requests is {n!r}; expected an integer >= 1")
    rng = np.random.Generator(np.random.PCG64(seed))
    rates = np.array([t.rate for t in types], dtype=np.float64)
    total = float(rates.sum())
    arrival = np.cumsum(rng.exponential(1.0 / total, size=n))
    kind = (rng.choice(len(types), size=n, p=rates / total) if len(types) > 1
            else np.zeros(n, dtype=np.int64)).astype(np.int64)
    prefill = np.array([t.prefill for t in types], dtype=np.int64)[kind]
    decode = np.array([t.decode for t in types], dtype=np.int64)[kind]
    return Workload(arrival, prefill, decode, kind, types, "poisson")


def _type_table(prefill: np.ndarray, decode: np.ndarray, span: float) -> tuple[np.ndarray, tuple[RequestType, ...]]:
    """The distinct (prefill, decode) pairs as types with rate count/span, and the kind array."""
    pairs = np.stack([prefill, decode], axis=1)
    uniq, kind, counts = np.unique(pairs, axis=0, return_inverse=True, return_counts=True)
    span = span if span > 0 else 1.0
    types = tuple(RequestType(int(p), int(d), float(c) / span) for (p, d), c in zip(uniq, counts))
    return kind.reshape(-1).astype(np.int64), types


def workload_from_arrays(arrival: np.ndarray, prefill: np.ndarray, decode: np.ndarray, source: str = "arrays",
                         ) -> Workload:
    """A workload from arrays of shape (N,): arrival times (seconds, sorted, >= 0) and
    integer token counts >= 1. Types are the distinct (prefill, decode) pairs with rate =
    count / (last arrival - first arrival).

    >>> w = workload_from_arrays([0.0, 0.5, 1.0], [4, 4, 8], [2, 2, 3])
    >>> [(t.prefill, t.decode, t.rate) for t in w.types]
    [(4, 2, 2.0), (8, 3, 1.0)]
    """
    a = np.asarray(arrival, dtype=np.float64).reshape(-1)
    p = np.asarray(prefill).reshape(-1)
    d = np.asarray(decode).reshape(-1)
    if not (a.shape == p.shape == d.shape):
        raise ValueError(f"arrival, prefill and decode have shapes {a.shape}, {p.shape}, {d.shape}; "
                         "expected equal (N,)")
    if a.size == 0:
        raise ValueError("the workload has no requests; expected at least one")
    for name, v in (("prefill", p), ("decode", d)):
        if v.dtype.kind == "f":
            if not np.all(np.isfinite(v)) or np.any(v != np.round(v)):
                raise ValueError(f"{name} lengths must be integers >= 1")
        elif v.dtype.kind not in "iu":
            raise ValueError(f"{name} lengths must be integers >= 1")
        if np.any(v < 1):
            raise ValueError(f"{name} lengths must be integers >= 1; found {v.min()}")
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError("arrival times must be finite and >= 0")
    if np.any(np.diff(a) < 0):
        raise ValueError("arrival times must be sorted (non-decreasing)")
    p = p.astype(np.int64)
    d = d.astype(np.int64)
    kind, types = _type_table(p, d, float(a[-1] - a[0]))
    return Workload(a, p, d, kind, types, source)


def read_trace(path: str | os.PathLike[str], limit: int | None = None) -> Workload:
    """A workload from a CSV trace with a header naming the columns ``arrival`` (seconds,
    >= 0, sorted), ``prefill`` and ``decode`` (integer tokens >= 1); other columns are
    ignored. ``limit`` keeps the first rows only. Errors are one line naming the file,
    the line and what was expected.

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = f.write_text("arrival,prefill,decode\\n0.0,12,3\\n0.25,40,7\\n")
    >>> read_trace(f).n
    2
    """
    p = Path(path)
    if not p.exists():
        raise ValueError(f"trace '{p}' does not exist")
    if not p.is_file():
        raise ValueError(f"trace '{p}' is not a regular file")
    arrival: list[float] = []
    prefill: list[int] = []
    decode: list[int] = []
    with p.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"trace '{p}' is empty; expected a header line 'arrival,prefill,decode'") from None
        except (csv.Error, UnicodeDecodeError) as e:
            raise ValueError(f"trace '{p}' line 1: cannot read the header ({e})") from None
        names = [h.strip().lower() for h in header]
        missing = [c for c in TRACE_COLUMNS if c not in names]
        if missing:
            raise ValueError(f"trace '{p}': missing column(s) {', '.join(missing)}; expected a header with "
                             f"{', '.join(TRACE_COLUMNS)} (found {', '.join(repr(h) for h in header) or 'nothing'})")
        ia, ip, iD = (names.index(c) for c in TRACE_COLUMNS)
        width = max(ia, ip, iD) + 1
        last = -math.inf
        try:
            for row in reader:
                line = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue
                if limit is not None and len(arrival) >= limit:
                    break
                if len(row) < width:
                    raise ValueError(f"trace '{p}' line {line}: {len(row)} field(s); expected at least {width}")
                try:
                    t = float(row[ia])
                except ValueError:
                    raise ValueError(f"trace '{p}' line {line}: arrival {row[ia].strip()!r} is not a number") from None
                if not math.isfinite(t) or t < 0:
                    raise ValueError(f"trace '{p}' line {line}: arrival {row[ia].strip()} is negative or not finite; "
                                     "expected seconds >= 0")
                if t < last:
                    raise ValueError(f"trace '{p}' line {line}: arrival {row[ia].strip()} is before the previous "
                                     f"arrival {last:g}; expected rows sorted by arrival time")
                last = t
                vals = []
                for name, i in (("prefill", ip), ("decode", iD)):
                    s = row[i].strip()
                    try:
                        v = int(s)
                    except ValueError:
                        try:
                            f = float(s)
                        except ValueError:
                            f = math.nan
                        if not (math.isfinite(f) and f == int(f)):
                            raise ValueError(f"trace '{p}' line {line}: {name} {s!r} is not an integer; "
                                             "expected tokens >= 1") from None
                        v = int(f)
                    if v < 1:
                        raise ValueError(f"trace '{p}' line {line}: {name} {s} is below 1; expected tokens >= 1")
                    vals.append(v)
                arrival.append(t)
                prefill.append(vals[0])
                decode.append(vals[1])
        except (csv.Error, UnicodeDecodeError) as e:
            raise ValueError(f"trace '{p}' line {reader.line_num}: cannot read ({e})") from None
    if not arrival:
        raise ValueError(f"trace '{p}' has no requests; expected rows 'arrival,prefill,decode' after the header")
    return workload_from_arrays(np.array(arrival), np.array(prefill, dtype=np.int64),
                                np.array(decode, dtype=np.int64), source=str(p))


def write_trace(path: str | os.PathLike[str], workload: Workload) -> Path:
    """Write ``workload`` as a CSV trace (``arrival,prefill,decode``), atomically.

    >>> import tempfile, pathlib
    >>> p = write_trace(pathlib.Path(tempfile.mkdtemp()) / "t.csv", workload_from_arrays([0.5], [12], [3]))
    >>> p.read_text()
    'arrival,prefill,decode\\n0.5,12,3\\n'
    """
    lines = ["arrival,prefill,decode"]
    lines += [f"{a:.9g},{p},{d}" for a, p, d in zip(workload.arrival.tolist(), workload.prefill.tolist(),
                                                        workload.decode.tolist())]
    return atomic_write(path, "\n".join(lines) + "\n")


__all__ = ["RequestType", "Workload", "poisson_workload", "workload_from_arrays", "read_trace", "write_trace",
           "TRACE_COLUMNS"]
