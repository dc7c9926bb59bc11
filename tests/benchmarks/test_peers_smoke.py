"""Smoke test of the classical peers of ``benchmarks/peers.py`` on 3 tiny instances.

Each available peer must reach 1e-6 relative suboptimality on every instance; a peer
whose package is missing is skipped.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
import time

import numpy as np
import pytest

from l2o import make_family
from l2o.evaluation import reference

PEERS_PATH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "peers.py"
TARGETS = (1e-4, 1e-6)

LASSO = {
    "sklearn_loop": ("sklearn",),
    "sklearn_multitarget": ("sklearn",),
    "skglm": ("skglm",),
    "celer": ("celer",),
    "cvxpy_osqp": ("cvxpy", "osqp"),
    "cvxpy_clarabel": ("cvxpy", "clarabel"),
}
BOX_QP = {
    "osqp": ("osqp",),
    "osqp_polish": ("osqp",),
    "proxsuite": ("proxsuite",),
    "proxsuite_parallel": ("proxsuite",),
}


@pytest.fixture(scope="module")
def peers():
    name = "l2o_benchmarks_peers"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, PEERS_PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def lasso_data():
    p = make_family("lasso_250x500", m=20, n=40, nnz=5).sample(3, 0)
    ref = reference(p)
    return p.A.numpy(), p.b.numpy(), ref.objective.numpy(), ref.gap_denominator.numpy()


@pytest.fixture(scope="module")
def box_qp_data():
    p = make_family("box_qp_100", n=10, condition_number=50.0).sample(3, 0)
    ref = reference(p)
    return (p.Q.numpy(), p.q.numpy(), p.lower.numpy(), p.upper.numpy(), ref.objective.numpy(),
            ref.gap_denominator.numpy())


def _check_result(r: dict, name: str) -> None:
    assert r["solver"] == name
    assert "error" not in r, r.get("error")
    assert r["instances"] == 3
    assert set(r["time_to"]) == {"1e-04", "1e-06"}
    assert r["time_to"]["1e-06"] is not None, r["ladder"]
    assert r["time_to"]["1e-04"] is not None and r["time_to"]["1e-04"] <= r["time_to"]["1e-06"]
    assert r["worst_gap"] <= 1e-6
    assert all(rung["seconds"] >= 0 for rung in r["ladder"])


@pytest.mark.parametrize("name", list(LASSO))
def test_lasso_peer_reaches_1e6(peers, lasso_data, name):
    for module in LASSO[name]:
        pytest.importorskip(module)
    A, B, f_star, den = lasso_data
    (r,) = peers.lasso_peers(A, B, 0.1, f_star, den, targets=TARGETS, which=[name])
    _check_result(r, name)


@pytest.mark.parametrize("name", list(BOX_QP))
def test_box_qp_peer_reaches_1e6(peers, box_qp_data, name):
    for module in BOX_QP[name]:
        pytest.importorskip(module)
    Q, q, lower, upper, f_star, den = box_qp_data
    (r,) = peers.box_qp_peers(Q, q, lower, upper, f_star, den, targets=TARGETS, which=[name])
    _check_result(r, name)


def test_failing_peer_becomes_error_dict(peers):
    def boom(setting, data, deadline):
        raise RuntimeError("boom")

    peer = peers._Peer("boom", "numpy", ("numpy",), boom, (1e-2,))
    r = peers._run_peer(peer, np.zeros((3, 2)), lambda X, k: (0.0, {}), TARGETS, None, None, 1)
    assert r["solver"] == "boom" and "RuntimeError: boom" in r["error"]
    assert r["time_to"] == {"1e-04": None, "1e-06": None} and r["worst_gap"] is None

    missing = peers._Peer("missing", "no-such-dist", ("no_such_module_l2o",), boom, (1e-2,))
    r = peers._run_peer(missing, np.zeros((3, 2)), lambda X, k: (0.0, {}), TARGETS, None, None, 1)
    assert r["error"].startswith("not installed")


def test_subset_peer_is_extrapolated(peers):
    def slow(setting, data, deadline):
        time.sleep(0.02)
        return np.zeros_like(data)

    peer = peers._Peer("sub", "numpy", ("numpy",), slow, (1e-2,), subset=2)
    r = peers._run_peer(peer, np.zeros((6, 2)), lambda X, k: (0.0, {}), TARGETS, None, None, 1)
    assert r["instances"] == 2 and "EXTRAPOLATED" in r["note"]
    assert r["ladder"][0]["seconds"] >= 3 * 0.02  # 2 of 6 instances measured: time scaled by 3
    assert r["time_to"]["1e-06"] == r["ladder"][0]["seconds"]


def test_unknown_peer_name_is_rejected(peers, lasso_data):
    A, B, f_star, den = lasso_data
    with pytest.raises(ValueError, match="unknown peer"):
        peers.lasso_peers(A, B, 0.1, f_star, den, which=["nope"])
