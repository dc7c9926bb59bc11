"""Learned optimizers: ``torch.nn.Module``s with the classical init / step protocol.

A learned optimizer is an ``nn.Module`` whose ``step`` is differentiable in its
parameters, so meta-training can unroll it and backpropagate (``l2o.training``);
because it is also an ``l2o.optimizers.Optimizer``, ``run``, ``solve``, reports,
safeguards and the CLI treat it exactly like a classical solver.

Conventions every learned optimizer follows:

* Its parameters are float32 by default; ``step`` runs the network in the
  parameters' dtype and returns iterates in the problem's dtype (so a float64
  problem keeps float64 iterates, and ``module.double()`` makes everything exact).
* Per-coordinate networks see inputs of shape ``(B * n, features)`` and share
  their weights across coordinates and instances, so one model serves any n.
* ``hparams`` holds the constructor arguments; ``type(m)(**m.hparams)`` rebuilds the
  architecture (weights come from safetensors). Nothing is pickled.
* ``horizon`` is the unroll length it was trained for; after it, the state keeps
  evolving by the same recurrence (``l2o.safeguard`` can hand over to a classical
  fallback where that is wanted).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from l2o.optimizers.base import Optimizer
from l2o.problems import Instances, MimoInstances


class LearnedOptimizer(nn.Module, Optimizer):
    """Base class: subclasses set ``name``, store ``hparams`` and implement init/step."""

    name: ClassVar[str] = "learned"
    #: The classical method the untrained (or template-initialized) model reproduces.
    template: ClassVar[str | None] = None
    #: Whether the solver is built for the MIMO sum-rate problem (GNN-WMMSE, the unrolled
    #: WMMSE solvers, StructuralMPNN). The other (generic) learned solvers skip it: they
    #: would accept its projection onto the power budgets, but are not designed for precoders.
    solves_mimo: ClassVar[bool] = False

    def __init__(self, horizon: int = 100, **hparams: Any):
        nn.Module.__init__(self)
        if horizon < 1:
            raise ValueError(f"{self.name}: horizon must be >= 1, got {horizon}")
        self.horizon = horizon
        self.hparams: dict[str, Any] = {"horizon": horizon, **hparams}

    def skip(self, problem: Instances) -> str | None:
        """``Optimizer.skip``; a generic learned solver also skips the MIMO sum-rate problem
        (``MimoInstances``), which only the solvers that declare ``solves_mimo`` are for."""
        reason = super().skip(problem)
        if reason is None and isinstance(problem, MimoInstances) and not self.solves_mimo:
            return (f"solver '{self.name}' is a generic learned solver, not meant for the MIMO sum-rate problem; "
                    f"use a learned MIMO solver ('gnn_wmmse', 'structural_mpnn')")
        return reason

    def to_net(self, t: Tensor) -> Tensor:
        """Cast a problem tensor to the network's dtype (and device)."""
        p = next(self.parameters(), None)
        return t if p is None else t.to(dtype=p.dtype, device=p.device)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())


def per_coordinate(features: list[Tensor]) -> Tensor:
    """Stack ``k`` per-coordinate features, each ``(B, n)``, into ``(B * n, k)``."""
    return torch.stack(features, dim=-1).reshape(-1, len(features))



class CoordLSTM(nn.Module):
    """A coordinatewise LSTM: one ``nn.LSTM`` shared by every coordinate of every instance
    (Andrychowicz et al., 2016), so the model serves any n.

    The recurrent state lives in the solver state, batch-first so that ``select_state``
    can index it: ``h`` and ``c`` of shape ``(B, n, layers, hidden)`` (the per-layer
    ``(B, n, hidden)`` states stacked on dim 2).
    """

    def __init__(self, input_size: int, hidden_size: int = 20, layers: int = 2):
        super().__init__()
        self.hidden_size = hidden_size
        self.layers = layers
        self.lstm = nn.LSTM(input_size, hidden_size, layers)

    def initial_state(self, batch: int, n: int) -> tuple[Tensor, Tensor]:
        """Zero ``(h, c)``, each ``(B, n, layers, hidden)`` in the network's dtype and device."""
        w = self.lstm.weight_ih_l0
        h = torch.zeros(batch, n, self.layers, self.hidden_size, dtype=w.dtype, device=w.device)
        return h, torch.zeros_like(h)

    def forward(self, features: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One time step. ``features`` ``(B, n, input_size)``; returns ``(out (B, n, hidden), h, c)``."""
        B, n, k = features.shape

        def to_lstm(s: Tensor) -> Tensor:  # (B, n, layers, hidden) -> (layers, B n, hidden)
            return s.reshape(B * n, self.layers, self.hidden_size).transpose(0, 1).contiguous()

        def from_lstm(s: Tensor) -> Tensor:
            return s.transpose(0, 1).reshape(B, n, self.layers, self.hidden_size)

        out, (h1, c1) = self.lstm(features.reshape(1, B * n, k), (to_lstm(h), to_lstm(c)))
        return out.reshape(B, n, self.hidden_size), from_lstm(h1), from_lstm(c1)


@torch.no_grad()
def seeded_default_init(module: nn.Module, seed: int = 0) -> None:
    """Redraw the parameters of every ``nn.Linear`` and ``nn.LSTM`` in ``module`` from
    PyTorch's default distributions (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for Linear,
    U(-1/sqrt(hidden), 1/sqrt(hidden)) for LSTM) with an explicit generator, so that
    a model's initial weights depend on ``seed`` only, not on the global RNG."""
    gen = torch.Generator().manual_seed(seed)
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            bound = 1.0 / sub.in_features**0.5
        elif isinstance(sub, nn.LSTM):
            bound = 1.0 / sub.hidden_size**0.5
        else:
            continue
        for p in sub.parameters(recurse=False):
            p.copy_(torch.empty(p.shape, dtype=torch.float64).uniform_(-bound, bound, generator=gen))
