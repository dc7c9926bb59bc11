"""LISTA and ALISTA: unrolled ISTA with learned layers, for LASSO with a fixed dictionary.

* LISTA (Gregor and LeCun, *Learning Fast Approximations of Sparse Coding*, ICML 2010),
  untied layers k = 0..K-1:

      x^{k+1} = eta_{theta^k}(W1^k b + W2^k x^k),

  initialized W1 = A^T / L, W2 = I - A^T A / L, theta = lam / L (L = ||A||_2^2), so the
  untrained network is ISTA exactly.
* ALISTA (Liu, Chen, Wang, Yin, *ALISTA: Analytic Weights Are As Good As Learned
  Weights in LISTA*, ICLR 2019): only a step gamma^k and a threshold theta^k per layer
  are learned,

      x^{k+1} = eta_{theta^k}(x^k - gamma^k W^T (A x^k - b)),

  with W computed once from A (``weight="analytic"``) as the minimizer of the
  generalized coherence ||W^T A||_F subject to w_i^T a_i = 1 for every column i. The
  problem separates by column (min w^T A A^T w s.t. a_i^T w = 1), and its closed form

      w_i = (A A^T)^+ a_i / (a_i^T (A A^T)^+ a_i)

  is used here (the paper solves it by projected gradient descent; the closed form is
  its exact solution). ``weight="A"`` uses W = A instead (then gamma = 1/L,
  theta = lam/L is ISTA). Defaults: gamma^k = 1 / ||W^T A||_2 (= 1/L for W = A) and
  theta^k = lam gamma^k.
* Support selection (Chen, Liu, Wang, Yin, *Theoretical Linear Convergence of Unfolded
  ISTA*, NeurIPS 2018; used by ALISTA), optional and off by default: at layer k the
  largest p^k percent of entries by magnitude (those also above theta^k) pass
  unthresholded, p^k = min((k + 1) p, p_max) with p = 1.2 and p_max = 13 (percent), as
  in the LISTA-CPSS code; the count is floor(p^k n / 100).

Both are tied to the dictionary A (a buffer saved with the weights) and to n: they
refuse problems that are not least squares with a shared matrix equal to A. The
number of layers is ``horizon`` (16 by default, the papers' depth); beyond it
(k >= horizon) the last layer's parameters are reused. ``lam`` only sets the initial
thresholds (the learned thresholds do not read the problem's lam).

Loading: ``hparams`` holds m, n, lam and the other constructor arguments, not A. A
loader calls ``type(model)(**hparams)`` (A = zeros, all weights zero) or
``type(model)(A=A, **hparams)`` and then ``load_state_dict`` (which restores A and,
for ALISTA, W). Parameters are created in ``dtype`` (default: torch's default dtype);
for an exact float64 model pass ``dtype=torch.float64`` rather than calling
``.double()`` on a float32 one (which keeps the float32 rounding of A and the weights).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from l2o.learned.base import LearnedOptimizer
from l2o.problems.base import Instances
from l2o.problems.family import ProblemFamily
from l2o.problems.lasso import LeastSquaresInstances
from l2o.problems.parts import soft_threshold, spectral_norm_squared

#: Where LISTA / ALISTA take their dictionary from: an ``(m, n)`` tensor, a family with a shared
#: dictionary (``LassoFamily(shared_matrix=True)``) or a batch with one shared matrix.
Dictionary = Tensor | ProblemFamily | LeastSquaresInstances


@dataclasses.dataclass
class UnrolledState:
    """x: ``(B, n)`` iterate; k: layers applied so far (layer min(k, K-1) is next)."""

    x: Tensor
    k: int = 0


def shrink(v: Tensor, theta: Tensor, percent: float = 0.0) -> Tensor:
    """Soft-thresholding eta_theta(v), with support selection when ``percent`` > 0:
    the largest ``percent`` % of each row by magnitude (and above theta) pass unchanged."""
    out = soft_threshold(v, theta)
    count = int(percent * v.shape[-1] / 100.0)
    if count == 0:
        return out
    a = v.abs()
    kth = torch.topk(a, count, dim=-1).values[..., -1:]
    return torch.where((a >= kth) & (a > theta), v, out)


def analytic_weight(A: Tensor) -> Tensor:
    """ALISTA's W ``(m, n)``: argmin ||W^T A||_F s.t. diag(W^T A) = 1 (closed form, float64)."""
    A = A.to(torch.float64)
    Y = torch.linalg.pinv(A @ A.mT, hermitian=True) @ A
    scale = (A * Y).sum(0)
    if bool((scale <= 0).any()):
        raise ValueError("alista: the dictionary A has a zero column; diag(W^T A) = 1 is infeasible")
    return Y / scale


def _dictionary(
    A: Dictionary | None, m: int | None, n: int | None, lam: float | None, name: str
) -> tuple[Tensor | None, int, int, float]:
    """Resolve (A float64 or None, m, n, lam) from a tensor, a family or a batch."""
    if A is not None and not isinstance(A, Tensor):
        if hasattr(A, "dictionary") and getattr(A, "shared_matrix", False):  # a LassoFamily
            lam = A.lam if lam is None else lam
            A = A.dictionary()
        elif isinstance(A, LeastSquaresInstances) and A.shared_matrix:
            A = A.A
        else:
            got = (f"a {A.problem_kind} problem without one shared matrix" if hasattr(A, "problem_kind")
                   else f"the family {A.name!r} without a shared dictionary" if hasattr(A, "sample")
                   else type(A).__name__)
            raise ValueError(f"{name}: A must be an (m, n) tensor or a family with a shared dictionary, got {got}")
    if A is not None:
        if A.ndim != 2:
            raise ValueError(f"{name}: A must be one shared (m, n) dictionary, got shape {tuple(A.shape)}")
        if (m is not None and m != A.shape[0]) or (n is not None and n != A.shape[1]):
            raise ValueError(f"{name}: A has shape {tuple(A.shape)} but m={m}, n={n} were given")
        m, n = A.shape
        A = A.detach().to(torch.float64)
    elif m is None or n is None:
        raise ValueError(f"{name}: pass the dictionary A, or its sizes m and n (then load_state_dict)")
    return A, int(m), int(n), float(0.1 if lam is None else lam)


class _Unrolled(LearnedOptimizer):
    """Shared by LISTA and ALISTA: the dictionary buffer, the problem check, the layers."""

    template = "ista"

    def _setup(self, A: Tensor | None, m: int, n: int, dtype) -> torch.dtype:
        """Register the dictionary buffer; returns the parameter dtype."""
        dtype = dtype or torch.get_default_dtype()
        self.register_buffer("A", torch.zeros(m, n, dtype=dtype) if A is None else A.to(dtype))
        self.num_layers = self.horizon
        return dtype

    def check_problem(self, problem: Instances) -> None:
        super().check_problem(problem)
        if not isinstance(problem, LeastSquaresInstances) or not problem.shared_matrix:
            raise ValueError(
                f"solver '{self.name}' is tied to one dictionary A and needs least-squares / LASSO instances "
                f"with that shared (m, n) matrix; got a {getattr(problem, 'problem_kind', 'custom')} problem"
                + ("" if not isinstance(problem, LeastSquaresInstances) else " with one matrix per instance")
            )
        if tuple(problem.A.shape) != tuple(self.A.shape):
            raise ValueError(
                f"solver '{self.name}': problem A has shape {tuple(problem.A.shape)}, model A {tuple(self.A.shape)}"
            )
        # float32 resolution at least: a model built in float32 and then ``.double()``d
        # holds the float32 rounding of A
        eps = max(torch.finfo(problem.A.dtype).eps, torch.finfo(self.A.dtype).eps, torch.finfo(torch.float32).eps)
        A_prob, A_self = problem.A.to(torch.float64), self.A.to(device=problem.A.device, dtype=torch.float64)
        if float((A_prob - A_self).abs().max()) > 4 * eps * (1.0 + float(A_self.abs().max())):
            raise ValueError(
                f"solver '{self.name}': the problem's dictionary A differs from the one the model was built for"
            )

    def layer(self, k: int) -> int:
        return min(k, self.num_layers - 1)

    def percent(self, k: int) -> float:
        if not self.support_selection:
            return 0.0
        return min((self.layer(k) + 1) * self.ss_percent, self.ss_max_percent)

    def init(self, problem: Instances, x0: Tensor) -> UnrolledState:
        self.check_problem(problem)
        return UnrolledState(x=x0.clone(), k=0)


class LISTA(_Unrolled):
    """LISTA with untied layers (Gregor and LeCun 2010); see the module docstring.

    Args:
        A: the dictionary, an ``(m, n)`` tensor, a ``LassoFamily`` with a shared
            dictionary (then ``lam`` defaults to the family's) or a batch with a shared
            A; None for a zero placeholder (then ``load_state_dict``).
        m, n: sizes (checked against A; required without A).
        lam: the LASSO weight that sets the initial thresholds lam / L (0.1).
        horizon: number of layers K (16).
        support_selection, ss_percent, ss_max_percent: see the module docstring.
        dtype: of the parameters and buffers (not an hparam).

    Example (untrained, the K layers are K ISTA steps):
        >>> import torch, l2o
        >>> family = l2o.LassoFamily(m=20, n=40, nnz=3)  # a shared dictionary
        >>> problem = family.sample(8, generator=0)
        >>> def iterate(solver, k):
        ...     state = solver.init(problem, problem.initial_point())
        ...     for _ in range(k):
        ...         state = solver.step(problem, state)
        ...     return state.x
        >>> solver = l2o.learned.LISTA(family, horizon=16, dtype=torch.float64)
        >>> bool(torch.allclose(iterate(solver, 16), iterate(l2o.optimizers.ISTA(), 16), atol=1e-12))
        True
    """

    name = "lista"

    def __init__(
        self, A: Dictionary | None = None, m: int | None = None,
        n: int | None = None, lam: float | None = None, horizon: int = 16, support_selection: bool = False,
        ss_percent: float = 1.2, ss_max_percent: float = 13.0, dtype: torch.dtype | None = None,
    ):
        A, m, n, lam = _dictionary(A, m, n, lam, self.name)
        super().__init__(horizon=horizon, m=m, n=n, lam=lam, support_selection=support_selection,
                         ss_percent=ss_percent, ss_max_percent=ss_max_percent)
        self.support_selection, self.ss_percent, self.ss_max_percent = support_selection, ss_percent, ss_max_percent
        dtype = self._setup(A, m, n, dtype)
        K = self.num_layers
        W1 = torch.zeros(K, n, m, dtype=torch.float64)
        W2 = torch.zeros(K, n, n, dtype=torch.float64)
        theta = torch.zeros(K, dtype=torch.float64)
        if A is not None:
            L = spectral_norm_squared(A)
            W1[:] = A.mT / L
            W2[:] = torch.eye(n, dtype=torch.float64) - A.mT @ A / L
            theta[:] = lam / L
        self.W1 = nn.Parameter(W1.to(dtype))
        self.W2 = nn.Parameter(W2.to(dtype))
        self.theta = nn.Parameter(theta.to(dtype))

    def step(self, problem: Instances, state: UnrolledState) -> UnrolledState:
        x, k = state.x, self.layer(state.k)
        v = problem.b @ self.W1[k].to(x).mT + x @ self.W2[k].to(x).mT
        return UnrolledState(x=shrink(v, self.theta[k].to(x), self.percent(state.k)), k=state.k + 1)


class ALISTA(_Unrolled):
    """ALISTA (Liu, Chen, Wang, Yin, ICLR 2019); see the module docstring.

    Args:
        A, m, n, lam, horizon, support_selection, ss_percent, ss_max_percent, dtype: as
            for ``LISTA``.
        weight: "analytic" (coherence-minimizing W) or "A" (W = A).
        gamma, theta: initial step and threshold of every layer (defaults
            1 / ||W^T A||_2 and lam * gamma).

    Example (untrained, analytic W: 16 layers cut the relative gap by more than 10x):
        >>> import torch, l2o
        >>> family = l2o.LassoFamily(m=20, n=40, nnz=3)
        >>> problem = family.sample(8, generator=0)
        >>> solver = l2o.learned.ALISTA(family, horizon=16, dtype=torch.float64)
        >>> traj = l2o.run(solver, problem, max_iter=16)  # gaps against l2o.reference(problem)
        >>> bool((traj.gap[-1] < traj.gap[0] / 10).all())
        True
    """

    name = "alista"

    def __init__(
        self, A: Dictionary | None = None, m: int | None = None,
        n: int | None = None, lam: float | None = None, weight: str = "analytic", gamma: float | None = None,
        theta: float | None = None, horizon: int = 16, support_selection: bool = False, ss_percent: float = 1.2,
        ss_max_percent: float = 13.0, dtype: torch.dtype | None = None,
    ):
        if weight not in ("analytic", "A"):
            raise ValueError(f"alista: weight must be 'analytic' or 'A', got {weight!r}")
        A, m, n, lam = _dictionary(A, m, n, lam, self.name)
        super().__init__(horizon=horizon, m=m, n=n, lam=lam, weight=weight, gamma=gamma, theta=theta,
                         support_selection=support_selection, ss_percent=ss_percent, ss_max_percent=ss_max_percent)
        self.support_selection, self.ss_percent, self.ss_max_percent = support_selection, ss_percent, ss_max_percent
        dtype = self._setup(A, m, n, dtype)
        W = torch.zeros(m, n, dtype=torch.float64)
        g0 = 0.0 if gamma is None else float(gamma)
        if A is not None:
            W = A.clone() if weight == "A" else analytic_weight(A)
            if gamma is None:
                g0 = 1.0 / float(spectral_norm_squared(A) if weight == "A" else torch.linalg.matrix_norm(W.mT @ A, 2))
        t0 = lam * g0 if theta is None else float(theta)
        self.register_buffer("W", W.to(dtype))
        self.gamma = nn.Parameter(torch.full((self.num_layers,), g0, dtype=torch.float64).to(dtype))
        self.theta = nn.Parameter(torch.full((self.num_layers,), t0, dtype=torch.float64).to(dtype))

    def step(self, problem: Instances, state: UnrolledState) -> UnrolledState:
        x, k = state.x, self.layer(state.k)
        v = x - self.gamma[k].to(x) * (problem.residual(x) @ self.W.to(x))
        return UnrolledState(x=shrink(v, self.theta[k].to(x), self.percent(state.k)), k=state.k + 1)
