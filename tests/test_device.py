"""The GPU path, CPU side: ``device=`` / ``--device`` with a clear error where CUDA is absent, the
safeguard's masked step (no host synchronisation) equal to its compacting step, and the
synchronisations counted. The CUDA tests at the end skip cleanly on a machine without a GPU
(``benchmarks/gpu_check.sh`` runs them where one is)."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import l2o
from l2o.cli import app
from l2o.evaluation.solve import to_device
from l2o.learned import L2ODM
from l2o.safeguard import Safeguard
from l2o.training import RunConfig, train

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs CUDA (torch.cuda.is_available() is False)")
no_cuda = pytest.mark.skipif(CUDA, reason="checks the error on a machine without CUDA")


# ----- counting host synchronisations on the CPU --------------------------------------------------


class SyncCounter:
    """Counts the tensor operations that synchronise a CUDA device with the host: reading a
    value (``item``, ``bool``, ``int``, ``float``, ``tolist``, ``__index__``), ``nonzero`` and
    boolean-mask indexing (whose output size the host must learn). Counting pauses inside
    ``paused()`` (the wrapped solvers' own steps)."""

    METHODS = ("item", "__bool__", "__int__", "__float__", "tolist", "__index__", "nonzero")

    def __init__(self, monkeypatch):
        self.count, self.depth = 0, 0
        for name in self.METHODS:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._wrap(original))
        monkeypatch.setattr(torch, "nonzero", self._wrap(torch.nonzero))
        getitem = torch.Tensor.__getitem__

        def masked_getitem(t, idx):
            items = idx if isinstance(idx, tuple) else (idx,)
            if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items) and not self.depth:
                self.count += 1
            return getitem(t, idx)

        monkeypatch.setattr(torch.Tensor, "__getitem__", masked_getitem)

    def _wrap(self, original):
        counter = self

        def counted(*args, **kwargs):
            if not counter.depth:
                counter.count += 1
            counter.depth += 1
            try:
                return original(*args, **kwargs)
            finally:
                counter.depth -= 1

        return counted

    @contextlib.contextmanager
    def paused(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1


def opaque(solver, counter: SyncCounter):
    """``solver`` whose init and step are not counted (what the safeguard itself does is)."""

    class Opaque:
        def __getattr__(self, name):
            return getattr(solver, name)

        def init(self, problem, x0):
            with counter.paused():
                return solver.init(problem, x0)

        def step(self, problem, state):
            with counter.paused():
                return solver.step(problem, state)

    return Opaque()


def lasso(batch=12, dtype=torch.float64):
    return l2o.LassoFamily(m=20, n=40, nnz=3).sample(batch, generator=0, dtype=dtype)


def learned_model():
    torch.manual_seed(0)
    return L2ODM(horizon=20).double()


@dataclasses.dataclass
class RelaxedState:
    x: torch.Tensor


class Relaxed:
    """A stand-in learned solver with a per-row relaxation of the proximal-gradient step,
    x+ = x + c_i (T(x) - x), c_i in (0.5, 2.5) a function of instance i's data: some rows pass the
    safeguard's checks, others fail them (over-relaxed near or beyond 2) and fall back."""

    name, handles_nonsmooth, horizon = "relaxed", True, 20

    def check_problem(self, problem):
        pass

    def init(self, problem, x0):
        return RelaxedState(x=x0.clone())

    def step(self, problem, state):
        c = 0.5 + 2.0 * torch.sigmoid(10 * problem.b[:, :1].to(state.x.dtype))  # per instance, in (0.5, 2.5)
        return RelaxedState(x=state.x + c * (problem.prox_grad(state.x) - state.x))


@pytest.mark.parametrize("learned", [Relaxed, learned_model], ids=["relaxed", "lstm"])
@pytest.mark.parametrize("rule,check_every,after", [("residual", 1, "learned"), ("descent", 3, "learned"),
                                                     ("descent", 1, "fallback"), ("residual", 2, "fallback")])
def test_masked_safeguard_equals_compacting(rule, check_every, after, learned):
    """The masked step (both solvers on every row, torch.where) keeps what the compacting
    step keeps: the same fallback decisions and counters, and the same iterates up to rounding,
    for 40 iterations behind FISTA with restart, of a learned stand-in that some rows accept and
    others reject, and of an untrained LSTM (rejections, back-offs, restarts). (Later, at machine
    precision, a check is a tie F(y) = F(anchor) to 1e-16 that rounding may tip either way.)"""
    problem = lasso()
    runs = []
    for sync_free in (False, True):
        safe = Safeguard(learned() if callable(learned) else learned, l2o.make_solver("fista_restart"), rule=rule,
                         check_every=check_every, after_horizon=after, sync_free=sync_free)
        state = safe.init(problem, problem.initial_point())
        xs, fired = [], []
        with torch.no_grad():
            for _ in range(40):
                state = safe.step(problem, state)
                xs.append(state.x)
                fired.append(state.fired)
        runs.append((torch.stack(xs), torch.stack(fired), state))
    (x0, f0, s0), (x1, f1, s1) = runs
    assert bool(f0.any()) and bool(s0.fallbacks.gt(0).any())  # fallbacks happened
    if learned is Relaxed:
        assert bool((~f0).any()) and bool((s0.fallbacks < s0.checks).any())  # and accepted learned steps
    assert torch.equal(f1, f0)  # the same decisions, row by row, at every iteration
    for name in ("checks", "fallbacks", "streak", "fallback_left"):
        assert torch.equal(getattr(s1, name), getattr(s0, name)), name
    # the same iterates up to rounding: a sub-batch's products round differently from the whole
    # batch's, and an over-relaxed learned step (c up to 2.5) amplifies that within a block
    torch.testing.assert_close(x1, x0, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(s1.anchor, s0.anchor, rtol=1e-7, atol=1e-9)


def test_safeguard_host_synchronisations_counted(monkeypatch):
    """Compacting: up to 3 synchronisations per step (rows in a fallback block, accepted rows,
    finished blocks) plus the indexing they drive; masked: none."""
    problem = lasso()
    counts = {}
    for sync_free in (False, True):
        counter = SyncCounter(monkeypatch)
        safe = Safeguard(opaque(Relaxed(), counter), opaque(l2o.make_solver("fista_restart"), counter),
                         rule="descent", sync_free=sync_free)
        with counter.paused():
            state = safe.init(problem, problem.initial_point())
        with torch.no_grad():
            for _ in range(30):
                state = safe.step(problem, state)
        counts[sync_free] = counter.count
        monkeypatch.undo()
    assert counts[True] == 0
    assert counts[False] >= 30  # at least one per step (the count of rows in a fallback block)


def test_solve_loop_synchronises_only_at_checks(monkeypatch):
    """Between two checks of the criterion, ``solve`` reads nothing back from the device."""
    solve_mod = importlib.import_module("l2o.evaluation.solve")
    problem = lasso()
    counter = SyncCounter(monkeypatch)
    fista = opaque(l2o.make_solver("fista_restart"), counter)
    checks = []
    original = solve_mod.Certificate.done

    def done(self, *args, **kwargs):
        checks.append(counter.count)
        with counter.paused():
            return original(self, *args, **kwargs)

    monkeypatch.setattr(solve_mod.Certificate, "done", done)
    with counter.paused():
        x0 = problem.initial_point()
    solve_mod._loop(fista, problem, problem.as_float64(), x0, solve_mod.Certificate(1e-30), 40, 10)
    assert len(checks) == 5  # k = 0, 10, 20, 30, 40
    between = [b - a for a, b in zip(checks, checks[1:])]
    # what a check does after the criterion (retire rows: any(), at most a few reads); nothing per iteration
    assert max(between) <= 3, between


# ----- device= and --device without CUDA ------------------------------------------------------------


@no_cuda
def test_cuda_without_a_gpu_is_one_clear_error(tmp_path):
    problem = lasso(2)
    with pytest.raises(ValueError, match=r"^device 'cuda' needs CUDA, but torch.cuda.is_available\(\) is False"):
        l2o.solve(l2o.make_solver("fista"), problem, device="cuda")
    with pytest.raises(ValueError, match=r"^device 'cpu0' is not a torch device"):
        to_device(l2o.make_solver("fista"), problem, "cpu0")
    cfg = RunConfig.from_dict({"problem": {"family": "lasso", "m": 8, "n": 16, "nnz": 3}, "solver": {"name": "lfista"},
                               "training": {"steps": 1, "batch_size": 2, "unroll": 4, "val_batch": 0}})
    with pytest.raises(ValueError, match=r"device = 'cuda' but CUDA is not available"):
        train(cfg, tmp_path / "run", device="cuda")
    assert not (tmp_path / "run").exists()
    data = tmp_path / "p.npz"
    A = problem.A if problem.A.ndim == 2 else problem.A[0]
    np.savez(data, A=A.numpy(), b=problem.b[0].numpy(), lam=0.1)
    res = CliRunner().invoke(app, ["solve", "--problem", "lasso", "--data", str(data), "--device", "cuda"])
    assert res.exit_code == 2
    assert res.stderr.strip() == ("error: --device 'cuda' needs CUDA, but torch.cuda.is_available() is False here; "
                                  "use device 'cpu'")


def test_solve_device_cpu_is_the_default_solve():
    problem = lasso(4)
    a = l2o.solve(l2o.make_solver("fista_restart"), problem, tol=1e-8)
    b = l2o.solve(l2o.make_solver("fista_restart"), problem, tol=1e-8, device="cpu")
    assert torch.equal(a.x, b.x) and torch.equal(a.iterations, b.iterations)


# ----- on a GPU -----------------------------------------------------------------------------------


@needs_cuda
def test_cuda_solve_equals_cpu():
    problem = lasso(16)
    cpu = l2o.solve(l2o.make_solver("fista_restart"), problem, tol=1e-8)
    gpu = l2o.solve(l2o.make_solver("fista_restart"), problem, tol=1e-8, device="cuda")
    assert gpu.x.device.type == "cuda" and bool(gpu.converged.all())
    torch.testing.assert_close(gpu.x.cpu(), cpu.x, rtol=1e-6, atol=1e-8)


@needs_cuda
def test_cuda_safeguard_step_makes_no_host_synchronisation():
    problem = lasso(64).to(device="cuda")
    safe = Safeguard(learned_model().cuda(), l2o.make_solver("fista_restart"), rule="descent")
    state = safe.init(problem, problem.initial_point())
    with torch.no_grad():
        state = safe.step(problem, state)  # warm-up (lazy caches)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(10):
                state = dataclasses.replace(safe.step(problem, state))
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert bool(torch.isfinite(state.x).all())


@needs_cuda
def test_cuda_training_equals_cpu(tmp_path):
    cfg = RunConfig.from_dict({"problem": {"family": "lasso", "m": 8, "n": 16, "nnz": 3}, "solver": {"name": "lfista"},
                               "training": {"steps": 3, "batch_size": 4, "unroll": 6, "val_batch": 4, "val_every": 1,
                                            "dtype": "float64"}})
    a = train(cfg, tmp_path / "cpu")
    b = train(cfg, tmp_path / "gpu", device="cuda")
    for (name, p), q in zip(a.solver.named_parameters(), b.solver.parameters()):
        torch.testing.assert_close(q.detach().cpu(), p.detach(), rtol=1e-6, atol=1e-9, msg=name)
