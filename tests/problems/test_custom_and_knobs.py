"""AutogradInstances (bring your own objective) and the conditioning knobs."""

import numpy as np
import pytest
import torch

from l2o import LassoFamily, LogisticFamily, make_solver, run
from l2o.evaluation import reference
from l2o.problems.custom import AutogradInstances
from l2o.problems.parts import L1


def test_autograd_instances_match_the_lasso_class():
    fam = LassoFamily(m=20, n=30, nnz=4, lam=0.05)
    lasso = fam.sample(3, 1)
    A, b = lasso.A, lasso.b
    custom = AutogradInstances(
        lambda x: 0.5 * (x @ A.mT - b).square().sum(-1), batch_size=3, dim=30,
        smoothness=lasso.smoothness(), penalty=L1(lasso.lam),
    )
    x = torch.randn(3, 30, dtype=torch.float64)
    torch.testing.assert_close(custom.objective(x), lasso.objective(x))
    torch.testing.assert_close(custom.grad(x), lasso.grad(x))
    torch.testing.assert_close(custom.prox(x, 0.3), lasso.prox(x, 0.3))
    ref_custom, ref_lasso = reference(custom), reference(lasso)
    torch.testing.assert_close(ref_custom.objective, ref_lasso.objective, rtol=1e-9, atol=0)
    tr = run(make_solver("fista_restart"), custom, max_iter=300, reference=ref_custom)
    assert float(tr.gap[-1].max()) < 1e-8


def test_autograd_instances_smooth_reference_against_closed_form():
    # f(x) = 1/2 ||x - c||^2 + 1/4 sum x^4 is smooth on a bounded set; its minimizer solves
    # x - c + x^3 = 0 coordinatewise (a cubic with one real root), checked with numpy.
    c = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]], dtype=torch.float64)
    prob = AutogradInstances(lambda x: 0.5 * (x - c).square().sum(-1) + 0.25 * x.pow(4).sum(-1), 2, 3,
                             smoothness=1 + 3 * 9.0)
    ref = reference(prob)
    roots = np.array([[np.real([r for r in np.roots([1, 0, 1, -ci]) if abs(r.imag) < 1e-12][0]) for ci in row]
                      for row in c.numpy()])
    np.testing.assert_allclose(ref.x.numpy(), roots, atol=1e-8)


def test_autograd_instances_reject_bad_smoothness_and_sub_batching():
    with pytest.raises(ValueError, match="smoothness"):
        AutogradInstances(lambda x: x.sum(-1), 2, 3, smoothness=0.0)
    prob = AutogradInstances(lambda x: x.square().sum(-1), 2, 3, smoothness=2.0)
    with pytest.raises(NotImplementedError, match="sub-batched"):
        prob.index(torch.tensor([0]))


@pytest.mark.parametrize("family", [LassoFamily(m=40, n=60, nnz=5), LogisticFamily(n_samples=80, d=20, nnz=4)])
def test_correlation_knob_worsens_conditioning(family):
    def cond(fam):
        inst = fam.sample(2, 0)
        X = inst.A if hasattr(inst, "A") else inst.X
        X = X if X.ndim == 3 else X.unsqueeze(0)
        s = torch.linalg.svdvals(X[0][:, : min(X.shape[-2:])])
        return float(s[0] / s[-1])

    assert cond(family.replace(correlation=0.9)) > 3 * cond(family)
    with pytest.raises(ValueError, match="correlation"):
        family.replace(correlation=1.0)
