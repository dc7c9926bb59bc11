"""``l2o.workflows.checkpoint_solve``: a data file solved from Python (``solve_file``),
the choices ``l2o solve`` makes (default solver, check period, output keys) and the
file kind of a trained run's family (the command: tests/cli/test_cmd_solve.py)."""

from __future__ import annotations

import numpy as np
import pytest

import l2o
from l2o.io import DataError
from l2o.workflows.checkpoint_solve import (
    FAMILY_KINDS,
    check_every_for,
    default_solver,
    kind_of_family,
    solve_file,
)


def lasso_file(path):
    rng = np.random.default_rng(0)
    np.savez(path, A=rng.standard_normal((6, 4)), b=rng.standard_normal(6), lam=0.1)
    return path


def test_kind_of_family():
    assert kind_of_family(l2o.make_family("lasso_250x500")) == "lasso"
    assert kind_of_family(l2o.make_family("least_squares", d=8, m=12)) == "lasso"
    assert set(FAMILY_KINDS.values()) == {"lasso", "qp", "logistic", "mimo"}
    assert kind_of_family(l2o.make_family("mimo")) == "mimo"
    with pytest.raises(ValueError, match="has no file format for `l2o solve`"):
        kind_of_family(object())


def test_default_solver_and_check_period():
    assert check_every_for(l2o.make_solver("newton")) == 1 and check_every_for(l2o.make_solver("fista")) == 10
    lasso = l2o.make_family("lasso_250x500").sample(1, 0)
    assert default_solver("lasso", lasso) == "fista_restart" and default_solver("mimo", lasso) == "wmmse"


def test_solve_file_returns_the_output_arrays(tmp_path):
    sol = solve_file(lasso_file(tmp_path / "l.npz"), "lasso", tol=1e-9)
    assert sol.solver == "fista_restart" and sol.kind == "lasso" and bool(sol.result.converged.all())
    assert set(sol.arrays) == {"x", "objective", "iterations", "converged", "certificate", "certificate_name",
                               "solver", "seconds"}
    assert sol.arrays["x"].shape == (4,)  # one instance: no batch axis


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tol": 0.0}, "tol is 0.0; expected a number > 0"),
        ({"max_iter": -1}, "max_iter is -1; expected an integer >= 0"),
        ({"lam": -1.0}, "lam is -1.0; expected a finite number >= 0"),
        ({"penalty": "l2"}, "penalty applies to logistic only"),
        ({"problem": None}, "problem is required without checkpoint"),
        ({"checkpoint": "run", "solver": "fista"}, "solver and checkpoint exclude each other"),
    ],
)
def test_solve_file_errors_name_the_parameter(tmp_path, kwargs, message):
    with pytest.raises(ValueError) as e:
        solve_file(lasso_file(tmp_path / "l.npz"), **{"problem": "lasso", **kwargs})
    assert str(e.value).startswith(message) and "--" not in str(e.value)


def test_names_map_parameters_to_the_callers_names(tmp_path):
    with pytest.raises(DataError, match=r"^--lam is -1.0; expected a finite number >= 0$"):
        solve_file(lasso_file(tmp_path / "l.npz"), "lasso", lam=-1.0, names={"lam": "--lam"})
