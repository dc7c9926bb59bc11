"""What the ``l2o`` commands do, as functions that take typed arguments and return data.

* ``evaluate``: ``evaluate_run``, a trained run against classical and learned baselines (``l2o eval``);
* ``robustness``: ``evaluate_ood``, the out-of-distribution report (``l2o eval --ood``),
  and ``EvaluationConfig``, the run config's ``[evaluation]`` table;
* ``demo``: ``run_demo``, train LFISTA on LASSO and compare (``l2o demo``);
* ``checkpoint_solve``: ``solve_file`` and ``load_for_checkpoint``, a data file solved
  by a classical or a trained solver (``l2o solve``).

Nothing here prints or parses command-line options; errors are one-line
``ValueError``s naming the parameter (``l2o.cli`` maps them to its flags).
"""

from l2o.workflows.checkpoint_solve import (
    CheckpointProblem,
    FileSolution,
    kind_of_family,
    load_for_checkpoint,
    solve_file,
)
from l2o.workflows.demo import DEMO_CONFIG, DemoOutcome, demo_config, run_demo, train_demo
from l2o.workflows.evaluate import EvalOutcome, evaluate_run
from l2o.workflows.robustness import EvaluationConfig, RobustnessOutcome, evaluate_ood, resolve_evaluation

__all__ = [
    "evaluate_run", "EvalOutcome", "evaluate_ood", "RobustnessOutcome", "EvaluationConfig", "resolve_evaluation",
    "run_demo", "DemoOutcome", "demo_config", "train_demo", "DEMO_CONFIG", "solve_file", "FileSolution",
    "load_for_checkpoint", "CheckpointProblem", "kind_of_family",
]
