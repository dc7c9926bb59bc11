"""``l2o.optimizers.base``: batch-first states, fields shared by the batch, ``skip``."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import l2o
from l2o.learned import LFISTA
from l2o.optimizers.base import is_shared, merge_state, select_state, shared_field


@dataclasses.dataclass
class Inner:
    v: torch.Tensor


@dataclasses.dataclass
class State:
    x: torch.Tensor  # (B, n)
    inner: Inner  # nested state, batch-first
    M: torch.Tensor = shared_field(default=None)  # (n, n), shared by the batch
    cache: dict = shared_field(default_factory=dict)
    k: int = 0


def make_state(B: int = 4, n: int = 3) -> State:
    x = torch.arange(B * n, dtype=torch.float64).reshape(B, n)
    # a square shared matrix with B == n rows would be indexed silently without the metadata
    M = torch.eye(B, dtype=torch.float64)
    return State(x=x, inner=Inner(v=x[:, 0].clone()), M=M, cache={1.0: M}, k=2)


def test_shared_field_is_declared_by_metadata():
    fields = {f.name: is_shared(f) for f in dataclasses.fields(State)}
    assert fields == {"x": False, "inner": False, "M": True, "cache": True, "k": False}
    assert State(x=torch.zeros(1, 1), inner=Inner(torch.zeros(1))).cache == {}


def test_select_state_indexes_batch_fields_and_passes_shared_ones_through():
    s = make_state()
    idx = torch.tensor([3, 1])
    sub = select_state(s, idx)
    assert torch.equal(sub.x, s.x[idx]) and torch.equal(sub.inner.v, s.inner.v[idx])
    assert sub.M is s.M and sub.cache is s.cache and sub.k == 2


def test_merge_state_writes_rows_back_and_takes_shared_fields_from_the_part():
    s = make_state()
    idx = torch.tensor([0, 2])
    part = select_state(s, idx)
    part = dataclasses.replace(part, x=-part.x, inner=Inner(-part.inner.v), M=2 * s.M, cache={}, k=5)
    merged = merge_state(s, idx, part)
    assert torch.equal(merged.x[idx], -s.x[idx]) and torch.equal(merged.x[[1, 3]], s.x[[1, 3]])
    assert torch.equal(merged.inner.v[idx], -s.inner.v[idx])
    assert merged.M is part.M and merged.cache is part.cache and merged.k == 5
    assert torch.equal(s.x, make_state().x)  # never written in place


def test_lfista_keeps_its_fused_matrices_in_the_state_not_in_the_problem():
    """R5: the per-problem matrices I - t A^T A are explicit shared state; nothing is cached
    in the problem's ``__dict__``, and a compacted batch shares them."""
    p = l2o.make_family("lasso_250x500").replace(m=20, n=30, nnz=3).sample(5, 0)
    before = set(vars(p))
    model = LFISTA(horizon=4).double()
    with torch.no_grad():
        s = model.init(p, p.initial_point())
        assert s.affine == {}
        s = model.step(p, s)
        assert set(vars(p)) == before
        assert len(s.affine) == 1 and next(iter(s.affine.values())).shape == (p.dim, p.dim)
        sub = select_state(s, torch.tensor([4, 0]))
        assert sub.affine is s.affine
        nxt = model.step(p.index(torch.tensor([4, 0])), sub)
        whole = model.step(p, s)
    torch.testing.assert_close(nxt.x, whole.x[[4, 0]], rtol=0, atol=1e-12)  # GEMM blocking may round apart
    assert set(vars(p)) == before


@pytest.mark.parametrize("name", ["fista_restart", "gd"])
def test_skip_gives_the_check_problem_message(name):
    solver = l2o.make_solver(name)
    lasso = l2o.LassoFamily(m=4, n=6, nnz=2).sample(2, 0)
    reason = solver.skip(lasso)
    if reason is None:
        solver.check_problem(lasso)
    else:
        with pytest.raises(ValueError) as e:
            solver.check_problem(lasso)
        assert str(e.value) == reason
