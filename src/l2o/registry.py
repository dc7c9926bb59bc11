"""Names for families, presets and solvers, so that configs and the CLI can name them."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from l2o import optimizers as opt
from l2o.problems import (
    DatasetLogisticFamily,
    LassoFamily,
    LeastSquaresFamily,
    LogisticFamily,
    MimoFamily,
    ProblemFamily,
    QuadraticFamily,
)


@dataclasses.dataclass(frozen=True)
class Entry:
    factory: Callable[..., Any]
    description: str
    #: For solvers restricted to some families (WMMSE and the linear precoders: "mimo"),
    #: the family names they accept; None: any family (the generic solvers).
    families: tuple[str, ...] | None = None


FAMILIES: dict[str, Entry] = {
    "quadratic": Entry(QuadraticFamily, "convex QP 1/2 x'Qx + q'x, optional box; conditioning, shared or per-instance Q"),
    "least_squares": Entry(LeastSquaresFamily, "1/2||Wx - y||^2, W Gaussian with unit columns (NeurIPS 2025 QP form)"),
    "lasso": Entry(LassoFamily, "1/2||Ax - b||^2 + lam||x||_1, A shared or per instance"),
    "logistic": Entry(LogisticFamily, "sparse (l1) or ridge (l2) logistic regression on synthetic Gaussian data"),
    "logistic_dataset": Entry(DatasetLogisticFamily, "logistic regression on subsamples of scikit-learn's bundled datasets"),
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

SOLVERS: dict[str, Entry] = {
    "gd": Entry(opt.GradientDescent, "gradient descent, step 1/L (smooth problems)"),
    "nesterov": Entry(opt.Nesterov, "Nesterov's accelerated gradient, convex variant (smooth problems)"),
    "nesterov_sc": Entry(opt.NesterovStronglyConvex, "accelerated gradient, strongly convex variant (needs mu > 0)"),
    "heavy_ball": Entry(opt.HeavyBall, "Polyak's heavy ball (smooth problems)"),
    "adam": Entry(opt.Adam, "Adam, proximal for composite problems (lr=1e-2)"),
    "ista": Entry(opt.ISTA, "proximal gradient (ISTA), step 1/L"),
    "pgd": Entry(opt.ProjectedGradient, "projected gradient (ISTA with a box projection)"),
    "fista": Entry(opt.FISTA, "FISTA (accelerated proximal gradient)"),
    "fista_restart": Entry(opt.FISTARestart, "FISTA with adaptive gradient restart (O'Donoghue-Candes)"),
    "fista_polish": Entry(opt.FISTAPolish, "FISTA with restart and active-set polishing (exact on LASSO / box QP)"),
    "apgd": Entry(opt.AcceleratedProjectedGradient, "accelerated projected gradient with restart (boxes)"),
    "lbfgs": Entry(opt.LBFGS, "L-BFGS (memory 10) with Armijo line search (smooth problems)"),
    "newton": Entry(opt.Newton, "damped Newton with Armijo line search (cheap Hessian: QP, l2 logistic)"),
    "wmmse": Entry(opt.WMMSE, "WMMSE (Shi et al. 2011), batched; MIMO sum-rate only", families=("mimo",)),
    "mrt": Entry(opt.MRT, "maximum-ratio (eigen-)beamforming, full power (fixed precoder); MIMO only", families=("mimo",)),
    "zf": Entry(opt.ZeroForcing, "zero-forcing on effective channels, needs M >= I d (fixed precoder); MIMO only",
                families=("mimo",)),
    "rzf": Entry(opt.RegularizedZeroForcing, "regularized ZF, reg = sigma^2 I d / P (fixed precoder); MIMO only",
                 families=("mimo",)),
}


def _unknown(kind: str, name: str, valid) -> ValueError:
    return ValueError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(sorted(valid))}")


def make_solver(name: str, **kwargs) -> opt.Optimizer:
    """Instantiate a registered solver by name."""
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
