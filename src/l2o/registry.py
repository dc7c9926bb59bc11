"""Names for families, presets and solvers, so that configs and the CLI can name them.

One registry of solvers, classical and learned alike: ``SOLVERS`` maps each solver's
``name`` (its class attribute) to a ``SolverEntry`` (class, one-line description,
``learned``); ``CLASSICAL`` and ``LEARNED`` are the two views, ``is_learned(name)`` tells
them apart and ``make_solver(name, **kwargs)`` builds either kind (a learned solver
untrained: weights come from a run directory, ``l2o.training.load_run``).

What a solver accepts is declared by the solver (``Optimizer.skip(problem)``), and what a
family uses by default by the family (``ProblemFamily.default_solver``, ``baselines``,
``fallback``, ``file_format``), not by tables here.

Entries name their class by a ``"module:Class"`` path that is imported on first use
(``entry.factory``), so that listing the registry (names, descriptions, which solvers are
learned, the presets and their splits: ``l2o list``) imports neither torch nor any
solver. To add a solver, add one line ``"name": SolverEntry("l2o.x.y:Class", "what it
is")`` below (a class object works too, at the price of importing it with the registry);
a preset, ``"name": Preset("l2o.x.y:Family", {fields}, "what it is", (natural splits))``
in ``_PRESETS``. ``tests/test_registry.py`` checks that every path resolves to a class of
that name and that the declared splits are the family's.

    >>> SOLVERS["fista"].description
    'FISTA (accelerated proximal gradient)'
    >>> make_solver("fista_restart").name
    'fista_restart'
    >>> PRESETS["qp_100"][0].n
    100
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the classes are imported on first use (``resolve``), not with the registry
    from l2o.optimizers.base import Optimizer
    from l2o.problems.family import ProblemFamily


def resolve(target: str | Any) -> Any:
    """The object a ``"package.module:Name"`` path names (imported on first use); any other
    ``target`` (a class) is returned as it is.

    >>> resolve("l2o.optimizers.fista:FISTA").name
    'fista'
    """
    if not isinstance(target, str):
        return target
    return _resolve_path(target)


@functools.cache
def _resolve_path(path: str) -> Any:
    module, sep, name = path.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"registry path {path!r} is not of the form 'package.module:Name'")
    return getattr(importlib.import_module(module), name)


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered family: its class (a ``"module:Class"`` path, imported by ``factory``)
    and a one-line description."""

    target: str | type
    description: str

    @property
    def factory(self) -> Any:
        """The family's class (imported on first use)."""
        return resolve(self.target)


@dataclasses.dataclass(frozen=True)
class SolverEntry:
    """A registered solver: its class (a ``"module:Class"`` path; ``factory(**kwargs)``
    builds one), a one-line description and whether it is learned (an ``nn.Module``
    trained by ``l2o train``)."""

    target: str | type
    description: str
    learned: bool = False

    @property
    def factory(self) -> type[Optimizer]:
        """The solver's class (imported on first use)."""
        return resolve(self.target)


@dataclasses.dataclass(frozen=True, eq=False)
class Preset:
    """A named family with its fields: the family's class (``"module:Class"`` path), the
    fields that differ from the class defaults, a one-line description, and the names of
    its natural out-of-distribution splits (``ProblemFamily.natural_splits``; declared so
    that ``l2o list`` shows them without building the family; None: computed)."""

    target: str | type
    params: Mapping[str, Any]
    description: str
    splits: tuple[str, ...] | None = None

    @functools.cached_property
    def family(self) -> ProblemFamily:
        """The family (built on first use, then the same object)."""
        return resolve(self.target)(**self.params)


class Presets(Mapping):
    """``PRESETS[name]`` is ``(family, description)``, the family built on first use;
    ``PRESETS.entries[name]`` is the ``Preset`` (description and splits without building it)."""

    def __init__(self, entries: Mapping[str, Preset]):
        self.entries = dict(entries)

    def __getitem__(self, name: str) -> tuple[ProblemFamily, str]:
        entry = self.entries[name]
        return entry.family, entry.description

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"Presets({', '.join(self.entries)})"


FAMILIES: dict[str, Entry] = {
    "quadratic": Entry("l2o.problems.quadratic:QuadraticFamily",
                       "convex QP 1/2 x'Qx + q'x, optional box; conditioning, shared or per-instance Q"),
    "least_squares": Entry("l2o.problems.lasso:LeastSquaresFamily",
                           "1/2||Wx - y||^2, W Gaussian with unit columns (NeurIPS 2025 QP form)"),
    "lasso": Entry("l2o.problems.lasso:LassoFamily", "1/2||Ax - b||^2 + lam||x||_1, A shared or per instance"),
    "logistic": Entry("l2o.problems.logistic:LogisticFamily",
                      "sparse (l1) or ridge (l2) logistic regression on synthetic Gaussian data"),
    "logistic_dataset": Entry("l2o.problems.datasets:DatasetLogisticFamily",
                              "logistic regression on subsamples of scikit-learn's bundled datasets"),
    "logsumexp": Entry("l2o.problems.logsumexp:LogSumExpFamily",
                       "regularized log-sum-exp mu log sum exp((Ax-b)/mu) + reg/2 ||x||^2"),
    "mimo": Entry("l2o.problems.mimo.family:MimoFamily",
                  "multi-cell multi-user MIMO weighted sum-rate (max via WMMSE), per-BS power budgets"),
}

#: The out-of-distribution splits every family has (``l2o.problems.splits.common_splits``).
COMMON_SPLITS: tuple[str, ...] = (
    "id", "x0_+10", "x0_-10", "x0_+20", "x0_-20", "x0_+50", "x0_-50", "x0_+100", "x0_-100",
    "objective_shift_1", "objective_shift_10",
)

_MIMO = "l2o.problems.mimo.family:MimoFamily"
_PRESETS: dict[str, Preset] = {
    **{
        f"ls_{d}x{m}": Preset("l2o.problems.lasso:LeastSquaresFamily", {"d": d, "m": m},
                              f"NeurIPS 2025 least squares, d={d}, m={m}",
                              ("data_scale_2", "noise_0.1", f"dim_{2 * d}x{2 * m}"))
        for d, m in [(32, 25), (64, 50), (128, 100), (256, 200), (512, 400)]
    },
    "lasso_250x500": Preset(
        "l2o.problems.lasso:LassoFamily", {},
        "ICML 2023 / CVPR 2024 LASSO: A 250x500 shared, 50 nonzeros, lam=0.1",
        ("data_scale_2", "noise_0.1", "nnz_100", "lam_0.05", "lam_0.2", "correlated_0.5", "dim_125x250")),
    "lasso_50x100": Preset(
        "l2o.problems.lasso:LassoFamily", {"m": 50, "n": 100, "nnz": 10},
        "lasso_250x500 scaled down 5x: A 50x100 shared, 10 nonzeros, lam=0.1 (small enough to bundle LISTA)",
        ("data_scale_2", "noise_0.1", "nnz_20", "lam_0.05", "lam_0.2", "correlated_0.5", "dim_25x50")),
    "logistic_1000x50": Preset(
        "l2o.problems.logistic:LogisticFamily", {},
        "CVPR 2024 sparse logistic: 1000x50 Gaussian, 20 nonzeros, lam=0.1",
        ("data_scale_2", "label_noise_1", "nnz_40", "lam_0.05", "lam_0.2", "correlated_0.5", "dim_100",
         "breast_cancer", "digits")),
    "logistic_breast_cancer": Preset(
        "l2o.problems.datasets:DatasetLogisticFamily", {"dataset": "breast_cancer"},
        "l1 logistic on 80% subsamples of breast cancer (standardized), lam=0.01",
        ("digits", "lam_0.005", "lam_0.02")),
    "logistic_digits": Preset(
        "l2o.problems.datasets:DatasetLogisticFamily", {"dataset": "digits"},
        "l1 logistic on 80% subsamples of digits (>=5 vs <5)",
        ("breast_cancer", "lam_0.005", "lam_0.02")),
    "box_qp_100": Preset(
        "l2o.problems.quadratic:QuadraticFamily", {"n": 100, "condition_number": 370.0, "box": 0.1},
        "box-constrained QP, n=100, shared Q (kappa=370), [-0.1, 0.1]^n",
        ("data_scale_2", "condition_3700", "dim_200")),
    "qp_100": Preset(
        "l2o.problems.quadratic:QuadraticFamily", {"n": 100, "condition_number": 100.0},
        "unconstrained QP, n=100, shared Q (kappa=100)",
        ("data_scale_2", "condition_1000", "dim_200")),
    **{
        f"logsumexp_{n}": Preset("l2o.problems.logsumexp:LogSumExpFamily", {"n": n, "m": 4 * n},
                                 f"log-sum-exp, n={n}, m={4 * n}, mu=0.5, reg=1e-3 (quasi-Newton task)",
                                 ("mu_0.05", "data_scale_2", "condition_100", f"dim_{2 * n}"))
        for n in (100, 500, 1000)
    },
    **{
        f"logistic_l2_{d}": Preset(
            "l2o.problems.logistic:LogisticFamily",
            {"n_samples": 2 * d, "d": d, "nnz": d // 10, "lam": 1.0 / (2 * d), "penalty": "l2", "noise_std": 0.5},
            f"ridge logistic, {2 * d}x{d} Gaussian, lam=1/N, label noise 0.5 (quasi-Newton task)",
            ("data_scale_2", "label_noise_1", f"nnz_{2 * (d // 10)}", f"lam_{1.0 / (4 * d):g}", f"lam_{1.0 / d:g}",
             "correlated_0.5", f"dim_{2 * d}", "breast_cancer", "digits"))
        for d in (100, 500, 1000)
    },
    **{
        f"ls_{d}x{2 * d}": Preset("l2o.problems.lasso:LeastSquaresFamily", {"d": d, "m": 2 * d, "noise_std": 0.1},
                                  f"overdetermined least squares, d={d}, m={2 * d}, noise 0.1 (quasi-Newton task)",
                                  ("data_scale_2", "noise_0.1", f"dim_{2 * d}x{4 * d}"))
        for d in (100, 500, 1000)
    },
    "mimo_small": Preset(
        _MIMO, {"cells": 3, "users": 2, "tx_antennas": 4, "rx_antennas": 2, "streams": 2, "power": 10.0, "noise": 1.0},
        "MIMO sum-rate: 3 cells x 2 users, M=4, N=2, d=2, P=10, sigma^2=1, Rayleigh",
        ("users_1", "users_4", "cells_5", "power_x10", "power_div10", "geometric")),
    "mimo_medium": Preset(
        _MIMO, {"cells": 3, "users": 4, "tx_antennas": 8, "rx_antennas": 2, "streams": 2, "power": 10.0, "noise": 1.0},
        "MIMO sum-rate: 3 cells x 4 users, M=8, N=2, d=2, P=10, sigma^2=1, Rayleigh",
        ("users_2", "users_8", "cells_5", "power_x10", "power_div10", "geometric")),
    **{
        f"mimo_infocom_{scale}{suffix}": Preset(
            "l2o.problems.mimo.infocom:InfocomMimoFamily",
            {"cells": b, "users": u, "tx_antennas": m, "rx_antennas": n, "streams": n, "power": 10.0,
             "inter_bs_distance": dist},
            f"INFOCOM 2024 {scale} scale: {b} cells x {u} users, M={m}, N=d={n}, P=10 W, SNR 5 dB, "
            f"inter-BS {dist:g} km ({level} interference)",
            (f"users_{u // 2}", f"users_{2 * u}", f"cells_{b + 1}", f"distance_{other:g}km"))
        for scale, (b, u, m, n) in {"small": (2, 4, 8, 2), "moderate": (2, 8, 16, 2), "large": (2, 16, 32, 2)}.items()
        for suffix, dist, other, level in (("", 2.8, 0.5, "small"), ("_dense", 0.5, 2.8, "large"))
    },
    "mimo_single_cell_30": Preset(
        _MIMO,
        {"cells": 1, "users": 30, "tx_antennas": 64, "rx_antennas": 2, "streams": 2, "power": 100.0, "noise": 1.0},
        "MIMO sum-rate, deep-unfolding setting: 1 cell, 30 users, M=64, N=2, d=2, P=100, sigma^2=1, Rayleigh",
        ("users_15", "users_60", "cells_3", "power_x10", "power_div10", "geometric")),
}
#: Named families: ``PRESETS[name]`` is ``(family, description)`` (the family built on first
#: use); ``PRESETS.entries[name]`` the ``Preset`` (description, splits) without building it.
PRESETS: Presets = Presets(_PRESETS)

#: Every solver, classical then learned, in the order ``l2o list`` shows them: name -> entry.
SOLVERS: dict[str, SolverEntry] = {
    # classical
    "gd": SolverEntry("l2o.optimizers.gradient:GradientDescent", "gradient descent, step 1/L (smooth problems)"),
    "nesterov": SolverEntry("l2o.optimizers.fista:Nesterov",
                            "Nesterov's accelerated gradient, convex variant (smooth problems)"),
    "nesterov_sc": SolverEntry("l2o.optimizers.gradient:NesterovStronglyConvex",
                               "accelerated gradient, strongly convex variant (needs mu > 0)"),
    "heavy_ball": SolverEntry("l2o.optimizers.gradient:HeavyBall", "Polyak's heavy ball (smooth problems)"),
    "adam": SolverEntry("l2o.optimizers.adam:Adam", "Adam, proximal for composite problems (lr=1e-2)"),
    "ista": SolverEntry("l2o.optimizers.fista:ISTA", "proximal gradient (ISTA), step 1/L"),
    "pgd": SolverEntry("l2o.optimizers.fista:ProjectedGradient", "projected gradient (ISTA with a box projection)"),
    "fista": SolverEntry("l2o.optimizers.fista:FISTA", "FISTA (accelerated proximal gradient)"),
    "fista_restart": SolverEntry("l2o.optimizers.fista:FISTARestart",
                                 "FISTA with adaptive gradient restart (O'Donoghue-Candes)"),
    "fista_polish": SolverEntry("l2o.optimizers.fista:FISTAPolish",
                                "FISTA with restart and active-set polishing (exact on LASSO / box QP)"),
    "apgd": SolverEntry("l2o.optimizers.fista:AcceleratedProjectedGradient",
                        "accelerated projected gradient with restart (boxes)"),
    "lbfgs": SolverEntry("l2o.optimizers.quasi_newton:LBFGS",
                         "L-BFGS (memory 10) with Armijo line search (smooth problems)"),
    "bfgs": SolverEntry("l2o.optimizers.bfgs:BFGS",
                        "dense BFGS with backtracking (Armijo) line search from t = 1 (smooth problems, n <= 4096)"),
    "bfgs_wolfe": SolverEntry("l2o.optimizers.bfgs:BFGSWolfe",
                              "dense BFGS with a strong-Wolfe line search, as SciPy's (smooth problems, n <= 4096)"),
    "hgd": SolverEntry("l2o.optimizers.hypergradient:HypergradientDescent",
                       "hypergradient descent: GD with an online-adapted step (Baydin et al. 2018)"),
    "hgd_coord": SolverEntry("l2o.optimizers.hypergradient:HypergradientDescentCoord",
                             "hypergradient descent with one adapted step per coordinate"),
    "newton": SolverEntry("l2o.optimizers.quasi_newton:Newton",
                          "damped Newton with Armijo line search (cheap Hessian: QP, l2 logistic)"),
    "zo_gd": SolverEntry("l2o.zeroth_order.zo_gd:ZOGD", "zeroth-order GD, function values only: ZO-Align (q = n) or "
                         "ZO-Avg, query budget (arXiv 2509.15552)"),
    "wmmse": SolverEntry("l2o.optimizers.wmmse:WMMSE", "WMMSE (Shi et al. 2011), batched; MIMO sum-rate only"),
    "wmmse_paper": SolverEntry("l2o.optimizers.wmmse_paper:PaperWMMSE",
                               "WMMSE as INFOCOM 2024 runs it: ZF start, equal power, stop at 1% rate change "
                               "or 50 iterations; MIMO only"),
    "mrt": SolverEntry("l2o.optimizers.wmmse:MRT",
                       "maximum-ratio (eigen-)beamforming, full power (fixed precoder); MIMO only"),
    "zf": SolverEntry("l2o.optimizers.wmmse:ZeroForcing",
                      "zero-forcing on effective channels, needs M >= I d (fixed precoder); MIMO only"),
    "rzf": SolverEntry("l2o.optimizers.wmmse:RegularizedZeroForcing",
                       "regularized ZF, reg = sigma^2 I d / P (fixed precoder); MIMO only"),
    # learned (``l2o train`` fits them; ``make_solver`` builds them untrained)
    "lgd": SolverEntry("l2o.learned.lgd:LGD",
                       "learned gradient descent: per-coordinate step multipliers (NeurIPS 2025; smooth problems)",
                       learned=True),
    "math_l2o": SolverEntry("l2o.learned.math_l2o:MathL2O",
                            "Math-L2O: learned proximal gradient with preconditioner and momentum (ICML 2023)",
                            learned=True),
    "go_math_l2o": SolverEntry("l2o.learned.go_math_l2o:GOMathL2O",
                               "GO-Math-L2O: Math-L2O on gradient-only features (CVPR 2024)", learned=True),
    "lista": SolverEntry("l2o.learned.lista:LISTA",
                         "LISTA: unrolled ISTA with untied learned layers (LASSO, one shared dictionary)",
                         learned=True),
    "alista": SolverEntry("l2o.learned.lista:ALISTA",
                          "ALISTA: unrolled ISTA with an analytic weight, learned steps and thresholds (ICLR 2019)",
                          learned=True),
    "l2o_dm": SolverEntry("l2o.learned.blackbox:L2ODM",
                          "L2O-DM: coordinatewise LSTM on the preprocessed gradient (NeurIPS 2016)", learned=True),
    "rnnprop": SolverEntry("l2o.learned.blackbox:RNNprop",
                           "RNNprop: coordinatewise LSTM on Adam-normalized gradients (ICML 2017)", learned=True),
    "lfista": SolverEntry("l2o.learned.lfista:LFISTA",
                          "LFISTA: FISTA with restart and learned per-iteration step, threshold and momentum",
                          learned=True),
    "gnn_wmmse": SolverEntry("l2o.learned.gnn_wmmse:GNNWMMSE",
                             "GNN-WMMSE: unrolled WMMSE steered by a graph neural network; MIMO sum-rate only",
                             learned=True),
    "structural_mpnn": SolverEntry("l2o.learned.structural_mpnn:StructuralMPNN",
                                   "StructuralMPNN: learned W_L V W_R updates with dimension expansion "
                                   "(INFOCOM 2024); MIMO sum-rate only", learned=True),
    "structural_mpnn_b": SolverEntry("l2o.learned.structural_mpnn:StructuralMPNNB",
                                     "StructuralMPNN-B ablation: black-box V update; MIMO sum-rate only", learned=True),
    "structural_mpnn_o": SolverEntry("l2o.learned.structural_mpnn:StructuralMPNNO",
                                     "StructuralMPNN-O ablation: no dimension expansion; MIMO sum-rate only",
                                     learned=True),
    "iaidnn": SolverEntry("l2o.learned.iaidnn:IAIDNN",
                          "IAIDNN: unfolded WMMSE, learned inverse approximations (TWC 2021); MIMO, fixed sizes",
                          learned=True),
    "gcn_wmmse": SolverEntry("l2o.learned.gcn_wmmse:GCNWMMSE",
                             "GCN-WMMSE: unrolled WMMSE, learned graph filter as V-update (JSAC 2023); MIMO only",
                             learned=True),
    "lqn": SolverEntry("l2o.learned.lqn:LQN",
                       "LQN: BFGS with learned coordinate-wise step sizes in a descent-safe interval "
                       "(arXiv 2412.00059)",
                       learned=True),
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
    """Instantiate a registered solver, classical or learned (untrained), by name.

    Example:
        >>> import l2o
        >>> l2o.make_solver("fista_restart")
        FISTARestart(restart=True, step_scale=1.0, polish_every=0)
        >>> l2o.make_solver("lfista", horizon=20).horizon  # learned: an untrained nn.Module
        20
        >>> l2o.make_solver("fista_x")
        Traceback (most recent call last):
        ValueError: unknown solver 'fista_x'; valid solvers: ...
    """
    if name not in SOLVERS:
        raise _unknown("solver", name, SOLVERS)
    return SOLVERS[name].factory(**kwargs)


def make_family(name: str, **kwargs) -> ProblemFamily:
    """A family by family name (with hyperparameters) or by preset name (with overrides).

    Example:
        >>> import l2o
        >>> family = l2o.make_family("lasso", m=20, n=40, nnz=3)
        >>> (family.m, family.n, family.lam), family.sample(8, generator=0).batch_size
        ((20, 40, 0.1), 8)
        >>> l2o.make_family("lasso_250x500") == l2o.LassoFamily()  # the preset
        True
        >>> l2o.make_family("lasso_250x500", lam=0.2).lam  # a preset with an override
        0.2
    """
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
