"""Math-L2O: learned proximal gradient with coordinatewise preconditioner and momentum.

Liu, Chen, Wang, Yin, Cai, *Towards Constituting Mathematical Structures for Learning
to Optimize*, ICML 2023 (code: github.com/xhchrn/MS4L2O). Per coordinate, a 2-layer
LSTM (hidden 20) reads (grad f(y_k), y_k) (detached), then Linear(20, 20) + ReLU and
one linear head per coefficient P, A, B, b1, b2, all ``(B, n)``:

    u_y = y_k - (c P / L) * grad f(y_k),   u_x = x_k - (c P / L) * grad f(x_k),
    x_{k+1} = prox_{(c P / L) r}(B * u_y + (1 - B) * u_x + b1),
    y_{k+1} = x_{k+1} + A * (x_{k+1} - x_k) + b2,

with c = ``step_scale`` (1 in the paper's formula; the authors' code uses 0.9999).
Variants: "P" (A = 0, B = 1, b = 0: learned diagonal step, no momentum), "PA" (the
paper's main model: B = 1, b1 = b2 = 0) and "full" (every head). Only the heads a
variant uses exist, so every parameter of the model is trained.

Head activations follow the authors' configurations (``heads``):
"lasso": P = 2 sigma, A = 2 sigma, B = 2 sigma; "logistic": P = 2 softplus,
A = 0.3 softplus, B = identity; b1 and b2 are linear in both (the code applies B's
activation to b1 by an apparent slip; we do not).

Template: with P = 1 and no momentum the update is ISTA with step c / L.
``init="template"`` (or ``template_init()``) zeroes the heads' weights and sets their
biases so that P = 1, B = 1, b1 = b2 = 0 exactly and A = act(-30) (about 2e-13 for
the sigmoid head; A cannot be exactly 0 through a sigmoid or softplus), so the "P"
variant is ISTA exactly and "PA"/"full" are ISTA up to ~1e-13 relative momentum.
(With softplus P heads, P = 1 holds up to rounding of log(expm1(0.5)).)

Choices where the paper leaves one: the LSTM state starts at zero (the code draws it
at random); the default initialization is PyTorch's, drawn from ``seed``.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from l2o.learned.base import LearnedOptimizer, seeded_default_init
from l2o.learned.coordinatewise import CoordinatewiseLSTM
from l2o.problems.base import Instances

#: head -> (activation, scale) per problem kind (the authors' configs).
HEAD_ACTIVATIONS: dict[str, dict[str, tuple[str, float]]] = {
    "lasso": {
        "P": ("sigmoid", 2.0), "A": ("sigmoid", 2.0), "B": ("sigmoid", 2.0),
        "b1": ("identity", 1.0), "b2": ("identity", 1.0),
    },
    "logistic": {
        "P": ("softplus", 2.0), "A": ("softplus", 0.3), "B": ("identity", 1.0),
        "b1": ("identity", 1.0), "b2": ("identity", 1.0),
    },
}
VARIANTS: dict[str, tuple[str, ...]] = {"P": ("P",), "PA": ("P", "A"), "full": ("P", "A", "B", "b1", "b2")}
_ACT = {"sigmoid": torch.sigmoid, "softplus": F.softplus, "identity": lambda z: z}


def _inverse_activation(kind: str, scale: float, value: float) -> float:
    """z with scale * act(z) = value (value 0 through a sigmoid or softplus: z = -30)."""
    v = value / scale
    if kind == "identity":
        return v
    if v <= 0:
        return -30.0
    return math.log(v / (1 - v)) if kind == "sigmoid" else math.log(math.expm1(v))


@dataclasses.dataclass
class MathL2OState:
    """x: ``(B, n)`` iterate x_k (a prox output); y: ``(B, n)`` extrapolated point y_k;
    h, c: ``(B, layers, hidden, n)`` LSTM states (network dtype); k: iterations done."""

    x: Tensor
    y: Tensor
    h: Tensor
    c: Tensor
    k: int = 0


class MathL2O(LearnedOptimizer):
    """Math-L2O (Liu et al., ICML 2023); see the module docstring for the update.

    Args:
        variant: "P", "PA" (the paper's main model) or "full".
        heads: head activations, "lasso" or "logistic" (``HEAD_ACTIVATIONS``).
        hidden: LSTM width (20); layers: LSTM depth (2).
        step_scale: c in the step c P / L (1.0).
        init: "default" (PyTorch's initialization drawn from ``seed``) or "template"
            (ISTA; see the module docstring).
        seed: seed of the initial weights.
        horizon: trained unroll length (100 in the paper).

    Example (``init="template"``: the "P" variant is ISTA, to rounding):
        >>> import torch, l2o
        >>> problem = l2o.LassoFamily(m=20, n=40, nnz=3).sample(8, generator=0)
        >>> def iterate(solver, k):
        ...     state = solver.init(problem, problem.initial_point())
        ...     for _ in range(k):
        ...         state = solver.step(problem, state)
        ...     return state.x
        >>> solver = l2o.learned.MathL2O(variant="P", init="template").double()
        >>> bool(torch.allclose(iterate(solver, 20), iterate(l2o.optimizers.ISTA(), 20), atol=1e-12))
        True
    """

    name = "math_l2o"
    template = "ista"

    def __init__(
        self,
        variant: str = "PA",
        heads: str = "lasso",
        hidden: int = 20,
        layers: int = 2,
        step_scale: float = 1.0,
        init: str = "default",
        seed: int = 0,
        horizon: int = 100,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"math_l2o: variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        if heads not in HEAD_ACTIVATIONS:
            raise ValueError(f"math_l2o: heads must be one of {sorted(HEAD_ACTIVATIONS)}, got {heads!r}")
        if init not in ("default", "template"):
            raise ValueError(f"math_l2o: init must be 'default' or 'template', got {init!r}")
        super().__init__(
            horizon=horizon, variant=variant, heads=heads, hidden=hidden, layers=layers,
            step_scale=step_scale, init=init, seed=seed,
        )
        self.variant = variant
        self.step_scale = step_scale
        self.activations = {h: HEAD_ACTIVATIONS[heads][h] for h in VARIANTS[variant]}
        self.lstm = CoordinatewiseLSTM(2, hidden, layers)
        self.linear = nn.Linear(hidden, hidden)
        self.heads = nn.ModuleDict({h: nn.Linear(hidden, 1) for h in VARIANTS[variant]})
        seeded_default_init(self, seed)
        if init == "template":
            self.template_init()

    @torch.no_grad()
    def template_init(self) -> None:
        """Zero the heads' weights; biases give P = 1, B = 1, b1 = b2 = 0, A ~ 0 (ISTA)."""
        target = {"P": 1.0, "A": 0.0, "B": 1.0, "b1": 0.0, "b2": 0.0}
        for h, layer in self.heads.items():
            kind, scale = self.activations[h]
            layer.weight.zero_()
            layer.bias.fill_(_inverse_activation(kind, scale, target[h]))

    def coefficients(self, y: Tensor, grad_y: Tensor, h: Tensor, c: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """The heads' values, each ``(B, n)`` in the network dtype, and the new LSTM state.

        The LSTM reads (grad f(y), y), detached; all heads are one GEMM (``CoordinatewiseLSTM``)."""
        out, h, c = self.lstm([grad_y.detach(), y.detach()], h, c, heads=list(self.heads.values()),
                              hidden_layer=self.linear)
        coef = {}
        for j, name in enumerate(self.heads):
            kind, scale = self.activations[name]
            coef[name] = scale * _ACT[kind](out[:, j])
        return coef, h, c

    def init(self, problem: Instances, x0: Tensor) -> MathL2OState:
        self.check_problem(problem)
        h, c = self.lstm.initial_state(x0.shape[0], x0.shape[1])
        return MathL2OState(x=x0.clone(), y=x0.clone(), h=h, c=c, k=0)

    def step(self, problem: Instances, state: MathL2OState) -> MathL2OState:
        x, y = state.x, state.y
        g_y = problem.grad(y)
        coef, h, c = self.coefficients(y, g_y, state.h, state.c)
        coef = {k: v.to(x) for k, v in coef.items()}
        t = (self.step_scale / problem.smoothness()).unsqueeze(-1) * coef["P"]  # (B, n)
        v = y - t * g_y
        if "B" in coef:
            u_x = x - t * problem.grad(x)
            v = coef["B"] * v + (1 - coef["B"]) * u_x + coef["b1"]
        x_new = problem.prox(v, t)
        y_new = x_new
        if "A" in coef:
            y_new = x_new + coef["A"] * (x_new - x)
        if "b2" in coef:
            y_new = y_new + coef["b2"]
        return MathL2OState(x=x_new, y=y_new, h=h, c=c, k=state.k + 1)
