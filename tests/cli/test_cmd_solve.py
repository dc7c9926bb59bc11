"""``l2o solve``: files in, certified solutions out, checked against independent solvers
(scikit-learn, cvxpy, numpy); bad input is one line ``error: ...`` with exit status 2;
the MIMO kind (channels in, precoders out); ``--checkpoint`` (a trained run's solver)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from typer.testing import CliRunner

import l2o
from l2o.cli import NOT_CONVERGED, app
from l2o.problems import MimoFamily

runner = CliRunner()

def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])

def solve_ok(*args: str) -> dict:
    res = invoke("solve", *args, "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)

def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)

def spd(rng: np.random.Generator, n: int) -> np.ndarray:
    M = rng.standard_normal((n, n))
    return M @ M.T / n + 0.05 * np.eye(n)

# ----- solve: correctness against independent solvers -------------------------------------------


def lasso_objective(A, b, lam, x):
    return 0.5 * np.sum((A @ x - b) ** 2) + lam * np.abs(x).sum()


def sklearn_lasso(A, b, lam):
    from sklearn.linear_model import Lasso

    m = A.shape[0]
    model = Lasso(alpha=lam / m, fit_intercept=False, tol=1e-14, max_iter=1_000_000).fit(A, b)
    return model.coef_


def test_solve_lasso_npz_single_matches_sklearn(tmp_path):
    rng = np.random.default_rng(0)
    A, b, lam = rng.standard_normal((20, 30)), rng.standard_normal(20), 0.5
    np.savez(tmp_path / "lasso.npz", A=A, b=b, lam=lam)
    out = solve_ok("--problem", "lasso", "--data", tmp_path / "lasso.npz")
    assert out["solver"] == "fista_restart" and out["batch_size"] == 1 and out["dim"] == 30
    assert out["converged"] is True and out["certificate"] <= 1e-8
    x = np.array(out["x"])
    assert x.shape == (30,)
    f_ref = lasso_objective(A, b, lam, sklearn_lasso(A, b, lam))
    assert rel(lasso_objective(A, b, lam, x), f_ref) <= 1e-6
    assert rel(out["objective"], lasso_objective(A, b, lam, x)) <= 1e-12


def test_solve_lasso_mat_batch_matches_sklearn(tmp_path):
    rng = np.random.default_rng(1)
    B, m, n = 3, 15, 10
    A, b, lam = rng.standard_normal((B, m, n)), rng.standard_normal((B, m)), np.array([0.1, 0.5, 1.0])
    scipy.io.savemat(tmp_path / "lasso.mat", {"A": A, "b": b, "lam": lam})
    out = solve_ok("-p", "lasso", "-d", tmp_path / "lasso.mat", "--solver", "fista")
    x = np.array(out["x"])
    assert x.shape == (B, n) and out["batch_size"] == B and all(out["converged"])
    for i in range(B):
        f_ref = lasso_objective(A[i], b[i], lam[i], sklearn_lasso(A[i], b[i], lam[i]))
        assert rel(lasso_objective(A[i], b[i], lam[i], x[i]), f_ref) <= 1e-6


def logistic_objective(X, y, lam, penalty, w):
    loss = np.mean(np.logaddexp(0.0, -y * (X @ w)))
    return loss + (lam * np.abs(w).sum() if penalty == "l1" else 0.5 * lam * w @ w)


def sklearn_logistic(X, y, lam, penalty):
    import sklearn
    from sklearn.linear_model import LogisticRegression

    N = X.shape[0]
    kw = (dict(solver="liblinear", tol=1e-12, max_iter=100_000) if penalty == "l1"
          else dict(solver="lbfgs", tol=1e-12, max_iter=10_000))
    if penalty == "l1":  # scikit-learn 1.8 deprecated `penalty` for `l1_ratio`
        new_api = tuple(int(v) for v in sklearn.__version__.split(".")[:2]) >= (1, 8)
        kw.update({"l1_ratio": 1.0} if new_api else {"penalty": "l1"})
    model = LogisticRegression(C=1.0 / (N * lam), fit_intercept=False, **kw).fit(X, y)
    return model.coef_.ravel()


def write_csv(path: Path, X, y, header: bool) -> None:
    lines = [",".join([f"x{j}" for j in range(X.shape[1])] + ["label"])] if header else []
    lines += [",".join([*(repr(float(v)) for v in row), str(int(lab))]) for row, lab in zip(X, y)]
    path.write_text("\n".join(lines) + "\n")


def logistic_data(seed: int, N: int = 80, d: int = 5):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, d))
    w = rng.standard_normal(d)
    y = np.where(X @ w + 0.8 * rng.standard_normal(N) > 0, 1.0, -1.0)
    return X, y


@pytest.mark.parametrize("penalty,header,labels01", [("l1", True, False), ("l2", False, True)])
def test_solve_logistic_csv_matches_sklearn(tmp_path, penalty, header, labels01):
    X, y = logistic_data(2)
    lam = 0.02
    write_csv(tmp_path / "d.csv", X, (y > 0).astype(int) if labels01 else y, header)
    out = solve_ok("-p", "logistic", "-d", tmp_path / "d.csv", "--lam", lam, "--penalty", penalty)
    assert out["solver"] == ("fista_restart" if penalty == "l1" else "newton")
    w = np.array(out["x"])
    f_ref = logistic_objective(X, y, lam, penalty, sklearn_logistic(X, y, lam, penalty))
    assert rel(logistic_objective(X, y, lam, penalty, w), f_ref) <= 1e-6


def test_solve_logistic_mat_with_penalty_key(tmp_path):
    X, y = logistic_data(3, N=60, d=4)
    scipy.io.savemat(tmp_path / "l.mat", {"X": X, "y": y.reshape(-1, 1), "lam": 0.03, "penalty": "l1"})
    out = solve_ok("-p", "logistic", "-d", tmp_path / "l.mat")
    w = np.array(out["x"])
    assert w.shape == (4,) and out["certificate_name"] == "relative duality gap"
    f_ref = logistic_objective(X, y, 0.03, "l1", sklearn_logistic(X, y, 0.03, "l1"))
    assert rel(logistic_objective(X, y, 0.03, "l1", w), f_ref) <= 1e-6


def test_solve_box_qp_matches_cvxpy(tmp_path):
    import cvxpy as cp

    rng = np.random.default_rng(4)
    n = 8
    Q, q = spd(rng, n), rng.standard_normal(n)
    lower, upper = np.full(n, -0.3), np.full(n, 0.3)
    lower[0], upper[1] = -np.inf, np.inf
    np.savez(tmp_path / "qp.npz", Q=Q, q=q, lower=lower, upper=upper)
    out = solve_ok("-p", "qp", "-d", tmp_path / "qp.npz")
    assert out["solver"] == "apgd" and out["converged"]
    x = np.array(out["x"])
    assert np.all(x >= lower - 1e-12) and np.all(x <= upper + 1e-12)

    z = cp.Variable(n)
    fin_lo, fin_up = np.isfinite(lower), np.isfinite(upper)
    prob = cp.Problem(
        cp.Minimize(0.5 * cp.quad_form(z, cp.psd_wrap(Q)) + q @ z),
        [z[fin_lo] >= lower[fin_lo], z[fin_up] <= upper[fin_up]],
    )
    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    assert rel(0.5 * x @ Q @ x + q @ x, prob.value) <= 1e-6


def test_solve_qp_batch_mat_and_out_file(tmp_path):
    rng = np.random.default_rng(5)
    B, n = 4, 6
    Q = np.stack([spd(rng, n) for _ in range(B)])
    q = rng.standard_normal((B, n))
    scipy.io.savemat(tmp_path / "qp.mat", {"Q": Q, "q": q})
    res = invoke("solve", "-p", "qp", "-d", tmp_path / "qp.mat", "--out", tmp_path / "sol.npz")
    assert res.exit_code == 0, res.output
    assert "converged 4/4" in res.stdout and "newton" in res.stdout
    with np.load(tmp_path / "sol.npz") as z:
        assert set(z.files) >= {"x", "objective", "iterations", "converged", "certificate", "certificate_name"}
        assert z["x"].shape == (B, n) and z["objective"].shape == (B,) and z["converged"].all()
        assert z["iterations"].shape == (B,) and z["certificate"].shape == (B,)
        assert str(z["certificate_name"]) == "relative gradient norm"
        x_ref = np.linalg.solve(Q, -q[..., None])[..., 0]
        assert np.allclose(z["x"], x_ref, rtol=1e-8, atol=1e-10)
    assert sorted(os.listdir(tmp_path)) == ["qp.mat", "sol.npz"]  # no temporary file left


def test_singular_qp_with_q_in_range_is_accepted(tmp_path):
    rng = np.random.default_rng(9)
    A, b = rng.standard_normal((3, 6)), rng.standard_normal(3)  # Q = A^T A has rank 3
    np.savez(tmp_path / "qp.npz", Q=A.T @ A, q=-A.T @ b)
    out = solve_ok("-p", "qp", "-d", tmp_path / "qp.npz", "--solver", "fista_restart", "--tol", "1e-7",
                   "--max-iter", "20000")
    x = np.array(out["x"])
    assert np.linalg.norm(A.T @ (A @ x - b)) <= 1e-5 * np.linalg.norm(A.T @ b)


def test_out_keys_for_a_single_instance(tmp_path):
    rng = np.random.default_rng(6)
    np.savez(tmp_path / "l.npz", A=rng.standard_normal((6, 4)), b=rng.standard_normal(6), lam=0.1)
    res = invoke("solve", "-p", "lasso", "-d", tmp_path / "l.npz", "-o", tmp_path / "x.npz", "--max-iter", 5000)
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "x.npz") as z:
        assert z["x"].shape == (4,) and z["objective"].shape == () and z["converged"].shape == ()
        assert z["iterations"].dtype.kind == "i" and z["converged"].dtype == bool
        assert str(z["certificate_name"]) == "relative duality gap" and str(z["solver"]) == "fista_restart"


def test_json_summary(tmp_path):
    rng = np.random.default_rng(7)
    np.savez(tmp_path / "l.npz", A=rng.standard_normal((6, 4)), b=rng.standard_normal((2, 6)), lam=0.1)
    out = solve_ok("-p", "lasso", "-d", tmp_path / "l.npz", "--tol", "1e-6", "--max-iter", "3000")
    for key in ("x", "objective", "iterations", "converged", "certificate", "certificate_name",
                "seconds", "solver", "problem", "batch_size", "dim"):
        assert key in out
    assert out["problem"] == "lasso" and out["batch_size"] == 2 and out["dim"] == 4
    assert isinstance(out["seconds"], float) and 0 <= out["seconds"] < 60
    assert len(out["x"]) == 2 and len(out["x"][0]) == 4 and out["tol"] == 1e-6


def test_max_iter_zero_reports_not_converged(tmp_path):
    rng = np.random.default_rng(8)
    np.savez(tmp_path / "l.npz", A=rng.standard_normal((6, 4)), b=rng.standard_normal(6), lam=0.1)
    res = invoke("solve", "-p", "lasso", "-d", tmp_path / "l.npz", "--max-iter", "0", "--json",
                 "-o", tmp_path / "x.npz")
    assert res.exit_code == NOT_CONVERGED == 3  # documented in `l2o solve --help`
    out = json.loads(res.stdout)
    assert out["converged"] is False and out["iterations"] == 0
    assert res.stderr.startswith("warning: 1 of 1 instance(s) did not reach --tol")
    assert not np.load(tmp_path / "x.npz")["converged"]  # the solution is still written
    res = invoke("solve", "-p", "lasso", "-d", tmp_path / "l.npz", "--max-iter", "0")
    assert res.exit_code == NOT_CONVERGED and "converged 0/1 to" in res.stdout
    res = invoke("solve", "-p", "lasso", "-d", tmp_path / "l.npz")  # converges: exit 0
    assert res.exit_code == 0 and "converged 1/1 to" in res.stdout and res.stderr == ""
    help_text = " ".join(invoke("solve", "--help").stdout.split())
    assert f"{NOT_CONVERGED} when some instance did not reach --tol" in help_text


# ----- bad input -----------------------------------------------------------------------------


RNG = np.random.default_rng(100)
Q4 = spd(RNG, 4)
A54, B5 = RNG.standard_normal((5, 4)), RNG.standard_normal(5)
X12, Y12 = RNG.standard_normal((12, 3)), np.array([1.0, -1.0] * 6)


def with_entry(a: np.ndarray, idx, value) -> np.ndarray:
    a = np.array(a, dtype=float)
    a[idx] = value
    return a


def npz(**arrays):
    def write(d: Path) -> Path:
        np.savez(d / "in.npz", **arrays)
        return d / "in.npz"
    return write


def raw(name: str, content: bytes | str):
    def write(d: Path) -> Path:
        (d / name).write_bytes(content.encode() if isinstance(content, str) else content)
        return d / name
    return write


def truncated_npz(d: Path) -> Path:
    np.savez(d / "full.npz", A=A54, b=B5, lam=0.1)
    data = (d / "full.npz").read_bytes()
    (d / "in.npz").write_bytes(data[: len(data) // 2])
    return d / "in.npz"


def npy_as_npz(d: Path) -> Path:
    with open(d / "in.npz", "wb") as fh:
        np.save(fh, A54)
    return d / "in.npz"


def valid_lasso(d: Path) -> Path:
    return npz(A=A54, b=B5, lam=0.1)(d)


def valid_logistic_l1(d: Path) -> Path:
    return npz(X=X12, y=Y12, lam=0.1, penalty="l1")(d)


NOT_SYM = Q4.copy()
NOT_SYM[0, 1] += 0.01
INDEFINITE = np.diag([1.0, 2.0, -0.5, 3.0])

# (id, problem, writer or None for a missing file, extra args, fragments of the one error line)
BAD = [
    ("qp-Q-1d", "qp", npz(Q=np.ones(4), q=np.ones(4)), [], ["'Q'", "(4,)", "(n, n)"]),
    ("qp-Q-not-square", "qp", npz(Q=np.ones((4, 3)), q=np.ones(3)), [], ["'Q'", "(4, 3)", "square"]),
    ("qp-q-length", "qp", npz(Q=Q4, q=np.ones(5)), [], ["'q'", "(5,)", "expected (4,)"]),
    ("qp-batch-mismatch", "qp", npz(Q=np.stack([Q4, Q4]), q=np.ones((3, 4))), [], ["batch", "Q has 2", "q has 3"]),
    ("qp-Q-nan", "qp", npz(Q=with_entry(Q4, (1, 2), np.nan), q=np.ones(4)), [], ["'Q'", "nan", "finite"]),
    ("qp-q-inf", "qp", npz(Q=Q4, q=with_entry(np.ones(4), 2, np.inf)), [], ["'q'", "inf", "finite"]),
    ("qp-lower-nan", "qp", npz(Q=Q4, q=np.ones(4), lower=with_entry(np.zeros(4), 0, np.nan)), [], ["'lower'", "nan"]),
    ("qp-lower-plus-inf", "qp", npz(Q=Q4, q=np.ones(4), lower=with_entry(np.zeros(4), 0, np.inf)), [],
     ["'lower'", "+inf"]),
    ("qp-asymmetric", "qp", npz(Q=NOT_SYM, q=np.ones(4)), [], ["'Q'", "not symmetric"]),
    ("qp-indefinite", "qp", npz(Q=INDEFINITE, q=np.ones(4)), [],
     ["'Q'", "not positive semidefinite", "-0.5", "convex"]),
    ("qp-unbounded", "qp", npz(Q=np.diag([1.0, 2.0, 0.0, 3.0]), q=np.ones(4)), [], ["unbounded", "'q'", "range"]),
    ("qp-lower-gt-upper", "qp", npz(Q=Q4, q=np.ones(4), lower=np.ones(4), upper=with_entry(np.ones(4) * 2, 3, 0.5)), [],
     ["'lower' > 'upper'", "(3,)"]),
    ("qp-missing-q", "qp", npz(Q=Q4), [], ["'q'", "missing"]),
    ("qp-lam-option", "qp", npz(Q=Q4, q=np.ones(4)), ["--lam", "1"], ["--lam", "qp"]),
    ("lasso-b-shape", "lasso", npz(A=A54, b=np.ones((3, 7)), lam=0.1), [],
     ["lasso key 'b' has shape (3, 7) but A has 5 rows; expected (5,) or (3, 5)"]),
    ("lasso-b-batch", "lasso", npz(A=np.stack([A54] * 2), b=np.ones((3, 5)), lam=0.1), [], ["'b'", "batch of 2"]),
    ("lasso-lam-batch", "lasso", npz(A=A54, b=np.ones((2, 5)), lam=[0.1, 0.2, 0.3]), [], ["batch", "lam has 3"]),
    ("lasso-A-nan", "lasso", npz(A=with_entry(A54, (0, 0), np.nan), b=B5, lam=0.1), [], ["'A'", "nan"]),
    ("lasso-b-inf", "lasso", npz(A=A54, b=with_entry(B5, 4, -np.inf), lam=0.1), [], ["'b'", "-inf"]),
    ("lasso-lam-negative", "lasso", npz(A=A54, b=B5, lam=-0.1), [], ["'lam'", "-0.1", ">= 0"]),
    ("lasso-lam-nan", "lasso", npz(A=A54, b=B5, lam=np.nan), [], ["'lam'", "nan"]),
    ("lasso-lam-matrix", "lasso", npz(A=A54, b=B5, lam=np.ones((2, 2))), [], ["'lam'", "(2, 2)"]),
    ("lasso-missing-lam", "lasso", npz(A=A54, b=B5), [], ["'lam'", "missing", "--lam"]),
    ("lasso-missing-A", "lasso", npz(b=B5, lam=0.1), [], ["'A'", "missing"]),
    ("lasso-A-strings", "lasso", npz(A=np.array([["a", "b"]]), b=B5, lam=0.1), [], ["'A'", "real numbers"]),
    ("lasso-A-complex", "lasso", npz(A=A54 + 1j, b=B5, lam=0.1), [], ["'A'", "complex"]),
    ("lasso-A-empty", "lasso", npz(A=np.zeros((0, 4)), b=B5, lam=0.1), [], ["'A'", "empty"]),
    ("lasso-unknown-key", "lasso", npz(A=A54, b=B5, lamda=0.1), [], ["'lamda'", "unknown"]),
    ("lasso-penalty-option", "lasso", valid_lasso, ["--penalty", "l2"], ["--penalty"]),
    ("logistic-y-not-binary", "logistic", npz(X=X12, y=np.arange(12) % 3), [], ["'y'", "0, 1, 2", "binary"]),
    ("logistic-y-nan", "logistic", npz(X=X12, y=with_entry(Y12, 3, np.nan)), [], ["'y'", "nan"]),
    ("logistic-X-inf", "logistic", npz(X=with_entry(X12, (2, 1), np.inf), y=Y12), [], ["'X'", "inf"]),
    ("logistic-y-length", "logistic", npz(X=X12, y=Y12[:10]), [], ["'y'", "(10,)", "12 rows"]),
    ("logistic-penalty", "logistic", npz(X=X12, y=Y12, penalty="l3"), [], ["'penalty'", "'l3'", "'l1' or 'l2'"]),
    ("logistic-penalty-number", "logistic", npz(X=X12, y=Y12, penalty=1), [], ["'penalty'", "'l1' or 'l2'"]),
    ("logistic-penalty-option", "logistic", npz(X=X12, y=Y12), ["--penalty", "elastic"], ["--penalty", "'elastic'"]),
    ("logistic-lam-negative", "logistic", npz(X=X12, y=Y12, lam=-1.0), [], ["'lam'", "-1"]),
    ("logistic-lam-option-negative", "logistic", npz(X=X12, y=Y12), ["--lam=-2"], ["--lam", "-2"]),
    ("logistic-missing-y", "logistic", npz(X=X12), [], ["'y'", "missing"]),
    ("npz-zero-bytes", "lasso", raw("in.npz", b""), [], ["empty", "0 bytes"]),
    ("npz-truncated", "lasso", truncated_npz, [], ["truncated or corrupt"]),
    ("npz-random-bytes", "lasso", raw("in.npz", np.random.default_rng(0).bytes(300)), [], ["not a .npz archive"]),
    ("npz-zip-signature-garbage", "lasso", raw("in.npz", b"PK\x03\x04" + bytes(200)), [], ["in.npz"]),
    ("npy-renamed-npz", "lasso", npy_as_npz, [], [".npy", "numpy.savez"]),
    ("mat-zero-bytes", "qp", raw("in.mat", b""), [], ["empty"]),
    ("mat-random-bytes", "qp", raw("in.mat", np.random.default_rng(1).bytes(300)), [], ["MATLAB"]),
    ("csv-zero-bytes", "logistic", raw("in.csv", ""), [], ["empty"]),
    ("csv-blank", "logistic", raw("in.csv", "\n \n"), [], ["no rows"]),
    ("csv-header-only", "logistic", raw("in.csv", "a,b,label\n"), [], ["header", "no data rows"]),
    ("csv-not-a-number", "logistic", raw("in.csv", "a,b,label\n1,2,1\n3,abc,0\n"), [], ["line 3", "column 2", "'abc'"]),
    ("csv-ragged", "logistic", raw("in.csv", "1,2,1\n3,4\n"), [], ["line 2", "2 columns", "expected 3"]),
    ("csv-one-column", "logistic", raw("in.csv", "1\n0\n"), [], ["1 column", "at least 2"]),
    ("csv-labels", "logistic", raw("in.csv", "1,2,1\n3,4,5\n"), [], ["'y'", "binary"]),
    ("csv-binary-garbage", "logistic", raw("in.csv", b"\xff\xfe\x00\x81" * 50), [], ["CSV"]),
    ("csv-for-lasso", "lasso", raw("in.csv", "1,2\n"), [], ["extension '.csv'", ".npz, .mat"]),
    ("unsupported-extension", "qp", raw("in.txt", "Q"), [], ["extension '.txt'"]),
    ("missing-file", "qp", None, [], ["does not exist"]),
    ("unknown-problem", "svm", valid_lasso, [], ["'svm'", "qp, lasso, logistic"]),
    ("unknown-solver", "lasso", valid_lasso, ["--solver", "sgd"], ["'sgd'", "fista_restart"]),
    ("gd-on-lasso", "lasso", valid_lasso, ["--solver", "gd"], ["'gd'", "nonsmooth"]),
    ("newton-on-l1-logistic", "logistic", valid_logistic_l1, ["--solver", "newton"], ["'newton'", "nonsmooth"]),
    ("tol-zero", "lasso", valid_lasso, ["--tol", "0"], ["--tol", "> 0"]),
    ("tol-negative", "lasso", valid_lasso, ["--tol=-1e-3"], ["--tol", "> 0"]),
    ("tol-not-a-number", "lasso", valid_lasso, ["--tol", "abc"], ["--tol"]),
    ("max-iter-negative", "lasso", valid_lasso, ["--max-iter=-1"], ["--max-iter", ">= 0"]),
    ("out-extension", "lasso", valid_lasso, ["--out", "sol.txt"], ["--out", ".npz"]),
    ("out-missing-directory", "lasso", valid_lasso, ["--out", "nowhere/sol.npz"], ["--out", "does not exist"]),
]


@pytest.mark.parametrize("problem,writer,extra,fragments", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_one_line_exit_2(tmp_path, monkeypatch, problem, writer, extra, fragments):
    monkeypatch.chdir(tmp_path)
    path = writer(tmp_path) if writer is not None else tmp_path / "missing.npz"
    res = invoke("solve", "--problem", problem, "--data", path, *extra)
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "Traceback" not in res.output
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_required_option_is_one_line():
    res = invoke("solve", "--problem", "qp")
    assert res.exit_code == 2 and res.stderr.strip().splitlines() == ["error: Missing option '--data' / '-d'."]


def test_existing_out_untouched_when_solve_fails(tmp_path):
    out = tmp_path / "sol.npz"
    out.write_bytes(b"previous result")
    np.savez(tmp_path / "bad.npz", A=A54, b=np.ones(3), lam=0.1)
    res = invoke("solve", "-p", "lasso", "-d", tmp_path / "bad.npz", "--out", out)
    assert res.exit_code == 2
    np.savez(tmp_path / "ok.npz", A=A54, b=B5, lam=0.1)
    res = invoke("solve", "-p", "lasso", "-d", tmp_path / "ok.npz", "--out", out, "--solver", "gd")
    assert res.exit_code == 2
    assert out.read_bytes() == b"previous result"
    assert sorted(os.listdir(tmp_path)) == ["bad.npz", "ok.npz", "sol.npz"]
    # a successful solve replaces it whole, with no temporary file left behind
    res = invoke("solve", "-p", "lasso", "-d", tmp_path / "ok.npz", "--out", out)
    assert res.exit_code == 0, res.output
    with np.load(out) as z:
        assert z["x"].shape == (4,)
    assert sorted(os.listdir(tmp_path)) == ["bad.npz", "ok.npz", "sol.npz"]

# ----- mimo: channels from a file, WMMSE by default, precoders out --------------------------------

@pytest.fixture(scope="module")
def channels():
    p = MimoFamily(cells=2, users=2, tx_antennas=4, rx_antennas=2, streams=1, power=5.0).sample(3, 4)
    return p, p.H.numpy()

def test_batch_from_npz_matches_wmmse_and_writes_precoders(channels, tmp_path):
    p, H = channels
    np.savez(tmp_path / "h.npz", H=H, streams=1, power=5.0)
    res = invoke("solve", "-p", "mimo", "-d", tmp_path / "h.npz", "--tol", 1e-7, "--out", tmp_path / "s.npz")
    assert res.exit_code == 0, res.output
    out = np.load(tmp_path / "s.npz")
    assert out["V"].shape == (3, 2, 2, 4, 1) and out["V"].dtype == np.complex128
    assert bool(out["converged"].all())
    ref = l2o.solve(l2o.make_solver("wmmse"), p, tol=1e-7)
    np.testing.assert_allclose(out["sum_rate"], p.sum_rate(ref.x).numpy(), rtol=1e-9)
    power = (np.abs(out["V"]) ** 2).sum(axis=(2, 3, 4))
    assert (power <= 5.0 * (1 + 1e-9)).all()

def test_one_instance_json_and_per_cell_power(channels, tmp_path):
    _, H = channels
    np.savez(tmp_path / "one.npz", H=H[0], power=np.array([1.0, 3.0]), noise=0.5, weights=np.ones((2, 2)))
    res = invoke("solve", "-p", "mimo", "-d", tmp_path / "one.npz", "--json", "--tol", 1e-6)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["solver"] == "wmmse" and out["batched"] is False and out["sum_rate"] > 0
    assert len(out["x"]) == 2 * 2 * 2 * 4 * 2  # streams default min(M, N) = 2

@pytest.mark.parametrize(
    "arrays, message",
    [
        (lambda H: {"H": H[:, :, :, :1]}, "mimo key 'H' has shape (3, 2, 2, 1, 2, 4)"),
        (lambda H: {"H": H[..., :1, :], "streams": 2},
         "mimo key 'streams' is 2; expected an integer in [1, min(M=4, N=1)]"),
        (lambda H: {"H": H, "streams": 3}, "mimo key 'streams' is 3; expected an integer in [1, min(M=4, N=2)]"),
        (lambda H: {"H": H, "power": -1.0}, "mimo key 'power' has the value -1; expected numbers > 0"),
        (lambda H: {"H": H, "power": np.ones(5)}, "mimo key 'power' has shape (5,); expected a scalar or (2,)"),
        (lambda H: {"H": np.where(np.arange(4) == 2, np.nan, H)}, "mimo key 'H' contains"),
        (lambda H: {"H": H, "weights": np.ones(3)}, "mimo key 'weights' has shape (3,)"),
        (lambda H: {"H": H, "lamda": 1.0}, "mimo: unknown key(s) 'lamda'"),
        (lambda H: {"H": H.astype(str)}, "mimo key 'H' holds"),
    ],
)
def test_bad_mimo_files_are_one_line_errors(channels, tmp_path, arrays, message):
    _, H = channels
    np.savez(tmp_path / "bad.npz", **arrays(H))
    res = invoke("solve", "-p", "mimo", "-d", tmp_path / "bad.npz")
    assert res.exit_code == 2
    assert message in res.output and "Traceback" not in res.output

def test_lam_is_refused_for_mimo(channels, tmp_path):
    np.savez(tmp_path / "h.npz", H=channels[1])
    res = invoke("solve", "-p", "mimo", "-d", tmp_path / "h.npz", "--lam", 0.1)
    assert res.exit_code == 2 and "--lam and --penalty apply to lasso and logistic only" in res.output

# ----- --checkpoint: the trained solver of a run directory (fixtures in conftest.py) --------------

def test_solve_with_checkpoint_least_squares(ls_run, tmp_path):
    rng = np.random.default_rng(0)
    A, b = rng.standard_normal((3, 12, 8)), rng.standard_normal((3, 12))
    np.savez(tmp_path / "ls.npz", A=A, b=b)  # no lam: least squares
    res = invoke("solve", "--checkpoint", ls_run, "--data", tmp_path / "ls.npz", "--tol", "1e-10", "--max-iter",
                 "20000", "--json", "--out", tmp_path / "x.npz")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["solver"] == "lgd" and out["problem"] == "lasso" and out["checkpoint"] == str(ls_run)
    assert out["converged"] == [True, True, True]
    x = np.array(out["x"])
    for i in range(3):
        ref = np.linalg.lstsq(A[i], b[i], rcond=None)[0]
        np.testing.assert_allclose(x[i], ref, rtol=1e-4, atol=1e-6)
    assert np.load(tmp_path / "x.npz")["x"].shape == (3, 8)
    res = invoke("solve", "-c", ls_run, "-d", tmp_path / "ls.npz", "--max-iter", "20000")
    assert res.exit_code == 0, res.output
    assert "solver lgd" in res.stdout

def test_solve_with_checkpoint_errors(ls_run, lasso_run, tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "lam.npz", A=rng.standard_normal((12, 8)), b=rng.standard_normal(12), lam=0.5)
    cases = [
        (("--checkpoint", ls_run, "--data", tmp_path / "lam.npz"),
         "error: the checkpoint's solver cannot solve this data: solver 'lgd' handles smooth"),
        (("--checkpoint", ls_run, "--data", tmp_path / "lam.npz", "--problem", "qp"),
         "error: --problem qp does not match the checkpoint: its solver was trained on the least_squares family"),
        (("--checkpoint", ls_run, "--data", tmp_path / "lam.npz", "--solver", "fista"),
         "error: --solver and --checkpoint exclude each other"),
        (("--checkpoint", tmp_path / "nope", "--data", tmp_path / "lam.npz"),
         f"error: run directory '{tmp_path / 'nope'}' does not exist"),
        (("--checkpoint", lasso_run, "--data", tmp_path / "lam.npz"),
         "error: the checkpoint's solver cannot solve this data: solver 'alista': problem A has shape (12, 8)"),
        (("--data", tmp_path / "lam.npz"), "error: Missing option '--problem' / '-p' (or --checkpoint DIR"),
    ]
    for args, fragment in cases:
        res = invoke("solve", *args)
        assert res.exit_code == 2, (args, res.output)
        assert res.stderr.startswith(fragment), (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1

def test_solve_with_alista_checkpoint_on_its_dictionary(lasso_run, tmp_path):
    import l2o

    family = l2o.LassoFamily(m=10, n=20, nnz=3)
    inst = family.sample(2, 5)
    np.savez(tmp_path / "lasso.npz", A=family.dictionary().numpy(), b=inst.b.numpy(), lam=0.1)
    res = invoke("solve", "--checkpoint", lasso_run, "--data", tmp_path / "lasso.npz", "--max-iter", "2", "--json")
    assert res.exit_code == NOT_CONVERGED, res.output  # 2 iterations do not reach --tol 1e-8
    out = json.loads(res.stdout)
    assert out["solver"] == "alista" and out["problem"] == "lasso" and len(out["x"]) == 2
    assert all(np.isfinite(out["objective"]))


@pytest.mark.parametrize("tol", [1e-6, 1e-10])
def test_float32_iterates_are_certified_in_float64(tmp_path, tol):
    """--iterate-dtype auto computes float32 iterates for FISTA on float64 LASSO data; the
    certificate is float64, so every instance meets tol (1e-10 is below float32's
    resolution: those instances continue in float64) and agrees with scikit-learn."""
    rng = np.random.default_rng(3)
    A = rng.standard_normal((30, 50))
    A /= np.linalg.norm(A, axis=0)
    B = rng.standard_normal((6, 30))
    np.savez(tmp_path / "l.npz", A=A, b=B, lam=0.1)
    auto = solve_ok("-p", "lasso", "-d", tmp_path / "l.npz", "--tol", str(tol))
    f64 = solve_ok("-p", "lasso", "-d", tmp_path / "l.npz", "--tol", str(tol), "--iterate-dtype", "float64")
    assert auto["iterate_dtype"] == "float32" and f64["iterate_dtype"] == "float64"
    assert all(auto["converged"]) and max(auto["certificate"]) <= tol
    for b in range(6):
        ref = lasso_objective(A, B[b], 0.1, sklearn_lasso(A, B[b], 0.1))
        assert lasso_objective(A, B[b], 0.1, np.array(auto["x"][b])) <= ref + 10 * tol * abs(ref) + 1e-12


def test_bad_iterate_dtype_is_one_line(tmp_path):
    np.savez(tmp_path / "l.npz", A=np.eye(3), b=np.ones(3), lam=0.1)
    res = invoke("solve", "-p", "lasso", "-d", tmp_path / "l.npz", "--iterate-dtype", "half")
    assert res.exit_code == 2 and "--iterate-dtype is 'half'; expected one of auto, float32, float64" in res.output


def test_a_solver_that_does_not_fit_names_the_problem_kind(tmp_path):
    rng = np.random.default_rng(9)
    np.savez(tmp_path / "l.npz", A=rng.standard_normal((6, 4)), b=rng.standard_normal(6), lam=0.1)
    res = invoke("solve", "-p", "lasso", "-d", tmp_path / "l.npz", "--solver", "wmmse")
    assert res.exit_code == 2 and "Instances" not in res.stderr
    assert res.stderr.strip() == ("error: solver 'wmmse' solves the MIMO sum-rate family only ('mimo' and the mimo_* "
                                  "presets), got a least-squares / LASSO problem")


def test_piped_summary_lines_are_not_wrapped(tmp_path):
    """stdout is not a terminal under CliRunner: a long output path stays on its line."""
    rng = np.random.default_rng(10)
    np.savez(tmp_path / "l.npz", A=rng.standard_normal((6, 4)), b=rng.standard_normal(6), lam=0.1)
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    res = invoke("solve", "-p", "lasso", "-d", tmp_path / "l.npz", "-o", deep / "x.npz")
    assert res.exit_code == 0, res.output
    assert f"wrote {deep / 'x.npz'}" in res.stdout.splitlines()
