"""Rendering the guarantee table (``l2o.evaluation.guarantee``): a rich table, the
sentences a user reads, and an HTML table for the reports.

One line per solver x tolerance, one column per iteration budget K; a cell holds the
upper bound on the share of the family's instances that need more than K iterations to
reach the tolerance (at confidence 1 - delta) and, in parentheses, the failures k out of
the N instances that were run. Bounds are rounded UP, so a printed bound still holds.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from rich import box
from rich.table import Table
from rich.text import Text

from l2o.evaluation.guarantee import Guarantee, GuaranteeRow
from l2o.report.table import format_tol


def format_bound(p: float | None) -> str:
    """A probability as a percentage rounded up (2 significant digits, at least 0.01%);
    '-' for None.

    >>> format_bound(0.0178), format_bound(0.004611), format_bound(0.25), format_bound(None)
    ('1.8%', '0.47%', '25%', '-')
    """
    if p is None:
        return "-"
    pct = 100.0 * p
    if pct >= 100:
        return "100%"
    decimals = 0 if pct >= 10 else 1 if pct >= 1 else 2
    scale = 10**decimals
    up = math.ceil(pct * scale - 1e-9) / scale  # 1e-9: 1.8 * 10 is 18.000000000000004
    return f"{up:.{decimals}f}%"


def format_confidence(g: Guarantee) -> str:
    """1 - delta as a percentage: '99%'."""
    return f"{100 * g.confidence:g}%"


def _grid(g: Guarantee) -> tuple[list[int], dict[tuple[str, float], dict[int, GuaranteeRow]]]:
    budgets = sorted({r.budget for r in g.rows})
    lines: dict[tuple[str, float], dict[int, GuaranteeRow]] = {}
    for r in g.rows:
        lines.setdefault((r.solver, r.tol), {})[r.budget] = r
    return budgets, lines


def _cell(r: GuaranteeRow | None) -> str:
    if r is None or r.failures is None:
        return "-"
    return f"{format_bound(r.bound)} ({r.failures}/{r.instances})"


def caption(g: Guarantee) -> str:
    """What a cell means, in one paragraph."""
    n = max((r.instances for r in g.rows), default=0)
    return (f"cell: with {format_confidence(g)} confidence, at most this share of instances from the family need more "
            f"than K iterations to reach the tolerance ({g.measure}); (k/N): k of the N = {n} fresh instances did. "
            f"Binomial KL-inverse bound, Sambharya and Stellato (arXiv 2404.13831); each cell holds on its own.")


def render_guarantee(g: Guarantee, title: str | None = None) -> Table:
    """A rich table: one line per solver x tolerance, one column per budget K."""
    budgets, lines = _grid(g)
    table = Table(title=title if title is not None else f"guarantee ({format_confidence(g)} confidence)",
                  caption=caption(g), box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("solver", no_wrap=True)
    table.add_column("to", justify="right", no_wrap=True)
    for K in budgets:
        table.add_column(f"> {K} it", justify="right", no_wrap=True)
    previous = None
    for (solver, tol), cells in lines.items():
        table.add_row(Text(solver if solver != previous else ""), format_tol(tol),
                      *[_cell(cells.get(K)) for K in budgets])
        previous = solver
    return table


def guarantee_sentences(g: Guarantee, solvers: Sequence[str] | None = None) -> list[str]:
    """One sentence per solver (default: the first one) and tolerance, at the smallest
    budget where the bound is at its lowest over the budgets, e.g. "with 99% confidence, at most 1.8% of instances
    from this family need more than 400 iterations to reach 1e-4 (lfista: 0 of 256 fresh
    instances did)"."""
    _, lines = _grid(g)
    names = list(dict.fromkeys(s for s, _ in lines)) if solvers is None else list(solvers)
    if solvers is None:
        names = names[:1]
    out = []
    for (solver, tol), cells in lines.items():
        if solver not in names:
            continue
        known = [r for r in cells.values() if r.failures is not None]
        if not known:
            continue
        r = min(known, key=lambda r: (r.bound, r.budget))
        out.append(f"with {format_confidence(g)} confidence, at most {format_bound(r.bound)} of instances from this "
                   f"family need more than {r.budget} iterations to reach {format_tol(tol)} ({solver}: {r.failures} "
                   f"of {r.instances} fresh instances did)")
    return out


def guarantee_html(g: Guarantee, title: str = "Guarantee") -> str:
    """The table as an HTML fragment (a heading, the table and its caption), escaped."""
    budgets, lines = _grid(g)
    parts = [f"<h3>{html.escape(title)} ({html.escape(format_confidence(g))} confidence)</h3>",
             "<table><tr><th>solver</th><th>to</th>" + "".join(f"<th>&gt; {K} it</th>" for K in budgets) + "</tr>"]
    for (solver, tol), cells in lines.items():
        parts.append(f"<tr><td>{html.escape(solver)}</td><td>{format_tol(tol)}</td>"
                     + "".join(f"<td>{html.escape(_cell(cells.get(K)))}</td>" for K in budgets) + "</tr>")
    parts.append("</table>")
    parts.append(f"<p>{html.escape(caption(g))}</p>")
    return "\n".join(parts)


__all__ = ["format_bound", "format_confidence", "caption", "render_guarantee", "guarantee_sentences", "guarantee_html"]
