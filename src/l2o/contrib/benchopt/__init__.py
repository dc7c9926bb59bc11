"""benchopt solvers backed by l2o, shipped in the package.

benchopt (https://benchopt.github.io, >= 1.10) loads a ``Solver`` from a file given by
path (``benchopt run BENCH -s path/to/file.py[param=value]``), so the solver files live
here, installed with l2o, and no benchmark repository has to copy them:

* ``lasso.py``: for ``benchmark_lasso``, min_w 1/2 ||y - X w||^2 + lmbd ||w||_1 (with an
  unpenalized intercept when ``fit_intercept``; l2o's LASSO has the same scaling, so
  l2o's lam is lmbd exactly);
* ``logreg_l2.py``: for ``benchmark_logreg_l2``, min_w sum_i log(1 + exp(-y_i x_i^T w))
  + lmbd/2 ||w||^2 with y in {-1, +1} (l2o's logistic family uses the mean loss, so
  l2o's lam is lmbd / n_samples and l2o's objective is the benchmark's / n_samples).

Each takes ``solver=`` a classical solver of ``l2o.registry.CLASSICAL`` (``fista_restart``,
``newton``, ...) or a bundled pretrained name (``l2o list --pretrained``), which runs its
trained iterations and then hands over to its family's classical fallback
(``l2o.workflows.load.handover``). A fixed-dimension learned solver (LISTA, ALISTA: tied
to the dictionary they were trained with) is skipped, with the reason, on data it cannot
take; the coordinate-wise ones (LFISTA's learned scalars, GO-Math-L2O, RNNprop, L2O-DM,
LQN) run on any dimension. A learned solver of another problem is skipped too.
``sampling_strategy = "callback"``: one run per curve, benchopt evaluates the iterate off
the clock; on a GPU (``device=cuda``) ``run`` synchronizes after every iteration so that
the clock sees the work.

    benchopt run benchmark_lasso -d simulated \\
        -s "$(python -m l2o.contrib.benchopt lasso)[solver=fista_restart]" \\
        -s "$(python -m l2o.contrib.benchopt lasso)[solver=go_math_l2o-lasso_250x500]"

This module imports neither torch nor benchopt; the solver files import both.
"""

from __future__ import annotations

from pathlib import Path

#: The benchmark each solver file is for -> its file name in this folder.
SOLVER_FILES = {"lasso": "lasso.py", "logreg_l2": "logreg_l2.py"}


def solver_file(benchmark: str) -> Path:
    """The path of l2o's solver file for ``benchmark`` (``"lasso"`` or ``"logreg_l2"``),
    to pass to ``benchopt run -s PATH``.

    >>> solver_file("lasso").name
    'lasso.py'
    >>> solver_file("svm")
    Traceback (most recent call last):
    ...
    ValueError: benchmark must be one of lasso, logreg_l2, got 'svm'
    """
    if benchmark not in SOLVER_FILES:
        raise ValueError(f"benchmark must be one of {', '.join(SOLVER_FILES)}, got {benchmark!r}")
    return Path(__file__).resolve().parent / SOLVER_FILES[benchmark]


__all__ = ["SOLVER_FILES", "solver_file"]
