"""The inner problem, the gradient estimators and the learner: training lowers the
validation gap, truncation and checkpointing give the right gradients, the NaN/Inf
guard rejects a bad step without corrupting the weights."""

from __future__ import annotations

import math

import pytest
import torch

import l2o
from l2o.evaluation import reference
from l2o.learned import LGD
from l2o.problems import LassoFamily, LeastSquaresFamily
from l2o.registry import make_solver
from l2o.training import (
    Estimate,
    FullBackprop,
    Learner,
    MetaLoss,
    RunConfig,
    Trainer,
    TruncatedBackprop,
    Unrolled,
    detach_state,
    load_run,
    train,
    unroll,
)
from l2o.training.estimators import make_estimator, trainable


def tiny(**training) -> RunConfig:
    t = {"steps": 30, "batch_size": 16, "unroll": 20, "lr": 3e-3, "loss": "mean", "val_batch": 32, "val_every": 5,
         "checkpoint_every": 0}
    t.update(training)
    return RunConfig.from_dict({
        "problem": {"family": "least_squares", "d": 8, "m": 12, "noise_std": 0.1},
        "solver": {"name": "lgd", "hidden": 32, "expansion": 10.0},
        "training": t,
    })


def grads_of(estimator, solver, problem, K, loss, ref=None):
    (est,) = list(estimator.estimates(solver, problem, K, loss, ref))
    return est


# ----- training works ---------------------------------------------------------------------------------


def test_training_lgd_lowers_the_validation_gap(tmp_path):
    res = train(tiny(), tmp_path / "run")
    assert res.steps == 30 and res.rejected == 0
    assert res.best_val_gap < 0.85 * res.initial_val_gap
    assert res.final_val_gap < res.initial_val_gap
    assert res.best_step > 0
    # independent check on fresh test instances with l2o.run: trained beats untrained (= GD)
    run = load_run(tmp_path / "run")
    test = run.family.sample(64, 12345)
    ref = reference(test)
    untrained = run.config.make_solver()
    trained_gap = l2o.run(run.solver, test, max_iter=20, reference=ref).gap[-1].mean()
    untrained_gap = l2o.run(untrained, test, max_iter=20, reference=ref).gap[-1].mean()
    assert trained_gap < 0.9 * untrained_gap
    # the best validation weights are what load_run returns
    for a, b in zip(run.solver.state_dict().values(), res.solver.state_dict().values()):
        assert torch.equal(a, b)


def test_random_unroll_lengths_and_fixed_train_set(tmp_path):
    res = train(tiny(steps=12, random_unroll=True, train_set_size=24, batch_size=8, val_every=6), tmp_path / "r")
    lengths = [r["unroll"] for r in res.log]
    assert all(10 <= k <= 30 for k in lengths) and len(set(lengths)) > 3


# ----- inner problem and losses -----------------------------------------------------------------


def test_meta_loss_weights():
    F = torch.tensor([[4.0, 8.0], [2.0, 6.0], [1.0, 3.0]])  # 3 iterations x 2 instances
    out = Unrolled(state=None, iterations=[1, 2, 3], objectives=F)
    assert float(MetaLoss("mean")(out)) == pytest.approx(F.mean().item())
    w = torch.tensor([1.0, 2.0, 3.0]) / 6
    assert float(MetaLoss("weighted")(out)) == pytest.approx(float((w[:, None] * F).sum(0).mean()))
    assert float(MetaLoss("mean", reduction="sum")(out)) == pytest.approx(2 * F.mean().item())
    # "sum": the unnormalized sum over the iterations (INFOCOM 2024's sum of sum-rates over layers)
    assert float(MetaLoss("sum")(out)) == pytest.approx(float(F.sum(0).mean()))
    assert float(MetaLoss("sum")(out)) == pytest.approx(3 * float(MetaLoss("mean")(out)))
    assert MetaLoss("sum").iterations(0, 3) == [1, 2, 3]
    last = Unrolled(state=None, iterations=[3], objectives=F[-1:])
    assert MetaLoss("last").iterations(0, 3) == [3]
    assert float(MetaLoss("last")(last)) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="needs the reference"):
        MetaLoss("log_gap")(out)
    with pytest.raises(ValueError, match="loss must be one of"):
        MetaLoss("max")
    with pytest.raises(ValueError, match="reduction must be"):
        MetaLoss("mean", reduction="max")
    with pytest.raises(ValueError, match="tail must be in"):
        MetaLoss("mean", reduction="cvar", tail=1.5)


def test_cvar_reduction_averages_the_worst_instances():
    # per-instance means over 2 iterations: 1, 4, 2, 8, 3 -> worst 40% (2 of 5): (8 + 4) / 2
    F = torch.tensor([[0.0, 4.0, 1.0, 8.0, 3.0], [2.0, 4.0, 3.0, 8.0, 3.0]], requires_grad=True)
    out = Unrolled(state=None, iterations=[1, 2], objectives=F)
    loss = MetaLoss("mean", reduction="cvar", tail=0.4)(out)
    assert float(loss.detach()) == pytest.approx(6.0)
    loss.backward()
    # only the two worst instances receive gradient, each 1/2 (instance) x 1/2 (iteration)
    assert torch.equal(F.grad, torch.tensor([[0.0, 0.25, 0.0, 0.25, 0.0]] * 2))
    # tail = 1 is the mean; a tail below one instance still takes the worst one
    with torch.no_grad():
        assert float(MetaLoss("mean", reduction="cvar", tail=1.0)(out)) == pytest.approx(float(F.mean()))
        assert float(MetaLoss("mean", reduction="cvar", tail=1e-6)(out)) == pytest.approx(8.0)


def test_log_gap_loss_matches_its_formula():
    fam = LeastSquaresFamily(d=6, m=9, noise_std=0.1)
    p = fam.sample(4, 0)
    ref = reference(p)
    solver = LGD(hidden=8, expansion=10.0).double()
    out = unroll(solver, p, solver.init(p, p.initial_point()), 5)
    gap = (out.objectives - ref.objective) / ref.gap_denominator
    expected = torch.log(gap + 1e-8).mean()
    assert MetaLoss("log_gap", 1e-8)(out, ref).item() == pytest.approx(expected.item(), rel=1e-12)


def test_unroll_records_and_detach():
    fam = LeastSquaresFamily(d=6, m=9)
    p = fam.sample(3, 0)
    solver = LGD(hidden=8, expansion=10.0).double()
    s0 = solver.init(p, p.initial_point())
    out = unroll(solver, p, s0, 6, start=4, record=[6, 10])
    assert out.iterations == [6, 10] and out.objectives.shape == (2, 3)
    assert out.state.k == 6 and out.state.x.requires_grad
    d = detach_state(out.state)
    assert not d.x.requires_grad and d.k == 6


# ----- estimators -----------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["last", "mean", "weighted"])
def test_truncated_equals_full_when_segment_equals_unroll(loss):
    p = LeastSquaresFamily(d=6, m=9, noise_std=0.1).sample(5, 1)
    solver = LGD(hidden=16, expansion=10.0).double()
    with torch.no_grad():
        solver.net[4].weight.normal_(0, 0.1, generator=torch.Generator().manual_seed(0))
    K, ml = 12, MetaLoss(loss)
    full = grads_of(FullBackprop(checkpoint=False), solver, p, K, ml)
    trunc = grads_of(TruncatedBackprop(K, checkpoint=False), solver, p, K, ml)
    assert torch.equal(full.loss, trunc.loss)
    for a, b in zip(full.grads, trunc.grads):
        assert torch.equal(a, b)
    # gradient checkpointing recomputes the same numbers
    remat = grads_of(FullBackprop(checkpoint=True), solver, p, K, ml)
    for a, b in zip(full.grads, remat.grads):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
    assert isinstance(make_estimator(K, K), FullBackprop)
    assert isinstance(make_estimator(K, 4), TruncatedBackprop)


def test_truncated_gradient_is_the_mean_of_segment_gradients_with_detached_states():
    p = LassoFamily(m=8, n=16, nnz=3).sample(4, 2)
    solver = make_solver("math_l2o", seed=0).double()
    params = trainable(solver)
    K, S, ml = 10, 4, MetaLoss("mean")
    est = grads_of(TruncatedBackprop(S, checkpoint=True), solver, p, K, ml)
    # by hand: segments (0,4], (4,8], (8,10], each from the detached state of the previous
    state = solver.init(p, p.initial_point())
    expected = [torch.zeros_like(q) for q in params]
    total = 0.0
    for a, b in [(0, 4), (4, 8), (8, 10)]:
        out = unroll(solver, p, detach_state(state), b - a, start=a)
        seg = ml(out)
        for e, g in zip(expected, torch.autograd.grad(seg / 3, params, allow_unused=True)):
            if g is not None:
                e += g
        total += seg.item() / 3
        state = out.state
    assert float(est.loss) == pytest.approx(total, rel=1e-12)
    for g, e in zip(est.grads, expected):
        torch.testing.assert_close(g if g is not None else torch.zeros_like(e), e, rtol=1e-10, atol=1e-14)
    full = grads_of(FullBackprop(), solver, p, K, ml)
    assert not all(torch.allclose(a, b) for a, b in zip(full.grads, est.grads) if a is not None)


def test_update_per_segment_yields_one_estimate_per_segment():
    p = LeastSquaresFamily(d=6, m=9).sample(3, 0)
    solver = LGD(hidden=8, expansion=10.0).double()
    ests = list(TruncatedBackprop(4, update_per_segment=True).estimates(solver, p, 10, MetaLoss("mean")))
    assert [e.iterations for e in ests] == [4, 4, 2]


def test_checkpointing_keeps_activations_out_of_the_graph():
    """Bytes saved for backward outside checkpointed regions: per-step remat stores the
    iterates only, not the network's (B * n, hidden) activations."""
    p = LeastSquaresFamily(d=16, m=12).sample(8, 0)
    solver = LGD(hidden=256, expansion=10.0)
    p32 = p.to(dtype=torch.float32)

    def saved_bytes(checkpoint: bool, K: int) -> int:
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = unroll(solver, p32, solver.init(p32, p32.initial_point()), K, checkpoint=checkpoint)
        del out
        return total

    plain, remat = saved_bytes(False, 40), saved_bytes(True, 40)
    assert remat * 20 < plain
    assert saved_bytes(True, 80) < 2.5 * remat  # grows with the iterates only


# ----- the learner and the NaN/Inf guard --------------------------------------------------------------


def _weights(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_learner_rejects_nan_and_restores_weights_and_optimizer():
    solver = LGD(hidden=8, expansion=10.0).double()
    params = trainable(solver)
    opt = torch.optim.Adam(params, lr=0.1)
    learner = Learner(solver, opt)
    good = [torch.ones_like(q) for q in params]
    out = learner.step(iter([Estimate(torch.tensor(1.0), good, 1)]))
    assert not out.rejected
    w0, s0 = _weights(solver), {k: v.clone() for k, v in opt.state[params[0]].items()}
    # a good segment update followed by a NaN segment: the whole step is undone
    bad = [torch.full_like(q, math.nan) for q in params]
    out = learner.step(iter([Estimate(torch.tensor(1.0), good, 1), Estimate(torch.tensor(2.0), bad, 1)]))
    assert out.rejected and "meta-gradient" in out.reason
    assert _same(_weights(solver), w0)
    assert all(torch.equal(v, s0[k]) for k, v in opt.state[params[0]].items())
    out = learner.step(iter([Estimate(torch.tensor(math.inf), good, 1)]))
    assert out.rejected and "loss" in out.reason and _same(_weights(solver), w0)


def test_learner_rejects_an_update_that_overflows_the_weights():
    solver = LGD(hidden=8, expansion=10.0)
    params = trainable(solver)
    learner = Learner(solver, torch.optim.SGD(params, lr=1e30))
    w0 = _weights(solver)
    out = learner.step(iter([Estimate(torch.tensor(1.0), [torch.full_like(q, 1e30) for q in params], 1)]))
    assert out.rejected and "weights" in out.reason and _same(_weights(solver), w0)


def test_gradient_clipping():
    solver = LGD(hidden=8, expansion=10.0).double()
    params = trainable(solver)
    learner = Learner(solver, torch.optim.SGD(params, lr=1.0), grad_clip=1.0)
    w0 = [q.detach().clone() for q in params]
    g = [torch.full_like(q, 10.0) for q in params]
    out = learner.step(iter([Estimate(torch.tensor(1.0), g, 1)]))
    norm = math.sqrt(sum(float((q.detach() - a).square().sum()) for q, a in zip(params, w0)))
    assert norm == pytest.approx(1.0, rel=1e-6)  # clip_grad_norm_ divides by (norm + 1e-6)
    assert out.grad_norm == pytest.approx(10 * math.sqrt(sum(q.numel() for q in params)))


def test_a_forced_nan_is_rejected_and_training_recovers(tmp_path):
    cfg = tiny(steps=8, val_every=4, checkpoint_every=4)
    trainer = Trainer(cfg, tmp_path / "run")
    poisoned = {"on": False}

    def poison(module, inputs, output):  # NaN in the network's output during meta-step 3 only
        return output * math.nan if poisoned["on"] else output

    trainer.solver.net.register_forward_hook(poison)
    seen = {}

    def callback(info):
        seen[info.step] = _weights(info.trainer.solver)
        poisoned["on"] = info.step == 2

    trainer.callback = callback
    with pytest.warns(RuntimeWarning, match="step 3 rejected"):
        res = trainer.fit()
    assert [r["rejected"] for r in res.log] == [0, 0, 1, 0, 0, 0, 0, 0]
    assert math.isnan(res.log[2]["loss"])
    assert _same(seen[3], seen[2])  # the rejected step left the weights as they were
    assert not _same(seen[4], seen[3])  # and training went on
    assert all(torch.isfinite(v).all() for v in seen[8].values())
    assert res.rejected == 1 and math.isfinite(res.final_val_gap)
    metrics = load_run(tmp_path / "run").metrics
    assert metrics["rejected_steps"] == 1
    assert (tmp_path / "run" / "log.csv").read_text().splitlines()[3].split(",")[5] == "1"


def test_prepare_run_trains_resumes_reuses_and_refuses_another_config(tmp_path):
    from l2o.training import prepare_run, run_status
    from l2o.training.checkpoint import read_json

    config, out = tiny(steps=4, checkpoint_every=2), tmp_path / "run"
    assert run_status(config, out) == "new"
    assert prepare_run(config, out) == "trained"
    assert run_status(config, out) == "finished"
    weights = (out / "weights.safetensors").read_bytes()
    assert prepare_run(config, out) == "reused" and (out / "weights.safetensors").read_bytes() == weights
    longer = tiny(steps=6, checkpoint_every=2)
    with pytest.raises(ValueError, match="holds a different training run"):
        prepare_run(longer, out)
    # a run cut off after its checkpoint at step 2 is resumed to the end
    cut = tmp_path / "cut"
    stop = {"n": 0}

    def kill(info):
        stop["n"] += 1
        if stop["n"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        l2o.training.train(config, cut, callback=kill)
    assert run_status(config, cut) == "cut_off"
    assert prepare_run(config, cut) == "resumed"
    assert read_json(cut / "metrics.json")["steps_done"] == 4
