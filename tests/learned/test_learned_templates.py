"""Template equivalences: an untrained (or template-initialized) learned solver is the
classical method it generalizes, exactly (float64, max abs difference <= 1e-12 over
30 steps; LISTA / ALISTA run past their 16 layers)."""

from __future__ import annotations

import pytest
import torch

import l2o
from l2o.learned import ALISTA, LGD, LISTA, MathL2O
from l2o.optimizers import ISTA, GradientDescent

B = 4
STEPS = 30
LASSO = l2o.LassoFamily(m=20, n=40, nnz=4, lam=0.1)




def lasso():
    return LASSO.sample(B, 0)


def least_squares():
    return l2o.LeastSquaresFamily(d=10, m=16, noise_std=0.1).sample(B, 0)


def starts(p):
    g = torch.Generator().manual_seed(1)
    return {"zero": torch.zeros(p.batch_size, p.dim, dtype=p.dtype),
            "random": torch.randn(p.batch_size, p.dim, generator=g, dtype=p.dtype)}


def max_gap(learned, classical, p, steps=STEPS) -> float:
    """Largest |x_learned - x_classical| over ``steps`` steps and both starts."""
    worst = 0.0
    with torch.no_grad():
        for x0 in starts(p).values():
            s, r = learned.init(p, x0), classical.init(p, x0)
            for _ in range(steps):
                s, r = learned.step(p, s), classical.step(p, r)
                worst = max(worst, float((s.x - r.x).abs().max()))
    return worst


def test_lgd_untrained_is_gd():
    p = least_squares()
    assert max_gap(LGD(hidden=64).double(), GradientDescent(step_scale=0.9999), p) <= 1e-12


@pytest.mark.parametrize("make_problem", [lasso, least_squares], ids=["lasso", "least_squares"])
def test_math_l2o_template_is_ista(make_problem):
    p = make_problem()
    assert max_gap(MathL2O(variant="P", init="template").double(), ISTA(), p) <= 1e-12
    model = MathL2O(variant="P").double()  # the method form of the same initialization
    model.template_init()
    assert max_gap(model, ISTA(), p) <= 1e-12
    scaled = MathL2O(variant="P", init="template", step_scale=0.5).double()
    assert max_gap(scaled, ISTA(step_scale=0.5), p) <= 1e-12


@pytest.mark.parametrize("variant", ["PA", "full"])
def test_math_l2o_template_with_momentum_heads_is_nearly_ista(variant):
    """A = 2 sigma(-30) ~ 2e-13 cannot be exactly 0: ISTA up to ~1e-13 relative momentum."""
    assert max_gap(MathL2O(variant=variant, init="template").double(), ISTA(), lasso()) <= 1e-10


def test_lista_untrained_is_ista():
    assert max_gap(LISTA(LASSO, dtype=torch.float64), ISTA(), lasso()) <= 1e-12


def test_alista_with_A_as_weight_is_ista():
    p = lasso()
    L = float(p.smoothness()[0])
    explicit = ALISTA(LASSO, weight="A", gamma=1 / L, theta=LASSO.lam / L, dtype=torch.float64)
    assert max_gap(explicit, ISTA(), p) <= 1e-12
    default = ALISTA(LASSO, weight="A", dtype=torch.float64)  # the defaults are these values
    assert max_gap(default, ISTA(), p) <= 1e-12


def test_analytic_alista_is_not_ista_but_converges():
    """Sanity check of the other branch: analytic W differs from ISTA and still reduces F."""
    p = lasso()
    model = ALISTA(LASSO, dtype=torch.float64)
    assert max_gap(model, ISTA(), p, steps=5) > 1e-6
    with torch.no_grad():
        s = model.init(p, torch.zeros(B, p.dim, dtype=p.dtype))
        for _ in range(STEPS):
            s = model.step(p, s)
    assert bool((p.objective(s.x) < p.objective(torch.zeros_like(s.x))).all())
