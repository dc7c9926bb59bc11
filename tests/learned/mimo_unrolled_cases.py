"""Shared pieces of the tests of the WMMSE-based learned solvers (``test_iaidnn.py``,
``test_gcn_wmmse.py``, ``test_gnn_wmmse.py``): the mimo_small family, runs, perturbations,
a short training run and the CLI train -> eval round trip."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner

from l2o.cli import app
from l2o.problems import MimoFamily
from l2o.training.config import load_config

SMALL = MimoFamily(cells=3, users=2, tx_antennas=4, rx_antennas=2, streams=2, power=10.0, noise=1.0)  # mimo_small


def batch(dtype=torch.float64, n=4, seed=0, family=SMALL):
    return family.sample(n, seed, dtype=dtype)


def run(solver, p, x0, steps):
    """The states of ``steps`` iterations from ``x0``, the initial state first."""
    states = [solver.init(p, x0)]
    for _ in range(steps):
        states.append(solver.step(p, states[-1]))
    return states


def perturb(model, scale, seed=4):
    """``model`` with every parameter moved by ``scale`` x N(0, 1) noise (in place)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in model.parameters():
            t.add_(scale * torch.randn(t.shape, generator=g, dtype=t.dtype))
    return model


def cplx(p):
    """A ``(..., 2)`` real parameter as a complex128 tensor."""
    return torch.view_as_complex(p.detach().double().contiguous())


def short_training(model, lr, layers=3, steps=15):
    """Mean sum-rate after ``layers`` iterations on a held-out mimo_small batch, before and
    after ``steps`` Adam steps on minus the sum of the sum-rates over the layers (the
    INFOCOM paper's loss for its baselines): ``(before, after)``."""
    val = SMALL.sample(64, 123, dtype=torch.float32)

    def rate():
        with torch.no_grad():
            return float(val.sum_rate(run(model, val, val.initial_point(), layers)[-1].x).mean())

    before = rate()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(7)
    for _ in range(steps):
        p = SMALL.sample(32, g, dtype=torch.float32)
        states = run(model, p, p.initial_point(), layers)
        loss = sum(p.objective(s.x).mean() for s in states[1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return before, rate()


def cli_train_then_eval(tmp_path, solver: str) -> dict:
    """``l2o train`` of a 2-step mimo_small config of ``solver`` (sum loss), then
    ``l2o eval --json`` of the run; asserts both exit 0 and returns the evaluation."""
    config = tmp_path / "tiny.toml"
    config.write_text(
        f'[problem]\nfamily = "mimo_small"\n\n[solver]\nname = "{solver}"\nhorizon = 2\n\n'
        '[training]\nsteps = 2\nbatch_size = 8\nunroll = 2\nloss = "sum"\nval_batch = 0\n'
        'checkpoint_every = 0\ngradient_checkpointing = false\n'
    )
    runner = CliRunner()
    res = runner.invoke(app, ["train", str(config), "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["eval", str(tmp_path / "run"), "--batch", "4", "--iterations", "4", "--json",
                              "--out-dir", str(tmp_path / "e")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["solvers"][0]["name"] == solver
    for entry in out["solvers"]:
        assert 0.0 < entry["sum_rate_fraction_p10"] <= entry["sum_rate_fraction_median"] <= 1.0 + 1e-6
    return out


def assert_permutation_equivariant(model, p, steps=3):
    """Relabeling the users of every cell, and the cells, of the 3-cell batch ``p`` relabels
    ``model``'s iterates the same way (``steps`` iterations, float64)."""
    cells, users = torch.tensor([2, 0, 1]), torch.tensor([1, 0])
    H = p.H[:, cells][:, :, users][:, :, :, cells]
    q = type(p)(H, p.streams, p.noise, p.budget[:, cells], p.weights[:, cells][:, :, users])
    with torch.no_grad():
        x = run(model, p, p.initial_point(), steps)[-1].x
        y = run(model, q, q.initial_point(), steps)[-1].x
    torch.testing.assert_close(q.unpack(y), p.unpack(x)[:, cells][:, :, users], rtol=1e-9, atol=1e-10)


def check_paper_example(example: str, solver: str, cls: str) -> None:
    """``examples/<example>``: 7 layers of ``solver`` (class ``cls``) on mimo_medium, trained
    on the sum of the sum-rates over the layers (the paper's setting)."""
    config = load_config(Path(__file__).parents[2] / "examples" / example)
    assert config.solver == solver and config.family == "mimo_medium"
    assert config.training.loss == "sum" and config.training.unroll == config.training.segment == 7
    model = config.make_solver()
    assert type(model).__name__ == cls and model.horizon == 7
