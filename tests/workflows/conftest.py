"""Tiny trained runs for the workflow tests (made once per test session): GNN-WMMSE on a
small MIMO family, GO-Math-L2O (dimension-agnostic) and ALISTA (tied to its dictionary)
on a 10 x 20 LASSO."""

from __future__ import annotations

import pytest

training = pytest.importorskip("l2o.training", reason="the meta-training engine (l2o.training) is not available")

#: The MIMO family of ``mimo_run``: 2 cells x 2 users, M = 4, N = 2, d = 1.
MIMO = {"family": "mimo", "cells": 2, "users": 2, "tx_antennas": 4, "rx_antennas": 2, "streams": 1}
LASSO = {"family": "lasso", "m": 10, "n": 20, "nnz": 3}


def _train(out, config: dict):
    training.train(training.RunConfig.from_dict(config), out)
    return out


@pytest.fixture(scope="session")
def mimo_run(tmp_path_factory):
    """GNN-WMMSE, 2 layers, trained 2 steps on ``MIMO``."""
    return _train(tmp_path_factory.mktemp("runs") / "gnn", {
        "problem": dict(MIMO),
        "solver": {"name": "gnn_wmmse", "horizon": 2, "hidden": 8},
        "training": {"steps": 2, "batch_size": 8, "unroll": 2, "loss": "weighted", "val_batch": 0,
                     "checkpoint_every": 0, "gradient_checkpointing": False},
    })


@pytest.fixture(scope="session")
def go_run(tmp_path_factory):
    """GO-Math-L2O (horizon 5, 2 meta-steps) on ``LASSO``: dimension-agnostic."""
    return _train(tmp_path_factory.mktemp("runs") / "go", {
        "problem": dict(LASSO),
        "solver": {"name": "go_math_l2o", "horizon": 5, "hidden": 4},
        "training": {"steps": 2, "batch_size": 4, "unroll": 5, "segment": 5, "val_batch": 4, "val_every": 1,
                     "checkpoint_every": 0},
    })


@pytest.fixture(scope="session")
def alista_run(tmp_path_factory):
    """ALISTA (horizon 4, 2 meta-steps) on ``LASSO``: tied to its 10 x 20 dictionary."""
    return _train(tmp_path_factory.mktemp("runs") / "alista", {
        "problem": dict(LASSO),
        "solver": {"name": "alista", "horizon": 4},
        "training": {"steps": 2, "batch_size": 4, "unroll": 4, "val_batch": 4, "val_every": 1, "checkpoint_every": 0},
    })
