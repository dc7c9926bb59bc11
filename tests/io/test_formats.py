"""l2o.io: reading .npz / .mat / .csv problems, validation, atomic .npz output."""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.io
import torch

from l2o.io import DataError, check_output_path, load, load_problem, save_npz_atomic, validate
from l2o.problems import LassoInstances, LogisticInstances, QuadraticInstances


def spd(rng: np.random.Generator, n: int) -> np.ndarray:
    M = rng.standard_normal((n, n))
    return M @ M.T + 0.1 * np.eye(n)


def test_single_lasso_npz_is_a_batch_of_one(tmp_path):
    rng = np.random.default_rng(0)
    A, b = rng.standard_normal((5, 8)), rng.standard_normal(5)
    np.savez(tmp_path / "p.npz", A=A, b=b, lam=0.3)
    loaded = load("lasso", tmp_path / "p.npz")
    inst = loaded.instances
    assert isinstance(inst, LassoInstances) and not loaded.batched
    assert (inst.batch_size, inst.dim, inst.dtype) == (1, 8, torch.float64)
    assert inst.b.shape == (1, 5) and torch.allclose(inst.lam, torch.tensor([0.3], dtype=torch.float64))
    assert isinstance(load_problem("lasso", tmp_path / "p.npz"), LassoInstances)


def test_batch_axis_on_any_key_and_shared_arrays(tmp_path):
    rng = np.random.default_rng(1)
    A = rng.standard_normal((5, 8))
    # shared A and b, a regularization path of 4 values of lam
    loaded = validate("lasso", {"A": A, "b": rng.standard_normal(5), "lam": [0.1, 0.2, 0.3, 0.4]})
    assert loaded.batched and loaded.instances.batch_size == 4 and loaded.instances.A.shape == (5, 8)
    # per-instance Q, shared q
    Q = np.stack([spd(rng, 3) for _ in range(2)])
    loaded = validate("qp", {"Q": Q, "q": np.ones(3)})
    assert loaded.batched and loaded.instances.q.shape == (2, 3)


def test_mat_vectors_scalars_and_strings(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, 4))
    y = (X[:, 0] > 0).astype(float)
    scipy.io.savemat(tmp_path / "l.mat", {"X": X, "y": y.reshape(-1, 1), "lam": 0.05, "penalty": "l1"})
    loaded = load("logistic", tmp_path / "l.mat")
    inst = loaded.instances
    assert isinstance(inst, LogisticInstances) and not loaded.batched
    assert inst.penalty == "l1" and inst.y.shape == (1, 30) and set(inst.y.unique().tolist()) == {-1.0, 1.0}
    assert float(inst.lam[0]) == pytest.approx(0.05)
    Q = spd(rng, 4)
    scipy.io.savemat(tmp_path / "q.mat", {"Q": Q, "q": rng.standard_normal(4)})  # q saved as a 1 x 4 row
    inst = load("qp", tmp_path / "q.mat").instances
    assert isinstance(inst, QuadraticInstances) and inst.q.shape == (1, 4) and not inst.is_constrained


@pytest.mark.parametrize("header", [True, False])
def test_csv_with_or_without_header(tmp_path, header):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, 3))
    y = np.where(X[:, 1] > 0, 1, 0)
    rows = [",".join([*(repr(float(v)) for v in row), str(int(lab))]) for row, lab in zip(X, y)]
    lines = (["f1,f2,f3,label"] if header else []) + rows
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    inst = load("logistic", tmp_path / "d.csv").instances
    assert inst.X.shape == (20, 3) and np.allclose(inst.X.numpy(), X)
    assert np.array_equal(inst.y[0].numpy(), np.where(y > 0, 1.0, -1.0))
    # documented defaults: penalty l2, lam = 1/N (scikit-learn's C = 1)
    assert inst.penalty == "l2" and float(inst.lam[0]) == pytest.approx(1 / 20)


def test_overrides_and_infinite_bounds():
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((10, 2)), np.array([1, -1] * 5)
    inst = validate("logistic", {"X": X, "y": y, "lam": 1.0, "penalty": "l2"}, lam=0.5, penalty="L1").instances
    assert inst.penalty == "l1" and float(inst.lam[0]) == 0.5
    # bounds that are all infinite are no box at all
    unbounded = {"lower": np.full(3, -np.inf), "upper": np.full(3, np.inf)}
    inst = validate("qp", {"Q": spd(rng, 3), "q": np.ones(3), **unbounded}).instances
    assert not inst.is_constrained
    inst = validate("qp", {"Q": spd(rng, 3), "q": np.ones(3), "upper": np.array([1.0, np.inf, 2.0])}).instances
    assert inst.is_constrained


def test_tiny_asymmetry_is_accepted_and_removed():
    rng = np.random.default_rng(5)
    Q = spd(rng, 4)
    Q[0, 1] += 1e-13 * np.abs(Q).max()
    inst = validate("qp", {"Q": Q, "q": np.ones(4)}).instances
    assert torch.equal(inst.Q, inst.Q.mT)


def test_errors_are_value_errors_with_one_line():
    with pytest.raises(DataError) as info:
        validate("lasso", {"A": np.ones((5, 4)), "b": np.ones((3, 7)), "lam": 0.1})
    assert isinstance(info.value, ValueError)
    assert str(info.value) == "lasso key 'b' has shape (3, 7) but A has 5 rows; expected (5,) or (3, 5)"
    with pytest.raises(DataError, match="unknown key"):
        validate("logistic", {"X": np.ones((2, 2)), "y": [1, -1], "lamda": 0.1})


def test_save_npz_atomic_exact_name_and_permissions(tmp_path):
    out = tmp_path / "sol.npz"
    save_npz_atomic(out, {"x": np.arange(3.0), "name": np.array("relative duality gap")})
    assert sorted(os.listdir(tmp_path)) == ["sol.npz"]
    with np.load(out) as z:
        assert z["x"].tolist() == [0.0, 1.0, 2.0] and str(z["name"]) == "relative duality gap"
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~umask
    # no ".npz" appended to a name that lacks it (the handle is written, not the name)
    save_npz_atomic(tmp_path / "plain", {"x": np.zeros(1)})
    assert (tmp_path / "plain").exists() and not (tmp_path / "plain.npz").exists()


def test_save_npz_atomic_failure_keeps_old_file(tmp_path, monkeypatch):
    out = tmp_path / "sol.npz"
    out.write_bytes(b"old contents")

    def broken_savez(fh, **arrays):
        fh.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError):
        save_npz_atomic(out, {"x": np.zeros(2)})
    assert out.read_bytes() == b"old contents"
    assert os.listdir(tmp_path) == ["sol.npz"]


def test_unbounded_check_broadcasts_over_batches():
    rng = np.random.default_rng(6)
    singular = np.diag([1.0, 0.0, 2.0])
    ok_q, bad_q = np.array([1.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0])
    validate("qp", {"Q": singular, "q": np.stack([ok_q, ok_q])})
    validate("qp", {"Q": np.stack([singular, spd(rng, 3)]), "q": bad_q * 0 + ok_q})
    with pytest.raises(DataError, match=r"unbounded below \(instance 1\)"):
        validate("qp", {"Q": singular, "q": np.stack([ok_q, bad_q])})
    with pytest.raises(DataError, match=r"unbounded below \(instance 0\)"):
        validate("qp", {"Q": np.stack([singular, spd(rng, 3)]), "q": np.stack([bad_q, bad_q])})
    # with a box the same data are a valid (bounded) problem
    validate("qp", {"Q": singular, "q": bad_q, "lower": -np.ones(3), "upper": np.ones(3)})


def test_argument_errors_name_the_parameter_or_the_callers_name():
    """Errors about an argument name the parameter (not a command-line flag) unless the
    caller says how it calls it (``names``; the CLI passes its flags)."""
    lasso = {"A": np.ones((3, 2)), "b": np.ones(3)}
    cases = [  # (call, message, message with the caller's names)
        (lambda **k: validate("lasso", {**lasso, "lam": 0.1}, lam=-2.0, **k),
         "lam is -2.0; expected a finite number >= 0", "--lam is -2.0; expected a finite number >= 0"),
        (lambda **k: validate("lasso", lasso, **k), "(or pass lam)", "(or pass --lam)"),
        (lambda **k: validate("logistic", {"X": np.ones((2, 2)), "y": [1, -1]}, penalty="l3", **k),
         "penalty is 'l3'; expected 'l1' or 'l2'", "--penalty is 'l3'; expected 'l1' or 'l2'"),
        (lambda **k: validate("qp", {"Q": np.eye(2), "q": np.ones(2)}, lam=1.0, **k),
         "lam and penalty apply to lasso and logistic only, not to qp",
         "--lam and --penalty apply to lasso and logistic only, not to qp"),
        (lambda **k: validate("lasso", {**lasso, "lam": 0.1}, penalty="l1", **k),
         "penalty applies to logistic only; lasso's penalty is always l1",
         "--penalty applies to logistic only; lasso's penalty is always l1"),
    ]
    for call, message, flagged in cases:
        with pytest.raises(DataError) as e:
            call()
        assert message in str(e.value) and "--" not in str(e.value)
        with pytest.raises(DataError) as e:
            call(names={"lam": "--lam", "penalty": "--penalty"})
        assert flagged in str(e.value)
    with pytest.raises(DataError, match=r"^path 'x.txt' must end in .npz$"):
        check_output_path("x.txt")
    with pytest.raises(DataError, match=r"^--out 'x.txt' must end in .npz$"):
        check_output_path("x.txt", name="--out")
