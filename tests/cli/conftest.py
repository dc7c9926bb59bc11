"""Tiny trained runs shared by the command tests (made once per test session).

LGD for 3 meta-steps on a least-squares family with d = 8, m = 12; ALISTA with 4
layers on a 10 x 20 LASSO; GO-Math-L2O (horizon 5) and ALISTA (horizon 4) for the
robustness report.
"""

from __future__ import annotations

import pytest

training = pytest.importorskip("l2o.training", reason="the meta-training engine (l2o.training) is not available")

def _train(out, config: dict):
    training.train(training.RunConfig.from_dict(config), out)
    return out

@pytest.fixture(scope="session")
def ls_run(tmp_path_factory):
    """LGD, horizon 5, trained 3 steps on least squares (d = 8, m = 12)."""
    return _train(tmp_path_factory.mktemp("runs") / "lgd", {
        "problem": {"family": "least_squares", "d": 8, "m": 12},
        "solver": {"name": "lgd", "hidden": 16, "expansion": 10.0},
        "training": {"steps": 3, "batch_size": 8, "unroll": 5, "val_batch": 8, "val_every": 1, "checkpoint_every": 0},
    })

@pytest.fixture(scope="session")
def lasso_run(tmp_path_factory):
    """ALISTA with 4 layers, trained 3 steps on a 10 x 20 LASSO with a shared dictionary."""
    return _train(tmp_path_factory.mktemp("runs") / "alista", {
        "problem": {"family": "lasso", "m": 10, "n": 20, "nnz": 3},
        "solver": {"name": "alista", "horizon": 4},
        "training": {"steps": 3, "batch_size": 8, "unroll": 4, "val_batch": 8, "val_every": 1, "checkpoint_every": 0},
    })

@pytest.fixture(scope="session")
def math_run(tmp_path_factory):
    """GO-Math-L2O (horizon 5, 2 meta-steps) on a 10 x 20 LASSO: dimension-agnostic."""
    out = tmp_path_factory.mktemp("runs") / "go"
    training.train(training.RunConfig.from_dict({
        "problem": {"family": "lasso", "m": 10, "n": 20, "nnz": 3},
        "solver": {"name": "go_math_l2o", "horizon": 5, "hidden": 4},
        "training": {"steps": 2, "batch_size": 4, "unroll": 5, "segment": 5, "val_batch": 4, "val_every": 1,
                     "checkpoint_every": 0},
    }), out)
    return out

@pytest.fixture(scope="session")
def alista_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "alista"
    training.train(training.RunConfig.from_dict({
        "problem": {"family": "lasso", "m": 10, "n": 20, "nnz": 3},
        "solver": {"name": "alista", "horizon": 4},
        "training": {"steps": 2, "batch_size": 4, "unroll": 4, "val_batch": 4, "val_every": 1, "checkpoint_every": 0},
    }), out)
    return out
