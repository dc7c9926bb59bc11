"""Classical peer solvers for the classical benchmark (the peer side of ``bench_classical.py``).

Peers do not expose our relative suboptimality, so each one is run over a *ladder* of
its own tolerance settings; every rung solves the whole batch (timed with
``time.perf_counter``, solve calls only: no gap evaluation, no warm-up) and the achieved
relative gap ``(F(x_i) - F*_i) / gap_denominator_i`` of every instance is computed in
float64 with numpy. The time to reach a target is the smallest rung time whose
worst-instance gap is <= target (``None`` when no rung gets there). Climbing stops at
the first rung that reaches the smallest target, or after a rung that ran past
``rung_time_limit`` seconds (a rung is aborted, and not counted, once it passes it).

Public API (numpy in, plain dicts out)::

    lasso_peers(A (m, n), B (batch, m), lam, f_star (batch,), gap_denominator (batch,),
                targets=(1e-4, 1e-6), which=None, ...) -> list[dict]
    box_qp_peers(Q (n, n), q (batch, n), lower (n,), upper (n,), f_star, gap_denominator,
                 targets=(1e-4, 1e-6), which=None, ...) -> list[dict]

Each dict: ``solver``, ``library`` ("scikit-learn 1.9.1"), ``time_to`` ({"1e-04": s or
None, ...}), ``worst_gap`` (the smallest worst-instance gap over the rungs run, i.e. the
best accuracy reached on *every* instance), ``ladder`` ([{"setting", "seconds",
"worst_gap", ...}]), ``threads`` (what the peer was allowed), ``instances`` (how many
were solved: fewer than the batch for extrapolated peers), ``note``. A peer that fails
(missing package, exception) gets an ``error`` string, with ``time_to`` all None and
``worst_gap`` None (``ladder`` keeps the rungs done before the failure).

Objectives (ours): LASSO F(x) = 1/2 ||A x - b||^2 + lam ||x||_1; scikit-learn, skglm and
celer minimise (1/(2m)) ||A x - b||^2 + alpha ||x||_1, so they get alpha = lam / m
(same minimiser) and fit_intercept=False. Box QP F(x) = 1/2 x'Qx + q'x on
lower <= x <= upper; QP solvers return points that may violate the box by about their
tolerance, so x is clipped to the box before F is evaluated (the ladder records the
largest violation seen, ``max_violation``), which keeps a slightly infeasible point
from scoring a negative gap.

Threads (the machine has 2 cores): each peer runs inside ``threadpoolctl`` limits.
All peers but ``proxsuite_parallel`` are serial algorithms whose BLAS calls act on
vectors of a few hundred entries, so BLAS and OpenMP are limited to 1 thread (the
second core stays idle, as in a user's plain loop). This includes the scikit-learn
multi-target fit: measured here (batch 100), 2 OpenBLAS threads made it 2.3x *slower*
(0.14 s vs 0.06 s), because its Gram coordinate descent makes level-1/2 BLAS calls on
500-vectors that OpenBLAS splits over threads; the one-off Gram GEMM it would speed up
is ~1% of the fit. ``proxsuite_parallel`` runs ``solve_in_parallel`` on 2 OpenMP
threads with BLAS at 1. torch is not used here; if the calling process has torch
loaded, its intra-op pool is idle while peers run.
Pass ``threads=`` to override the BLAS limit of every peer.

Warm-up: before its ladder each peer solves instance 0 at its loosest setting and at
the setting nearest the smallest target, untimed, so that one-off costs (numba
compilation in skglm, CVXPY canonicalisation, first-call imports) are not charged to
the batch. One-off per-batch work (OSQP setup,
proxsuite init, Fortran-ordering A) is timed, inside every rung.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.metadata
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

DEFAULT_TARGETS = (1e-4, 1e-6)
TOL_LADDER = tuple(10.0 ** -k for k in range(2, 13))  # 1e-2 ... 1e-12
EPS_LADDER_ADMM = tuple(10.0 ** -k for k in range(2, 11))  # 1e-2 ... 1e-10 (first-order QP solvers)
DEFAULT_RUNG_TIME_LIMIT = 120.0
CVXPY_SUBSET = 20


def target_key(t: float) -> str:
    """The dict key of a target: ``1e-4 -> "1e-04"``."""
    return f"{t:.0e}"


def library_version(dist: str) -> str:
    """``"scikit-learn 1.9.1"``: distribution name(s) and installed version(s); several
    distributions are given as ``"cvxpy+osqp"`` and reported as ``"cvxpy 1.9.3 + osqp 1.1.3"``."""
    parts = []
    for d in dist.split("+"):
        try:
            parts.append(f"{d} {importlib.metadata.version(d)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{d} (not installed)")
    return " + ".join(parts)


class _RungTimeout(Exception):
    pass


class _Deadline:
    """Raises ``_RungTimeout`` from ``check()`` once ``limit`` seconds have passed."""

    def __init__(self, limit: float | None):
        self.end = None if limit is None else time.perf_counter() + limit

    def check(self) -> None:
        if self.end is not None and time.perf_counter() > self.end:
            raise _RungTimeout


@dataclasses.dataclass
class _Peer:
    """One peer: ``solve(setting, data_subset, deadline) -> X (k, n)`` over a ladder."""

    name: str
    dist: str  # distribution name(s), for the version ("cvxpy+osqp")
    modules: tuple[str, ...]  # imported before running (a missing one -> "error")
    solve: Callable[[Any, np.ndarray, _Deadline], np.ndarray]
    ladder: tuple
    blas_threads: int = 1
    openmp_threads: int = 1
    subset: int | None = None  # solve only the first `subset` instances, extrapolate time
    note: str = ""
    default: bool = True
    describe: Callable[[Any], Any] = lambda s: s


@contextlib.contextmanager
def _thread_limits(blas: int, openmp: int):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=blas, user_api="blas"), threadpool_limits(limits=openmp, user_api="openmp"):
        yield


def _check(name: str, x: np.ndarray, shape: tuple) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} has non-finite entries")
    return x


def _run_peer(
    peer: _Peer,
    data: np.ndarray,
    evaluate: Callable[[np.ndarray, int], tuple[float, dict]],
    targets: Sequence[float],
    rung_time_limit: float | None,
    threads: int | None,
    repeats: int,
) -> dict:
    """Warm up, climb the ladder, and summarise one peer (errors become a dict)."""
    out: dict[str, Any] = {"solver": peer.name, "library": library_version(peer.dist)}
    failed = {"time_to": {target_key(t): None for t in targets}, "worst_gap": None, "ladder": [], "note": peer.note}
    try:
        for mod in peer.modules:
            importlib.import_module(mod)
    except ImportError as e:
        return {**out, **failed, "error": f"not installed: {e}"}
    batch = data.shape[0]
    k = batch if peer.subset is None else min(peer.subset, batch)
    sub = np.ascontiguousarray(data[:k])
    scale = batch / k
    blas = peer.blas_threads if threads is None else threads
    out["threads"] = f"BLAS {blas}, OpenMP {peer.openmp_threads}"
    out["instances"] = k
    ladder: list[dict] = []
    stop = min(targets)
    try:
        with _thread_limits(blas, peer.openmp_threads), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Warm-up, untimed, at the loosest rung and at the rung nearest the smallest
            # target: some code paths (skglm's numba functions for Anderson acceleration
            # and working-set growth) are compiled only when a tight tolerance reaches them.
            near = min(peer.ladder, key=lambda s: abs(np.log10(_tolerance(s)) - np.log10(stop)))
            for setting in dict.fromkeys((peer.ladder[0], near)):
                peer.solve(setting, sub[:1], _Deadline(None))
            for setting in peer.ladder:
                best, X, aborted = float("inf"), None, False
                for _ in range(max(1, repeats)):
                    deadline = _Deadline(rung_time_limit)
                    t0 = time.perf_counter()
                    try:
                        X = peer.solve(setting, sub, deadline)
                    except _RungTimeout:
                        aborted = True
                        best = time.perf_counter() - t0
                        break
                    best = min(best, time.perf_counter() - t0)
                rung: dict[str, Any] = {"setting": peer.describe(setting), "seconds": best * scale}
                if aborted:
                    rung.update(worst_gap=None, aborted=f"passed the rung time limit ({rung_time_limit:g} s)")
                    ladder.append(rung)
                    break
                worst, extra = evaluate(X, k)
                rung["worst_gap"] = worst
                rung.update(extra)
                ladder.append(rung)
                if worst <= stop or (rung_time_limit is not None and best > rung_time_limit):
                    break
    except Exception as e:  # noqa: BLE001 - a failing peer must not stop the benchmark
        return {**out, **failed, "ladder": ladder, "error": f"{type(e).__name__}: {e}"}
    done = [r for r in ladder if r["worst_gap"] is not None]
    out["time_to"] = {
        target_key(t): min((r["seconds"] for r in done if r["worst_gap"] <= t), default=None) for t in targets
    }
    out["worst_gap"] = min((r["worst_gap"] for r in done), default=None)
    out["ladder"] = ladder
    note = peer.note
    if k < batch:
        note = (note + "; " if note else "") + (
            f"EXTRAPOLATED: times measured on the first {k} of {batch} instances and scaled by {scale:g}; "
            f"gaps are over those {k} only"
        )
    out["note"] = note
    return out


def _check_targets(targets: Sequence[float]) -> tuple[float, ...]:
    targets = tuple(float(t) for t in targets)
    if not targets or min(targets) <= 0:
        raise ValueError(f"targets must be a non-empty sequence of positive gaps, got {targets}")
    return targets


def _tolerance(setting: Any) -> float:
    """The tolerance a ladder setting stands for (settings are floats here)."""
    return float(setting)


def _select(peers: list[_Peer], which: Sequence[str] | None) -> list[_Peer]:
    if which is None:
        return [p for p in peers if p.default]
    names = {p.name: p for p in peers}
    bad = [w for w in which if w not in names]
    if bad:
        raise ValueError(f"unknown peer(s) {bad}; available: {', '.join(names)}")
    return [names[w] for w in which]


# ===================================================================================
# LASSO
# ===================================================================================
def lasso_objective(A: np.ndarray, X: np.ndarray, B: np.ndarray, lam: float) -> np.ndarray:
    """F(x_i) = 1/2 ||A x_i - b_i||^2 + lam ||x_i||_1 in float64: ``(k, n) -> (k,)``."""
    R = X @ A.T - B
    return 0.5 * np.einsum("ij,ij->i", R, R) + lam * np.abs(X).sum(axis=1)


def _lasso_peer_list(A: np.ndarray, lam: float) -> list[_Peer]:
    m, n = A.shape
    alpha = lam / m
    big = 100_000

    def sklearn_loop(tol, B, dl):
        from sklearn.linear_model import Lasso

        Af = np.asfortranarray(A)  # sklearn copies a C-ordered X to Fortran order on every fit
        X = np.empty((B.shape[0], n))
        for i in range(B.shape[0]):
            dl.check()
            X[i] = Lasso(alpha=alpha, fit_intercept=False, tol=tol, max_iter=big).fit(Af, B[i]).coef_
        return X

    def sklearn_multi(tol, B, dl):
        from sklearn.linear_model import Lasso

        # y = B.T is (m, batch) and Fortran-ordered; precompute=True: Gram A^T A once,
        # A^T B once, then one Gram coordinate descent per target.
        est = Lasso(alpha=alpha, fit_intercept=False, precompute=True, tol=tol, max_iter=big)
        est.fit(np.asfortranarray(A), B.T)
        return np.atleast_2d(est.coef_)

    def skglm_direct(tol, B, dl):
        from skglm.datafits import Quadratic
        from skglm.penalties import L1
        from skglm.solvers import AndersonCD

        Af = np.asfortranarray(A)
        solver = AndersonCD(tol=tol, fit_intercept=False, max_iter=1000)
        X = np.empty((B.shape[0], n))
        for i in range(B.shape[0]):
            dl.check()
            X[i] = solver.solve(Af, B[i], Quadratic(), L1(alpha), run_checks=False)[0][:n]
        return X

    def celer_loop(tol, B, dl):
        from celer import Lasso

        Af = np.asfortranarray(A)
        X = np.empty((B.shape[0], n))
        for i in range(B.shape[0]):
            dl.check()
            X[i] = Lasso(alpha=alpha, fit_intercept=False, tol=tol, max_iter=1000).fit(Af, B[i]).coef_
        return X

    cvx_cache: dict[str, Any] = {}

    def cvxpy_problem():
        if "prob" not in cvx_cache:
            import cvxpy as cp

            x = cp.Variable(n)
            b = cp.Parameter(m)
            prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(A @ x - b) + lam * cp.norm1(x)))
            cvx_cache.update(prob=prob, x=x, b=b)
        return cvx_cache["prob"], cvx_cache["x"], cvx_cache["b"]

    def cvxpy_with(solver: str):
        def run(tol, B, dl):
            prob, x, b = cvxpy_problem()
            if solver == "OSQP":
                opts = dict(eps_abs=tol, eps_rel=tol, max_iter=big)
            else:
                opts = dict(tol_gap_abs=tol, tol_gap_rel=tol, tol_feas=tol)
            X = np.empty((B.shape[0], n))
            for i in range(B.shape[0]):
                dl.check()
                b.value = B[i]
                prob.solve(solver=solver, warm_start=False, verbose=False, **opts)
                X[i] = x.value
            return X

        return run

    return [
        _Peer("sklearn_loop", "scikit-learn", ("sklearn",), sklearn_loop, TOL_LADDER,
              note="sklearn.linear_model.Lasso, one fit per instance (precompute=False), A Fortran-ordered",
              describe=lambda t: {"tol": t}),
        _Peer("sklearn_multitarget", "scikit-learn", ("sklearn",), sklearn_multi, TOL_LADDER,
              note="sklearn.linear_model.Lasso, one fit with a 2-D target (m, batch), precompute=True (Gram once)",
              describe=lambda t: {"tol": t}),
        _Peer("skglm", "skglm", ("skglm",), skglm_direct, TOL_LADDER,
              note="skglm AndersonCD.solve(Quadratic(), L1(alpha), run_checks=False) per instance "
                   "(direct solver call, no estimator validation); numba compiled in the warm-up",
              describe=lambda t: {"tol": t}),
        _Peer("celer", "celer", ("celer",), celer_loop, TOL_LADDER,
              note="celer.Lasso, one fit per instance", describe=lambda t: {"tol": t}),
        _Peer("cvxpy_osqp", "cvxpy+osqp", ("cvxpy", "osqp"), cvxpy_with("OSQP"), EPS_LADDER_ADMM, subset=CVXPY_SUBSET,
              note="CVXPY (b a Parameter, canonicalised in the warm-up) + OSQP per instance, warm_start=False, "
                   "CVXPY's default polishing", describe=lambda t: {"eps_abs": t, "eps_rel": t}),
        _Peer("cvxpy_clarabel", "cvxpy+clarabel", ("cvxpy", "clarabel"), cvxpy_with("CLARABEL"), EPS_LADDER_ADMM,
              subset=CVXPY_SUBSET, default=False,
              note="CVXPY (b a Parameter) + Clarabel per instance",
              describe=lambda t: {"tol_gap_abs": t, "tol_gap_rel": t, "tol_feas": t}),
    ]


LASSO_PEERS = ("sklearn_loop", "sklearn_multitarget", "skglm", "celer", "cvxpy_osqp", "cvxpy_clarabel")


def lasso_peers(
    A: np.ndarray,
    B: np.ndarray,
    lam: float,
    f_star: np.ndarray,
    gap_denominator: np.ndarray,
    targets: Sequence[float] = DEFAULT_TARGETS,
    which: Sequence[str] | None = None,
    *,
    rung_time_limit: float | None = DEFAULT_RUNG_TIME_LIMIT,
    threads: int | None = None,
    repeats: int = 1,
) -> list[dict]:
    """Time LASSO peers on a batch (see the module docstring for the protocol).

    Args:
        A: ``(m, n)`` shared dictionary.
        B: ``(batch, m)`` right-hand sides.
        lam: the L1 weight of F(x) = 1/2 ||A x - b||^2 + lam ||x||_1 (> 0).
        f_star, gap_denominator: ``(batch,)`` reference optimum and gap denominator.
        targets: relative gaps to time.
        which: peer names (default: all but ``cvxpy_clarabel``); see ``LASSO_PEERS``.
        rung_time_limit: abort a rung (and stop the ladder) after this many seconds.
        threads: BLAS thread limit for every peer (default: per-peer policy).
        repeats: time each rung this many times and keep the fastest.
    """
    A = _check("A", A, np.shape(A))
    if A.ndim != 2:
        raise ValueError(f"A must be 2-D (m, n), got shape {A.shape}")
    m, n = A.shape
    B = np.ascontiguousarray(_check("B", B, (np.shape(B)[0], m)))
    batch = B.shape[0]
    f_star = _check("f_star", f_star, (batch,))
    den = _check("gap_denominator", gap_denominator, (batch,))
    targets = _check_targets(targets)
    lam = float(lam)
    if not lam > 0:
        raise ValueError(f"lam must be > 0, got {lam}")

    def evaluate(X: np.ndarray, k: int) -> tuple[float, dict]:
        gaps = (lasso_objective(A, X, B[:k], lam) - f_star[:k]) / den[:k]
        return float(np.max(gaps)), {}

    return [
        _run_peer(p, B, evaluate, targets, rung_time_limit, threads, repeats)
        for p in _select(_lasso_peer_list(A, lam), which)
    ]


# ===================================================================================
# Box-constrained QP
# ===================================================================================
def qp_objective(Q: np.ndarray, X: np.ndarray, q: np.ndarray) -> np.ndarray:
    """F(x_i) = 1/2 x_i'Q x_i + q_i'x_i in float64: ``(k, n) -> (k,)``."""
    return np.einsum("ij,ij->i", X, 0.5 * X @ Q + q)


def _box_qp_peer_list(Q: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> list[_Peer]:
    n = Q.shape[0]
    Q = np.ascontiguousarray(Q)
    lower = np.ascontiguousarray(lower)
    upper = np.ascontiguousarray(upper)

    def osqp_run(polish: bool):
        def run(eps, q, dl):
            import osqp
            import scipy.sparse as sp

            solver = osqp.OSQP()
            solver.setup(
                sp.triu(sp.csc_matrix(Q), format="csc"), q[0].copy(), sp.identity(n, format="csc"), lower, upper,
                eps_abs=eps, eps_rel=eps, max_iter=100_000, warm_starting=False, polishing=polish, verbose=False,
            )
            X = np.empty_like(q)
            for i in range(q.shape[0]):
                dl.check()
                # OSQP 1.1.3 ignores numpy strides in update() (a strided view is read
                # wrongly, silently): q is C-contiguous so its rows are contiguous;
                # ascontiguousarray is then a no-op, kept as a guard.
                solver.update(q=np.ascontiguousarray(q[i]))
                X[i] = solver.solve(raise_error=False).x
            return X

        return run

    def proxsuite_serial(eps, q, dl):
        import proxsuite

        qp = proxsuite.proxqp.dense.QP(n, 0, 0, True)
        qp.settings.eps_abs = eps
        qp.settings.eps_rel = 0.0
        qp.settings.verbose = False
        qp.init(Q, q[0], None, None, None, None, None, lower, upper)
        X = np.empty_like(q)
        for i in range(q.shape[0]):
            dl.check()
            if i:
                qp.update(g=q[i])
            qp.solve()
            X[i] = qp.results.x
        return X

    def proxsuite_parallel(eps, q, dl):
        import proxsuite

        dense = proxsuite.proxqp.dense
        # BatchQP.init_qp_in_place(n, n_eq, n_in) has no box_constraints flag, so the box
        # is given as n inequalities lower <= I x <= upper. (A VectorQP of box-constrained
        # QPs works too but was ~1.5x slower here: VectorQP copies every QP on
        # construction and again on every ``vec[i]`` access.)
        eye = np.eye(n)
        qps = dense.BatchQP(q.shape[0])
        for i in range(q.shape[0]):
            dl.check()
            qp = qps.init_qp_in_place(n, 0, n)
            qp.settings.eps_abs = eps
            qp.settings.eps_rel = 0.0
            qp.settings.verbose = False
            qp.init(Q, q[i], None, None, eye, lower, upper)
        dense.solve_in_parallel(qps, 2)
        return np.stack([qps.get(i).results.x for i in range(q.shape[0])])

    eps_osqp = lambda e: {"eps_abs": e, "eps_rel": e}  # noqa: E731
    eps_prox = lambda e: {"eps_abs": e, "eps_rel": 0.0}  # noqa: E731
    return [
        _Peer("osqp", "osqp", ("osqp",), osqp_run(False), EPS_LADDER_ADMM, describe=eps_osqp,
              note="OSQP, one setup then update(q=...) per instance, warm_starting=False, polishing=False"),
        _Peer("osqp_polish", "osqp", ("osqp",), osqp_run(True), EPS_LADDER_ADMM, describe=eps_osqp,
              note="OSQP, one setup then update(q=...) per instance, warm_starting=False, polishing=True"),
        _Peer("proxsuite", "proxsuite", ("proxsuite",), proxsuite_serial, TOL_LADDER, describe=eps_prox,
              note="proxsuite dense box QP, one init then update(g=...) per instance (default cold initial guess)"),
        _Peer("proxsuite_parallel", "proxsuite", ("proxsuite",), proxsuite_parallel, TOL_LADDER,
              describe=eps_prox, openmp_threads=2,
              note="proxsuite BatchQP: one dense QP init per instance (box as C = I), "
                   "then solve_in_parallel on 2 threads"),
    ]


BOX_QP_PEERS = ("osqp", "osqp_polish", "proxsuite", "proxsuite_parallel")


def box_qp_peers(
    Q: np.ndarray,
    q: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    f_star: np.ndarray,
    gap_denominator: np.ndarray,
    targets: Sequence[float] = DEFAULT_TARGETS,
    which: Sequence[str] | None = None,
    *,
    rung_time_limit: float | None = DEFAULT_RUNG_TIME_LIMIT,
    threads: int | None = None,
    repeats: int = 1,
) -> list[dict]:
    """Time box-QP peers on a batch (see the module docstring for the protocol).

    Args:
        Q: ``(n, n)`` shared symmetric positive definite matrix.
        q: ``(batch, n)`` linear terms.
        lower, upper: ``(n,)`` finite box bounds, lower <= upper.
        f_star, gap_denominator: ``(batch,)``.
        targets, which, rung_time_limit, threads, repeats: as in ``lasso_peers``
            (peer names in ``BOX_QP_PEERS``).
    """
    Q = _check("Q", Q, np.shape(Q))
    if Q.ndim != 2 or Q.shape[0] != Q.shape[1]:
        raise ValueError(f"Q must be square (n, n), got shape {Q.shape}")
    n = Q.shape[0]
    q = np.ascontiguousarray(_check("q", q, (np.shape(q)[0], n)))
    batch = q.shape[0]
    lower = _check("lower", lower, (n,))
    upper = _check("upper", upper, (n,))
    if np.any(lower > upper):
        raise ValueError("lower must be <= upper entrywise")
    targets = _check_targets(targets)
    f_star = _check("f_star", f_star, (batch,))
    den = _check("gap_denominator", gap_denominator, (batch,))

    def evaluate(X: np.ndarray, k: int) -> tuple[float, dict]:
        violation = float(np.max(np.maximum(lower - X, 0) + np.maximum(X - upper, 0)))
        Xc = np.clip(X, lower, upper)
        gaps = (qp_objective(Q, Xc, q[:k]) - f_star[:k]) / den[:k]
        return float(np.max(gaps)), {"max_violation": violation}

    return [
        _run_peer(p, q, evaluate, targets, rung_time_limit, threads, repeats)
        for p in _select(_box_qp_peer_list(Q, lower, upper), which)
    ]


def format_table(results: list[dict], targets: Sequence[float] = DEFAULT_TARGETS) -> str:
    """A plain-text table of peer results (for logs)."""
    keys = [target_key(t) for t in targets]
    head = f"{'solver':22s} {'library':28s} " + " ".join(f"{'to ' + k:>10s}" for k in keys) + f" {'worst gap':>10s}"
    lines = [head]
    for r in results:
        if "error" in r:
            lines.append(f"{r['solver']:22s} {r['library']:28s} ERROR {r['error']}")
            continue
        cells = " ".join(
            f"{r['time_to'][k]:10.3f}" if r["time_to"][k] is not None else f"{'-':>10s}" for k in keys
        )
        wg = f"{r['worst_gap']:10.1e}" if r["worst_gap"] is not None else f"{'-':>10s}"
        extra = " [EXTRAPOLATED]" if "EXTRAPOLATED" in r.get("note", "") else ""
        lines.append(f"{r['solver']:22s} {r['library']:28s} {cells} {wg}{extra}")
    return "\n".join(lines)
