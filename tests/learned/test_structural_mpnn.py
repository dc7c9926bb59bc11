"""StructuralMPNN (INFOCOM 2024): the lemma, the normalisation, the structural update, weight sharing."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import l2o
from l2o.cli import app
from l2o.learned.structural_mpnn import (
    StructuralMPNN,
    StructuralMPNNB,
    StructuralMPNNO,
    structural_update,
    unitary_rows,
)
from l2o.optimizers.wmmse import WMMSE
from l2o.optimizers.wmmse_paper import paper_start
from l2o.problems.mimo import per_cell_power, scale_to_budget, unpack
from l2o.problems.mimo.channel import regularized_zero_forcing
from l2o.problems.mimo.infocom import InfocomMimoFamily
from l2o.safeguard import Safeguard
from l2o.training.config import TrainingConfig
from l2o.training.learner import make_meta_optimizer

FAMILY = InfocomMimoFamily(cells=2, users=2, tx_antennas=4, rx_antennas=2, streams=2)


def problem(dtype=torch.float64, n=4, seed=0, family=FAMILY):
    return family.sample(n, seed, dtype=dtype)


def model(**kw):
    kw.setdefault("tx_antennas", 4)
    return StructuralMPNN(hidden=16, **kw).double()


def perturb(m, scale=0.3, seed=4):
    """Weights away from the (identity-like) initialization."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in m.parameters():
            t.add_(scale * torch.randn(t.shape, generator=g, dtype=t.dtype))
    return m


def run(m, p, steps):
    s = m.init(p, p.initial_point())
    out = [s]
    for _ in range(steps):
        s = m.step(p, s)
        out.append(s)
    return out


# ----- Lemma 1 and the normalisation ----------------------------------------------------------------
def test_expansion_matrix_has_unitary_rows_and_lemma_1():
    m = perturb(model())
    D = m.expansion_matrix()
    assert D.shape == (4, 8)
    torch.testing.assert_close(D @ D.mH, torch.eye(4, dtype=D.dtype), rtol=0, atol=1e-12)
    # Lemma 1: a feasible V' (per-cell power <= P) gives a feasible V = D V'
    g = torch.Generator().manual_seed(1)
    Vp = torch.complex(torch.randn(50, 2, 2, 8, 2, generator=g, dtype=torch.float64),
                       torch.randn(50, 2, 2, 8, 2, generator=g, dtype=torch.float64))
    budget = torch.full((50, 2), 10.0, dtype=torch.float64)
    Vp = scale_to_budget(Vp, budget) * torch.rand(50, 2, 1, 1, 1, generator=g, dtype=torch.float64)
    power_p = Vp.abs().square().sum((-3, -2, -1))
    power = (D @ Vp).abs().square().sum((-3, -2, -1))
    assert (power_p <= 10.0 * (1 + 1e-12)).all()
    assert (power <= power_p * (1 + 1e-12)).all()
    # ... and the bound is not vacuous: D drops some power of a generic V'
    assert (power < power_p * 0.9).any()
    # a non-unitary D would break it (the reason for the constraint)
    assert ((3.0 * D @ Vp).abs().square().sum((-3, -2, -1)) > 10.0).any()


def test_unitary_rows_closed_form():
    A = torch.zeros(6, 3, dtype=torch.complex128)
    A[:3] = torch.diag(torch.tensor([2.0, 3.0, 4.0], dtype=torch.complex128))
    D = unitary_rows(A)  # Q = [I; 0] up to signs: D = [+-I, 0]
    torch.testing.assert_close(D[:, :3].abs(), torch.eye(3, dtype=torch.float64), rtol=0, atol=1e-14)
    assert float(D[:, 3:].abs().max()) == 0.0


@pytest.mark.parametrize("expand", [True, False])
def test_normalisation_gives_exactly_the_budget(expand):
    p = problem()
    m = perturb(model(expand=expand))
    g = torch.Generator().manual_seed(2)
    V = p.unpack(p.initial_point())
    Mx = 8 if expand else 4
    W_L = torch.complex(torch.randn(4, 2, 2, Mx, Mx, generator=g, dtype=torch.float64),
                        torch.randn(4, 2, 2, Mx, Mx, generator=g, dtype=torch.float64))
    W_R = torch.complex(torch.randn(4, 2, 2, 2, 2, generator=g, dtype=torch.float64),
                        torch.randn(4, 2, 2, 2, 2, generator=g, dtype=torch.float64))
    out = structural_update(V, W_L, W_R, p.budget, m.expansion_matrix())
    torch.testing.assert_close(out.abs().square().sum((-3, -2, -1)), p.budget, rtol=1e-13, atol=0)
    # the model's own iterations too, in float64
    with torch.no_grad():
        for s in run(m, p, 6):
            torch.testing.assert_close(p.power(s.x), p.budget, rtol=1e-12, atol=0)


def test_identity_factors_leave_v_unchanged():
    p = problem()
    m = perturb(model())
    D = m.expansion_matrix()
    V = p.unpack(paper_start(p))  # at the budget already
    B, K, I = V.shape[:3]
    out = structural_update(V, torch.eye(8, dtype=V.dtype).expand(B, K, I, 8, 8),
                            torch.eye(2, dtype=V.dtype).expand(B, K, I, 2, 2), p.budget, D)
    torch.testing.assert_close(out, V, rtol=0, atol=1e-12)
    # the model with its heads zeroed: W_L = W_R = I exactly, every iterate is the start
    with torch.no_grad():
        for head in (m.head_left, m.head_right):
            for fc in (head.fc_r, head.fc_i):
                fc.weight.zero_()
                fc.bias.zero_()
        states = run(m, p, 5)
    for s in states[1:]:
        torch.testing.assert_close(s.x, states[0].x, rtol=0, atol=1e-12)


def test_a_structural_left_factor_is_an_m_by_m_map():
    """With D D^H = I, the expanded update is V <- (D W_L D^H) V W_R (before the normalisation)."""
    p = problem()
    D = perturb(model()).expansion_matrix()
    g = torch.Generator().manual_seed(3)
    V = p.unpack(paper_start(p))
    W_L = torch.randn(8, 8, generator=g, dtype=torch.float64).to(V.dtype).expand(4, 2, 2, 8, 8)
    W_R = torch.eye(2, dtype=V.dtype).expand(4, 2, 2, 2, 2)
    out = structural_update(V, W_L, W_R, p.budget, D)
    torch.testing.assert_close(out, scale_to_budget((D @ W_L @ D.mH) @ V, p.budget), rtol=1e-12, atol=1e-12)


# ----- the network ---------------------------------------------------------------------------------
def test_untrained_model_stays_near_its_start_and_gradients_reach_every_weight():
    p = problem(torch.float32, n=8)
    m = StructuralMPNN(tx_antennas=4, hidden=16)
    s = run(m, p, 5)
    x0 = paper_start(p)
    assert float((s[-1].x.detach() - x0).norm() / x0.norm()) < 0.2
    loss = -p.sum_rate(s[-1].x).mean()
    loss.backward()
    for name, t in m.named_parameters():
        assert t.grad is not None and float(t.grad.abs().sum()) > 0, name


def test_permutation_equivariance_within_cells_and_across_cells():
    p = problem(n=3, family=InfocomMimoFamily(cells=3, users=3, tx_antennas=6, rx_antennas=2, streams=2))
    m = perturb(model(tx_antennas=6))
    cells, users = torch.tensor([2, 0, 1]), torch.tensor([1, 2, 0])
    H = p.H[:, cells][:, :, users][:, :, :, cells]
    q = type(p)(H, p.streams, p.noise, p.budget[:, cells], p.weights[:, cells][:, :, users])
    with torch.no_grad():
        x = run(m, p, 3)[-1].x
        y = run(m, q, 3)[-1].x
    torch.testing.assert_close(q.unpack(y), p.unpack(x)[:, cells][:, :, users], rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("cells,users", [(2, 1), (3, 2), (1, 4)])
def test_one_model_runs_at_other_numbers_of_users_and_cells(cells, users):
    m = perturb(model())
    p = problem(n=3, family=FAMILY.replace(cells=cells, users=users))
    with torch.no_grad():
        states = run(m, p, 5)
    for s in states:
        assert torch.isfinite(s.x).all()
        torch.testing.assert_close(p.power(s.x), p.budget, rtol=1e-12, atol=0)


def test_ablations_and_registry():
    p = problem()
    for name, cls in (("structural_mpnn", StructuralMPNN), ("structural_mpnn_b", StructuralMPNNB),
                      ("structural_mpnn_o", StructuralMPNNO)):
        m = l2o.make_solver(name, tx_antennas=4, hidden=8).double()
        assert type(m) is cls and m.skip(p) is None
        assert type(m)(**m.hparams).hparams == m.hparams  # rebuilt from its hparams
        with torch.no_grad():
            x = run(m, p, 5)[-1].x
        torch.testing.assert_close(p.power(x), p.budget, rtol=1e-12, atol=0)
    assert StructuralMPNNB(tx_antennas=4).update == "blackbox"
    assert StructuralMPNNO(tx_antennas=4).expansion_matrix() is None
    assert l2o.make_solver("structural_mpnn", tx_antennas=4).skip(l2o.LassoFamily(m=5, n=8, nnz=2).sample(1))


def test_shape_mismatch_is_one_clear_line():
    m = StructuralMPNN(tx_antennas=16)
    p = l2o.make_family("mimo_infocom_small").sample(1)
    with pytest.raises(ValueError) as e:
        m.check_problem(p)
    msg = str(e.value)
    assert "N_t = 16" in msg and "mimo_infocom_moderate" in msg and "got N_t = 8" in msg and "\n" not in msg
    with pytest.raises(ValueError, match="expanded"):
        StructuralMPNN(tx_antennas=4, expanded=3)
    with pytest.raises(ValueError, match="update"):
        StructuralMPNN(update="other")


def test_tail_wmmse_after_the_horizon():
    p = problem()
    m = perturb(model(horizon=2))
    with torch.no_grad():
        s = run(m, p, 3)
    V, _ = l2o.problems.mimo.channel.wmmse_update(p.H, p.unpack(s[2].x), p.noise, p.weights, p.budget)
    torch.testing.assert_close(p.unpack(s[3].x), V, rtol=1e-12, atol=1e-12)


def test_start_x0_and_float64_problem_with_float32_model():
    p = problem()
    s = StructuralMPNN(tx_antennas=4, hidden=8, start="rzf").init(p, p.initial_point())
    torch.testing.assert_close(s.x, regularized_zero_forcing(p.H, 2, p.budget, p.noise))
    m = StructuralMPNN(tx_antennas=4, hidden=8, start="x0")
    with torch.no_grad():
        s = m.init(p, p.initial_point())
        torch.testing.assert_close(s.x, p.initial_point())
        s = m.step(p, s)
    assert s.x.dtype == torch.float64


def test_a_short_training_run_increases_the_sum_rate():
    torch.manual_seed(0)
    m = StructuralMPNN(tx_antennas=4, hidden=32)
    val = FAMILY.sample(64, 123, dtype=torch.float32)

    def rate():
        with torch.no_grad():
            return float(val.sum_rate(run(m, val, 5)[-1].x).mean())

    before = rate()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3, weight_decay=0.01)
    g = torch.Generator().manual_seed(7)
    for _ in range(15):
        p = FAMILY.sample(32, g, dtype=torch.float32)
        s, loss = m.init(p, p.initial_point()), 0.0
        for _ in range(5):
            s = m.step(p, s)
            loss = loss - p.sum_rate(s.x).mean() / 5
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert rate() > before * 1.02, (before, rate())


@pytest.mark.parametrize("harmful", [False, True])
def test_safeguard_descent_keeps_the_sum_rate_monotone(harmful):
    p = problem(n=6, seed=3)
    m = model(start="x0", horizon=5)
    if harmful:
        perturb(m, scale=3.0)
    guard = Safeguard(m, WMMSE(), rule="descent")
    with torch.no_grad():
        s = guard.init(p, paper_start(p))
        rates = [p.sum_rate(s.x)]
        for _ in range(10):
            s = guard.step(p, s)
            assert torch.isfinite(s.x).all()
            assert (per_cell_power(s.x, 2) <= p.budget * (1 + 1e-9)).all()
            rates.append(p.sum_rate(s.x))
    R = torch.stack(rates)
    assert (R[1:] >= R[:-1] - 1e-9 * R[:-1].abs()).all()
    if harmful:
        assert int(s.fallbacks.sum()) > 0


def test_unpack_shapes():
    p = problem()
    m = model()
    with torch.no_grad():
        x = run(m, p, 1)[-1].x
    assert unpack(x, p.precoder_shape).shape == (4, 2, 2, 4, 2)


def test_adamw_meta_optimizer_option():
    """The paper's optimizer: AdamW with decoupled weight decay, from a training config."""
    m = StructuralMPNN(tx_antennas=4, hidden=8)
    opt = make_meta_optimizer(TrainingConfig(meta_optimizer="adamw", weight_decay=0.01, lr=1e-3), list(m.parameters()))
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["weight_decay"] == 0.01
    with pytest.raises(ValueError, match="weight_decay"):
        TrainingConfig(meta_optimizer="adam", weight_decay=0.01)


# ----- the bundled models ------------------------------------------------------------------------------
def test_bundled_model_solves_a_channel_file_and_refuses_another_shape(tmp_path):
    """``l2o solve -p mimo --checkpoint structural_mpnn-mimo_infocom_small`` writes V and sum_rate like
    ``l2o solve -p mimo``; a file with another N_t is one line naming the model's shape and presets."""
    runner = CliRunner()
    p = l2o.make_family("mimo_infocom_small").sample(2, 3)
    np.savez(tmp_path / "h.npz", H=p.H.numpy(), streams=2, power=10.0, noise=1.0)
    res = runner.invoke(app, ["solve", "-p", "mimo", "-d", str(tmp_path / "h.npz"), "-c",
                              "structural_mpnn-mimo_infocom_small", "-o", str(tmp_path / "out.npz")])
    assert res.exit_code == 0, res.output
    out = np.load(tmp_path / "out.npz")
    assert out["V"].shape == (2, 2, 4, 8, 2) and out["sum_rate"].shape == (2,)
    x = p.pack(torch.from_numpy(out["V"]))
    torch.testing.assert_close(p.sum_rate(x), torch.from_numpy(out["sum_rate"]), rtol=1e-9, atol=0)
    q = l2o.make_family("mimo_infocom_moderate").sample(1, 3)
    np.savez(tmp_path / "m.npz", H=q.H.numpy(), streams=2, power=10.0, noise=1.0)
    res = runner.invoke(app, ["solve", "-p", "mimo", "-d", str(tmp_path / "m.npz"), "-c",
                              "structural_mpnn-mimo_infocom_small"])
    assert res.exit_code == 2
    assert len(res.stderr.strip().splitlines()) == 1
    assert "N_t = 8 transmit" in res.stderr and "mimo_infocom_small" in res.stderr and "got N_t = 16" in res.stderr
