"""``l2o list``: the problem families, presets, solvers and out-of-distribution splits.

Everything shown is registry data (``l2o.registry``: names, descriptions, which solvers are
learned, the presets' declared splits), so listing imports neither torch nor any solver.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from l2o.cli.options import console
from l2o.registry import CLASSICAL, COMMON_SPLITS, FAMILIES, LEARNED, PRESETS


def split_names() -> dict[str, str]:
    """The splits of every family, then the presets' own (natural) splits."""
    out = {"every family": ", ".join(COMMON_SPLITS)}
    for name, entry in PRESETS.entries.items():
        # a preset that does not declare its splits is built to find them (imports torch)
        natural = entry.splits if entry.splits is not None else [sp.name for sp in entry.family.natural_splits()]
        if natural:
            out[name] = ", ".join(natural)
    return out


def list_() -> None:
    """Show the problem families, presets and solvers, with a one-line description each."""
    con = console()
    sections = (
        ("families", {k: e.description for k, e in FAMILIES.items()}),
        ("presets", {k: e.description for k, e in PRESETS.entries.items()}),
        ("solvers", {k: e.description for k, e in CLASSICAL.items()}),
        ("learned solvers (l2o train: [solver] name)", {k: e.description for k, e in LEARNED.items()}),
        ("out-of-distribution splits (l2o eval --split NAME)", split_names()),
    )
    for title, items in sections:
        table = Table(title=title, title_justify="left")
        table.add_column("name", no_wrap=True)
        table.add_column("description")
        for name, description in items.items():
            table.add_row(Text(name), Text(description))  # Text: no rich markup in descriptions
        con.print(table)
