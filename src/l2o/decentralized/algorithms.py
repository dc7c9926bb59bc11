"""Decentralized algorithms, written once over the communication interface (``l2o.decentralized.comm``).

Notation: n nodes, x (..., k, d) the local rows of the stacked iterates, ``g_k`` the stochastic
gradients at ``x_k`` (minibatch of ``batch`` samples per node, or the full local data), ``alpha`` the
step size (``lr``). Every ``M t`` below is one ``comm.mix`` round (one packed message per node).

* ``push_pull`` (Liang, Luo, Yuan, arXiv 2506.18075; the authors' code): A row-, B column-stochastic,
  ``x+ = A x - alpha y``, ``y+ = B y + g+ - g``, ``y_0 = g_0`` (one round: x and y in one message).
* ``push_pull_atc``, adapt-then-combine: ``x+ = A (x - alpha y)``, ``y+ = B (y + g+ - g)`` (two rounds).
* ``pull_diag_gt`` (Liang, Chen, Luo, Yuan, ICML 2025, eq. 7): ``x+ = A (x - alpha y)``,
  ``y+ = A (y + D_{k+1}^-1 g+ - D_k^-1 g)`` with ``D_k = diag(A^k)``, ``D_0 = I``, ``y_0 = g_0``. Each node
  learns its ``[A^k]_ii`` by mixing its row of ``V_k = A^k`` (``V_0 = I``) in the same message as x.
* ``mg_pull_diag_gt`` (eq. 12): each ``A`` becomes ``A^R`` (R rounds), ``D_t = diag(A^{tR})``, and each
  gradient averages R minibatches (R * batch samples); one *iteration* is one outer step.
* ``dsgd``: decentralized SGD ``x+ = W x - alpha g`` (W = A, which must be doubly stochastic).
* ``gradient_tracking``: ``x+ = W x - alpha y``, ``y+ = W y + g+ - g`` (W doubly stochastic).
* ``push_sum``: subgradient-push (Nedic & Olshevsky 2015) on B: ``u = B z``, ``s+ = B s``,
  ``x+ = u / s+``, ``z+ = u - alpha g(x+)``, ``z_0 = x_0``, ``s_0 = 1``.
* ``centralized_sgd``: ``x+ = x - alpha (1/n) sum_i g_i(x)``: every node holds the same x, the average
  is exact (``J = 11^T / n``); with batch b per node it is minibatch SGD with n b samples, the
  linear-speedup reference.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import torch
from torch import Tensor

from l2o.decentralized.objectives import NodeData, Objective, sample_indices
from l2o.decentralized.topology import Topology, check_topology


class Communicator(Protocol):
    """What an algorithm needs from a backend (``SimulatedComm``, ``ProcessComm``)."""

    n: int
    nodes: Tensor
    reps: Tensor

    def mix(self, parts: list[tuple[str, Tensor]]) -> list[Tensor]: ...


@dataclasses.dataclass
class Context:
    """What a step sees: the backend, the objective and its data, the step size, the batch (None: full
    local data), the gossip rounds R and the sampling seed."""

    comm: Any
    objective: Objective
    data: NodeData
    lr: float
    batch: int | None
    rounds: int
    seed: int

    def grad(self, x: Tensor, key: int, samples: int = 1) -> Tensor:
        """Gradients of the local nodes at x (..., k, d): the full local data, or ``samples * batch``
        samples drawn by ``sample_indices(seed, key, ...)``."""
        if self.batch is None:
            return self.objective.grad(x, self.data, self.comm.nodes)
        idx = sample_indices(self.seed, key, self.comm.reps, self.comm.nodes, samples * self.batch, self.data.m)
        return self.objective.grad(x, self.data, self.comm.nodes, idx.to(self.data.X.device))


class Algorithm:
    """``init(ctx, x0) -> state``, ``step(ctx, state, k) -> state`` (k = 0, 1, ...) and
    ``iterate(state) -> x`` (..., k, d); ``need`` and ``self_loops`` are what ``check_topology`` enforces."""

    name = "algorithm"
    need = "push_pull"
    self_loops = False

    def check(self, top: Topology) -> None:
        """Raise ValueError when the topology does not fit."""
        check_topology(top, need=self.need, self_loops=self.self_loops)

    def init(self, ctx: Context, x0: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def step(self, ctx: Context, s: dict[str, Tensor], k: int) -> dict[str, Tensor]:
        raise NotImplementedError

    def iterate(self, s: dict[str, Tensor]) -> Tensor:
        return s["x"]


class PushPull(Algorithm):
    """Push-Pull as in the authors' code: ``x+ = A x - alpha y``, ``y+ = B y + g(x+) - g(x)``.

    >>> from l2o.decentralized.simulate import simulate
    >>> from l2o.decentralized.topology import exponential
    >>> from l2o.decentralized.objectives import LeastSquares, least_squares_data
    >>> data = least_squares_data(4, 30, 3, heterogeneity=1.0, generator=torch.Generator().manual_seed(0))
    >>> r = simulate("push_pull", exponential(4), LeastSquares(), data, lr=0.1, iterations=300)
    >>> bool(r.grad_norm[-1, 0] < 1e-8 * r.grad_norm[0, 0])
    True
    """

    name = "push_pull"

    def init(self, ctx: Context, x0: Tensor) -> dict[str, Tensor]:
        g = ctx.grad(x0, 0)
        return {"x": x0, "y": g, "g": g}

    def step(self, ctx: Context, s: dict[str, Tensor], k: int) -> dict[str, Tensor]:
        Ax, By = ctx.comm.mix([("A", s["x"]), ("B", s["y"])])
        x = Ax - ctx.lr * s["y"]
        g = ctx.grad(x, k + 1)
        return {"x": x, "y": By + g - s["g"], "g": g}


class PushPullATC(PushPull):
    """Adapt-then-combine Push-Pull: ``x+ = A (x - alpha y)``, ``y+ = B (y + g(x+) - g(x))`` (two rounds).

    >>> PushPullATC().name
    'push_pull_atc'
    """

    name = "push_pull_atc"

    def step(self, ctx: Context, s: dict[str, Tensor], k: int) -> dict[str, Tensor]:
        (x,) = ctx.comm.mix([("A", s["x"] - ctx.lr * s["y"])])
        g = ctx.grad(x, k + 1)
        (y,) = ctx.comm.mix([("B", s["y"] + g - s["g"])])
        return {"x": x, "y": y, "g": g}


class PullDiagGT(Algorithm):
    """Pull-Diag-GT (rounds = 1) and MG-Pull-Diag-GT (rounds = R): ``x+ = A^R (x - alpha y)``,
    ``y+ = A^R (y + D+^-1 g+ - D^-1 g)``, ``D_t = diag(A^{tR})`` learnt by mixing rows of ``A^t``.

    >>> from l2o.decentralized.simulate import simulate
    >>> from l2o.decentralized.topology import ring_with_chord
    >>> from l2o.decentralized.objectives import LeastSquares, least_squares_data
    >>> data = least_squares_data(5, 30, 3, heterogeneity=1.0, generator=torch.Generator().manual_seed(0))
    >>> r = simulate("pull_diag_gt", ring_with_chord(5), LeastSquares(), data, lr=0.05, iterations=300)
    >>> bool(r.grad_norm[-1, 0] < 1e-3 * r.grad_norm[0, 0])
    True
    """

    name = "pull_diag_gt"
    need = "pull"
    self_loops = True
    multi = False

    def check(self, top: Topology) -> None:
        check_topology(top, need=self.need, self_loops=self.self_loops, warn_doubly=True)

    def _gossip(self, ctx: Context, t: Tensor, V: Tensor | None) -> tuple[Tensor, Tensor | None]:
        R = ctx.rounds if self.multi else 1
        for _ in range(R):
            if V is None:
                (t,) = ctx.comm.mix([("A", t)])
            else:
                t, V = ctx.comm.mix([("A", t), ("A", V)])
        return t, V

    def init(self, ctx: Context, x0: Tensor) -> dict[str, Tensor]:
        R = ctx.rounds if self.multi else 1
        nodes = ctx.comm.nodes
        V = torch.zeros(len(nodes), ctx.comm.n, dtype=x0.dtype, device=x0.device)
        V[torch.arange(len(nodes)), nodes] = 1.0
        g = ctx.grad(x0, 0, R)
        return {"x": x0, "y": g, "g": g, "V": V, "dinv": torch.ones(len(nodes), 1, dtype=x0.dtype, device=x0.device)}

    def step(self, ctx: Context, s: dict[str, Tensor], k: int) -> dict[str, Tensor]:
        R = ctx.rounds if self.multi else 1
        x, V = self._gossip(ctx, s["x"] - ctx.lr * s["y"], s["V"])
        assert V is not None
        nodes = ctx.comm.nodes
        dinv = 1.0 / V[torch.arange(len(nodes)), nodes].unsqueeze(-1)
        g = ctx.grad(x, k + 1, R)
        y, _ = self._gossip(ctx, s["y"] + dinv * g - s["dinv"] * s["g"], None)
        return {"x": x, "y": y, "g": g, "V": V, "dinv": dinv}


class MGPullDiagGT(PullDiagGT):
    """MG-Pull-Diag-GT: Pull-Diag-GT with ``A^R`` (R = ``rounds`` gossip rounds per mix) and R samples
    per gradient.

    >>> MGPullDiagGT().multi
    True
    """

    name = "mg_pull_diag_gt"
    multi = True


class DSGD(Algorithm):
    """Decentralized SGD ``x+ = W x - alpha g(x)`` on a doubly-stochastic W.

    >>> DSGD().need
    'doubly'
    """

    name = "dsgd"
    need = "doubly"

    def init(self, ctx: Context, x0: Tensor) -> dict[str, Tensor]:
        return {"x": x0}

    def step(self, ctx: Context, s: dict[str, Tensor], k: int) -> dict[str, Tensor]:
        g = ctx.grad(s["x"], k)
        (Wx,) = ctx.comm.mix([("A", s["x"])])
        return {"x": Wx - ctx.lr * g}


class GradientTracking(PushPull):
    """Gradient tracking (DIGing) ``x+ = W x - alpha y``, ``y+ = W y + g+ - g`` on a doubly-stochastic W.

    >>> GradientTracking().need
    'doubly'
    """

    name = "gradient_tracking"
    need = "doubly"

    def step(self, ctx: Context, s: dict[str, Tensor], k: int) -> dict[str, Tensor]:
        Wx, Wy = ctx.comm.mix([("A", s["x"]), ("A", s["y"])])
        x = Wx - ctx.lr * s["y"]
        g = ctx.grad(x, k + 1)
        return {"x": x, "y": Wy + g - s["g"], "g": g}


class PushSum(Algorithm):
    """Subgradient-push on a column-stochastic B: ``u = B z``, ``s+ = B s``, ``x+ = u / s+``,
    ``z+ = u - alpha g(x+)``.

    >>> PushSum().need
    'push'
    """

    name = "push_sum"
    need = "push"
    self_loops = True

    def init(self, ctx: Context, x0: Tensor) -> dict[str, Tensor]:
        w = torch.ones(*x0.shape[:-1], 1, dtype=x0.dtype, device=x0.device)
        return {"x": x0, "z": x0, "w": w}

    def step(self, ctx: Context, s: dict[str, Tensor], k: int) -> dict[str, Tensor]:
        u, w = ctx.comm.mix([("B", s["z"]), ("B", s["w"])])
        x = u / w
        g = ctx.grad(x, k + 1)
        return {"x": x, "z": u - ctx.lr * g, "w": w}


class CentralizedSGD(Algorithm):
    """Minibatch SGD on the average: ``x+ = x - alpha (1/n) sum_i g_i(x)`` (exact average, all-to-all).

    >>> CentralizedSGD().need
    'any'
    """

    name = "centralized_sgd"
    need = "any"

    def check(self, top: Topology) -> None:
        pass

    def init(self, ctx: Context, x0: Tensor) -> dict[str, Tensor]:
        return {"x": x0}

    def step(self, ctx: Context, s: dict[str, Tensor], k: int) -> dict[str, Tensor]:
        g = ctx.grad(s["x"], k)
        (gbar,) = ctx.comm.mix([("J", g)])
        return {"x": s["x"] - ctx.lr * gbar}


#: Algorithms by name (``l2o decentralized --algorithm``).
ALGORITHMS: dict[str, type[Algorithm]] = {c.name: c for c in (
    PushPull, PushPullATC, PullDiagGT, MGPullDiagGT, DSGD, GradientTracking, PushSum, CentralizedSGD)}


def make_algorithm(name: str) -> Algorithm:
    """An algorithm by name.

    >>> make_algorithm("push_pull").name
    'push_pull'
    """
    if name not in ALGORITHMS:
        raise ValueError(f"algorithm: unknown name {name!r}; expected one of {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]()


def rounds_per_iteration(name: str, rounds: int = 1) -> int:
    """Communication rounds one iteration of ``name`` takes.

    >>> rounds_per_iteration("mg_pull_diag_gt", 5)
    10
    """
    return {"push_pull_atc": 2, "pull_diag_gt": 2, "mg_pull_diag_gt": 2 * rounds}.get(name, 1)


__all__ = ["Algorithm", "ALGORITHMS", "Communicator", "Context", "make_algorithm", "rounds_per_iteration",
           "PushPull", "PushPullATC", "PullDiagGT", "MGPullDiagGT", "DSGD", "GradientTracking", "PushSum",
           "CentralizedSGD"]
