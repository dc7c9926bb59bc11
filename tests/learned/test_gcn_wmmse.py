"""GCN-WMMSE (``l2o.learned.gcn_wmmse``): the layer against an unbatched reference, the neutral
layers against WMMSE, the budget projection, gradients, transfer and equivariance, training,
the CLI.

The protocol checks every learned solver passes (dtypes, batch invariance, determinism,
state shapes, ``select_state``, gradients reaching every parameter, no NaN from zero or
large starts, rebuild from ``hparams``) run in ``tests/learned/test_learned_protocol.py``.
"""

from __future__ import annotations

import pytest
import torch
from mimo_unrolled_cases import (
    assert_permutation_equivariant,
    batch,
    check_paper_example,
    cli_train_then_eval,
    cplx,
    perturb,
    run,
    short_training,
)

from l2o.learned import GCNWMMSE
from l2o.learned.gcn_wmmse import crelu, weight_polynomial
from l2o.optimizers.wmmse import WMMSE
from l2o.problems import LassoFamily, MimoFamily
from l2o.problems.mimo.channel import mmse_receivers, mrt, transmit_covariance, transmit_precoders, wmmse_update
from l2o.registry import LEARNED

OTHER_SIZES = [
    MimoFamily(cells=2, users=3, tx_antennas=6, rx_antennas=1, streams=1),
    MimoFamily(cells=1, users=5, tx_antennas=8, rx_antennas=2, streams=1, power=100.0),
    MimoFamily(cells=4, users=1, tx_antennas=3, rx_antennas=3, streams=2, channel="geometric"),
]


def reference_layer(layer, p, V):
    """The layer of the module docstring, unbatched: loops over instances, cells, users and
    streams; W^p by eigendecomposition; R^{-1} b by ``torch.linalg.solve``; mu from WMMSE's
    bisection on the filtered weights (``transmit_precoders``, the one shared piece)."""
    B, K, I, M, d = V.shape
    U, W = mmse_receivers(p.H, V, p.noise)
    if layer.w_poly is not None:
        c = layer.w_poly.detach().double().abs()
        lam, Q = torch.linalg.eigh(W)
        norm = lam.sum(-1, keepdim=True) / d
        f = c[0] + c[1] * lam + sum(c[q] * lam ** q / norm ** (q - 1) for q in range(2, len(c)))
        W = (Q * f.to(Q.dtype).unsqueeze(-2)) @ Q.mH
    A, Bm = transmit_covariance(p.H, U, W, p.weights)
    _, mu = transmit_precoders(A, Bm, p.budget)
    out = torch.zeros_like(V)
    named = (("ar", layer.theta_ar), ("ma", layer.theta_ma), ("dl", layer.theta_dl), ("beta", layer.beta),
             ("rho", layer.rho))
    taps = {name: (cplx(t) if t is not None else None) for name, t in named}
    for b in range(B):
        for k in range(K):
            R = A[b, k] + mu[b, k] * torch.eye(M, dtype=A.dtype)
            s = (float(p.budget[b, k]) / (I * d)) ** 0.5
            for i in range(I):
                for col in range(d):
                    v = Bm[b, k, i, :, col]
                    Z = torch.outer(torch.linalg.solve(R, v), taps["ar"])
                    if taps["ma"] is not None:
                        Z = Z + torch.outer(R @ v, taps["ma"])
                    if taps["dl"] is not None:
                        Z = Z + torch.outer(v, taps["dl"])
                    if taps["beta"] is not None:
                        Z = Z + s * taps["beta"]
                    Zr = torch.complex(Z.real.clamp(min=0), Z.imag.clamp(min=0))
                    out[b, k, i, :, col] = Zr @ taps["rho"]
            power = float((out[b, k].abs() ** 2).sum())
            if power > float(p.budget[b, k]):
                out[b, k] = out[b, k] * (float(p.budget[b, k]) / power) ** 0.5
    return out


# ----- the layer ---------------------------------------------------------------------------------
def test_crelu_and_the_weight_polynomial():
    z = torch.tensor([1.5 - 2j, -1 + 3j, -0.5 - 0.5j], dtype=torch.complex128)
    assert torch.equal(crelu(z), torch.tensor([1.5 + 0j, 0 + 3j, 0j], dtype=torch.complex128))
    assert torch.equal(crelu(z) - crelu(-z), z)  # the identity the neutral values use
    g = torch.Generator().manual_seed(0)
    X = torch.randn(5, 3, 3, dtype=torch.complex128, generator=g)
    eye = torch.eye(3, dtype=torch.complex128)
    W = eye + X @ X.mH
    c = torch.tensor([0.3, -0.5, 0.2, 0.1], dtype=torch.float64)  # |c| is used
    n = (torch.diagonal(W, dim1=-2, dim2=-1).real.sum(-1) / 3)[:, None, None]
    ref = 0.3 * eye + 0.5 * W + 0.2 * W @ W / n + 0.1 * W @ W @ W / n**2
    torch.testing.assert_close(weight_polynomial(W, c), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "options", [{}, {"ma": True, "w_degree": 2}, {"bias": False, "diagload": False, "w_degree": 0}],
    ids=["default", "ma", "ar_only"])
def test_layer_matches_the_unbatched_reference(options):
    """With weights away from any initialization (some outputs projected), every layer equals
    the loop reference in float64."""
    p = batch(n=2)
    model = perturb(GCNWMMSE(horizon=2, init="random", **options).double(), scale=0.3)
    with torch.no_grad():
        model.layers[1].rho.mul_(100.0)  # the second layer's output goes over the budgets
    V = p.unpack(p.initial_point())
    projected = 0
    for layer in model.layers:
        with torch.no_grad():
            got = model.layer_step(layer, p, V)
        ref = reference_layer(layer, p, V)
        torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-10)
        projected += int(((got.abs().square().sum((-3, -2, -1)) - p.budget).abs() < 1e-9).sum())
    assert projected > 0  # the projection branch was exercised


@pytest.mark.parametrize("options", [{}, {"ma": True}, {"w_degree": 0, "channels": 2}],
                         ids=["default", "ma", "minimal"])
def test_neutral_layers_are_wmmse_iterations(options):
    """``neutral_``: every layer is one WMMSE iteration (``l2o.optimizers.WMMSE``), from any
    feasible input and along the trajectory (float64, 1e-10)."""
    p = batch(n=5, seed=2)
    model = GCNWMMSE(horizon=4, **options).double().neutral_()
    wmmse = WMMSE()
    ws = wmmse.init(p, p.initial_point())
    with torch.no_grad():
        states = run(model, p, p.initial_point(), 4)
    for t in range(4):
        ws = wmmse.step(p, ws)
        torch.testing.assert_close(states[t + 1].x, ws.x, rtol=0, atol=1e-10)
    x = p.prox(torch.randn(p.batch_size, p.dim, generator=torch.Generator().manual_seed(3), dtype=torch.float64), None)
    V = p.unpack(x)
    for layer in model.layers:
        with torch.no_grad():
            ref, _ = wmmse_update(p.H, V, p.noise, p.weights, p.budget)
            torch.testing.assert_close(model.layer_step(layer, p, V), ref, rtol=0, atol=1e-10)


def test_default_initialization_is_near_wmmse_and_random_is_the_authors():
    p = batch(n=8, seed=5)
    with torch.no_grad():
        near = run(GCNWMMSE(horizon=3).double(), p, p.initial_point(), 3)[-1].x
        exact = run(GCNWMMSE(horizon=3).double().neutral_(), p, p.initial_point(), 3)[-1].x
    gap = (p.sum_rate(near) - p.sum_rate(exact)).abs() / p.sum_rate(exact)
    assert float(gap.max()) < 0.05
    layer = GCNWMMSE(horizon=1, init="random", seed=1).layers[0]
    assert torch.equal(layer.w_poly.detach(), torch.full((5,), 0.2)) and float(layer.beta.detach().abs().max()) == 0.0
    assert 0.0 < float(layer.theta_ar.detach().std()) < 1.0


# ----- feasibility and gradients ------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("start", ["default", "zero", "large"])
def test_every_iterate_meets_the_budgets(dtype, start):
    """Every iterate is within the budgets; a cell the filter sends over its budget is scaled
    back to exactly its budget (the authors' per-BS clamp)."""
    p = batch(dtype)
    x0 = {"default": p.initial_point(), "zero": torch.zeros(p.batch_size, p.dim, dtype=dtype),
          "large": torch.full((p.batch_size, p.dim), 1e3, dtype=dtype)}[start]
    model = perturb(GCNWMMSE(horizon=3, init="random").to(dtype), scale=0.3)
    with torch.no_grad():
        states = run(model, p, x0, 6)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    at_budget = 0
    for s in states[1:]:
        assert s.x.dtype == dtype and s.x.shape == (4, p.dim) and torch.isfinite(s.x).all()
        power = p.power(s.x)
        assert (power <= p.budget.to(dtype) * (1 + tol)).all()
        at_budget += int(((power - p.budget.to(dtype)).abs() <= tol * p.budget.to(dtype)).sum())
    assert at_budget > 0
    if start == "zero":
        torch.testing.assert_close(states[0].x, mrt(p.H, p.streams, p.budget).to(dtype))


def test_gradients_reach_every_parameter_through_the_sum_of_sum_rates():
    p = batch(torch.float32, n=6)
    model = GCNWMMSE(horizon=3, ma=True)
    states = run(model, p, p.initial_point(), 3)
    loss = sum(p.objective(s.x).mean() for s in states[1:])
    loss.backward()
    for name, t in model.named_parameters():
        assert t.grad is not None and torch.isfinite(t.grad).all() and float(t.grad.abs().sum()) > 0, name


# ----- transfer and equivariance ------------------------------------------------------------------
def test_registered_and_refuses_other_families():
    assert LEARNED["gcn_wmmse"].factory is GCNWMMSE and GCNWMMSE.template == "wmmse"
    with pytest.raises(ValueError, match="MIMO sum-rate family only"):
        GCNWMMSE().check_problem(LassoFamily(m=5, n=10, nnz=2).sample(2, 0))
    for bad in ({"tail": "nope"}, {"channels": 1}, {"w_degree": -1}, {"init": "nope"}, {"init_noise": -1.0},
                {"horizon": 0}):
        with pytest.raises(ValueError):
            GCNWMMSE(**bad)
    assert sum(t.numel() for t in GCNWMMSE(horizon=7).parameters()) == 7 * (4 * 4 * 2 + 5)


@pytest.mark.parametrize("family", OTHER_SIZES, ids=["K2_I3_N1", "K1_I5_M8", "K4_I1_geometric"])
def test_one_model_runs_on_other_numbers_of_users_cells_and_antennas(family):
    p = family.sample(3, 1, dtype=torch.float32)
    model = GCNWMMSE(horizon=3)
    with torch.no_grad():
        states = run(model, p, p.initial_point(), 6)
    for s in states:
        assert (p.power(s.x) <= p.budget * (1 + 1e-5)).all()
    assert (p.sum_rate(states[-1].x) > p.sum_rate(states[0].x)).all()


def test_permutation_equivariance():
    """Relabeling the users of every cell, and the cells, relabels the iterates the same way."""
    assert_permutation_equivariant(perturb(GCNWMMSE(horizon=2).double(), scale=0.1), batch())


# ----- training and the CLI -----------------------------------------------------------------------
def test_a_short_training_run_increases_the_sum_rate():
    """15 Adam steps from the authors' random initialization on minus the sum of the
    sum-rates over the 3 layers: the mean sum-rate on a held-out batch goes up."""
    before, after = short_training(GCNWMMSE(horizon=3, init="random", seed=2), lr=3e-2)
    assert after > before + 0.1, (before, after)


def test_cli_train_then_eval(tmp_path):
    cli_train_then_eval(tmp_path, "gcn_wmmse")


def test_example_config_builds_the_paper_setting():
    """``examples/gcn_wmmse_mimo.toml``: 7 layers on mimo_medium, the sum of the sum-rates over the layers."""
    check_paper_example("gcn_wmmse_mimo.toml", "gcn_wmmse", "GCNWMMSE")
