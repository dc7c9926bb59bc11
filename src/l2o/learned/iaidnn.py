"""IAIDNN: WMMSE unfolded into layers whose matrix inverses are replaced by learned approximations.

Hu, Cai, Shi, Xu, Yu, Ding, *Iterative algorithm induced deep-unfolding neural networks:
precoding design for multiuser MIMO systems*, IEEE TWC 20(2), 2021 (code:
github.com/hqyyqh888/DeepUnfolding_WMMSE; the multi-cell form follows Schynol and
Pesavento's re-implementation, github.com/lsky96/gcnwmmse), a baseline of Song et al.,
*A learning-only method for multi-cell multi-user MIMO sum rate maximization*, IEEE
INFOCOM 2024 (7 unrolled layers with separate parameters, trained on the sum of the
sum-rates over the layers: ``loss = "sum"`` in ``l2o.training``).

The MIMO weighted sum-rate setting of ``l2o.problems.mimo.channel`` (K cells, I users per
cell, M transmit and N receive antennas, d streams; user (k, i) is served by BS k). IAIDNN
unfolds the power-constraint-free form of WMMSE (the budget enters as a noise-weighted
diagonal load, then every BS is normalized to its budget) and replaces each inverse by

    Inv(Q; X, Y, Z) = Q^+ X + Q Y + Z,   Q^+ = diag(1 / diag(Q))  (the inverse of Q's diagonal),

with trainable complex matrices X, Y, Z (and offsets O) per user and per layer. Layer t:

    C_{ki} = sigma^2 (p_k / P_k) I + sum_{(j,l)} H_{ki,j} V_{lj} V_{lj}^H H_{ki,j}^H      (N x N, all users)
    U_{ki} = Inv(C_{ki}; X^U, Y^U, Z^U) H_{ki,k} V_{ki} + O^U
    E_{ki} = I - U_{ki}^H H_{ki,k} V_{ki},        W_{ki} = Inv(E_{ki}; X^W, Y^W, Z^W)       (d x d)
    R_j    = sum_{(k,i)} alpha_{ki} H_{ki,j}^H U_{ki} W_{ki} U_{ki}^H H_{ki,j} + mu'_j I,
    mu'_j  = (1 / P_j) sum_{(k,i)} alpha_{ki} sigma^2 tr(U_{ki} W_{ki} U_{ki}^H)            (all users)
    V_{ki} = Inv(R_k; X^V, Y^V, Z^V) alpha_{ki} H_{ki,k}^H U_{ki} W_{ki} + O^V
    V_{ki} <- V_{ki} sqrt(P_k / sum_i ||V_{ki}||_F^2)                                     (every BS at its budget)

with p_k the power of BS k at the layer's input (p_k = P_k after the first layer). The last
layer's V-update uses the exact inverse, V = R_k^{-1} alpha H^H U W, as in both reference
codes (so it has no X^V, Y^V, Z^V, O^V).

What follows the paper and the codes: the three approximated inverses of the form Q^+ X +
Q Y + Z with X, Y, Z, O per user and per layer, the power-free U / W / V updates with the
noise-weighted diagonal load, the exact inverse in the last V-update, the per-BS
normalization. The paper motivates the form by a first-order (Taylor-type) expansion of
Q^{-1} around its diagonal D, Q^{-1} ~ 2 D^{-1} - D^{-1} Q D^{-1}, whose terms the learned
D^{-1} X and Q Y generalize and Z offsets [reconstructed reading of the paper]. The paper
trains with a hand-derived generalized chain rule; here autograd does it. Reconstructed or
changed: the multi-cell indexing and mu'_j (Schynol and Pesavento's form); every layer's
output is normalized (the reference code normalizes once at the end), so every iterate is
feasible; the initialization ``init="jacobi"`` (X = I, Y = Z = O = 0: each inverse
replaced by the inverse of its diagonal) is ours, ``init="random"`` is the authors' (X,
Z, O with real and imaginary parts 0.1 U(-1, 1), Y = 0).

``inverse="exact"`` is a variant for tests and ablations: every Q^+ X becomes Q^{-1} X
(a solve), C uses sigma^2 and the V-update uses WMMSE's exact multiplier mu_k
(``channel.transmit_precoders``) instead of mu'. With X = I and Y = Z = O = 0
(``neutral_``) each of its layers is exactly one WMMSE iteration
(``l2o.optimizers.WMMSE``; tested in float64).

Relation to the other unrolled WMMSE solvers: ``gcn_wmmse`` (GCN-WMMSE) keeps WMMSE's
exact U, W and multiplier and replaces only R^{-1} in the V-update, by a graph filter with
25 numbers per layer shared by all users (any sizes); ``gnn_wmmse`` (l2o's GCN-WMMSE-like
stand-in) keeps the inverse (a Cholesky solve) and predicts, per layer, with a GNN over
the users' interference graph, the multiplier per cell and a relaxation, momentum and
power tilt per user (any sizes). IAIDNN approximates all three inverses, uses no
eigendecomposition or bisection, and has per-user matrices of fixed sizes (2832
complex numbers per layer, 17k for 7 layers, at mimo_medium).

Sizes: the parameters are per user and their shapes follow M, N, d, so a model serves the
K, I, M, N, d it was built for (``family=`` or the sizes; ``check_problem`` refuses
others with one line). ``shared_users=True`` shares each layer's matrices across users
(Schynol and Pesavento's option): then any K and I with the same M, N, d.

Beyond the horizon (``tail``): ``"wmmse"`` (default) runs exact WMMSE iterations,
``"last"`` the last layer again. ``init`` projects the start onto the budgets and replaces
all-zero cells by MRT. Parameters are float32 by default (complex numbers as real pairs);
the layer runs in the problem's dtype (complex128 for float64 problems).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from l2o.learned.unrolled_wmmse import UnrolledWMMSE, UnrolledWMMSEState, check_tail
from l2o.optimizers.wmmse import require_mimo
from l2o.problems.base import Instances
from l2o.problems.mimo.channel import (
    direct_channels,
    scale_to_budget,
    transmit_precoders,
)
from l2o.problems.mimo.instances import MimoInstances

INVERSES = ("approx", "exact")
INITS = ("jacobi", "random")
SIZES = ("cells", "users", "tx_antennas", "rx_antennas", "streams")


def approximate_inverse_apply(Q: Tensor, X: Tensor, Y: Tensor, Z: Tensor, b: Tensor, exact: bool = False) -> Tensor:
    """(Q^+ X + Q Y + Z) b, Q^+ = diag(1 / diag(Q)); with ``exact`` Q^{-1} X b instead of Q^+ X b.

    Shapes broadcast: Q ``(..., n, n)``, X, Y, Z ``(..., n, n)``, b ``(..., n, c)`` -> ``(..., n, c)``.

    >>> Q = torch.tensor([[2.0, 1.0], [1.0, 4.0]], dtype=torch.float64)
    >>> eye, zero, b = torch.eye(2, dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64), torch.ones(2, 1)
    >>> approximate_inverse_apply(Q, eye, zero, zero, b.double()).flatten()  # the diagonal (Jacobi) approximation
    tensor([0.5000, 0.2500], dtype=torch.float64)
    >>> approximate_inverse_apply(Q, eye, zero, zero, b.double(), exact=True).flatten()  # Q^{-1} b
    tensor([0.4286, 0.1429], dtype=torch.float64)
    """
    Xb = X @ b
    first = torch.linalg.solve(Q, Xb) if exact else Xb / torch.diagonal(Q, dim1=-2, dim2=-1).unsqueeze(-1)
    return first + Q @ (Y @ b) + Z @ b


class IAIDNNLayer(nn.Module):
    """The trainable matrices of one layer, ``(P, rows, cols, 2)`` real pairs, P = users (or 1 if
    shared): X, Y, Z of the U (N x N), W (d x d) and V (M x M) inverses, offsets O^U (N x d) and
    O^V (M x d); no V matrices where ``v_learned`` is False (the exact last V-update).

    >>> layer = IAIDNNLayer(per=6, N=2, M=4, d=2, v_learned=True)
    >>> tuple(layer.Xv.shape), tuple(layer.Ou.shape)
    ((6, 4, 4, 2), (6, 2, 2, 2))
    """

    def __init__(self, per: int, N: int, M: int, d: int, v_learned: bool):
        super().__init__()

        def mat(rows: int, cols: int) -> nn.Parameter:
            return nn.Parameter(torch.zeros(per, rows, cols, 2))

        self.Xu, self.Yu, self.Zu, self.Ou = mat(N, N), mat(N, N), mat(N, N), mat(N, d)
        self.Xw, self.Yw, self.Zw = mat(d, d), mat(d, d), mat(d, d)
        self.v_learned = v_learned
        if v_learned:
            self.Xv, self.Yv, self.Zv, self.Ov = mat(M, M), mat(M, M), mat(M, M), mat(M, d)
        else:
            self.Xv = self.Yv = self.Zv = self.Ov = None


#: The state: the shared unrolled-WMMSE state (packed precoders x, iterations done k).
IAIDNNState = UnrolledWMMSEState


class IAIDNN(UnrolledWMMSE):
    """IAIDNN (Hu et al., IEEE TWC 2021): deep-unfolded WMMSE with learned approximations of
    its matrix inverses; see the module docstring. MIMO sum-rate family only, at the sizes
    it was built for.

    Args:
        family: a MIMO family (or ``None`` with the sizes given): the model takes K, I, M, N,
            d from one sample of it. Not stored; the sizes are (``hparams``).
        horizon: number of unfolded layers (separate parameters; INFOCOM 2024: 7).
        cells, users, tx_antennas, rx_antennas, streams: K, I, M, N, d (with ``family``: must agree).
        inverse: ``"approx"`` (the paper) or ``"exact"`` (solves and WMMSE's multiplier).
        shared_users: one set of matrices per layer for all users (then any K, I).
        init: ``"jacobi"`` (X = I, Y = Z = O = 0) or ``"random"`` (the authors').
        tail: after the horizon, ``"wmmse"`` (exact WMMSE iterations) or ``"last"``.
        seed: of ``init="random"``.

    Example (untrained, Jacobi-initialized; every iterate uses each budget in full):
        >>> import torch, l2o
        >>> from l2o.problems import MimoFamily
        >>> family = MimoFamily(cells=2, users=2, tx_antennas=4, rx_antennas=2, streams=1)
        >>> problem = family.sample(3, generator=0)
        >>> solver = l2o.learned.IAIDNN(family, horizon=3)
        >>> (solver.hparams["cells"], solver.hparams["tx_antennas"])
        (2, 4)
        >>> with torch.no_grad():
        ...     state = solver.init(problem, problem.initial_point())
        ...     for _ in range(3):
        ...         state = solver.step(problem, state)
        >>> bool(((problem.power(state.x) - problem.budget).abs() < 1e-9).all())
        True
    """

    name = "iaidnn"
    handles_nonsmooth = True

    def __init__(self, family=None, horizon: int = 7, cells: int | None = None, users: int | None = None,
                 tx_antennas: int | None = None, rx_antennas: int | None = None, streams: int | None = None,
                 inverse: str = "approx", shared_users: bool = False, init: str = "jacobi", tail: str = "wmmse",
                 seed: int = 0):
        given = dict(zip(SIZES, (cells, users, tx_antennas, rx_antennas, streams)))
        if family is not None:
            sample = family.sample(1, 0) if hasattr(family, "sample") else family
            if not isinstance(sample, MimoInstances):
                raise ValueError(f"{self.name}: family must be a MIMO family (or None with the sizes), got {family!r}")
            for key in SIZES:
                value = getattr(sample, key)
                if given[key] is not None and given[key] != value:
                    raise ValueError(f"{self.name}: {key} = {given[key]} differs from the family's {value}")
                given[key] = value
        missing = [k for k in SIZES if given[k] is None]
        if missing:
            raise ValueError(f"{self.name}: needs the problem sizes: pass family= (a MIMO family) or "
                             f"{', '.join(missing)}")
        for key in SIZES:
            if not (isinstance(given[key], int) and given[key] >= 1):
                raise ValueError(f"{self.name}: {key} must be a positive integer, got {given[key]!r}")
        super().__init__(horizon=horizon, **given, inverse=inverse, shared_users=shared_users, init=init, tail=tail,
                         seed=seed)
        if inverse not in INVERSES:
            raise ValueError(f"{self.name}: inverse must be one of {', '.join(map(repr, INVERSES))}, got {inverse!r}")
        if init not in INITS:
            raise ValueError(f"{self.name}: init must be one of {', '.join(map(repr, INITS))}, got {init!r}")
        check_tail(self.name, tail)
        self.sizes = tuple(given[k] for k in SIZES)
        K, I, M, N, d = self.sizes
        self.exact = inverse == "exact"
        self.shared_users = bool(shared_users)
        self.tail = tail
        per = 1 if self.shared_users else K * I
        self.layers = nn.ModuleList(
            IAIDNNLayer(per, N, M, d, v_learned=self.exact or t < horizon - 1) for t in range(horizon)
        )
        self.reset_parameters(init, seed)

    @torch.no_grad()
    def neutral_(self) -> IAIDNN:
        """X = I, Y = Z = O = 0 in every layer (``init="jacobi"``); returns self."""
        for layer in self.layers:
            for p in layer.parameters():
                p.zero_()
            for X in (layer.Xu, layer.Xw, layer.Xv):
                if X is not None:
                    X[..., 0].copy_(torch.eye(X.shape[1]))
        return self

    @torch.no_grad()
    def reset_parameters(self, init: str = "jacobi", seed: int = 0) -> None:
        """``"jacobi"``: ``neutral_``; ``"random"``: X, Z, O with real and imaginary parts
        0.1 U(-1, 1) from ``seed``, Y = 0 (the authors' code)."""
        self.neutral_()
        if init == "random":
            g = torch.Generator().manual_seed(seed)
            for layer in self.layers:
                for name, p in layer.named_parameters():
                    if not name.startswith("Y"):
                        p.copy_(0.1 * (2 * torch.rand(p.shape, generator=g, dtype=torch.float64) - 1))

    def check_problem(self, problem: Instances) -> None:
        require_mimo(self, problem)
        got = tuple(getattr(problem, k) for k in SIZES)
        fixed = SIZES[2:] if self.shared_users else SIZES
        if any(got[SIZES.index(k)] != self.sizes[SIZES.index(k)] for k in fixed):
            want = ", ".join(f"{k}={self.sizes[SIZES.index(k)]}" for k in fixed)
            have = ", ".join(f"{k}={got[SIZES.index(k)]}" for k in fixed)
            raise ValueError(f"solver '{self.name}' was built for {want}; the problem has {have} "
                             f"(its per-user matrices have fixed sizes; use shared_users=True for other K, I)")

    def _user(self, p: Tensor, K: int, I: int, ctype: torch.dtype) -> Tensor:
        """A ``(P, r, c, 2)`` parameter as complex ``(K, I, r, c)`` (or ``(1, 1, r, c)`` if shared)."""
        real = torch.float64 if ctype == torch.complex128 else torch.float32
        z = torch.view_as_complex(p.to(real).contiguous())
        return z.reshape(1, 1, *z.shape[1:]) if self.shared_users else z.reshape(K, I, *z.shape[1:])

    def layer_step(self, layer: IAIDNNLayer, problem: MimoInstances, V: Tensor) -> Tensor:
        """One unfolded layer: precoders ``(B, K, I, M, d)`` -> the next ones (every BS at its budget)."""
        H = problem.H
        B, K, I, _, N, M = H.shape
        d = V.shape[-1]
        ctype, rtype = V.dtype, V.real.dtype
        n = K * I

        def user(p: Tensor) -> Tensor:
            return self._user(p, K, I, ctype)

        alpha = problem.weights.to(rtype)[..., None, None]  # (B, K, I, 1, 1)
        noise = problem.noise.to(rtype)
        budget = problem.budget.to(rtype)
        G = torch.einsum("bkijnm,bjlms->bkijlns", H, V)  # stream (j, l, s) at user (k, i)
        S = torch.diagonal(G.reshape(B, n, n, N, d), dim1=1, dim2=2).permute(0, 3, 1, 2).reshape(B, K, I, N, d)
        Gu = G.permute(0, 1, 2, 5, 3, 4, 6).reshape(B, K, I, N, n * d)
        load = noise[:, None, None]
        if not self.exact:  # sigma^2 tr(V_k V_k^H) / P_k: sigma^2 once every BS is at its budget
            load = load * (V.abs().square().sum((-3, -2, -1)) / budget)[:, :, None]
        C = Gu @ Gu.mH + (load[..., None, None] * torch.eye(N, dtype=rtype, device=V.device)).to(ctype)
        U = approximate_inverse_apply(C, user(layer.Xu), user(layer.Yu), user(layer.Zu), S, self.exact)
        U = U + user(layer.Ou)
        E = torch.eye(d, dtype=ctype, device=V.device) - U.mH @ S
        eye_d = torch.eye(d, dtype=ctype, device=V.device).expand(E.shape)
        W = approximate_inverse_apply(E, user(layer.Xw), user(layer.Yw), user(layer.Zw), eye_d, self.exact)
        UW = U @ W
        X = (UW @ U.mH) * alpha.to(ctype)  # alpha U W U^H
        A = torch.einsum("bkijnm,bkino,bkijop->bjmp", H.conj(), X, H)  # (B, K, M, M)
        Vt = (direct_channels(H).mH @ UW) * alpha.to(ctype)  # alpha H_{ki,k}^H U W: (B, K, I, M, d)
        eye_m = torch.eye(M, dtype=ctype, device=V.device)
        if self.exact:
            _, mu = transmit_precoders(A, Vt, budget)
            R = A + mu.to(ctype)[..., None, None] * eye_m
        else:
            trace = torch.diagonal(X, dim1=-2, dim2=-1).sum((-1, -2, -3))  # sum alpha tr(U W U^H): (B,)
            mu = (noise.to(ctype) * trace)[:, None] / budget.to(ctype)
            R = A + mu[..., None, None] * eye_m
        Rk = R.unsqueeze(2)  # (B, K, 1, M, M): BS k's matrix for its users
        if layer.v_learned:
            V_new = approximate_inverse_apply(Rk, user(layer.Xv), user(layer.Yv), user(layer.Zv), Vt, self.exact)
            V_new = V_new + user(layer.Ov)
        else:
            V_new = torch.linalg.solve(Rk, Vt)
        return scale_to_budget(V_new, budget)

