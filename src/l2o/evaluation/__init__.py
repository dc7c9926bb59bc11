"""Running solvers and recording trajectories."""

from l2o.evaluation.run import SolveResult, Trajectory, run, solve

__all__ = ["SolveResult", "Trajectory", "run", "solve"]
