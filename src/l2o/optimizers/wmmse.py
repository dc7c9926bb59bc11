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

The formulas (the U, W and V updates, ``wmmse_update``, and the MRT / ZF / RZF
precoders) are tensor-level functions in ``l2o.problems.mimo.channel``, shared with the
instances and the learned solvers; this module puts them behind the solver protocol.
Everything is batched over instances, cells and users; shapes follow
``l2o.problems.mimo.channel``.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from l2o.optimizers.base import Optimizer
from l2o.problems.base import Instances
from l2o.problems.mimo.channel import (
    BISECTION_ITERS,
    mrt,
    pack,
    regularized_zero_forcing,
    wmmse_update,
    zero_forcing,
)
from l2o.problems.mimo.instances import MimoInstances

__all__ = [
    "WMMSE", "WMMSEState", "LinearPrecoder", "LinearPrecoderState", "MRT", "ZeroForcing", "RegularizedZeroForcing",
    "require_mimo", "feasible_start",
]


def require_mimo(solver: Optimizer, problem: Instances) -> None:
    """The ``check_problem`` of every MIMO solver (classical or learned): a one-line
    ``ValueError`` naming ``solver`` unless ``problem`` is a ``MimoInstances``."""
    if not isinstance(problem, MimoInstances):
        raise ValueError(  # noqa: TRY004 (the solver protocol: a problem that does not fit is a ValueError)
            f"solver '{solver.name}' solves the MIMO sum-rate family only ('mimo' and the mimo_* presets), "
            f"got a {getattr(problem, 'problem_kind', 'custom')} problem"
        )


def feasible_start(problem: MimoInstances, x0: Tensor) -> Tensor:
    """``x0`` (B, n) projected onto the power budgets, with maximum-ratio transmission
    (``channel.mrt``) for every base station whose precoders are all zero (a zero start is a
    stationary point of the sum-rate that WMMSE-type updates never leave). ``(B, n)``.

    >>> import torch, l2o
    >>> p = l2o.make_family("mimo_small").sample(2, 0)
    >>> x = feasible_start(p, torch.zeros(p.batch_size, p.dim, dtype=p.dtype))
    >>> bool((p.power(x) > 0).all())
    True
    """
    x = problem.prox(x0, None)
    zero = problem.power(x) == 0  # (B, K)
    if bool(zero.any()):
        start = mrt(problem.H, problem.streams, problem.budget).to(x.dtype)
        B, K = zero.shape
        x = torch.where(zero.unsqueeze(-1), start.reshape(B, K, -1), x.reshape(B, K, -1)).reshape(x.shape)
    return x


# ----- WMMSE ------------------------------------------------------------------------------------
@dataclasses.dataclass
class WMMSEState:
    """x: ``(B, n)`` packed precoders; mu: ``(B, K)`` multipliers of the last V update."""

    x: Tensor
    mu: Tensor


class WMMSE(Optimizer):
    """Weighted MMSE (Shi et al., IEEE TSP 2011), batched over instances, cells and users.

    ``step`` is ``channel.wmmse_update``: MMSE receivers U and weights W (one Cholesky per user),
    then one eigendecomposition of A_k per cell and ``bisection_iters`` bisection steps
    on mu_k (elementwise, no solves, no host synchronization). The weighted sum-rate is
    non-decreasing and every iterate meets the budgets (to rounding). Starting from
    V = 0 it stays at 0 (a degenerate fixed point): start from ``problem.initial_point()``.

    Example (2 cells x 2 users, M = 4, N = 2, one stream each):
        >>> import torch, l2o
        >>> from l2o.problems import MimoFamily
        >>> problem = MimoFamily(cells=2, users=2, tx_antennas=4, rx_antennas=2, streams=1).sample(3, generator=0)
        >>> solver = l2o.optimizers.WMMSE()
        >>> state = solver.init(problem, problem.initial_point())
        >>> rates = [problem.sum_rate(state.x)]
        >>> for _ in range(10):
        ...     state = solver.step(problem, state)
        ...     rates.append(problem.sum_rate(state.x))
        >>> all(bool((b >= a - 1e-9).all()) for a, b in zip(rates, rates[1:]))  # monotone sum-rate
        True
        >>> bool(((problem.power(state.x) - problem.budget).abs() < 1e-9).all())  # budgets met
        True
    """

    name = "wmmse"
    handles_nonsmooth = True

    def __init__(self, bisection_iters: int = BISECTION_ITERS):
        if not isinstance(bisection_iters, int) or bisection_iters < 1:
            raise ValueError(f"{self.name}: bisection_iters must be a positive integer, got {bisection_iters!r}")
        self.bisection_iters = bisection_iters

    def check_problem(self, problem: Instances) -> None:
        require_mimo(self, problem)

    def init(self, problem: Instances, x0: Tensor) -> WMMSEState:
        self.check_problem(problem)
        mu = torch.zeros(x0.shape[0], problem.cells, dtype=x0.dtype, device=x0.device)
        return WMMSEState(x=x0.clone(), mu=mu)

    def step(self, problem: Instances, state: WMMSEState) -> WMMSEState:
        V, mu = wmmse_update(
            problem.H, problem.unpack(state.x), problem.noise, problem.weights, problem.budget, self.bisection_iters
        )
        return WMMSEState(x=pack(V), mu=mu.to(state.mu.dtype))


# ----- linear precoders ---------------------------------------------------------------------------
@dataclasses.dataclass
class LinearPrecoderState:
    """x: ``(B, n)`` the precoder (fixed)."""

    x: Tensor


class LinearPrecoder(Optimizer):
    """A closed-form precoder behind the solver protocol, so that tables can list it:
    ``init`` computes it (``x0`` is ignored) and ``step`` keeps it."""

    name = "linear_precoder"
    handles_nonsmooth = True
    #: A closed form: ``l2o.solve`` runs one step and returns (iterating changes nothing).
    one_shot = True

    def precoder(self, problem: MimoInstances) -> Tensor:
        raise NotImplementedError

    def check_problem(self, problem: Instances) -> None:
        require_mimo(self, problem)

    def init(self, problem: Instances, x0: Tensor) -> LinearPrecoderState:
        self.check_problem(problem)
        return LinearPrecoderState(x=self.precoder(problem))

    def step(self, problem: Instances, state: LinearPrecoderState) -> LinearPrecoderState:
        return LinearPrecoderState(x=state.x)


class MRT(LinearPrecoder):
    """Maximum-ratio transmission (``channel.mrt``).

    Example (one user, one receive antenna: MRT is optimal, rate log(1 + P ||h||^2 / sigma^2)):
        >>> import torch, l2o
        >>> from l2o.problems import MimoFamily
        >>> family = MimoFamily(cells=1, users=1, tx_antennas=4, rx_antennas=1, streams=1, power=10.0)
        >>> problem = family.sample(3, generator=0)
        >>> x = l2o.optimizers.MRT().init(problem, problem.initial_point()).x
        >>> h2 = problem.H.abs().square().sum((-2, -1)).reshape(3)  # ||h||^2
        >>> bool(torch.allclose(problem.sum_rate(x), torch.log1p(10.0 * h2), atol=1e-12))
        True
    """

    name = "mrt"

    def precoder(self, problem: MimoInstances) -> Tensor:
        return mrt(problem.H, problem.streams, problem.budget)


class ZeroForcing(LinearPrecoder):
    """Zero-forcing (``channel.zero_forcing``); refuses problems with M < I d.

    Example (one cell: ZF leaves no interference, J = sigma^2 I at every user):
        >>> import torch, l2o
        >>> from l2o.problems import MimoFamily
        >>> from l2o.problems.mimo.channel import signal_and_interference
        >>> problem = MimoFamily(cells=1, users=2, tx_antennas=4, rx_antennas=1, streams=1).sample(3, generator=0)
        >>> V = problem.unpack(l2o.optimizers.ZeroForcing().init(problem, problem.initial_point()).x)
        >>> S, J = signal_and_interference(problem.H, V, problem.noise)
        >>> bool(((J - 1.0).abs() < 1e-12).all())  # noise sigma^2 = 1 only
        True
    """

    name = "zf"

    def check_problem(self, problem: Instances) -> None:
        super().check_problem(problem)
        if problem.tx_antennas < problem.users * problem.streams:
            raise ValueError(
                f"solver '{self.name}' needs tx_antennas M >= users * streams = {problem.users * problem.streams} "
                f"per cell, got M = {problem.tx_antennas}; use 'rzf' or 'mrt'"
            )

    def precoder(self, problem: MimoInstances) -> Tensor:
        return zero_forcing(problem.H, problem.streams, problem.budget)


class RegularizedZeroForcing(LinearPrecoder):
    """Regularized zero-forcing (``channel.regularized_zero_forcing``); ``reg`` None = sigma^2 I d / P.

    Example (``reg=0`` is zero-forcing; the default regularization uses the full budget too):
        >>> import torch, l2o
        >>> from l2o.problems import MimoFamily
        >>> problem = MimoFamily(cells=1, users=2, tx_antennas=4, rx_antennas=1, streams=1).sample(3, generator=0)
        >>> x0 = problem.initial_point()
        >>> zf = l2o.optimizers.ZeroForcing().init(problem, x0).x
        >>> bool(torch.allclose(l2o.optimizers.RegularizedZeroForcing(reg=0.0).init(problem, x0).x, zf))
        True
        >>> x = l2o.optimizers.RegularizedZeroForcing().init(problem, x0).x
        >>> bool(((problem.power(x) - problem.budget).abs() < 1e-9).all())
        True
    """

    name = "rzf"

    def __init__(self, reg: float | None = None):
        if reg is not None and not reg >= 0:
            raise ValueError(f"{self.name}: reg must be >= 0 or None, got {reg!r}")
        self.reg = reg

    def precoder(self, problem: MimoInstances) -> Tensor:
        return regularized_zero_forcing(problem.H, problem.streams, problem.budget, problem.noise, self.reg)
