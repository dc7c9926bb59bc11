"""Reading problems from files and writing solutions, with validation at the boundary.

Formats (``load_problem``):

* ``.npz`` (``numpy.savez``) and ``.mat`` (MATLAB v5/v7, read with ``scipy.io.loadmat``)
  hold named arrays, one per key below. ``.mat`` files have no 1-D arrays: a row or
  column vector is read as a vector and a 1 x 1 array as a scalar.
* ``.csv`` (logistic only): one sample per row, the features then the label in the
  last column; an optional header line (detected when a field of the first line is
  not a number).

Keys (a leading batch axis ``B`` is optional on every array; arrays without it are
shared by the batch; input without any batch axis is one instance and B = 1):

* ``qp``: ``Q`` (n, n) or (B, n, n), symmetric positive semidefinite; ``q`` (n,) or
  (B, n); optional ``lower``, ``upper`` (n,) or (B, n), entries may be -inf / +inf.
* ``lasso``: ``A`` (m, n) or (B, m, n); ``b`` (m,) or (B, m); ``lam`` scalar or (B,),
  lam >= 0 (required: its scale depends on the data).
* ``logistic``: ``X`` (N, d) or (B, N, d); ``y`` (N,) or (B, N) with labels in
  {-1, +1} or {0, 1}; ``lam`` scalar or (B,) (default 1/N, as scikit-learn's
  ``LogisticRegression(C=1)``); ``penalty`` "l1" or "l2" (default "l2").
* ``mimo`` (sum-rate maximization, ``l2o.problems.mimo``): ``H`` complex (K, I, K, N, M)
  or (B, K, I, K, N, M), H[k, i, j] the channel from base station j to user i of cell
  k; ``streams`` d (default min(M, N)); ``power`` P per base station: a scalar, (K,) or
  (B, K), > 0 (default 1); ``noise`` sigma^2, scalar or (B,), > 0 (default 1);
  ``weights`` alpha, (K, I) or (B, K, I), >= 0 (default all ones).

Every problem with the data is reported as a ``DataError`` (a ``ValueError``) with one
line that names the key, what was found and what was expected. Unknown keys are
errors too (a misspelt ``lamda`` must not silently become the default). Errors about
an argument (``lam``, ``penalty``, an output ``path``) name it as the caller does:
``names`` maps a parameter to the name a message uses (the command line passes its
flags, ``{"lam": "--lam"}``); by default the parameter's own name.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from l2o.problems import (
    Instances,
    LassoInstances,
    LogisticInstances,
    MimoInstances,
    QuadraticInstances,
)
from l2o.utils.files import atomic_write

KINDS = ("qp", "lasso", "logistic", "mimo")
KEYS: dict[str, tuple[str, ...]] = {
    "qp": ("Q", "q", "lower", "upper"),
    "lasso": ("A", "b", "lam"),
    "logistic": ("X", "y", "lam", "penalty"),
    "mimo": ("H", "streams", "power", "noise", "weights"),
}
PENALTIES = ("l1", "l2")
#: Relative tolerances of the convexity checks on Q (relative to its scale).
SYMMETRY_RTOL = 1e-10
PSD_RTOL = 1e-10

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"


class DataError(ValueError):
    """Input data that cannot define a valid problem; the message is one line."""


@dataclasses.dataclass(frozen=True)
class Loaded:
    """A validated problem read from a file.

    Attributes:
        instances: the batch (float64, CPU), B >= 1.
        batched: False when the input had no batch axis (one instance; outputs drop B).
        kind: "qp", "lasso" or "logistic".
        source: where it came from, for messages.
    """

    instances: Instances
    batched: bool
    kind: str
    source: str


# ----- reading ------------------------------------------------------------------------------


def read_arrays(path: str | os.PathLike[str], kind: str) -> dict[str, np.ndarray]:
    """The named arrays of a ``.npz``, ``.mat`` or (logistic) ``.csv`` file.

    Raises ``DataError`` for a missing, empty, truncated or unreadable file and for an
    unsupported extension.
    """
    p = Path(path)
    ext = p.suffix.lower()
    supported = (".npz", ".mat", ".csv") if kind == "logistic" else (".npz", ".mat")
    if ext not in supported:
        extra = "" if kind == "logistic" else " (.csv only for logistic)"
        raise DataError(
            f"unsupported file extension {ext or '(none)'!r} of '{p}'; expected {', '.join(supported)}{extra}"
        )
    if not p.exists():
        raise DataError(f"data file '{p}' does not exist")
    if not p.is_file():
        raise DataError(f"data file '{p}' is not a regular file")
    if p.stat().st_size == 0:
        raise DataError(f"data file '{p}' is empty (0 bytes)")
    if ext == ".npz":
        return _read_npz(p)
    if ext == ".mat":
        return _read_mat(p)
    return _read_csv(p)


def _read_npz(p: Path) -> dict[str, np.ndarray]:
    with open(p, "rb") as fh:
        head = fh.read(8)
    if head.startswith(_NPY_MAGIC):
        raise DataError(
            f"'{p}' is a single .npy array, not a .npz archive; write it with numpy.savez(path, key=array, ...)"
        )
    if not head.startswith(_ZIP_MAGIC):
        raise DataError(f"'{p}' is not a .npz archive (no zip signature); expected a file written by numpy.savez")
    try:
        archive = np.load(p, allow_pickle=False)
    except Exception as e:  # zipfile.BadZipFile, EOFError, ...
        raise DataError(f"cannot read '{p}': truncated or corrupt .npz archive ({_one_line(e)})") from None
    arrays = {}
    with archive:
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except Exception as e:  # bad CRC, zlib.error, object arrays (pickles), bad .npy header
                raise DataError(f"cannot read key {key!r} of '{p}': {_one_line(e)}") from None
    return arrays


def _read_mat(p: Path) -> dict[str, np.ndarray]:
    import scipy.io

    try:
        raw = scipy.io.loadmat(p, squeeze_me=False, chars_as_strings=True)
    except NotImplementedError:
        raise DataError(
            f"'{p}' is a MATLAB v7.3 (HDF5) file, which is not supported; save it with save(..., '-v7')"
        ) from None
    except Exception as e:
        raise DataError(f"cannot read '{p}' as a MATLAB .mat file: {_one_line(e)}") from None
    return {k: np.asarray(v) for k, v in raw.items() if not k.startswith("__")}


def _read_csv(p: Path) -> dict[str, np.ndarray]:
    try:
        with open(p, newline="", encoding="utf-8") as fh:
            rows = [(i, r) for i, r in enumerate(csv.reader(fh), start=1) if any(f.strip() for f in r)]
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read '{p}' as CSV text: {_one_line(e)}") from None
    if not rows:
        raise DataError(f"'{p}' has no rows; expected one sample per row: features, then the label")
    header = None
    if not all(_is_number(f) for f in rows[0][1]):
        header, rows = rows[0][1], rows[1:]  # a header line
        if not rows:
            raise DataError(f"'{p}' has a header line but no data rows")
    width = len(rows[0][1])
    for sep, name in ((";", "semicolon"), ("\t", "tab")):
        if width == 1 and sep in rows[0][1][0]:
            raise DataError(f"'{p}' looks {name}-separated ({sep!r} inside its single column); expected "
                            "comma-separated values (pandas: df.to_csv(path, index=False))")
    if header is not None and header[0].strip().lower() in ("", "unnamed: 0", "index"):
        raise DataError(f"'{p}' looks like it has an index column (first header field {header[0]!r}); expected "
                        "features, then the label, without an index (pandas: df.to_csv(path, index=False))")
    if width < 2:
        raise DataError(f"'{p}' has {width} column; expected at least 2 (features, then the label in the last column)")
    data = np.empty((len(rows), width))
    for r, (line, fields) in enumerate(rows):
        if len(fields) != width:
            raise DataError(f"'{p}' line {line} has {len(fields)} columns; expected {width} like the first data row")
        for c, f in enumerate(fields):
            try:
                data[r, c] = float(f)
            except ValueError:
                raise DataError(f"'{p}' line {line} column {c + 1}: cannot read {f.strip()!r} as a number") from None
    return {"X": data[:, :-1], "y": data[:, -1]}


def _is_number(field: str) -> bool:
    try:
        float(field)
        return True
    except ValueError:
        return False


def _one_line(e: BaseException, limit: int = 200) -> str:
    """A library's exception message on one line, cut to ``limit`` characters."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----- validation ---------------------------------------------------------------------------


class _Checker:
    """Helpers that fetch and check one key, with messages naming it."""

    def __init__(self, kind: str, arrays: Mapping[str, Any], source: str, matlab: bool,
                 names: Mapping[str, str] | None = None):
        self.kind, self.arrays, self.source, self.matlab = kind, dict(arrays), source, matlab
        self.names = dict(names or {})
        unknown = sorted(set(self.arrays) - set(KEYS[kind]))
        if unknown:
            raise DataError(
                f"{kind}: unknown key(s) {', '.join(map(repr, unknown))} in {source}; "
                f"expected keys: {', '.join(KEYS[kind])}"
            )

    def param(self, name: str) -> str:
        """How the caller calls its parameter ``name`` (``names``), for messages."""
        return self.names.get(name, name)

    def err(self, key: str, msg: str) -> DataError:
        return DataError(f"{self.kind} key {key!r} {msg}")

    def get(self, key: str) -> np.ndarray | None:
        """The array at an optional ``key`` (None when absent)."""
        return np.asarray(self.arrays[key]) if key in self.arrays else None

    def missing(self, key: str, expected: str) -> DataError:
        found = ", ".join(sorted(self.arrays)) or "none"
        return DataError(
            f"{self.kind} key {key!r} is missing from {self.source} (found keys: {found}); expected {expected}"
        )

    def require(self, key: str, expected: str) -> np.ndarray:
        """The array at a required ``key``; ``expected`` describes it for the message."""
        if key not in self.arrays:
            raise self.missing(key, expected)
        return np.asarray(self.arrays[key])

    def numeric(self, key: str, a: np.ndarray, allow_inf: bool = False) -> np.ndarray:
        """Real numbers, finite (or +-inf where ``allow_inf``), no empty axis, as float64."""
        if a.dtype.kind not in "biuf":
            what = {"c": "complex numbers", "U": "strings", "S": "strings", "O": "objects (a MATLAB cell or struct?)"}
            raise self.err(key, f"holds {what.get(a.dtype.kind, 'data')} (dtype {a.dtype}); expected real numbers")
        if 0 in a.shape:
            raise self.err(key, f"is empty (shape {a.shape}); expected a non-empty array")
        a = a.astype(np.float64)
        bad = np.isnan(a) if allow_inf else ~np.isfinite(a)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            where = f" at index {idx}" if a.ndim else ""
            expected = "numbers or -inf / +inf" if allow_inf else "finite numbers"
            count = int(bad.sum())
            raise self.err(key, f"contains {a[idx] if a.ndim else a.item()}{where} ({count} non-finite "
                                f"entr{'y' if count == 1 else 'ies'}); expected {expected}")
        return a

    def vector(self, a: np.ndarray, length: int) -> np.ndarray:
        """A MATLAB row or column vector of ``length`` as 1-D (MATLAB has no 1-D arrays)."""
        if self.matlab and a.ndim == 2 and (a.shape == (1, length) or a.shape == (length, 1)):
            return a.reshape(length)
        return a

    def scalar_or_batch(self, key: str, a: np.ndarray) -> np.ndarray:
        """A scalar (0-d) or a ``(B,)`` vector; size-1 arrays are scalars."""
        if a.size == 1:
            return a.reshape(())
        if self.matlab and a.ndim == 2 and 1 in a.shape:
            a = a.reshape(-1)
        if a.ndim != 1:
            raise self.err(key, f"has shape {a.shape}; expected a scalar or a (B,) vector")
        return a


def _tensor(a: np.ndarray) -> torch.Tensor:
    """A float64 CPU tensor owning a contiguous copy of ``a``."""
    return torch.from_numpy(np.array(a, dtype=np.float64, order="C", copy=True))  # keeps 0-d arrays 0-d


def _batch(kind: str, sizes: Mapping[str, int | None]) -> int | None:
    """The common batch size of the keys that have a batch axis (None: no batch axis)."""
    given = {k: b for k, b in sizes.items() if b is not None}
    if len(set(given.values())) > 1:
        found = ", ".join(f"{k} has {b}" for k, b in given.items())
        raise DataError(f"{kind}: keys disagree on the batch size B ({found}); expected one B for all keys")
    return next(iter(given.values()), None)


def _lam(c: _Checker, override: float | None, default: float | None) -> tuple[np.ndarray, int | None]:
    """lam as a 0-d or ``(B,)`` array (the override, the file's key or ``default``) and its batch size."""
    if override is not None:
        if not math.isfinite(float(override)) or override < 0:
            raise DataError(f"{c.param('lam')} is {override}; expected a finite number >= 0")
        return np.asarray(float(override)), None
    a = c.get("lam")
    if a is None:
        if default is None:
            raise c.missing("lam", f"a scalar or (B,) array >= 0 (or pass {c.param('lam')})")
        return np.asarray(float(default)), None
    a = c.scalar_or_batch("lam", c.numeric("lam", a))
    if (a < 0).any():
        idx = int(np.argmax(a.reshape(-1) < 0))
        where = f" at index {idx}" if a.ndim else ""
        raise c.err("lam", f"is {a.reshape(-1)[idx]:g}{where}; expected lam >= 0")
    return a, (a.shape[0] if a.ndim == 1 else None)


def _validate_qp(c: _Checker) -> Loaded:
    Q = c.numeric("Q", c.require("Q", "(n, n) or (B, n, n) symmetric PSD matrix"))
    if Q.ndim not in (2, 3) or Q.shape[-1] != Q.shape[-2]:
        raise c.err("Q", f"has shape {Q.shape}; expected a square (n, n) matrix or a batch (B, n, n)")
    n, BQ = Q.shape[-1], (Q.shape[0] if Q.ndim == 3 else None)

    def vec(key: str, a: np.ndarray) -> tuple[np.ndarray, int | None]:
        a = c.vector(a, n)
        if a.ndim not in (1, 2) or a.shape[-1] != n:
            B = BQ or (a.shape[0] if a.ndim == 2 else "B")
            raise c.err(key, f"has shape {a.shape} but Q is {n} x {n}; expected ({n},) or ({B}, {n})")
        return a, (a.shape[0] if a.ndim == 2 else None)

    q, Bq = vec("q", c.numeric("q", c.require("q", f"({n},) or (B, {n}) linear term")))
    bounds: dict[str, np.ndarray | None] = {}
    sizes: dict[str, int | None] = {"Q": BQ, "q": Bq}
    for key in ("lower", "upper"):
        a = c.get(key)
        bounds[key] = None
        if a is not None:
            bounds[key], sizes[key] = vec(key, c.numeric(key, a, allow_inf=True))
    B = _batch("qp", sizes)
    lower, upper = bounds["lower"], bounds["upper"]
    if lower is not None and (lower == np.inf).any():
        at = tuple(map(int, np.argwhere(lower == np.inf)[0]))
        raise c.err("lower", f"is +inf at index {at}; expected a number or -inf")
    if upper is not None and (upper == -np.inf).any():
        at = tuple(map(int, np.argwhere(upper == -np.inf)[0]))
        raise c.err("upper", f"is -inf at index {at}; expected a number or +inf")
    if lower is not None and upper is not None:
        lo, up = np.broadcast_arrays(lower, upper)
        if (lo > up).any():
            idx = tuple(int(i) for i in np.argwhere(lo > up)[0])
            raise DataError(
                f"qp keys 'lower' > 'upper' at index {idx} (lower={lo[idx]:g}, upper={up[idx]:g}); "
                "expected lower <= upper"
            )
    if lower is not None and np.isneginf(lower).all():
        lower = None
    if upper is not None and np.isposinf(upper).all():
        upper = None

    # Convexity: Q symmetric (to a relative tolerance) and positive semidefinite.
    scale = np.abs(Q).max(axis=(-2, -1))
    asym = np.abs(Q - np.swapaxes(Q, -1, -2)).max(axis=(-2, -1))
    bad = asym > SYMMETRY_RTOL * scale
    if bad.any():
        i = int(np.argmax(np.atleast_1d(bad)))
        inst = f" (instance {i})" if Q.ndim == 3 else ""
        raise c.err("Q", f"is not symmetric{inst}: max |Q - Q^T| = {np.atleast_1d(asym)[i]:.3g} with max |Q| = "
                         f"{np.atleast_1d(scale)[i]:.3g}; expected a symmetric matrix "
                         f"(relative tolerance {SYMMETRY_RTOL:g})")
    Q = 0.5 * (Q + np.swapaxes(Q, -1, -2))
    ev, U = np.linalg.eigh(Q)
    lo_ev, hi_ev = ev[..., 0], np.abs(ev).max(axis=-1)
    bad = lo_ev < -PSD_RTOL * hi_ev
    if bad.any():
        i = int(np.argmax(np.atleast_1d(bad)))
        inst = f" (instance {i})" if Q.ndim == 3 else ""
        raise c.err("Q", f"is not positive semidefinite{inst}: smallest eigenvalue {np.atleast_1d(lo_ev)[i]:.3g} "
                         f"(largest |eigenvalue| {np.atleast_1d(hi_ev)[i]:.3g}); the QP must be convex")
    if lower is None and upper is None:
        _check_bounded(ev, U, hi_ev, q)

    t = lambda a: None if a is None else _tensor(a)  # noqa: E731
    q_b = np.broadcast_to(q, (B or 1, n))
    if (lower is None) != (upper is None):  # QuadraticInstances fills a missing side with +-inf
        lower = np.full(n, -np.inf) if lower is None else lower
        upper = np.full(n, np.inf) if upper is None else upper
    inst = QuadraticInstances(t(Q), t(q_b), t(lower), t(upper))
    return Loaded(inst, B is not None, "qp", c.source)


def _check_bounded(ev: np.ndarray, U: np.ndarray, scale: np.ndarray, q: np.ndarray) -> None:
    """An unconstrained convex QP is bounded below iff q lies in the range of Q: raise
    when q has a component (beyond 1e-8 ||q||) along an eigenvector of a zero eigenvalue
    (|eigenvalue| <= PSD_RTOL * scale). ev: ``(n,)``/``(B, n)``, U: ``(n, n)``/``(B, n, n)``."""
    null = np.abs(ev) <= PSD_RTOL * scale[..., None]  # (n,) or (B_Q, n)
    if not null.any():
        return
    coef = np.einsum("...ij,...i->...j", U, q) if q.ndim == U.ndim - 1 else q @ U  # q in the eigenbasis
    outside = np.linalg.norm(np.where(null, coef, 0.0), axis=-1)
    bad = outside > 1e-8 * np.linalg.norm(q, axis=-1)
    if bad.any():
        i = int(np.argmax(np.atleast_1d(bad)))
        inst = f" (instance {i})" if np.ndim(bad) else ""
        raise DataError(
            f"qp is unbounded below{inst}: Q is singular and key 'q' has a component of norm "
            f"{np.atleast_1d(outside)[i]:.3g} outside the range of Q; "
            "expected q in range(Q), or add bounds 'lower'/'upper'"
        )


def _validate_lasso(c: _Checker, lam: float | None) -> Loaded:
    A = c.numeric("A", c.require("A", "(m, n) or (B, m, n) design matrix"))
    if A.ndim not in (2, 3):
        raise c.err("A", f"has shape {A.shape}; expected (m, n) or (B, m, n)")
    m, n = A.shape[-2:]
    BA = A.shape[0] if A.ndim == 3 else None
    b = c.vector(c.numeric("b", c.require("b", f"({m},) or (B, {m}) observations")), m)
    if b.ndim not in (1, 2) or b.shape[-1] != m:
        B = BA or (b.shape[0] if b.ndim == 2 else "B")
        raise c.err("b", f"has shape {b.shape} but A has {m} rows; expected ({m},) or ({B}, {m})")
    Bb = b.shape[0] if b.ndim == 2 else None
    if BA is not None and Bb is not None and BA != Bb:
        raise c.err("b", f"has shape {b.shape} but A is a batch of {BA}; expected ({m},) or ({BA}, {m})")
    lam_a, Blam = _lam(c, lam, None)
    B = _batch("lasso", {"A": BA, "b": Bb, "lam": Blam})
    inst = LassoInstances(_tensor(A), _tensor(np.broadcast_to(b, (B or 1, m))), _tensor(lam_a))
    return Loaded(inst, B is not None, "lasso", c.source)


def _validate_logistic(c: _Checker, lam: float | None, penalty: str | None) -> Loaded:
    X = c.numeric("X", c.require("X", "(N, d) or (B, N, d) features"))
    if X.ndim not in (2, 3):
        raise c.err("X", f"has shape {X.shape}; expected (N, d) or (B, N, d)")
    N = X.shape[-2]
    BX = X.shape[0] if X.ndim == 3 else None
    y = c.vector(c.numeric("y", c.require("y", f"({N},) labels in {{-1, +1}} or {{0, 1}}")), N)
    if y.ndim not in (1, 2) or y.shape[-1] != N:
        B = BX or (y.shape[0] if y.ndim == 2 else "B")
        raise c.err("y", f"has shape {y.shape} but X has {N} rows; expected ({N},) or ({B}, {N})")
    values = np.unique(y)
    if not (set(values) <= {-1.0, 1.0} or set(values) <= {0.0, 1.0}):
        shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if len(values) > 6 else "")
        raise c.err("y", f"has values {{{shown}}}; expected binary labels in {{-1, +1}} or {{0, 1}}")
    lam_a, Blam = _lam(c, lam, 1.0 / N)
    B = _batch("logistic", {"X": BX, "y": y.shape[0] if y.ndim == 2 else None, "lam": Blam})
    pen = _penalty(c, penalty)
    y_b = np.broadcast_to(np.where(y > 0, 1.0, -1.0), (B or 1, N))
    inst = LogisticInstances(_tensor(X), _tensor(y_b), _tensor(lam_a), pen)
    return Loaded(inst, B is not None, "logistic", c.source)


def _validate_mimo(c: _Checker) -> Loaded:
    H = c.require("H", "complex (K, I, K, N, M) or (B, K, I, K, N, M) channels")
    if H.dtype.kind not in "biufc":
        raise c.err("H", f"holds {H.dtype} data; expected complex (or real) numbers")
    if 0 in H.shape:
        raise c.err("H", f"is empty (shape {H.shape}); expected a non-empty array")
    H = H.astype(np.complex128)
    if not np.isfinite(H).all():
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(H))[0])
        raise c.err("H", f"contains {H[idx]} at index {idx}; expected finite numbers")
    if H.ndim not in (5, 6) or H.shape[-5] != H.shape[-3]:
        raise c.err("H", f"has shape {H.shape}; expected (K, I, K, N, M) or (B, K, I, K, N, M) with the same K "
                         "in the first and third cell axes")
    batched = H.ndim == 6
    H = H if batched else H[None]
    B, K, I, _, N, M = H.shape

    def scalar_int(key: str, default: int) -> int:
        a = c.get(key)
        if a is None:
            return default
        a = c.numeric(key, a)
        if a.size != 1 or float(a.reshape(())) != int(a.reshape(())):
            raise c.err(key, f"is {a.reshape(-1)[:3].tolist()}; expected one integer")
        return int(a.reshape(()))

    d = scalar_int("streams", min(M, N))
    if not 1 <= d <= min(M, N):
        raise c.err("streams", f"is {d}; expected an integer in [1, min(M={M}, N={N})]")

    def positive(key: str, default: float, shapes: dict[tuple[int, ...], str]) -> np.ndarray:
        a = c.get(key)
        if a is None:
            return np.asarray(default)
        a = c.numeric(key, a)
        a = a.reshape(()) if a.size == 1 else (a.reshape(-1) if c.matlab and a.ndim == 2 and 1 in a.shape else a)
        if a.shape != () and a.shape not in shapes:
            raise c.err(key, f"has shape {a.shape}; expected a scalar or {' or '.join(shapes.values())}")
        if (a <= 0).any():
            raise c.err(key, f"has the value {float(a.min()):g}; expected numbers > 0")
        return a

    power = positive("power", 1.0, {(K,): f"({K},) (one budget per base station)", (B, K): f"({B}, {K})"})
    noise = positive("noise", 1.0, {(B,): f"({B},)"})
    weights = c.get("weights")
    if weights is not None:
        weights = c.numeric("weights", weights)
        if weights.shape not in ((K, I), (B, K, I)):
            raise c.err("weights", f"has shape {weights.shape}; expected ({K}, {I}) or ({B}, {K}, {I})")
        if (weights < 0).any():
            raise c.err("weights", f"has the value {float(weights.min()):g}; expected weights >= 0")
    power_t = torch.as_tensor(np.broadcast_to(power, (B, K)).copy(), dtype=torch.float64)
    inst = MimoInstances(torch.from_numpy(np.ascontiguousarray(H)), d, noise=_tensor(np.broadcast_to(noise, (B,))),
                         power=power_t, weights=None if weights is None else _tensor(weights))
    return Loaded(inst, batched, "mimo", c.source)


def _penalty(c: _Checker, override: str | None) -> str:
    if override is not None:
        if override.strip().lower() not in PENALTIES:
            raise DataError(f"{c.param('penalty')} is {override!r}; expected 'l1' or 'l2'")
        return override.strip().lower()
    a = c.get("penalty")
    if a is None:
        return "l2"
    if a.dtype.kind not in "US" or a.size != 1:
        found = f"is {a.reshape(()).item()!r}" if a.size == 1 else f"has shape {a.shape}"
        raise c.err("penalty", f"{found} (dtype {a.dtype}); expected the string 'l1' or 'l2'")
    value = a.reshape(()).item()
    value = value.decode() if isinstance(value, bytes) else str(value)
    if value.strip().lower() not in PENALTIES:
        raise c.err("penalty", f"is {value!r}; expected 'l1' or 'l2'")
    return value.strip().lower()


def validate(
    kind: str,
    arrays: Mapping[str, Any],
    *,
    lam: float | None = None,
    penalty: str | None = None,
    source: str = "the input",
    matlab: bool = False,
    names: Mapping[str, str] | None = None,
) -> Loaded:
    """Check named arrays (see the module docstring for keys and shapes) and build the batch.

    Args:
        kind: "qp", "lasso" or "logistic".
        arrays: key -> array-like.
        lam, penalty: override (or supply) ``lam`` / ``penalty`` (lasso, logistic).
        source: named in messages.
        matlab: read 2-D row/column vectors as vectors (MATLAB has no 1-D arrays).
        names: how messages name the parameters ``lam`` and ``penalty`` (default: so).

    Raises:
        DataError: with one line naming the key, what was found and what was expected.
    """
    if kind not in KINDS:
        raise DataError(f"unknown problem {kind!r}; expected one of {', '.join(KINDS)}")
    n = dict(names or {})
    lam_n, pen_n = n.get("lam", "lam"), n.get("penalty", "penalty")
    if kind == "qp" and (lam is not None or penalty is not None):
        raise DataError(f"{lam_n} and {pen_n} apply to lasso and logistic only, not to qp")
    if kind == "lasso" and penalty is not None:
        raise DataError(f"{pen_n} applies to logistic only; lasso's penalty is always l1")
    c = _Checker(kind, arrays, source, matlab, n)
    if kind == "mimo" and (lam is not None or penalty is not None):
        raise DataError(f"{lam_n} and {pen_n} apply to lasso and logistic only, not to mimo")
    if kind == "qp":
        return _validate_qp(c)
    if kind == "lasso":
        return _validate_lasso(c, lam)
    if kind == "mimo":
        return _validate_mimo(c)
    return _validate_logistic(c, lam, penalty)


def load(kind: str, path: str | os.PathLike[str], *, lam: float | None = None, penalty: str | None = None,
         names: Mapping[str, str] | None = None) -> Loaded:
    """Read and validate a problem file; see ``validate``. Raises ``DataError``."""
    if kind not in KINDS:
        raise DataError(f"unknown problem {kind!r}; expected one of {', '.join(KINDS)}")
    arrays = read_arrays(path, kind)
    matlab = Path(path).suffix.lower() == ".mat"
    return validate(kind, arrays, lam=lam, penalty=penalty, source=f"'{path}'", matlab=matlab, names=names)


def load_problem(
    kind: str, path: str | os.PathLike[str], *, lam: float | None = None, penalty: str | None = None
) -> Instances:
    """The validated batch of instances in ``path`` (float64, CPU); one instance is B = 1."""
    return load(kind, path, lam=lam, penalty=penalty).instances


# ----- writing ------------------------------------------------------------------------------


def check_output_path(path: str | os.PathLike[str], name: str = "path") -> Path:
    """Fail early (before a long solve) when ``path`` cannot be a ``.npz`` output;
    messages call it ``name``."""
    p = Path(path)
    if p.suffix.lower() != ".npz":
        raise DataError(f"{name} '{p}' must end in .npz")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise DataError(f"{name} '{p}': directory '{parent}' does not exist")
    if p.is_dir():
        raise DataError(f"{name} '{p}' is a directory")
    return p


def save_npz_atomic(path: str | os.PathLike[str], arrays: Mapping[str, Any]) -> None:
    """Write ``arrays`` to ``path`` as .npz atomically (``l2o.utils.files.atomic_write``): an
    existing file is never left half-written and no temporary file is left behind."""
    # A file handle, so that np.savez does not append ".npz" to the name.
    atomic_write(path, lambda fh: np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()}))
