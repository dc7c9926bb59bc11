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

**Computation** (the same map, arranged for speed; ``tests/learned/test_structural_mpnn_reference.py``
checks every iterate and gradient against the straightforward form): D is folded into the
weights where it is linear (the V-maps act on vec(V), M d, instead of vec(D^H V), M' d; the left
head outputs E = D Delta_L D^H, M x M, and V <- (I + E) V W_R, since D D^H = I); every complex
layer is one real matrix product on stacked (real, imaginary) vectors, maps that share an input
are one product; the pools over the other users are sums minus the own term, the interference
features are computed on the pairs they pool (the same cell's for maps 1, 3; the other cells'
for maps 2, 4); fc1 on [z, mean of the others] is (W_z - W_m / (n-1)) z + W_m (sum z) / (n-1);
the batch is run in chunks whose intermediates stay cache-sized (``CHUNK``); under no_grad the
folded weights are cached until a parameter changes. ``benchmarks/bench_structural_mpnn_speed.py``
measures it.

Ablations of Table IV: ``update="blackbox"`` (StructuralMPNN-B: the decoder outputs V'
directly, a head of M' d complex numbers, instead of W_L V' W_R) and ``expand=False``
(StructuralMPNN-O: no D, M' = M). Registered as ``structural_mpnn_b`` / ``structural_mpnn_o``.
"""

from __future__ import annotations

import dataclasses
import functools
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


def _cweights(layer: ComplexLinear) -> tuple[Tensor, Tensor]:
    """The complex ``(W (out, in), b (out,))`` of ``layer``: y = W x + b."""
    Wr, Wi, br, bi = layer.fc_r.weight, layer.fc_i.weight, layer.fc_r.bias, layer.fc_i.bias
    return torch.complex(Wr, Wi), torch.complex(br - bi, br + bi)


def _stacked(Ws, bs, interleaved: bool = False, interleaved_out: bool = False) -> tuple[Tensor, Tensor]:
    """Complex maps ``W_p (out_p, in)``, ``b_p`` side by side as one real map on stacked vectors:
    ``(2 in, sum 2 out_p)`` and its bias. The input is [re | im] or (``interleaved``) re, im per
    entry; the output [re | im] per map or (``interleaved_out``, one map) re, im per entry."""
    cols, bias = [], []
    for W, b in zip(Ws, bs):
        Wr, Wi = W.real.T, W.imag.T
        top, bot = torch.cat([Wr, Wi], 1), torch.cat([-Wi, Wr], 1)  # the rows of Re x and of Im x
        cols.append(torch.stack([top, bot], 1).reshape(-1, top.shape[1]) if interleaved else torch.cat([top, bot]))
        bias += [b.real, b.imag]
    W, b = torch.cat(cols, 1), torch.cat(bias)
    if interleaved_out:
        n = W.shape[1] // 2
        W, b = torch.stack([W[:, :n], W[:, n:]], 2).reshape(W.shape), torch.stack([b[:n], b[n:]], 1).reshape(-1)
    return W, b


def _linear(x: Tensor, W: Tensor, b: Tensor) -> Tensor:
    """x @ W + b over the last dimension, as one matrix product."""
    return torch.addmm(b, x.reshape(-1, x.shape[-1]), W).reshape(*x.shape[:-1], W.shape[1])


@functools.lru_cache(maxsize=64)
def _other_cells(K: int, device) -> tuple[Tensor, Tensor]:
    """The ordered pairs (k, j) of cells with j != k, as two index vectors of length K (K - 1)."""
    pairs = [(k, j) for k in range(K) for j in range(K) if j != k]
    return (torch.tensor([k for k, _ in pairs], device=device), torch.tensor([j for _, j in pairs], device=device))


#: Instances per chunk of an iteration: about this many real numbers in its widest per-user feature
#: tensor, and at most this many in the pair features (cache-sized).
CHUNK = 1 << 20


def _pair_pool(P: Tensor, Wb: tuple[Tensor, Tensor], I: int, exclude_own: bool) -> tuple[Tensor, Tensor]:
    """Two HV-maps (one stacked map, [map A | map B]) + GELU on the user pairs ``P (B, X, I, I, 2 N d)``
    (receiver i, transmitter l), summed: map A over l (what user i receives), map B over i
    (what user l causes); ``exclude_own``: without the pair i = l, divided by max(I - 1, 1)
    (sum minus own term). -> two ``(B, X, I, 2 f_h)``. Computed in chunks of the batch so that
    the pair features stay cache-sized."""
    B, X = P.shape[:2]
    W, b = Wb
    half = W.shape[1] // 2
    chunk = max(1, CHUNK // max(X * I * I * W.shape[1], 1))
    rx, tx = [], []
    for s in range(0, B, chunk):
        e = F.gelu(_linear(P[s:s + chunk], W, b))  # (b, X, I, I, 4 f_h)
        r, t = e[..., :half].sum(3), e[..., half:].sum(2)
        if exclude_own:
            own = torch.diagonal(e, dim1=2, dim2=3).transpose(-1, -2)  # (b, X, I, 4 f_h)
            r, t = (r - own[..., :half]) / max(I - 1, 1), (t - own[..., half:]) / max(I - 1, 1)
        rx.append(r)
        tx.append(t)
    return torch.cat(rx), torch.cat(tx)


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
        self._folded_cache: tuple | None = None  # (parameter key, ``folded()``) under no_grad
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
        """``(B, K, I, M, d)`` -> the next precoders (same shape, every cell at its budget).

        Computed as ``V <- (I + E) V W_R``, normalised, with E = D Delta_L D^H (M x M;
        ``D W_L D^H = I + D Delta_L D^H`` since D D^H = I): the same map as
        ``structural_update(V, I + Delta_L, I + Delta_R, budget, D)`` (tested against it), at
        the cost of an M x M instead of an M' x M' head and product. The instances are
        independent: they are run in chunks (``CHUNK`` real numbers per feature tensor) so that
        every intermediate stays cache-sized.
        """
        f = self.folded()
        B, K, I = V.shape[:3]
        c = max(K * I - 1, 1)  # fc1 on [z, (sum - z) / c] = (W_z - W_m / c) z + (W_m / c) sum
        if ("fc1", c) not in f:
            Wz, Wm, b1 = f["fc1"]
            f["fc1", c] = (*_stacked([Wz - Wm / c], [b1]), _stacked([Wm / c], [torch.zeros_like(b1)])[0])
        fc1 = f["fc1", c]
        widest = max(f["fc1"][0].shape[1], f["v"][0].shape[1], *(w.shape[1] for w, _ in f["heads"]))
        chunk = max(1, CHUNK // (K * I * 2 * widest))
        H, noise, budget = problem.H, problem.noise, problem.budget
        out = [self._iterate(H[s:s + chunk], noise[s:s + chunk], budget[s:s + chunk], V[s:s + chunk], f, fc1)
               for s in range(0, B, chunk)]
        return out[0] if len(out) == 1 else torch.cat(out)

    def _iterate(self, H: Tensor, noise: Tensor, budget: Tensor, V: Tensor, f: dict, fc1: tuple) -> Tensor:
        B, K, I, M, d = V.shape
        cdt = V.dtype
        h = self._hidden(H, noise, budget, V, f, fc1)
        if self.update == "blackbox":  # V = D V' folded into the head: M d outputs
            Vn = torch.view_as_complex(_linear(h, *f["heads"][0]).reshape(B, K, I, M, d, 2))
            return scale_to_budget(Vn.to(cdt), budget)
        # the heads' biases hold the identities: I + E and W_R = I + Delta_R
        (WL, bL), (WR, bR) = f["heads"]
        W_L = torch.view_as_complex(_linear(h, WL, bL).reshape(B, K, I, M, M, 2)).to(cdt)
        W_R = torch.view_as_complex(_linear(h, WR, bR).reshape(B, K, I, d, d, 2)).to(cdt)
        return scale_to_budget(W_L @ V @ W_R, budget)

    def folded(self) -> dict:
        """Every complex layer as one real map ``(W (2 in, 2 out), b (2 out))`` on stacked
        vectors, with D folded in where it is linear: the V-maps act on vec(V) (M d) instead of
        vec(D^H V) (M' d), the left head gives I + E, E = D Delta_L D^H (M^2 outputs), the right
        one W_R = I + Delta_R (the identities in their biases), the black-box head D V' (M d).
        The three V-maps are one map (M d -> 3 f_v), HV-maps 1 and 3 (the same cell's pairs) and
        2 and 4 (the other cells') one each (N d -> 2 f_h). Inputs of the V- and HV-maps are
        interleaved (re, im per entry, ``view_as_real``), of fc2 and the heads [re | im]; outputs
        [re | im] per map, the heads' interleaved (``view_as_complex``). ``fc1``: its complex
        (W_z, W_m, b) (W_m acts on the mean of the other users' z), combined per number of users.
        Cached under no_grad until a parameter changes (its version counter); with grad on,
        recomputed so that training differentiates through it."""
        params = list(self.parameters())
        key = tuple((id(t), t.data_ptr(), t._version, t.dtype, t.device) for t in params)
        if not torch.is_grad_enabled() and self._folded_cache is not None and self._folded_cache[0] == key:
            return self._folded_cache[1]
        D = self.expansion_matrix()
        M, d, Mx = self.M, self.d, self.Mx
        out: dict = {}
        vW, vb = zip(*(_cweights(layer) for layer in self.v_maps))
        if D is not None:  # W vec(D^H V) = W' vec(V): W'[o, (m, s)] = sum_q W[o, (q, s)] conj(D[m, q])
            vW = [torch.einsum("oqs,mq->oms", W.reshape(-1, Mx, d), D.conj()).reshape(-1, M * d) for W in vW]
        out["v"] = _stacked(vW, vb, interleaved=True)
        hW, hb = zip(*(_cweights(layer) for layer in self.hv_maps))
        out["sig"] = _stacked([hW[0]], [hb[0]], interleaved=True)
        out["same"] = _stacked([hW[1], hW[3]], [hb[1], hb[3]], interleaved=True)
        out["other"] = _stacked([hW[2], hW[4]], [hb[2], hb[4]], interleaved=True)
        W1, b1 = _cweights(self.fc1)
        width = W1.shape[1] // 2
        out["fc1"] = (W1[:, :width], W1[:, width:], b1)
        out["fc2"] = _stacked(*zip(_cweights(self.fc2)))
        if self.update == "blackbox":
            W, b = _cweights(self.head_v)
            if D is not None:  # D V': W'[(m, s), h] = sum_q D[m, q] W[(q, s), h]
                W = torch.einsum("mq,qsh->msh", D, W.reshape(Mx, d, -1)).reshape(M * d, -1)
                b = (D @ b.reshape(Mx, d)).reshape(M * d)
            out["heads"] = [_stacked([W], [b], interleaved_out=True)]
        else:
            W, b = _cweights(self.head_left)
            if D is not None:  # E = D Delta_L D^H, entrywise linear in the head's output
                W = torch.einsum("mp,pqh,nq->mnh", D, W.reshape(Mx, Mx, -1), D.conj()).reshape(M * M, -1)
                b = (D @ b.reshape(Mx, Mx) @ D.mH).reshape(M * M)
            WR, bR = _cweights(self.head_right)
            out["heads"] = [_stacked([W], [b + torch.eye(M, dtype=b.dtype, device=b.device).flatten()],
                                     interleaved_out=True),
                            _stacked([WR], [bR + torch.eye(d, dtype=bR.dtype, device=bR.device).flatten()],
                                     interleaved_out=True)]
        if not torch.is_grad_enabled():
            self._folded_cache = (key, out)
        return out

    def _hidden(self, H: Tensor, noise: Tensor, budget: Tensor, V: Tensor, f: dict, fc1: tuple) -> Tensor:
        """The encoder and the decoder's two FC layers: ``(B, K, I, 2 hidden)`` stacked [re | im]."""
        B, K, I, M, d = V.shape
        N = H.shape[-2]
        net = self.fc1.fc_r.weight
        cnet = torch.complex64 if net.dtype == torch.float32 else torch.complex128
        # the features see V sqrt(I / P_k), the HV-features H V sqrt(I / P_k) / sigma
        Vn = V.to(cnet) * (I / budget).sqrt().to(net.dtype)[:, :, None, None, None]
        # V-features: the three maps in one product, pooled as (sum - own) / count
        e = F.gelu(_linear(torch.view_as_real(Vn).reshape(B, K, I, 2 * M * d), *f["v"]))
        fv = e.shape[-1] // 6
        own, e_intra, e_inter = e.split(2 * fv, -1)
        intra = (e_intra.sum(2, keepdim=True) - e_intra) / max(I - 1, 1)
        cell = e_inter.sum(2, keepdim=True)
        inter = ((cell.sum(1, keepdim=True) - cell) / max((K - 1) * I, 1)).expand(B, K, I, 2 * fv)
        # HV-features: G[b, k, i, j, l] = H_{ki,j} V_{jl} / sigma, its (n, s) entries interleaved re, im
        Vs = Vn * noise.rsqrt().to(net.dtype).reshape(B, 1, 1, 1, 1)
        G = torch.einsum("bkijnm,bjlms->bkijlns", H.to(cnet), Vs)
        G = torch.view_as_real(G).reshape(B, K, I, K, I, 2 * N * d)
        Gs = torch.diagonal(G, dim1=1, dim2=3).permute(0, 4, 1, 2, 3)  # (b, k, i, l): the same cell
        sig = F.gelu(_linear(torch.diagonal(Gs, dim1=2, dim2=3).transpose(2, 3), *f["sig"]))
        intra_rx, intra_tx = _pair_pool(Gs, f["same"], I, exclude_own=True)
        if K > 1:  # the other cells' pairs (k, j != k) as one batch dimension
            kk, jj = _other_cells(K, V.device)
            rx, tx = _pair_pool(G[:, kk, :, jj].movedim(0, 1), f["other"], I, exclude_own=False)  # (B, P, I, .)
            c = (K - 1) * I
            inter_rx = rx.new_zeros(B, K, I, rx.shape[-1]).index_add(1, kk, rx) / c
            inter_tx = tx.new_zeros(B, K, I, tx.shape[-1]).index_add(1, jj, tx) / c
        else:
            inter_rx = inter_tx = intra_rx.new_zeros(intra_rx.shape)
        parts = [own, intra, inter, sig, intra_rx, inter_rx, intra_tx, inter_tx]
        z = torch.cat([p[..., : p.shape[-1] // 2] for p in parts] + [p[..., p.shape[-1] // 2:] for p in parts], -1)
        # MPNN decoder: fc1 on [z, mean of the other users' z] = (W_z - W_m / c) z + (W_m / c) (sum z)
        W_own, b_own, W_sum = fc1
        h = F.gelu(_linear(z, W_own, b_own) + z.sum((1, 2), keepdim=True) @ W_sum)
        return F.gelu(_linear(h, *f["fc2"]))


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
