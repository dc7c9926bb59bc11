"""l2o's benchopt solvers (``l2o.contrib.benchopt``) run by benchopt itself.

A tiny local benchmark is written into ``tmp_path`` for each of benchopt's two target
benchmarks, with their objectives' conventions (benchmark_lasso: 1/2 ||y - X w - c||^2 +
lmbd ||w||_1, lmbd = reg ||X^T y||_inf, beta = [w, c] with an intercept;
benchmark_logreg_l2: sum_i log(1 + exp(-y_i x_i^T w)) + lmbd/2 ||w||^2 with y in
{-1, +1}), a simulated dataset and a reference solver written here (a textbook NumPy
FISTA for LASSO, scikit-learn for logistic regression). benchopt runs them in this
process (``benchopt.run_benchmark``: no environment is created, nothing is installed,
no network) with l2o's solver files selected by path, and the results file must hold
l2o's curves, whose final objective reaches the reference solver's, and both reach an
optimum computed here independently (scikit-learn to a tight tolerance).
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

benchopt = pytest.importorskip("benchopt")
pd = pytest.importorskip("pandas")

from l2o.contrib.benchopt import solver_file  # noqa: E402
from l2o.contrib.benchopt.__main__ import main as path_main  # noqa: E402

LASSO_OBJECTIVE = '''
import numpy as np
from benchopt import BaseObjective


class Objective(BaseObjective):
    name = "Lasso Regression"
    min_benchopt_version = "1.7"
    parameters = {"reg": [0.1], "fit_intercept": [False, True]}

    def set_data(self, X, y):
        self.X, self.y = X, y
        yc = y - y.mean() if self.fit_intercept else y
        self.lmbd = self.reg * np.abs(X.T @ yc).max()

    def get_objective(self):
        return dict(X=self.X, y=self.y, lmbd=self.lmbd, fit_intercept=self.fit_intercept)

    def evaluate_result(self, beta):
        w, c = (beta[:-1], beta[-1]) if self.fit_intercept else (beta, 0.0)
        r = self.y - self.X @ w - c
        p_obj = 0.5 * r @ r + self.lmbd * np.abs(w).sum()
        return dict(value=p_obj, support_size=int((w != 0).sum()))

    def get_one_result(self):
        return dict(beta=np.zeros(self.X.shape[1] + self.fit_intercept))
'''

LOGREG_OBJECTIVE = '''
import numpy as np
from benchopt import BaseObjective


class Objective(BaseObjective):
    name = "L2 Logistic Regression"
    min_benchopt_version = "1.7"
    parameters = {"lmbd": [1.0]}

    def set_data(self, X, y):
        assert set(np.unique(y)) == {-1, 1}, "Logistic loss is implemented with y in {-1, 1}"
        self.X, self.y = X, y

    def get_objective(self):
        return dict(X=self.X, y=self.y, lmbd=self.lmbd)

    def evaluate_result(self, beta):
        z = self.y * (self.X @ beta)
        return dict(value=np.logaddexp(0.0, -z).sum() + 0.5 * self.lmbd * beta @ beta)

    def get_one_result(self):
        return dict(beta=np.zeros(self.X.shape[1]))
'''

DATASET = '''
import numpy as np
from benchopt import BaseDataset


class Dataset(BaseDataset):
    name = "simulated"
    parameters = {"n_samples": [N_SAMPLES], "n_features": [N_FEATURES]}

    def get_data(self):
        rng = np.random.default_rng(0)
        X = rng.standard_normal((self.n_samples, self.n_features))
        w = np.zeros(self.n_features)
        w[:5] = rng.standard_normal(5)
        y = X @ w + 0.5 * rng.standard_normal(self.n_samples) + OFFSET
        return dict(X=X, y=LABELS)
'''

#: benchmark_lasso's python_pgd, rewritten: FISTA (Beck and Teboulle 2009), step 1/L
LASSO_REFERENCE = '''
import numpy as np
from benchopt import BaseSolver


class Solver(BaseSolver):
    name = "numpy_fista"
    sampling_strategy = "callback"

    def skip(self, X, y, lmbd, fit_intercept):
        return (True, "no intercept") if fit_intercept else (False, None)

    def set_objective(self, X, y, lmbd, fit_intercept):
        self.X, self.y, self.lmbd = X, y, lmbd

    def run(self, cb):
        X, y, lmbd = self.X, self.y, self.lmbd
        L = np.linalg.norm(X, ord=2) ** 2
        w = np.zeros(X.shape[1]); z = w.copy(); t = 1.0
        self.w = w
        while cb():
            v = z - X.T @ (X @ z - y) / L
            w_new = np.sign(v) * np.maximum(np.abs(v) - lmbd / L, 0.0)
            t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
            z = w_new + (t - 1) / t_new * (w_new - w)
            w, t = w_new, t_new
            self.w = w

    def get_result(self):
        return dict(beta=self.w)
'''

LOGREG_REFERENCE = '''
import numpy as np
from benchopt import BaseSolver
from sklearn.linear_model import LogisticRegression


class Solver(BaseSolver):
    name = "sklearn"
    sampling_strategy = "run_once"

    def set_objective(self, X, y, lmbd):
        self.X, self.y, self.lmbd = X, y, lmbd

    def run(self, _):
        # sum of losses + lmbd/2 ||w||^2  <=>  C = 1 / lmbd
        m = LogisticRegression(C=1.0 / self.lmbd, fit_intercept=False, tol=1e-12, max_iter=10_000)
        self.w = m.fit(self.X, self.y).coef_.ravel()

    def get_result(self):
        return dict(beta=self.w)
'''


def dataset(n: int, d: int, offset: float, labels: str) -> str:
    """The simulated dataset's file: y = X w + noise + offset, then ``labels`` (an expression of y)."""
    text = DATASET
    for key, value in (("N_SAMPLES", n), ("N_FEATURES", d), ("OFFSET", offset), ("LABELS", labels)):
        text = text.replace(key, str(value))
    return text


def write_benchmark(root, objective: str, dataset: str, reference: tuple[str, str]):
    (root / "datasets").mkdir(parents=True)
    (root / "solvers").mkdir()
    (root / "objective.py").write_text(textwrap.dedent(objective))
    (root / "datasets" / "simulated.py").write_text(textwrap.dedent(dataset))
    (root / "solvers" / f"{reference[0]}.py").write_text(textwrap.dedent(reference[1]))
    return root


def run(bench, solvers, out, max_runs=40):
    from benchopt import run_benchmark

    path = run_benchmark(str(bench), solver_names=solvers, dataset_names=["simulated"], max_runs=max_runs,
                         n_repetitions=1, timeout=60, plot_result=False, display=False, html=False,
                         show_progress=False, no_cache=True, output_file=str(out))
    return pd.read_parquet(path)


def final(df, solver_name, **params):
    rows = df[df["solver_name"] == solver_name]
    for k, v in params.items():
        rows = rows[rows[f"p_obj_{k}"] == v]
    assert len(rows) >= 2, (solver_name, params, sorted(df["solver_name"].unique()))  # a curve, not a point
    return rows.sort_values("stop_val")


def test_the_module_prints_the_solver_files(capsys):
    assert path_main(["logreg_l2"]) == 0
    assert capsys.readouterr().out.strip() == str(solver_file("logreg_l2"))
    assert path_main(["svm"]) == 2
    assert capsys.readouterr().err.startswith("error: give one benchmark, one of lasso, logreg_l2")


def test_benchopt_runs_l2o_on_a_lasso_benchmark(tmp_path):
    from sklearn.linear_model import Lasso

    n, d = 30, 50
    bench = write_benchmark(tmp_path / "benchmark_lasso", LASSO_OBJECTIVE,
                            dataset(n, d, 2.0, "y"), ("numpy_fista", LASSO_REFERENCE))
    file = solver_file("lasso")
    solvers = ["numpy_fista", f"{file}[solver=fista_restart]", f"{file}[solver=go_math_l2o-lasso_250x500]",
               f"{file}[solver=lista-lasso_50x100]"]
    df = run(bench, solvers, tmp_path / "lasso.parquet")
    names = set(df["solver_name"])
    classical, learned = "l2o[device=cpu,solver=fista_restart]", "l2o[device=cpu,solver=go_math_l2o-lasso_250x500]"
    assert {"numpy_fista", classical, learned} <= names
    assert not any("lista" in s for s in names)  # LISTA is tied to its 50 x 100 dictionary: skipped
    # callback sampling: one run per curve, evaluated after a growing number of iterations
    assert set(df.loc[df["solver_name"] == classical, "sampling_strategy"]) == {"Iteration"}

    rng = np.random.default_rng(0)  # the dataset's data, for the independent optimum
    X = rng.standard_normal((n, d))
    w = np.zeros(d)
    w[:5] = rng.standard_normal(5)
    y = X @ w + 0.5 * rng.standard_normal(n) + 2.0
    for intercept in (False, True):
        yc = y - y.mean() if intercept else y
        lmbd = 0.1 * np.abs(X.T @ yc).max()
        # scikit-learn's Lasso: 1/(2n) ||y - Xw - c||^2 + alpha ||w||_1, so alpha = lmbd / n
        sk = Lasso(alpha=lmbd / n, fit_intercept=intercept, tol=1e-14, max_iter=100_000).fit(X, y)
        r = y - X @ sk.coef_ - sk.intercept_
        p_star = 0.5 * r @ r + lmbd * np.abs(sk.coef_).sum()
        for name in (classical, learned):
            curve = final(df, name, fit_intercept=intercept)
            values = curve["objective_value"].to_numpy()
            assert values[0] > values[-1]  # from w = 0 down
            assert abs(values[-1] - p_star) <= 1e-8 * p_star, (name, intercept, values[-1], p_star)
            assert np.all(np.diff(curve["time"].to_numpy()) >= 0) and np.all(np.diff(curve["stop_val"]) > 0)
        if not intercept:  # the reference solver's own final objective (it skips intercepts)
            ref = final(df, "numpy_fista", fit_intercept=False)["objective_value"].to_numpy()[-1]
            assert abs(ref - p_star) <= 1e-8 * p_star
            for name in (classical, learned):
                assert final(df, name, fit_intercept=False)["objective_value"].to_numpy()[-1] <= ref + 1e-8 * ref


def test_benchopt_runs_l2o_on_a_logistic_benchmark(tmp_path):
    n, d = 60, 20
    bench = write_benchmark(tmp_path / "benchmark_logreg_l2", LOGREG_OBJECTIVE,
                            dataset(n, d, 0.0, "np.where(y > 0, 1, -1)"),
                            ("sklearn", LOGREG_REFERENCE))
    file = solver_file("logreg_l2")
    solvers = ["sklearn", f"{file}[solver=newton]", f"{file}[solver=lqn-logistic_l2_100]",
               f"{file}[solver=math_l2o-logistic_1000x50]"]
    df = run(bench, solvers, tmp_path / "logreg.parquet")
    names = set(df["solver_name"])
    assert not any("math_l2o" in s for s in names)  # trained on l1-penalized logistic regression: skipped
    ref = df.loc[df["solver_name"] == "sklearn", "objective_value"].to_numpy()
    assert len(ref) == 1
    for name in ("l2o[device=cpu,solver=newton]", "l2o[device=cpu,solver=lqn-logistic_l2_100]"):
        values = final(df, name)["objective_value"].to_numpy()
        assert values[0] == pytest.approx(n * np.log(2.0), rel=1e-12)  # w = 0: the SUM of the losses
        assert abs(values[-1] - ref[0]) <= 1e-8 * ref[0], (name, values[-1], ref[0])
