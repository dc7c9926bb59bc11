"""Stopping criteria (``l2o.evaluation.stopping``), each against a hand-computed case.

The case: QPs with Q = I (L = 1, r = 0), so the gradient mapping is the gradient
x + q, the certificate and the fixed-point residual are ||x + q|| / ||q||, and with
q = (3, 4) (||q|| = 5) the point x = -q + (0, 0.5) has residual 0.5 / 5 = 0.1.
"""

from __future__ import annotations

import math

import pytest
import torch

import l2o
from l2o.evaluation import Certificate, RelativeChange, Residual


def identity_qp(dtype=torch.float64):
    q = torch.tensor([[3.0, 4.0], [3.0, 4.0], [3.0, 4.0]], dtype=dtype)
    return l2o.QuadraticInstances(torch.eye(2, dtype=dtype), q)


def points(dtype=torch.float64):
    """Residuals 0.1, 0.02 and NaN."""
    return torch.tensor([[-3.0, -3.5], [-3.0, -4.1], [math.nan, 0.0]], dtype=dtype)


def test_the_hand_computed_case():
    p, x = identity_qp(), points()
    torch.testing.assert_close(p.certificate(x)[:2], torch.tensor([0.1, 0.02], dtype=torch.float64))
    torch.testing.assert_close(p.fixed_point_residual(x)[:2], torch.tensor([0.1, 0.02], dtype=torch.float64))


def test_certificate():
    p, x = identity_qp(), points()
    assert Certificate(0.1).float64 and not Certificate(0.1).needs_previous
    assert Certificate(0.1).done(p, x).tolist() == [True, True, False]  # <= tol; NaN is never done
    assert Certificate(0.05).done(p, x).tolist() == [False, True, False]
    assert Certificate(0.01).done(p, x).tolist() == [False, False, False]
    assert Certificate(0.05).done(p, x).dtype == torch.bool


def test_residual_in_the_working_dtype():
    p, x = identity_qp(torch.float32), points(torch.float32)
    assert not Residual(0.1).float64
    assert Residual(0.1001).done(p, x).tolist() == [True, True, False]
    assert Residual(0.05).done(p, x).tolist() == [False, True, False]
    assert Residual(0.01).done(p, x).tolist() == [False, False, False]


def test_relative_change():
    of = lambda problem, x: x.sum(-1)  # noqa: E731
    p = identity_qp()
    previous = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)  # q = 1, 1, 0
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)  # q = 1, 2, 0: changes 0, 1, 0
    stop = RelativeChange(0.5, of=of)
    assert stop.needs_previous and not stop.float64
    assert stop.done(p, x, previous).tolist() == [True, True, True]  # |2 - 1| <= 0.5 * 2
    assert RelativeChange(0.49, of=of).done(p, x, previous).tolist() == [True, False, True]
    assert RelativeChange(0.0, of=of).done(p, x, previous).tolist() == [True, False, True]  # only no change
    assert stop.done(p, x, None).tolist() == [False, False, False]  # nothing to compare with at the start


@pytest.mark.parametrize("make", [Certificate, Residual])
@pytest.mark.parametrize("tol", [0.0, -1e-8, math.nan])
def test_tolerances_must_be_positive(make, tol):
    with pytest.raises(ValueError, match="tol"):
        make(tol)


def test_relative_change_rejects_a_negative_rtol():
    with pytest.raises(ValueError, match="rtol"):
        RelativeChange(-1e-9, of=lambda p, x: x.sum(-1))
