"""Behaviour shared by every family: batch layout (index, to), seeding and dtypes,
hyperparameter validation, the objective shift F(x + t) and the initial-point shift.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from l2o.evaluation import reference
from l2o.problems import (
    DatasetLogisticFamily,
    LassoFamily,
    LeastSquaresFamily,
    LeastSquaresInstances,
    LogisticFamily,
    LogisticInstances,
    QuadraticFamily,
    QuadraticInstances,
    ShiftedInstances,
    make_generator,
)
from l2o.problems.shift import shifted

FAMILIES = {
    "qp_shared": QuadraticFamily(n=6, condition_number=50.0),
    "qp_box_per_instance": QuadraticFamily(n=6, condition_number=20.0, shared_matrix=False, box=0.3),
    "lasso_shared_gram": LassoFamily(m=6, n=10, nnz=3, lam=0.1, noise_std=0.01),
    "lasso_shared_wide": LassoFamily(m=4, n=10, nnz=3, lam=0.1),
    "lasso_per_instance": LassoFamily(m=6, n=10, nnz=3, lam=0.1, shared_matrix=False),
    "ls_per_instance": LeastSquaresFamily(d=8, m=6),
    "ls_shared": LeastSquaresFamily(d=8, m=6, shared_matrix=True),
    "logistic_l1": LogisticFamily(n_samples=30, d=5, nnz=2, lam=0.02),
    "logistic_l2": LogisticFamily(n_samples=30, d=5, nnz=2, lam=0.05, penalty="l2", noise_std=0.5),
    "dataset_l1": DatasetLogisticFamily(subsample=0.2, lam=0.05),
    "dataset_full_l2": DatasetLogisticFamily(subsample=1.0, lam=0.05, penalty="l2"),
}
families = pytest.mark.parametrize("family", list(FAMILIES.values()), ids=list(FAMILIES))




def data(inst) -> list[torch.Tensor]:
    """The tensors that define a batch."""
    if isinstance(inst, ShiftedInstances):
        return data(inst.inner) + [inst.t]
    if isinstance(inst, QuadraticInstances):
        return [inst.Q, inst.q] + [t for t in (inst.lower, inst.upper) if t is not None]
    if isinstance(inst, LeastSquaresInstances):
        return [inst.A, inst.b, inst.lam]
    if isinstance(inst, LogisticInstances):
        return [inst.X, inst.y, inst.lam]
    raise TypeError(type(inst))


def has_hessian(inst) -> bool:
    try:
        inst.hessian(torch.zeros(inst.batch_size, inst.dim, dtype=inst.dtype))
    except NotImplementedError:
        return False
    return True


def evaluate(inst, x: torch.Tensor, step: torch.Tensor) -> dict[str, torch.Tensor]:
    """Everything an instance answers at a point, per instance (first dim B)."""
    value, grad = inst.value_and_grad(x)
    out = {
        "objective": inst.objective(x),
        "smooth_objective": inst.smooth_objective(x),
        "nonsmooth_objective": inst.nonsmooth_objective(x),
        "grad": inst.grad(x),
        "value": value,
        "value_and_grad": grad,
        "prox": inst.prox(x, step),
        "prox_elementwise": inst.prox(x, step.unsqueeze(-1) * torch.linspace(0.5, 1.5, inst.dim, dtype=x.dtype)),
        "smoothness": inst.smoothness(),
        "strong_convexity": inst.strong_convexity(),
        "certificate": inst.certificate(x),
        "gradient_mapping": inst.gradient_mapping(x),
        "initial_point": inst.initial_point(),
    }
    if has_hessian(inst):
        out["hessian"] = inst.hessian(x)
    return out


def feasible_point(inst, g, scale=1.0) -> torch.Tensor:
    raw = scale * torch.randn(inst.batch_size, inst.dim, generator=g, dtype=torch.float64).to(inst.dtype)
    return inst.prox(raw, torch.full((inst.batch_size,), 0.05, dtype=inst.dtype))


def _wishart_qp(B: int, seed: int) -> QuadraticInstances:
    g = make_generator(seed)
    W = torch.randn(B, 6, 8, generator=g, dtype=torch.float64)
    return QuadraticInstances(W @ W.mT / 8, torch.randn(B, 6, generator=g, dtype=torch.float64))


def _lasso_lam_per_instance(B: int, seed: int) -> LeastSquaresInstances:
    g = make_generator(seed)
    A = torch.randn(5, 7, generator=g, dtype=torch.float64)
    b = torch.randn(B, 5, generator=g, dtype=torch.float64)
    return LeastSquaresInstances(A, b, torch.rand(B, generator=g, dtype=torch.float64) + 0.05)


def _logistic_lam_per_instance(B: int, seed: int) -> LogisticInstances:
    g = make_generator(seed)
    X = torch.randn(20, 4, generator=g, dtype=torch.float64)
    y = torch.where(torch.rand(B, 20, generator=g) < 0.5, 1.0, -1.0).to(torch.float64)
    return LogisticInstances(X, y, torch.rand(B, generator=g, dtype=torch.float64) * 0.1 + 0.01, "l2")


# Instances whose per-instance constants (L, mu, lam) differ from row to row, which the
# families' own data do not always do (their QP spectra are exactly [1, kappa]).
SOURCES = {
    **{name: (lambda B, seed, f=f: f.sample(B, seed)) for name, f in FAMILIES.items()},
    "qp_wishart": _wishart_qp,
    "lasso_lam_per_instance": _lasso_lam_per_instance,
    "logistic_lam_per_instance": _logistic_lam_per_instance,
}


# ----- index ----------------------------------------------------------------------------------


@pytest.mark.parametrize("make", list(SOURCES.values()), ids=list(SOURCES))
@pytest.mark.parametrize("cached", [False, True], ids=["fresh", "cached"])
def test_index_gives_the_rows_of_the_full_batch(make, cached):
    inst = make(5, 1)
    if cached:  # index() copies cached constants (L, eigenvalues): they must be the right rows
        inst.smoothness(), inst.strong_convexity()
    g = make_generator(2)
    x = feasible_point(inst, g)
    step = torch.rand(5, generator=g, dtype=torch.float64) + 0.1
    idx = torch.tensor([3, 0, 3, 4])
    sub = inst.index(idx)
    assert sub.batch_size == 4 and sub.dim == inst.dim and sub.dtype == inst.dtype
    full_values = evaluate(inst, x, step)
    sub_values = evaluate(sub, x[idx], step[idx])
    assert full_values.keys() == sub_values.keys()
    for key, value in full_values.items():
        torch.testing.assert_close(sub_values[key], value[idx], rtol=1e-12, atol=1e-14, msg=key)


@families
def test_reference_is_batch_invariant(family):
    inst = family.sample(4, 3)
    idx = torch.tensor([2, 0])
    ref, sub_ref = reference(inst), reference(inst.index(idx))
    torch.testing.assert_close(sub_ref.objective, ref.objective[idx], rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(sub_ref.gap_denominator, ref.gap_denominator[idx], rtol=1e-9, atol=1e-14)
    assert bool((ref.certificate <= 1e-10).all()) and bool((sub_ref.certificate <= 1e-10).all())


# ----- dtypes and seeds ------------------------------------------------------------------------------


@families
def test_to_float32_gives_close_values(family):
    inst = family.sample(3, 4)
    inst32 = inst.to(dtype=torch.float32)
    assert inst32.dtype == torch.float32 and all(t.dtype == torch.float32 for t in data(inst32))
    for a, b in zip(data(inst32), data(inst)):
        assert torch.equal(a, b.to(torch.float32))
    g = make_generator(5)
    x = feasible_point(inst, g)
    step = torch.rand(3, generator=g, dtype=torch.float64) + 0.1
    v64 = evaluate(inst, x, step)
    v32 = evaluate(inst32, x.float(), step.float())
    for key, value in v64.items():
        assert v32[key].dtype == torch.float32, key
        scale = float(value.abs().max()) + 1e-3
        torch.testing.assert_close(v32[key].double(), value, rtol=1e-4, atol=1e-5 * scale, msg=key)
    # The reference of a float32 batch is computed in float64 and equals the float64 one.
    ref32, ref64 = reference(inst32), reference(inst)
    assert ref32.x.dtype == ref32.objective.dtype == torch.float64
    torch.testing.assert_close(ref32.objective, ref64.objective, rtol=1e-6, atol=1e-9)
    # Round trip.
    for a, b in zip(data(inst32.to(dtype=torch.float64)), data(inst)):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@families
def test_sampling_is_deterministic_in_the_seed(family):
    a, b = family.sample(4, 123), family.sample(4, 123)
    for s, t in zip(data(a), data(b)):
        assert torch.equal(s, t)
    # A generator and its seed give the same batch; no seed means seed 0.
    for s, t in zip(data(family.sample(4, make_generator(123))), data(a)):
        assert torch.equal(s, t)
    for s, t in zip(data(family.sample(4)), data(family.sample(4, 0))):
        assert torch.equal(s, t)
    deterministic_by_design = isinstance(family, DatasetLogisticFamily) and family.subsample == 1.0
    if not deterministic_by_design:
        other = family.sample(4, 124)
        assert any(not torch.equal(s, t) for s, t in zip(data(a), data(other)))
        # Drawing twice from one generator gives two different batches.
        g = make_generator(7)
        first, second = family.sample(4, g), family.sample(4, g)
        assert any(not torch.equal(s, t) for s, t in zip(data(first), data(second)))


@families
def test_float32_sampling_is_float64_sampling_cast(family):
    inst64 = family.sample(3, 9)
    inst32 = family.sample(3, 9, dtype=torch.float32)
    assert inst32.dtype == torch.float32 and inst32.device == torch.device("cpu")
    for a, b in zip(data(inst32), data(inst64)):
        assert a.dtype == torch.float32 and torch.equal(a, b.to(torch.float32))


def test_sample_rejects_a_bad_batch_size():
    for bad in (0, -2, 2.0):
        with pytest.raises(ValueError, match="batch_size"):
            LassoFamily(m=4, n=6, nnz=2).sample(bad)


# ----- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "factory, changes, field",
    [
        (QuadraticFamily, {"n": 0}, "n"),
        (QuadraticFamily, {"n": 2.5}, "n"),
        (QuadraticFamily, {"condition_number": 0.5}, "condition_number"),
        (QuadraticFamily, {"box": -1.0}, "box"),
        (LassoFamily, {"m": 0}, "m"),
        (LassoFamily, {"n": -1}, "n"),
        (LassoFamily, {"nnz": 501}, "nnz"),
        (LassoFamily, {"nnz": -1}, "nnz"),
        (LassoFamily, {"lam": -0.1}, "lam"),
        (LeastSquaresFamily, {"d": 0}, "d"),
        (LeastSquaresFamily, {"m": 1.5}, "m"),
        (LogisticFamily, {"n_samples": 0}, "n_samples"),
        (LogisticFamily, {"d": 0}, "d"),
        (LogisticFamily, {"penalty": "l3"}, "penalty"),
        (LogisticFamily, {"lam": -1.0}, "lam"),
        (LogisticFamily, {"nnz": 51}, "nnz"),
        (DatasetLogisticFamily, {"dataset": "iris"}, "dataset"),
        (DatasetLogisticFamily, {"penalty": "elasticnet"}, "penalty"),
        (DatasetLogisticFamily, {"lam": -1.0}, "lam"),
        (DatasetLogisticFamily, {"subsample": 0.0}, "subsample"),
        (DatasetLogisticFamily, {"subsample": 1.5}, "subsample"),
    ],
)
def test_validate_names_the_bad_field(factory, changes, field):
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        factory(**changes)
    # replace() builds a new dataclass, so it validates too.
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        factory().replace(**changes)


def test_families_are_frozen():
    family = LassoFamily()
    with pytest.raises(dataclasses.FrozenInstanceError):
        family.lam = 0.5  # type: ignore[misc]
    assert family.replace(lam=0.5).lam == 0.5 and family.lam == 0.1


# ----- objective shift ---------------------------------------------------------------------------------


def shift_vector(kind: str, inst, g) -> float | torch.Tensor:
    if kind == "scalar":
        return 2.5
    if kind == "vector":
        return torch.randn(inst.dim, generator=g, dtype=torch.float64)
    return torch.randn(inst.batch_size, inst.dim, generator=g, dtype=torch.float64)


@families
@pytest.mark.parametrize("kind", ["scalar", "vector", "per_instance"])
def test_shifted_instances_are_the_inner_problem_moved_by_t(family, kind):
    inst = family.sample(3, 6)
    g = make_generator(8)
    t = shift_vector(kind, inst, g)
    tt = torch.as_tensor(t, dtype=torch.float64)
    sh = shifted(inst, t)
    assert isinstance(sh, ShiftedInstances)
    assert (sh.batch_size, sh.dim, sh.dtype) == (inst.batch_size, inst.dim, inst.dtype)
    assert (sh.has_nonsmooth, sh.is_constrained) == (inst.has_nonsmooth, inst.is_constrained)
    x = feasible_point(inst, g)  # a point of the inner problem; x - t is the same point for G
    tol = dict(rtol=1e-12, atol=1e-12 * (1 + float(tt.abs().max())))
    torch.testing.assert_close(sh.objective(x - tt), inst.objective(x), **tol)
    torch.testing.assert_close(sh.smooth_objective(x - tt), inst.smooth_objective(x), **tol)
    torch.testing.assert_close(sh.nonsmooth_objective(x - tt), inst.nonsmooth_objective(x), **tol)
    torch.testing.assert_close(sh.grad(x - tt), inst.grad(x), **tol)
    value, grad = sh.value_and_grad(x - tt)
    torch.testing.assert_close(value, inst.smooth_objective(x), **tol)
    torch.testing.assert_close(grad, inst.grad(x), **tol)
    torch.testing.assert_close(sh.certificate(x - tt), inst.certificate(x), rtol=1e-9, atol=1e-12)
    if has_hessian(inst):
        torch.testing.assert_close(sh.hessian(x - tt), inst.hessian(x), **tol)
    torch.testing.assert_close(sh.smoothness(), inst.smoothness(), rtol=0, atol=0)
    torch.testing.assert_close(sh.strong_convexity(), inst.strong_convexity(), rtol=0, atol=0)
    # prox_{s r(. + t)}(v - t) = prox_{s r}(v) - t, for a (B,) and a (B, n) step.
    v = 0.5 * torch.randn(3, inst.dim, generator=g, dtype=torch.float64)
    steps = (torch.tensor([0.3, 1.0, 2.0], dtype=torch.float64),
             torch.rand(3, inst.dim, generator=g, dtype=torch.float64) + 0.1)
    for step in steps:
        torch.testing.assert_close(sh.prox(v - tt, step), inst.prox(v, step) - tt, **tol)
    # The minimizer moves by -t, the optimal value does not change.
    ref, sh_ref = reference(inst), reference(sh)
    torch.testing.assert_close(sh_ref.x, ref.x - tt, rtol=0, atol=1e-12 * (1 + float(tt.abs().max())))
    torch.testing.assert_close(sh_ref.objective, ref.objective, **tol)
    assert bool((sh_ref.certificate <= 1e-10).all())
    assert "shifted" in sh_ref.method
    # A shifted batch indexes and converts like any other.
    idx = torch.tensor([2, 0])
    torch.testing.assert_close(sh.index(idx).objective((x - tt)[idx]), inst.objective(x)[idx], **tol)
    torch.testing.assert_close(
        sh.to(dtype=torch.float32).objective((x - tt).float()).double(), inst.objective(x), rtol=1e-4, atol=1e-4
    )


@families
def test_family_objective_shift(family):
    inst = family.sample(3, 2)
    sh = family.replace(objective_shift=-1.5).sample(3, 2)
    assert isinstance(sh, ShiftedInstances)
    for a, b in zip(data(sh.inner), data(inst)):
        assert torch.equal(a, b)
    assert float(sh.t) == -1.5
    x = feasible_point(inst, make_generator(0))
    torch.testing.assert_close(sh.objective(x + 1.5), inst.objective(x), rtol=1e-12, atol=1e-12)
    # In float32 the shift is applied after the cast.
    sh32 = family.replace(objective_shift=-1.5).sample(3, 2, dtype=torch.float32)
    assert sh32.dtype == torch.float32 and sh32.t.dtype == torch.float32


@families
def test_x0_shift_moves_the_initial_point_only(family):
    base = family.sample(3, 2)
    torch.testing.assert_close(base.initial_point(), torch.zeros(3, base.dim, dtype=torch.float64), rtol=0, atol=0)
    for s in (-10.0, 50.0):
        moved = family.replace(x0_shift=s).sample(3, 2)
        for a, b in zip(data(moved), data(base)):
            assert torch.equal(a, b)  # the data do not depend on x0_shift
        torch.testing.assert_close(
            moved.initial_point(), torch.full((3, base.dim), s, dtype=torch.float64), rtol=0, atol=0
        )
        # ... and it survives index, to and the objective shift.
        assert bool((moved.index(torch.tensor([1])).initial_point() == s).all())
        p32 = moved.to(dtype=torch.float32).initial_point()
        assert p32.dtype == torch.float32 and bool((p32 == s).all())
        assert bool((shifted(moved, 1.0).initial_point() == s).all())
        both = family.replace(x0_shift=s, objective_shift=3.0).sample(3, 2, dtype=torch.float32)
        assert both.initial_point().shape == (3, base.dim) and bool((both.initial_point() == s).all())


@pytest.mark.parametrize("t", [10.0, -37.3, 100.0])
def test_float32_projected_iterates_of_a_shifted_box_qp_are_feasible(t):
    # Regression: the box indicator used a float64 rounding tolerance, so in float32
    # (x - t) + t landed off the bound and every iterate on a bound had F = +inf.
    family = QuadraticFamily(n=100, condition_number=370.0, box=0.1, objective_shift=t)  # box_qp_100, shifted
    inst = family.sample(4, 0, dtype=torch.float32)
    x, L = inst.initial_point(), inst.smoothness()
    for _ in range(30):
        x = inst.prox(x - inst.grad(x) / L[:, None], 1.0 / L)
        assert bool(torch.isfinite(inst.objective(x)).all())
    on_bound = ((x + t).abs() >= 0.1 * (1 - 1e-3)).float().mean()
    assert float(on_bound) > 0.02  # the test does exercise the bounds
    # A clearly infeasible point is still +inf in float32 and float64.
    for dtype in (torch.float32, torch.float64):
        far = family.sample(4, 0, dtype=dtype)
        y = torch.full((4, 100), 0.1 * (1 + 1e-3) - t, dtype=dtype)
        assert bool(torch.isinf(far.objective(y)).all())


# ----- the fused proximal-gradient step ------------------------------------------------------


@pytest.mark.parametrize("make", list(SOURCES.values()), ids=list(SOURCES))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_prox_grad_is_one_proximal_gradient_step(make, dtype):
    inst = make(4, 2).to(dtype=dtype)
    g = make_generator(3)
    for problem in (inst, shifted(inst, torch.randn(4, inst.dim, generator=g, dtype=torch.float64).to(dtype))):
        y = feasible_point(problem, g)
        # Alternate step scales: a cached fused operator must follow the scale.
        for c in (1.0, 0.5, 1.0, 1.9):
            t = (c / problem.smoothness()).unsqueeze(-1)
            expected = problem.prox(y - t * problem.grad(y), t)
            got = problem.prox_grad(y, c)
            assert got.dtype == dtype and got.shape == y.shape
            tol = 1e-12 if dtype == torch.float64 else 2e-5
            scale = float(expected.abs().max()) + float(y.abs().max()) + 1.0
            torch.testing.assert_close(got, expected, rtol=0, atol=tol * scale)


def test_shifted_is_a_function_of_the_shift_module():
    """The objective shift is built by ``l2o.problems.shift.shifted`` (no ``Instances.shifted``
    method, so ``problems.base`` does not import ``problems.shift``); families use it."""
    inst = LassoFamily(m=6, n=10, nnz=3).sample(2, 0)
    assert not hasattr(inst, "shifted")
    sh = shifted(inst, 2.0)
    assert isinstance(sh, ShiftedInstances) and sh.inner is inst and float(sh.t) == 2.0
    via_family = LassoFamily(m=6, n=10, nnz=3, objective_shift=2.0).sample(2, 0)
    assert isinstance(via_family, ShiftedInstances) and torch.equal(via_family.t, sh.t)
