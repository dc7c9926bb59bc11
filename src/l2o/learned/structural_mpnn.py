"""StructuralMPNN: the learning-only MIMO precoder of Song, Wang, Li, Liu, Xu, *A Learning-only
Method for Multi-Cell Multi-User MIMO Sum Rate Maximization*, IEEE INFOCOM 2024.

The MIMO weighted sum-rate setting of ``l2o.problems.mimo.channel`` (K = B cells, I = U users
per cell, M = N_t transmit and N = N_r receive antennas, d streams; H[b, k, i, j] is the
channel from BS j to user (k, i), V[b, k, i] the M x d precoder of user (k, i)).

**Dimension expansion (§IV).** A learnable D in C^{M x M'} (M' = N'_t >= M) with unitary
rows, D D^H = I_M, lifts the problem: H' = H D, V' = D^H V (3)-(4); the update works on V';
V = D V' maps back after every iteration (6), followed by the power normalisation (5)

    V_{k,i} <- V_{k,i} sqrt(P_k) / sqrt(sum_i ||V_{k,i}||_F^2)     (every BS at exactly P_k).

Lemma 1: for D D^H = I, ||D V'||_F <= ||V'||_F (D^H D is an orthogonal projection), so a
feasible V' gives a feasible V.

**Structural update (§V-A).** T = ``horizon`` = 5 iterations with one set of weights:

    V'^t_{k,i} = W_L^{k,i} V'^{t-1}_{k,i} W_R^{k,i},   W_L in C^{M' x M'}, W_R in C^{d x d},

then V = D V', normalised. W_L = W_R = I leaves V unchanged.

**Encoder-decoder (§V-B, C)**, per user and in parallel over users (every weight shared by
all users, cells and instances, so one model runs at any I and K with the same M, N, d):

* V-feature module: three complex Linear + GELU maps phi_own, phi_intra, phi_inter of
  vec(V'_{k,i}) (M' d -> d_1 M N), applied to the own precoder, mean-pooled over the
  other users of the cell, and over the users of the other cells;
* HV-feature module: five complex Linear + GELU maps (N d -> d_2 N^2) of the products
  G_{ki,jl} = H_{ki,j} V_{jl} (= H' V' since D D^H = I): the desired signal G_{ki,ki},
  intra-cell interference received {G_{ki,kl}}_{l != i}, inter-cell interference received
  {G_{ki,jl}}_{j != k}, interference caused to the cell's other users {G_{kl,ki}}_{l != i}
  and to other cells' users {G_{jl,ki}}_{j != k}, each set mean-pooled;
* MPNN decoder over the complete user graph: z_{ki} (the 8 features) and the mean of
  the other users' z, two complex FC + GELU layers of width ``hidden``, and two linear
  heads reshaped to W_L = I + Delta_L and W_R = I + Delta_R.

Complex layers are pairs of real linear maps (complexPyTorch's ComplexLinear: (A + iB)(x + iy)
plus a complex bias), the GELU acts on real and imaginary parts. The noise is folded into the
channel, H <- H / sigma (the INFOCOM presets already are), and the features see
V sqrt(I / P_k) so that they are scale-free.

**Open choices, as made here** (the paper does not state them):

* D stays unitary by construction: D = Q^H with Q R = A the QR factorization of a free
  complex parameter A in C^{M' x M} (initialised Gaussian from ``seed``), so D D^H = I
  exactly up to rounding and Lemma 1 holds at every step of training.
* N'_t: ``expanded`` (default 2 M, which equals the workshop version's ZF dimension
  N_r U B at all three scales of Table II: 16, 32 and 64).
* Consequence worth knowing: since V = D V' is reconstructed every iteration, the
  expanded update equals V <- (D W_L D^H) V W_R, an M x M left factor; the expansion
  changes how the left factor is parameterised (and what the V-features see), not what
  the update can express.
* The loss: the example configs train on the mean of -sum-rate over the T iterations
  (``loss = "mean"``), i.e. the baselines' sum over iterations divided by T.
* The heads start at Delta = 0 up to ``HEAD_SCALE``: the untrained model leaves the start
  (nearly) unchanged, and every weight gets a meta-gradient from the first step.
* Start (§IV: "e.g. zero-forcing or normalized MRC"): ``start="zf"`` (default, the
  paper's WMMSE start): ``init`` ignores x0 and starts from zero-forcing with equal power
  per user (``paper_start``); ``"rzf"``: regularized zero-forcing (every cell at its
  budget); ``"x0"``: the given x0. On the INFOCOM presets fully loaded ZF (M = I d) is a
  poor start, 6-30 % of the paper's WMMSE sum-rate, RZF 81-84 % and MRT 52-55 %
  (measured); the example configs use ``"rzf"``, so that the short training this machine
  allows refines a good point instead of having to undo ZF's noise enhancement.
* Beyond T: ``tail="wmmse"`` (default) continues with exact WMMSE iterations, so a long
  run improves monotonically from where the learned iterations left it; ``"last"``
  repeats the shared learned iteration.

Ablations of Table IV: ``update="blackbox"`` (StructuralMPNN-B: the decoder outputs V'
directly, a head of M' d complex numbers, instead of W_L V' W_R) and ``expand=False``
(StructuralMPNN-O: no D, M' = M). Registered as ``structural_mpnn_b`` / ``structural_mpnn_o``.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from l2o.learned.base import LearnedOptimizer, seeded_default_init
from l2o.learned.unrolled_wmmse import TAILS
from l2o.optimizers.wmmse import require_mimo
from l2o.optimizers.wmmse_paper import paper_start
from l2o.problems.base import Instances
from l2o.problems.mimo.channel import pack, regularized_zero_forcing, scale_to_budget, wmmse_update
from l2o.problems.mimo.infocom import INFOCOM_SCALES
from l2o.problems.mimo.instances import MimoInstances

__all__ = ["StructuralMPNN", "StructuralMPNNB", "StructuralMPNNO", "StructuralMPNNState", "ComplexLinear",
           "structural_update", "unitary_rows"]

UPDATES = ("structural", "blackbox")
STARTS = ("zf", "rzf", "x0")
#: The heads' initial weights are PyTorch's defaults times this (Delta_L, Delta_R ~ 0).
HEAD_SCALE = 1e-2

Pair = tuple[Tensor, Tensor]


# ----- complex layers as pairs of real maps ------------------------------------------------------
class ComplexLinear(nn.Module):
    """y = (A + iB) x + (a + ib) on (real, imaginary) pairs, two real ``nn.Linear`` (complexPyTorch).

    >>> layer = ComplexLinear(3, 2)
    >>> x = torch.randn(4, 3, dtype=torch.complex64)
    >>> yr, yi = layer((x.real, x.imag))
    >>> W = torch.complex(layer.fc_r.weight, layer.fc_i.weight)
    >>> b = torch.complex(layer.fc_r.bias - layer.fc_i.bias, layer.fc_r.bias + layer.fc_i.bias)
    >>> bool(torch.allclose(torch.complex(yr, yi), x @ W.T + b, atol=1e-6))
    True
    """

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.fc_r = nn.Linear(in_features, out_features)
        self.fc_i = nn.Linear(in_features, out_features)

    def forward(self, x: Pair) -> Pair:
        xr, xi = x
        return self.fc_r(xr) - self.fc_i(xi), self.fc_r(xi) + self.fc_i(xr)


def _cgelu(x: Pair) -> Pair:
    return F.gelu(x[0]), F.gelu(x[1])


def _map(f, x: Pair) -> Pair:
    return f(x[0]), f(x[1])


def _pairs(z: Tensor) -> Pair:
    return z.real, z.imag


def unitary_rows(A: Tensor) -> Tensor:
    """D = Q^H for the QR factorization Q R = A of ``A`` ``(M', M)`` complex (M' >= M): ``(M, M')``
    with D D^H = I_M.

    >>> D = unitary_rows(torch.randn(6, 3, dtype=torch.complex128))
    >>> bool(torch.allclose(D @ D.mH, torch.eye(3, dtype=torch.complex128)))
    True
    """
    return torch.linalg.qr(A).Q.mH


def structural_update(V: Tensor, W_L: Tensor, W_R: Tensor, budget: Tensor, D: Tensor | None = None) -> Tensor:
    """One structural update with the power normalisation: V' = D^H V, V' <- W_L V' W_R, V = D V',
    every cell scaled to exactly its budget. ``V (B, K, I, M, d)``, ``W_L (B, K, I, M', M')``,
    ``W_R (B, K, I, d, d)``, ``budget (B, K)``, ``D (M, M')`` or None (M' = M) -> ``(B, K, I, M, d)``.

    >>> V = torch.randn(2, 2, 3, 4, 2, dtype=torch.complex128)
    >>> I4, I2 = torch.eye(4, dtype=V.dtype).expand(2, 2, 3, 4, 4), torch.eye(2, dtype=V.dtype).expand(2, 2, 3, 2, 2)
    >>> budget = torch.full((2, 2), 10.0, dtype=torch.float64)
    >>> out = structural_update(V, I4, I2, budget)
    >>> bool(torch.allclose(out, scale_to_budget(V, budget)))  # W_L = W_R = I: only the normalisation
    True
    """
    Vp = V if D is None else D.mH @ V
    Vp = W_L @ Vp @ W_R
    return scale_to_budget(Vp if D is None else D @ Vp, budget)


# ----- the solver -----------------------------------------------------------------------------------
@dataclasses.dataclass
class StructuralMPNNState:
    """x: ``(B, n)`` packed precoders (every cell at its budget); k: iterations done."""

    x: Tensor
    k: int = 0


def _presets_for(M: int, N: int) -> str:
    names = [f"mimo_infocom_{s}, mimo_infocom_{s}_dense" for s, (_, _, m, n) in INFOCOM_SCALES.items()
             if (m, n) == (M, N)]
    return names[0] if names else "no preset"


class StructuralMPNN(LearnedOptimizer):
    """StructuralMPNN (Song et al., INFOCOM 2024) for the MIMO sum-rate family; see the module docstring.

    Args:
        tx_antennas, rx_antennas, streams: M = N_t, N = N_r and d of the problems it solves
            (the V- and HV-feature maps and the heads are sized by them; any K and I).
        horizon: T, the number of shared learned iterations (5 in the paper).
        expanded: N'_t = M' (None: 2 M); ignored with ``expand=False``.
        d1, d2: the feature multipliers (V-features d1 M N, HV-features d2 N^2 complex
            numbers each; the paper: d1 = 2, d2 = 4 at small/moderate and 16 at large scale).
        hidden: width of the decoder's two complex FC layers.
        update: ``"structural"`` (W_L V W_R) or ``"blackbox"`` (ablation -B).
        expand: learnable D (True) or none (ablation -O).
        tail: after T iterations, ``"wmmse"`` (exact WMMSE) or ``"last"`` (the learned iteration).
        start: ``"zf"`` (ZF with equal power, the paper's), ``"rzf"`` or ``"x0"``.
        seed: of the initial weights (and of D).

    Example (untrained: the identity-like update keeps the ZF start, at full power):
        >>> import torch, l2o
        >>> from l2o.problems.mimo.infocom import InfocomMimoFamily
        >>> problem = InfocomMimoFamily(users=2, tx_antennas=4).sample(3, generator=0)
        >>> model = l2o.learned.StructuralMPNN(tx_antennas=4, rx_antennas=2, streams=2)
        >>> with torch.no_grad():
        ...     state = model.init(problem, problem.initial_point())
        ...     for _ in range(5):
        ...         state = model.step(problem, state)
        >>> bool(((problem.power(state.x) - 10.0).abs() < 1e-9).all())
        True
        >>> model.check_problem(InfocomMimoFamily(users=2, tx_antennas=8).sample(1))
        Traceback (most recent call last):
        ValueError: solver 'structural_mpnn' was built for N_t = 4 transmit and N_r = 2 receive antennas ...
    """

    name = "structural_mpnn"
    template = None
    solves_mimo = True
    #: (hyperparameter, value) an ablation fixes (None: none)
    fixed: tuple[str, object] | None = None
    handles_nonsmooth = True

    def __init__(self, tx_antennas: int = 8, rx_antennas: int = 2, streams: int = 2, horizon: int = 5,
                 expanded: int | None = None, d1: int = 2, d2: int = 4, hidden: int = 64,
                 update: str = "structural", expand: bool = True, tail: str = "wmmse", start: str = "zf",
                 seed: int = 0):
        super().__init__(horizon=horizon, tx_antennas=tx_antennas, rx_antennas=rx_antennas, streams=streams,
                         expanded=expanded, d1=d1, d2=d2, hidden=hidden, update=update, expand=expand, tail=tail,
                         start=start, seed=seed)
        if self.fixed is not None and self.hparams[self.fixed[0]] != self.fixed[1]:
            raise ValueError(f"{self.name}: {self.fixed[0]} must be {self.fixed[1]!r} (the ablation), "
                             f"got {self.hparams[self.fixed[0]]!r}")
        for key in ("tx_antennas", "rx_antennas", "streams", "d1", "d2", "hidden"):
            v = self.hparams[key]
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ValueError(f"{self.name}: {key} must be a positive integer, got {v!r}")
        if streams > min(tx_antennas, rx_antennas):
            raise ValueError(f"{self.name}: streams must be <= min(tx_antennas, rx_antennas), got {streams}")
        for key, choices in (("update", UPDATES), ("tail", TAILS), ("start", STARTS)):
            if self.hparams[key] not in choices:
                raise ValueError(f"{self.name}: {key} must be one of {', '.join(map(repr, choices))}, "
                                 f"got {self.hparams[key]!r}")
        M, N, d = tx_antennas, rx_antennas, streams
        Mx = (2 * M if expanded is None else expanded) if expand else M
        if not (isinstance(Mx, int) and Mx >= M):
            raise ValueError(f"{self.name}: expanded must be an integer >= tx_antennas = {M}, got {expanded!r}")
        self.M, self.N, self.d, self.Mx = M, N, d, Mx
        self.update, self.expand, self.tail, self.start = update, bool(expand), tail, start
        fv, fh = d1 * M * N, d2 * N * N
        self.v_maps = nn.ModuleList(ComplexLinear(Mx * d, fv) for _ in range(3))  # own, intra, inter
        self.hv_maps = nn.ModuleList(ComplexLinear(N * d, fh) for _ in range(5))
        width = 3 * fv + 5 * fh
        self.fc1 = ComplexLinear(2 * width, hidden)
        self.fc2 = ComplexLinear(hidden, hidden)
        if update == "structural":
            self.head_left = ComplexLinear(hidden, Mx * Mx)
            self.head_right = ComplexLinear(hidden, d * d)
        else:
            self.head_v = ComplexLinear(hidden, Mx * d)
        if self.expand:
            self.expansion = nn.Parameter(torch.empty(Mx, M, 2))
        self.reset_parameters(seed)

    @torch.no_grad()
    def reset_parameters(self, seed: int = 0) -> None:
        """PyTorch's default weights from ``seed``; the structural heads scaled by ``HEAD_SCALE``
        (W_L, W_R ~ I); D from a Gaussian A (``unitary_rows``)."""
        seeded_default_init(self, seed)
        if self.update == "structural":
            for head in (self.head_left, self.head_right):
                for fc in (head.fc_r, head.fc_i):
                    fc.weight.mul_(HEAD_SCALE)
                    fc.bias.zero_()
        if self.expand:
            g = torch.Generator().manual_seed(seed)
            self.expansion.copy_(torch.randn(self.expansion.shape, generator=g) / math.sqrt(2))

    def expansion_matrix(self) -> Tensor | None:
        """D ``(M, M')`` complex with unitary rows (None without expansion)."""
        if not self.expand:
            return None
        return unitary_rows(torch.view_as_complex(self.expansion.contiguous()))

    # ----- protocol ------------------------------------------------------------------------------
    def check_problem(self, problem: Instances) -> None:
        require_mimo(self, problem)
        got = (problem.tx_antennas, problem.rx_antennas, problem.streams)
        if got != (self.M, self.N, self.d):
            raise ValueError(
                f"solver '{self.name}' was built for N_t = {self.M} transmit and N_r = {self.N} receive antennas "
                f"with d = {self.d} streams (presets {_presets_for(self.M, self.N)}; any number of cells and "
                f"users), got N_t = {got[0]}, N_r = {got[1]}, d = {got[2]}")

    def init(self, problem: Instances, x0: Tensor) -> StructuralMPNNState:
        self.check_problem(problem)
        if self.start == "zf":
            return StructuralMPNNState(x=paper_start(problem).to(x0.dtype), k=0)
        if self.start == "rzf":
            x = regularized_zero_forcing(problem.H, problem.streams, problem.budget, problem.noise)
            return StructuralMPNNState(x=x.to(x0.dtype), k=0)
        V = scale_to_budget(problem.unpack(x0), problem.budget)
        return StructuralMPNNState(x=pack(V), k=0)

    def step(self, problem: Instances, state: StructuralMPNNState) -> StructuralMPNNState:
        V = problem.unpack(state.x)
        if state.k >= self.horizon and self.tail == "wmmse":
            V, _ = wmmse_update(problem.H, V, problem.noise, problem.weights, problem.budget)
        else:
            V = self.iteration(problem, V)
        return StructuralMPNNState(x=pack(V), k=state.k + 1)

    # ----- one learned iteration -------------------------------------------------------------------
    def iteration(self, problem: MimoInstances, V: Tensor) -> Tensor:
        """``(B, K, I, M, d)`` -> the next precoders (same shape, every cell at its budget)."""
        D = self.expansion_matrix()
        out = self.decode(problem, V, D)
        cdt = V.dtype
        Dc = None if D is None else D.to(cdt)
        if self.update == "blackbox":
            Vp = torch.complex(*out).to(cdt).reshape(*V.shape[:3], self.Mx, self.d)
            return scale_to_budget(Vp if Dc is None else Dc @ Vp, problem.budget)
        (lr, li), (rr, ri) = out
        B, K, I = V.shape[:3]
        W_L = torch.complex(lr, li).to(cdt).reshape(B, K, I, self.Mx, self.Mx)
        W_R = torch.complex(rr, ri).to(cdt).reshape(B, K, I, self.d, self.d)
        W_L = W_L + torch.eye(self.Mx, dtype=cdt, device=V.device)
        W_R = W_R + torch.eye(self.d, dtype=cdt, device=V.device)
        return structural_update(V, W_L, W_R, problem.budget, Dc)

    def decode(self, problem: MimoInstances, V: Tensor, D: Tensor | None):
        """The encoder-decoder: heads' outputs as (real, imaginary) pairs, ``(B, K, I, .)``."""
        B, K, I, M, d = V.shape
        N = problem.rx_antennas
        net = self.fc1.fc_r.weight
        cnet = torch.complex64 if net.dtype == torch.float32 else torch.complex128
        scale = (I / problem.budget).sqrt().to(net.dtype)[:, :, None, None, None]  # (B, K, 1, 1, 1)
        Vn = V.to(cnet) * scale.to(cnet)
        Hn = (problem.H / problem.noise.sqrt().reshape(B, 1, 1, 1, 1, 1).to(problem.H.dtype)).to(cnet)
        Vp = Vn if D is None else D.mH.to(cnet) @ Vn
        vec_v = _pairs(Vp.reshape(B, K, I, self.Mx * d))
        # V-features
        own = _cgelu(self.v_maps[0](vec_v))
        e = _cgelu(self.v_maps[1](vec_v))
        intra = _map(lambda t: (t.sum(2, keepdim=True) - t) / max(I - 1, 1), e)
        e = _cgelu(self.v_maps[2](vec_v))
        others = max((K - 1) * I, 1)
        inter = _map(lambda t: ((t.sum((1, 2), keepdim=True) - t.sum(2, keepdim=True)) / others).expand(t.shape), e)
        # HV-features: G[b, k, i, j, l] = H_{ki,j} V_{jl}
        G = torch.einsum("bkijnm,bjlms->bkijlns", Hn, Vn).reshape(B, K, I, K, I, N * d)
        Gs = torch.diagonal(G, dim1=1, dim2=3).permute(0, 4, 1, 2, 3)  # (b, k, i, l, Nd): same cell
        sig = _cgelu(self.hv_maps[0](_pairs(torch.diagonal(Gs, dim1=2, dim2=3).permute(0, 1, 3, 2))))
        eye_i = torch.eye(I, dtype=torch.bool, device=V.device)[None, None, :, :, None]
        other_user = (~eye_i).to(net.dtype) / max(I - 1, 1)
        e = _cgelu(self.hv_maps[1](_pairs(Gs)))
        intra_rx = _map(lambda t: (t * other_user).sum(3), e)
        e = _cgelu(self.hv_maps[3](_pairs(Gs)))
        intra_tx = _map(lambda t: (t * other_user).sum(2), e)
        eye_k = torch.eye(K, dtype=torch.bool, device=V.device)[None, :, None, :, None, None]
        other_cell = (~eye_k).to(net.dtype) / max((K - 1) * I, 1)
        pG = _pairs(G)
        e = _cgelu(self.hv_maps[2](pG))
        inter_rx = _map(lambda t: (t * other_cell).sum((3, 4)), e)
        e = _cgelu(self.hv_maps[4](pG))
        inter_tx = _map(lambda t: (t * other_cell).sum((1, 2)), e)
        parts = [own, intra, inter, sig, intra_rx, inter_rx, intra_tx, inter_tx]
        z = tuple(torch.cat([p[c] for p in parts], -1) for c in (0, 1))
        # MPNN decoder over the complete user graph: the mean of the other users' features
        n = K * I
        msg = _map(lambda t: (t.sum((1, 2), keepdim=True) - t) / max(n - 1, 1), z)
        h = (torch.cat([z[0], msg[0]], -1), torch.cat([z[1], msg[1]], -1))
        h = _cgelu(self.fc2(_cgelu(self.fc1(h))))
        if self.update == "blackbox":
            return self.head_v(h)
        return self.head_left(h), self.head_right(h)


class StructuralMPNNB(StructuralMPNN):
    """StructuralMPNN-B (ablation of Table IV): the decoder outputs V' directly (a black-box
    update) instead of W_L V' W_R.

    >>> StructuralMPNNB(tx_antennas=4).update
    'blackbox'
    """

    name = "structural_mpnn_b"
    fixed = ("update", "blackbox")

    def __init__(self, tx_antennas: int = 8, rx_antennas: int = 2, streams: int = 2, horizon: int = 5,
                 expanded: int | None = None, d1: int = 2, d2: int = 4, hidden: int = 64,
                 update: str = "blackbox", expand: bool = True, tail: str = "wmmse", start: str = "zf",
                 seed: int = 0):
        super().__init__(tx_antennas=tx_antennas, rx_antennas=rx_antennas, streams=streams, horizon=horizon,
                         expanded=expanded, d1=d1, d2=d2, hidden=hidden, update=update, expand=expand, tail=tail,
                         start=start, seed=seed)


class StructuralMPNNO(StructuralMPNN):
    """StructuralMPNN-O (ablation of Table IV): no dimension expansion D (M' = M).

    >>> StructuralMPNNO(tx_antennas=4).expansion_matrix() is None
    True
    """

    name = "structural_mpnn_o"
    fixed = ("expand", False)

    def __init__(self, tx_antennas: int = 8, rx_antennas: int = 2, streams: int = 2, horizon: int = 5,
                 expanded: int | None = None, d1: int = 2, d2: int = 4, hidden: int = 64,
                 update: str = "structural", expand: bool = False, tail: str = "wmmse", start: str = "zf",
                 seed: int = 0):
        super().__init__(tx_antennas=tx_antennas, rx_antennas=rx_antennas, streams=streams, horizon=horizon,
                         expanded=expanded, d1=d1, d2=d2, hidden=hidden, update=update, expand=expand, tail=tail,
                         start=start, seed=seed)
