"""Meta-training of learned solvers.

Three swappable pieces, as learned_optimization splits them:

* the inner problem (``unroll``, ``MetaLoss``): how a solver is unrolled on a batch
  and how its trajectory is scored;
* the gradient estimator (``FullBackprop``, ``TruncatedBackprop``): how a batch becomes
  meta-gradients (where the graph is cut, whether steps are recomputed);
* the learner (``Learner``): meta-optimizer, schedule, clipping, NaN/Inf guard; and
  the loop around it (``Trainer``, ``train``): data, validation with best-checkpoint
  selection, atomic checkpoints and exact resume (``l2o.training.checkpoint``).

    from l2o.training import load_config, train, load_run
    result = train(load_config("examples/math_l2o_lasso.toml"), "runs/math_l2o_lasso")
    run = load_run("runs/math_l2o_lasso")        # run.solver: best weights, eval mode
"""

from l2o.training.checkpoint import Run, load_run, read_safetensors, save_safetensors
from l2o.training.config import RunConfig, TrainingConfig, load_config
from l2o.training.estimators import Estimate, FullBackprop, GradientEstimator, TruncatedBackprop, make_estimator
from l2o.training.learner import Learner, StepOutcome, lr_at, make_meta_optimizer
from l2o.training.trainer import StepInfo, Trainer, TrainResult, prepare_run, run_status, train, validation_gap
from l2o.training.unroll import MetaLoss, Unrolled, detach_state, unroll

__all__ = [
    "RunConfig", "TrainingConfig", "load_config",
    "unroll", "Unrolled", "MetaLoss", "detach_state",
    "Estimate", "GradientEstimator", "FullBackprop", "TruncatedBackprop", "make_estimator",
    "Learner", "StepOutcome", "make_meta_optimizer", "lr_at",
    "Trainer", "TrainResult", "StepInfo", "train", "prepare_run", "run_status", "validation_gap",
    "Run", "load_run", "save_safetensors", "read_safetensors",
]
