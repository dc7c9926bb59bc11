"""``l2o.registry``: one registry of classical and learned solvers, solvers that say what they
skip, and families that declare their defaults."""

from __future__ import annotations

import pytest
import torch

import l2o
from l2o.learned import LGD, LISTA, LearnedOptimizer, MathL2O
from l2o.optimizers import FISTA, Optimizer
from l2o.problems import (
    DatasetLogisticFamily,
    LassoFamily,
    LeastSquaresFamily,
    LogisticFamily,
    MimoFamily,
    ProblemFamily,
    QuadraticFamily,
)
from l2o.registry import CLASSICAL, FAMILIES, LEARNED, PRESETS, SOLVERS, is_learned, make_family, make_solver

MIMO_ONLY = ("wmmse", "mrt", "zf", "rzf")


# ----- one registry --------------------------------------------------------------------------------


def test_solvers_holds_classical_then_learned_keyed_by_class_name():
    assert list(SOLVERS) == [*CLASSICAL, *LEARNED]
    assert set(CLASSICAL).isdisjoint(LEARNED)
    for name, entry in SOLVERS.items():
        assert entry.factory.name == name
        assert entry.description and "\n" not in entry.description
        assert entry.learned == issubclass(entry.factory, LearnedOptimizer) == is_learned(name)
        assert issubclass(entry.factory, Optimizer)
    assert {"gd", "fista_restart", "newton", *MIMO_ONLY} <= set(CLASSICAL)
    assert {"lgd", "math_l2o", "go_math_l2o", "lista", "alista", "l2o_dm", "rnnprop", "lfista", "gnn_wmmse",
            "lqn"} == set(LEARNED)
    assert l2o.SOLVERS is SOLVERS


def test_make_solver_builds_either_kind():
    fista = make_solver("fista_restart")
    assert isinstance(fista, FISTA) and fista.restart
    lgd = make_solver("lgd", hidden=8)
    assert isinstance(lgd, LGD) and lgd.hparams["hidden"] == 8
    m = make_solver("math_l2o", variant="P")
    assert isinstance(m, MathL2O) and m.hparams["variant"] == "P"
    lista = make_solver("lista", A=LassoFamily(m=4, n=6, nnz=2), horizon=3)
    assert isinstance(lista, LISTA) and lista.horizon == 3
    assert l2o.make_solver is make_solver


def test_unknown_solver_names_every_solver():
    with pytest.raises(ValueError, match=r"^unknown solver 'nope'; valid solvers: adam, alista, apgd, .*zf$"):
        make_solver("nope")
    with pytest.raises(ValueError, match=r"^unknown solver 'nope'"):
        is_learned("nope")


def test_families_and_presets():
    for name, entry in FAMILIES.items():
        assert entry.factory.name == name and entry.description
    for name, (family, description) in PRESETS.items():
        assert isinstance(family, ProblemFamily) and description
        assert make_family(name) is family
    assert make_family("lasso_250x500", lam=0.2).lam == 0.2
    with pytest.raises(ValueError, match="unknown parameter"):
        make_family("lasso", nope=1)
    with pytest.raises(ValueError, match="unknown problem 'nope'"):
        make_family("nope")


# ----- what solvers skip -------------------------------------------------------------------------------


def small_problems():
    return {
        "qp": QuadraticFamily(n=4, condition_number=10.0).sample(2, 0),
        "box_qp": QuadraticFamily(n=4, condition_number=10.0, box=0.1).sample(2, 0),
        "lasso": LassoFamily(m=4, n=6, nnz=2).sample(2, 0),
        "mimo": MimoFamily(cells=2, users=1, tx_antennas=2, rx_antennas=1, streams=1).sample(2, 0),
    }


def test_skip_is_none_or_the_check_problem_message():
    for p in small_problems().values():
        for name in CLASSICAL:
            solver = make_solver(name)
            reason = solver.skip(p)
            if reason is None:
                solver.check_problem(p)
            else:
                assert "\n" not in reason
                with pytest.raises(ValueError, match="."):
                    solver.check_problem(p)
                assert reason == str(pytest.raises(ValueError, solver.check_problem, p).value)


def test_mimo_solvers_skip_problems_that_are_not_mimo_instances():
    problems = small_problems()
    for name in MIMO_ONLY:
        solver = make_solver(name)
        for kind in ("qp", "box_qp", "lasso"):
            reason = solver.skip(problems[kind])
            assert reason is not None and f"'{name}'" in reason and "MIMO" in reason
        assert solver.skip(problems["mimo"]) is None
    # by type, not by family name: a shifted or re-sampled batch of another family stays refused
    assert make_solver("wmmse").skip(LassoFamily(m=4, n=6, nnz=2, objective_shift=1.0).sample(2, 0))


def test_smooth_only_solvers_skip_nonsmooth_problems():
    problems = small_problems()
    for name in ("gd", "nesterov", "heavy_ball", "lbfgs", "newton"):
        assert make_solver(name).skip(problems["qp"]) is None
        assert "smooth unconstrained problems only" in make_solver(name).skip(problems["lasso"])
    assert "mu" in make_solver("nesterov_sc").skip(LeastSquaresFamily(d=6, m=4).sample(2, 0))  # mu = 0


def test_learned_solvers_skip_what_they_are_not_meant_for():
    problems = small_problems()
    assert "generic learned solver" in make_solver("math_l2o").skip(problems["mimo"])  # accepts its projection
    make_solver("math_l2o").check_problem(problems["mimo"])
    assert make_solver("math_l2o").skip(problems["lasso"]) is None
    assert "smooth unconstrained problems only" in make_solver("lgd").skip(problems["mimo"])
    assert make_solver("lgd").skip(problems["qp"]) is None
    assert make_solver("gnn_wmmse", horizon=2, hidden=4).skip(problems["mimo"]) is None
    assert "MIMO" in make_solver("gnn_wmmse", horizon=2, hidden=4).skip(problems["lasso"])


# ----- declared family defaults -----------------------------------------------------------------------------

SMOOTH = ("gd", "nesterov", "fista_restart", "adam", "lbfgs")
NONSMOOTH = ("ista", "fista", "fista_restart", "adam")
MIMO = ("wmmse", "mrt", "zf", "rzf")


@pytest.mark.parametrize("family,solver,baselines,fallback,file_format", [
    (LassoFamily(m=4, n=6, nnz=2), "fista_restart", NONSMOOTH, "fista_restart", "lasso"),
    (LassoFamily(m=4, n=6, nnz=2, lam=0.0), "fista_restart", SMOOTH, "fista_restart", "lasso"),
    (LeastSquaresFamily(d=6, m=8), "fista_restart", SMOOTH, "fista_restart", "lasso"),
    (QuadraticFamily(n=4), "newton", SMOOTH, "fista_restart", "qp"),
    (QuadraticFamily(n=4, box=0.1), "apgd", NONSMOOTH, "fista_restart", "qp"),
    (LogisticFamily(n_samples=20, d=4, nnz=2), "fista_restart", NONSMOOTH, "fista_restart", "logistic"),
    (LogisticFamily(n_samples=20, d=4, nnz=2, penalty="l2"), "newton", SMOOTH, "fista_restart", "logistic"),
    (DatasetLogisticFamily(penalty="l2"), "newton", SMOOTH, "fista_restart", "logistic"),
    (DatasetLogisticFamily(), "fista_restart", NONSMOOTH, "fista_restart", "logistic"),
    (MimoFamily(cells=2, users=1, tx_antennas=2, rx_antennas=1, streams=1), "wmmse", MIMO, "wmmse", None),
])
def test_families_declare_their_defaults(family, solver, baselines, fallback, file_format):
    """The values ``cli.default_solver``, ``commands.default_baselines``, ``FAMILY_KINDS`` and
    ``robustness.default_fallback`` decided by family name and instance structure."""
    p = family.sample(2, 0)
    assert family.solver_for(p) == type(family).solver_for(p) == solver
    assert family.baselines_for(p) == baselines
    assert family.fallback == fallback and family.file_format == file_format
    for name in (solver, *baselines, fallback):
        assert name in CLASSICAL
    assert make_solver(solver).skip(p) is None and make_solver(fallback).skip(p) is None


def test_declared_defaults_are_class_attributes():
    for entry in FAMILIES.values():
        cls = entry.factory
        assert isinstance(cls.default_solver, str) and cls.default_solver in CLASSICAL
        assert isinstance(cls.baselines, tuple) and isinstance(cls.smooth_baselines, tuple)
        assert cls.fallback in CLASSICAL
        assert cls.file_format is None or isinstance(cls.file_format, str)
    assert (QuadraticFamily.default_solver, MimoFamily.default_solver, LassoFamily.default_solver) == (
        "newton", "wmmse", "fista_restart")
    assert MimoFamily.baselines == MimoFamily.smooth_baselines == MIMO and MimoFamily.fallback == "wmmse"
    assert ProblemFamily.baselines == NONSMOOTH and ProblemFamily.smooth_baselines == SMOOTH


def test_read_in_a_file_format_the_family_class_gives_the_default_solver():
    """``l2o solve`` without a family: the class of the file format decides."""
    qp = QuadraticFamily(n=4, box=0.2).sample(1, 0)
    assert QuadraticFamily.solver_for(qp) == "apgd"
    assert QuadraticFamily.solver_for(QuadraticFamily(n=4).sample(1, 0)) == "newton"
    ridge = LogisticFamily(n_samples=20, d=4, nnz=2, penalty="l2").sample(1, 0)
    assert LogisticFamily.solver_for(ridge) == DatasetLogisticFamily.solver_for(ridge) == "newton"
    assert torch.is_tensor(ridge.X)
