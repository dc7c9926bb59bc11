"""The support-oracle yardstick of ``benchmarks/lasso_oracle.py`` against closed forms."""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest
import torch

from l2o import make_solver
from l2o.evaluation import reference
from l2o.problems.lasso import LassoFamily

PATH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "lasso_oracle.py"
spec = importlib.util.spec_from_file_location("lasso_oracle", PATH)
oracle = importlib.util.module_from_spec(spec)
spec.loader.exec_module(oracle)


@pytest.fixture(scope="module")
def batch():
    problem = LassoFamily(m=30, n=60, nnz=6, lam=0.05).sample(8, 3)
    return problem, reference(problem)


def test_cg_on_the_oracle_support_reaches_the_optimum_and_bounds_F(batch):
    problem, ref = batch
    nnz = int((ref.x != 0).sum(-1).max())
    gaps = oracle.support_oracle_cg(problem, ref, nnz + 2)
    # exact in at most |S| steps (in exact arithmetic): the LASSO optimum itself
    assert float(gaps["F"][nnz - 1:].max()) < 1e-10
    # q-gap is a lower bound on the F-gap, and CG never increases q
    assert bool((gaps["q"] <= gaps["F"] + 1e-12).all())
    assert bool((gaps["q"][1:] <= gaps["q"][:-1] + 1e-12).all())


def test_first_cg_step_is_the_exact_line_minimizer_along_c(batch):
    # independent closed form with numpy: z1 = (c^T c / c^T G c) c on the support
    problem, ref = batch
    gaps = oracle.support_oracle_cg(problem, ref, 1)
    A, b, lam = (t.numpy() for t in (problem.A, problem.b, problem.lam))
    for i in range(problem.batch_size):
        x_star = ref.x[i].numpy()
        S = x_star != 0
        G = A[:, S].T @ A[:, S]
        c = A[:, S].T @ b[i] - lam[i] * np.sign(x_star[S])
        z = (c @ c) / (c @ G @ c) * c
        q = lambda v: 0.5 * v @ G @ v - c @ v  # noqa: E731
        expected = (q(z) - q(x_star[S])) / float(ref.gap_denominator[i])
        assert float(gaps["q"][0, i]) == pytest.approx(expected, rel=1e-10, abs=1e-14)


def test_sign_identification_marks_the_first_iteration_with_the_optimal_signs(batch):
    problem, ref = batch
    first = oracle.sign_identification(make_solver("fista_restart"), problem, ref, 300)
    assert bool((first > 0).all())
    solver = make_solver("fista_restart")
    state = solver.init(problem, problem.initial_point())
    target = torch.sign(ref.x)
    for k in range(1, int(first.max()) + 1):
        state = solver.step(problem, state)
        same = (torch.sign(state.x) == target).all(-1)
        assert bool(same[first == k].all())
        assert not bool(same[first > k].any())
    assert bool((oracle.sign_identification(make_solver("fista_restart"), problem, ref, 1) == -1).all())


def test_first_iteration_helpers():
    gaps = torch.tensor([[1.0, 1.0], [1e-5, 1.0], [1e-5, 1e-5]])
    assert oracle.first_iteration_all(gaps, 1e-4) == 3
    assert oracle.first_iteration_median(gaps, 1e-4) == 2  # lower median of (2, 3)
    assert oracle.first_iteration_all(gaps[:2], 1e-4) is None
    assert oracle.first_iteration_median(gaps[:2], 1e-4) is None


def test_support_condition_numbers_match_numpy(batch):
    problem, ref = batch
    kappa = oracle.support_condition_numbers(problem, ref)
    A = problem.A.numpy()
    for i in range(problem.batch_size):
        S = ref.x[i].numpy() != 0
        assert float(kappa[i]) == pytest.approx(np.linalg.cond(A[:, S]) ** 2, rel=1e-8)
