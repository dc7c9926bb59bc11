"""LFISTA: template equivalence with FISTA, the fused and differentiable steps, the
guard, the template phase past the horizon, and the example config end to end."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

import l2o
from l2o.evaluation import reference
from l2o.learned import LFISTA
from l2o.optimizers import FISTA, select_state
from l2o.registry import LEARNED
from l2o.training import load_config, load_run, train

B = 4
LASSO = l2o.LassoFamily(m=20, n=40, nnz=4, lam=0.1)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lfista_lasso.toml"


def starts(p):
    g = torch.Generator().manual_seed(1)
    return {"zero": torch.zeros(p.batch_size, p.dim, dtype=p.dtype),
            "random": torch.randn(p.batch_size, p.dim, generator=g, dtype=p.dtype)}


def max_gap(learned, classical, p, steps, grad: bool = False) -> float:
    """Largest |x_learned - x_classical| over ``steps`` steps and both starts."""
    worst = 0.0
    with torch.set_grad_enabled(grad):
        for x0 in starts(p).values():
            s, r = learned.init(p, x0), classical.init(p, x0)
            for _ in range(steps):
                s, r = learned.step(p, s), classical.step(p, r)
                worst = max(worst, float((s.x.detach() - r.x).abs().max()))
    return worst


def trajectory(solver, p, x0, steps):
    with torch.no_grad():
        s = solver.init(p, x0)
        out = []
        for _ in range(steps):
            s = solver.step(p, s)
            out.append(s)
    return out


def perturbed(model: LFISTA, seed: int = 0, scale: float = 0.5) -> LFISTA:
    """The model with parameters away from the template (p, c, e != 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in model.parameters():
            t.copy_(scale * torch.rand(t.shape, generator=g, dtype=torch.float64).to(t.dtype))
    return model


# ----- template ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("restart", [True, False], ids=["restart", "no_restart"])
@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "autograd"])
def test_template_is_fista(restart, grad):
    """Untrained, LFISTA is FISTA (with restart: fista_restart), through the horizon and after it."""
    p = LASSO.sample(B, 0)
    model = LFISTA(horizon=20, restart=restart).double()
    assert max_gap(model, FISTA(restart=restart), p, steps=50, grad=grad) <= 1e-12


def test_template_is_fista_restart_on_the_preset_fused_path():
    p = l2o.make_family("lasso_250x500").sample(8, 0)
    assert max_gap(LFISTA(horizon=30).double(), FISTA(restart=True), p, steps=60) <= 1e-12


@pytest.mark.parametrize("make_problem", [
    lambda: l2o.LeastSquaresFamily(d=10, m=16, noise_std=0.1).sample(B, 0),
    lambda: l2o.QuadraticFamily(n=12, condition_number=20.0, box=0.1).sample(B, 0),
    lambda: l2o.LogisticFamily(n_samples=40, d=8, nnz=3, lam=0.1, penalty="l1").sample(B, 0),
], ids=["least_squares", "box_qp", "logistic_l1"])
def test_template_is_fista_restart_on_other_problems(make_problem):
    p = make_problem()
    threshold = p.has_nonsmooth and not p.is_constrained
    model = LFISTA(horizon=10, threshold=threshold).double()
    assert max_gap(model, FISTA(restart=True), p, steps=25) <= 1e-12


def test_template_init_restores_the_template():
    p = LASSO.sample(B, 0)
    model = perturbed(LFISTA(horizon=10).double())
    assert max_gap(model, FISTA(restart=True), p, steps=5) > 1e-6
    model.template_init()
    assert max_gap(model, FISTA(restart=True), p, steps=25) <= 1e-12


# ----- the learned steps ---------------------------------------------------------------------------------
def test_coefficients_ranges_and_initial_values():
    model = LFISTA(horizon=6, max_step=3.0)
    c = model.coefficients()
    for name in ("step", "threshold", "momentum"):
        assert torch.equal(c[name], torch.ones(6)), name
    with torch.no_grad():
        model.s.copy_(torch.tensor([-50.0, -1.0, 0.0, 1.0, 50.0, 0.3]))
        model.theta.copy_(torch.tensor([-5.0, -0.1, 0.0, 0.1, 2.0, 0.0]))
        model.m.copy_(torch.tensor([-50.0, -1.0, 0.0, 1.0, 50.0, 0.0]))
        c = model.coefficients()
    assert bool(((c["step"] >= 1 / 3 - 1e-6) & (c["step"] <= 3 + 1e-6)).all())
    assert torch.equal(c["threshold"][:3], torch.ones(3))  # clamped at lam's threshold
    assert float(c["threshold"][4]) == pytest.approx(math.exp(2.0))
    assert bool(((c["momentum"] >= 0) & (c["momentum"] <= 2)).all())


def test_fused_and_differentiable_steps_agree():
    """The evaluation step (one addmm with a cached I - tG) and the autograd step
    (y - t grad f(y), then prox) give the same iterates for non-template scalars."""
    p = l2o.make_family("lasso_250x500").sample(6, 3)
    model = perturbed(LFISTA(horizon=15, guard=0.0).double())
    x0 = starts(p)["random"]
    with torch.no_grad():
        fused = trajectory(model, p, x0, 15)
    s = model.init(p, x0)
    for k in range(15):  # autograd on: the differentiable path
        s = model.step(p, s)
        assert float((s.x.detach() - fused[k].x).abs().max()) <= 1e-10


def test_fused_cache_survives_sub_batches():
    p = l2o.make_family("lasso_250x500").sample(6, 3)
    model = perturbed(LFISTA(horizon=8).double())
    x0 = starts(p)["random"]
    whole = trajectory(model, p, x0, 8)[-1]
    idx = torch.tensor([4, 1])
    part = trajectory(model, p.index(idx), x0[idx], 8)[-1]
    assert float((whole.x[idx] - part.x).abs().max()) <= 1e-12


def test_past_the_horizon_every_step_is_a_fista_restart_step():
    p = LASSO.sample(B, 0)
    K = 6
    model = perturbed(LFISTA(horizon=K).double())
    x0 = starts(p)["random"]
    states = trajectory(model, p, x0, K + 10)
    fista = FISTA(restart=True)
    for s, nxt in zip(states[K - 1:-1], states[K:]):
        ref = fista.step(p, l2o.optimizers.fista.FISTAState(
            x=s.x, y=s.y, t=s.t, restarts=torch.zeros(B, dtype=s.t.dtype), k=s.k,
            pattern=torch.zeros(B, 0, dtype=torch.int8),
        ))
        assert torch.equal(nxt.x, ref.x) and torch.equal(nxt.y, ref.y) and torch.equal(nxt.t, ref.t)


def test_converges_ten_times_past_its_horizon():
    """Whatever its scalars, the solver converges: after the horizon it is FISTA with restart."""
    p = LASSO.sample(16, 2)
    ref = reference(p)
    model = perturbed(LFISTA(horizon=10).double(), scale=1.5)
    states = trajectory(model, p, p.initial_point(), 100)
    at_horizon, at_10x = (ref.relative_gap(p.objective(states[k].x)) for k in (9, 99))
    assert float(at_10x.max()) <= 1e-6
    assert bool((at_10x <= at_horizon).all())


# ----- the guard -----------------------------------------------------------------------------------------------------
def long_steps(model: LFISTA, multiplier: float) -> LFISTA:
    with torch.no_grad():
        model.s.fill_(math.atanh(math.log(multiplier) / math.log(model.max_step)))
    return model


def test_guard_catches_divergence_and_falls_back_to_the_template():
    p = l2o.make_family("lasso_250x500").sample(32, 5)
    ref = reference(p)
    x0 = p.initial_point()
    unguarded = trajectory(long_steps(LFISTA(horizon=40, max_step=3.0, guard=0.0).double(), 2.9), p, x0, 40)[-1]
    assert float(ref.relative_gap(p.objective(unguarded.x)).max()) > 1e3  # steps of 2.9 / L diverge
    guarded = trajectory(long_steps(LFISTA(horizon=40, max_step=3.0, guard=1.2).double(), 2.9), p, x0, 80)
    assert int((guarded[-1].learned == 0).sum()) >= 16  # most instances were sent to template steps
    assert float(ref.relative_gap(p.objective(guarded[-1].x)).max()) <= 1e-8


def test_guard_undoes_the_diverging_step_and_then_takes_template_steps():
    p = l2o.make_family("lasso_250x500").sample(8, 5)
    model = long_steps(LFISTA(horizon=40, max_step=3.0, guard=1.2).double(), 2.9)
    states = [model.init(p, p.initial_point())] + trajectory(model, p, p.initial_point(), 40)
    out = [k for k in range(1, len(states)) if bool(((states[k - 1].learned > 0) & (states[k].learned == 0)).any())]
    assert out, "the guard never fired"
    k = out[0]
    hit = (states[k - 1].learned > 0) & (states[k].learned == 0)
    assert torch.equal(states[k].x[hit], states[k - 1].x[hit])  # the step is undone
    assert torch.equal(states[k].y[hit], states[k - 1].x[hit])  # no momentum
    assert bool((states[k].t[hit] == 1).all())
    # from then on those instances take FISTA-restart steps
    idx = torch.nonzero(hit).squeeze(-1)
    fista = FISTA(restart=True)
    s = select_state(states[k], idx)
    r = l2o.optimizers.fista.FISTAState(x=s.x, y=s.y, t=s.t, restarts=torch.zeros_like(s.t), k=s.k,
                                        pattern=torch.zeros(len(idx), 0, dtype=torch.int8))
    sub = p.index(idx)
    with torch.no_grad():
        for _ in range(5):
            s, r = model.step(sub, s), fista.step(sub, r)
            assert float((s.x - r.x).abs().max()) <= 1e-12


def test_guard_never_fires_on_the_template():
    """p = 1 steps are not guarded: an untrained model never leaves the template (FISTA
    without restart has ripples that the guard would otherwise take for divergence)."""
    p = l2o.make_family("lasso_250x500").sample(16, 1)
    for restart in (True, False):
        last = trajectory(LFISTA(horizon=60, restart=restart, guard=1.0).double(), p, starts(p)["random"], 60)[-1]
        assert bool((last.learned == 1).all())


# ----- validation, registry, training ---------------------------------------------------------------------------------
def test_arguments_and_problems_are_checked():
    with pytest.raises(ValueError, match="max_step"):
        LFISTA(max_step=1.0)
    with pytest.raises(ValueError, match="guard"):
        LFISTA(guard=0.5)
    with pytest.raises(ValueError, match="threshold=False"):
        LFISTA().check_problem(l2o.LeastSquaresFamily(d=10, m=16).sample(2, 0))
    with pytest.raises(ValueError, match="threshold=False"):
        LFISTA().check_problem(l2o.QuadraticFamily(n=12, box=0.1).sample(2, 0))
    LFISTA(threshold=False).check_problem(l2o.LeastSquaresFamily(d=10, m=16).sample(2, 0))
    assert LEARNED["lfista"].factory is LFISTA and LFISTA.template == "fista_restart"


def test_float32_model_on_float32_problem_tracks_float64():
    p64 = l2o.make_family("lasso_250x500").sample(8, 4)
    model = perturbed(LFISTA(horizon=20))
    a = trajectory(model, p64.to(dtype=torch.float32), p64.initial_point().float(), 30)[-1].x
    b = trajectory(model.double(), p64, p64.initial_point(), 30)[-1].x
    assert a.dtype == torch.float32 and float((a.double() - b).abs().max()) <= 1e-3


def test_example_config_trains_and_loads(tmp_path):
    """The example config, scaled down to a few meta-steps, trains, improves on its
    template and loads back as an LFISTA."""
    config = load_config(EXAMPLE)
    assert config.solver == "lfista" and config.solver_params["horizon"] == config.training.unroll
    training = dataclasses.replace(config.training, steps=12, batch_size=8, unroll=10, segment=10, train_set_size=32,
                                   val_batch=16, val_every=6, checkpoint_every=0)
    config = dataclasses.replace(config, training=training, solver_params={**config.solver_params, "horizon": 10})
    result = train(config, tmp_path / "run")
    assert result.best_val_gap < result.initial_val_gap
    run = load_run(tmp_path / "run")
    assert isinstance(run.solver, LFISTA) and run.solver.horizon == 10
    assert run.solver.s.dtype == torch.float64
