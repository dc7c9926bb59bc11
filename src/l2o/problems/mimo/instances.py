"""Batched MIMO weighted sum-rate problems (``MimoInstances``), the ``Instances`` of the MIMO family.

K cells, I users per cell, M transmit and N receive antennas, d streams; shapes and
formulas in ``l2o.problems.mimo.channel``. The weighted sum-rate (natural log, so in
nats per channel use) is

    R(V) = sum_{k,i} alpha_{ki} log det(I_N + H_{ki,k} V_{ki} V_{ki}^H H_{ki,k}^H J_{ki}^{-1}),
    J_{ki} = sigma^2 I_N + sum_{(j,l) != (k,i)} H_{ki,j} V_{lj} V_{lj}^H H_{ki,j}^H,

maximized subject to the per-cell power budgets sum_i ||V_{ki}||_F^2 <= P_k. The
``Instances`` interface minimizes, so ``f = -R`` and ``r`` is the indicator of the
power budgets (its prox is the projection that scales an over-budget cell down).

Points: the generic protocol works on real ``(B, n)`` tensors (run, solve, compaction
and safeguards mix states with ``torch.where``), so the point is the real flattening
``x = pack(V) = view_as_real(V).reshape(B, -1)``, n = 2 K I M d, float32 <-> complex64
and float64 <-> complex128; ``unpack`` inverts it. The gradient is in closed form
(Wirtinger calculus, see ``MimoInstances.grad``).

References:
    Shi, Razaviyayn, Luo, He, *An iteratively weighted MMSE approach to distributed
    sum-utility maximization for a MIMO interfering broadcast channel*, IEEE TSP 2011.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from l2o.problems.base import Instances, as_batch_vector
from l2o.problems.mimo.channel import (
    complex_dtype,
    mmse_receivers,
    mrt,
    pack,
    per_cell_power,
    regularized_zero_forcing,
    scale_to_budget,
    transmit_covariance,
    unpack,
    user_rates,
    wmmse_update,
    zero_forcing,
)

#: Relative tolerance of the power budget in ``nonsmooth_objective``: iterates of float32
#: solvers are evaluated in float64, and a float32 precoder meets its budget only to
#: ~1e-6 relative; an excess of 1e-5 changes the rate by at most ~1e-5 relative.
POWER_TOL = 1e-5


class MimoInstances(Instances):
    """A batch of weighted sum-rate problems, min_x -R(V) s.t. per-cell power <= P_k, V = unpack(x).

    Args:
        H: ``(B, K, I, K, N, M)`` complex channels (H[b, k, i, j]: BS j -> user (k, i)).
        streams: d, the number of streams per user (1 <= d <= min(M, N)).
        noise: sigma^2, scalar or ``(B,)``, > 0.
        power: budgets P_k: scalar, ``(B,)`` or ``(B, K)``, > 0.
        weights: alpha: None (all ones), ``(K, I)``, ``(K I,)`` (cell-major) or ``(B, K, I)``, >= 0.

    The smooth part is f = -R; r is the indicator of the budgets (``is_constrained``: the
    prox is a projection). ``smoothness`` is a global Lipschitz bound of grad f (see there);
    ``certificate`` is the relative WMMSE fixed-point residual; ``reference`` the best of
    several WMMSE runs, a best-effort *local* optimum of this nonconvex problem.
    """

    problem_kind = "MIMO sum-rate"

    has_nonsmooth = True
    is_constrained = True

    def __init__(
        self,
        H: Tensor,
        streams: int,
        noise: Tensor | float = 1.0,
        power: Tensor | float = 1.0,
        weights: Tensor | None = None,
        x0_shift: float = 0.0,
    ):
        if H.ndim != 6 or not H.is_complex() or H.shape[1] != H.shape[3]:
            raise ValueError(f"mimo: H must be a complex (B, K, I, K, N, M) tensor, got {H.dtype} {tuple(H.shape)}")
        B, K, I, _, N, M = H.shape
        if not isinstance(streams, int) or not 1 <= streams <= min(M, N):
            raise ValueError(f"mimo: streams must be an integer in [1, min(M={M}, N={N})], got {streams!r}")
        self.H = H
        self.streams = streams
        real = H.real.dtype
        like = torch.empty(B, dtype=real, device=H.device)
        self.noise = as_batch_vector(noise, B, like)
        p = torch.as_tensor(power, dtype=real, device=H.device)
        self.budget = (p.reshape(B, 1) if p.ndim == 1 else p).expand(B, K).clone()
        if weights is None:
            w = torch.ones(B, K, I, dtype=real, device=H.device)
        else:
            w = torch.as_tensor(weights, dtype=real, device=H.device)
            w = (w.reshape(K, I) if 1 <= w.ndim <= 2 else w).expand(B, K, I).clone()
        self.weights = w
        self.x0_shift = x0_shift
        self._L: Tensor | None = None

    # ----- layout ----------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.H.shape[0]

    @property
    def cells(self) -> int:
        return self.H.shape[1]

    @property
    def users(self) -> int:
        return self.H.shape[2]

    @property
    def rx_antennas(self) -> int:
        return self.H.shape[4]

    @property
    def tx_antennas(self) -> int:
        return self.H.shape[5]

    @property
    def precoder_shape(self) -> tuple[int, int, int, int]:
        """(K, I, M, d)."""
        return (self.cells, self.users, self.tx_antennas, self.streams)

    @property
    def dim(self) -> int:
        return 2 * math.prod(self.precoder_shape)

    @property
    def dtype(self) -> torch.dtype:
        return self.noise.dtype

    @property
    def device(self) -> torch.device:
        return self.H.device

    def index(self, idx: Tensor) -> MimoInstances:
        out = MimoInstances(
            self.H[idx], self.streams, self.noise[idx], self.budget[idx], self.weights[idx], self.x0_shift
        )
        if self._L is not None:
            out._L = self._L[idx]
        return out

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> MimoInstances:
        real = dtype or self.dtype
        dev = device or self.device
        return MimoInstances(
            self.H.to(dtype=complex_dtype(real), device=dev), self.streams, self.noise.to(dtype=real, device=dev),
            self.budget.to(dtype=real, device=dev), self.weights.to(dtype=real, device=dev), self.x0_shift,
        )

    def pack(self, V: Tensor) -> Tensor:
        """``(B, K, I, M, d)`` complex -> ``(B, n)`` real."""
        return pack(V)

    def unpack(self, x: Tensor) -> Tensor:
        """``(B, n)`` real -> ``(B, K, I, M, d)`` complex."""
        return unpack(x, self.precoder_shape)

    # ----- rates -----------------------------------------------------------------------------
    def rates(self, x: Tensor) -> Tensor:
        """Unweighted rate of every user, in nats: ``(B, n) -> (B, K, I)``."""
        return user_rates(self.H, self.unpack(x), self.noise)

    def sum_rate(self, x: Tensor) -> Tensor:
        """Weighted sum-rate sum alpha_{ki} R_{ki} in nats (natural log): ``(B, n) -> (B,)``."""
        return (self.weights * self.rates(x)).sum((-2, -1))

    def power(self, x: Tensor) -> Tensor:
        """Transmit power of every BS, sum_i ||V_{ki}||_F^2: ``(B, n) -> (B, K)``."""
        return per_cell_power(x, self.cells)

    # ----- smooth part -----------------------------------------------------------------------
    def smooth_objective(self, x: Tensor) -> Tensor:
        """f(x) = -weighted sum-rate (nats)."""
        return -self.sum_rate(x)

    def grad(self, x: Tensor) -> Tensor:
        """grad f in the real coordinates x, in closed form:

            grad_{V_{lj}} f = 2 (A_j V_{lj} - B_{lj})

        with A, B of ``transmit_covariance`` at the MMSE receivers U and weights W of V
        (2 d f / d conj(V) by Wirtinger calculus: d log det(J + S S^H) - d log det J, and
        J^{-1} - (J + S S^H)^{-1} = U W U^H, J^{-1} S = U W). So the unconstrained V
        update of WMMSE, V = A^{-1} B, is exactly a stationary point of f in V.
        """
        V = self.unpack(x)
        A, Bm = transmit_covariance(self.H, *mmse_receivers(self.H, V, self.noise), self.weights)
        B, K, I, M, d = V.shape
        per_cell = lambda T: T.permute(0, 1, 3, 2, 4).reshape(B, K, M, I * d)  # noqa: E731
        G = 2.0 * (A @ per_cell(V) - per_cell(Bm))
        return pack(G.reshape(B, K, M, I, d).permute(0, 1, 3, 2, 4))

    def value_and_grad(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.smooth_objective(x), self.grad(x)

    def smoothness(self) -> Tensor:
        """``(B,)`` global Lipschitz constant of grad f (in the real coordinates x):

            L = (4 / sigma^2) sum_{(k,i)} alpha_{ki} max_j ||H_{ki,j}||_2^2.

        Proof sketch: each rate is g(A_all V) - g(A_oth V) with g(X) = log det(sigma^2 I + X X^H)
        and linear maps stacking H_{ki,j} V_{lj} (norm <= max_j ||H_{ki,j}||_2). grad g(X) =
        2 (sigma^2 I + X X^H)^{-1} X applies x -> 2x / (sigma^2 + x^2) to the singular values,
        an odd function with Lipschitz constant 2 / sigma^2, and such singular-value
        functions are Lipschitz in the Frobenius norm with the scalar constant (Hermitian
        dilation + the divided-difference bound). Loose (a worst case over all V), so
        gradient methods with step 1/L are slow; WMMSE does not use it.
        """
        if self._L is None:
            gains = torch.linalg.matrix_norm(self.H, ord=2).square().amax(-1)  # (B, K, I)
            self._L = 4.0 * (self.weights * gains).sum((-2, -1)) / self.noise
        return self._L

    # ----- nonsmooth part --------------------------------------------------------------------
    def nonsmooth_objective(self, x: Tensor) -> Tensor:
        """Indicator of the budgets: 0 where every cell's power is <= P_k (1 + POWER_TOL), else +inf."""
        over = (self.power(x) > self.budget.to(x.dtype) * (1.0 + POWER_TOL)).any(-1)
        return torch.where(over, torch.full_like(x[:, 0], float("inf")), torch.zeros_like(x[:, 0]))

    def prox(self, v: Tensor, step: Tensor | float) -> Tensor:
        """Projection onto the budgets (``step`` is irrelevant): a cell over its budget is
        scaled by sqrt(P_k / power_k), the others are left alone. A cell over its budget by
        rounding only (16 eps relative) counts as feasible, so the projection is idempotent."""
        B, K = v.shape[0], self.cells
        vk = v.reshape(B, K, -1)
        p = vk.square().sum(-1)
        budget = self.budget.to(v.dtype)
        over = p > budget * (1 + 16 * torch.finfo(v.dtype).eps)
        scale = torch.where(over, (budget / torch.where(over, p, budget)).sqrt(), torch.ones_like(p))
        return (vk * scale.unsqueeze(-1)).reshape(v.shape)

    # ----- start, certificate, reference -------------------------------------------------------
    def initial_point(self) -> Tensor:
        """The default start: MRT (the d strongest right singular vectors of each user's own
        channel, equal power per stream, every BS at full power; ``channel.mrt``),
        feasible. With ``x0_shift = s != 0`` the generic OOD start s * 1 instead (over the
        budget unless s is small: a solver's first step projects or rescales it)."""
        if self.x0_shift != 0.0:
            return super().initial_point()
        return mrt(self.H, self.streams, self.budget)

    def fixed_point_residual(self, x: Tensor) -> Tensor:
        """``(B,)`` relative WMMSE fixed-point residual ||T(V) - V||_F / ||V||_F, T one WMMSE
        iteration (``channel.wmmse_update``), in the instances' dtype.

        Zero exactly at fixed points of WMMSE, which are the stationary (KKT) points of
        the sum-rate problem (Shi et al. 2011, Thm. 3); like a gradient-mapping norm it is
        of the order of the square root of the rate gap near a local maximum. V = 0 is a
        degenerate fixed point (it minimizes the rate) and is given residual 1.
        """
        V = self.unpack(x)
        T, _ = wmmse_update(self.H, V, self.noise, self.weights, self.budget)
        diff = torch.linalg.vector_norm(pack(T) - x, dim=-1)
        norm = torch.linalg.vector_norm(x, dim=-1)
        return torch.where(norm > 0, diff / torch.where(norm > 0, norm, torch.ones_like(norm)), torch.ones_like(norm))

    def certificate(self, x: Tensor) -> Tensor:
        """The relative WMMSE fixed-point residual (``fixed_point_residual``): this problem is
        nonconvex and has no cheap dual bound, so the certificate is a stationarity measure."""
        return self.fixed_point_residual(x)

    def certificate_name(self) -> str:
        return "relative WMMSE fixed-point residual ||V - WMMSE(V)|| / ||V||"

    # ----- reference (computed by l2o.evaluation.reference) -------------------------------
    #: The reference is the best of WMMSE runs from several starts (a local optimum: the
    #: sum-rate is nonconvex), each until the relative change of the rate in one iteration
    #: is below ``reference_rtol``.
    reference_solver = "wmmse"
    reference_rtol = 1e-9
    reference_max_iter = 5000
    #: Random feasible starts of the reference, after MRT, RZF and ZF.
    reference_random_starts = 3

    def reference_starts(self) -> list[tuple[str, Tensor]]:
        """The starts of the reference runs: MRT, RZF, ZF (where M >= I d) and
        ``reference_random_starts`` random feasible points (complex Gaussian precoders at
        full power, the same draws for every instance, so that a sub-batch gets the same
        starts as the batch). Each ``(name, x0 (B, n))``."""
        H, d, budget = self.H, self.streams, self.budget
        starts = [("MRT", mrt(H, d, budget)), ("RZF", regularized_zero_forcing(H, d, budget, self.noise))]
        if self.tx_antennas >= self.users * self.streams:
            starts.append(("ZF", zero_forcing(H, d, budget)))
        g = torch.Generator().manual_seed(0)
        for s in range(self.reference_random_starts):
            z = torch.randn(1, self.dim, generator=g, dtype=torch.float64).to(self.dtype).to(self.device)
            V = self.unpack(z.expand(self.batch_size, -1))
            starts.append((f"random {s}", pack(scale_to_budget(V, budget))))
        return starts
