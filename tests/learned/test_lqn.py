"""LQN (learned coordinate-wise step sizes for BFGS): the untrained model against a textbook
unbatched BFGS, the descent-safe interval against its proposition, the one-step loss with
the ||p - 1||^2 regulariser, the safeguards, the horizon and the config."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import l2o
from l2o.learned.lqn import LQN, backtracking_step, descent_ratio
from l2o.optimizers.base import batch_dot
from l2o.registry import make_solver
from l2o.safeguard import Safeguard
from l2o.training import MetaLoss, RunConfig, load_config, train, unroll

B = 3


@functools.cache
def logsumexp():
    return l2o.problems.LogSumExpFamily(n=10, m=40, mu=0.5, reg=1e-2).sample(B, 0)


@functools.cache
def logistic():
    return l2o.LogisticFamily(n_samples=80, d=12, nnz=3, lam=0.02, penalty="l2", noise_std=0.5).sample(B, 0)


PROBLEMS = {"logsumexp": logsumexp, "logistic": logistic}


def newton_solution(p) -> torch.Tensor:
    """x* to rounding: damped Newton, then 3 unit Newton steps (the line search cannot resolve
    the last ones, and a gap certificate stops the reference at ||x - x*|| ~ 1e-8)."""
    newton = make_solver("newton")
    s = newton.init(p, p.initial_point())
    for _ in range(20):
        s = newton.step(p, s)
    x = s.x
    for _ in range(3):
        x = x - torch.linalg.solve(p.hessian(x), p.grad(x).unsqueeze(-1)).squeeze(-1)
    assert bool((p.fixed_point_residual(x) < 1e-13).all())
    return x


def perturbed(model: LQN, scale: float = 1.0, bias: float = 0.0, seed: int = 0) -> LQN:
    """The model with a random (or biased) output layer, so that p != 1."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.out.weight.copy_(scale * torch.randn(model.out.weight.shape, generator=gen, dtype=torch.float64))
        model.out.bias.fill_(bias)
    return model


def numpy_bfgs_unit_step(grad, x0: np.ndarray, L: float, steps: int) -> np.ndarray:
    """Textbook BFGS, one instance: H_0 = I / L, x+ = x - H g, H rescaled by s'y / y'y before the
    first update (N&W 6.20), product-form update skipped when s'y <= 1e-10 ||s|| ||y||."""
    n = x0.size
    x, g, H, scaled = x0.copy(), grad(x0), np.eye(n) / L, False
    for _ in range(steps):
        x_new = x - H @ g
        g_new = grad(x_new)
        s, y = x_new - x, g_new - g
        if s @ y > 1e-10 * np.linalg.norm(s) * np.linalg.norm(y):
            if not scaled:
                H, scaled = (s @ y) / (y @ y) * np.eye(n), True
            rho = 1.0 / (s @ y)
            V = np.eye(n) - rho * np.outer(y, s)
            H = V.T @ H @ V + rho * np.outer(s, s)
        x, g = x_new, g_new
    return x


@pytest.mark.parametrize("which", list(PROBLEMS))
def test_untrained_model_is_bfgs_with_unit_step(which):
    p = PROBLEMS[which]()
    model = LQN().double()
    x0 = torch.randn(B, p.dim, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    s = model.init(p, x0)
    with torch.no_grad():
        for _ in range(12):
            s = model.step(p, s)
    assert bool((s.p == 1).all())
    for b in range(B):
        one = p.index(torch.tensor([b]))
        grad = lambda x: one.grad(torch.from_numpy(x)[None])[0].numpy()  # noqa: E731
        ref = numpy_bfgs_unit_step(grad, x0[b].numpy(), float(p.smoothness()[b]), 12)
        np.testing.assert_allclose(s.x[b].numpy(), ref, rtol=1e-12, atol=1e-12)
    # and the batched classical template, bitwise
    t = make_solver("bfgs", line_search="none").init(p, x0)
    for _ in range(12):
        t = make_solver("bfgs", line_search="none").step(p, t)
    assert torch.equal(s.x, t.x)


@pytest.mark.parametrize("interval", ["coordinate", "kappa"])
@pytest.mark.parametrize("bias", [0.0, 20.0, -20.0])
def test_multipliers_stay_in_the_interval_and_keep_descent(interval, bias):
    """With random or saturating output weights, every step's p obeys |p_i - 1| <= delta_k, with
    delta_k = theta r_k (coordinate) or theta / kappa(H_k) (kappa) times the annealing factor,
    and g^T (p * d) >= (1 - theta) g^T d (proposition (i)); r_k >= 2 sqrt(kappa) / (kappa + 1) (ii)."""
    p = logsumexp()
    theta = 0.9
    model = perturbed(LQN(interval=interval, theta=theta, anneal_from=0.0).double(), bias=bias)
    s = model.init(p, p.initial_point())
    with torch.no_grad():
        for _ in range(15):
            H, g = s.H, s.g
            d = torch.bmm(H, g.unsqueeze(-1)).squeeze(-1)
            ev = torch.linalg.eigvalsh(H)
            kappa = ev[:, -1] / ev[:, 0]
            r = descent_ratio(g, d)
            assert bool((r >= 2 * kappa.sqrt() / (kappa + 1) * (1 - 1e-12)).all())
            s = model.step(p, s)
            expected = theta * r if interval == "coordinate" else theta / kappa
            assert torch.allclose(s.delta, expected, rtol=1e-8)
            assert bool(((s.p - 1).abs() <= s.delta.unsqueeze(-1) * (1 + 1e-12)).all())
            frac = batch_dot(g, s.p * d) / batch_dot(g, d)
            assert bool((frac >= 1 - theta - 1e-12).all())
            if bias:
                assert float((s.p - 1).abs().max()) > 0.5 * float(s.delta.max())
    assert bool(torch.isfinite(s.x).all())


def test_annealing_sends_p_to_one_on_logsumexp():
    """Saturated multipliers (p = 1 + delta_k at every step, a poor choice), but delta_k -> 0 with
    the gradient (anneal_from): every instance converges to x* and delta_k -> 0."""
    p = logsumexp()
    model = perturbed(LQN(anneal_from=1e-3).double(), bias=20.0)
    x_star = newton_solution(p)
    s = model.init(p, p.initial_point())
    with torch.no_grad():
        for _ in range(150):
            s = model.step(p, s)
    assert bool((torch.linalg.vector_norm(s.x - x_star, dim=-1) < 1e-10).all())
    assert bool((s.delta < 1e-6).all())


@pytest.mark.parametrize("bias", [20.0, -20.0])
def test_superlinear_tail_on_rosenbrock_with_saturated_multipliers(bias):
    """Rosenbrock from (-1.2, 1) with backtracking, p saturated at an end of the interval: the
    annealing hands the tail to BFGS, whose error ratios fall below 0.02 (superlinear; the
    same check as for ``bfgs`` in tests/optimizers/test_bfgs.py)."""
    rosen = l2o.problems.AutogradInstances(lambda x: 100 * (x[:, 1] - x[:, 0] ** 2) ** 2 + (1 - x[:, 0]) ** 2,
                                           1, 2, smoothness=1000.0)
    model = perturbed(LQN(line_search="armijo").double(), bias=bias)
    s = model.init(rosen, torch.tensor([[-1.2, 1.0]], dtype=torch.float64))
    errs = []
    with torch.no_grad():
        for _ in range(200):
            s = model.step(rosen, s)
            errs.append(float(torch.linalg.vector_norm(s.x - 1.0)))
            if errs[-1] < 1e-14:
                break
    e = torch.tensor(errs)
    last = int((e > 1e-11).nonzero().max())
    assert last < 150 and float(e[-1]) < 1e-11
    ratios = e[1:last + 2] / e[:last + 1]
    assert float(ratios[-3:].min()) < 0.02, ratios[-6:].tolist()


def test_backtracking_variant_is_monotone_with_harmful_weights():
    p = logistic()
    model = perturbed(LQN(line_search="armijo", anneal_from=0.0).double(), scale=50.0)
    s = model.init(p, p.initial_point())
    F = [p.objective(s.x)]
    with torch.no_grad():
        for _ in range(60):
            s = model.step(p, s)
            F.append(p.objective(s.x))
    F = torch.stack(F)
    assert bool((F[1:] <= F[:-1] + 1e-13 * F[:-1].abs()).all())
    # harmful weights and no annealing: slow (linear) but monotone convergence
    assert bool((p.fixed_point_residual(s.x) < 1e-3).all())


def test_backtracking_step_is_the_first_armijo_power_of_two():
    p = logistic()
    x = p.initial_point()
    f, g = p.value_and_grad(x)
    step = 200.0 * g / p.smoothness().unsqueeze(-1)
    t = backtracking_step(p, x, f, g, step)
    for b in range(B):
        tb = float(t[b])
        ok = lambda t_: float(p.objective(x - t_ * step)[b]) <= float(f[b]) - 1e-4 * t_ * float(batch_dot(g, step)[b])  # noqa: E731,E501
        assert ok(tb) and not ok(2 * tb) and tb == 2.0 ** round(np.log2(tb))


def test_behind_the_safeguard_harmful_weights_still_converge():
    """Safeguard(lqn, bfgs, rule="descent"): with harmful weights (and no line search, the paper's
    form) the wrapped solver converges on every instance; the fallback fires."""
    p = logsumexp()
    model = perturbed(LQN(theta=0.99, anneal_from=0.0).double(), scale=100.0)
    sg = Safeguard(model, make_solver("bfgs"), rule="descent", check_every=1)
    res = l2o.solve(sg, p, tol=1e-10, max_iter=400)
    assert bool(res.converged.all())
    plain = l2o.solve(LQN().double(), p, tol=1e-10, max_iter=400)
    assert bool(plain.converged.all())


def test_runs_past_the_horizon_without_nan_from_extreme_starts():
    p = logistic().to(dtype=torch.float32)
    model = perturbed(LQN(horizon=5), scale=5.0).float()
    for x0 in (torch.zeros(B, p.dim), torch.full((B, p.dim), 1e6)):
        s = model.init(p, x0)
        with torch.no_grad():
            for _ in range(50):  # 10x the horizon
                s = model.step(p, s)
        for t in (s.x, s.g, s.H, s.p, s.h, s.c):
            assert bool(torch.isfinite(t).all())


def test_one_step_loss_adds_the_penalty_and_training_reduces_it():
    p = logistic().to(dtype=torch.float32)
    model = perturbed(LQN(penalty_weight=0.1).float(), scale=0.3)
    loss = MetaLoss("one_step")
    s = model.init(p, p.initial_point())
    out = unroll(model, p, s, 1, record=loss.iterations(0, 1))
    expected = (p.objective(out.state.x) + 0.1 * (out.state.p - 1).square().sum(-1)).mean()
    assert torch.allclose(loss(out), expected, rtol=1e-6)
    assert out.penalties is not None and out.penalties.shape == (1, B)

    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def one_step_losses(update: bool) -> float:
        st, total = model.init(p, p.initial_point()), 0.0
        for k in range(8):
            st = l2o.training.detach_state(st)
            o = unroll(model, p, st, 1, start=k, record=[k + 1])
            value = loss(o)
            if update:
                opt.zero_grad()
                value.backward()
                opt.step()
            total += float(value.detach())
            st = o.state
        return total

    first = one_step_losses(False)
    for _ in range(5):
        one_step_losses(True)
    assert one_step_losses(False) < first


def test_gradients_reach_every_parameter():
    p = logsumexp()
    model = perturbed(LQN().double(), scale=0.5)
    s = model.init(p, p.initial_point())
    for _ in range(4):
        s = model.step(p, s)
    loss = p.objective(s.x).sum() + model.penalty(s).sum()
    names, params = zip(*model.named_parameters())
    for name, g in zip(names, torch.autograd.grad(loss, params, allow_unused=True)):
        assert g is not None and bool(torch.isfinite(g).all()) and bool((g != 0).any()), name


def test_refusals_and_bad_arguments():
    lasso = l2o.LassoFamily(m=10, n=20, nnz=3).sample(2, 0)
    reason = LQN().skip(lasso)
    assert reason is not None and "'lqn'" in reason and "fista" in reason
    for kwargs, word in [({"theta": 1.0}, "theta"), ({"interval": "wide"}, "interval"),
                         ({"anneal_from": 2.0}, "anneal_from"),
                         ({"penalty_weight": -1.0}, "penalty_weight"), ({"line_search": "wolfe"}, "line_search")]:
        with pytest.raises(ValueError, match=word):
            LQN(**kwargs)


def test_config_one_step_needs_segment_one_and_the_example_trains(tmp_path):
    base = {"problem": {"family": "logsumexp", "n": 6, "m": 24}, "solver": {"name": "lqn", "hidden": 4},
            "training": {"steps": 2, "batch_size": 2, "unroll": 3, "loss": "one_step", "val_batch": 2,
                         "val_every": 1, "dtype": "float64"}}
    with pytest.raises(ValueError, match=r"segment.*one_step"):
        RunConfig.from_dict(base)
    base["training"]["segment"] = 1
    result = train(RunConfig.from_dict(base), tmp_path / "run")
    assert result.solver.name == "lqn" and (tmp_path / "run").exists()
    example = load_config("examples/lqn_logistic.toml")
    assert example.solver == "lqn" and example.training.loss in ("one_step", "log_gap")
    assert example.training.segment == 1
