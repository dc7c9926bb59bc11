"""``benchmarks/bench_infocom.py``'s safeguarded StructuralMPNN: ``Safeguard`` with a WMMSE
fallback and the descent rule on F = -R keeps the sum-rate monotone on the MIMO family (a
maximization written as a minimization), also behind a harmful model that alone lowers it."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest
import torch

from l2o.learned.structural_mpnn import StructuralMPNN
from l2o.optimizers.wmmse_paper import paper_start
from l2o.problems.mimo.infocom import InfocomMimoFamily

PATH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "bench_infocom.py"
spec = importlib.util.spec_from_file_location("bench_infocom_safeguard", PATH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

FAMILY = InfocomMimoFamily(cells=2, users=2, tx_antennas=4, rx_antennas=2, streams=2)
T = 5


def model(harmful: bool) -> StructuralMPNN:
    m = StructuralMPNN(tx_antennas=4, hidden=16, horizon=T)
    if harmful:  # weights far from the identity-like initialization: steps that lower the sum-rate
        g = torch.Generator().manual_seed(4)
        with torch.no_grad():
            for t in m.parameters():
                t.add_(3.0 * torch.randn(t.shape, generator=g, dtype=t.dtype))
    return m


def rates(problem64, xs) -> torch.Tensor:
    return torch.stack([problem64.sum_rate(x.double()) for x in xs])  # (T + 1, B)


@pytest.mark.parametrize("harmful, sync_free", [(False, False), (True, False), (True, True)])
def test_safeguarded_sum_rate_is_monotone(harmful, sync_free):
    """Both steps of ``Safeguard``: compacting (CPU default) and masked (CUDA default)."""
    p64 = FAMILY.sample(8, 3)
    p32 = p64.to(torch.float32)
    m = model(harmful)
    x, xs, state = bench.run_safeguarded(m, p32, T, sync_free=sync_free)
    R = rates(p64, xs)
    assert len(xs) == T + 1 and torch.isfinite(R).all()
    # monotone up to float32 rounding of the iterates (a rejected learned step would drop it by far more)
    assert (R[1:] >= R[:-1] * (1 - 1e-5)).all()
    assert torch.equal(xs[0], paper_start(p32))
    assert ((state.checks >= 1) & (state.checks <= T)).all()  # fallback blocks (with back-off) are not checked
    if harmful:
        with torch.no_grad():
            s = m.init(p32, paper_start(p32))
            alone = [s.x]
            for _ in range(T):
                s = m.step(p32, s)
                alone.append(s.x)
        A = rates(p64, alone)
        assert (A[-1] < R[-1]).any()  # the model alone ends lower on some instance ...
        assert int(state.fallbacks.sum()) > 0  # ... the safeguard rejected some of its steps


def test_safeguard_figures_report_fraction_and_fallback_rate():
    p64 = FAMILY.sample(6, 5)
    p32 = p64.to(torch.float32)
    rate_p = p64.sum_rate(paper_start(p64))  # any positive reference will do here
    g = bench.safeguard_figures(model(True), T, p32, p64, rate_p, rate_p[:3], 3)
    assert 0 < g["fallback_rate"] <= 1 and 0 < g["instances_with_fallback"] <= 1
    assert 1 <= g["checks_per_instance"] <= T and g["max_relative_rate_decrease"] <= 1e-5
    assert g["fraction_of_paper_wmmse"]["n"] == 6 and g["fraction_of_reference"]["n"] == 3
    assert g["fraction_of_paper_wmmse"]["mean"] >= 1 - 1e-5  # never below its start
