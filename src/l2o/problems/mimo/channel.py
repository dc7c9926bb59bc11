"""Tensor-level MIMO channel algebra: every formula of the weighted sum-rate problem and of WMMSE.

K cells; base station (BS) k has M antennas and serves I users, each with N antennas
and d <= min(M, N) streams. User (k, i) is user i of cell k. Shapes (B instances):

    H  (B, K, I, K, N, M) complex   H[b, k, i, j] = channel from BS j to user (k, i)
    V  (B, K, I, M, d)    complex   V[b, k, i]    = precoder of user (k, i)
    noise (B,) sigma^2 > 0;  weights (B, K, I) alpha >= 0;  budget (B, K) P_k > 0

The functions take tensors (never ``MimoInstances``), so that the instances
(``l2o.problems.mimo.instances``), the classical solvers (``l2o.optimizers.wmmse``) and
the learned ones (``l2o.learned.gnn_wmmse``) all build on this one module.

One WMMSE iteration (Shi, Razaviyayn, Luo, He, *An iteratively weighted MMSE approach to
distributed sum-utility maximization for a MIMO interfering broadcast channel*, IEEE TSP
2011) is

    U_{ki} = (sum_{(l,j)} H_{ki,j} V_{lj} V_{lj}^H H_{ki,j}^H + sigma^2 I)^{-1} H_{ki,k} V_{ki}
    W_{ki} = (I - U_{ki}^H H_{ki,k} V_{ki})^{-1}
    V_{ki} = alpha_{ki} (A_k + mu_k I)^{-1} H_{ki,k}^H U_{ki} W_{ki},
    A_k    = sum_{(l,j)} alpha_{lj} H_{lj,k}^H U_{lj} W_{lj} U_{lj}^H H_{lj,k},

with mu_k >= 0 the multiplier of BS k's power budget (mu_k = 0 where the unconstrained
solution meets the budget, else power(mu_k) = P_k). The weighted sum-rate is
non-decreasing along the iterates and equals sum alpha log det W at a fixed point.

Computation (no Python loops over users or cells): with S_{ki} = H_{ki,k} V_{ki} and
the Cholesky factor J = L L^H of the interference-plus-noise covariance, T = L^{-1} S,

    R_{ki} = log det(I_N + S S^H J^{-1}) = log det(W_{ki}),   W_{ki} = I_d + T^H T,

the MSE weight of WMMSE (W = E^{-1} for the MMSE receiver, by the Woodbury identity),
which is well conditioned (W >= I) where E = I - U^H S would cancel at high SINR.

The pieces are separate functions so that learned variants can reuse or replace any of
them: ``receive_filters`` / ``mmse_receivers`` (U, W), ``mse_weights`` (W for any U),
``transmit_covariance`` (A, B), ``bisection_mu`` and ``transmit_precoders`` (V),
``wmmse_update`` (all of them); the closed-form precoders ``mrt``, ``zero_forcing`` and
``regularized_zero_forcing``. The last section holds the same U/W and A/B algebra on
channels stacked per BS (``stacked_channels``, ``signal_model``, ``subproblem``,
``solve_precoders``), the fast forms the unrolled GNN-WMMSE layers use.

Points: the generic protocol works on real ``(B, n)`` tensors, so precoders travel as
the real flattening ``x = pack(V)``, n = 2 K I M d, float32 <-> complex64 and
float64 <-> complex128; ``unpack`` inverts it.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

#: Bisection steps for mu (the bracket shrinks by 2^-60: below float64 resolution).
BISECTION_ITERS = 60

__all__ = [
    "BISECTION_ITERS", "complex_dtype", "pack", "unpack", "abs2", "direct_channels", "own_streams",
    "signal_and_interference", "whitened_signal", "mmse_receivers", "receive_filters", "mse_weights", "user_rates",
    "transmit_covariance", "per_cell_power", "budget_scale", "scale_to_budget", "bisection_mu",
    "transmit_precoders", "wmmse_update", "effective_channels", "mrt", "zero_forcing", "regularized_zero_forcing",
    "StackedChannels", "stacked_channels", "received", "SignalModel", "signal_model", "subproblem",
    "solve_precoders", "scale_packed",
]


# ----- packing ---------------------------------------------------------------------------------
def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 -> complex64, float64 -> complex128 (complex dtypes pass through)."""
    if dtype.is_complex:
        return dtype
    if dtype == torch.float32:
        return torch.complex64
    if dtype == torch.float64:
        return torch.complex128
    raise ValueError(f"mimo: expected float32 or float64, got {dtype}")


def pack(V: Tensor) -> Tensor:
    """Real flattening of precoders: ``(B, K, I, M, d)`` complex -> ``(B, 2 K I M d)`` real."""
    return torch.view_as_real(V.resolve_conj()).reshape(V.shape[0], -1)


def unpack(x: Tensor, shape: tuple[int, int, int, int]) -> Tensor:
    """Inverse of ``pack``: ``(B, 2 K I M d)`` real -> ``(B, K, I, M, d)`` complex.

    ``shape`` is ``(K, I, M, d)``. The result is a view of ``x`` where ``x`` is contiguous.
    """
    if x.shape[-1] != 2 * math.prod(shape):
        raise ValueError(
            f"mimo: x must have {2 * math.prod(shape)} columns for precoders {shape}, got {tuple(x.shape)}"
        )
    return torch.view_as_complex(x.contiguous().reshape(x.shape[0], *shape, 2))


def abs2(z: Tensor) -> Tensor:
    """|z|^2 elementwise, real (faster than ``z.abs().square()`` for complex tensors)."""
    return torch.view_as_real(z).square().sum(-1) if z.is_complex() else z.square()


# ----- channel algebra ---------------------------------------------------------------------------
def direct_channels(H: Tensor) -> Tensor:
    """The channels of users from their own BS: ``(B, K, I, K, N, M) -> (B, K, I, N, M)``."""
    return torch.diagonal(H, dim1=1, dim2=3).permute(0, 4, 1, 2, 3)


def own_streams(cells: int, users: int, device: torch.device | str | None = None) -> Tensor:
    """``(K, I, K, I)`` bool: entry [k, i, j, l] is True where user (j, l) is user (k, i).

    The mask that removes a user's own streams from its interference; the kernels below
    reshape or permute it to their layouts."""
    n = cells * users
    return torch.eye(n, dtype=torch.bool, device=device).reshape(cells, users, cells, users)


def signal_and_interference(H: Tensor, V: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
    """Desired signal and interference-plus-noise covariance at every user.

    Args:
        H: ``(B, K, I, K, N, M)``; V: ``(B, K, I, M, d)``; noise: ``(B,)`` sigma^2.

    Returns:
        S: ``(B, K, I, N, d)``, S_{ki} = H_{ki,k} V_{ki};
        J: ``(B, K, I, N, N)``, sigma^2 I + sum over the streams of all other users of
        H_{ki,j} V_{lj} V_{lj}^H H_{ki,j}^H (computed without subtracting S S^H).
    """
    B, K, I, _, N, _ = H.shape
    d = V.shape[-1]
    # every stream at every user: G[b, k, i, :, (j, l, s)] = H[b, k, i, j] V[b, j, l, :, s]
    G = torch.einsum("bkijnm,bjlms->bkinjls", H, V).reshape(B, K, I, N, K * I * d)
    mask = own_streams(K, I, H.device).reshape(K, I, K * I).repeat_interleave(d, dim=-1)  # (K, I, K I d)
    G = G.masked_fill(mask.unsqueeze(-2), 0)
    eye = torch.eye(N, dtype=H.dtype, device=H.device)
    J = G @ G.mH + noise.reshape(B, 1, 1, 1, 1) * eye
    S = direct_channels(H) @ V
    return S, J


def whitened_signal(H: Tensor, V: Tensor, noise: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(L, T, W): J = L L^H (Cholesky), T = L^{-1} S, W = I + T^H T (``signal_and_interference``)."""
    S, J = signal_and_interference(H, V, noise)
    L = torch.linalg.cholesky_ex(J).L
    T = torch.linalg.solve_triangular(L, S, upper=False)
    W = torch.eye(S.shape[-1], dtype=S.dtype, device=S.device) + T.mH @ T
    return L, T, W


def mmse_receivers(H: Tensor, V: Tensor, noise: Tensor) -> tuple[Tensor, Tensor]:
    """MMSE receive filters and their MSE weights, the U and W updates of WMMSE.

        U_{ki} = (J + S S^H)^{-1} S,   W_{ki} = E_{ki}^{-1} = (I - U^H S)^{-1} = I + S^H J^{-1} S,

    the last form (Woodbury) computed from the Cholesky factor of J (no cancellation),
    and U = J^{-1} S W^{-1}.

    Returns:
        U: ``(B, K, I, N, d)``; W: ``(B, K, I, d, d)`` Hermitian positive definite (>= I).
    """
    L, T, W = whitened_signal(H, V, noise)
    Y = torch.linalg.solve_triangular(L.mH, T, upper=True)  # J^{-1} S = U W
    # Y W^{-1} through the Cholesky factor of W >= I: never singular in exact arithmetic,
    # and no exception from far-out (e.g. huge, infeasible float32) points
    U = torch.cholesky_solve(Y.mH, torch.linalg.cholesky_ex(W).L).mH
    return U, W


def receive_filters(H: Tensor, V: Tensor, noise: Tensor) -> Tensor:
    """MMSE receivers U_{ki} = C_{ki}^{-1} H_{ki,k} V_{ki}, C the covariance of everything
    user (k, i) receives: ``(B, K, I, N, d)``. (``mmse_receivers`` also returns W.)"""
    return mmse_receivers(H, V, noise)[0]


def mse_weights(H: Tensor, V: Tensor, U: Tensor, noise: Tensor) -> Tensor:
    """W_{ki} = E_{ki}^{-1} for any receivers U: ``(B, K, I, d, d)``, with the MSE matrix

        E = (I - U^H S)(I - U^H S)^H + U^H J U,   S = H_{ki,k} V_{ki},

    which equals I - U^H S at the MMSE receiver (there ``mmse_receivers`` is cheaper and
    better conditioned at high SINR: it never forms I - U^H S).
    """
    S, J = signal_and_interference(H, V, noise)
    eye = torch.eye(S.shape[-1], dtype=S.dtype, device=S.device)
    D = eye - U.mH @ S
    E = D @ D.mH + U.mH @ J @ U
    return torch.cholesky_inverse(torch.linalg.cholesky_ex(E).L)


def user_rates(H: Tensor, V: Tensor, noise: Tensor) -> Tensor:
    """Rates log det(I + S S^H J^{-1}) = log det(I + T^H T) of every user, in nats: ``(B, K, I)``."""
    LW = torch.linalg.cholesky_ex(whitened_signal(H, V, noise)[2]).L
    return 2.0 * torch.log(torch.diagonal(LW, dim1=-2, dim2=-1).real).sum(-1)


def transmit_covariance(H: Tensor, U: Tensor, W: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """The matrices of the V update of WMMSE (and of the gradient of the rate).

        A_j = sum_{(k,i)} alpha_{ki} H_{ki,j}^H U_{ki} W_{ki} U_{ki}^H H_{ki,j}    (all users)
        B_{ki} = alpha_{ki} H_{ki,k}^H U_{ki} W_{ki}

    Args:
        H: ``(B, K, I, K, N, M)``; U: ``(B, K, I, N, d)``; W: ``(B, K, I, d, d)`` Hermitian
        positive definite; weights: ``(B, K, I)`` alpha >= 0.

    Returns:
        A: ``(B, K, M, M)`` Hermitian PSD (one per BS), built as X X^H with
        X_j = [sqrt(alpha) H_{ki,j}^H U_{ki} L_{ki}] (W = L L^H); Bm: ``(B, K, I, M, d)``
        (a view of a ``(B, K, M, I, d)`` tensor, the layout ``transmit_precoders`` uses).
        The products with H^H are sums over the N receive antennas of elementwise
        products (faster than batches of tiny matrix products, and no transposed copies).
    """
    B, K, I, _, N, M = H.shape
    d = U.shape[-1]
    alpha = weights[..., None, None]
    R = (U @ torch.linalg.cholesky_ex(W).L) * alpha.sqrt().to(U.dtype)  # (B, K, I, N, d)
    Y = (U @ W) * alpha.to(U.dtype)
    Hc = H.conj().permute(0, 3, 5, 1, 2, 4)  # (b, j, m, k, i, n)
    Hd = direct_channels(H).conj().permute(0, 1, 4, 2, 3)  # (b, k, m, i, n)
    # contiguous outputs in the layouts used next (a product would follow H's strides)
    X = torch.zeros(B, K, M, K, I, d, dtype=U.dtype, device=U.device)  # X[b, j, m, k, i, s]
    Bc = torch.zeros(B, K, M, I, d, dtype=U.dtype, device=U.device)  # Bc[b, k, m, i, s]
    for n in range(N):
        X = X.addcmul_(Hc[..., n, None], R[:, None, None, :, :, n, :])
        Bc = Bc.addcmul_(Hd[..., n, None], Y[:, :, None, :, n, :])
    X = X.view(B, K, M, K * I * d)
    A = X @ X.mH
    return A, Bc.permute(0, 1, 3, 2, 4)


# ----- power budgets -----------------------------------------------------------------------------
def per_cell_power(x: Tensor, cells: int) -> Tensor:
    """sum_i ||V_{ki}||_F^2 per cell from the packed point: ``(B, n) -> (B, K)``."""
    return x.reshape(x.shape[0], cells, -1).square().sum(-1)


def budget_scale(power: Tensor, budget: Tensor) -> Tensor:
    """sqrt(P_k / power_k), the factor that makes a cell use exactly its budget, and 0 for a
    cell with power 0 (all-zero precoders stay zero): ``(B, K), (B, K) -> (B, K)``."""
    ok = power > 0
    return torch.where(ok, (budget / torch.where(ok, power, torch.ones_like(power))).sqrt(), torch.zeros_like(power))


def scale_to_budget(V: Tensor, budget: Tensor) -> Tensor:
    """Scale every cell's precoders to use exactly its budget: ``(B, K, I, M, d)``, budget ``(B, K)``.

    A cell whose precoders are all zero stays zero.
    """
    scale = budget_scale(V.abs().square().sum((-3, -2, -1)), budget)
    return V * scale.to(V.dtype)[..., None, None, None]


# ----- the V update ------------------------------------------------------------------------------
def bisection_mu(lam: Tensor, energy: Tensor, budget: Tensor, iters: int = BISECTION_ITERS) -> Tensor:
    """Multipliers mu_k >= 0 of the power budgets, by bisection with a fixed step count.

    With A_k = E diag(lam) E^H and c = E^H B_k, the precoders (A_k + mu I)^{-1} B_k use the power

        p(mu) = sum_m energy_m / (lam_m + mu)^2,   energy_m = ||c_m||^2 (row m of c),

    decreasing in mu, so the bisection needs no further solves. mu = 0 where p(0) <= P
    (directions with energy 0 are left out of the sum: the minimum-norm solution when
    A is singular). Else p(mu) = P is bracketed by
    [max(0, s - lam_max), s] with s = ||c||_F / sqrt(P) (p(s) <= P <= p(s - lam_max)),
    a bracket no wider than lam_max; after ``iters`` halvings its upper end is returned,
    so p(mu) <= P always.

    Args:
        lam: ``(..., M)`` eigenvalues >= 0; energy: ``(..., M)`` >= 0 (0 on directions
        to drop); budget: ``(...)`` P > 0. Returns ``(...)`` mu.
    """
    has = energy > 0
    lam_safe = torch.where(has, lam, torch.ones_like(lam))  # energy 0: the term is 0 anyway
    root = energy.sqrt()
    target = budget.sqrt()
    s = torch.linalg.vector_norm(root, dim=-1) / target
    lo = (s - lam.amax(-1)).clamp(min=0)
    width = s - lo
    for k in range(1, iters + 1):  # fixed count: no host synchronization
        mid = torch.add(lo, width, alpha=0.5**k)
        over = torch.linalg.vector_norm(root / (lam_safe + mid.unsqueeze(-1)), dim=-1) > target
        lo = torch.where(over, mid, lo)
    hi = torch.add(lo, width, alpha=0.5**iters)
    feasible_at_zero = torch.linalg.vector_norm(root / lam_safe, dim=-1) <= target
    return torch.where(feasible_at_zero, torch.zeros_like(hi), hi)


def transmit_precoders(
    A: Tensor, Bm: Tensor, budget: Tensor, mu: Tensor | None = None, bisection_iters: int = BISECTION_ITERS
) -> tuple[Tensor, Tensor]:
    """The V update: V_{ki} = (A_k + mu_k I)^{-1} B_{ki}, mu_k from ``bisection_mu`` unless given.

    One eigendecomposition A_k = E diag(lam) E^H per cell; eigenvalues below
    M eps lam_max are treated as 0 and B's components along them dropped (B lies in the
    range of A in exact arithmetic), so a singular A (M > K I d) with mu = 0 gives the
    minimum-norm solution.

    Under autograd (A or B requiring grad) V is recomputed as a linear solve, and mu
    carries the implicit-function gradient d mu = -dp / p'(mu) of p(mu) = P (its value
    is unchanged): eigh's backward is undefined at repeated eigenvalues. That path needs
    A + mu I invertible (mu > 0, or M <= K I d generically).

    Args:
        A: ``(B, K, M, M)`` Hermitian PSD; Bm: ``(B, K, I, M, d)``; budget: ``(B, K)``;
        mu: ``(B, K)`` or None. Returns ``(V (B, K, I, M, d), mu (B, K))``.
    """
    B, K, I, M, d = Bm.shape
    Bc = Bm.permute(0, 1, 3, 2, 4).reshape(B, K, M, I * d)
    differentiable = torch.is_grad_enabled() and (
        A.requires_grad or Bm.requires_grad or (mu is not None and mu.requires_grad)
    )
    with torch.no_grad():
        lam, E = torch.linalg.eigh(A.detach())
        lam = lam.clamp(min=0)
        keep = lam > (M * torch.finfo(lam.dtype).eps) * lam[..., -1:]
        C = E.mH @ Bc.detach()
        energy = torch.linalg.vector_norm(torch.view_as_real(C), dim=(-2, -1)).square() * keep
        mu_value = bisection_mu(lam, energy, budget, bisection_iters) if mu is None else mu.detach()
    if not differentiable:
        den = torch.where(keep, lam + mu_value.unsqueeze(-1), torch.ones_like(lam))
        inv = torch.where(keep, 1.0 / den, torch.zeros_like(lam))
        Vc = (E * inv.to(E.dtype).unsqueeze(-2)) @ C  # E diag(inv) E^H B
        mu_out = mu_value
    else:
        eye = torch.eye(M, dtype=A.dtype, device=A.device)
        if mu is None:
            active = mu_value > 0
            p = torch.linalg.solve(A + mu_value[..., None, None] * eye, Bc).abs().square().sum((-2, -1))
            den = torch.where(energy > 0, lam + mu_value.unsqueeze(-1), torch.ones_like(lam))
            dp = -2.0 * (energy / den**3).sum(-1)
            dp = torch.where(active, dp, -torch.ones_like(dp))
            mu_out = mu_value - torch.where(active, (p - p.detach()) / dp, torch.zeros_like(p))
        else:
            mu_out = mu
        Vc = torch.linalg.solve(A + mu_out.to(A.dtype)[..., None, None] * eye, Bc)
    V = Vc.reshape(B, K, M, I, d).permute(0, 1, 3, 2, 4)
    return V, mu_out


def wmmse_update(
    H: Tensor, V: Tensor, noise: Tensor, weights: Tensor, budget: Tensor, bisection_iters: int = BISECTION_ITERS
) -> tuple[Tensor, Tensor]:
    """One WMMSE iteration V -> (U, W) -> V': ``(B, K, I, M, d) -> ((B, K, I, M, d), mu (B, K))``."""
    U, W = mmse_receivers(H, V, noise)
    A, Bm = transmit_covariance(H, U, W, weights)
    return transmit_precoders(A, Bm, budget, bisection_iters=bisection_iters)


# ----- closed-form precoders ------------------------------------------------------------------------
def effective_channels(H: Tensor, streams: int) -> tuple[Tensor, Tensor]:
    """SVD of the direct channels H_{ki,k} = U diag(s) W^H: returns (W_d (B, K, I, M, d) the d
    strongest right singular vectors, Heff (B, K, I, d, M) = U_d^H H_{ki,k} = diag(s_d) W_d^H)."""
    _, s, Wh = torch.linalg.svd(direct_channels(H), full_matrices=False)
    Wd = Wh[..., :streams, :]
    return Wd.mH, s[..., :streams, None].to(Wd.dtype) * Wd


def mrt(H: Tensor, streams: int, budget: Tensor) -> Tensor:
    """Maximum-ratio (eigen-)beamforming: V_{ki} = the d strongest right singular vectors of
    the own channel H_{ki,k}, equal power P_k / (I d) per stream. ``(B, n)``."""
    V, _ = effective_channels(H, streams)
    return pack(scale_to_budget(V, budget))


def _zero_forcing(H: Tensor, streams: int, budget: Tensor, reg: Tensor | None) -> Tensor:
    Heff = effective_channels(H, streams)[1]
    B, K, I, d, M = Heff.shape
    Hc = Heff.reshape(B, K, I * d, M)  # one row per stream of the cell
    G = Hc @ Hc.mH
    if reg is not None:
        G = G + reg.to(G.dtype)[..., None, None] * torch.eye(I * d, dtype=G.dtype, device=G.device)
    Vc = torch.linalg.solve(G, Hc).mH  # Hc^H (Hc Hc^H + reg I)^{-1}: (B, K, M, I d)
    V = Vc.reshape(B, K, M, I, d).permute(0, 1, 3, 2, 4)
    return pack(scale_to_budget(V, budget))


def zero_forcing(H: Tensor, streams: int, budget: Tensor) -> Tensor:
    """Zero-forcing on the effective channels (multi-user eigenmode transmission).

    Each user combines with the d strongest left singular vectors U_d of its own channel;
    the rows of Heff_{ki} = U_d^H H_{ki,k} are stacked per cell (I d x M) and
    V_k = Heff^H (Heff Heff^H)^{-1}, scaled to the budget (one factor per cell), so the
    streams of a cell do not interfere after combining (for d = N: H_{ki,k} V_{ki'} = 0,
    i' != i). Inter-cell interference is ignored. Needs M >= I d. ``(B, n)``.
    """
    I, M, d = H.shape[2], H.shape[5], streams
    if M < I * d:
        raise ValueError(
            f"zero-forcing needs tx_antennas M >= users * streams = {I}*{d} = {I * d} per cell, got M = {M}; "
            f"use 'rzf' or 'mrt'"
        )
    return _zero_forcing(H, streams, budget, None)


def regularized_zero_forcing(
    H: Tensor, streams: int, budget: Tensor, noise: Tensor, reg: Tensor | float | None = None
) -> Tensor:
    """Regularized ZF (Peel, Hochwald, Swindlehurst, IEEE Trans. Commun. 2005) on the
    effective channels of ``zero_forcing``: V_k = Heff^H (Heff Heff^H + reg I)^{-1}, scaled
    to the budget. Default reg = sigma^2 I d / P_k (noise times the number of streams of
    the cell over the budget, the usual choice for unit-variance channels; inter-cell
    interference is ignored). ``reg``: scalar, ``(B,)`` or ``(B, K)``. ``(B, n)``."""
    B, K, I = H.shape[:3]
    if reg is None:
        reg_t = noise.unsqueeze(-1) * (I * streams) / budget
    else:
        reg_t = torch.as_tensor(reg, dtype=budget.dtype, device=budget.device)
        if bool((reg_t < 0).any()):
            raise ValueError(f"regularized_zero_forcing: reg must be >= 0, got {reg!r}")
        reg_t = (reg_t.reshape(-1, 1) if reg_t.ndim == 1 else reg_t).expand(B, K)
    return _zero_forcing(H, streams, budget, reg_t)


# ----- the same algebra on channels stacked per BS (the fast forms of GNN-WMMSE) -------------------
@dataclasses.dataclass
class StackedChannels:
    """Per-instance constants of a batch for the stacked kernels (``stacked_channels``).

    Hp: ``(B, K_j, K I N, M)`` channels from BS j to every receive antenna, H[b, k, i, j] at
    rows (k, i, :); Hh: ``(B, K_j, M, K I N)`` their conjugate transposes; Hd: ``(B, K, I,
    M, N)`` the conjugate transposes of the direct channels H_{ki,k}; snr_gain: ``(B, K, I,
    K)`` log(P_j ||H_{ki,j}||_F^2 / (M sigma^2)). Every field is batch-first, so the
    dataclass can sit in a solver state (``select_state`` indexes it)."""

    Hp: Tensor
    Hh: Tensor
    Hd: Tensor
    snr_gain: Tensor


def stacked_channels(H: Tensor, noise: Tensor, budget: Tensor) -> StackedChannels:
    """The ``StackedChannels`` of channels ``H`` ``(B, K, I, K, N, M)``, noise ``(B,)`` and budgets ``(B, K)``."""
    B, K, I, _, N, M = H.shape
    Hp = H.permute(0, 3, 1, 2, 4, 5).reshape(B, K, K * I * N, M).contiguous()
    gain = abs2(H).sum((-2, -1))  # (B, K, I, K)
    snr = gain * budget[:, None, None, :] / (M * noise[:, None, None, None])
    return StackedChannels(Hp=Hp, Hh=Hp.mH.contiguous(), Hd=direct_channels(H).mH.contiguous(),
                           snr_gain=torch.log(snr.clamp(min=torch.finfo(snr.dtype).tiny)))


def received(ch: StackedChannels, V: Tensor) -> Tensor:
    """Every stream at every user: ``(B, K_j, K, I, N, I, d)``, G[b, j, k, i, :, l, :] =
    H_{ki,j} V_{lj} (one batched product per BS)."""
    B, K, I, M, d = V.shape
    N = ch.Hp.shape[2] // (K * I)
    Vc = V.permute(0, 1, 3, 2, 4).reshape(B, K, M, I * d)
    return (ch.Hp @ Vc).reshape(B, K, K, I, N, I, d)


@dataclasses.dataclass
class SignalModel:
    """What ``signal_model`` computes from V (B instances, shapes as in the module docstring).

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
        l22 = (A[..., 1, 1].real - abs2(l21)).sqrt()
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


def signal_model(ch: StackedChannels, V: Tensor, noise: Tensor, power: bool = True) -> SignalModel:
    """MMSE receivers, weights and rates of WMMSE (the U and W updates) from V, and (with
    ``power``) the interference powers of every stream at every user.

    The forms of ``mmse_receivers``: J = sigma^2 I + G_o G_o^H with G_o the other users'
    streams (masked, never J = C - S S^H, which cancels at high SINR), W = I + T^H T with
    T = L^{-1} S (J = L L^H). Faster on small N and d: the signals of all streams at all
    users from one batched product per BS (``received``), the N x N and d x d Cholesky
    factors and triangular solves in closed form for sizes <= 2 (elementwise, instead of
    batched LAPACK calls on thousands of tiny matrices), small reductions as products
    with a vector of ones."""
    B, K, I, _, d = V.shape
    G = received(ch, V)  # (b, j, k, i, n, l, s)
    N = G.shape[4]
    S = torch.diagonal(torch.diagonal(G, dim1=1, dim2=2), dim1=1, dim2=3).permute(0, 3, 4, 1, 2)
    # own streams in the layout of ``received``: [j, k, i, l] of the (k, i, j, l) mask
    own = own_streams(K, I, V.device).permute(2, 0, 1, 3).reshape(1, K, K, I, 1, I, 1)
    Gm = G.masked_fill(own, 0)
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


def subproblem(ch: StackedChannels, sm: SignalModel, weights: Tensor) -> tuple[Tensor, Tensor]:
    """A and B of WMMSE's V-update (``transmit_covariance``) in the stacked layout:
    ``A (B, K, M, M)``, ``Bc (B, K, M, I d)`` (cell-major columns (i, s)). A_j = X_j X_j^H
    with X_j = H_j^H blockdiag(sqrt(alpha_ki) Q_ki^H) (one batched product per BS; H_j
    stacks every user's channel from BS j), so A is Hermitian positive semidefinite by
    construction; B_ki = alpha_ki H_{ki,k}^H Y_ki."""
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
    """(A_k + mu_k I)^{-1} B_k by one Cholesky factorization per cell: ``(B, K, I, M, d)``
    (``transmit_precoders`` with a given mu > 0, without the eigendecomposition)."""
    B, K, M, _ = A.shape
    shifted = A + torch.diag_embed(mu.to(A.real.dtype).unsqueeze(-1).expand(B, K, M)).to(A.dtype)
    Vc = torch.cholesky_solve(Bc, torch.linalg.cholesky_ex(shifted).L)
    return Vc.reshape(B, K, M, users, -1).permute(0, 1, 3, 2, 4)


def scale_packed(v: Tensor, budget: Tensor) -> Tensor:
    """``scale_to_budget`` on packed real precoders grouped by cell, ``(B, K, n_k)``: every
    cell scaled to use exactly its budget ``(B, K)`` (an all-zero cell stays zero)."""
    return v * budget_scale(v.square().sum(-1), budget.to(v.dtype)).unsqueeze(-1)
