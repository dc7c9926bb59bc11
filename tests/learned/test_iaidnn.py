"""IAIDNN (``l2o.learned.iaidnn``): the layer against an unbatched textbook reference, the
exact variant against WMMSE, feasibility, gradients, sizes and transfer, training, the CLI.

The protocol checks every learned solver passes (dtypes, batch invariance, determinism,
state shapes, ``select_state``, gradients reaching every parameter, no NaN from zero or
large starts, rebuild from ``hparams``) run in ``tests/learned/test_learned_protocol.py``.
"""

from __future__ import annotations

import pytest
import torch
from mimo_unrolled_cases import (
    SMALL,
    batch,
    check_paper_example,
    cli_train_then_eval,
    cplx,
    perturb,
    run,
    short_training,
)

from l2o.learned import IAIDNN
from l2o.learned.iaidnn import approximate_inverse_apply
from l2o.optimizers.wmmse import WMMSE
from l2o.problems import LassoFamily
from l2o.problems.mimo.channel import mrt, wmmse_update
from l2o.registry import LEARNED
from l2o.training import RunConfig


def reference_layer(model, layer, p, V):
    """The IAIDNN layer of the module docstring, unbatched: explicit loops over instances,
    users and BSs, plain matrix inverses (``torch.linalg.inv``) and diagonals."""
    B, K, I, M, d = V.shape
    N = p.rx_antennas
    out = torch.zeros_like(V)
    for b in range(B):
        H = p.H[b]
        sigma2 = float(p.noise[b])
        alpha = p.weights[b]
        power = [float(sum((V[b, k, i].abs() ** 2).sum() for i in range(I))) for k in range(K)]
        U = {}
        W = {}

        def par(t, k, i):
            return cplx(t)[0 if model.shared_users else k * I + i]

        def inv_approx(Q, X, Y, Z):
            first = torch.linalg.inv(Q) if model.exact else torch.diag(1.0 / torch.diagonal(Q))
            return first @ X + Q @ Y + Z

        for k in range(K):
            for i in range(I):
                load = sigma2 if model.exact else sigma2 * power[k] / float(p.budget[b, k])
                C = load * torch.eye(N, dtype=V.dtype)
                for j in range(K):
                    for m in range(I):
                        G = H[k, i, j] @ V[b, j, m]
                        C = C + G @ G.conj().T
                S = H[k, i, k] @ V[b, k, i]
                U[k, i] = inv_approx(C, par(layer.Xu, k, i), par(layer.Yu, k, i), par(layer.Zu, k, i)) @ S \
                    + par(layer.Ou, k, i)
                E = torch.eye(d, dtype=V.dtype) - U[k, i].conj().T @ S
                W[k, i] = inv_approx(E, par(layer.Xw, k, i), par(layer.Yw, k, i), par(layer.Zw, k, i))
        trace = sum(alpha[k, i] * torch.trace(U[k, i] @ W[k, i] @ U[k, i].conj().T) for k in range(K) for i in range(I))
        for j in range(K):
            A = sum(alpha[k, i] * H[k, i, j].conj().T @ U[k, i] @ W[k, i] @ U[k, i].conj().T @ H[k, i, j]
                    for k in range(K) for i in range(I))
            if model.exact:
                Vt = torch.stack([alpha[j, i] * H[j, i, j].conj().T @ U[j, i] @ W[j, i] for i in range(I)])
                mu = wmmse_mu(A, Vt, float(p.budget[b, j]))
            else:
                mu = sigma2 * trace / float(p.budget[b, j])
            R = A + mu * torch.eye(M, dtype=V.dtype)
            for i in range(I):
                vt = alpha[j, i] * H[j, i, j].conj().T @ U[j, i] @ W[j, i]
                if layer.v_learned:
                    out[b, j, i] = inv_approx(R, par(layer.Xv, j, i), par(layer.Yv, j, i), par(layer.Zv, j, i)) @ vt \
                        + par(layer.Ov, j, i)
                else:
                    out[b, j, i] = torch.linalg.inv(R) @ vt
            scale = (float(p.budget[b, j]) / float((out[b, j].abs() ** 2).sum())) ** 0.5
            out[b, j] = out[b, j] * scale
    return out


def wmmse_mu(A, Vt, P):
    """WMMSE's multiplier by plain bisection on ||(A + mu I)^{-1} Vt||_F^2 = P (for the exact variant)."""
    M = A.shape[-1]

    def power(mu):
        return float(sum((torch.linalg.solve(A + mu * torch.eye(M, dtype=A.dtype), v).abs() ** 2).sum() for v in Vt))

    lo, hi = 0.0, 1.0
    while power(hi) > P:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if power(mid) > P else (lo, mid)
    return hi


# ----- the layer ---------------------------------------------------------------------------------
def test_approximate_inverse_forms():
    g = torch.Generator().manual_seed(0)
    Q = torch.randn(3, 3, dtype=torch.complex128, generator=g) + 3 * torch.eye(3)
    X, Y, Z = (torch.randn(3, 3, dtype=torch.complex128, generator=g) for _ in range(3))
    b = torch.randn(3, 2, dtype=torch.complex128, generator=g)
    Dinv = torch.diag(1 / torch.diagonal(Q))
    torch.testing.assert_close(approximate_inverse_apply(Q, X, Y, Z, b), (Dinv @ X + Q @ Y + Z) @ b)
    torch.testing.assert_close(approximate_inverse_apply(Q, X, Y, Z, b, exact=True),
                               (torch.linalg.inv(Q) @ X + Q @ Y + Z) @ b)


@pytest.mark.parametrize("inverse", ["approx", "exact"])
@pytest.mark.parametrize("shared", [False, True], ids=["per_user", "shared"])
def test_layers_match_the_unbatched_reference(inverse, shared):
    """Every layer (the learned ones and, for "approx", the last one with the exact inverse)
    with weights away from any initialization equals the loop reference in float64."""
    p = batch(n=2)
    model = perturb(IAIDNN(SMALL, horizon=3, inverse=inverse, shared_users=shared).double(), scale=0.05)
    V = p.unpack(p.initial_point())
    for layer in model.layers:
        with torch.no_grad():
            got = model.layer_step(layer, p, V)
        torch.testing.assert_close(got, reference_layer(model, layer, p, V), rtol=1e-9, atol=1e-10)
    assert [layer.v_learned for layer in model.layers] == ([True, True, False] if inverse == "approx" else [True] * 3)


def test_exact_variant_at_neutral_values_is_wmmse():
    """inverse="exact" with X = I, Y = Z = O = 0: every layer is one WMMSE iteration
    (``l2o.optimizers.WMMSE``), from any feasible input and along the trajectory (float64, 1e-10)."""
    p = batch(n=5, seed=2)
    model = IAIDNN(SMALL, horizon=4, inverse="exact").double().neutral_()
    wmmse = WMMSE()
    ws = wmmse.init(p, p.initial_point())
    with torch.no_grad():
        states = run(model, p, p.initial_point(), 4)
    for t in range(4):
        ws = wmmse.step(p, ws)
        assert bool((ws.mu > 0).all())  # the budgets are active: WMMSE uses them in full, as IAIDNN's scaling
        torch.testing.assert_close(states[t + 1].x, ws.x, rtol=0, atol=1e-10)
    g = torch.Generator().manual_seed(3)
    x = p.prox(torch.randn(p.batch_size, p.dim, generator=g, dtype=torch.float64), None)
    V = p.unpack(x)
    for layer in model.layers:
        with torch.no_grad():
            ref, _ = wmmse_update(p.H, V, p.noise, p.weights, p.budget)
            torch.testing.assert_close(model.layer_step(layer, p, V), ref, rtol=0, atol=1e-10)


def test_jacobi_initialization_is_the_diagonal_approximation():
    """init="jacobi": U = diag(C)^{-1} S, W = diag(E)^{-1} (checked through the reference)
    and the parameters are X = I, Y = Z = O = 0."""
    model = IAIDNN(SMALL, horizon=2)
    layer = model.layers[0]
    torch.testing.assert_close(cplx(layer.Xv)[3], torch.eye(4, dtype=torch.complex128))
    assert float(cplx(layer.Zu).abs().max()) == 0.0 and float(cplx(layer.Ov).abs().max()) == 0.0
    random = IAIDNN(SMALL, horizon=2, init="random", seed=1)
    assert float(cplx(random.layers[0].Yu).abs().max()) == 0.0
    assert 0.0 < float(cplx(random.layers[0].Zu).abs().max()) <= 0.1 * 2**0.5


# ----- feasibility, shapes, gradients ------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("start", ["default", "zero", "large", "small"])
def test_every_iterate_uses_each_budget_exactly(dtype, start):
    p = batch(dtype)
    x0 = {"default": p.initial_point(), "zero": torch.zeros(p.batch_size, p.dim, dtype=dtype),
          "large": torch.full((p.batch_size, p.dim), 1e3, dtype=dtype),
          "small": 1e-3 * p.initial_point()}[start]
    model = perturb(IAIDNN(SMALL, horizon=3), scale=0.02).to(dtype)
    with torch.no_grad():
        states = run(model, p, x0, 6)  # 3 layers, then the WMMSE tail
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for t, s in enumerate(states[1:], 1):
        assert s.x.dtype == dtype and s.x.shape == (4, p.dim) and torch.isfinite(s.x).all()
        if t <= model.horizon:  # the layers normalize every BS to its budget
            torch.testing.assert_close(p.power(s.x), p.budget.to(dtype), rtol=tol, atol=0)
        else:  # the WMMSE tail: within the budgets
            assert (p.power(s.x) <= p.budget.to(dtype) * (1 + tol)).all()
    if start == "zero":
        torch.testing.assert_close(states[0].x, mrt(p.H, p.streams, p.budget).to(dtype))


def test_parameter_shapes():
    K, I, M, N, d = 3, 2, 4, 2, 2
    model = IAIDNN(SMALL, horizon=7)
    assert len(model.layers) == 7
    first, last = model.layers[0], model.layers[-1]
    assert first.Xu.shape == (K * I, N, N, 2) and first.Ou.shape == (K * I, N, d, 2)
    assert first.Xw.shape == (K * I, d, d, 2)
    assert first.Xv.shape == (K * I, M, M, 2) and first.Ov.shape == (K * I, M, d, 2)
    assert last.Xv is None  # the last V-update uses the exact inverse
    assert IAIDNN(SMALL, horizon=2, shared_users=True).layers[0].Xv.shape == (1, M, M, 2)


def test_gradients_reach_every_parameter_through_the_sum_of_sum_rates():
    p = batch(torch.float32, n=6)
    model = IAIDNN(SMALL, horizon=3)
    states = run(model, p, p.initial_point(), 3)
    loss = sum(p.objective(s.x).mean() for s in states[1:])  # minus the sum of the sum-rates over the layers
    loss.backward()
    for name, t in model.named_parameters():
        assert t.grad is not None and torch.isfinite(t.grad).all() and float(t.grad.abs().sum()) > 0, name


# ----- sizes and transfer ------------------------------------------------------------------------
def test_sizes_from_family_or_arguments_and_clear_errors():
    model = IAIDNN(horizon=2, cells=3, users=2, tx_antennas=4, rx_antennas=2, streams=2)
    assert model.sizes == IAIDNN(SMALL, horizon=2).sizes == (3, 2, 4, 2, 2)
    assert "family" not in model.hparams and model.hparams["tx_antennas"] == 4
    assert LEARNED["iaidnn"].factory is IAIDNN and IAIDNN.template == "wmmse"
    with pytest.raises(ValueError, match="needs the problem sizes"):
        IAIDNN()
    with pytest.raises(ValueError, match="differs from the family"):
        IAIDNN(SMALL, users=3)
    for bad in ({"inverse": "nope"}, {"init": "nope"}, {"tail": "nope"}, {"horizon": 0}, {"users": 0}):
        with pytest.raises(ValueError):
            IAIDNN(**{"cells": 3, "users": 2, "tx_antennas": 4, "rx_antennas": 2, "streams": 2, **bad})
    with pytest.raises(ValueError, match="MIMO sum-rate family only"):
        model.check_problem(LassoFamily(m=5, n=10, nnz=2).sample(2, 0))
    other = SMALL.replace(users=3).sample(2, 0)
    with pytest.raises(ValueError, match=r"built for cells=3, users=2, .*the problem has cells=3, users=3") as e:
        model.init(other, other.initial_point())
    assert "\n" not in str(e.value)


def test_shared_users_transfers_to_other_numbers_of_users_and_cells():
    """With shared_users the matrices depend on M, N, d only: one model runs (feasibly, and
    better than its start) for other K and I; another M is refused."""
    model = perturb(IAIDNN(SMALL, horizon=3, shared_users=True), scale=0.01)
    for family in (SMALL.replace(users=4), SMALL.replace(cells=1, users=3)):
        p = family.sample(4, 1, dtype=torch.float32)
        with torch.no_grad():
            states = run(model, p, p.initial_point(), 6)
        for s in states[1:4]:  # the layers; then the WMMSE tail
            torch.testing.assert_close(p.power(s.x), p.budget, rtol=1e-5, atol=0)
        assert (p.power(states[-1].x) <= p.budget * (1 + 1e-5)).all()
        assert (p.sum_rate(states[-1].x) > p.sum_rate(states[0].x)).all()
    with pytest.raises(ValueError, match="tx_antennas=4"):
        model.check_problem(SMALL.replace(tx_antennas=6).sample(2, 0))


# ----- training and the CLI ----------------------------------------------------------------------
def test_a_short_training_run_increases_the_sum_rate():
    """15 Adam steps on minus the sum of the sum-rates over the 3 layers (batches of 32 from
    mimo_small): the mean sum-rate after the layers on a held-out batch goes up."""
    torch.manual_seed(0)
    before, after = short_training(IAIDNN(SMALL, horizon=3), lr=1e-2)
    assert after > before + 0.1, (before, after)


def test_cli_train_then_eval(tmp_path):
    """``l2o train`` builds the model from the config's family (no sizes in [solver]), trains on
    the sum loss, and ``l2o eval`` reloads it from the run directory."""
    assert RunConfig.from_dict({"problem": {"family": "mimo_small"}, "solver": {"name": "iaidnn"},
                                "training": {"loss": "sum"}}).make_solver().sizes == (3, 2, 4, 2, 2)
    cli_train_then_eval(tmp_path, "iaidnn")


def test_example_config_builds_the_paper_setting():
    """``examples/iaidnn_mimo.toml``: 7 layers on mimo_medium, the sum of the sum-rates over the layers."""
    check_paper_example("iaidnn_mimo.toml", "iaidnn", "IAIDNN")
