"""Solving, references, trajectories and comparisons of solvers on the same instances."""

from l2o.evaluation.compare import Comparison, compare, read_records_csv, trajectories_from_records
from l2o.evaluation.guarantee import Guarantee, guarantee_table, kl_upper_bound
from l2o.evaluation.reference import Reference, reference
from l2o.evaluation.run import Trajectory, run
from l2o.evaluation.solve import SolveResult, solve
from l2o.evaluation.stopping import Certificate, RelativeChange, Residual, StoppingCriterion

__all__ = ["SolveResult", "Trajectory", "run", "solve", "reference", "Reference", "Comparison", "compare",
           "read_records_csv", "trajectories_from_records", "StoppingCriterion", "Certificate", "Residual",
           "RelativeChange", "Guarantee", "guarantee_table", "kl_upper_bound"]
