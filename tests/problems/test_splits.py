"""Named OOD splits: every family declares them, they build valid families, bad names fail."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from l2o.evaluation import reference
from l2o.problems import DatasetLogisticFamily, LassoFamily, LogisticFamily, ShiftedInstances
from l2o.problems.splits import X0_SHIFTS, Split, family_splits, register_splits, registered_splits, resolve_splits
from l2o.registry import PRESETS

CVPR = ["x0_+10", "x0_-10", "x0_+20", "x0_-20", "x0_+50", "x0_-50", "x0_+100", "x0_-100",
        "objective_shift_1", "objective_shift_10"]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_has_splits_that_sample(preset):
    family = PRESETS[preset][0]
    splits = family_splits(family)
    assert next(iter(splits)) == "id" and splits["id"].apply(family) == family
    if family.cvpr_shifts:
        assert all(name in splits for name in CVPR)
    for split in splits.values():
        assert split.description
        p = split.apply(family).sample(2, 0)
        assert p.batch_size == 2


def test_x0_split_moves_the_start_and_keeps_the_data():
    family = LassoFamily(m=20, n=40, nnz=4)
    for s in X0_SHIFTS:
        shifted = family_splits(family)[f"x0_{s:+g}"].apply(family)
        p, q = family.sample(3, 1), shifted.sample(3, 1)
        assert torch.equal(p.b, q.b)
        torch.testing.assert_close(q.initial_point(), torch.full((3, 40), s, dtype=torch.float64))


def test_objective_shift_split_moves_the_minimizer_by_minus_t():
    family = LassoFamily(m=20, n=40, nnz=4)
    shifted = family_splits(family)["objective_shift_10"].apply(family)
    p, q = family.sample(3, 1), shifted.sample(3, 1)
    assert isinstance(q, ShiftedInstances)
    torch.testing.assert_close(reference(q).x, reference(p).x - 10.0, atol=1e-7, rtol=0)
    torch.testing.assert_close(reference(q).objective, reference(p).objective)


def test_lasso_natural_splits_change_what_they_say():
    family = LassoFamily()
    s = family_splits(family)
    assert s["lam_0.05"].apply(family).lam == 0.05 and s["lam_0.2"].apply(family).lam == 0.2
    assert s["nnz_100"].apply(family).nnz == 100
    assert s["correlated_0.5"].apply(family).correlation == 0.5
    small = s["dim_125x250"].apply(family)
    assert (small.m, small.n) == (125, 250)


def test_family_splits_is_a_function_not_a_method():
    """The splits of a family come from ``family_splits`` (no ``ProblemFamily.splits``, no
    import of ``splits`` by ``family``): common ones first, then the natural ones in order."""
    family = LassoFamily()
    assert not hasattr(family, "splits")
    names = list(family_splits(family))
    assert names[:11] == ["id", *CVPR]
    assert names[11:] == [s.name for s in family.natural_splits()]


def test_registered_splits_join_the_natural_splits_of_their_family_type_only():
    """``l2o.problems.datasets`` registers the real datasets for ``LogisticFamily`` (whose
    module cannot import it); other family types get nothing."""
    family = LogisticFamily(lam=0.05)
    assert [s.name for s in registered_splits(family)] == ["breast_cancer", "digits"]
    assert [s.name for s in family.natural_splits()][-2:] == ["breast_cancer", "digits"]
    assert registered_splits(LassoFamily()) == []
    assert registered_splits(DatasetLogisticFamily()) == []


def test_register_splits_adds_once_per_function():
    @dataclasses.dataclass(frozen=True)
    class Toy(LassoFamily):
        name = "toy"

    def extra(f):
        return [Split("toy_extra", "an extra split", {"lam": 2 * f.lam})]

    register_splits(Toy, extra)
    register_splits(Toy, extra)
    toy = Toy(m=4, n=6, nnz=2)
    assert registered_splits(toy) == extra(toy)
    assert "toy_extra" not in family_splits(toy)  # a family's own natural_splits decides to include them


def test_logistic_has_the_bundled_real_datasets():
    family = LogisticFamily(lam=0.05)
    s = family_splits(family)
    bc = s["breast_cancer"].apply(family)
    assert isinstance(bc, DatasetLogisticFamily) and bc.dataset == "breast_cancer" and bc.lam == 0.05
    assert s["digits"].apply(family.replace(x0_shift=2.0)).x0_shift == 2.0
    assert s["digits"].apply(family).sample(2, 0).dim == 64


def test_resolve_splits_names_and_errors():
    family = LassoFamily()
    assert [s.name for s in resolve_splits(family, ["x0_+10", "id"])] == ["x0_+10", "id"]
    assert len(resolve_splits(family, None)) == len(family_splits(family))
    assert len(resolve_splits(family, ["all"])) == len(family_splits(family))
    with pytest.raises(ValueError, match=r"unknown split 'x0_\+7' for family 'lasso'; valid splits: id, x0_\+10"):
        resolve_splits(family, ["x0_+7"])
