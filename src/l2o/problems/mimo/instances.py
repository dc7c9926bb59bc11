"""Multi-cell multi-user MIMO weighted sum-rate maximization (the WMMSE setting).

K cells; base station (BS) k has M antennas and serves I users, each with N antennas
and d <= min(M, N) streams. User (k, i) is user i of cell k. Shapes (B instances):

    H  (B, K, I, K, N, M) complex   H[b, k, i, j] = channel from BS j to user (k, i)
    V  (B, K, I, M, d)    complex   V[b, k, i]    = precoder of user (k, i)

The weighted sum-rate (natural log, so in nats per channel use) is

    R(V) = sum_{k,i} alpha_{ki} log det(I_N + H_{ki,k} V_{ki} V_{ki}^H H_{ki,k}^H J_{ki}^{-1}),
    J_{ki} = sigma^2 I_N + sum_{(j,l) != (k,i)} H_{ki,j} V_{lj} V_{lj}^H H_{ki,j}^H,

maximized subject to the per-cell power budgets sum_i ||V_{ki}||_F^2 <= P_k. The
``Instances`` interface minimizes, so ``f = -R`` and ``r`` is the indicator of the
power budgets (its prox is the projection that scales an over-budget cell down).

Points: the generic protocol works on real ``(B, n)`` tensors (run, solve, compaction
and safeguards mix states with ``torch.where``), so the point is the real flattening
``x = pack(V) = view_as_real(V).reshape(B, -1)``, n = 2 K I M d, float32 <-> complex64
and float64 <-> complex128; ``unpack`` inverts it.

Computation (no Python loops over users or cells): with S_{ki} = H_{ki,k} V_{ki} and
the Cholesky factor J = L L^H, T = L^{-1} S,

    R_{ki} = log det(I_N + S S^H J^{-1}) = log det(W_{ki}),   W_{ki} = I_d + T^H T,

the MSE weight of WMMSE (W = E^{-1} for the MMSE receiver, by the Woodbury identity),
which is well conditioned (W >= I) where E = I - U^H S would cancel at high SINR.
The gradient is in closed form (Wirtinger calculus, see ``MimoInstances.grad``).

References:
    Shi, Razaviyayn, Luo, He, *An iteratively weighted MMSE approach to distributed
    sum-utility maximization for a MIMO interfering broadcast channel*, IEEE TSP 2011.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from l2o.problems.base import Instances, as_batch_vector
from l2o.problems.family import ProblemFamily

#: Relative tolerance of the power budget in ``nonsmooth_objective``: iterates of float32
#: solvers are evaluated in float64, and a float32 precoder meets its budget only to
#: ~1e-6 relative; an excess of 1e-5 changes the rate by at most ~1e-5 relative.
POWER_TOL = 1e-5

#: Convergence rule of the reference runs: relative change of the weighted sum-rate
#: in one WMMSE iteration below this.
REFERENCE_RTOL = 1e-9
#: Cap on the iterations of each reference run (and the number of random starts).
REFERENCE_MAX_ITER = 5000
REFERENCE_RANDOM_STARTS = 3


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
        raise ValueError(f"mimo: x must have {2 * math.prod(shape)} columns for precoders {shape}, got {tuple(x.shape)}")
    return torch.view_as_complex(x.contiguous().reshape(x.shape[0], *shape, 2))


# ----- channel algebra ---------------------------------------------------------------------------
def direct_channels(H: Tensor) -> Tensor:
    """The channels of users from their own BS: ``(B, K, I, K, N, M) -> (B, K, I, N, M)``."""
    return torch.diagonal(H, dim1=1, dim2=3).permute(0, 4, 1, 2, 3)


def _own_streams(K: int, I: int, d: int, device) -> Tensor:
    """``(K, I, K I d)`` bool: stream column (j, l, s) belongs to user (k, i)."""
    return torch.eye(K * I, dtype=torch.bool, device=device).repeat_interleave(d, dim=1).reshape(K, I, K * I * d)


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
    G = G.masked_fill(_own_streams(K, I, d, H.device).unsqueeze(-2), 0)
    eye = torch.eye(N, dtype=H.dtype, device=H.device)
    J = G @ G.mH + noise.reshape(B, 1, 1, 1, 1) * eye
    S = direct_channels(H) @ V
    return S, J


def _whitened_signal(H: Tensor, V: Tensor, noise: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(L, T, W): J = L L^H (Cholesky), T = L^{-1} S, W = I + T^H T."""
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
    L, T, W = _whitened_signal(H, V, noise)
    Y = torch.linalg.solve_triangular(L.mH, T, upper=True)  # J^{-1} S = U W
    # Y W^{-1} through the Cholesky factor of W >= I: never singular in exact arithmetic,
    # and no exception from far-out (e.g. huge, infeasible float32) points
    U = torch.cholesky_solve(Y.mH, torch.linalg.cholesky_ex(W).L).mH
    return U, W


def user_rates(H: Tensor, V: Tensor, noise: Tensor) -> Tensor:
    """Rates log det(I + S S^H J^{-1}) = log det(I + T^H T) of every user, in nats: ``(B, K, I)``."""
    LW = torch.linalg.cholesky_ex(_whitened_signal(H, V, noise)[2]).L
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


def per_cell_power(x: Tensor, cells: int) -> Tensor:
    """sum_i ||V_{ki}||_F^2 per cell from the packed point: ``(B, n) -> (B, K)``."""
    return x.reshape(x.shape[0], cells, -1).square().sum(-1)


def scale_to_budget(V: Tensor, budget: Tensor) -> Tensor:
    """Scale every cell's precoders to use exactly its budget: ``(B, K, I, M, d)``, budget ``(B, K)``.

    A cell whose precoders are all zero stays zero.
    """
    p = V.abs().square().sum((-3, -2, -1))
    scale = torch.where(p > 0, (budget / torch.where(p > 0, p, torch.ones_like(p))).sqrt(), torch.zeros_like(p))
    return V * scale.to(V.dtype)[..., None, None, None]


# ----- instances ---------------------------------------------------------------------------------
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

    def index(self, idx: Tensor) -> "MimoInstances":
        out = MimoInstances(
            self.H[idx], self.streams, self.noise[idx], self.budget[idx], self.weights[idx], self.x0_shift
        )
        if self._L is not None:
            out._L = self._L[idx]
        return out

    def to(self, dtype=None, device=None) -> "MimoInstances":
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

    def prox(self, v: Tensor, step) -> Tensor:
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
        channel, equal power per stream, every BS at full power; ``l2o.optimizers.wmmse.mrt``),
        feasible. With ``x0_shift = s != 0`` the generic OOD start s * 1 instead (over the
        budget unless s is small: a solver's first step projects or rescales it)."""
        if self.x0_shift != 0.0:
            return super().initial_point()
        from l2o.optimizers.wmmse import mrt

        return mrt(self)

    def fixed_point_residual(self, x: Tensor) -> Tensor:
        """``(B,)`` relative WMMSE fixed-point residual ||T(V) - V||_F / ||V||_F, T one WMMSE
        iteration (``l2o.optimizers.wmmse.wmmse_update``), in the instances' dtype.

        Zero exactly at fixed points of WMMSE, which are the stationary (KKT) points of
        the sum-rate problem (Shi et al. 2011, Thm. 3); like a gradient-mapping norm it is
        of the order of the square root of the rate gap near a local maximum. V = 0 is a
        degenerate fixed point (it minimizes the rate) and is given residual 1.
        """
        from l2o.optimizers.wmmse import wmmse_update

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

    def reference_starts(self) -> list[tuple[str, Tensor]]:
        """The starts of the reference runs: MRT, RZF, ZF (where M >= I d) and
        ``REFERENCE_RANDOM_STARTS`` random feasible points (complex Gaussian precoders at
        full power, the same draws for every instance, so that a sub-batch gets the same
        starts as the batch)."""
        from l2o.optimizers.wmmse import mrt, regularized_zero_forcing, zero_forcing

        starts = [("MRT", mrt(self)), ("RZF", regularized_zero_forcing(self))]
        if self.tx_antennas >= self.users * self.streams:
            starts.append(("ZF", zero_forcing(self)))
        g = torch.Generator().manual_seed(0)
        for s in range(REFERENCE_RANDOM_STARTS):
            z = torch.randn(1, self.dim, generator=g, dtype=torch.float64).to(self.dtype).to(self.device)
            V = self.unpack(z.expand(self.batch_size, -1))
            starts.append((f"random {s}", pack(scale_to_budget(V, self.budget))))
        return starts

    def _solve_reference(self, tol: float, max_iter: int) -> tuple[Tensor, str]:
        """Best (highest weighted sum-rate, per instance) of WMMSE runs from every start of
        ``reference_starts``, each run until the relative change of the rate in one
        iteration is below REFERENCE_RTOL (at most min(max_iter, REFERENCE_MAX_ITER)
        iterations). A best-effort local optimum, not a certified global one: the gap
        (R* - R) / R* of another solver can be slightly negative. ``tol`` is not used."""
        from l2o.optimizers.wmmse import WMMSE

        starts = self.reference_starts()
        S, B = len(starts), self.batch_size
        big = self.index(torch.arange(B, device=self.device).repeat(S))
        x0 = torch.cat([x for _, x in starts])
        x, iters = run_wmmse_to_convergence(big, x0, WMMSE(), REFERENCE_RTOL, min(max_iter, REFERENCE_MAX_ITER))
        rate = big.sum_rate(x).reshape(S, B)
        best = rate.argmax(0)
        x_star = x.reshape(S, B, -1)[best, torch.arange(B, device=self.device)]
        names = ", ".join(name for name, _ in starts)
        return x_star, (
            f"best of WMMSE runs from {names} (per instance; each until the relative rate change per iteration "
            f"< {REFERENCE_RTOL:g}, at most {int(iters.max())} iterations used): a local optimum, not certified global"
        )


@torch.no_grad()
def run_wmmse_to_convergence(
    problem: MimoInstances, x0: Tensor, solver, rtol: float, max_iter: int, check_every: int = 10
) -> tuple[Tensor, Tensor]:
    """Iterate ``solver`` from ``x0`` until the relative change of the weighted sum-rate in
    one iteration is < ``rtol`` on each instance (checked every ``check_every`` iterations;
    converged instances leave the batch). Returns ``(x (B, n), iterations (B,))``."""
    from l2o.optimizers.base import select_state

    B = problem.batch_size
    x_out = x0.clone()
    iterations = torch.full((B,), max_iter, dtype=torch.long)
    active = torch.arange(B, device=problem.device)
    sub, state = problem, solver.init(problem, x0)
    for k in range(1, max_iter + 1):
        prev = state.x
        state = solver.step(sub, state)
        if k % check_every and k != max_iter:
            continue
        r_new, r_old = sub.sum_rate(state.x), sub.sum_rate(prev)
        done = (r_new - r_old).abs() <= rtol * r_new.abs()
        if k == max_iter:
            done = torch.ones_like(done)
        if bool(done.any()):
            idx = active[done]
            x_out[idx] = state.x[done]
            iterations[idx.cpu()] = k
            keep = torch.nonzero(~done).squeeze(-1)
            active = active[keep]
            if not active.numel():
                break
            sub = sub.index(keep)
            state = select_state(state, keep)
    return x_out, iterations


# ----- the family ---------------------------------------------------------------------------------
def hexagonal_grid(cells: int, spacing: float) -> Tensor:
    """``(cells, 2)`` BS positions on a hexagonal grid, ring by ring around the origin
    (1 + 6 + 12 + ...), neighbours ``spacing`` apart (sqrt(3) R for cells of radius R)."""
    pts = [(0, 0)]
    ring = 0
    while len(pts) < cells:
        ring += 1
        q, r = ring, 0  # walk the hexagonal ring of axial radius `ring`
        for dq, dr in [(-1, 1), (-1, 0), (0, -1), (1, -1), (1, 0), (0, 1)]:
            for _ in range(ring):
                pts.append((q, r))
                q, r = q + dq, r + dr
    axial = torch.tensor(pts[:cells], dtype=torch.float64)
    x = spacing * (axial[:, 0] + axial[:, 1] / 2)
    y = spacing * (math.sqrt(3) / 2) * axial[:, 1]
    return torch.stack([x, y], -1)


def _uniform_in_hexagon(shape: tuple[int, ...], radius: float, g: torch.Generator) -> Tensor:
    """``(*shape, 2)`` points uniform in a pointy-top regular hexagon of circumradius ``radius``
    centred at 0 (6 equilateral triangles; uniform in a triangle by reflection)."""
    tri = torch.randint(0, 6, shape, generator=g)
    a = torch.rand(*shape, generator=g, dtype=torch.float64)
    b = torch.rand(*shape, generator=g, dtype=torch.float64)
    flip = a + b > 1
    a, b = torch.where(flip, 1 - a, a), torch.where(flip, 1 - b, b)
    ang0 = math.pi / 6 + tri.to(torch.float64) * (math.pi / 3)
    ang1 = ang0 + math.pi / 3
    x = radius * (a * torch.cos(ang0) + b * torch.cos(ang1))
    y = radius * (a * torch.sin(ang0) + b * torch.sin(ang1))
    return torch.stack([x, y], -1)


def _uniform_in_annulus(shape: tuple[int, ...], inner: float, outer: float, g: torch.Generator) -> Tensor:
    rho = torch.sqrt(inner**2 + (outer**2 - inner**2) * torch.rand(*shape, generator=g, dtype=torch.float64))
    phi = 2 * math.pi * torch.rand(*shape, generator=g, dtype=torch.float64)
    return torch.stack([rho * torch.cos(phi), rho * torch.sin(phi)], -1)


@dataclasses.dataclass(frozen=True)
class MimoFamily(ProblemFamily):
    """Random multi-cell multi-user MIMO sum-rate problems (``MimoInstances``).

    Fields: ``cells`` K, ``users`` I per cell, ``tx_antennas`` M, ``rx_antennas`` N,
    ``streams`` d <= min(M, N), ``power`` P (every BS), ``noise`` sigma^2, ``weights``
    alpha (None: all ones; else K I values, cell-major: user i of cell k at k I + i).

    Channels (``channel``):

    * ``"rayleigh"``: every entry of every H_{ki,j} i.i.d. CN(0, 1) (interfering links as
      strong as direct ones, the setting of Shi et al. 2011 and of the deep-unfolding
      literature). P / sigma^2 is the SNR per receive antenna of an isotropic transmission.
    * ``"geometric"``: BSs on a hexagonal grid (spacing sqrt(3) ``cell_radius``); the
      users of cell k are dropped uniformly in the hexagon of circumradius ``cell_radius``
      around BS k (``layout="hexagonal"``) or in the disc of that radius
      (``layout="circular"``), at least ``min_distance`` from their BS. H_{ki,j} =
      sqrt(beta) times an i.i.d. CN(0, 1) matrix (the same small-scale draw as
      ``"rayleigh"`` for the same seed), with the large-scale gain
          beta = (max(dist, min_distance) / cell_radius)^(-path_loss_exponent) * 10^(s / 10),
      s ~ N(0, shadowing_db^2) i.i.d. per link. Normalization: a user at the cell edge has
      beta = 1 (without shadowing), so P / sigma^2 is the *cell-edge* SNR per receive
      antenna; users closer to their BS are stronger (up to
      (cell_radius / min_distance)^exponent).

    ``x0_shift`` s != 0 replaces the default start (MRT) by s * 1, the initial-point
    shift of the common interface; ``objective_shift`` exists for that interface too and
    must be 0 (WMMSE works on the precoders themselves). Rates are in nats.
    """

    cells: int = 3
    users: int = 2
    tx_antennas: int = 4
    rx_antennas: int = 2
    streams: int = 2
    power: float = 10.0
    noise: float = 1.0
    weights: tuple[float, ...] | None = None
    channel: str = "rayleigh"
    layout: str = "hexagonal"
    cell_radius: float = 500.0
    min_distance: float = 35.0
    path_loss_exponent: float = 3.76
    shadowing_db: float = 0.0
    x0_shift: float = 0.0
    objective_shift: float = 0.0

    name = "mimo"
    #: The CVPR 2024 shifts are for vector variables; precoders have their own splits.
    cvpr_shifts = False

    def natural_splits(self) -> list:
        """Other user counts and cells (the GNN shares weights across nodes), SNR, and
        the geometric channel model."""
        from l2o.problems.splits import Split, scaled

        out = [Split(f"users_{u}", f"{u} users per cell", {"users": u})
               for u in sorted({max(1, self.users // 2), 2 * self.users}) if u != self.users]
        out += [
            Split(f"cells_{self.cells + 2}", f"{self.cells + 2} cells", {"cells": self.cells + 2}),
            scaled("power_x10", "power", 10.0 * self.power, "power budget P (10 dB more SNR)"),
            scaled("power_div10", "power", self.power / 10.0, "power budget P (10 dB less SNR)"),
        ]
        if self.channel == "rayleigh":
            out.append(Split("geometric", "path loss and user drops in hexagonal cells", {"channel": "geometric"}))
        return out

    def _check_real(self, field: str, positive: bool = True) -> float:
        v = getattr(self, field)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (v <= 0 if positive else v < 0):
            raise ValueError(f"{self.name}: {field} must be a finite number {'>' if positive else '>='} 0, got {v!r}")
        return float(v)

    def validate(self) -> None:
        self._check_positive_int("cells", "users", "tx_antennas", "rx_antennas", "streams")
        if self.streams > min(self.tx_antennas, self.rx_antennas):
            raise ValueError(
                f"{self.name}: streams must be <= min(tx_antennas, rx_antennas) = "
                f"{min(self.tx_antennas, self.rx_antennas)}, got {self.streams}"
            )
        for f in ("power", "noise", "cell_radius", "min_distance", "path_loss_exponent"):
            self._check_real(f)
        self._check_real("shadowing_db", positive=False)
        if self.weights is not None:
            w = self.weights
            n = self.cells * self.users
            if not isinstance(w, (tuple, list)) or len(w) != n:
                raise ValueError(f"{self.name}: weights must be None or a tuple of cells*users = {n} numbers, got {w!r}")
            if any(isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a) or a < 0 for a in w):
                raise ValueError(f"{self.name}: weights must be finite numbers >= 0, got {w!r}")
            if not any(a > 0 for a in w):
                raise ValueError(f"{self.name}: weights must not all be 0, got {w!r}")
        if self.channel not in ("rayleigh", "geometric"):
            raise ValueError(f"{self.name}: channel must be 'rayleigh' or 'geometric', got {self.channel!r}")
        if self.layout not in ("hexagonal", "circular"):
            raise ValueError(f"{self.name}: layout must be 'hexagonal' or 'circular', got {self.layout!r}")
        if self.min_distance >= self.cell_radius:
            raise ValueError(
                f"{self.name}: min_distance must be < cell_radius = {self.cell_radius}, got {self.min_distance}"
            )
        if isinstance(self.x0_shift, bool) or not isinstance(self.x0_shift, (int, float)) or not math.isfinite(self.x0_shift):
            raise ValueError(f"{self.name}: x0_shift must be a finite number, got {self.x0_shift!r}")
        if self.objective_shift != 0.0:
            raise ValueError(f"{self.name}: objective_shift is not supported (must be 0), got {self.objective_shift!r}")

    def base_stations(self) -> Tensor:
        """``(K, 2)`` BS positions (geometric channels)."""
        return hexagonal_grid(self.cells, math.sqrt(3) * self.cell_radius)

    def drop_users(self, batch_size: int, g: torch.Generator) -> Tensor:
        """``(B, K, I, 2)`` user positions, uniform in their cell, >= min_distance from their BS."""
        shape = (batch_size, self.cells, self.users)
        if self.layout == "circular":
            offset = _uniform_in_annulus(shape, self.min_distance, self.cell_radius, g)
        else:
            offset = _uniform_in_hexagon(shape, self.cell_radius, g)
            bad = offset.norm(dim=-1) < self.min_distance
            while bool(bad.any()):  # rejection of the small disc around the BS
                offset = torch.where(bad.unsqueeze(-1), _uniform_in_hexagon(shape, self.cell_radius, g), offset)
                bad = offset.norm(dim=-1) < self.min_distance
        return self.base_stations()[None, :, None, :] + offset

    def large_scale_gains(self, positions: Tensor, g: torch.Generator) -> Tensor:
        """``(B, K, I, K)`` beta[b, k, i, j] of the link BS j -> user (k, i) (see the class docstring)."""
        dist = torch.linalg.vector_norm(positions.unsqueeze(-2) - self.base_stations(), dim=-1)
        beta = (dist.clamp(min=self.min_distance) / self.cell_radius) ** (-self.path_loss_exponent)
        if self.shadowing_db > 0:
            beta = beta * 10.0 ** (self.shadowing_db * torch.randn(beta.shape, generator=g, dtype=torch.float64) / 10)
        return beta

    def sample_instances(self, batch_size: int, g: torch.Generator) -> MimoInstances:
        K, I, N, M = self.cells, self.users, self.rx_antennas, self.tx_antennas
        shape = (batch_size, K, I, K, N, M)
        re = torch.randn(shape, generator=g, dtype=torch.float64)
        im = torch.randn(shape, generator=g, dtype=torch.float64)
        H = torch.complex(re, im) / math.sqrt(2)
        if self.channel == "geometric":
            beta = self.large_scale_gains(self.drop_users(batch_size, g), g)
            H = H * beta.sqrt()[..., None, None]
        weights = None if self.weights is None else torch.tensor(self.weights, dtype=torch.float64).reshape(K, I)
        return MimoInstances(H, self.streams, float(self.noise), float(self.power), weights, float(self.x0_shift))
