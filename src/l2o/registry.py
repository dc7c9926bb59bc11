"""Names for families, presets and solvers, so that configs and the CLI can name them.

One registry of solvers, classical and learned alike: ``SOLVERS`` maps each solver's
``name`` (its class attribute) to a ``SolverEntry`` (class, one-line description,
``learned``); ``CLASSICAL`` and ``LEARNED`` are the two views, ``is_learned(name)`` tells
them apart and ``make_solver(name, **kwargs)`` builds either kind (a learned solver
untrained: weights come from a run directory, ``l2o.training.load_run``).

What a solver accepts is declared by the solver (``Optimizer.skip(problem)``), and what a
family uses by default by the family (``ProblemFamily.default_solver``, ``baselines``,
``fallback``, ``file_format``), not by tables here.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from l2o.learned.base import LearnedOptimizer
from l2o.learned.blackbox import L2ODM, RNNprop
from l2o.learned.gnn_wmmse import GNNWMMSE
from l2o.learned.go_math_l2o import GOMathL2O
from l2o.learned.lfista import LFISTA
from l2o.learned.lgd import LGD
from l2o.learned.lista import ALISTA, LISTA
from l2o.learned.lqn import LQN
from l2o.learned.math_l2o import MathL2O
from l2o.optimizers.adam import Adam
from l2o.optimizers.base import Optimizer
from l2o.optimizers.bfgs import BFGS, BFGSWolfe
from l2o.optimizers.fista import (
    FISTA,
    ISTA,
    AcceleratedProjectedGradient,
    FISTAPolish,
    FISTARestart,
    Nesterov,
    ProjectedGradient,
)
from l2o.optimizers.gradient import GradientDescent, HeavyBall, NesterovStronglyConvex
from l2o.optimizers.hypergradient import HypergradientDescent, HypergradientDescentCoord
from l2o.optimizers.quasi_newton import LBFGS, Newton
from l2o.optimizers.wmmse import MRT, WMMSE, RegularizedZeroForcing, ZeroForcing
from l2o.problems import (
    DatasetLogisticFamily,
    LassoFamily,
    LeastSquaresFamily,
    LogisticFamily,
    LogSumExpFamily,
    MimoFamily,
    ProblemFamily,
    QuadraticFamily,
)


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered family: its class and a one-line description."""

    factory: Callable[..., Any]
    description: str


@dataclasses.dataclass(frozen=True)
class SolverEntry:
    """A registered solver: its class (``factory(**kwargs)`` builds one), a one-line
    description and whether it is learned (an ``nn.Module`` trained by ``l2o train``)."""

    factory: type[Optimizer]
    description: str
    learned: bool = False


FAMILIES: dict[str, Entry] = {
    "quadratic": Entry(QuadraticFamily, "convex QP 1/2 x'Qx + q'x, optional box; conditioning, shared or per-instance Q"),
    "least_squares": Entry(LeastSquaresFamily, "1/2||Wx - y||^2, W Gaussian with unit columns (NeurIPS 2025 QP form)"),
    "lasso": Entry(LassoFamily, "1/2||Ax - b||^2 + lam||x||_1, A shared or per instance"),
    "logistic": Entry(LogisticFamily, "sparse (l1) or ridge (l2) logistic regression on synthetic Gaussian data"),
    "logistic_dataset": Entry(DatasetLogisticFamily, "logistic regression on subsamples of scikit-learn's bundled datasets"),
    "logsumexp": Entry(LogSumExpFamily, "regularized log-sum-exp mu log sum exp((Ax-b)/mu) + reg/2 ||x||^2"),
    "mimo": Entry(MimoFamily, "multi-cell multi-user MIMO weighted sum-rate (max via WMMSE), per-BS power budgets"),
}

PRESETS: dict[str, tuple[ProblemFamily, str]] = {
    **{
        f"ls_{d}x{m}": (LeastSquaresFamily(d=d, m=m), f"NeurIPS 2025 least squares, d={d}, m={m}")
        for d, m in [(32, 25), (64, 50), (128, 100), (256, 200), (512, 400)]
    },
    "lasso_250x500": (LassoFamily(), "ICML 2023 / CVPR 2024 LASSO: A 250x500 shared, 50 nonzeros, lam=0.1"),
    "logistic_1000x50": (LogisticFamily(), "CVPR 2024 sparse logistic: 1000x50 Gaussian, 20 nonzeros, lam=0.1"),
    "logistic_breast_cancer": (
        DatasetLogisticFamily(dataset="breast_cancer"),
        "l1 logistic on 80% subsamples of breast cancer (standardized), lam=0.01",
    ),
    "logistic_digits": (DatasetLogisticFamily(dataset="digits"), "l1 logistic on 80% subsamples of digits (>=5 vs <5)"),
    "box_qp_100": (
        QuadraticFamily(n=100, condition_number=370.0, box=0.1),
        "box-constrained QP, n=100, shared Q (kappa=370), [-0.1, 0.1]^n",
    ),
    "qp_100": (QuadraticFamily(n=100, condition_number=100.0), "unconstrained QP, n=100, shared Q (kappa=100)"),
    **{
        f"logsumexp_{n}": (LogSumExpFamily(n=n, m=4 * n),
                           f"log-sum-exp, n={n}, m={4 * n}, mu=0.5, reg=1e-3 (quasi-Newton task)")
        for n in (100, 500, 1000)
    },
    **{
        f"logistic_l2_{d}": (
            LogisticFamily(n_samples=2 * d, d=d, nnz=d // 10, lam=1.0 / (2 * d), penalty="l2", noise_std=0.5),
            f"ridge logistic, {2 * d}x{d} Gaussian, lam=1/N, label noise 0.5 (quasi-Newton task)",
        )
        for d in (100, 500, 1000)
    },
    **{
        f"ls_{d}x{2 * d}": (LeastSquaresFamily(d=d, m=2 * d, noise_std=0.1),
                            f"overdetermined least squares, d={d}, m={2 * d}, noise 0.1 (quasi-Newton task)")
        for d in (100, 500, 1000)
    },
    "mimo_small": (
        MimoFamily(cells=3, users=2, tx_antennas=4, rx_antennas=2, streams=2, power=10.0, noise=1.0),
        "MIMO sum-rate: 3 cells x 2 users, M=4, N=2, d=2, P=10, sigma^2=1, Rayleigh",
    ),
    "mimo_medium": (
        MimoFamily(cells=3, users=4, tx_antennas=8, rx_antennas=2, streams=2, power=10.0, noise=1.0),
        "MIMO sum-rate: 3 cells x 4 users, M=8, N=2, d=2, P=10, sigma^2=1, Rayleigh",
    ),
    "mimo_single_cell_30": (
        MimoFamily(cells=1, users=30, tx_antennas=64, rx_antennas=2, streams=2, power=100.0, noise=1.0),
        "MIMO sum-rate, deep-unfolding setting: 1 cell, 30 users, M=64, N=2, d=2, P=100, sigma^2=1, Rayleigh",
    ),
}

#: Classical solvers, in the order ``l2o list`` shows them.
_CLASSICAL: tuple[tuple[type[Optimizer], str], ...] = (
    (GradientDescent, "gradient descent, step 1/L (smooth problems)"),
    (Nesterov, "Nesterov's accelerated gradient, convex variant (smooth problems)"),
    (NesterovStronglyConvex, "accelerated gradient, strongly convex variant (needs mu > 0)"),
    (HeavyBall, "Polyak's heavy ball (smooth problems)"),
    (Adam, "Adam, proximal for composite problems (lr=1e-2)"),
    (ISTA, "proximal gradient (ISTA), step 1/L"),
    (ProjectedGradient, "projected gradient (ISTA with a box projection)"),
    (FISTA, "FISTA (accelerated proximal gradient)"),
    (FISTARestart, "FISTA with adaptive gradient restart (O'Donoghue-Candes)"),
    (FISTAPolish, "FISTA with restart and active-set polishing (exact on LASSO / box QP)"),
    (AcceleratedProjectedGradient, "accelerated projected gradient with restart (boxes)"),
    (LBFGS, "L-BFGS (memory 10) with Armijo line search (smooth problems)"),
    (BFGS, "dense BFGS with backtracking (Armijo) line search from t = 1 (smooth problems, n <= 4096)"),
    (BFGSWolfe, "dense BFGS with a strong-Wolfe line search, as SciPy's (smooth problems, n <= 4096)"),
    (HypergradientDescent, "hypergradient descent: GD with an online-adapted step (Baydin et al. 2018)"),
    (HypergradientDescentCoord, "hypergradient descent with one adapted step per coordinate"),
    (Newton, "damped Newton with Armijo line search (cheap Hessian: QP, l2 logistic)"),
    (WMMSE, "WMMSE (Shi et al. 2011), batched; MIMO sum-rate only"),
    (MRT, "maximum-ratio (eigen-)beamforming, full power (fixed precoder); MIMO only"),
    (ZeroForcing, "zero-forcing on effective channels, needs M >= I d (fixed precoder); MIMO only"),
    (RegularizedZeroForcing, "regularized ZF, reg = sigma^2 I d / P (fixed precoder); MIMO only"),
)

#: Learned solvers (``l2o train`` fits them; ``make_solver`` builds them untrained).
_LEARNED: tuple[tuple[type[LearnedOptimizer], str], ...] = (
    (LGD, "learned gradient descent: per-coordinate step multipliers (NeurIPS 2025; smooth problems)"),
    (MathL2O, "Math-L2O: learned proximal gradient with preconditioner and momentum (ICML 2023)"),
    (GOMathL2O, "GO-Math-L2O: Math-L2O on gradient-only features (CVPR 2024)"),
    (LISTA, "LISTA: unrolled ISTA with untied learned layers (LASSO, one shared dictionary)"),
    (ALISTA, "ALISTA: unrolled ISTA with an analytic weight, learned steps and thresholds (ICLR 2019)"),
    (L2ODM, "L2O-DM: coordinatewise LSTM on the preprocessed gradient (NeurIPS 2016)"),
    (RNNprop, "RNNprop: coordinatewise LSTM on Adam-normalized gradients (ICML 2017)"),
    (LFISTA, "LFISTA: FISTA with restart and learned per-iteration step, threshold and momentum"),
    (GNNWMMSE, "GNN-WMMSE: unrolled WMMSE steered by a graph neural network; MIMO sum-rate only"),
    (LQN, "LQN: BFGS with learned coordinate-wise step sizes in a descent-safe interval (arXiv 2412.00059)"),
)

#: Every solver, classical then learned: name -> entry.
SOLVERS: dict[str, SolverEntry] = {
    **{cls.name: SolverEntry(cls, description) for cls, description in _CLASSICAL},
    **{cls.name: SolverEntry(cls, description, learned=True) for cls, description in _LEARNED},
}
#: The classical solvers (baselines, safeguard fallbacks, ``l2o solve --solver``).
CLASSICAL: dict[str, SolverEntry] = {name: e for name, e in SOLVERS.items() if not e.learned}
#: The learned solvers (``[solver] name`` of a training config).
LEARNED: dict[str, SolverEntry] = {name: e for name, e in SOLVERS.items() if e.learned}


def is_learned(name: str) -> bool:
    """Whether ``name`` is a registered learned solver (ValueError for an unknown name)."""
    if name not in SOLVERS:
        raise _unknown("solver", name, SOLVERS)
    return SOLVERS[name].learned


def _unknown(kind: str, name: str, valid) -> ValueError:
    return ValueError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(sorted(valid))}")


def make_solver(name: str, **kwargs) -> Optimizer:
    """Instantiate a registered solver, classical or learned (untrained), by name."""
    if name not in SOLVERS:
        raise _unknown("solver", name, SOLVERS)
    return SOLVERS[name].factory(**kwargs)


def make_family(name: str, **kwargs) -> ProblemFamily:
    """A family by family name (with hyperparameters) or by preset name (with overrides)."""
    if name in PRESETS:
        return PRESETS[name][0].replace(**kwargs) if kwargs else PRESETS[name][0]
    if name in FAMILIES:
        factory = FAMILIES[name].factory
        valid = {f.name for f in dataclasses.fields(factory)}
        bad = sorted(set(kwargs) - valid)
        if bad:
            raise ValueError(f"unknown parameter(s) {bad} for family {name!r}; valid: {', '.join(sorted(valid))}")
        return factory(**kwargs)
    raise _unknown("problem", name, list(FAMILIES) + list(PRESETS))
