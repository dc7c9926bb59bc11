"""l2o's solver for benchopt's LASSO benchmark (benchmark_lasso):

    min_w 1/2 ||y - X w - c||^2 + lmbd ||w||_1      (c = 0 unless fit_intercept)

    benchopt run benchmark_lasso -d simulated -s "$(python -m l2o.contrib.benchopt lasso)[solver=fista_restart]"

``solver``: a classical l2o solver (``fista_restart``, ``fista``, ``ista``, ...) or a
bundled pretrained name (``l2o list --pretrained``; a learned solver runs its trained
iterations, then its family's fallback). ``device``: ``cpu``, ``cuda`` or ``auto``.
The conventions and the timing are in ``l2o.contrib.benchopt.core``.

>>> Solver.name, Solver.sampling_strategy
('l2o', 'callback')
"""

from benchopt import BaseSolver

from l2o.contrib.benchopt.core import L2OSolver, LassoProblem


class Solver(L2OSolver, BaseSolver):
    """l2o on benchmark_lasso (see the module docstring; the methods are ``L2OSolver``'s).

    >>> sorted(Solver.parameters)
    ['device', 'solver']
    """

    name = "l2o"
    # l2o must be installed where benchopt runs (this file imports it); pip: `pip install l2o`
    # from its source tree. Nothing is installed from here.
    requirements = []
    parameters = {
        "solver": ["fista_restart", "fista", "go_math_l2o-lasso_250x500", "lfista-lasso_250x500"],
        "device": ["cpu"],
    }
    sampling_strategy = "callback"
    references = [
        "l2o: learning to optimize in PyTorch (classical and learned solvers, benchopt bridge: l2o.contrib.benchopt)",
    ]

    Problem = LassoProblem
