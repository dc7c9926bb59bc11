"""The robustness report: learned, safeguarded and classical solvers on every OOD split.

Per split, one table (median and 90th percentile of iterations and seconds to each
tolerance, the fraction of instances that reach it within the run, which is 10x the
training horizon, and the fallback rate of safeguarded solvers) and one convergence
figure; ``write_html`` gathers them into one page. Rows are the tidy rows of
``l2o.report.table.summarize`` with a ``fallback_rate`` column added.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from l2o.evaluation import Trajectory
from l2o.evaluation.guarantee import Guarantee
from l2o.report.guarantee import guarantee_html
from l2o.report.table import by_solver, format_tol, format_value
from l2o.utils.files import atomic_write


@dataclasses.dataclass
class SplitReport:
    """What the report holds for one split.

    Attributes:
        split, description: the split's name and one-line description.
        rows: tidy summary rows (``summarize``) with ``fallback_rate`` (None for
            solvers without a safeguard).
        skipped: solver name -> why it could not run on this split (e.g. a LISTA tied
            to another dictionary size).
        plot: the figure's path (None when nothing ran).
        guarantee: the split's guarantee table (``l2o.evaluation.guarantee``), or None.
    """

    split: str
    description: str
    rows: list[dict[str, Any]]
    skipped: dict[str, str]
    plot: Path | None
    guarantee: Guarantee | None = None


def trajectory_fallback_rate(traj: Trajectory, horizon: int) -> float | None:
    """Fraction of the iterations 1..horizon (over all instances) whose iterate came from
    the safeguard's fallback; None for a trajectory without a safeguard."""
    if traj.fallback is None:
        return None
    its = traj.iterations
    keep = (its >= 1) & (its <= horizon)
    if not bool(keep.any()):
        return None
    return float(traj.fallback[keep].float().mean())


def add_fallback_rates(
    rows: list[dict[str, Any]], trajectories: Mapping[str, Trajectory], horizon: int
) -> list[dict[str, Any]]:
    rates = {name: trajectory_fallback_rate(t, horizon) for name, t in trajectories.items()}
    return [{**r, "fallback_rate": rates.get(r["solver"])} for r in rows]


def _lines(report: SplitReport) -> list[list[str]]:
    """Table body: one line per solver x tolerance."""
    out = []
    rates = {r["solver"]: r.get("fallback_rate") for r in report.rows}
    for s in by_solver(report.rows):
        name = s["name"]
        for i, t in enumerate(s["tolerances"]):
            out.append([
                name if i == 0 else "", format_tol(t["tol"]),
                format_value(t["iterations_median"], "it"), format_value(t["iterations_p90"], "it"),
                format_value(t["seconds_median"], "s"), format_value(t["seconds_p90"], "s"),
                format_value(t["reached"], "%"),
                format_value(rates.get(s["name"]), "%") if i == 0 else "",
            ])
    return out


HEADERS = ("solver", "to", "iters median", "iters p90", "seconds median", "seconds p90", "reached", "fallback")


def render_split(report: SplitReport) -> Table:
    """A rich table for one split."""
    table = Table(title=f"{report.split}: {report.description}", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  caption="median / 90th percentile over instances; reached: within the run (10 x the training "
                          "horizon); fallback rate: share of the first horizon iterations taken by the fallback")
    for i, h in enumerate(HEADERS):
        table.add_column(h.replace(" ", "\n", 1), justify="left" if i == 0 else "right", no_wrap=True)
    for line in _lines(report):
        table.add_row(Text(line[0]), *line[1:])
    for name, why in report.skipped.items():
        table.add_row(Text(name), "n/a", why, *[""] * (len(HEADERS) - 3))
    return table


def write_html(path: str | Path, title: str, reports: Sequence[SplitReport], notes: Sequence[str] = ()) -> Path:
    """One self-contained HTML page (figures referenced by relative path) with a section
    per split: its table and its figure. Written atomically."""
    path = Path(path)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "img{max-width:100%}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        *[f"<p>{html.escape(n)}</p>" for n in notes],
        "<ul>" + "".join(f"<li><a href='#{html.escape(r.split)}'>{html.escape(r.split)}</a>: "
                         f"{html.escape(r.description)}</li>" for r in reports) + "</ul>",
    ]
    for r in reports:
        parts.append(f"<h2 id='{html.escape(r.split)}'>{html.escape(r.split)}</h2><p>{html.escape(r.description)}</p>")
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS) + "</tr>")
        for line in _lines(r):
            parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in line) + "</tr>")
        for name, why in r.skipped.items():
            parts.append(f"<tr><td>{html.escape(name)}</td><td colspan='{len(HEADERS) - 1}'>not run: "
                         f"{html.escape(why)}</td></tr>")
        parts.append("</table>")
        if r.guarantee is not None:
            parts.append(guarantee_html(r.guarantee, title=f"{r.split}: guarantee"))
        if r.plot is not None:
            rel = r.plot.relative_to(path.parent) if r.plot.is_relative_to(path.parent) else r.plot
            parts.append(f"<img src='{html.escape(str(rel))}' alt='convergence on {html.escape(r.split)}'>")
    parts.append("</body></html>")
    atomic_write(path, "\n".join(parts))
    return path


def summary_of(reports: Sequence[SplitReport]) -> list[dict[str, Any]]:
    """JSON-ready: per split its name, description, skipped solvers and per solver the
    nested tolerances (``by_solver``) with the fallback rate."""
    out = []
    for r in reports:
        rates = {row["solver"]: row.get("fallback_rate") for row in r.rows}
        solvers = [{**s, "fallback_rate": rates.get(s["name"])} for s in by_solver(r.rows)]
        out.append({"split": r.split, "description": r.description, "skipped": r.skipped,
                    "plot": None if r.plot is None else str(r.plot), "solvers": solvers,
                    "guarantee": None if r.guarantee is None else r.guarantee.to_json()})
    return out
