"""GNN-WMMSE (``l2o.learned.gnn_wmmse``): kernels, feasibility, equivariance, transfer,
training, safeguard and the CLI on MIMO.

The protocol checks every learned solver passes (dtypes, batch invariance, determinism,
state shapes, ``select_state``, a pure ``step``, gradients reaching every parameter, no
NaN from zero or large starts, rebuild from ``hparams``) run in the common suite
(``tests/learned/test_learned_protocol.py``), where GNN-WMMSE is paired with a MIMO problem.
"""

from __future__ import annotations

import dataclasses
import functools
import json

import pytest
import torch
from mimo_unrolled_cases import SMALL, assert_permutation_equivariant, perturb, run
from typer.testing import CliRunner

from l2o.cli import app
from l2o.learned import GNNWMMSE
from l2o.optimizers import select_state
from l2o.optimizers.wmmse import WMMSE
from l2o.problems import LassoFamily, MimoFamily
from l2o.problems.mimo.channel import (
    mmse_receivers,
    mrt,
    pack,
    scale_to_budget,
    signal_model,
    solve_precoders,
    stacked_channels,
    subproblem,
    transmit_covariance,
    user_rates,
)
from l2o.registry import LEARNED
from l2o.safeguard import Safeguard

OTHER_SIZES = [
    MimoFamily(cells=2, users=3, tx_antennas=6, rx_antennas=1, streams=1),
    MimoFamily(cells=1, users=5, tx_antennas=8, rx_antennas=2, streams=1, power=100.0),
    MimoFamily(cells=4, users=1, tx_antennas=3, rx_antennas=3, streams=2, channel="geometric"),
]


@functools.cache
def batch(dtype: torch.dtype = torch.float64, n: int = 4, seed: int = 0):
    return SMALL.sample(n, seed, dtype=dtype)


def assert_feasible(p, x, rtol=1e-6):
    assert torch.isfinite(x).all()
    assert (p.power(x) <= p.budget.to(x.dtype) * (1 + rtol)).all(), (p.power(x) / p.budget).max()


# ----- kernels ---------------------------------------------------------------------------------
def test_stacked_kernels_match_the_channel_algebra():
    p = batch()
    V = p.unpack(p.initial_point() + 0.1 * torch.randn(4, p.dim, generator=torch.Generator().manual_seed(0),
                                                       dtype=torch.float64))
    ch = stacked_channels(p.H, p.noise, p.budget)
    sm = signal_model(ch, V, p.noise)
    U, W = mmse_receivers(p.H, V, p.noise)
    torch.testing.assert_close(sm.Y, U @ W, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(sm.Q.mH @ sm.Q, U @ W @ U.mH, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(sm.rate, user_rates(p.H, V, p.noise), rtol=1e-10, atol=1e-12)
    A, Bc = subproblem(ch, sm, p.weights)
    A0, B0 = transmit_covariance(p.H, U, W, p.weights)
    torch.testing.assert_close(A, A0, rtol=1e-10, atol=1e-12)
    B, K, I, M, d = V.shape
    torch.testing.assert_close(Bc, B0.permute(0, 1, 3, 2, 4).reshape(B, K, M, I * d), rtol=1e-10, atol=1e-12)
    mu = torch.rand(B, K, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    eye = torch.eye(M, dtype=A.dtype)
    ref = torch.linalg.solve(A0.unsqueeze(2) + mu[..., None, None, None] * eye, B0)
    torch.testing.assert_close(solve_precoders(A, Bc, mu, I), ref, rtol=1e-9, atol=1e-11)
    # interference powers: own streams 0, the others ||H_{ki,j} V_{lj}||^2
    k, i, j, l = 1, 0, 2, 1
    assert float(sm.power[0, k, i, k, i]) == 0.0
    torch.testing.assert_close(sm.power[:, k, i, j, l], (p.H[:, k, i, j] @ V[:, j, l]).abs().square().sum((-2, -1)))


def test_untrained_layer_is_the_template():
    """With the heads' weights at 0, a layer is WMMSE with mu_k = mu_init tr(A_k) / M and full power."""
    p = batch()
    model = GNNWMMSE(horizon=2, hidden=8, mu_init=0.2).double()
    with torch.no_grad():
        for layer in model.layers:
            layer.user_head.weight.zero_()
            layer.cell_head.weight.zero_()
        x1 = model.step(p, model.init(p, p.initial_point())).x
    V = p.unpack(p.initial_point())
    A, B0 = transmit_covariance(p.H, *mmse_receivers(p.H, V, p.noise), p.weights)
    mu = 0.2 * torch.diagonal(A, dim1=-2, dim2=-1).real.sum(-1) / p.tx_antennas
    ref = torch.linalg.solve(A.unsqueeze(2) + mu[..., None, None, None] * torch.eye(p.tx_antennas, dtype=A.dtype), B0)
    torch.testing.assert_close(x1, pack(scale_to_budget(ref, p.budget)), rtol=1e-9, atol=1e-10)


def test_channel_constants_live_in_the_state_not_on_the_problem():
    """``init`` computes the stacked channels once; they travel in the state (batch-first,
    selected with the iterate) and nothing is written on the problem."""
    p = SMALL.sample(3, 0)
    before = dict(vars(p))
    model = GNNWMMSE(horizon=2, hidden=8).double()
    with torch.no_grad():
        s = run(model, p, p.initial_point(), 3)[-1]
    assert vars(p).keys() == before.keys()
    ch = stacked_channels(p.H, p.noise, p.budget)
    for f in dataclasses.fields(ch):
        assert torch.equal(getattr(s.channels, f.name), getattr(ch, f.name)), f.name
    idx = torch.tensor([2, 0])
    sub = select_state(s, idx)
    for f in dataclasses.fields(ch):
        assert torch.equal(getattr(sub.channels, f.name), getattr(ch, f.name)[idx]), f.name


# ----- protocol details specific to MIMO ---------------------------------------------------------
def test_registered_and_refuses_other_families():
    assert LEARNED["gnn_wmmse"].factory is GNNWMMSE and GNNWMMSE.template == "wmmse"
    with pytest.raises(ValueError, match="MIMO sum-rate family only"):
        GNNWMMSE().check_problem(LassoFamily(m=5, n=10, nnz=2).sample(2, 0))
    for bad in ({"tail": "nope"}, {"hidden": 0}, {"rounds": -1}, {"mu_init": 0.0}, {"horizon": 0}):
        with pytest.raises(ValueError):
            GNNWMMSE(**bad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("start", ["default", "zero", "large", "random"])
def test_iterates_always_feasible_and_finite(dtype, start):
    """Every iterate, in the learned layers and in the WMMSE tail, meets the budgets; the
    zero start (a degenerate fixed point of WMMSE) is replaced by MRT and improves."""
    p = batch(dtype)
    x0 = {
        "default": p.initial_point(),
        "zero": torch.zeros(p.batch_size, p.dim, dtype=dtype),
        "large": torch.full((p.batch_size, p.dim), 1e3, dtype=dtype),
        "random": torch.randn(p.batch_size, p.dim, generator=torch.Generator().manual_seed(2)).to(dtype),
    }[start]
    model = GNNWMMSE(horizon=3, hidden=8).to(dtype)
    with torch.no_grad():
        states = run(model, p, x0, 8)
    for s in states:
        assert s.x.dtype == dtype and s.x.shape == (4, p.dim)
        assert_feasible(p, s.x)
    assert (p.sum_rate(states[-1].x) > p.sum_rate(states[0].x)).all()
    if start == "zero":
        torch.testing.assert_close(states[0].x, mrt(p.H, p.streams, p.budget))


def test_float32_model_on_float64_problem_keeps_float64():
    p = batch(torch.float64)
    with torch.no_grad():
        s = run(GNNWMMSE(horizon=2, hidden=8), p, p.initial_point(), 3)[-1]
    assert s.x.dtype == torch.float64
    assert_feasible(p, s.x)


def test_tail_last_reuses_the_last_layer():
    p = batch()
    model = GNNWMMSE(horizon=2, hidden=8, tail="last", momentum=False).double()
    with torch.no_grad():
        s = run(model, p, p.initial_point(), 5)[-1]
        late = model.step(p, s)
        last = model.layer_step(model.layers[-1], p, s)
    assert torch.equal(late.x, last)


def test_permutation_equivariance():
    """Relabeling the users of every cell, and the cells, relabels the iterates the same way."""
    # weights away from the initialization
    assert_permutation_equivariant(perturb(GNNWMMSE(horizon=2, hidden=8).double(), scale=0.1), batch())


# ----- transfer: one set of weights for any K, I, M, N, d ----------------------------------------
@pytest.mark.parametrize("family", OTHER_SIZES, ids=["K2_I3_N1", "K1_I5_M8", "K4_I1_geometric"])
def test_runs_on_other_numbers_of_users_and_cells(family):
    p = family.sample(3, 1, dtype=torch.float32)
    model = GNNWMMSE(horizon=3, hidden=8)
    with torch.no_grad():
        states = run(model, p, p.initial_point(), 6)
    for s in states:
        assert_feasible(p, s.x)
    assert (p.sum_rate(states[-1].x) >= p.sum_rate(states[0].x) * (1 - 1e-5)).all()


# ----- training ----------------------------------------------------------------------------------
def test_a_short_training_run_increases_the_sum_rate():
    """12 Adam steps on minus the layer-weighted sum-rate (batches of 32 from mimo_small):
    the mean sum-rate at the last layer on a fixed held-out batch goes up."""
    torch.manual_seed(0)
    model = GNNWMMSE(horizon=3, hidden=16)
    val = SMALL.sample(64, 123, dtype=torch.float32)
    T = model.horizon

    def rate_at_horizon():
        with torch.no_grad():
            return float(val.sum_rate(run(model, val, val.initial_point(), T)[-1].x).mean())

    before = rate_at_horizon()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(7)
    for _ in range(12):
        p = SMALL.sample(32, g, dtype=torch.float32)
        s, loss = model.init(p, p.initial_point()), 0.0
        for t in range(T):
            s = model.step(p, s)
            loss = loss + p.objective(s.x).mean() * (t + 1) / (T * (T + 1) / 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = rate_at_horizon()
    assert after > before + 0.05, (before, after)


# ----- safeguard --------------------------------------------------------------------------------
@pytest.mark.parametrize("weights", ["untrained", "harmful"])
def test_safeguard_descent_never_lowers_the_sum_rate(weights):
    """Safeguard(GNN-WMMSE, WMMSE, descent), checked every step: the sum-rate never decreases
    and every iterate is finite and feasible, even with deliberately harmful weights."""
    p = batch(torch.float64, n=6, seed=3)
    model = GNNWMMSE(horizon=4, hidden=8).double()
    if weights == "harmful":
        with torch.no_grad():
            for layer in model.layers:
                layer.user_head.weight.normal_(0.0, 3.0, generator=torch.Generator().manual_seed(5))
                layer.cell_head.bias.fill_(8.0)  # mu far too large: nearly MRT-like directions
    guard = Safeguard(model, WMMSE(), rule="descent")
    with torch.no_grad():
        s = guard.init(p, p.initial_point())
        rates = [p.sum_rate(s.x)]
        for _ in range(12):
            s = guard.step(p, s)
            assert torch.isfinite(s.x).all()
            assert_feasible(p, s.x, rtol=1e-9)
            rates.append(p.sum_rate(s.x))
    R = torch.stack(rates)
    assert (R[1:] >= R[:-1] - 1e-9 * R[:-1].abs()).all()
    if weights == "harmful":
        assert int(s.fallbacks.sum()) > 0


# ----- CLI --------------------------------------------------------------------------------------
def test_cli_train_then_eval_on_mimo(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(
        '[problem]\nfamily = "mimo_small"\n\n'
        '[solver]\nname = "gnn_wmmse"\nhorizon = 2\nhidden = 8\n\n'
        '[training]\nsteps = 2\nbatch_size = 8\nunroll = 2\nloss = "weighted"\nval_batch = 0\n'
        'checkpoint_every = 0\ngradient_checkpointing = false\n'
    )
    runner = CliRunner()
    res = runner.invoke(app, ["train", str(config), "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["eval", str(tmp_path / "run"), "--batch", "4", "--json", "--out-dir", str(tmp_path / "e")]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [s["name"] for s in out["solvers"]] == ["gnn_wmmse", "wmmse", "mrt", "zf", "rzf"]
    assert out["iterations"]["gnn_wmmse"] == 20
    for s in out["solvers"]:
        assert 0.0 < s["sum_rate_fraction_p10"] <= s["sum_rate_fraction_median"] <= 1.0 + 1e-6
        assert s["seconds_per_batch"] >= 0.0
    by = {s["name"]: s for s in out["solvers"]}
    assert by["wmmse"]["sum_rate_fraction_median"] > by["mrt"]["sum_rate_fraction_median"]
    assert by["gnn_wmmse"]["sum_rate_fraction_median"] > 0.9  # 2 layers + 18 WMMSE iterations
    res = runner.invoke(app, ["eval", str(tmp_path / "run"), "--batch", "3", "--iterations", "4",
                              "--out-dir", str(tmp_path / "e2")])
    assert res.exit_code == 0, res.output
    assert "sum-rate as a fraction of the reference" in res.stdout and "rzf" in res.stdout
    # the robustness report on a MIMO split: MIMO baselines, WMMSE as the safeguard's fallback
    res = runner.invoke(app, ["eval", str(tmp_path / "run"), "--split", "users_1", "--batch", "2", "--iterations", "3",
                              "--json", "--out-dir", str(tmp_path / "e3")])
    assert res.exit_code == 0, res.output
    split = json.loads(res.stdout)["splits"][0]
    assert split["split"] == "users_1"
    assert [s["name"] for s in split["solvers"]] == ["gnn_wmmse", "safeguarded_gnn_wmmse", "wmmse", "mrt", "zf", "rzf"]
