"""GNN-WMMSE: WMMSE unrolled into a few layers whose V-update is steered by a graph neural network.

The MIMO weighted sum-rate setting (``l2o.problems.mimo.channel``: K cells, I users per cell,
M transmit and N receive antennas, d streams). One WMMSE iteration (Shi, Razaviyayn,
Luo, He, IEEE TSP 2011) is

    U_{ki} = MMSE receiver,   W_{ki} = (I - U_{ki}^H H_{ki,k} V_{ki})^{-1},
    V_{ki} = (A_k + mu_k I)^{-1} B_{ki},   A_k = sum_{(l,j)} alpha_{lj} H_{lj,k}^H U_{lj} W_{lj} U_{lj}^H H_{lj,k},
                                           B_{ki} = alpha_{ki} H_{ki,k}^H U_{ki} W_{ki},

with mu_k >= 0 from a bisection on the power budget of cell k (after an M x M
eigendecomposition). Layer t of GNN-WMMSE (t < ``horizon``) keeps the closed-form parts
and replaces the multiplier search:

    (U, W, A, B) at V_t                                        (as WMMSE)
    mu_k    = lbar_k (MU_FLOOR + exp(m_k)),   lbar_k = tr(A_k) / M   (mean eigenvalue of A_k)
    V*_ki   = [(A_k + mu_k I)^{-1} B_k]_i                      (one M x M Cholesky solve per cell)
    V'_ki   = V_ki + g_ki (V*_ki - V_ki) + beta_ki (V_ki - V_ki^{t-1}),
              g_ki = 2 sigmoid(o_ki) in (0, 2),  beta_ki = tanh(c_ki) in (-1, 1)
    V_{t+1} = every cell of V' * exp(q_ki / 2) scaled to use exactly its budget P_k

where (m_k, o_ki, q_ki, c_ki) come from layer t's GNN over the interference graph:
a multiplier per cell, a relaxation, a power tilt and a momentum per user.

Design choices (each measured against alternatives; the numbers are in
``benchmarks/results/mimo-notes.md``): a Cholesky solve with a predicted multiplier
rather than learned projected-gradient steps on the convex V-subproblem
tr(V^H A V) - 2 Re tr(V^H B) (A_k is ill conditioned, and one M x M Cholesky solve per
cell is exact for the given mu and cheaper than WMMSE's eigendecomposition and
bisection); every cell at its full budget (the power is set by the scaling, so mu only
shapes the direction, a regularization like RZF's; at WMMSE's fixed points on the presets
mu_k > 0 for every cell); learned relaxation and momentum per user and layer; a small
GNN (width 16, one message-passing round per layer). ``MU_FLOOR`` keeps A_k + mu_k I
well conditioned in float32 whatever the network outputs. The algebra runs on the
stacked-channel kernels of ``l2o.problems.mimo.channel`` (``stacked_channels``,
``signal_model``, ``subproblem``, ``solve_precoders``, ``scale_packed``).

The graph (one per instance): a node per user and two weighted relations between every
pair of users, the interference received (row-normalized powers ||H_{ki,j} V_{lj}||_F^2
at user (k, i) from user (l, j)) and the interference caused (its transpose,
row-normalized), plus "same cell" and "all users" means. Node features: alpha, the
current rate, log(1 + received signal / sigma^2), log(1 + received interference /
sigma^2), log(1 + interference caused / sigma^2), the user's share of its cell's power
(times I) and the direct-link SNR log(P ||H_{ki,k}||_F^2 / (M sigma^2)). Per round,

    m_r = W_r h  (r = received, caused, cell, all),   h <- h + relu(W_u [h, sum_r Agg_r(m_r)] + b_u),

h = relu(W_0 f + b_0) at the start; then a user head (o, q, c) = W_o h + b_o and a cell
head m_k = w_c^T relu(W_c mean_{i in k} h_i + b_c) + b. Every weight is shared by all
users, cells and instances and the aggregations are (weighted) means, so the model is
equivariant to permutations of the users of a cell and of the cells, and one set of
weights runs for any K, I, M, N, d (``tests/learned/test_gnn_wmmse.py``). The features are
scale-free (powers relative to sigma^2, gains relative to the budget) and computed
without autograd, as Math-L2O's: the meta-gradient flows through the algorithm (U, W,
A, B, the solve), not through the features.

Initialization: PyTorch's default distributions drawn from ``seed``, the heads' weights
scaled by ``HEAD_SCALE`` and their biases set to m = log(mu_init - MU_FLOOR), o = q = c =
0: the untrained model is, up to ~1e-2, "WMMSE with mu_k = mu_init tr(A_k) / M and full
power", and every weight gets a meta-gradient from the first step. Parameters are
float32 by default; the network runs in the parameters' dtype and the algorithm in the
problem's (complex64 for float32 problems, complex128 for float64).

Beyond the horizon (``tail``): ``"wmmse"`` (default) continues with exact WMMSE
iterations (``l2o.problems.mimo.channel.wmmse_update``), so a long run (evaluation at 10 x
the horizon, a safeguard's hand-over) improves monotonically to a WMMSE fixed point from
where the learned layers left it; ``"last"`` keeps applying the last learned layer (the
unrolled-network convention; no convergence guarantee).

``init`` projects the start onto the budgets (a cell over its budget is scaled down) and
replaces cells whose precoders are all zero by MRT (V = 0 is a degenerate fixed point of
WMMSE: the receivers and weights vanish there and no V-update moves it). Every iterate
meets the budgets (each cell at exactly P_k, to rounding).
It also computes the channels stacked per BS (``stacked_channels``), constants of the
batch that every layer reads; they travel in the state (batch-first, so compaction and
safeguards select them with the iterate).

Related designs: IAIDNN (Hu, Cai, Yu, *Iterative algorithm induced deep-unfolding neural
networks: precoding design for multiuser MIMO systems*, IEEE TWC 2021), UWMMSE
(Chowdhury, Wang, Segarra, Swami, *Unfolding WMMSE using graph neural networks for
efficient power allocation*, IEEE TWC 2021), GCN-WMMSE (Schynol, Pesavento,
*Coordinated sum-rate maximization in multicell MU-MIMO with deep unrolling*, IEEE JSAC
2023), and the seed paper of this line (Song et al., INFOCOM 2024).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor, nn

from l2o.learned.base import LearnedOptimizer, seeded_default_init
from l2o.learned.unrolled_wmmse import check_tail
from l2o.optimizers.wmmse import feasible_start, require_mimo
from l2o.problems.base import Instances
from l2o.problems.mimo.channel import (
    SignalModel,
    StackedChannels,
    abs2,
    pack,
    scale_packed,
    signal_model,
    solve_precoders,
    stacked_channels,
    subproblem,
    wmmse_update,
)
from l2o.problems.mimo.instances import MimoInstances

NODE_FEATURES = 7
#: Lower bound of mu_k / lbar_k: keeps A_k + mu_k I well conditioned (float32 Cholesky)
#: whatever the network outputs (condition number <= M / MU_FLOOR).
MU_FLOOR = 1e-3
#: The heads' initial weights are PyTorch's defaults times this: the untrained model is
#: the template up to ~1e-2, and every weight gets a meta-gradient from the first step.
HEAD_SCALE = 1e-2


# ----- the network -----------------------------------------------------------------------------
def _log1p_ratio(p: Tensor, noise: Tensor) -> Tensor:
    return torch.log1p(p / noise.reshape((-1,) + (1,) * (p.ndim - 1)))


def _row_normalized(a: Tensor) -> Tensor:
    """Rows of a nonnegative ``(B, n, n)`` divided by their sums (rows of zeros stay zero)."""
    s = a.sum(-1, keepdim=True)
    return a / torch.where(s > 0, s, torch.ones_like(s))


def graph_features(
    problem: MimoInstances, ch: StackedChannels, x: Tensor, sm: SignalModel
) -> tuple[Tensor, Tensor]:
    """Node features ``(B, K I, NODE_FEATURES)`` and the interference graph ``(B, 2, K I, K I)``:
    [0] row-normalized interference received (entry [a, b]: power of user b's streams at
    user a), [1] row-normalized interference caused (its transpose, normalized); in the
    problem's real dtype. ``ch``: the problem's ``stacked_channels``; ``x``: ``(B, n)`` the
    packed precoders; ``sm``: the ``signal_model`` at x."""
    B, K, I = problem.weights.shape
    noise = problem.noise
    cross = sm.power  # (b, k, i, j, l) with the own streams at 0
    signal = abs2(sm.S).sum((-2, -1))
    interference = cross.sum((-2, -1))
    leakage = cross.sum((1, 2))  # caused by (j, l) at everyone else: (b, j, l)
    share = x.reshape(B, K, I, -1).square().sum(-1) * I / problem.budget[:, :, None]
    direct = torch.diagonal(ch.snr_gain, dim1=1, dim2=3).permute(0, 2, 1)  # (b, k, i)
    nodes = torch.stack([
        problem.weights, sm.rate, _log1p_ratio(signal, noise), _log1p_ratio(interference, noise),
        _log1p_ratio(leakage, noise), share, direct,
    ], -1).reshape(B, K * I, NODE_FEATURES)
    into = cross.reshape(B, K * I, K * I)
    graph = torch.stack([_row_normalized(into), _row_normalized(into.mT)], 1)
    return nodes, graph


class InterferenceGNN(nn.Module):
    """Message passing over the users' interference graph with a user head (``outputs``
    per user) and a cell head (1 per cell); see the module docstring."""

    def __init__(self, hidden: int, rounds: int = 1, outputs: int = 2):
        super().__init__()
        self.node_in = nn.Linear(NODE_FEATURES, hidden)
        #: per round: messages along the 2 weighted relations + cell mates + all users, then the update
        self.messages = nn.ModuleList(nn.Linear(hidden, 4 * hidden, bias=False) for _ in range(rounds))
        self.updates = nn.ModuleList(nn.Linear(2 * hidden, hidden) for _ in range(rounds))
        self.user_head = nn.Linear(hidden, outputs)
        self.cell_hidden = nn.Linear(hidden, hidden)
        self.cell_head = nn.Linear(hidden, 1)

    def forward(self, nodes: Tensor, graph: Tensor, cells: int) -> tuple[Tensor, Tensor]:
        """``nodes (B, KI, F)``, ``graph (B, 2, KI, KI)`` -> user outputs ``(B, KI, outputs)``,
        cell outputs ``(B, K)``."""
        B, n, _ = nodes.shape
        per_cell = n // cells
        h = torch.relu(self.node_in(nodes))
        for message, update in zip(self.messages, self.updates):
            m = message(h).reshape(B, n, 4, -1)
            agg = graph[:, 0] @ m[:, :, 0] + graph[:, 1] @ m[:, :, 1]
            mates = m[:, :, 2].reshape(B, cells, per_cell, -1).mean(2, keepdim=True)
            agg = agg + mates.expand(B, cells, per_cell, mates.shape[-1]).reshape(B, n, -1)
            agg = agg + m[:, :, 3].mean(1, keepdim=True)
            h = h + torch.relu(update(torch.cat([h, agg], -1)))
        users = self.user_head(h)
        pooled = h.reshape(B, cells, per_cell, -1).mean(2)
        cell = self.cell_head(torch.relu(self.cell_hidden(pooled))).squeeze(-1)
        return users, cell


# ----- the solver ------------------------------------------------------------------------------
@dataclasses.dataclass
class GNNWMMSEState:
    """x: ``(B, n)`` packed precoders (every cell within its budget); x_prev: ``(B, n)`` the
    previous iterate (the momentum term; x itself at the start); channels: the problem's
    ``stacked_channels`` (constants computed by ``init``, batch-first like x); k:
    iterations done."""

    x: Tensor
    x_prev: Tensor
    channels: StackedChannels
    k: int = 0


class GNNWMMSE(LearnedOptimizer):
    """Unrolled WMMSE with GNN-predicted multipliers, relaxations, momenta and power tilts
    (the MIMO sum-rate family only); see the module docstring.

    Args:
        horizon: number of learned layers (each has its own GNN weights).
        hidden: width of the GNN.
        rounds: message-passing rounds per layer (0: no messages, per-user and cell-mean
            information only).
        momentum: learn the heavy-ball term beta (V_t - V_{t-1}).
        mu_init: the untrained multiplier mu_k = mu_init * tr(A_k) / M (> MU_FLOOR).
        tail: what runs after the horizon: ``"wmmse"`` (exact WMMSE iterations) or
            ``"last"`` (the last learned layer again).
        seed: of the initial weights.

    Example (untrained: WMMSE-like layers that use every budget in full):
        >>> import torch, l2o
        >>> from l2o.problems import MimoFamily
        >>> problem = MimoFamily(cells=2, users=2, tx_antennas=4, rx_antennas=2, streams=1).sample(3, generator=0)
        >>> solver = l2o.learned.GNNWMMSE(horizon=4)
        >>> x0 = problem.initial_point()  # MRT
        >>> with torch.no_grad():
        ...     state = solver.init(problem, x0)
        ...     for _ in range(4):
        ...         state = solver.step(problem, state)
        >>> bool((problem.sum_rate(state.x) > problem.sum_rate(x0)).all())
        True
        >>> bool(((problem.power(state.x) - problem.budget).abs() < 1e-9).all())
        True
    """

    name = "gnn_wmmse"
    template = "wmmse"
    solves_mimo = True
    handles_nonsmooth = True

    def __init__(self, horizon: int = 6, hidden: int = 16, rounds: int = 1, momentum: bool = True, mu_init: float = 0.1,
                 tail: str = "wmmse", seed: int = 0):
        super().__init__(horizon=horizon, hidden=hidden, rounds=rounds, momentum=momentum, mu_init=mu_init, tail=tail,
                         seed=seed)
        self.momentum = bool(momentum)
        self.outputs = 3 if self.momentum else 2
        check_tail(self.name, tail)
        if not (isinstance(hidden, int) and hidden >= 1):
            raise ValueError(f"{self.name}: hidden must be a positive integer, got {hidden!r}")
        if not (isinstance(rounds, int) and rounds >= 0):
            raise ValueError(f"{self.name}: rounds must be an integer >= 0, got {rounds!r}")
        if not (math.isfinite(mu_init) and mu_init > MU_FLOOR):
            raise ValueError(f"{self.name}: mu_init must be a number > {MU_FLOOR:g}, got {mu_init!r}")
        self.tail = tail
        self.layers = nn.ModuleList(InterferenceGNN(hidden, rounds, self.outputs) for _ in range(horizon))
        self.reset_parameters(seed, mu_init)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @torch.no_grad()
    def reset_parameters(self, seed: int = 0, mu_init: float = 0.1) -> None:
        """Default-distributed weights from ``seed``; the heads' weights scaled by
        ``HEAD_SCALE`` and their biases set to the template's outputs (see the module docstring)."""
        seeded_default_init(self, seed)
        for layer in self.layers:
            for head in (layer.user_head, layer.cell_head):
                head.weight.mul_(HEAD_SCALE)
            layer.user_head.bias.zero_()
            layer.cell_head.bias.fill_(math.log(mu_init - MU_FLOOR))

    def check_problem(self, problem: Instances) -> None:
        require_mimo(self, problem)

    def init(self, problem: Instances, x0: Tensor) -> GNNWMMSEState:
        self.check_problem(problem)
        x = feasible_start(problem, x0)
        ch = stacked_channels(problem.H, problem.noise, problem.budget)
        return GNNWMMSEState(x=x, x_prev=x, channels=ch, k=0)

    def step(self, problem: Instances, state: GNNWMMSEState) -> GNNWMMSEState:
        if state.k >= self.horizon and self.tail == "wmmse":
            V, _ = wmmse_update(problem.H, problem.unpack(state.x), problem.noise, problem.weights, problem.budget)
            x = pack(V)
        else:
            x = self.layer_step(self.layers[min(state.k, self.horizon - 1)], problem, state)
        return GNNWMMSEState(x=x, x_prev=state.x, channels=state.channels, k=state.k + 1)

    def layer_step(self, layer: InterferenceGNN, problem: MimoInstances, state: GNNWMMSEState) -> Tensor:
        """One learned layer from ``state``: the next ``(B, n)`` iterate (the combination and
        the scaling work on the packed real coordinates, where every user's precoder is a
        contiguous block)."""
        x, x_prev, ch = state.x, state.x_prev, state.channels
        V = problem.unpack(x)
        B, K, I, M, _ = V.shape
        sm = signal_model(ch, V, problem.noise)
        A, Bc = subproblem(ch, sm, problem.weights)
        with torch.no_grad():
            nodes, graph = graph_features(problem, ch, x, sm)
            nodes, graph = self.to_net(nodes), self.to_net(graph)
        users, cell = layer(nodes, graph, K)
        real = x.dtype
        users = users.to(real).reshape(B, K, I, self.outputs, 1)
        lbar = torch.diagonal(A, dim1=-2, dim2=-1).real.sum(-1) / M  # (B, K)
        mu = lbar * (MU_FLOOR + torch.exp(cell.to(real))) + torch.finfo(real).tiny ** 0.5
        target = pack(solve_precoders(A, Bc, mu, I)).reshape(B, K, I, -1)
        v = x.reshape(B, K, I, -1)
        relax = 2.0 * torch.sigmoid(users[..., 0, :])
        v_new = v + relax * (target - v)
        if self.momentum:
            v_new = v_new + torch.tanh(users[..., 2, :]) * (v - x_prev.reshape(B, K, I, -1))
        v_new = (v_new * torch.exp(0.5 * users[..., 1, :])).reshape(B, K, -1)
        return scale_packed(v_new, problem.budget).reshape(B, -1)
