"""Problem families and batched instances."""

from l2o.problems.base import GAP_FLOOR, Instances
from l2o.problems.custom import AutogradInstances
from l2o.problems.datasets import DatasetLogisticFamily
from l2o.problems.family import ProblemFamily, make_generator
from l2o.problems.lasso import LassoFamily, LassoInstances, LeastSquaresFamily, LeastSquaresInstances
from l2o.problems.logistic import LogisticFamily, LogisticInstances
from l2o.problems.logsumexp import LogSumExpFamily, LogSumExpInstances
from l2o.problems.mimo import MimoFamily, MimoInstances
from l2o.problems.quadratic import QuadraticFamily, QuadraticInstances
from l2o.problems.shift import ShiftedInstances

__all__ = [
    "GAP_FLOOR", "Instances", "AutogradInstances", "ProblemFamily", "make_generator",
    "LassoFamily", "LassoInstances", "LeastSquaresFamily", "LeastSquaresInstances",
    "LogisticFamily", "LogisticInstances", "DatasetLogisticFamily", "LogSumExpFamily", "LogSumExpInstances",
    "QuadraticFamily", "QuadraticInstances", "ShiftedInstances", "MimoFamily", "MimoInstances",
]
