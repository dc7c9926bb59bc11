"""Convergence plots: a valid PNG (signature, non-empty) from a Comparison, from
trajectories, from records and from the records CSV; learned solvers solid and
classical ones dashed; median and quantile band; atomic write; no display needed."""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest
import torch

import l2o
from l2o.evaluation import Trajectory
from l2o.evaluation.compare import compare
from l2o.learned.lgd import LGD
from l2o.report.plots import as_curves, band, convergence_figure, plot_convergence

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"




@functools.cache
def comparison():
    p = l2o.LeastSquaresFamily(d=10, m=8).sample(5, 0)
    return compare({"lgd": LGD(hidden=8, expansion=10.0, horizon=3), "gd": l2o.make_solver("gd"),
                    "nesterov": l2o.make_solver("nesterov")}, p, max_iter=12)


def is_png(path) -> bool:
    with open(path, "rb") as fh:
        data = fh.read()
    return len(data) > 1000 and data[:8] == PNG_SIGNATURE


def test_png_from_comparison_records_and_csv(tmp_path):
    comp = comparison()
    a = plot_convergence(comp, tmp_path / "a.png", title="t", tolerances=(1e-2, 1e-4))
    assert a == tmp_path / "a.png" and is_png(a)
    assert is_png(plot_convergence(comp.records(), tmp_path / "b.png"))
    comp.to_csv(tmp_path / "r.csv")
    assert is_png(plot_convergence(tmp_path / "r.csv", tmp_path / "c.png"))
    assert is_png(plot_convergence(str(tmp_path / "r.csv"), tmp_path / "d.png"))
    assert is_png(plot_convergence(comp.trajectories, tmp_path / "e.png", learned={"lgd"}))
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png", "c.png", "d.png", "e.png", "r.csv"]


def test_two_panels_learned_solid_classical_dashed():
    fig = convergence_figure(comparison())
    ax_it, ax_t = fig.axes[:2]
    for ax in (ax_it, ax_t):
        assert ax.get_yscale() == "log"
        styles = {
            line.get_label(): line.get_linestyle() for line in ax.get_lines() if not line.get_label().startswith("_")
        }
        assert styles == {"lgd (learned)": "-", "gd": "--", "nesterov": "--"}
    assert ax_it.get_xlabel() == "iteration" and "time" in ax_t.get_xlabel()
    # the median line is the median over instances of the gap
    line = next(l for l in ax_it.get_lines() if l.get_label() == "gd")
    gap = comparison().trajectories["gd"].gap.numpy()
    np.testing.assert_allclose(line.get_ydata(), np.median(np.clip(gap, 1e-16, None), axis=1))
    np.testing.assert_array_equal(line.get_xdata(), comparison().trajectories["gd"].iterations.numpy())


def test_band_quantiles_and_clipping():
    values = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [0.0, -1e-20, 1e-3, 1e-3, np.nan]])
    med, lo, hi = band(values, (0.1, 0.9))
    np.testing.assert_allclose(med, [3.0, 1e-16 * 0.5 + 1e-3 * 0.5])
    np.testing.assert_allclose(lo, [1.4, 1e-16])
    np.testing.assert_allclose(hi, [4.6, 1e-3])


def test_certificate_curves_and_bad_input(tmp_path):
    p = l2o.LassoFamily(m=10, n=20, nnz=2).sample(3, 0)
    comp = compare({"ista": l2o.make_solver("ista")}, p, reference=False, max_iter=5)
    (curve,) = as_curves(comp)
    assert curve.measure == "certificate" and curve.values.shape == (6, 3)
    assert is_png(plot_convergence(comp, tmp_path / "cert.png"))
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_convergence([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="quantiles"):
        convergence_figure(comp, quantiles=(0.9, 0.1))
    t = Trajectory("s", torch.tensor([0]), torch.zeros(1, 1), None, None, torch.zeros(1), torch.zeros(1, 1))
    with pytest.raises(ValueError, match="neither"):
        as_curves({"s": t})
    with pytest.raises(OSError):
        plot_convergence(comp, tmp_path / "no" / "x.png")
    assert sorted(os.listdir(tmp_path)) == ["cert.png"]


def test_a_solver_keeps_its_colour_whichever_solvers_share_the_figure():
    from l2o.report.plots import SOLVER_COLORS, solver_color

    assert solver_color("fista") == solver_color("fista (learned)")
    demo = ["ista", "fista", "fista_restart", "adam", "lfista"]
    assert len({solver_color(n) for n in demo}) == len(demo)
    smooth = ["gd", "nesterov", "fista_restart", "adam", "lbfgs", "newton", "lgd"]
    assert len({solver_color(n) for n in smooth}) == len(smooth)
    mimo = ["wmmse", "wmmse_paper", "mrt", "zf", "rzf", "gnn_wmmse", "iaidnn", "gcn_wmmse", "structural_mpnn"]
    assert len({solver_color(n) for n in mimo}) == len(mimo)  # l2o eval's INFOCOM comparison
    assert set(SOLVER_COLORS) >= set(demo)


def test_figure_lines_use_the_solver_colour_in_any_order():
    from matplotlib.colors import to_hex

    from l2o.report.plots import solver_color

    trajs = comparison().trajectories
    for order in (list(trajs), list(reversed(trajs))):
        fig = convergence_figure({k: trajs[k] for k in order}, learned={"lgd"})
        lines = [ln for ln in fig.axes[0].get_lines() if not ln.get_label().startswith("_")]
        assert {ln.get_label().removesuffix(" (learned)"): to_hex(ln.get_color()) for ln in lines} == {
            name: solver_color(name) for name in order}


def test_every_line_of_a_crowded_figure_has_its_own_colour():
    """Names outside SOLVER_COLORS (run directories) hash to a colour; a clash with an earlier
    solver of the same figure takes the first unused palette colour instead."""
    from matplotlib.colors import to_hex

    from l2o.report.plots import PALETTE, distinct_colors, solver_color

    traj = comparison().trajectories["gd"]
    names = ["gd", "nesterov"] + [f"run_{i} (dir_{i})" for i in range(12)] + ["gd (another run)"]
    fig = convergence_figure({name: traj for name in names})
    lines = [ln for ln in fig.axes[0].get_lines() if not ln.get_label().startswith("_")]
    colors = [to_hex(ln.get_color()) for ln in lines]
    assert len(lines) == len(names) and len(set(colors)) == len(names)
    assert colors[:2] == [solver_color("gd"), solver_color("nesterov")]  # no clash: the preferred colour
    assert colors == distinct_colors(names) and set(colors) <= set(PALETTE)
