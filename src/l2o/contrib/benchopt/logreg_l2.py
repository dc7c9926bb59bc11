"""l2o's solver for benchopt's l2-regularized logistic regression benchmark
(benchmark_logreg_l2):

    min_w sum_i log(1 + exp(-y_i x_i^T w)) + lmbd/2 ||w||^2,   y_i in {-1, +1}

    benchopt run benchmark_logreg_l2 -d simulated -s "$(python -m l2o.contrib.benchopt logreg_l2)[solver=newton]"

``solver``: a classical l2o solver (``newton``, ``lbfgs``, ``bfgs``, ``fista_restart``, ...) or
a bundled pretrained name (``lqn-logistic_l2_100``: learned BFGS step sizes, dimension-free;
a learned solver runs its trained iterations, then its family's fallback). ``device``:
``cpu``, ``cuda`` or ``auto``. The conventions and the timing are in
``l2o.contrib.benchopt.core`` (l2o's lam is lmbd / n_samples).

>>> Solver.name, Solver.sampling_strategy
('l2o', 'callback')
"""

from benchopt import BaseSolver

from l2o.contrib.benchopt.core import L2OSolver, LogregL2Problem


class Solver(L2OSolver, BaseSolver):
    """l2o on benchmark_logreg_l2 (see the module docstring; the methods are ``L2OSolver``'s).

    >>> sorted(Solver.parameters)
    ['device', 'solver']
    """

    name = "l2o"
    # l2o must be installed where benchopt runs (this file imports it). Nothing is installed from here.
    requirements = []
    parameters = {
        "solver": ["newton", "lbfgs", "fista_restart", "lqn-logistic_l2_100"],
        "device": ["cpu"],
    }
    sampling_strategy = "callback"
    references = [
        "l2o: learning to optimize in PyTorch (classical and learned solvers, benchopt bridge: l2o.contrib.benchopt)",
    ]

    Problem = LogregL2Problem
