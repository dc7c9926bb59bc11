"""Running solvers, recording trajectories and comparing solvers on the same instances."""

from l2o.evaluation.compare import Comparison, compare, read_records_csv, trajectories_from_records
from l2o.evaluation.run import SolveResult, Trajectory, run, solve

__all__ = ["SolveResult", "Trajectory", "run", "solve", "Comparison", "compare", "read_records_csv",
           "trajectories_from_records"]
