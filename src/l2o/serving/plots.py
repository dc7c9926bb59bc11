"""Figures of serving simulations: memory over time, and latency against the arrival
rate with each policy's stability transition lambda* marked.

Drawn with matplotlib's object API (``matplotlib.figure.Figure``, rendered by Agg; no
pyplot, no global backend switch) and written atomically as PNG.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from l2o.serving.simulator import SimulationResult
from l2o.utils.files import atomic_write

#: Fixed colours per policy (matplotlib's tab10); other names get a colour from their crc32.
COLORS = {"vllm": "#1f77b4", "sarathi": "#ff7f0e", "wait": "#2ca02c", "nested_wait": "#d62728"}
_PALETTE = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def policy_color(name: str) -> str:
    """The colour of policy ``name`` in every figure.

    >>> policy_color("wait"), policy_color("my_policy") in _PALETTE
    ('#2ca02c', True)
    """
    base = name.split(" ")[0]
    return COLORS.get(base) or _PALETTE[zlib.crc32(name.encode()) % len(_PALETTE)]


def _save(fig: Figure, path: str | os.PathLike[str], dpi: int) -> Path:
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi))


def _downsample(t: np.ndarray, y: np.ndarray, bins: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """At most ``bins`` points: the maximum of y in equal time bins (keeps the peaks)."""
    if t.size <= bins:
        return t, y
    edges = np.linspace(t[0], t[-1], bins + 1)
    idx = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, bins - 1)
    peak = np.full(bins, -np.inf)
    np.maximum.at(peak, idx, y.astype(np.float64))
    keep = np.isfinite(peak)
    return ((edges[:-1] + edges[1:]) / 2)[keep], peak[keep]


def memory_figure(results: Sequence[SimulationResult], title: str | None = None) -> Figure:
    """KV-cache memory in use (during each iteration) against time, one line per policy,
    with the capacity C as a dashed line.

    >>> from l2o.serving import GPU, RequestType, make_policy, poisson_workload, simulate
    >>> r = simulate(poisson_workload([RequestType(8, 4, 5.0)], 50), make_policy("vllm"), GPU(memory=200))
    >>> len(memory_figure([r]).axes)
    1
    """
    fig = Figure(figsize=(8, 4.2), layout="constrained")
    ax = fig.add_subplot()
    cap = None
    for r in results:
        t, y = _downsample(r.it_start, r.it_memory)
        ax.plot(t, y, lw=0.9, color=policy_color(r.policy), label=r.policy)
        cap = r.gpu.memory
    if cap is not None:
        ax.axhline(cap, color="black", ls="--", lw=1, label=f"capacity C = {cap:,}")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("KV cache in use (tokens)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small", loc="lower right")
    ax.set_title(title or "memory over time (peak per time bin)")
    return fig


def plot_memory(results: Sequence[SimulationResult], path: str | os.PathLike[str], title: str | None = None,
                dpi: int = 110) -> Path:
    """Save ``memory_figure`` as PNG at ``path`` (atomically).

    >>> import tempfile, pathlib
    >>> from l2o.serving import GPU, RequestType, make_policy, poisson_workload, simulate
    >>> r = simulate(poisson_workload([RequestType(8, 4, 5.0)], 50), make_policy("wait"), GPU(memory=200))
    >>> plot_memory([r], pathlib.Path(tempfile.mkdtemp()) / "m.png").suffix
    '.png'
    """
    return _save(memory_figure(results, title), path, dpi)


def sweep_figure(sweep: Mapping[str, Any], fluid_limit: float | None = None, title: str | None = None,
                 reference: Mapping[str, float] | None = None) -> Figure:
    """Mean latency (log scale) and completion rate against the arrival rate, per policy;
    each policy's lambda* is a dotted vertical line in its colour, the fluid stability
    limit a black dashed line, and ``reference`` (policy -> a published lambda*) grey
    triangles on the rate axis.

    >>> rows = [{"policy": "vllm", "rate": 1.0, "latency_mean": 2.0, "completion_rate": 1.0, "stable": True}]
    >>> len(sweep_figure({"rows": rows, "transition": {"vllm": 1.0}}, fluid_limit=1.5).axes)
    2
    """
    rows = sweep["rows"]
    trans = sweep.get("transition", {})
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax_l, ax_c = fig.subplots(1, 2)
    names = list(dict.fromkeys(r["policy"] for r in rows))
    rates_all = sorted({r["rate"] for r in rows})
    for i, name in enumerate(names):
        pts = sorted((r["rate"], r["latency_mean"], r["completion_rate"], r["stable"]) for r in rows
                     if r["policy"] == name)
        x = [p[0] for p in pts]
        c = policy_color(name)
        style = "--s" if " " in name else "-o"  # a variant ("wait (n=1)") is dashed in its policy's colour
        ax_l.plot(x, [p[1] for p in pts], style, ms=3.5, lw=1.2, color=c, label=name)
        ax_c.plot(x, [p[2] for p in pts], style, ms=3.5, lw=1.2, color=c, label=name)
        lam = trans.get(name)
        if lam is not None and not (isinstance(lam, float) and math.isnan(lam)):
            for ax in (ax_l, ax_c):
                ax.axvline(lam, color=c, ls=":", lw=1.3)
            ax_l.annotate(f"λ* {lam:.3g}", (lam, 0.98 - 0.07 * i), xycoords=("data", "axes fraction"),
                          va="top", ha="right", fontsize="x-small", color=c)
    if fluid_limit is not None and math.isfinite(fluid_limit):
        for ax in (ax_l, ax_c):
            ax.axvline(fluid_limit, color="black", ls="--", lw=1)
        ax_l.annotate(f"fluid limit {fluid_limit:.3g}", (fluid_limit, 0.02), xycoords=("data", "axes fraction"),
                      rotation=90, va="bottom", ha="right", fontsize="x-small")
    if reference:
        for name, lam in reference.items():
            ax_l.plot([lam], [0], marker="^", color="grey", transform=ax_l.get_xaxis_transform(), clip_on=False)
    if rates_all:
        ax_c.plot([rates_all[0], rates_all[-1]], [rates_all[0], rates_all[-1]], color="grey", lw=0.8, ls="-",
                  label="ideal (= arrival rate)")
    ax_l.set_yscale("log")
    ax_l.set_xlabel("arrival rate λ (requests/s)")
    ax_l.set_ylabel("mean latency (s)")
    ax_l.set_title("latency (dotted: λ* per policy)")
    ax_c.set_xlabel("arrival rate λ (requests/s)")
    ax_c.set_ylabel("completions/s over [T/2, T]")
    ax_c.set_title("effective completion rate")
    ax_l.legend(fontsize="small", loc="upper left")
    ax_c.legend(fontsize="small", loc="upper left")
    if title:
        fig.suptitle(title)
    return fig


def plot_sweep(sweep: Mapping[str, Any], path: str | os.PathLike[str], fluid_limit: float | None = None,
               title: str | None = None, reference: Mapping[str, float] | None = None, dpi: int = 110) -> Path:
    """Save ``sweep_figure`` as PNG at ``path`` (atomically).

    >>> import tempfile, pathlib
    >>> rows = [{"policy": "wait", "rate": r, "latency_mean": 1.0 + r, "completion_rate": r, "stable": True}
    ...         for r in (1.0, 2.0)]
    >>> p = plot_sweep({"rows": rows, "transition": {"wait": 2.0}}, pathlib.Path(tempfile.mkdtemp()) / "s.png")
    >>> p.stat().st_size > 0
    True
    """
    return _save(sweep_figure(sweep, fluid_limit, title, reference), path, dpi)


__all__ = ["COLORS", "policy_color", "memory_figure", "plot_memory", "sweep_figure", "plot_sweep"]
