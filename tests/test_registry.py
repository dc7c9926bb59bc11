"""``l2o.registry``: one registry of classical and learned solvers, solvers that say what they
skip, and families that declare their defaults."""

from __future__ import annotations

import json
import subprocess
import sys

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
from l2o.problems.splits import common_splits
from l2o.registry import (
    CLASSICAL,
    COMMON_SPLITS,
    FAMILIES,
    LEARNED,
    PRESETS,
    SOLVERS,
    Preset,
    Presets,
    SolverEntry,
    is_learned,
    make_family,
    make_solver,
    resolve,
)

MIMO_ONLY = ("wmmse", "wmmse_paper", "mrt", "zf", "rzf")


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
            "iaidnn", "gcn_wmmse", "lqn", "structural_mpnn", "structural_mpnn_b", "structural_mpnn_o"} == set(LEARNED)
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
    with pytest.raises(ValueError, match=r"^unknown solver 'nope'; valid solvers: adam, alista, apgd, .*zf, zo_gd$"):
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


# ----- entries name their classes by path, imported on first use ------------------------------------

#: Where the registry's classes may live: the layers below ``l2o.registry`` (pyproject.toml's contract;
#: the registry imports them by path, which import-linter does not see).
LOWER_LAYERS = ("l2o.learned.", "l2o.zeroth_order.", "l2o.optimizers.", "l2o.problems.")


def test_every_path_resolves_to_a_class_of_its_name_in_a_lower_layer():
    entries = [*SOLVERS.items(), *FAMILIES.items(), *PRESETS.entries.items()]
    for name, entry in entries:
        assert isinstance(entry.target, str) and entry.target.startswith(LOWER_LAYERS), (name, entry.target)
        cls = resolve(entry.target)
        assert isinstance(cls, type) and entry.target == f"{cls.__module__}:{cls.__qualname__}"
        assert entry.description == entry.description.strip() and "\n" not in entry.description
        if not isinstance(entry, Preset):
            assert cls.name == name, (name, entry.target)
    with pytest.raises(ValueError, match="not of the form 'package.module:Name'"):
        resolve("l2o.optimizers.fista.FISTA")
    assert resolve(FISTA) is FISTA and SolverEntry(FISTA, "a class works too").factory is FISTA


def test_presets_declare_their_splits_and_build_their_family_once():
    assert COMMON_SPLITS == tuple(sp.name for sp in common_splits())
    assert isinstance(PRESETS, Presets) and len(PRESETS) == len(PRESETS.entries) > 10
    for name, entry in PRESETS.entries.items():
        family = PRESETS[name][0]
        assert family is entry.family is PRESETS[name][0]  # built once
        assert isinstance(family, resolve(entry.target)) and family == resolve(entry.target)(**entry.params)
        assert PRESETS[name][1] == entry.description
        assert entry.splits == tuple(sp.name for sp in family.natural_splits()), name
    assert "lasso_250x500" in PRESETS and "nope" not in PRESETS and list(PRESETS)[0] == "ls_32x25"
    assert dict(PRESETS.items())["qp_100"][0] is PRESETS.entries["qp_100"].family


def test_listing_the_registry_imports_no_solver_and_no_torch():
    """What ``l2o list`` reads (names, descriptions, learned or not, preset splits) is plain data."""
    code = ("import json, sys; from l2o.registry import SOLVERS, FAMILIES, PRESETS, COMMON_SPLITS;"
            "data = [[(k, e.description, e.learned) for k, e in SOLVERS.items()],"
            " [(k, e.description) for k, e in FAMILIES.items()],"
            " [(k, e.description, e.splits) for k, e in PRESETS.entries.items()], COMMON_SPLITS];"
            "print(json.dumps(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('l2o.', 'torch.')))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout) == ["l2o.registry"]


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


def test_refusals_name_the_problem_kind_not_an_internal_class():
    """What a user reads when a solver does not fit (``l2o solve --solver``, a checkpoint on
    other data) names the kind of problem, never a class such as ``LeastSquaresInstances``."""
    problems = small_problems()
    learned = {"lista": {"A": LassoFamily(m=4, n=6, nnz=2)}, "gnn_wmmse": {"horizon": 2, "hidden": 4},
               "lgd": {}, "math_l2o": {}}
    solvers = {**{n: make_solver(n) for n in CLASSICAL}, **{n: make_solver(n, **kw) for n, kw in learned.items()}}
    reasons = [solver.skip(p) for p in problems.values() for solver in solvers.values()]
    reasons = [r for r in reasons if r is not None]
    assert len(reasons) > 20
    for reason in reasons:
        assert "Instances" not in reason and "Family" not in reason, reason
    assert make_solver("wmmse").skip(problems["lasso"]).endswith("got a least-squares / LASSO problem")
    assert make_solver("mrt").skip(problems["box_qp"]).endswith("got a quadratic (QP) problem")
    custom = l2o.AutogradInstances(lambda x: (x**2).sum(-1), batch_size=2, dim=3, smoothness=2.0)
    with pytest.raises(NotImplementedError, match="^the custom \\(autograd\\) problem has no cheap Hessian"):
        custom.hessian(torch.zeros(2, 3, dtype=torch.float64))
    shifted = LassoFamily(m=4, n=6, nnz=2, objective_shift=1.0).sample(2, 0)
    assert "got a least-squares / LASSO problem" in make_solver("wmmse").skip(shifted)
    with pytest.raises(ValueError, match="got the family 'lasso' without a shared dictionary"):
        make_solver("lista", A=LassoFamily(m=4, n=6, nnz=2, shared_matrix=False))


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
    (MimoFamily(cells=2, users=1, tx_antennas=2, rx_antennas=1, streams=1), "wmmse", MIMO, "wmmse", "mimo"),
])
def test_families_declare_their_defaults(family, solver, baselines, fallback, file_format):
    """The values ``default_solver``, ``default_baselines``, ``kind_of_family`` and
    ``default_fallback`` read from these declarations and the instances' structure."""
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
