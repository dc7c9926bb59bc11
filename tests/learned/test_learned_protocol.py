"""The common test suite every learned solver must pass (DESIGN.md, "one common test suite").

Every case below (a registered learned solver, some in several configurations) is
paired with every small problem it accepts (``check_problem`` raising ``ValueError``
leaves the pair out). Each pair is checked for: dtype at the boundary (network in the
parameters' dtype, iterates in the problem's), batch invariance, determinism, stable
batch-first state shapes, ``select_state`` commuting with ``step``, a pure ``step``,
gradients reaching every parameter, no NaN from a zero or a large start, and (for the
unrolled LISTA / ALISTA) reuse of the last layer past the horizon. Loading through
``hparams`` + ``load_state_dict`` and the registry are checked at the end.
"""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch

import l2o
from l2o.learned import (
    ALISTA,
    GCNWMMSE,
    GNNWMMSE,
    IAIDNN,
    L2ODM,
    LFISTA,
    LGD,
    LISTA,
    LQN,
    GOMathL2O,
    MathL2O,
    RNNprop,
    StructuralMPNN,
    StructuralMPNNB,
    StructuralMPNNO,
)
from l2o.optimizers import select_state
from l2o.problems import MimoFamily
from l2o.registry import LEARNED, make_solver

B = 4
LASSO = l2o.LassoFamily(m=20, n=40, nnz=4, lam=0.1)
MIMO = MimoFamily(cells=2, users=2, tx_antennas=4, rx_antennas=2, streams=2)

PROBLEMS = {
    # LASSO with a shared dictionary (the only one LISTA / ALISTA accept)
    "lasso": lambda: LASSO.sample(B, 0),
    # noisy overdetermined least squares, one matrix per instance (smooth)
    "least_squares": lambda: l2o.LeastSquaresFamily(d=10, m=16, noise_std=0.1).sample(B, 0),
    # sparse logistic regression (nonsmooth, not least squares)
    "logistic_l1": lambda: l2o.LogisticFamily(n_samples=40, d=8, nnz=3, lam=0.1, penalty="l1").sample(B, 0),
    # box-constrained QP: r is an indicator, its subdifferential has infinite ends
    "box_qp": lambda: l2o.QuadraticFamily(n=12, condition_number=20.0, box=0.1).sample(B, 0),
    # MIMO weighted sum-rate (per-cell power budgets), 2 cells x 2 users, M = 4, N = d = 2
    "mimo": lambda: MIMO.sample(B, 0),
}
#: case id -> factory of a fresh float32 model. LISTA / ALISTA have a short horizon so
#: that 10-50 steps run past it.
CASES = {
    "lgd": lambda: LGD(hidden=32),
    "math_l2o_P": lambda: MathL2O(variant="P"),
    "math_l2o_PA": lambda: MathL2O(variant="PA"),
    "math_l2o_full": lambda: MathL2O(variant="full"),
    "math_l2o_logistic_heads": lambda: MathL2O(variant="full", heads="logistic"),
    "go_math_l2o": lambda: GOMathL2O(),
    "lista": lambda: LISTA(LASSO, horizon=8),
    "lista_ss": lambda: LISTA(LASSO, horizon=8, support_selection=True),
    "alista": lambda: ALISTA(LASSO, horizon=8),
    "alista_ss": lambda: ALISTA(LASSO, horizon=8, support_selection=True),
    "l2o_dm": lambda: L2ODM(),
    "rnnprop": lambda: RNNprop(),
    # short horizon so that the runs below cross into the template (FISTA) phase
    "lfista": lambda: LFISTA(horizon=8),
    "lfista_no_threshold": lambda: LFISTA(horizon=8, threshold=False),
    # short horizon: the 10-50 step runs below cross into the WMMSE tail
    "gnn_wmmse": lambda: GNNWMMSE(horizon=3, hidden=8),
    "gnn_wmmse_last": lambda: GNNWMMSE(horizon=3, hidden=8, tail="last", momentum=False),
    "iaidnn": lambda: IAIDNN(MIMO, horizon=3),
    "iaidnn_exact_last": lambda: IAIDNN(MIMO, horizon=3, inverse="exact", tail="last", init="random"),
    "gcn_wmmse": lambda: GCNWMMSE(horizon=3),
    "gcn_wmmse_random_last": lambda: GCNWMMSE(horizon=3, init="random", ma=True, tail="last"),
    # the MIMO problem above: M = 4, N = 2, d = 2; short horizon so that runs cross into the WMMSE tail
    "structural_mpnn": lambda: StructuralMPNN(tx_antennas=4, rx_antennas=2, streams=2, horizon=3, hidden=8),
    "structural_mpnn_b": lambda: StructuralMPNNB(tx_antennas=4, rx_antennas=2, streams=2, horizon=3, hidden=8),
    "structural_mpnn_o": lambda: StructuralMPNNO(tx_antennas=4, rx_antennas=2, streams=2, horizon=3, hidden=8),
    "lqn": lambda: LQN(hidden=8),
    "lqn_armijo_kappa": lambda: LQN(hidden=8, line_search="armijo", interval="kappa"),
}
UNROLLED = ["lista", "lista_ss", "alista", "alista_ss"]


@functools.cache
def problem(name: str, dtype: torch.dtype = torch.float64):
    p = PROBLEMS[name]()
    return p if dtype == torch.float64 else p.to(dtype=dtype)


def model(case: str, dtype: torch.dtype = torch.float32):
    return CASES[case]().to(dtype)


def accepts(case: str, problem_name: str) -> bool:
    """The solver's own ``skip``: its ``check_problem``, and generic learned solvers are
    not meant for the MIMO problem (they would accept its projection)."""
    return model(case).skip(problem(problem_name)) is None


PAIRS = [(c, p) for c in CASES for p in PROBLEMS if accepts(c, p)]
pairs = pytest.mark.parametrize("case,problem_name", PAIRS, ids=[f"{c}-{p}" for c, p in PAIRS])
dtypes = pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])


def start(p, kind: str = "random") -> torch.Tensor:
    if kind == "zero":
        return torch.zeros(p.batch_size, p.dim, dtype=p.dtype)
    if kind == "large":
        return torch.full((p.batch_size, p.dim), 1e3, dtype=p.dtype)
    g = torch.Generator().manual_seed(1)
    return torch.randn(p.batch_size, p.dim, generator=g, dtype=torch.float64).to(p.dtype)


def run(solver, p, x0, steps):
    states = [solver.init(p, x0)]
    for _ in range(steps):
        states.append(solver.step(p, states[-1]))
    return states


def tensor_fields(state) -> dict[str, torch.Tensor]:
    fields = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
    return {name: v for name, v in fields.items() if isinstance(v, torch.Tensor)}


# --------------------------------------------------------------------------------------
def test_every_learned_solver_is_in_the_suite():
    covered = {type(CASES[c]()).name for c, _ in PAIRS}
    assert covered == set(LEARNED)
    for c in CASES:
        assert sum(1 for cc, _ in PAIRS if cc == c) >= 1


@pairs
@dtypes
def test_dtype_follows_problem_and_parameters(case, problem_name, dtype):
    p = problem(problem_name, dtype)
    solver = model(case, dtype)
    with torch.no_grad():
        states = run(solver, p, start(p), 5)
    for s in states:
        assert s.x.dtype == dtype and s.x.shape == (B, p.dim)
        assert torch.isfinite(s.x).all()
        for name in ("h", "c"):  # recurrent network state: network dtype
            if hasattr(s, name):
                assert getattr(s, name).dtype == dtype


@pairs
def test_float32_model_keeps_float64_iterates(case, problem_name):
    p = problem(problem_name)
    solver = model(case, torch.float32)
    with torch.no_grad():
        s = run(solver, p, start(p), 3)[-1]
    assert s.x.dtype == torch.float64 and torch.isfinite(s.x).all()


@pairs
def test_batch_invariance(case, problem_name):
    """A batch gives the iterates of its instances solved one by one (float64)."""
    p = problem(problem_name)
    solver = model(case, torch.float64)
    x0 = start(p)
    with torch.no_grad():
        batch = run(solver, p, x0, 10)[-1]
        for i in range(B):
            idx = torch.tensor([i])
            single = run(solver, p.index(idx), x0[idx], 10)[-1]
            for name, t in tensor_fields(single).items():
                diff = (t - tensor_fields(batch)[name][idx]).abs().max()
                assert diff <= 1e-10, f"{name}: instance {i} differs by {float(diff):.3g}"


@pairs
def test_same_weights_same_iterates(case, problem_name):
    p = problem(problem_name, torch.float32)
    a, b = model(case), model(case)
    with torch.no_grad():
        sa, sb = run(a, p, start(p), 6)[-1], run(b, p, start(p), 6)[-1]
    for name, t in tensor_fields(sa).items():
        assert torch.equal(t, tensor_fields(sb)[name]), name


@pairs
def test_state_shapes_stable_and_batch_first(case, problem_name):
    p = problem(problem_name)
    with torch.no_grad():
        states = run(model(case), p, start(p), 4)
    shapes = {k: v.shape for k, v in tensor_fields(states[0]).items()}
    for s in states:
        fields = tensor_fields(s)
        assert {k: v.shape for k, v in fields.items()} == shapes
        for name, t in fields.items():
            assert t.ndim >= 1 and t.shape[0] == B, f"{name} is not batch-first: {tuple(t.shape)}"
    assert [s.k for s in states] == list(range(len(states)))


@pairs
def test_select_state_commutes_with_step(case, problem_name):
    p = problem(problem_name)
    solver = model(case, torch.float64)
    idx = torch.tensor([2, 0])
    with torch.no_grad():
        s = run(solver, p, start(p), 3)[-1]
        a = select_state(solver.step(p, s), idx)
        b = solver.step(p.index(idx), select_state(s, idx))
    for name, t in tensor_fields(a).items():
        assert torch.allclose(t, tensor_fields(b)[name], rtol=0, atol=1e-12), name
    assert a.k == b.k


@pairs
def test_step_does_not_mutate_its_input(case, problem_name):
    p = problem(problem_name)
    solver = model(case, torch.float64)
    with torch.no_grad():
        s = run(solver, p, start(p), 2)[-1]
        before = {k: v.clone() for k, v in tensor_fields(s).items()}
        solver.step(p, s)
    for name, t in tensor_fields(s).items():
        assert torch.equal(t, before[name]), name


@pairs
def test_gradients_reach_every_parameter(case, problem_name):
    """A loss on the iterate after 5 steps has finite, non-zero gradients for every parameter."""
    p = problem(problem_name)
    solver = model(case, torch.float64)
    if isinstance(solver, LGD):  # at its NTK initialization the last layer is 0: only it gets a gradient
        with torch.no_grad():
            solver.net[4].weight.normal_(0.0, 0.01, generator=torch.Generator().manual_seed(0))
    if isinstance(solver, LQN):  # untrained it is BFGS (output layer 0): only that layer gets a gradient
        with torch.no_grad():
            solver.out.weight.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(0))
    states = run(solver, p, start(p), 5)
    loss = p.objective(states[-1].x).sum()
    names, params = zip(*solver.named_parameters())
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    for name, g in zip(names, grads):
        assert g is not None, f"{name} gets no gradient"
        assert torch.isfinite(g).all(), f"{name} has a non-finite gradient"
        assert (g != 0).any(), f"{name} has an all-zero gradient"


@pairs
@dtypes
@pytest.mark.parametrize("kind", ["zero", "large"])
def test_no_nan_from_extreme_starts(case, problem_name, dtype, kind):
    p = problem(problem_name, dtype)
    solver = model(case, dtype)
    with torch.no_grad():
        s = solver.init(p, start(p, kind))
        for _ in range(50):
            s = solver.step(p, s)
            for name, t in tensor_fields(s).items():
                assert torch.isfinite(t).all(), f"{name} not finite at step {s.k}"


# --------------------------------------------------------------------------------------
# Unrolled solvers: horizon, dictionary
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", UNROLLED)
def test_unrolled_reuse_last_layer_past_horizon(case):
    p = problem("lasso")
    solver = model(case, torch.float64)
    T = solver.horizon
    assert solver.num_layers == T
    with torch.no_grad():
        s = run(solver, p, start(p), 3 * T)[-1]  # well past the last layer, still finite
        assert torch.isfinite(s.x).all()
        late = solver.step(p, s)
        last = solver.step(p, dataclasses.replace(s, k=T - 1))
    assert torch.equal(late.x, last.x)


@pytest.mark.parametrize("cls", [LISTA, ALISTA])
def test_unrolled_refuse_other_dictionaries(cls):
    solver = cls(LASSO, horizon=4)
    with pytest.raises(ValueError, match="one matrix per instance"):
        solver.init(problem("least_squares"), start(problem("least_squares")))
    with pytest.raises(ValueError, match="least-squares"):
        solver.check_problem(problem("logistic_l1"))
    other = l2o.LassoFamily(m=20, n=40, nnz=4, lam=0.1, dictionary_seed=1).sample(2, 0)
    with pytest.raises(ValueError, match="differs"):
        solver.check_problem(other)
    per_instance = l2o.LassoFamily(m=20, n=40, nnz=4, shared_matrix=False).sample(2, 0)
    with pytest.raises(ValueError, match="one matrix per instance"):
        solver.check_problem(per_instance)
    with pytest.raises(ValueError, match="shape"):
        solver.check_problem(l2o.LassoFamily(m=20, n=30, nnz=4).sample(2, 0))
    with pytest.raises(ValueError):  # shifted instances are no longer F(x) = 1/2||Ax - b||^2 + lam||x||_1
        solver.check_problem(LASSO.replace(objective_shift=1.0).sample(2, 0))
    solver.check_problem(problem("lasso", torch.float32))  # the same A rounded to float32 is accepted
    with pytest.raises(ValueError, match="sizes m and n"):
        cls()


# --------------------------------------------------------------------------------------
# Registry and loading
# --------------------------------------------------------------------------------------
def test_registry_names_and_unknown_name():
    for name, entry in LEARNED.items():
        assert entry.factory.name == name and entry.learned
    m = make_solver("math_l2o", variant="P")
    assert isinstance(m, MathL2O) and m.hparams["variant"] == "P"
    with pytest.raises(ValueError, match="alista.*lgd.*math_l2o"):
        make_solver("nope")


def test_generic_learned_solvers_skip_the_mimo_problem_with_a_reason():
    """Only the learned solvers built for the MIMO problem (on WMMSE, StructuralMPNN) accept it."""
    mimo = problem("mimo")
    for case in CASES:
        reason = model(case).skip(mimo)
        if type(CASES[case]()).solves_mimo:
            assert reason is None
        else:
            assert reason and "\n" not in reason
            try:  # the generic solvers that would accept its projection still skip it
                model(case).check_problem(mimo)
            except ValueError:
                continue
            assert "generic learned solver" in reason and "MIMO" in reason
    assert LGD().skip(problem("least_squares")) is None


@pytest.mark.parametrize("case", list(CASES))
def test_rebuild_from_hparams_and_state_dict(case):
    """``type(m)(**m.hparams)`` + ``load_state_dict`` reproduces the model (for LISTA /
    ALISTA without passing A: the dictionary is a buffer in the state dict)."""
    p = problem(next(name for name in PROBLEMS if accepts(case, name)))
    original = model(case, torch.float64)
    with torch.no_grad():
        for t in original.parameters():  # weights that differ from any initialization
            t.add_(0.01 * torch.randn(t.shape, generator=torch.Generator().manual_seed(3), dtype=t.dtype))
    hp = dict(original.hparams)
    assert all(isinstance(v, (int, float, str, bool, type(None))) for v in hp.values()), hp
    rebuilt = type(original)(**hp).double()
    rebuilt.load_state_dict(original.state_dict())
    with torch.no_grad():
        a, b = run(original, p, start(p), 5)[-1], run(rebuilt, p, start(p), 5)[-1]
    assert torch.equal(a.x, b.x)


# --------------------------------------------------------------------------------------
# End to end: meta-training can start from the initialization
# --------------------------------------------------------------------------------------
META_CASES = ["lgd", "math_l2o_PA", "go_math_l2o", "lista", "alista", "l2o_dm", "rnnprop", "lfista"]


@pytest.mark.parametrize("case", META_CASES)
def test_a_few_meta_steps_reduce_the_unrolled_loss(case):
    """Adam on the mean objective over a 10-step unroll, on one fixed batch: the loss
    goes down, so the unroll is differentiable and the initialization is not a dead zone."""
    p = problem("lasso", torch.float32) if accepts(case, "lasso") else problem("least_squares", torch.float32)
    solver = model(case)
    # LGD's expanded (x100) hidden layers make its output very sensitive to the last layer
    lr = {"lgd": 1e-6, "lista": 1e-4}.get(case, 1e-3)
    opt = torch.optim.Adam(solver.parameters(), lr=lr)

    def unrolled_loss():
        s, loss = solver.init(p, start(p, "zero")), 0.0
        for _ in range(10):
            s = solver.step(p, s)
            loss = loss + p.objective(s.x).mean() / 10
        return loss

    with torch.no_grad():
        first = float(unrolled_loss())
    for _ in range(10):
        opt.zero_grad()
        unrolled_loss().backward()
        opt.step()
    with torch.no_grad():
        assert float(unrolled_loss()) < first
