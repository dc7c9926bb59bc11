"""The coordinatewise LSTM core (l2o.learned.coordinatewise) and the four solvers built on it,
against a straightforward reference: a textbook LSTM cell (sigmoid / tanh gates, one
coordinate per row, input and hidden products separate) and each solver's update written
out from its paper's formula, with the same parameters.

Iterates over several steps agree to 1e-6 (float32) / 1e-12 (float64), on the no-grad
(chunked) path with chunks that split the batch and split instances, and on the autograd
path; the meta-gradients agree too.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import l2o
from l2o.learned import coordinatewise
from l2o.learned.blackbox import L2ODM, RNNprop
from l2o.learned.coordinatewise import CoordinatewiseLSTM
from l2o.learned.go_math_l2o import GOMathL2O
from l2o.learned.math_l2o import MathL2O

TOL = {torch.float32: 1e-6, torch.float64: 1e-12}
STEPS = 6


# ----- reference -------------------------------------------------------------------------
def ref_lstm(lstm: torch.nn.LSTM, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
    """Textbook LSTM step: x ``(N, k)``, h, c ``(L, N, H)`` (rows are coordinates)."""
    hs, cs = [], []
    for layer in range(lstm.num_layers):
        w_ih, w_hh = getattr(lstm, f"weight_ih_l{layer}"), getattr(lstm, f"weight_hh_l{layer}")
        b_ih, b_hh = getattr(lstm, f"bias_ih_l{layer}"), getattr(lstm, f"bias_hh_l{layer}")
        gates = x @ w_ih.T + b_ih + h[layer] @ w_hh.T + b_hh
        i, f, g, o = gates.chunk(4, 1)
        c_new = torch.sigmoid(f) * c[layer] + torch.sigmoid(i) * torch.tanh(g)
        x = torch.sigmoid(o) * torch.tanh(c_new)
        hs.append(x)
        cs.append(c_new)
    return x, torch.stack(hs), torch.stack(cs)


def ref_network(solver, feats: list[torch.Tensor], h, c):
    """(B, n) features -> per-head (B, n) raw outputs, with the textbook LSTM."""
    B, n = feats[0].shape
    p = next(solver.parameters())
    x = torch.stack([f.to(p.dtype) for f in feats], -1).reshape(B * n, -1)
    if isinstance(solver, RNNprop):
        x = F.elu(x @ solver.inp.weight.T + solver.inp.bias)
    out, h, c = ref_lstm(solver.lstm.lstm, x, h, c)
    if isinstance(solver, MathL2O | GOMathL2O):
        out = torch.relu(out @ solver.linear.weight.T + solver.linear.bias)
        heads = solver.heads.items()
    else:
        heads = [("out", solver.out)]
    return {name: (out @ m.weight.T + m.bias).reshape(B, n) for name, m in heads}, h, c


def ref_run(solver, problem, steps: int) -> list[torch.Tensor]:
    """The solver's iterates x_1..x_steps by the papers' formulas and the textbook LSTM."""
    x = problem.initial_point()
    B, n = x.shape
    p = next(solver.parameters())
    L, H = solver.lstm.layers, solver.lstm.hidden_size
    h = torch.zeros(L, B * n, H, dtype=p.dtype)
    c = torch.zeros_like(h)
    y, v, m, mom_v = x.clone(), torch.zeros_like(x), torch.zeros_like(x), torch.zeros_like(x)
    if isinstance(solver, GOMathL2O):
        def norm(t):
            s = torch.linalg.vector_norm(torch.where(torch.isfinite(t), t, torch.zeros_like(t)), dim=-1)
            return torch.where(s > 0, s, torch.ones_like(s)).unsqueeze(-1)
        lo, up = problem.subdifferential_bounds(x)
        scales = (norm(problem.grad(x).detach()), norm(lo.detach()), norm(up.detach()))
    xs = []
    for k in range(1, steps + 1):
        if isinstance(solver, MathL2O):
            g_y = problem.grad(y)
            raw, h, c = ref_network(solver, [g_y.detach(), y.detach()], h, c)
            coef = {}
            for name, r in raw.items():
                kind, scale = solver.activations[name]
                act = {"sigmoid": torch.sigmoid, "softplus": F.softplus, "identity": lambda z: z}[kind]
                coef[name] = (scale * act(r)).to(x)
            t = (solver.step_scale / problem.smoothness()).unsqueeze(-1) * coef["P"]
            u = y - t * g_y
            if "B" in coef:
                u = coef["B"] * u + (1 - coef["B"]) * (x - t * problem.grad(x)) + coef["b1"]
            x_new = problem.prox(u, t)
            y = x_new + coef["A"] * (x_new - x) if "A" in coef else x_new
            if "b2" in coef:
                y = y + coef["b2"]
            x = x_new
        elif isinstance(solver, GOMathL2O):
            g = problem.grad(x)
            lo, up = problem.subdifferential_bounds(x)
            feats = [torch.nan_to_num(a.detach() / s, nan=0.0, posinf=1.0, neginf=-1.0)
                     for a, s in zip((g, lo, up), scales, strict=True)]
            raw, h, c = ref_network(solver, feats, h, c)
            R = (2 * solver.step_scale / problem.smoothness()).unsqueeze(-1) * torch.sigmoid(raw["R"].to(x))
            x_new = problem.prox(x - R * g - 2 * torch.sigmoid(raw["Q"].to(x)) * v, R)
            b = torch.sigmoid(raw["B"].to(x))
            v = b * v + (1 - b) * (x - x_new)
            x = x_new
        else:
            g = problem.grad(x)
            lo, up = problem.subdifferential_bounds(x)
            g = torch.clamp(torch.zeros_like(g), min=g + lo, max=g + up)
            if isinstance(solver, L2ODM):
                gn = g.detach().to(p.dtype)
                pp = solver.preprocess
                feats = [torch.clamp(torch.log(gn.abs()) / pp, -1.0, 1.0), torch.clamp(gn * math.exp(pp), -1.0, 1.0)]
                raw, h, c = ref_network(solver, feats, h, c)
                x = x + solver.output_scale * raw["out"].to(x)
            else:
                g = g.detach()
                m = solver.beta1 * m + (1 - solver.beta1) * g
                mom_v = solver.beta2 * mom_v + (1 - solver.beta2) * g * g
                root = torch.sqrt(mom_v / (1 - solver.beta2**k)) + solver.eps
                raw, h, c = ref_network(solver, [g / root, m / (1 - solver.beta1**k) / root], h, c)
                x = x - solver.alpha * torch.tanh(raw["out"]).to(x)
        xs.append(x)
    return xs


def run(solver, problem, steps: int) -> list[torch.Tensor]:
    state = solver.init(problem, problem.initial_point())
    xs = []
    for _ in range(steps):
        state = solver.step(problem, state)
        xs.append(state.x)
    return xs


def make(name: str, dtype: torch.dtype):
    solver = {
        "math_l2o_PA": lambda: MathL2O(seed=1),
        "math_l2o_full": lambda: MathL2O(variant="full", seed=2),
        "math_l2o_logistic": lambda: MathL2O(variant="full", heads="logistic", seed=3),
        "go_math_l2o": lambda: GOMathL2O(seed=4),
        "l2o_dm": lambda: L2ODM(seed=5, output_scale=0.1),
        "rnnprop": lambda: RNNprop(seed=6),
    }[name]().to(dtype)
    problem = l2o.LassoFamily(m=12, n=10, nnz=3).sample(5, generator=7, dtype=dtype)
    return solver, problem


SOLVERS = ("math_l2o_PA", "math_l2o_full", "math_l2o_logistic", "go_math_l2o", "l2o_dm", "rnnprop")


def assert_close_lists(got, want, tol, scale=None):
    """max |a - b| <= tol * max(1, max |b|) for each pair (or tol * scale, one scale for all)."""
    for k, (a, b) in enumerate(zip(got, want, strict=True)):
        err = (a - b).abs().max().item()
        s = max(1.0, b.abs().max().item()) if scale is None else scale
        assert err <= tol * s, f"item {k + 1}: max error {err:.3g} > {tol:g} x {s:.3g}"


# ----- tests -----------------------------------------------------------------------------
def use_backend(backend: str, monkeypatch) -> None:
    """Run the no-grad path's cell update natively (skipped where no C compiler builds it) or eagerly."""
    if backend == "native":
        if coordinatewise.cell_backend() != "native":
            pytest.skip(f"native cell unavailable: {coordinatewise.cell_backend()}")
    else:
        monkeypatch.setitem(coordinatewise._NATIVE, "lib", None)


@pytest.mark.parametrize("backend", ["native", "eager"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", SOLVERS)
@pytest.mark.parametrize("chunk", [4096, 10, 3])  # one chunk; 1-2 instances per chunk; 3-6 columns (splits instances)
def test_no_grad_iterates_equal_reference(name, dtype, chunk, backend, monkeypatch):
    monkeypatch.setattr(coordinatewise, "CHUNK", chunk)
    use_backend(backend, monkeypatch)
    solver, problem = make(name, dtype)
    with torch.no_grad():
        got = run(solver, problem, STEPS)
        want = ref_run(solver, problem, STEPS)
    assert not got[-1].requires_grad
    assert got[-1].dtype == dtype and bool(torch.isfinite(got[-1]).all())
    assert (got[-1] - problem.initial_point()).abs().max() > 1e-3  # the iterates move
    assert_close_lists(got, want, TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", SOLVERS)
def test_autograd_iterates_and_meta_gradients_equal_reference(name, dtype):
    solver, problem = make(name, dtype)
    got = run(solver, problem, STEPS)
    assert got[-1].requires_grad
    grads = torch.autograd.grad(problem.objective(got[-1]).sum(), list(solver.parameters()))
    want = ref_run(solver, problem, STEPS)
    ref_grads = torch.autograd.grad(problem.objective(want[-1]).sum(), list(solver.parameters()))
    assert_close_lists([x.detach() for x in got], [x.detach() for x in want], TOL[dtype])
    assert any(g.abs().max() > 0 for g in grads)
    # gradients: relative to the largest gradient entry (float32 sums over the unroll round at ~1e-7 each)
    assert_close_lists(grads, ref_grads, TOL[dtype], scale=max(1.0, max(g.abs().max().item() for g in ref_grads)))


def test_gate_weights_and_state_layout():
    core = CoordinatewiseLSTM(3, hidden_size=4, layers=2)
    (w0, b0), (w1, b1) = core.gate_weights()
    assert w0.shape == (16, 7) and w1.shape == (16, 8) and b0.shape == (16, 1)
    lstm = core.lstm
    torch.testing.assert_close(w0[8:12], -2 * torch.cat([lstm.weight_ih_l0, lstm.weight_hh_l0], 1)[8:12])
    torch.testing.assert_close(w0[:8], torch.cat([lstm.weight_ih_l0, lstm.weight_hh_l0], 1)[:8])
    h, c = core.initial_state(2, 5)
    assert h.shape == c.shape == (2, 2, 4, 5) and not h.any()


def test_state_dict_names_unchanged():
    """Bundled safetensors name the nn.LSTM's parameters: lstm.lstm.weight_ih_l0, ..."""
    names = set(MathL2O().state_dict())
    assert {"lstm.lstm.weight_ih_l0", "lstm.lstm.weight_hh_l1", "lstm.lstm.bias_ih_l0", "linear.weight",
            "heads.P.weight", "heads.A.bias"} <= names
    assert {"inp.weight", "lstm.lstm.weight_ih_l0", "out.bias"} <= set(RNNprop().state_dict())


@pytest.mark.parametrize("name", SOLVERS)
def test_matrix_products_are_the_layers_only(name):
    """One step's matrix-product FLOPs (FlopCounterMode) = one GEMM per layer, 2 N (in + H) 4H per LSTM
    layer and 2 N in out per linear map (N = B n), plus the problem's gradient products: nothing else."""
    solver, problem = make(name, torch.float64)
    B, n = problem.batch_size, problem.dim
    lstm = solver.lstm.lstm
    expected = 0
    for layer in range(lstm.num_layers):
        k_in = lstm.input_size if layer == 0 else lstm.hidden_size
        expected += 2 * B * n * (k_in + lstm.hidden_size) * 4 * lstm.hidden_size
    expected += sum(2 * B * n * m.in_features * m.out_features
                    for m in solver.modules() if isinstance(m, torch.nn.Linear))
    x = problem.initial_point()
    with torch.no_grad():
        state = solver.init(problem, x)
        with FlopCounterMode(display=False) as grad_counter:
            problem.grad(x)
        grads = 2 if getattr(solver, "variant", None) == "full" else 1  # full Math-L2O: grad f(x) and grad f(y)
        with FlopCounterMode(display=False) as counter:
            solver.step(problem, state)
    assert counter.get_total_flops() == expected + grads * grad_counter.get_total_flops()


@pytest.mark.parametrize("name", SOLVERS)
def test_float32_network_on_float64_problem(name, monkeypatch):
    """The default: float32 weights, float64 instances (features cast on the way in, outputs on the way out)."""
    monkeypatch.setattr(coordinatewise, "CHUNK", 10)
    solver, _ = make(name, torch.float32)
    _, problem = make(name, torch.float64)
    with torch.no_grad():
        got = run(solver, problem, STEPS)
        want = ref_run(solver, problem, STEPS)
    assert got[-1].dtype == torch.float64
    assert_close_lists(got, want, TOL[torch.float32])


@pytest.fixture
def three_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("backend", ["native", "eager", "native, rows split among 3 threads"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_core_state_and_outputs_equal_textbook_lstm_with_saturated_gates(dtype, backend, monkeypatch, request):
    """One no-grad step of the core (chunks that split instances) against ``ref_lstm``: outputs, h and c,
    with pre-activations from -90 to 90 (the native exp clamps at +-708 / +-87) and a large cell state."""
    monkeypatch.setattr(coordinatewise, "CHUNK", 7)
    use_backend(backend.split(",")[0], monkeypatch)
    if "threads" in backend:
        request.getfixturevalue("three_threads")
        monkeypatch.setattr(coordinatewise, "_PARALLEL_GRAIN", 1)
    gen = torch.Generator().manual_seed(11)
    core = CoordinatewiseLSTM(3, hidden_size=4, layers=2).to(dtype)
    head = torch.nn.Linear(4, 2).to(dtype)
    B, n = 3, 9
    feats = [30 * torch.randn(B, n, generator=gen, dtype=dtype) for _ in range(3)]
    h = torch.randn(B, 2, 4, n, generator=gen, dtype=dtype)
    c = 50 * torch.randn(B, 2, 4, n, generator=gen, dtype=dtype)
    with torch.no_grad():
        out, h1, c1 = core(feats, h, c, heads=[head])
        x = torch.stack(feats, -1).reshape(B * n, 3)
        def to_rows(t):  # (B, L, H, n) -> (L, B n, H), the reference's layout
            return t.permute(1, 0, 3, 2).reshape(2, B * n, 4)

        top, h_ref, c_ref = ref_lstm(core.lstm, x, to_rows(h), to_rows(c))
        out_ref = (top @ head.weight.T + head.bias).reshape(B, n, 2).permute(0, 2, 1)
    assert_close_lists([out, to_rows(h1), to_rows(c1)], [out_ref, h_ref, c_ref], TOL[dtype])


@pytest.mark.parametrize("backend", ["native", "eager"])
def test_nan_in_the_state_propagates(backend, monkeypatch):
    use_backend(backend, monkeypatch)
    core = CoordinatewiseLSTM(2, hidden_size=3, layers=1).double()
    h, c = core.initial_state(2, 4)
    c[0, 0, 1, 2] = float("nan")
    with torch.no_grad():
        out, h1, c1 = core([torch.ones(2, 4, dtype=torch.float64)] * 2, h, c, heads=[torch.nn.Linear(3, 1).double()])
    assert torch.isnan(c1[0, 0, 1, 2]) and torch.isnan(h1[0, 0, 1, 2]) and torch.isnan(out[0, 0, 2])
    assert torch.isfinite(c1[1]).all() and torch.isfinite(out[1]).all() and int(torch.isnan(c1).sum()) == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_native_exp_within_one_ulp_of_torch_exp(dtype):
    """The native cell's inlined exp (range reduction and a Chebyshev polynomial) against torch.exp
    evaluated in float64 (float32) or float64 with a relative-error bound of 2 ulp (float64: torch.exp's own
    error adds up to half an ulp); clamping at the ends of the range and NaN propagation."""
    if coordinatewise.cell_backend() != "native":
        pytest.skip(f"native cell unavailable: {coordinatewise.cell_backend()}")
    lib = coordinatewise._load_native()
    fn = lib.l2o_exp_f64 if dtype == torch.float64 else lib.l2o_exp_f32
    top = 700.0 if dtype == torch.float64 else 87.0
    x = torch.cat([torch.linspace(-top, top, 200_001, dtype=torch.float64), torch.tensor([0.0, 1e-300, -1e-300])])
    x = x.to(dtype)
    y = torch.empty_like(x)
    fn(x.data_ptr(), y.data_ptr(), x.numel())
    ref = torch.exp(x.double())
    rel = ((y.double() - ref).abs() / ref).max().item()
    assert rel <= 2 * torch.finfo(dtype).eps, f"max relative error {rel:.3g}"
    ends = torch.tensor([-1e4, 1e4, float("-inf"), float("inf"), float("nan")], dtype=dtype)
    y = torch.empty_like(ends)
    fn(ends.data_ptr(), y.data_ptr(), ends.numel())
    lo, hi = (-708.0, 708.0) if dtype == torch.float64 else (-87.0, 88.0)
    want = torch.exp(torch.tensor([lo, hi, lo, hi], dtype=torch.float64))
    assert torch.allclose(y[:4].double(), want, rtol=4 * torch.finfo(dtype).eps, atol=0)
    assert torch.isnan(y[4])


def test_backend_fallbacks(monkeypatch):
    """L2O_NATIVE_CELL=0 or no compiler: the eager ops, saying why; columns not contiguous: eager for that call."""
    monkeypatch.setattr(coordinatewise, "_NATIVE", {})
    monkeypatch.setenv("L2O_NATIVE_CELL", "0")
    assert coordinatewise.cell_backend() == "eager (L2O_NATIVE_CELL=0)"
    monkeypatch.setattr(coordinatewise, "_NATIVE", {})
    monkeypatch.delenv("L2O_NATIVE_CELL")
    monkeypatch.setattr(coordinatewise.shutil, "which", lambda name: None)
    assert coordinatewise.cell_backend().startswith("eager (no C compiler")
    assert coordinatewise._native_cell(torch.float64) is None

    def never(*args):
        raise AssertionError("the native function must not be called on strided columns")

    g = torch.zeros(1, 8, 6, dtype=torch.float64)[:, :, ::2]
    c = torch.zeros(1, 2, 3, dtype=torch.float64)
    assert not coordinatewise._native_step(never, g, c, c.clone(), c.clone(), c.clone())
