"""ALISTA's analytic weight: W = argmin ||W^T A||_F s.t. diag(W^T A) = 1 (closed form)."""

from __future__ import annotations

import pytest
import torch

import l2o
from l2o.learned import ALISTA, analytic_weight


def off_diagonal(M: torch.Tensor) -> torch.Tensor:
    return M - torch.diag_embed(torch.diagonal(M))


@pytest.mark.parametrize("m,n,seed", [(20, 40, 0), (50, 100, 3), (250, 500, 0)])
def test_analytic_weight_constraint_optimality_and_coherence(m, n, seed):
    A = l2o.LassoFamily(m=m, n=n, nnz=1, dictionary_seed=seed).dictionary()  # unit-norm columns
    W = analytic_weight(A)
    WA = W.mT @ A
    # the constraint w_i^T a_i = 1
    assert torch.allclose(torch.diagonal(WA), torch.ones(n, dtype=torch.float64), rtol=0, atol=1e-12)
    # optimality (Lagrange): A A^T w_i is parallel to a_i, i.e. A A^T W = A diag(mu)
    AAW = A @ A.mT @ W
    mu = (AAW * A).sum(0)  # unit columns: mu_i = a_i^T A A^T w_i
    assert (AAW - A * mu).abs().max() <= 1e-10 * AAW.abs().max()
    # W = A is feasible (unit columns), so the optimum's off-diagonal mass is no larger ...
    assert torch.linalg.norm(off_diagonal(WA)) < torch.linalg.norm(off_diagonal(A.mT @ A))
    # ... and, as the paper reports, the generalized coherence is lower than A's
    assert off_diagonal(WA).abs().max() < off_diagonal(A.mT @ A).abs().max()


def test_alista_stores_the_analytic_weight():
    fam = l2o.LassoFamily(m=20, n=40, nnz=4)
    model = ALISTA(fam, dtype=torch.float64)
    assert torch.equal(model.W, analytic_weight(fam.dictionary()))
    assert torch.equal(ALISTA(fam, weight="A", dtype=torch.float64).W, fam.dictionary())
    # default step 1/||W^T A||_2 and threshold lam * step, for every layer
    g = 1.0 / torch.linalg.matrix_norm(model.W.mT @ model.A, 2)
    assert torch.allclose(model.gamma, g.expand(16)) and torch.allclose(model.theta, fam.lam * g.expand(16))


def test_analytic_weight_of_a_nonunit_dictionary_still_meets_the_constraint():
    A = torch.randn(15, 30, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 3.0
    W = analytic_weight(A)
    assert torch.allclose(torch.diagonal(W.mT @ A), torch.ones(30, dtype=torch.float64), atol=1e-12)


def test_zero_column_is_refused():
    A = torch.randn(10, 20, dtype=torch.float64)
    A[:, 3] = 0
    with pytest.raises(ValueError, match="zero column"):
        analytic_weight(A)


def test_support_selection_passes_the_largest_entries_unshrunk():
    from l2o.learned.lista import shrink

    v = torch.tensor([[3.0, -2.0, 0.5, -0.05, 1.0, 0.0, 0.2, -4.0, 0.1, 0.3]], dtype=torch.float64)
    theta = torch.tensor(0.25, dtype=torch.float64)
    soft = torch.sign(v) * (v.abs() - theta).clamp(min=0)
    assert torch.equal(shrink(v, theta, 0.0), soft)
    assert torch.equal(shrink(v, theta, 5.0), soft)  # floor(5% of 10) = 0 entries selected
    out = shrink(v, theta, 30.0)  # the 3 largest |v| (4, 3, 2) pass unchanged
    expected = soft.clone()
    expected[0, [0, 1, 7]] = v[0, [0, 1, 7]]
    assert torch.equal(out, expected)
    # an entry among the largest but below the threshold is still set to zero
    small = torch.tensor([[0.2, 0.1, 0.0, 0.0]], dtype=torch.float64)
    assert torch.equal(shrink(small, theta, 50.0), torch.zeros_like(small))


def test_support_selection_grows_with_the_layer_and_stops_at_the_maximum():
    model = ALISTA(l2o.LassoFamily(m=20, n=40, nnz=4), horizon=16, support_selection=True)
    assert [model.percent(k) for k in (0, 1, 9, 10, 15, 40)] == pytest.approx([1.2, 2.4, 12.0, 13.0, 13.0, 13.0])
    assert ALISTA(l2o.LassoFamily(m=20, n=40, nnz=4)).percent(5) == 0.0
