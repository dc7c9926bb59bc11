"""Summary tables: how many iterations and seconds each solver needs to reach a tolerance.

``summarize`` turns trajectories into tidy rows (one per solver x tolerance), which
``by_solver`` nests for JSON and ``render_table`` draws as a rich table (one line
per solver). Quantiles are over the instances of the batch; an instance that never
reaches a tolerance counts as +inf, so a quantile that lands on one is None ('-').
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
from rich import box
from rich.table import Table
from rich.text import Text

from l2o.evaluation import Trajectory
from l2o.evaluation.compare import WARMUP_STEPS, trajectories_from_records

DEFAULT_TOLERANCES: tuple[float, ...] = (1e-2, 1e-4, 1e-6)
#: The caption of ``render_table``: what the numbers are, and that the seconds are warm
#: (``l2o.evaluation.compare`` warms every solver up before timing it).
CAPTION = (f"median and 90th percentile over instances; '-': not reached; seconds: the solver's own steps, "
           f"timed after {WARMUP_STEPS} untimed warm-up steps on the same instances")


def quantile(values: np.ndarray, p: float) -> float | None:
    """Linear-interpolation quantile of ``values`` (``(B,)``, +inf or nan = never reached);
    None when the quantile depends on an unreached instance."""
    v = np.sort(np.where(np.isnan(values), np.inf, np.asarray(values, dtype=np.float64)))
    if v.size == 0:
        return None
    pos = round(p * (v.size - 1), 9)  # 0.9 * 10 must be 9, not 9.000000000000002
    lo, hi = math.floor(pos), math.ceil(pos)
    t = pos - lo
    out = v[lo] if t == 0 else (v[lo] + t * (v[hi] - v[lo]) if np.isfinite(v[hi]) else math.inf)
    return float(out) if math.isfinite(out) else None


def _measure(traj: Trajectory) -> tuple[str, np.ndarray]:
    if traj.gap is not None:
        return "gap", traj.gap.numpy()
    if traj.certificate is not None:
        return "certificate", traj.certificate.numpy()
    raise ValueError(f"trajectory of {traj.solver!r} has neither a reference gap nor a certificate")


def summarize(
    trajectories: Mapping[str, Trajectory],
    tolerances: Sequence[float] = DEFAULT_TOLERANCES,
    learned: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Tidy summary rows, one per solver x tolerance.

    Args:
        trajectories: solver name -> ``Trajectory`` (``T`` records of ``B`` instances),
            all on the same instances.
        tolerances: relative suboptimality levels (the certificate where a trajectory
            has no reference gap).
        learned: names of the learned solvers (the ``learned`` column).

    Returns:
        Rows with keys ``solver``, ``learned``, ``tol``, ``measure`` ("gap" or
        "certificate"), ``reached`` (fraction of instances), ``iterations_median``,
        ``iterations_p90``, ``seconds_median``, ``seconds_p90`` (None where not
        reached), ``final_median`` and ``final_p90`` (the measure at the last record).
    """
    rows = []
    for name, traj in trajectories.items():
        measure, values = _measure(traj)
        final = values[-1]
        for tol in tolerances:
            its = traj.iterations_to(tol).numpy().astype(np.float64)
            its[its < 0] = np.inf
            secs = traj.time_to(tol).numpy()
            rows.append({
                "solver": name, "learned": name in learned, "tol": float(tol), "measure": measure,
                "reached": float(np.isfinite(its).mean()),
                "iterations_median": _int(quantile(its, 0.5)), "iterations_p90": _int(quantile(its, 0.9)),
                "seconds_median": quantile(secs, 0.5), "seconds_p90": quantile(secs, 0.9),
                "final_median": quantile(final, 0.5), "final_p90": quantile(final, 0.9),
            })
    return rows


def summarize_comparison(comparison: Any, tolerances: Sequence[float] = DEFAULT_TOLERANCES) -> list[dict[str, Any]]:
    """``summarize`` of an ``l2o.evaluation.compare.Comparison`` (its learned solvers flagged)."""
    return summarize(comparison.trajectories, tolerances, learned=comparison.learned)


def summarize_records(rows: Sequence[Mapping[str, Any]], tolerances: Sequence[float] = DEFAULT_TOLERANCES,
                      ) -> list[dict[str, Any]]:
    """``summarize`` of tidy records (``Comparison.records()`` or a records CSV read back
    with ``read_records_csv``); iterations and seconds are as fine as the records."""
    trajectories, learned = trajectories_from_records(rows)
    return summarize(trajectories, tolerances, learned=learned)


def _int(v: float | None) -> float | int | None:
    return int(v) if v is not None and float(v).is_integer() else v


def by_solver(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Nest tidy rows per solver (for JSON): ``{name, learned, measure, final_median,
    final_p90, tolerances: [{tol, reached, iterations_median, ...}]}``."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = out.setdefault(r["solver"], {
            "name": r["solver"], "learned": r["learned"], "measure": r["measure"],
            "final_median": r["final_median"], "final_p90": r["final_p90"], "tolerances": [],
        })
        entry["tolerances"].append({k: r[k] for k in (
            "tol", "reached", "iterations_median", "iterations_p90", "seconds_median", "seconds_p90")})
    return list(out.values())


def format_tol(tol: float) -> str:
    """1e-06 -> '1e-6'."""
    mantissa, exp = f"{tol:.0e}".split("e")
    return f"{mantissa}e{int(exp)}"


def format_value(v: float | None, kind: str = "g") -> str:
    """A table cell: '-' for None; ``kind`` "it" (iterations), "s" (seconds, 3 digits),
    "%" (a fraction as a percentage), "x" (a ratio, 2 decimals), "g" (3 digits), else a
    gap in scientific notation."""
    if v is None:
        return "-"
    if kind == "it":
        return f"{v:.0f}"
    if kind in ("s", "g"):
        return f"{v:.3g}"
    if kind == "%":
        return f"{v:.0%}"
    if kind == "x":
        return f"{v:.2f}x"
    return f"{v:.1e}"


def render_table(rows: Sequence[Mapping[str, Any]], title: str | None = None, caption: str | None = CAPTION) -> Table:
    """A rich table with one line per solver x tolerance: the median and 90th percentile
    of the iterations and seconds to reach it ('-' where not reached), the fraction
    of instances that reached it, and per solver the median final gap. The default
    ``caption`` says so, and that the seconds were timed warm (``CAPTION``)."""
    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    measure = rows[0]["measure"] if rows else "gap"
    table.add_column("solver", no_wrap=True)
    table.add_column("to", justify="right", no_wrap=True)
    for head in ("iters\nmedian", "iters\np90", "seconds\nmedian", "seconds\np90", "reached", f"final\n{measure}"):
        table.add_column(head, justify="right", no_wrap=True)
    for s in by_solver(rows):
        name = s["name"] + (" (learned)" if s["learned"] else "")
        for i, t in enumerate(s["tolerances"]):
            last = i == len(s["tolerances"]) - 1
            table.add_row(
                Text(name if i == 0 else ""), format_tol(t["tol"]),
                format_value(t["iterations_median"], "it"), format_value(t["iterations_p90"], "it"),
                format_value(t["seconds_median"], "s"), format_value(t["seconds_p90"], "s"), f"{t['reached']:.0%}",
                format_value(s["final_median"], "gap") if i == 0 else "", end_section=last,
            )
    return table
