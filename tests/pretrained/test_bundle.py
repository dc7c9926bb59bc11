"""The bundled pretrained solvers (``l2o.pretrained``): every bundle loads with its
weights' sha256 verified, a corrupted copy is refused, each solver converges on fresh
instances of its family (handing over to the fallback past its horizon) and beats its
template classical method where it did when it was made; the command line lists and
uses them (``l2o list --pretrained``, ``l2o solve --checkpoint NAME``)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import l2o
from l2o.cli import app
from l2o.pretrained import (
    BUNDLE_ROOT,
    RECORD,
    WEIGHTS,
    bundled_names,
    list_pretrained,
    load_pretrained,
    read_record,
    sha256_hex,
)
from l2o.registry import LEARNED, make_solver
from l2o.training import RunConfig, read_safetensors
from l2o.workflows.load import handover

NAMES = bundled_names()
#: The bundles issue 13 asks for by name.
REQUIRED = {"lfista-lasso_250x500", "lgd-ls_32x25", "go_math_l2o-lasso_250x500", "math_l2o-logistic_1000x50",
            "gnn_wmmse-mimo_medium"}
#: Learned methods without a bundle, listed here on purpose so that leaving one out is a
#: visible change of this test (their reasons: benchmarks/train_pretrained.py NOT_BUNDLED).
NOT_BUNDLED: set[str] = {"structural_mpnn_b", "structural_mpnn_o",  # the ablations of StructuralMPNN
                         "iaidnn"}  # trained here it stays below WMMSE (no win over its template)
#: Fresh instances of the tests: a seed the figures were not measured on.
SEED = 20261128
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


# ----- the bundle ------------------------------------------------------------------------------------


def test_the_bundle_has_every_learned_method_and_stays_small():
    assert REQUIRED <= set(NAMES)
    methods = {read_record(BUNDLE_ROOT / n)["solver"]["name"] for n in NAMES}
    assert set(LEARNED) - methods == NOT_BUNDLED
    size = sum(p.stat().st_size for n in NAMES for p in (BUNDLE_ROOT / n).iterdir())
    assert size < 6_000_000  # a few MB in all (4.9 MB; the three StructuralMPNN bundles are 2.5 MB of it)


@pytest.mark.parametrize("name", NAMES)
def test_a_bundle_loads_as_its_record_says(name):
    folder = BUNDLE_ROOT / name
    record = read_record(folder)
    solver, family, horizon, meta = load_pretrained(name)
    assert meta["weights"]["sha256"] == sha256_hex((folder / WEIGHTS).read_bytes())
    assert solver.name == record["solver"]["name"] == name.split("-")[0]
    assert record["family"]["preset"] == name.split("-", 1)[1]
    assert family == l2o.make_family(record["family"]["preset"], **record["family"]["overrides"])
    config = RunConfig.from_dict(record["config"])  # the recorded config is a valid training config
    assert family == config.make_family() and config.solver == solver.name
    assert horizon == record["horizon"] == solver.horizon == config.training.unroll
    assert not solver.training
    assert all(p.dtype == config.training.torch_dtype for p in solver.parameters())
    from_file = read_safetensors(folder / WEIGHTS)[0]
    own = solver.state_dict()
    assert set(own) == set(from_file) and all(torch.equal(own[k], from_file[k]) for k in own)
    assert isinstance(record["l2o_version"], str) and record["command"].startswith("python benchmarks/")
    assert record["training"]["best_step"] > 0  # trained: the kept weights are not the initial ones
    fig = record["figures"]
    assert {fig["template"], fig["fallback"]} <= set(fig["solvers"]) and fig["batch"] >= 64


def test_a_corrupted_copy_is_refused(tmp_path):
    name = "lgd-ls_32x25"
    shutil.copytree(BUNDLE_ROOT / name, tmp_path / name)
    assert load_pretrained(name, root=tmp_path).horizon == 100  # the intact copy loads
    data = bytearray((tmp_path / name / WEIGHTS).read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight
    (tmp_path / name / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(ValueError) as e:
        load_pretrained(name, root=tmp_path)
    msg = str(e.value)
    assert f"pretrained solver '{name}'" in msg and "sha256" in msg and "corrupted" in msg and "\n" not in msg
    # a record whose hash was edited to match other weights is refused the same way
    shutil.copy(BUNDLE_ROOT / name / WEIGHTS, tmp_path / name / WEIGHTS)
    record = json.loads((tmp_path / name / RECORD).read_text())
    record["weights"]["sha256"] = "0" * 64
    (tmp_path / name / RECORD).write_text(json.dumps(record))
    with pytest.raises(ValueError, match="sha256"):
        load_pretrained(name, root=tmp_path)


def test_an_unknown_name_lists_the_bundled_ones():
    with pytest.raises(ValueError) as e:
        load_pretrained("lfista-lasso_999")
    assert str(e.value).startswith("unknown pretrained solver 'lfista-lasso_999'; bundled: ")
    assert all(n in str(e.value) for n in NAMES)


def test_the_catalogue_reads_the_records():
    entries = list_pretrained()
    assert [e.name for e in entries] == NAMES
    for e in entries:
        record = read_record(e.directory)
        assert (e.method, e.horizon, e.figure) == (record["solver"]["name"], record["horizon"],
                                                   record["figures"]["headline"])
        assert e.family.startswith(record["family"]["preset"])


# ----- on fresh instances ------------------------------------------------------------------------------


def _median_iterations(traj, tol: float) -> float:
    its = traj.iterations_to(tol).to(torch.float64)
    its[its < 0] = float("inf")
    return float(its.median())


@pytest.mark.parametrize("name", NAMES)
def test_it_converges_and_beats_its_template_where_it_did(name):
    """On a few fresh instances (another seed than the figures'): the solver handing over
    to its family's fallback past its horizon converges to a tight certificate; and where
    the figures recorded that the solver beat its template (median gap at the horizon,
    median iterations to a tolerance), it still does."""
    solver, family, horizon, meta = load_pretrained(name)
    fig = meta["figures"]
    mimo = hasattr(family, "cells")  # nonconvex: certificate = relative change of a WMMSE step
    B, tol = (3, 1e-4) if mimo else (8, 1e-6)
    dtype = next(solver.parameters()).dtype
    problem = family.sample(B, SEED, dtype=torch.float64)
    with torch.no_grad():
        res = l2o.solve(handover(solver, family, horizon), problem, tol=tol, max_iter=3000)
    assert bool(res.converged.all()), (name, res.certificate)
    problem = problem if dtype == torch.float64 else family.sample(B, SEED, dtype=dtype)
    template = make_solver(fig["template"])
    ref = l2o.reference(problem, max_iter=400) if mimo else l2o.reference(problem)
    checked = 0
    if fig["beats_template_in_gap_at_horizon"]:
        cmp = l2o.compare({"learned": solver, "template": template}, problem, reference=ref, max_iter=horizon)
        gaps = {k: float(t.gap[-1].median()) for k, t in cmp.trajectories.items()}
        assert gaps["learned"] < gaps["template"], (name, gaps)
        checked += 1
    for form, key in ((solver, "beats_template_in_median_iterations"),
                      (handover(solver, family, horizon), "handover_beats_template_in_median_iterations")):
        beaten = [float(t) for t, won in fig[key].items() if won]
        if not beaten:
            continue
        tol = 1e-4 if 1e-4 in beaten else max(beaten)
        entry = fig["solvers"][fig["template"]]["tolerances"][f"{tol:g}"]
        K = int(2 * (entry["iterations_p90"] or fig["max_iter"]))
        cmp = l2o.compare({"learned": form, "template": template}, problem, reference=ref, max_iter=K, stop_at=tol)
        its = {k: _median_iterations(t, tol) for k, t in cmp.trajectories.items()}
        assert its["learned"] < its["template"], (name, key, tol, its)
        checked += 1
    assert checked, f"{name}: the figures record no win over {fig['template']}; nothing to check"


# ----- the command line --------------------------------------------------------------------------------


def test_l2o_list_pretrained_prints_one_line_per_bundle():
    res = invoke("list", "--pretrained")
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert len(lines) == len(NAMES)
    for line, e in zip(lines, list_pretrained()):
        assert line.split()[:3] == [e.name, e.method, e.family] and f"horizon {e.horizon}" in line
        assert e.figure in line


def lasso_file(path, family, B: int = 3, seed: int = SEED):
    inst = family.sample(B, seed, dtype=torch.float64)
    np.savez(path, A=inst.A.numpy(), b=inst.b.numpy(), lam=family.lam)
    return inst


@pytest.mark.parametrize("tol", [1e-6, 1e-9])
def test_solve_with_a_bundled_name_matches_the_classical_solution(tmp_path, tol):
    family = l2o.make_family("lasso_250x500")
    inst = lasso_file(tmp_path / "lasso.npz", family)
    res = invoke("solve", "--checkpoint", "lfista-lasso_250x500", "--problem", "lasso", "--data",
                 tmp_path / "lasso.npz", "--tol", tol, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["solver"] == "lfista" and out["checkpoint"] == "lfista-lasso_250x500"
    assert out["converged"] == [True] * 3 and max(out["certificate"]) <= tol
    classical = l2o.solve(make_solver("fista_restart"), inst, tol=1e-12, max_iter=20_000)
    f_star = classical.objective.numpy()
    # the certificate is the relative duality gap: F - F* <= tol |F*| (up to the classical run's own 1e-12)
    assert np.all(np.array(out["objective"]) - f_star <= (tol + 1e-11) * np.abs(f_star))


@pytest.mark.parametrize("name, kind", [("go_math_l2o-lasso_250x500", "lasso"), ("alista-lasso_250x500", "lasso"),
                                        ("math_l2o-logistic_1000x50", "logistic")])
def test_solve_with_learned_bundles_matches_the_classical_objective(tmp_path, name, kind):
    """The file holds fresh instances of the bundle's family; the bundled solver (handing
    over past its horizon) and the kind's default classical solver reach the same
    objective to the requested tolerance."""
    family = l2o.load_solver(name).family
    inst = family.sample(2, SEED, dtype=torch.float64)
    if kind == "lasso":
        np.savez(tmp_path / "d.npz", A=inst.A.numpy(), b=inst.b.numpy(), lam=family.lam)
    else:
        np.savez(tmp_path / "d.npz", X=inst.X.numpy(), y=inst.y.numpy(), lam=family.lam, penalty=family.penalty)
    res = invoke("solve", "-c", name, "-p", kind, "-d", tmp_path / "d.npz", "--tol", "1e-8", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["solver"] == name.split("-")[0] and out["converged"] == [True, True]
    res = invoke("solve", "-p", kind, "-d", tmp_path / "d.npz", "--tol", "1e-12", "--json")
    f_star = np.array(json.loads(res.stdout)["objective"])
    assert np.all(np.abs(np.array(out["objective"]) - f_star) <= 1e-8 * np.abs(f_star) + 1e-12)


def test_solve_with_bundled_names_of_other_families(tmp_path):
    rng = np.random.default_rng(0)
    W, y = rng.standard_normal((2, 25, 32)), rng.standard_normal((2, 25))  # ls_32x25: W (m, d), d = 32
    np.savez(tmp_path / "ls.npz", A=W, b=y)
    res = invoke("solve", "-c", "lgd-ls_32x25", "-d", tmp_path / "ls.npz", "--tol", "1e-8", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["solver"] == "lgd" and out["converged"] == [True, True]
    for i in range(2):  # least squares with m < d: the minimum is 0 (Wx = y is solvable)
        assert np.linalg.norm(W[i] @ np.array(out["x"][i]) - y[i]) ** 2 / 2 <= 1e-6 * np.linalg.norm(y[i]) ** 2
    mimo = l2o.make_family("mimo_medium").sample(1, SEED, dtype=torch.float64)
    np.savez(tmp_path / "h.npz", H=mimo.H[0].numpy(), power=mimo.budget[0].numpy(), noise=mimo.noise[0].numpy())
    res = invoke("solve", "-c", "gnn_wmmse-mimo_medium", "-d", tmp_path / "h.npz", "--tol", "1e-4", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["solver"] == "gnn_wmmse" and out["problem"] == "mimo" and out["converged"] is True
    x = torch.tensor(out["x"], dtype=torch.float64)[None]
    rate = float(mimo.sum_rate(x)[0])  # the precoders it returns reach the sum-rate it reports
    assert rate == pytest.approx(out["sum_rate"], rel=1e-9)
    wmmse = l2o.solve(make_solver("wmmse"), mimo, tol=1e-4, max_iter=3000)  # nonconvex: a local optimum each
    assert rate >= 0.9 * float(mimo.sum_rate(wmmse.x)[0])


def test_data_that_does_not_fit_a_bundled_solver_is_one_clear_line(tmp_path):
    small = l2o.LassoFamily(m=30, n=60, nnz=5)
    lasso_file(tmp_path / "small.npz", small, B=2)
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "logit.npz", X=rng.standard_normal((40, 5)), y=np.sign(rng.standard_normal(40)))
    cases = [
        (("-c", "alista-lasso_250x500", "-d", tmp_path / "small.npz"),
         "error: the checkpoint's solver cannot solve this data: solver 'alista': problem A has shape (30, 60), "
         "model A (250, 500)"),
        (("-c", "lfista-lasso_250x500", "-d", tmp_path / "logit.npz", "-p", "logistic"),
         "error: --problem logistic does not match the checkpoint: its solver was trained on the lasso family, "
         "which reads --problem lasso files"),
        (("-c", "lfista-lasso_999", "-d", tmp_path / "small.npz"),
         "error: run directory 'lfista-lasso_999' does not exist, and 'lfista-lasso_999' is not a bundled "
         "pretrained solver either (bundled: "),
    ]
    for args, start in cases:
        res = invoke("solve", *args)
        assert res.exit_code == 2, (args, res.output)
        assert res.stderr.startswith(start), (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1
