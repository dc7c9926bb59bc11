"""The file formats of ``l2o decentralized`` (numpy ``.npz`` / ``.npy``, never pickles).

* graph ``G.npz``: ``W`` (n, n) non-negative weights, ``W[i, j] > 0`` when node j sends to node i
  (A = Row(W), B = Col(W)); or ``A`` (row-stochastic) and optionally ``B`` (column-stochastic).
* data ``D.npz``: ``X`` (n_nodes, m, d) features and ``y`` (n_nodes, m) labels in {-1, +1} (or real
  targets for least squares).
* start ``x0.npy``: (d,) for every node or (n_nodes, d).
* output ``OUT.npz``: ``x`` (n_nodes, d) the final iterates; per recorded iteration ``iterations`` (T,),
  ``grad_norm``, ``consensus``, ``loss`` (T,); per node ``messages`` and ``bytes`` sent (n_nodes,).
"""

from __future__ import annotations

import io
import os
import zipfile
from typing import Any

import numpy as np
import torch
from torch import Tensor

from l2o.decentralized.objectives import NodeData
from l2o.decentralized.simulate import Result
from l2o.decentralized.topology import Topology
from l2o.utils.files import atomic_write


def _npz(path: str | os.PathLike[str], what: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            if not isinstance(f, np.lib.npyio.NpzFile):
                raise ValueError(f"{what} {os.fspath(path)!r} is a .npy array; expected an .npz archive")
            return {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, EOFError, ValueError) as e:
        if str(e).startswith(what):
            raise
        raise ValueError(f"{what} {os.fspath(path)!r} is not a readable .npz file without pickles ({e})") from None


def _float(name: str, a: np.ndarray) -> Tensor:
    if a.dtype.kind not in "fiu" or a.dtype == np.float16:
        raise ValueError(f"{name} has dtype {a.dtype}; expected real numbers")
    t = torch.as_tensor(np.asarray(a, dtype=np.float64))
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} holds NaN or infinite values; expected finite numbers")
    return t


def load_graph(path: str | os.PathLike[str]) -> Topology:
    """A topology from ``G.npz`` (``W``, or ``A`` and optionally ``B``).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "g.npz"; np.savez(p, W=np.ones((3, 3)))
    >>> load_graph(p).n
    3
    """
    arrays = _npz(path, "graph")
    if "W" in arrays:
        return Topology.from_weights(_float("W", arrays["W"]), name="file")
    if "A" in arrays:
        B = _float("B", arrays["B"]) if "B" in arrays else None
        return Topology.from_matrices(_float("A", arrays["A"]), B, name="file")
    raise ValueError(f"graph {os.fspath(path)!r} holds {sorted(arrays)}; expected 'W' or 'A' (and 'B')")


def load_data(path: str | os.PathLike[str]) -> NodeData:
    """Per-node data from ``D.npz`` (``X`` (n_nodes, m, d), ``y`` (n_nodes, m)).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "d.npz"; np.savez(p, X=np.zeros((2, 3, 4)), y=np.ones((2, 3)))
    >>> load_data(p).X.shape
    torch.Size([2, 3, 4])
    """
    arrays = _npz(path, "data")
    missing = [k for k in ("X", "y") if k not in arrays]
    if missing:
        raise ValueError(f"data {os.fspath(path)!r} lacks {missing}; expected 'X' (n_nodes, m, d) and "
                         "'y' (n_nodes, m)")
    return NodeData(_float("X", arrays["X"]), _float("y", arrays["y"]))


def load_x0(path: str | os.PathLike[str]) -> Tensor:
    """A start from ``x0.npy``: (d,) or (n_nodes, d).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x0.npy"; np.save(p, np.ones(3))
    >>> load_x0(p).tolist()
    [1.0, 1.0, 1.0]
    """
    try:
        a = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as e:
        raise ValueError(f"x0 {os.fspath(path)!r} is not a readable .npy array without pickles ({e})") from None
    if not isinstance(a, np.ndarray):
        raise ValueError(f"x0 {os.fspath(path)!r} is an .npz archive; expected an .npy array")
    return _float("x0", a)


def result_arrays(result: Result, rep: int = 0) -> dict[str, np.ndarray]:
    """The output arrays of repetition ``rep`` of a run.

    >>> from l2o.decentralized.simulate import simulate
    >>> from l2o.decentralized.topology import ring_with_chord
    >>> from l2o.decentralized.objectives import LeastSquares, least_squares_data
    >>> r = simulate("push_pull", ring_with_chord(3), LeastSquares(), least_squares_data(3, 4, 2), 0.1, 5)
    >>> sorted(result_arrays(r))
    ['bytes', 'consensus', 'grad_norm', 'iterations', 'loss', 'messages', 'x']
    """
    return {"x": result.x[rep].cpu().numpy(), "iterations": result.iterations.cpu().numpy(),
            "grad_norm": result.grad_norm[:, rep].cpu().numpy(), "consensus": result.consensus[:, rep].cpu().numpy(),
            "loss": result.loss[:, rep].cpu().numpy(), "messages": result.messages.cpu().numpy(),
            "bytes": result.bytes.cpu().numpy()}


def write_result(path: str | os.PathLike[str], result: Result, rep: int = 0) -> None:
    """Write ``OUT.npz`` atomically (see the module docstring)."""
    arrays: dict[str, Any] = result_arrays(result, rep)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(path, buf.getvalue())


__all__ = ["load_graph", "load_data", "load_x0", "result_arrays", "write_result"]
