"""``l2o list``: the problem families, presets, solvers and out-of-distribution splits."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from l2o.problems.splits import common_splits
from l2o.registry import CLASSICAL, FAMILIES, LEARNED, PRESETS


def split_names() -> dict[str, str]:
    """The splits of every family, then the presets' own (natural) splits."""
    common = ", ".join(sp.name for sp in common_splits())
    out = {"every family": common}
    for name, (family, _) in PRESETS.items():
        natural = [sp.name for sp in family.natural_splits()]
        if natural:
            out[name] = ", ".join(natural)
    return out


def list_() -> None:
    """Show the problem families, presets and solvers, with a one-line description each."""
    console = Console()
    sections = (
        ("families", {k: e.description for k, e in FAMILIES.items()}),
        ("presets", {k: d for k, (_, d) in PRESETS.items()}),
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
        console.print(table)
