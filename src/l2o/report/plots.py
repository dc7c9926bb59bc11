"""Convergence plots: relative gap against iterations and against solver seconds.

One PNG with two panels (the time axis is logarithmic too, since solvers' clocks span
orders of magnitude). The times are those recorded: ``l2o.evaluation.compare`` warms
every solver up before timing it, so a learned solver's first point is not a cold first
call (about twice a warm one), which on a log axis would shift its whole curve right.
Per solver, the median over instances is a line and the band between two quantiles
(10% and 90% by default) is shaded; the gap axis is logarithmic. Learned solvers are
drawn solid, classical ones dashed, so the two are told apart without a legend lookup.

Plots read what was recorded, never a solver: a ``Comparison``, a dict of
``Trajectory`` objects, tidy records (``Comparison.records()``) or the CSV file that
``Comparison.to_csv`` wrote. Drawing uses matplotlib's object API with the Agg
renderer (no pyplot, no display, no global backend switch), and the file is written
atomically.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
import zlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from l2o.evaluation.compare import (
    Comparison,
    read_records_csv,
    trajectories_from_records,
)
from l2o.evaluation.run import Trajectory
from l2o.utils.files import atomic_write

#: The palette of ``solver_color`` (matplotlib's tab20: 20 distinguishable colours).
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)


#: Fixed colours of l2o's solvers (indices into ``PALETTE``). Solvers that appear in one
#: figure together (a family's baselines and its learned solvers) get distinct colours;
#: the MIMO solvers reuse the colours of solvers that never share a figure with them.
SOLVER_COLORS: dict[str, int] = {
    "ista": 0, "fista": 1, "fista_restart": 2, "adam": 3, "lfista": 4, "fista_polish": 5, "apgd": 6, "pgd": 7,
    "lista": 8, "alista": 9, "math_l2o": 10, "go_math_l2o": 11, "l2o_dm": 12, "rnnprop": 13, "lgd": 14,
    "gd": 15, "nesterov": 16, "nesterov_sc": 17, "heavy_ball": 18, "lbfgs": 19, "newton": 5,
    "wmmse": 0, "mrt": 1, "zf": 2, "rzf": 3, "gnn_wmmse": 4, "wmmse_paper": 5, "iaidnn": 6, "gcn_wmmse": 7,
    "structural_mpnn": 8, "structural_mpnn_b": 9, "structural_mpnn_o": 10,
}


def solver_color(name: str) -> str:
    """The preferred colour of solver ``name`` in every figure, a function of the name alone
    (a " (learned)" or " (run directory)" suffix is ignored), so that a solver keeps its
    colour whichever other solvers share the figure: ``SOLVER_COLORS`` for l2o's solvers,
    else crc32 of the name. ``distinct_colors`` resolves clashes within one figure.

    >>> solver_color("fista") == solver_color("fista (learned)") == PALETTE[1]
    True
    >>> solver_color("gcn_wmmse (gcn_wmmse_infocom_small)") == PALETTE[7]
    True
    >>> solver_color("my_solver") in PALETTE
    True
    """
    base = name.split(" (")[0]
    index = SOLVER_COLORS.get(base, zlib.crc32(name.encode()))
    return PALETTE[index % len(PALETTE)]


def distinct_colors(names: Sequence[str]) -> list[str]:
    """One colour per solver of a figure: each its ``solver_color`` unless an earlier solver
    took it, then the first palette colour not yet used (distinct up to ``len(PALETTE)``).

    >>> distinct_colors(["rzf", "my_run (a)", "rzf (other)"]) == [PALETTE[3], solver_color("my_run (a)"), PALETTE[0]]
    True
    """
    used: list[str] = []
    for name in names:
        color = solver_color(name)
        if color in used:
            color = next((c for c in PALETTE if c not in used), color)
        used.append(color)
    return used


#: Gaps at or below this are drawn at this value (a log axis has no 0, and a gap can be
#: a tiny negative number when an iterate is as good as the reference).
GAP_CLIP = 1e-16


@dataclasses.dataclass
class Curve:
    """What one solver's panel lines need.

    Attributes:
        solver: name; learned: drawn solid when True.
        iterations: ``(T,)`` recorded iteration numbers.
        time: ``(T,)`` cumulative solver seconds at those iterations.
        values: ``(T, B)`` the measure per instance (nan where missing).
        measure: "gap" or "certificate".
    """

    solver: str
    learned: bool
    iterations: np.ndarray
    time: np.ndarray
    values: np.ndarray
    measure: str = "gap"


def curves_from_trajectories(trajectories: Mapping[str, Trajectory], learned: Collection[str] = ()) -> list[Curve]:
    """One curve per trajectory (the gap, or the certificate without a reference)."""
    out = []
    for name, t in trajectories.items():
        if t.gap is not None:
            measure, values = "gap", t.gap
        elif t.certificate is not None:
            measure, values = "certificate", t.certificate
        else:
            raise ValueError(f"trajectory of {name!r} has neither a reference gap nor a certificate")
        out.append(Curve(solver=name, learned=name in learned, iterations=t.iterations.numpy().astype(np.int64),
                         time=t.time.numpy().astype(np.float64),
                         values=values.detach().cpu().numpy().astype(np.float64),
                         measure=measure))
    return out


def curves_from_records(rows: Iterable[Mapping[str, Any]]) -> list[Curve]:
    """Curves from tidy rows (keys solver, learned, iteration, instance, time, gap and
    optionally certificate), in the order solvers first appear."""
    trajectories, learned = trajectories_from_records(rows)
    return curves_from_trajectories(trajectories, learned)


def as_curves(source: Any, learned: Collection[str] = ()) -> list[Curve]:
    """Curves from a ``Comparison``, a dict of ``Trajectory``, tidy records, a records CSV
    path, or a list of ``Curve``."""
    if isinstance(source, Comparison):
        return curves_from_trajectories(source.trajectories, source.learned)
    if isinstance(source, (str, os.PathLike)):
        return curves_from_records(read_records_csv(source))
    if isinstance(source, Mapping):
        return curves_from_trajectories(source, learned)
    items = list(source)
    if items and all(isinstance(c, Curve) for c in items):
        return items
    return curves_from_records(items)


def band(values: np.ndarray, quantiles: tuple[float, float] = (0.1, 0.9)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, lower and upper quantile over instances of ``(T, B)`` values (nan ignored),
    clipped below at ``GAP_CLIP`` for a log axis: three ``(T,)`` arrays."""
    v = np.clip(values, GAP_CLIP, None)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 'All-NaN slice': a record without values is not drawn
        med = np.nanmedian(v, axis=1)
        lo = np.nanquantile(v, quantiles[0], axis=1)
        hi = np.nanquantile(v, quantiles[1], axis=1)
    return med, lo, hi


def convergence_figure(
    source: Any,
    title: str | None = None,
    learned: Collection[str] = (),
    quantiles: tuple[float, float] = (0.1, 0.9),
    tolerances: Sequence[float] = (),
):
    """A matplotlib ``Figure`` with two panels: measure vs iterations, measure vs seconds.

    Args:
        source: see ``as_curves``.
        learned: names of learned solvers when ``source`` is a dict of trajectories.
        quantiles: the shaded band (lower, upper) around the median.
        tolerances: draw light horizontal lines at these levels.
    """
    from matplotlib.figure import Figure

    if not 0 <= quantiles[0] <= quantiles[1] <= 1:
        raise ValueError(f"quantiles must be 0 <= low <= high <= 1, got {quantiles}")
    curves = as_curves(source, learned)
    if not curves:
        raise ValueError("nothing to plot: no solver in the records")
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    ax_it, ax_t = fig.subplots(1, 2)
    colors = distinct_colors([c.solver for c in curves])
    measure = curves[0].measure
    ylabel = "relative suboptimality (F - F*) / |F*|" if measure == "gap" else f"certificate ({measure})"
    low, high = quantiles
    for curve, color in zip(curves, colors):
        med, lo, hi = band(curve.values, quantiles)
        style = dict(color=color, linestyle="-" if curve.learned else "--", linewidth=2.0 if curve.learned else 1.5)
        label = curve.solver + (" (learned)" if curve.learned else "")
        for ax, x in ((ax_it, curve.iterations), (ax_t, curve.time)):
            ok = np.isfinite(med) & np.isfinite(x)
            if ax is ax_t:
                ok &= x > 0  # a log time axis: the start (t = 0) is on the iterations panel
            ax.plot(x[ok], med[ok], label=label, **style)
            ax.fill_between(x[ok], lo[ok], hi[ok], color=color, alpha=0.15, linewidth=0)
    ax_t.set_xscale("log")
    for ax, xlabel in ((ax_it, "iteration"), (ax_t, "solver time (s, warm), log scale")):
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
        for tol in tolerances:
            ax.axhline(tol, color="0.6", linewidth=0.6, linestyle=":")
    ax_it.set_title("against iterations")
    ax_t.set_title("against time")
    handles, labels = ax_it.get_legend_handles_labels()
    ncol = max(1, min(len(labels), 6, 110 // max(len(label) + 6 for label in labels)))  # rows fit the figure
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize="small",
               title=f"median over instances and {low:.0%}-{high:.0%} band; solid: learned, dashed: classical",
               title_fontsize="small", frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def plot_convergence(
    source: Any,
    path: str | os.PathLike[str],
    title: str | None = None,
    learned: Collection[str] = (),
    quantiles: tuple[float, float] = (0.1, 0.9),
    tolerances: Sequence[float] = (),
    dpi: int = 120,
) -> Path:
    """Draw ``convergence_figure`` and save it as PNG at ``path`` atomically; returns the path."""
    fig = convergence_figure(source, title=title, learned=learned, quantiles=quantiles, tolerances=tolerances)
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi))
