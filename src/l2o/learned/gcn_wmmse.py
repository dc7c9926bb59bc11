"""GCN-WMMSE: WMMSE unrolled with a learned graph filter in place of the V-update's inverse.

Schynol and Pesavento, *Coordinated sum-rate maximization in multicell MU-MIMO with deep
unrolling*, IEEE JSAC 2023 (code: github.com/lsky96/gcnwmmse, ``comm/gcnwmmse.py``), a
baseline of Song et al., *A learning-only method for multi-cell multi-user MIMO sum rate
maximization*, IEEE INFOCOM 2024 (7 unrolled layers with separate parameters, trained on
the sum of the sum-rates over the layers; ``loss = "sum"`` in ``l2o.training``).

The MIMO weighted sum-rate setting of ``l2o.problems.mimo.channel`` (K cells, I users per
cell, M transmit and N receive antennas, d streams). Layer t keeps WMMSE's closed-form
receivers and weights (Shi et al., IEEE TSP 2011),

    U_{ki} = C_{ki}^{-1} H_{ki,k} V_{ki},   W_{ki} = (I - U_{ki}^H H_{ki,k} V_{ki})^{-1},

filters the weights with a matrix polynomial (the authors' ``w_poly``; degree ``w_degree``)

    W'_{ki} = sum_{p=0}^{P} |c_p| T_p,   T_0 = I, T_1 = W, T_p = T_{p-1} W / (tr W / d),

builds the V-subproblem of WMMSE from W' and its multiplier mu_k (the exact bisection of
``channel.transmit_precoders``),

    R_k = A_k + mu_k I,   A_k = sum_{(l,j)} alpha_{lj} H_{lj,k}^H U_{lj} W'_{lj} U_{lj}^H H_{lj,k},
    B_{ki} = alpha_{ki} H_{ki,k}^H U_{ki} W'_{ki}                      (M x d),

and replaces V_{ki} = R_k^{-1} B_{ki} by a graph convolution whose graph shift operator is
R_k (a graph over the M transmit antennas of BS k, weighted by R_k) and whose graph
signals are the d columns b of B_{ki}, with F = ``channels`` feature channels:

    Z   = (R_k^{-1} b) theta_ar^T + (R_k b) theta_ma^T + b theta_dl^T + s_k 1 beta^T    (M x F, complex)
    v   = crelu(Z) rho                     (crelu: ReLU on the real and imaginary parts)
    V_{ki} <- V_{ki} min(1, sqrt(P_k / sum_i ||V_{ki}||_F^2))   (per cell: projection onto the budget)

theta_ar, theta_ma, theta_dl, beta, rho in C^F and c in R^{P+1} are the layer's
parameters (complex numbers stored as real pairs), s_k = sqrt(P_k / (I d)) scales the bias
to the budget. Every parameter is shared by all users, streams, cells and instances, so one
set of weights runs for any K, I, M, N, d (transfer across the number of users and cells,
``tests/learned/test_gcn_wmmse.py``): the model has 5 F + P + 1 complex-or-real numbers per
layer (25 at the defaults).

What follows the paper and the authors' code: the structure above (AR, MA and diagonal
loading taps of the graph filter, complex ReLU, recombination, the W polynomial with
|c| and the trace normalization above degree 1, exact U, W and mu, the per-BS power
clamp), the defaults of the authors' example configuration (7 layers, separate
parameters per layer, F = 4, degree 4, AR + diagonal loading + bias, no MA) and their
random initialization (``init="random"``: taps CN(0, 1) / sqrt(F + 1), c = 1 / (P + 1),
bias 0). Reconstructed or simplified: the bias is scaled by the fixed s_k (the authors
normalize it by a running mean of the same quantity); the authors' optional bypass
connection between the layers' pre-activations and their removal of "bad" training samples
are left out; the default initialization ``init="wmmse"`` (below) is ours.

Neutral values: theta_ar = (1, -1, 0, ..), rho = (1, -1, 0, ..), theta_ma = theta_dl =
beta = 0, c = (0, 1, 0, ..) make the layer exactly one WMMSE iteration, since crelu(z) -
crelu(-z) = z and the WMMSE precoder meets the budget (``neutral_``; tested against
``l2o.optimizers.WMMSE`` in float64). ``init="wmmse"`` starts there plus ``init_noise``
times CN(0, 1) on every parameter (so that every weight, also of the unused channels,
gets a meta-gradient): the untrained model is truncated WMMSE, to ~1e-2.

How ``gnn_wmmse`` relates: both unroll WMMSE with separate parameters per layer, run
exact WMMSE after the horizon (``tail="wmmse"``) and transfer across K, I, M, N, d.
GCN-WMMSE keeps WMMSE's multiplier mu and learns a per-layer graph filter over the
antennas that replaces R^{-1} (the same 25 numbers for every user); ``gnn_wmmse`` keeps
the inverse (a Cholesky solve) but predicts, with a message-passing GNN over the users'
interference graph, the multiplier per cell and a relaxation, momentum and power tilt per
user, and uses every budget in full. The INFOCOM loss (sum of the sum-rates over the
layers) is ``loss = "sum"``; ``gnn_wmmse``'s example config trains with the
layer-weighted mean (``loss = "weighted"``).

Beyond the horizon (``tail``): ``"wmmse"`` (default) runs exact WMMSE iterations
(monotone from where the layers left the iterate), ``"last"`` the last layer again.
``init`` projects the start onto the budgets and replaces all-zero cells by MRT (V = 0 is a
degenerate fixed point of WMMSE). Every iterate meets the budgets. Parameters are float32
by default; the layer runs in the problem's dtype (complex128 for float64 problems).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from l2o.learned.unrolled_wmmse import UnrolledWMMSE, UnrolledWMMSEState, check_tail
from l2o.problems.mimo.channel import (
    mmse_receivers,
    transmit_covariance,
    transmit_precoders,
)
from l2o.problems.mimo.instances import MimoInstances

INITS = ("wmmse", "random")


def crelu(z: Tensor) -> Tensor:
    """Complex ReLU (complexPyTorch's): ReLU on the real and on the imaginary part.

    >>> crelu(torch.tensor([1 - 2j, -1 + 3j]))
    tensor([1.+0.j, 0.+3.j])
    """
    return torch.complex(torch.relu(z.real), torch.relu(z.imag))


def weight_polynomial(W: Tensor, coeffs: Tensor) -> Tensor:
    """The authors' matrix polynomial of the MSE weights, ``(..., d, d)`` Hermitian positive
    definite -> ``(..., d, d)``: sum_p |c_p| T_p with T_0 = I, T_1 = W, T_p = T_{p-1} W / n,
    n = tr(W) / d (the normalization above degree 1 keeps high powers in scale).

    >>> W = torch.diag(torch.tensor([2.0, 4.0], dtype=torch.complex128))
    >>> weight_polynomial(W, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)).real.diagonal()
    tensor([2., 4.], dtype=torch.float64)
    """
    d = W.shape[-1]
    eye = torch.eye(d, dtype=W.dtype, device=W.device).expand(W.shape)
    c = coeffs.abs().to(W.real.dtype)
    norm = (torch.diagonal(W, dim1=-2, dim2=-1).real.sum(-1) / d).to(W.dtype)[..., None, None]
    out = c[0].to(W.dtype) * eye
    term = eye
    for p in range(1, c.shape[0]):
        term = term @ (W if p == 1 else W / norm)
        out = out + c[p].to(W.dtype) * term
    return out


def _complex(p: Tensor, ctype: torch.dtype) -> Tensor:
    """A ``(..., 2)`` real parameter as a complex tensor of dtype ``ctype`` (complex64 or complex128)."""
    real = torch.float64 if ctype == torch.complex128 else torch.float32
    return torch.view_as_complex(p.to(real).contiguous())


class GCNWMMSELayer(nn.Module):
    """The parameters of one unrolled layer (complex taps as ``(F, 2)`` real pairs; ``w_poly`` the
    ``degree + 1`` real coefficients of the weight polynomial).

    >>> layer = GCNWMMSELayer(channels=4, w_degree=4, ma=False, diagload=True, bias=True)
    >>> [tuple(t.shape) for t in layer.taps()], tuple(layer.w_poly.shape)
    ([(4, 2), (4, 2), (4, 2), (4, 2)], (5,))
    """

    def __init__(self, channels: int, w_degree: int, ma: bool, diagload: bool, bias: bool):
        super().__init__()
        self.theta_ar = nn.Parameter(torch.zeros(channels, 2))
        self.theta_ma = nn.Parameter(torch.zeros(channels, 2)) if ma else None
        self.theta_dl = nn.Parameter(torch.zeros(channels, 2)) if diagload else None
        self.beta = nn.Parameter(torch.zeros(channels, 2)) if bias else None
        self.rho = nn.Parameter(torch.zeros(channels, 2))
        self.w_poly = nn.Parameter(torch.zeros(w_degree + 1)) if w_degree > 0 else None

    def taps(self) -> list[Tensor]:
        return [t for t in (self.theta_ar, self.theta_ma, self.theta_dl, self.beta, self.rho) if t is not None]


#: The state: the shared unrolled-WMMSE state (packed precoders x, iterations done k).
GCNWMMSEState = UnrolledWMMSEState


class GCNWMMSE(UnrolledWMMSE):
    """GCN-WMMSE (Schynol and Pesavento, IEEE JSAC 2023): unrolled WMMSE whose V-update is a
    learned graph filter with the V-subproblem matrix as graph shift operator; see the
    module docstring. MIMO sum-rate family only; any K, I, M, N, d.

    Args:
        horizon: number of unrolled layers (each with its own parameters; INFOCOM 2024: 7).
        channels: F, feature channels of the graph filter (>= 2).
        w_degree: degree of the polynomial filter of the MSE weights (0: W unchanged).
        ma: the moving-average tap R_k b.
        diagload: the diagonal-loading tap b.
        bias: the bias tap s_k beta.
        init: ``"wmmse"`` (neutral values plus ``init_noise`` CN(0, 1): truncated WMMSE) or
            ``"random"`` (the authors' initialization).
        init_noise: scale of the perturbation of ``init="wmmse"``.
        tail: after the horizon, ``"wmmse"`` (exact WMMSE iterations) or ``"last"``.
        seed: of the initial weights.

    Example (the neutral layers are WMMSE iterations; the untrained model is close to them):
        >>> import torch, l2o
        >>> from l2o.problems import MimoFamily
        >>> problem = MimoFamily(cells=2, users=2, tx_antennas=4, rx_antennas=2, streams=1).sample(3, generator=0)
        >>> solver = l2o.learned.GCNWMMSE(horizon=3)
        >>> x0 = problem.initial_point()  # MRT
        >>> with torch.no_grad():
        ...     state = solver.init(problem, x0)
        ...     for _ in range(3):
        ...         state = solver.step(problem, state)
        >>> bool((problem.sum_rate(state.x) > problem.sum_rate(x0)).all())
        True
        >>> bool((problem.power(state.x) <= problem.budget * (1 + 1e-9)).all())  # budgets met
        True
    """

    name = "gcn_wmmse"
    handles_nonsmooth = True

    def __init__(self, horizon: int = 7, channels: int = 4, w_degree: int = 4, ma: bool = False,
                 diagload: bool = True, bias: bool = True, init: str = "wmmse", init_noise: float = 1e-2,
                 tail: str = "wmmse", seed: int = 0):
        super().__init__(horizon=horizon, channels=channels, w_degree=w_degree, ma=ma, diagload=diagload, bias=bias,
                         init=init, init_noise=init_noise, tail=tail, seed=seed)
        if not (isinstance(channels, int) and channels >= 2):
            raise ValueError(f"{self.name}: channels must be an integer >= 2, got {channels!r}")
        if not (isinstance(w_degree, int) and w_degree >= 0):
            raise ValueError(f"{self.name}: w_degree must be an integer >= 0, got {w_degree!r}")
        if init not in INITS:
            raise ValueError(f"{self.name}: init must be one of {', '.join(map(repr, INITS))}, got {init!r}")
        if not (math.isfinite(init_noise) and init_noise >= 0):
            raise ValueError(f"{self.name}: init_noise must be a number >= 0, got {init_noise!r}")
        check_tail(self.name, tail)
        self.channels, self.w_degree, self.tail = channels, w_degree, tail
        self.layers = nn.ModuleList(GCNWMMSELayer(channels, w_degree, bool(ma), bool(diagload), bool(bias))
                                    for _ in range(horizon))
        self.reset_parameters(init, init_noise, seed)

    @torch.no_grad()
    def neutral_(self) -> GCNWMMSE:
        """Set every layer to its neutral values (each layer is then one WMMSE iteration); returns self."""
        for layer in self.layers:
            for t in layer.taps():
                t.zero_()
            layer.theta_ar[:2, 0] = torch.tensor([1.0, -1.0])
            layer.rho[:2, 0] = torch.tensor([1.0, -1.0])
            if layer.w_poly is not None:
                layer.w_poly.zero_()
                layer.w_poly[1] = 1.0
        return self

    @torch.no_grad()
    def reset_parameters(self, init: str = "wmmse", init_noise: float = 1e-2, seed: int = 0) -> None:
        """``init="wmmse"``: ``neutral_`` plus ``init_noise`` CN(0, 1) (real N(0, 1) on c);
        ``"random"``: taps CN(0, 1) / sqrt(F + 1), bias 0, c = 1 / (degree + 1). Drawn from ``seed``."""
        g = torch.Generator().manual_seed(seed)
        F = self.channels
        if init == "wmmse":
            self.neutral_()
        for layer in self.layers:
            for t in layer.taps() + ([layer.w_poly] if layer.w_poly is not None else []):
                noise = torch.randn(t.shape, generator=g, dtype=torch.float64)
                if init == "wmmse":
                    t.add_((init_noise * noise / (math.sqrt(2) if t.ndim == 2 else 1.0)).to(t.dtype))
                elif t is layer.w_poly:
                    t.fill_(1.0 / t.shape[0])
                elif t is layer.beta:
                    t.zero_()
                else:  # CN(0, 1) / sqrt(F + 1): real and imaginary parts N(0, 1/2)
                    t.copy_(noise / math.sqrt(2 * (F + 1)))

    def layer_step(self, layer: GCNWMMSELayer, problem: MimoInstances, V: Tensor) -> Tensor:
        """One unrolled layer: precoders ``(B, K, I, M, d)`` -> the next ones (same shape)."""
        B, K, I, M, d = V.shape
        ctype = V.dtype
        U, W = mmse_receivers(problem.H, V, problem.noise)
        if layer.w_poly is not None:
            W = weight_polynomial(W, layer.w_poly.to(V.real.dtype))
        A, Bm = transmit_covariance(problem.H, U, W, problem.weights)
        target, mu = transmit_precoders(A, Bm, problem.budget)  # R^{-1} b, exact mu
        Z = target.unsqueeze(-1) * _complex(layer.theta_ar, ctype)
        if layer.theta_ma is not None:
            RB = A.unsqueeze(2) @ Bm + mu.to(ctype)[..., None, None, None] * Bm
            Z = Z + RB.unsqueeze(-1) * _complex(layer.theta_ma, ctype)
        if layer.theta_dl is not None:
            Z = Z + Bm.unsqueeze(-1) * _complex(layer.theta_dl, ctype)
        if layer.beta is not None:
            scale = (problem.budget.to(V.real.dtype) / (I * d)).sqrt().to(ctype)
            Z = Z + scale[:, :, None, None, None, None] * _complex(layer.beta, ctype)
        V_new = (crelu(Z) * _complex(layer.rho, ctype)).sum(-1)
        power = V_new.abs().square().sum((-3, -2, -1))  # (B, K)
        budget = problem.budget.to(power.dtype)
        over = power > budget
        shrink = torch.where(over, (budget / torch.where(over, power, budget)).sqrt(), torch.ones_like(power))
        return V_new * shrink.to(ctype)[..., None, None, None]
