"""GNN-WMMSE: WMMSE unrolled into a few layers whose V-update is steered by a graph neural network.

The MIMO weighted sum-rate setting (``l2o.problems.mimo``: K cells, I users per cell,
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

Choices, measured on ``mimo_medium`` (3 cells x 4 users, M = 8, N = d = 2) with 600
meta-steps of 64 instances, sum-rate after 6 layers as a fraction of converged WMMSE's on
200 held-out instances (the benchmark: ``benchmarks/bench_mimo.py``):

* *A Cholesky solve with a predicted multiplier* rather than learned projected-gradient
  steps on the convex V-subproblem tr(V^H A V) - 2 Re tr(V^H B). A_k is ill conditioned:
  10 gradient steps per layer (step 1.5 / lambda_max(A_k)) reach 85% of the sum-rate after
  6 layers where WMMSE reaches 90%, while one M x M Cholesky solve per cell costs less
  than a tenth of WMMSE's V-update (eigendecomposition + 60 bisection steps) and is
  exact for the given mu. The power is set afterwards (scaling), so mu only shapes the
  direction, a regularization like RZF's: a fixed mu_k = 0.1 lbar_k already tracks WMMSE
  (89.4% after 8 layers, WMMSE 93.2%); the GNN adapts it per cell and layer. Every
  cell uses its full budget: at WMMSE's fixed points on the presets mu_k > 0 for every
  cell, so this costs nothing there (a family where some BS should transmit below its
  budget would need a learned power level). ``MU_FLOOR`` keeps A_k + mu_k I well
  conditioned in float32 whatever the network outputs.
* *Relaxation and momentum*: over-relaxed WMMSE (g = 1.6) is already faster than WMMSE in
  the first iterations; learning g and beta per user and layer gives 95.7% after 6 layers
  (95.1% without the momentum term; 97.4% with 8 layers).
* *A small GNN*: width 16 and one message-passing round per layer (95.7%, as width 32 with
  two rounds, at a third of the network's cost); without message passing (rounds = 0:
  every user sees only its own features and the cell mean) 95.5%.
* *Fast kernels* (``received``, ``signal_model``, ``subproblem``): the signals of all
  streams at all users from one batched product per BS, the N x N and d x d Cholesky
  factors and triangular solves in closed form for sizes <= 2 (elementwise, instead of
  batched LAPACK calls on thousands of tiny matrices), A_k = X X^H with X from one
  batched product per BS, small reductions as products with a vector of ones. A layer
  costs about 0.6 WMMSE iterations of ``l2o.optimizers.wmmse`` on ``mimo_medium``.

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
iterations (``l2o.optimizers.wmmse.wmmse_update``), so a long run (evaluation at 10 x
the horizon, a safeguard's hand-over) improves monotonically to a WMMSE fixed point from
where the learned layers left it; ``"last"`` keeps applying the last learned layer (the
unrolled-network convention; no convergence guarantee).

``init`` projects the start onto the budgets (a cell over its budget is scaled down) and
replaces cells whose precoders are all zero by MRT (V = 0 is a degenerate fixed point of
WMMSE: the receivers and weights vanish there and no V-update moves it). Every iterate
meets the budgets (each cell at exactly P_k, to rounding).

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
from l2o.problems.mimo import MimoInstances, pack

#: Key of the per-problem cache of channel constants (kept in the problem's ``__dict__``).
_CACHE = "_gnn_wmmse_channels"
NODE_FEATURES = 7
TAILS = ("wmmse", "last")
#: Lower bound of mu_k / lbar_k: keeps A_k + mu_k I well conditioned (float32 Cholesky)
#: whatever the network outputs (condition number <= M / MU_FLOOR).
MU_FLOOR = 1e-3
#: The heads' initial weights are PyTorch's defaults times this: the untrained model is
#: the template up to ~1e-2, and every weight gets a meta-gradient from the first step.
HEAD_SCALE = 1e-2


# ----- kernels ---------------------------------------------------------------------------------
@dataclasses.dataclass
class Channels:
    """Per-instance constants of a batch (computed once per problem, cached on it).

    Hp: ``(B, K_j, K I N, M)`` channels from BS j to every receive antenna, H[b, k, i, j] at
    rows (k, i, :); Hh: ``(B, K_j, M, K I N)`` their conjugate transposes; Hd: ``(B, K, I,
    M, N)`` the conjugate transposes of the direct channels H_{ki,k}; snr_gain: ``(B, K, I,
    K)`` log(P_j ||H_{ki,j}||_F^2 / (M sigma^2))."""

    Hp: Tensor
    Hh: Tensor
    Hd: Tensor
    snr_gain: Tensor


def channels(problem: MimoInstances) -> Channels:
    """The cached ``Channels`` of ``problem``."""
    cached = problem.__dict__.get(_CACHE)
    if cached is None:
        H = problem.H
        B, K, I, _, N, M = H.shape
        Hp = H.permute(0, 3, 1, 2, 4, 5).reshape(B, K, K * I * N, M).contiguous()
        Hd = torch.diagonal(H, dim1=1, dim2=3).permute(0, 4, 1, 3, 2).conj().contiguous()
        gain = _abs2(H).sum((-2, -1))  # (B, K, I, K)
        snr = gain * problem.budget[:, None, None, :] / (M * problem.noise[:, None, None, None])
        cached = Channels(Hp=Hp, Hh=Hp.mH.contiguous(), Hd=Hd,
                          snr_gain=torch.log(snr.clamp(min=torch.finfo(snr.dtype).tiny)))
        problem.__dict__[_CACHE] = cached
    return cached


def _abs2(z: Tensor) -> Tensor:
    """|z|^2 elementwise, real (faster than ``z.abs().square()`` for complex tensors)."""
    return torch.view_as_real(z).square().sum(-1) if z.is_complex() else z.square()


def _own_streams(K: int, I: int, device) -> Tensor:
    """``(1, K_j, K, I, 1, I, 1)`` bool: in the layout of ``received``, stream (j, l) is user (k, i)'s own."""
    eye_k = torch.eye(K, dtype=torch.bool, device=device)[:, :, None, None]
    eye_i = torch.eye(I, dtype=torch.bool, device=device)[None, None]
    return (eye_k & eye_i).reshape(1, K, K, I, 1, I, 1)


def received(ch: Channels, V: Tensor) -> Tensor:
    """Every stream at every user: ``(B, K_j, K, I, N, I, d)``, G[b, j, k, i, :, l, :] =
    H_{ki,j} V_{lj} (one batched product per BS)."""
    B, K, I, M, d = V.shape
    N = ch.Hp.shape[2] // (K * I)
    Vc = V.permute(0, 1, 3, 2, 4).reshape(B, K, M, I * d)
    return (ch.Hp @ Vc).reshape(B, K, K, I, N, I, d)


@dataclasses.dataclass
class SignalModel:
    """What one layer computes from V (B instances, shapes as in ``l2o.problems.mimo``).

    S: ``(B, K, I, N, d)`` desired signals H_{ki,k} V_{ki}; Y: ``(B, K, I, N, d)``
    J^{-1} S (= U W, the MMSE receiver times its weight); Q: ``(B, K, I, d, N)``
    L_W^{-1} Y^H with W = L_W L_W^H, so U W U^H = Q^H Q; rate: ``(B, K, I)``
    log det W; power: ``(B, K, I, K, I)`` ||H_{ki,j} V_{lj}||_F^2 at [k, i, j, l] (0 at
    the user's own streams; no autograd), or None."""

    S: Tensor
    Y: Tensor
    Q: Tensor
    rate: Tensor
    power: Tensor | None


def _cholesky(A: Tensor) -> Tensor:
    """Lower Cholesky factor of Hermitian positive definite ``(..., n, n)`` matrices: in
    closed form for n <= 2 (elementwise, no batched LAPACK call per tiny matrix), else
    ``torch.linalg.cholesky_ex``."""
    n = A.shape[-1]
    if n == 1:
        return A.real.sqrt().to(A.dtype)
    if n == 2:
        l11 = A[..., 0, 0].real.sqrt()
        l21 = A[..., 1, 0] / l11.to(A.dtype)
        l22 = (A[..., 1, 1].real - _abs2(l21)).sqrt()
        zero = torch.zeros_like(l21)
        return torch.stack([l11.to(A.dtype), zero, l21, l22.to(A.dtype)], -1).reshape(A.shape)
    return torch.linalg.cholesky_ex(A).L


def _solve_lower(L: Tensor, B: Tensor) -> Tensor:
    """L^{-1} B for lower triangular ``(..., n, n)`` L (closed form for n <= 2)."""
    n = L.shape[-1]
    if n == 1:
        return B / L
    if n == 2:
        x1 = B[..., 0, :] / L[..., 0, 0, None]
        x2 = (B[..., 1, :] - L[..., 1, 0, None] * x1) / L[..., 1, 1, None]
        return torch.stack([x1, x2], -2)
    return torch.linalg.solve_triangular(L, B, upper=False)


def _solve_upper_h(L: Tensor, B: Tensor) -> Tensor:
    """L^{-H} B for lower triangular ``(..., n, n)`` L (closed form for n <= 2)."""
    n = L.shape[-1]
    if n == 1:
        return B / L.conj()
    if n == 2:
        x2 = B[..., 1, :] / L[..., 1, 1, None].conj()
        x1 = (B[..., 0, :] - L[..., 1, 0, None].conj() * x2) / L[..., 0, 0, None].conj()
        return torch.stack([x1, x2], -2)
    return torch.linalg.solve_triangular(L.mH, B, upper=True)


def signal_model(ch: Channels, V: Tensor, noise: Tensor, power: bool = True) -> SignalModel:
    """MMSE receivers, weights and rates of WMMSE (the U and W updates) from V, and (with
    ``power``) the interference powers of every stream at every user, for the features.

    J = sigma^2 I + G_o G_o^H with G_o the other users' streams (masked, never J = C - S S^H,
    which cancels at high SINR), W = I + T^H T with T = L^{-1} S (J = L L^H): the forms
    of ``l2o.problems.mimo.mmse_receivers``."""
    B, K, I, _, d = V.shape
    G = received(ch, V)  # (b, j, k, i, n, l, s)
    N = G.shape[4]
    S = torch.diagonal(torch.diagonal(G, dim1=1, dim2=2), dim1=1, dim2=3).permute(0, 3, 4, 1, 2)
    Gm = G.masked_fill(_own_streams(K, I, V.device), 0)
    pw = None
    if power:
        with torch.no_grad():  # reductions as products with ones: much faster than sums over small inner dims
            ones = torch.ones(2 * d, dtype=V.real.dtype, device=V.device)
            pw = (torch.view_as_real(Gm).reshape(B, K, K, I, N, I, 2 * d).square() @ ones).sum(4)
            pw = pw.permute(0, 2, 3, 1, 4)
    Gu = Gm.permute(0, 2, 3, 4, 1, 5, 6).reshape(B, K, I, N, K * I * d)
    J = Gu @ Gu.mH
    J.diagonal(dim1=-2, dim2=-1).add_(noise.reshape(B, 1, 1, 1).to(J.dtype))
    L = _cholesky(J)
    T = _solve_lower(L, S)
    W = T.mH @ T
    W.diagonal(dim1=-2, dim2=-1).add_(1.0)
    LW = _cholesky(W)
    Y = _solve_upper_h(L, T)
    Q = _solve_lower(LW, Y.mH)
    rate = 2.0 * torch.log(torch.diagonal(LW, dim1=-2, dim2=-1).real).sum(-1)
    return SignalModel(S=S, Y=Y, Q=Q, rate=rate, power=pw)


def subproblem(ch: Channels, sm: SignalModel, weights: Tensor) -> tuple[Tensor, Tensor]:
    """A and B of WMMSE's V-update: ``A (B, K, M, M)``, ``Bc (B, K, M, I d)`` (cell-major
    columns (i, s)). A_j = X_j X_j^H with X_j = H_j^H blockdiag(sqrt(alpha_ki) Q_ki^H) (one
    batched product per BS; H_j stacks every user's channel from BS j), so A is Hermitian
    positive semidefinite by construction; B_ki = alpha_ki H_{ki,k}^H Y_ki."""
    B, K, I, N, d = sm.Y.shape
    M = ch.Hh.shape[-2]
    root = weights.sqrt()[..., None, None].to(sm.Q.dtype)
    R = sm.Q.mH * root  # (b, k, i, n, s)
    eye = torch.eye(K * I, dtype=R.dtype, device=R.device).reshape(K, I, 1, K, I, 1)
    blocks = (R[:, :, :, :, None, None, :] * eye).reshape(B, 1, K * I * N, K * I * d)
    X = ch.Hh @ blocks
    A = X @ X.mH
    Bm = ch.Hd @ (sm.Y * (root * root))  # (b, k, i, m, s)
    return A, Bm.permute(0, 1, 3, 2, 4).reshape(B, K, M, I * d)


def solve_precoders(A: Tensor, Bc: Tensor, mu: Tensor, users: int) -> Tensor:
    """(A_k + mu_k I)^{-1} B_k by one Cholesky factorization per cell: ``(B, K, I, M, d)``."""
    B, K, M, _ = A.shape
    shifted = A + torch.diag_embed(mu.to(A.real.dtype).unsqueeze(-1).expand(B, K, M)).to(A.dtype)
    Vc = torch.cholesky_solve(Bc, torch.linalg.cholesky_ex(shifted).L)
    return Vc.reshape(B, K, M, users, -1).permute(0, 1, 3, 2, 4)


def scale_packed(v: Tensor, budget: Tensor) -> Tensor:
    """``scale_to_budget`` on packed real precoders grouped by cell, ``(B, K, n_k)``: every
    cell scaled to use exactly its budget ``(B, K)`` (an all-zero cell stays zero)."""
    p = v.square().sum(-1)
    ok = p > 0
    scale = torch.where(ok, (budget.to(v.dtype) / torch.where(ok, p, torch.ones_like(p))).sqrt(), torch.zeros_like(p))
    return v * scale.unsqueeze(-1)


# ----- the network -----------------------------------------------------------------------------
def _log1p_ratio(p: Tensor, noise: Tensor) -> Tensor:
    return torch.log1p(p / noise.reshape((-1,) + (1,) * (p.ndim - 1)))


def _row_normalized(a: Tensor) -> Tensor:
    """Rows of a nonnegative ``(B, n, n)`` divided by their sums (rows of zeros stay zero)."""
    s = a.sum(-1, keepdim=True)
    return a / torch.where(s > 0, s, torch.ones_like(s))


def graph_features(problem: MimoInstances, x: Tensor, sm: SignalModel) -> tuple[Tensor, Tensor]:
    """Node features ``(B, K I, NODE_FEATURES)`` and the interference graph ``(B, 2, K I, K I)``:
    [0] row-normalized interference received (entry [a, b]: power of user b's streams at
    user a), [1] row-normalized interference caused (its transpose, normalized); in the
    problem's real dtype. ``x``: ``(B, n)`` the packed precoders."""
    B, K, I = problem.weights.shape
    noise = problem.noise
    ch = channels(problem)
    cross = sm.power  # (b, k, i, j, l) with the own streams at 0
    signal = _abs2(sm.S).sum((-2, -1))
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
    previous iterate (the momentum term; x itself at the start); k: iterations done."""

    x: Tensor
    x_prev: Tensor
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
    """

    name = "gnn_wmmse"
    template = "wmmse"
    handles_nonsmooth = True

    def __init__(self, horizon: int = 6, hidden: int = 16, rounds: int = 1, momentum: bool = True, mu_init: float = 0.1,
                 tail: str = "wmmse", seed: int = 0):
        super().__init__(horizon=horizon, hidden=hidden, rounds=rounds, momentum=momentum, mu_init=mu_init, tail=tail,
                         seed=seed)
        self.momentum = bool(momentum)
        self.outputs = 3 if self.momentum else 2
        if tail not in TAILS:
            raise ValueError(f"{self.name}: tail must be one of {', '.join(map(repr, TAILS))}, got {tail!r}")
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

    def check_problem(self, problem) -> None:
        if not isinstance(problem, MimoInstances):
            raise ValueError(  # noqa: TRY004 (the solver protocol: a problem that does not fit is a ValueError)
                f"solver '{self.name}' solves the MIMO sum-rate family only ('mimo' and the mimo_* presets), "
                f"got {type(problem).__name__}"
            )

    def init(self, problem, x0: Tensor) -> GNNWMMSEState:
        self.check_problem(problem)
        x = problem.prox(x0, None)
        zero = problem.power(x) == 0
        if bool(zero.any()):
            from l2o.optimizers.wmmse import mrt

            start = mrt(problem).to(x.dtype)
            B, K = zero.shape
            x = torch.where(zero.unsqueeze(-1), start.reshape(B, K, -1), x.reshape(B, K, -1)).reshape(x.shape)
        return GNNWMMSEState(x=x, x_prev=x, k=0)

    def step(self, problem, state: GNNWMMSEState) -> GNNWMMSEState:
        if state.k >= self.horizon and self.tail == "wmmse":
            from l2o.optimizers.wmmse import wmmse_update

            V, _ = wmmse_update(problem.H, problem.unpack(state.x), problem.noise, problem.weights, problem.budget)
            return GNNWMMSEState(x=pack(V), x_prev=state.x, k=state.k + 1)
        layer = self.layers[min(state.k, self.horizon - 1)]
        return GNNWMMSEState(x=self.layer_step(layer, problem, state.x, state.x_prev), x_prev=state.x, k=state.k + 1)

    def layer_step(self, layer: InterferenceGNN, problem: MimoInstances, x: Tensor, x_prev: Tensor) -> Tensor:
        """One learned layer: ``(B, n) -> (B, n)`` (the combination and the scaling work on
        the packed real coordinates, where every user's precoder is a contiguous block)."""
        V = problem.unpack(x)
        B, K, I, M, _ = V.shape
        ch = channels(problem)
        sm = signal_model(ch, V, problem.noise)
        A, Bc = subproblem(ch, sm, problem.weights)
        with torch.no_grad():
            nodes, graph = graph_features(problem, x, sm)
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
