"""Tidy records of serving simulations, written atomically.

* ``requests-<policy>.csv``: one row per request (id, type, arrival, prefill, decode,
  first_token, finish, latency, ttft, evictions, status); times in seconds, empty where
  a request never reached that point.
* ``iterations-<policy>.csv``: one row per GPU iteration (start, time, memory, tokens,
  batch): the memory over time.
* ``summary.json``: the per-policy metrics (``SimulationResult.summary``), and a
  ``sweep`` with the rows and lambda* of a rate sweep when there was one.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from l2o.serving.simulator import SimulationResult
from l2o.utils.files import atomic_write, write_json


def table_csv(columns: dict[str, np.ndarray]) -> str:
    """Columns of equal length as CSV text with a header; NaN becomes an empty field,
    floats are written with 9 significant digits.

    >>> table_csv({"a": np.array([1, 2]), "b": np.array([0.5, np.nan])})
    'a,b\\n1,0.5\\n2,\\n'
    """
    names = list(columns)
    cols = []
    for name in names:
        v = np.asarray(columns[name])
        if v.dtype.kind == "f":
            cols.append(["" if x != x else f"{x:.9g}" for x in v.tolist()])
        else:
            cols.append([str(x) for x in v.tolist()])
    lines = [",".join(names)]
    lines += [",".join(row) for row in zip(*cols)]
    return "\n".join(lines) + "\n"


def write_result(result: SimulationResult, folder: str | os.PathLike[str], iterations: bool = True) -> list[Path]:
    """Write ``requests-<policy>.csv`` (and ``iterations-<policy>.csv``) into ``folder``.

    >>> import tempfile
    >>> from l2o.serving import GPU, RequestType, make_policy, poisson_workload, simulate
    >>> r = simulate(poisson_workload([RequestType(8, 4, 5.0)], 20), make_policy("vllm"), GPU(memory=200))
    >>> [p.name for p in write_result(r, tempfile.mkdtemp())]
    ['requests-vllm.csv', 'iterations-vllm.csv']
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = [atomic_write(out / f"requests-{result.policy}.csv", table_csv(result.records()))]
    if iterations:
        paths.append(atomic_write(out / f"iterations-{result.policy}.csv", table_csv(result.iterations())))
    return paths


def write_summary(path: str | os.PathLike[str], summaries: list[dict[str, Any]], **extra: Any) -> Path:
    """``{"policies": summaries, **extra}`` as strict JSON (NaN -> null), atomically.

    >>> import json, tempfile, pathlib
    >>> p = write_summary(pathlib.Path(tempfile.mkdtemp()) / "s.json", [{"policy": "wait", "x": float("nan")}])
    >>> json.loads(p.read_text())
    {'policies': [{'policy': 'wait', 'x': None}]}
    """
    write_json(path, {"policies": summaries, **extra})
    return Path(path)


def format_table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """A plain-text table: ``columns`` are (key, header, format) triples.

    >>> print(format_table([{"policy": "wait", "x": 1.5}], [("policy", "policy", "s"), ("x", "x", ".2f")]))
    policy     x
    wait    1.50
    """
    cells = [[h for _, h, _ in columns]]
    for r in rows:
        line = []
        for key, _, fmt in columns:
            v = r.get(key)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                line.append("-")
            else:
                line.append(format(v, fmt))
        cells.append(line)
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    out = []
    for row in cells:
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(s.rstrip() for s in out)


#: The columns of the per-policy table that ``l2o serving simulate`` prints.
SUMMARY_COLUMNS = [
    ("policy", "policy", "s"), ("arrived", "arrived", "d"), ("completed", "completed", "d"),
    ("throughput", "tokens/s", ".1f"), ("latency_mean", "latency", ".3f"), ("latency_p99", "p99", ".3f"),
    ("ttft_mean", "ttft", ".3f"), ("evictions", "evictions", "d"), ("max_memory", "max_memory", "d"),
    ("wall_seconds", "wall_s", ".2f"),
]

__all__ = ["table_csv", "write_result", "write_summary", "format_table", "SUMMARY_COLUMNS"]
