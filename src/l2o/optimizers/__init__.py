"""Classical batched solvers behind the common init / step protocol."""

from l2o.optimizers.adam import Adam
from l2o.optimizers.base import Optimizer, merge_state, select_state
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
from l2o.optimizers.quasi_newton import LBFGS, Newton
from l2o.optimizers.wmmse import MRT, WMMSE, LinearPrecoder, RegularizedZeroForcing, ZeroForcing

__all__ = [
    "Optimizer", "merge_state", "select_state", "GradientDescent", "Nesterov", "NesterovStronglyConvex", "HeavyBall",
    "Adam", "ISTA", "ProjectedGradient", "FISTA", "FISTARestart", "FISTAPolish", "AcceleratedProjectedGradient",
    "LBFGS", "Newton",
    "WMMSE", "LinearPrecoder", "MRT", "ZeroForcing", "RegularizedZeroForcing",
]
