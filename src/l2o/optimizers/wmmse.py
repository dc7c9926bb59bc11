"""WMMSE and the linear precoders (MRT, ZF, RZF) for the MIMO sum-rate family.

WMMSE (Shi, Razaviyayn, Luo, He, *An iteratively weighted MMSE approach to distributed
sum-utility maximization for a MIMO interfering broadcast channel*, IEEE TSP 2011) is
block-coordinate descent on an equivalent weighted-MSE problem; one iteration is

    U_{ki} = (sum_{(l,j)} H_{ki,j} V_{lj} V_{lj}^H H_{ki,j}^H + sigma^2 I)^{-1} H_{ki,k} V_{ki}
    W_{ki} = (I - U_{ki}^H H_{ki,k} V_{ki})^{-1}
    V_{ki} = alpha_{ki} (A_k + mu_k I)^{-1} H_{ki,k}^H U_{ki} W_{ki},
    A_k    = sum_{(l,j)} alpha_{lj} H_{lj,k}^H U_{lj} W_{lj} U_{lj}^H H_{lj,k},

with mu_k >= 0 the multiplier of BS k's power budget (mu_k = 0 where the unconstrained
solution meets the budget, else power(mu_k) = P_k). The weighted sum-rate is
non-decreasing along the iterates and equals sum alpha log det W at a fixed point.

The pieces are separate functions so that learned variants (deep-unfolded or GNN
WMMSE) can reuse or replace any of them: ``receive_filters`` / ``mmse_receivers`` (U, W),
``mse_weights`` (W for any U), ``transmit_covariance`` (A, B), ``bisection_mu`` and
``transmit_precoders`` (V), ``wmmse_update`` (all of them). Everything is batched over
instances, cells and users; shapes follow ``l2o.problems.mimo``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from l2o.optimizers.base import Optimizer
from l2o.problems.mimo import (
    MimoInstances,
    direct_channels,
    mmse_receivers,
    pack,
    scale_to_budget,
    signal_and_interference,
    transmit_covariance,
)

#: Bisection steps for mu (the bracket shrinks by 2^-60: below float64 resolution).
BISECTION_ITERS = 60

__all__ = [
    "WMMSE", "WMMSEState", "LinearPrecoder", "LinearPrecoderState", "MRT", "ZeroForcing", "RegularizedZeroForcing",
    "receive_filters", "mmse_receivers", "mse_weights", "transmit_covariance", "bisection_mu", "transmit_precoders",
    "wmmse_update", "mrt", "zero_forcing", "regularized_zero_forcing",
]


# ----- the U, W and V updates -------------------------------------------------------------------
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


def _require_mimo(solver: Optimizer, problem) -> None:
    if not isinstance(problem, MimoInstances):
        raise ValueError(
            f"solver '{solver.name}' solves the MIMO sum-rate family only ('mimo' and the mimo_* presets), "
            f"got {type(problem).__name__}"
        )


# ----- WMMSE ------------------------------------------------------------------------------------
@dataclasses.dataclass
class WMMSEState:
    """x: ``(B, n)`` packed precoders; mu: ``(B, K)`` multipliers of the last V update."""

    x: Tensor
    mu: Tensor


class WMMSE(Optimizer):
    """Weighted MMSE (Shi et al., IEEE TSP 2011), batched over instances, cells and users.

    ``step`` is ``wmmse_update``: MMSE receivers U and weights W (one Cholesky per user),
    then one eigendecomposition of A_k per cell and ``bisection_iters`` bisection steps
    on mu_k (elementwise, no solves, no host synchronization). The weighted sum-rate is
    non-decreasing and every iterate meets the budgets (to rounding). Starting from
    V = 0 it stays at 0 (a degenerate fixed point): start from ``problem.initial_point()``.
    """

    name = "wmmse"
    handles_nonsmooth = True

    def __init__(self, bisection_iters: int = BISECTION_ITERS):
        if not isinstance(bisection_iters, int) or bisection_iters < 1:
            raise ValueError(f"{self.name}: bisection_iters must be a positive integer, got {bisection_iters!r}")
        self.bisection_iters = bisection_iters

    def check_problem(self, problem) -> None:
        _require_mimo(self, problem)

    def init(self, problem, x0: Tensor) -> WMMSEState:
        self.check_problem(problem)
        mu = torch.zeros(x0.shape[0], problem.cells, dtype=x0.dtype, device=x0.device)
        return WMMSEState(x=x0.clone(), mu=mu)

    def step(self, problem, state: WMMSEState) -> WMMSEState:
        V, mu = wmmse_update(
            problem.H, problem.unpack(state.x), problem.noise, problem.weights, problem.budget, self.bisection_iters
        )
        return WMMSEState(x=pack(V), mu=mu.to(state.mu.dtype))


# ----- linear precoders ---------------------------------------------------------------------------
def _effective_channels(problem: MimoInstances) -> tuple[Tensor, Tensor]:
    """SVD of the direct channels H_{ki,k} = U diag(s) W^H: returns (W_d (B, K, I, M, d) the d
    strongest right singular vectors, Heff (B, K, I, d, M) = U_d^H H_{ki,k} = diag(s_d) W_d^H)."""
    _, s, Wh = torch.linalg.svd(direct_channels(problem.H), full_matrices=False)
    d = problem.streams
    Wd = Wh[..., :d, :]
    return Wd.mH, s[..., :d, None].to(Wd.dtype) * Wd


def mrt(problem: MimoInstances) -> Tensor:
    """Maximum-ratio (eigen-)beamforming: V_{ki} = the d strongest right singular vectors of
    the own channel H_{ki,k}, equal power P_k / (I d) per stream. ``(B, n)``."""
    V, _ = _effective_channels(problem)
    return pack(scale_to_budget(V, problem.budget))


def _zero_forcing(problem: MimoInstances, reg: Tensor | None) -> Tensor:
    Heff = _effective_channels(problem)[1]
    B, K, I, d, M = Heff.shape
    Hc = Heff.reshape(B, K, I * d, M)  # one row per stream of the cell
    G = Hc @ Hc.mH
    if reg is not None:
        G = G + reg.to(G.dtype)[..., None, None] * torch.eye(I * d, dtype=G.dtype, device=G.device)
    Vc = torch.linalg.solve(G, Hc).mH  # Hc^H (Hc Hc^H + reg I)^{-1}: (B, K, M, I d)
    V = Vc.reshape(B, K, M, I, d).permute(0, 1, 3, 2, 4)
    return pack(scale_to_budget(V, problem.budget))


def zero_forcing(problem: MimoInstances) -> Tensor:
    """Zero-forcing on the effective channels (multi-user eigenmode transmission).

    Each user combines with the d strongest left singular vectors U_d of its own channel;
    the rows of Heff_{ki} = U_d^H H_{ki,k} are stacked per cell (I d x M) and
    V_k = Heff^H (Heff Heff^H)^{-1}, scaled to the budget (one factor per cell), so the
    streams of a cell do not interfere after combining (for d = N: H_{ki,k} V_{ki'} = 0,
    i' != i). Inter-cell interference is ignored. Needs M >= I d. ``(B, n)``.
    """
    I, d, M = problem.users, problem.streams, problem.tx_antennas
    if M < I * d:
        raise ValueError(
            f"zero-forcing needs tx_antennas M >= users * streams = {I}*{d} = {I * d} per cell, got M = {M}; "
            f"use 'rzf' or 'mrt'"
        )
    return _zero_forcing(problem, None)


def regularized_zero_forcing(problem: MimoInstances, reg: Tensor | float | None = None) -> Tensor:
    """Regularized ZF (Peel, Hochwald, Swindlehurst, IEEE Trans. Commun. 2005) on the
    effective channels of ``zero_forcing``: V_k = Heff^H (Heff Heff^H + reg I)^{-1}, scaled
    to the budget. Default reg = sigma^2 I d / P_k (noise times the number of streams of
    the cell over the budget, the usual choice for unit-variance channels; inter-cell
    interference is ignored). ``reg``: scalar, ``(B,)`` or ``(B, K)``. ``(B, n)``."""
    if reg is None:
        reg_t = problem.noise.unsqueeze(-1) * (problem.users * problem.streams) / problem.budget
    else:
        reg_t = torch.as_tensor(reg, dtype=problem.dtype, device=problem.device)
        if bool((reg_t < 0).any()):
            raise ValueError(f"regularized_zero_forcing: reg must be >= 0, got {reg!r}")
        reg_t = (reg_t.reshape(-1, 1) if reg_t.ndim == 1 else reg_t).expand(problem.batch_size, problem.cells)
    return _zero_forcing(problem, reg_t)


@dataclasses.dataclass
class LinearPrecoderState:
    """x: ``(B, n)`` the precoder (fixed)."""

    x: Tensor


class LinearPrecoder(Optimizer):
    """A closed-form precoder behind the solver protocol, so that tables can list it:
    ``init`` computes it (``x0`` is ignored) and ``step`` keeps it."""

    name = "linear_precoder"
    handles_nonsmooth = True

    def precoder(self, problem: MimoInstances) -> Tensor:
        raise NotImplementedError

    def check_problem(self, problem) -> None:
        _require_mimo(self, problem)

    def init(self, problem, x0: Tensor) -> LinearPrecoderState:
        self.check_problem(problem)
        return LinearPrecoderState(x=self.precoder(problem))

    def step(self, problem, state: LinearPrecoderState) -> LinearPrecoderState:
        return LinearPrecoderState(x=state.x)


class MRT(LinearPrecoder):
    """Maximum-ratio transmission (``mrt``)."""

    name = "mrt"

    def precoder(self, problem: MimoInstances) -> Tensor:
        return mrt(problem)


class ZeroForcing(LinearPrecoder):
    """Zero-forcing (``zero_forcing``); refuses problems with M < I d."""

    name = "zf"

    def check_problem(self, problem) -> None:
        super().check_problem(problem)
        if problem.tx_antennas < problem.users * problem.streams:
            raise ValueError(
                f"solver '{self.name}' needs tx_antennas M >= users * streams = {problem.users * problem.streams} "
                f"per cell, got M = {problem.tx_antennas}; use 'rzf' or 'mrt'"
            )

    def precoder(self, problem: MimoInstances) -> Tensor:
        return zero_forcing(problem)


class RegularizedZeroForcing(LinearPrecoder):
    """Regularized zero-forcing (``regularized_zero_forcing``); ``reg`` None = sigma^2 I d / P."""

    name = "rzf"

    def __init__(self, reg: float | None = None):
        if reg is not None and not reg >= 0:
            raise ValueError(f"{self.name}: reg must be >= 0 or None, got {reg!r}")
        self.reg = reg

    def precoder(self, problem: MimoInstances) -> Tensor:
        return regularized_zero_forcing(problem, self.reg)
