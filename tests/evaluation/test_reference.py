"""``l2o.reference``: certified optima from a closed form or the declared reference solver.

Cross-solver agreement (closed form vs ``fista_polish`` vs ``newton`` run by ``solve``),
the methods and the gap denominator, no caching on the instances, the error when the
reference is not certified, shifted instances, and the temporary MIMO hook.
"""

from __future__ import annotations

import pytest
import torch

import l2o
from l2o.evaluation import Certificate, Reference, reference, solve
from l2o.problems import GAP_FLOOR, Instances
from l2o.problems.lasso import LeastSquaresInstances
from l2o.problems.shift import shifted
from l2o.registry import make_solver


def solved(solver_name: str, p: Instances, tol: float = 1e-12, max_iter: int = 20_000, **kwargs) -> torch.Tensor:
    res = solve(make_solver(solver_name, **kwargs), p, stop=Certificate(tol), max_iter=max_iter,
                check_every=1 if solver_name == "newton" else 10)
    assert bool(res.converged.all()), solver_name
    return res.x


def test_qp_closed_form_agrees_with_fista_polish_and_newton():
    p = l2o.QuadraticFamily(n=20, condition_number=50.0).sample(4, 0)
    ref = reference(p)
    assert ref.method == "closed form (Cholesky)" and ref.x.dtype == torch.float64
    for name in ("fista_polish", "newton"):
        torch.testing.assert_close(solved(name, p), ref.x, rtol=0, atol=1e-9)


def test_least_squares_closed_form_agrees_with_newton_and_fista_polish():
    g = torch.Generator().manual_seed(1)
    A = torch.randn(30, 10, generator=g, dtype=torch.float64)  # overdetermined: a unique minimizer
    p = LeastSquaresInstances(A, torch.randn(3, 30, generator=g, dtype=torch.float64))
    ref = reference(p)
    assert ref.method == "closed form (pseudo-inverse)"
    for name in ("fista_polish", "newton"):
        torch.testing.assert_close(solved(name, p), ref.x, rtol=0, atol=1e-9)


@pytest.mark.parametrize("family", [l2o.LassoFamily(m=40, n=80, nnz=6),
                                    l2o.QuadraticFamily(n=30, condition_number=50.0, box=0.1)])
def test_declared_solver_agrees_with_fista_polish(family):
    p = family.sample(4, 2)
    ref = reference(p, tol=1e-12)
    assert bool((ref.certificate <= 1e-12).all())
    torch.testing.assert_close(solved("fista_polish", p), ref.x, rtol=0, atol=1e-6)
    assert "<= 1e-12" in ref.method and ref.method.startswith(
        "FISTA with adaptive restart" if family.name == "lasso" else "accelerated projected gradient")


def test_ridge_logistic_newton_reference_agrees_with_lbfgs():
    p = l2o.LogisticFamily(n_samples=200, d=10, nnz=5, penalty="l2").sample(3, 0)
    assert p.reference_solver == "newton"
    ref = reference(p, tol=1e-12)
    assert ref.method == "Newton with line search to relative duality gap <= 1e-12"
    torch.testing.assert_close(solved("lbfgs", p), ref.x, rtol=0, atol=1e-5)
    l1 = l2o.LogisticFamily(n_samples=200, d=10, nnz=5).sample(3, 0)
    assert l1.reference_solver == "fista_restart"
    assert reference(l1).method == "FISTA with adaptive restart to relative duality gap <= 1e-10"


def test_gap_denominator_rule_and_float64():
    """max(|F*|, GAP_FLOOR (F(p0) - F*)), p0 the projection of the origin; float32 instances
    get a float64 reference of their float64 copy."""
    p = l2o.LassoFamily(m=20, n=40, nnz=4).sample(3, 0)
    ref = reference(p.to(dtype=torch.float32))
    exact = p.to(dtype=torch.float32).as_float64()
    assert isinstance(ref, Reference) and ref.x.dtype == torch.float64
    f0 = exact.objective(torch.zeros(3, 40, dtype=torch.float64))
    expected = torch.maximum(ref.objective.abs(), GAP_FLOOR * (f0 - ref.objective).abs())
    torch.testing.assert_close(ref.gap_denominator, expected, rtol=0, atol=0)
    torch.testing.assert_close(ref.objective, exact.objective(ref.x), rtol=0, atol=0)
    torch.testing.assert_close(ref.relative_gap(ref.objective), torch.zeros(3, dtype=torch.float64))


def test_nothing_is_cached_on_the_instances():
    p = l2o.LassoFamily(m=20, n=40, nnz=4).sample(3, 0)
    p.smoothness()  # its own cache, filled before
    before = dict(vars(p))
    a, b = reference(p), reference(p)
    assert set(vars(p)) == set(before)
    assert a is not b and torch.equal(a.x, b.x)


def test_an_uncertified_reference_is_an_error():
    p = l2o.LassoFamily(m=20, n=40, nnz=4).sample(3, 0)
    with pytest.raises(RuntimeError, match=r"did not certify 3 of 3 instances to 1e-12 in 5 iterations"):
        reference(p, tol=1e-12, max_iter=5)


def test_reference_index_is_the_reference_of_the_sub_batch():
    p = l2o.QuadraticFamily(n=10).sample(5, 0)
    ref, idx = reference(p), torch.tensor([3, 0])
    sub = ref.index(idx)
    for field in ("x", "objective", "certificate", "gap_denominator"):
        assert torch.equal(getattr(sub, field), getattr(ref, field)[idx])
    assert sub.method == ref.method


def test_shifted_reference_is_the_inner_one_moved():
    p = l2o.LassoFamily(m=20, n=40, nnz=4).sample(3, 0)
    sh = shifted(p, 0.5)
    ref, sh_ref = reference(p), reference(sh)
    torch.testing.assert_close(sh_ref.x, ref.x - 0.5, rtol=0, atol=0)
    assert sh_ref.method == ref.method + " (shifted)"


def test_autograd_instances_declare_their_solver():
    c = torch.tensor([[1.0, -2.0], [0.5, 0.0]], dtype=torch.float64)
    smooth = l2o.AutogradInstances(lambda x: 0.5 * (x - c).square().sum(-1), 2, 2, smoothness=1.0)
    assert smooth.reference_solver == "lbfgs"
    ref = reference(smooth)
    assert ref.method == "lbfgs to relative fixed-point residual <= 1e-10"
    torch.testing.assert_close(ref.x, c, rtol=0, atol=1e-9)


class _MultiStart(LeastSquaresInstances):
    """Least squares declaring a multi-start reference (as nonconvex families do)."""

    reference_solver = "nesterov"
    reference_rtol = 0.0
    reference_max_iter = 400

    def reference_starts(self):
        zero = torch.zeros(self.batch_size, self.dim, dtype=self.dtype)
        return [("zero", zero), ("far", zero + 10.0)]


def test_declared_starts_give_the_best_of_the_runs_from_them():
    g = torch.Generator().manual_seed(0)
    p = _MultiStart(
        torch.randn(8, 3, generator=g, dtype=torch.float64), torch.randn(2, 8, generator=g, dtype=torch.float64)
    )
    ref = reference(p)
    assert ref.method.startswith("best of NESTEROV runs from zero, far") and "not certified global" in ref.method
    exact = LeastSquaresInstances(p.A, p.b).closed_form()[0]
    torch.testing.assert_close(ref.x, exact, rtol=0, atol=1e-8)
    torch.testing.assert_close(ref.objective, p.objective(ref.x))


def test_mimo_references_are_the_best_of_several_wmmse_runs():
    p = l2o.problems.MimoFamily(cells=2, users=2, tx_antennas=4, rx_antennas=2, streams=1).sample(2, 0)
    ref = reference(p)
    assert "local optimum" in ref.method and "WMMSE" in ref.method
    torch.testing.assert_close(-ref.objective, p.sum_rate(ref.x))


@pytest.mark.parametrize("family", [l2o.LassoFamily(m=40, n=80, nnz=6),
                                    l2o.QuadraticFamily(n=30, condition_number=50.0, box=0.1)])
def test_iterative_references_are_polished_to_the_exact_optimum(family):
    """The solver stops at certificate <= tol; the active-set polish then lands on the optimum
    itself wherever it verifies the optimality conditions."""
    p = family.sample(4, 1)
    ref = reference(p, tol=1e-6)
    assert ref.method.endswith("then polished on its active set where that verifies optimality")
    assert bool((ref.certificate <= 1e-12).all())
    torch.testing.assert_close(ref.x, solved("fista_polish", p), rtol=0, atol=1e-8)
