"""``l2o.workflows.checkpoint_solve``: a data file solved from Python (``solve_file``),
the choices ``l2o solve`` makes (default solver, check period, output keys) and the
file kind of a trained run's family (the command: tests/cli/test_cmd_solve.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import l2o
from l2o.io import KINDS, DataError
from l2o.registry import FAMILIES
from l2o.workflows.checkpoint_solve import (
    TrainingMismatchWarning,
    check_every_for,
    default_solver,
    format_families,
    kind_of_family,
    load_for_checkpoint,
    solve_file,
)


def lasso_file(path):
    rng = np.random.default_rng(0)
    np.savez(path, A=rng.standard_normal((6, 4)), b=rng.standard_normal(6), lam=0.1)
    return path


def test_kind_of_family_is_the_declared_file_format():
    assert kind_of_family(l2o.make_family("lasso_250x500")) == "lasso"
    assert kind_of_family(l2o.make_family("least_squares", d=8, m=12)) == "lasso"
    assert kind_of_family(l2o.make_family("mimo")) == "mimo"  # issue 12 item 2: MIMO runs solve files too
    # every io kind is some registered family's format (log-sum-exp has no file format yet)
    with_format = [e.factory for e in FAMILIES.values() if e.factory.file_format is not None]
    assert {kind_of_family(f()) for f in with_format} == set(KINDS)
    assert {n for n, e in FAMILIES.items() if e.factory.file_format is None} == {"logsumexp"}


def test_a_family_without_a_file_format_is_refused(monkeypatch):
    fam = l2o.make_family("qp_100")
    monkeypatch.setattr(type(fam), "file_format", None)
    with pytest.raises(ValueError, match="family 'quadratic' has no file format for `l2o solve`; families with one:"):
        kind_of_family(fam)


@pytest.mark.parametrize("kind", KINDS)
def test_families_of_one_format_agree_on_the_default_solver(kind):
    """``default_solver(kind, ...)`` reads the declaration of the first family of the format;
    every family read in that format declares the same choice."""
    families = format_families(kind)
    assert families
    for e in FAMILIES.values():
        if e.factory.file_format == kind:
            for variant in _variants(e.factory):
                p = variant.sample(2, 0)
                assert {f.solver_for(p) for f in families} == {default_solver(kind, p)} == {variant.solver_for(p)}


def _variants(cls):
    small = {"quadratic": [dict(n=4), dict(n=4, box=0.1)], "least_squares": [dict(d=4, m=6)],
             "lasso": [dict(m=4, n=6, nnz=2)],
             "logistic": [dict(n_samples=20, d=4, nnz=2), dict(n_samples=20, d=4, nnz=2, penalty="l2")],
             "logistic_dataset": [dict(), dict(penalty="l2")],
             "mimo": [dict(cells=2, users=1, tx_antennas=2, rx_antennas=1, streams=1)]}
    return [cls(**kw) for kw in small[cls.name]]


def test_default_solver_and_check_period():
    assert check_every_for(l2o.make_solver("newton")) == 1 and check_every_for(l2o.make_solver("fista")) == 10
    lasso = l2o.make_family("lasso_250x500").sample(1, 0)
    assert default_solver("lasso", lasso) == "fista_restart" and default_solver("mimo", lasso) == "wmmse"
    box = l2o.make_family("box_qp_100").sample(1, 0)
    qp = l2o.make_family("qp_100").sample(1, 0)
    assert default_solver("qp", box) == "apgd" and default_solver("qp", qp) == "newton"


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


# ----- trained solvers on files: MIMO, declared lam, data unlike the training instances -----------------------


#: The MIMO family of ``conftest.mimo_run``.
MIMO = {"cells": 2, "users": 2, "tx_antennas": 4, "rx_antennas": 2, "streams": 1}


def mimo_file(path, family_kwargs, batch=2, seed=5):
    p = l2o.make_family("mimo", **family_kwargs).sample(batch, seed)
    np.savez(path, H=p.H.numpy(), streams=p.streams, power=p.budget[0].numpy(), noise=1.0)
    return path, p


def test_a_trained_mimo_solver_solves_a_channel_file_like_wmmse(mimo_run, tmp_path):
    """Issue 12 item 2: ``solve_file(checkpoint=<gnn_wmmse run>)`` reads the MIMO format its
    family declares and reaches the same certificate and sum-rate as WMMSE from the file."""
    path, p = mimo_file(tmp_path / "mimo.npz", MIMO)  # the family of conftest.mimo_run
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the data are like the training instances: no mismatch warning
        learned = solve_file(path, checkpoint=mimo_run, tol=1e-5)
    classical = solve_file(path, "mimo", tol=1e-5)
    assert learned.kind == classical.kind == "mimo" and learned.solver == "gnn_wmmse" and not learned.notes
    assert set(learned.arrays) == set(classical.arrays)  # V and sum_rate too
    assert learned.arrays["V"].shape == classical.arrays["V"].shape == tuple(p.unpack(p.initial_point()).shape)
    assert bool(learned.result.converged.all()) and bool((learned.result.certificate <= 1e-5).all())
    # the sum-rate of the file's instances, recomputed from the returned precoders
    rate = p.sum_rate(torch.as_tensor(learned.arrays["x"]))
    assert np.allclose(rate.numpy(), learned.arrays["sum_rate"], rtol=1e-12)
    # WMMSE stationary points of the same channels: the learned start may end at another one
    assert np.allclose(learned.arrays["sum_rate"], classical.arrays["sum_rate"], rtol=0.05)
    assert bool((p.power(torch.as_tensor(learned.arrays["x"])) <= p.budget * (1 + 1e-9)).all())


def test_declared_file_lam_supplies_a_missing_lam(go_run, tmp_path, monkeypatch):
    """A family's ``file_lam`` (least squares: 0) is the lam of a file without one; here
    declared on the run's LASSO family for the test."""
    rng = np.random.default_rng(0)
    path = tmp_path / "nolam.npz"
    np.savez(path, A=rng.standard_normal((10, 20)), b=rng.standard_normal(10))
    with pytest.raises(DataError, match="lam"):
        load_for_checkpoint(go_run, path)
    monkeypatch.setattr(l2o.LassoFamily, "file_lam", 0.25)
    got = load_for_checkpoint(go_run, path)
    assert torch.equal(got.loaded.instances.lam, torch.full((1,), 0.25, dtype=torch.float64))
    assert float(load_for_checkpoint(go_run, path, lam=0.5).loaded.instances.lam[0]) == 0.5


def test_least_squares_declares_lam_zero_for_files():
    assert l2o.LeastSquaresFamily.file_lam == 0.0 and l2o.LassoFamily.file_lam is None
    assert l2o.LeastSquaresFamily.file_format == l2o.LassoFamily.file_format == "lasso"


def test_data_of_another_dimension_warns_for_a_dimension_agnostic_solver(go_run, tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "n30.npz"
    np.savez(path, A=rng.standard_normal((10, 30)) / np.sqrt(10), b=rng.standard_normal(10), lam=0.1)
    with pytest.warns(TrainingMismatchWarning, match=r"trained on lasso instances of dimension n = 20; this data "
                                                     r"has n = 30"):
        sol = solve_file(path, checkpoint=go_run, tol=1e-6, max_iter=20)
    assert len(sol.notes) == 1 and "n = 30" in sol.notes[0] and sol.arrays["x"].shape == (30,)


def test_data_of_another_kind_warns(go_run, tmp_path):
    """Trained on LASSO (nonsmooth); a file with lam = 0 is plain least squares (smooth)."""
    rng = np.random.default_rng(2)
    path = tmp_path / "smooth.npz"
    np.savez(path, A=rng.standard_normal((10, 20)), b=rng.standard_normal(10), lam=0.0)
    with pytest.warns(TrainingMismatchWarning, match=r"which are nonsmooth \(penalized\); this data is smooth"):
        got = load_for_checkpoint(go_run, path)
    assert len(got.notes) == 1


def test_data_like_the_training_instances_give_no_warning(go_run, tmp_path):
    fam = l2o.make_family("lasso", m=10, n=20, nnz=3)
    p = fam.sample(2, 9)
    path = tmp_path / "same.npz"
    np.savez(path, A=p.A.numpy(), b=p.b.numpy(), lam=p.lam.numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_for_checkpoint(go_run, path).notes == []


def test_a_fixed_dimension_solver_refuses_data_of_another_dimension(alista_run, tmp_path):
    """ALISTA is tied to its dictionary: another n is an error that names both dimensions."""
    rng = np.random.default_rng(3)
    path = tmp_path / "n30.npz"
    np.savez(path, A=rng.standard_normal((10, 30)), b=rng.standard_normal(10), lam=0.1)
    with pytest.raises(ValueError) as e:
        load_for_checkpoint(alista_run, path)
    msg = str(e.value)
    assert msg.startswith("the checkpoint's solver cannot solve this data: solver 'alista'")
    assert "n = 20; this data has n = 30" in msg and "\n" not in msg


def test_auto_iterates_in_float32_only_where_the_solver_allows_it():
    import torch

    import l2o
    from l2o.workflows.checkpoint_solve import iterate_dtype_for

    p = l2o.make_family("lasso", m=10, n=20, nnz=3).sample(2, 0)
    assert iterate_dtype_for("auto", "lasso", l2o.make_solver("fista_restart"), p, trained=False) == torch.float32
    # finite differences of a float32 objective cannot reach a float64 tolerance: zo_gd keeps float64
    assert iterate_dtype_for("auto", "lasso", l2o.make_solver("zo_gd"), p, trained=False) == torch.float64
    assert iterate_dtype_for("auto", "lasso", l2o.make_solver("fista_restart"), p, trained=True) == torch.float64
    assert iterate_dtype_for("float32", "lasso", l2o.make_solver("zo_gd"), p, trained=False) == torch.float32
