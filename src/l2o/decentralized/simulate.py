"""The iteration loop both backends share, the papers' metrics, and the simulated backend's entry point.

Metrics at a recorded iteration, from the stacked iterates x (R, n, d) and the full local data:

* ``grad_norm = || (1/n) sum_i grad f_i(x_bar) ||`` at the uniform mean ``x_bar = (1/n) sum_i x_i`` (the
  papers' stationarity measure);
* ``consensus = (1/n) sum_i ||x_i - x_bar||^2``;
* ``loss = (1/n) sum_i f_i(x_bar)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import Tensor

from l2o.decentralized.algorithms import Algorithm, Context, make_algorithm
from l2o.decentralized.comm import SimulatedComm
from l2o.decentralized.objectives import NodeData, Objective
from l2o.decentralized.topology import Topology


def metrics(objective: Objective, data: NodeData, x: Tensor) -> dict[str, Tensor]:
    """grad_norm, consensus and loss, each (R,), of stacked iterates x (R, n, d).

    >>> from l2o.decentralized.objectives import LeastSquares
    >>> data = NodeData(torch.ones(2, 1, 1, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64))
    >>> m = metrics(LeastSquares(), data, torch.tensor([[[1.0], [3.0]]], dtype=torch.float64))
    >>> m["grad_norm"].item(), m["consensus"].item(), m["loss"].item()
    (2.0, 1.0, 2.0)
    """
    n = x.shape[-2]
    xbar = x.mean(-2, keepdim=True)
    nodes = torch.arange(n, device=x.device)
    xb = xbar.expand_as(x)
    g = objective.grad(xb, data, nodes).mean(-2)
    return {"grad_norm": torch.linalg.vector_norm(g, dim=-1),
            "consensus": ((x - xbar) ** 2).sum(-1).mean(-1),
            "loss": objective.loss(xb, data, nodes).mean(-1)}


@dataclasses.dataclass
class Result:
    """A run: ``x`` (R, n, d) the final iterates; per recorded iteration (``iterations`` (T,)):
    ``grad_norm``, ``consensus``, ``loss`` (T, R); ``messages`` and ``bytes`` (n,) each node sent
    (one repetition's worth); ``rounds`` the communication rounds; ``history`` (T, R, n, d) the
    recorded iterates when kept."""

    x: Tensor
    iterations: Tensor
    grad_norm: Tensor
    consensus: Tensor
    loss: Tensor
    messages: Tensor
    bytes: Tensor
    rounds: int
    history: Tensor | None = None


def start_point(x0: Tensor | None, objective: Objective, data: NodeData, reps: int, nodes: Tensor) -> Tensor:
    """x0 (d,) or (n, d) (None: the objective's default, zeros for the convex/synthetic ones) as the local
    rows (reps, k, d)."""
    d = objective.dim(data)
    n = data.n
    if x0 is None:
        x0 = objective.init(data, torch.Generator().manual_seed(0))
    x0 = torch.as_tensor(x0).to(dtype=data.X.dtype, device=data.X.device)
    if x0.shape == (d,):
        x0 = x0.expand(n, d)
    if x0.shape != (n, d):
        raise ValueError(f"x0 has shape {tuple(x0.shape)}; expected ({d},) or ({n}, {d})")
    if not torch.isfinite(x0).all():
        raise ValueError("x0 holds NaN or infinite values; expected a finite start")
    return x0[nodes].unsqueeze(0).expand(reps, -1, -1).clone()


def check_run(algorithm: Algorithm, top: Topology, objective: Objective, data: NodeData, lr: float,
              iterations: int, batch: int | None, rounds: int) -> None:
    """Validate a run's inputs (one-line ValueErrors naming the parameter)."""
    if top.n != data.n:
        raise ValueError(f"data has {data.n} nodes but the graph has {top.n}; expected the same node count")
    if not (lr > 0 and lr < float("inf")):
        raise ValueError(f"lr is {lr}; expected a positive step size")
    if not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"iterations is {iterations!r}; expected a non-negative integer")
    if batch is not None and (not isinstance(batch, int) or batch < 1):
        raise ValueError(f"batch is {batch!r}; expected a positive integer or None (full local data)")
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds is {rounds!r}; expected a positive integer")
    algorithm.check(top)
    objective.check(data)


def run_loop(algorithm: Algorithm, ctx: Context, x0: Tensor, iterations: int, record_every: int,
             record: Callable[[int, Tensor], None]) -> dict[str, Tensor]:
    """Run ``iterations`` steps from the local start x0 (R, k, d), calling ``record(k, x)`` at k = 0,
    every ``record_every`` iterations and at the end. Returns the final state."""
    if not isinstance(record_every, int) or record_every < 1:
        raise ValueError(f"record_every is {record_every!r}; expected a positive integer")
    s = algorithm.init(ctx, x0)
    record(0, algorithm.iterate(s))
    for k in range(iterations):
        s = algorithm.step(ctx, s, k)
        if (k + 1) % record_every == 0 or k + 1 == iterations:
            record(k + 1, algorithm.iterate(s))
    return s


def simulate(algorithm: str, topology: Topology, objective: Objective, data: NodeData, lr: float, iterations: int,
             batch: int | None = None, rounds: int = 1, reps: int = 1, seed: int = 0, x0: Tensor | None = None,
             record_every: int = 1, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None,
             keep_history: bool = False, sparse: bool | None = None) -> Result:
    """Run ``algorithm`` with all n nodes stacked in one tensor, ``reps`` independent repetitions at once
    (they differ only in their minibatches; identical with ``batch=None``). ``sparse``: mix through the
    compressed-sparse-row form of A and B (None: when the graph is large and sparse; see ``SimulatedComm``).

    >>> from l2o.decentralized.topology import exponential
    >>> from l2o.decentralized.objectives import LeastSquares, least_squares_data
    >>> data = least_squares_data(4, 30, 3, generator=torch.Generator().manual_seed(0))
    >>> r = simulate("centralized_sgd", exponential(4), LeastSquares(), data, lr=0.5, iterations=100, reps=2)
    >>> r.x.shape, r.grad_norm.shape, bool(r.grad_norm[-1].max() < 1e-8)
    (torch.Size([2, 4, 3]), torch.Size([101, 2]), True)
    """
    algo = make_algorithm(algorithm)
    check_run(algo, topology, objective, data, lr, iterations, batch, rounds)
    if not isinstance(reps, int) or reps < 1:
        raise ValueError(f"reps is {reps!r}; expected a positive integer")
    data = data.to(dtype=dtype, device=device)
    comm = SimulatedComm(topology, reps=reps, dtype=dtype, device=device, sparse=sparse)
    ctx = Context(comm, objective, data, float(lr), batch, rounds, seed)
    x0_local = start_point(x0, objective, data, reps, comm.nodes)
    its: list[int] = []
    rec: dict[str, list[Tensor]] = {"grad_norm": [], "consensus": [], "loss": []}
    hist: list[Tensor] = []

    def record(k: int, x: Tensor) -> None:
        its.append(k)
        for key, v in metrics(objective, data, x).items():
            rec[key].append(v)
        if keep_history:
            hist.append(x.clone())

    s = run_loop(algo, ctx, x0_local, iterations, record_every, record)
    return Result(x=algo.iterate(s), iterations=torch.tensor(its), messages=comm.messages, bytes=comm.bytes,
                  rounds=comm.rounds, history=torch.stack(hist) if keep_history else None,
                  **{k: torch.stack(v) for k, v in rec.items()})


__all__ = ["Result", "metrics", "simulate", "run_loop", "start_point", "check_run"]
