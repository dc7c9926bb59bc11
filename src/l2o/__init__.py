"""l2o: learning to optimize, with classical baselines and guarantees."""

from l2o.evaluation import Comparison, Reference, SolveResult, Trajectory, compare, reference, run, solve
from l2o.problems import (
    AutogradInstances,
    DatasetLogisticFamily,
    Instances,
    LassoFamily,
    LassoInstances,
    LeastSquaresFamily,
    LeastSquaresInstances,
    LogisticFamily,
    LogisticInstances,
    QuadraticFamily,
    QuadraticInstances,
)
from l2o.registry import FAMILIES, PRESETS, SOLVERS, make_family, make_solver
from l2o.workflows.load import load_solver  # a bundled pretrained name or a run directory

__version__ = "0.1.0"

__all__ = [
    "run", "solve", "compare", "reference", "Trajectory", "SolveResult", "Comparison", "Reference", "Instances", "AutogradInstances",
    "QuadraticFamily", "QuadraticInstances", "LeastSquaresFamily", "LeastSquaresInstances",
    "LassoFamily", "LassoInstances", "LogisticFamily", "LogisticInstances", "DatasetLogisticFamily",
    "FAMILIES", "PRESETS", "SOLVERS", "make_family", "make_solver", "load_solver",
]
