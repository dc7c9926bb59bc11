"""``l2o list``: the problem families, presets, solvers and out-of-distribution splits;
``l2o list --pretrained``: the bundled pretrained solvers, one line each.

Everything shown is registry data (``l2o.registry``: names, descriptions, which solvers are
learned, the presets' declared splits), so listing imports neither torch nor any solver.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from l2o.cli.options import console
from l2o.registry import CLASSICAL, COMMON_SPLITS, FAMILIES, LEARNED, PRESETS, resolve

#: The bundle's listing, imported only for ``--pretrained`` (it reads the JSON records, but
#: its module imports torch, which plain ``l2o list`` must not pay for).
LIST_PRETRAINED = "l2o.pretrained.bundle:list_pretrained"


def split_names() -> dict[str, str]:
    """The splits of every family, then the presets' own (natural) splits."""
    out = {"every family": ", ".join(COMMON_SPLITS)}
    for name, entry in PRESETS.entries.items():
        # a preset that does not declare its splits is built to find them (imports torch)
        natural = entry.splits if entry.splits is not None else [sp.name for sp in entry.family.natural_splits()]
        if natural:
            out[name] = ", ".join(natural)
    return out


def pretrained_lines() -> list[str]:
    """One line per bundled pretrained solver: name, method, family, horizon, one figure."""
    entries = resolve(LIST_PRETRAINED)()
    if not entries:
        return []
    w = [max(len(s) for s in col) for col in zip(*[(e.name, e.method, e.family) for e in entries])]
    return [f"{e.name:<{w[0]}}  {e.method:<{w[1]}}  {e.family:<{w[2]}}  horizon {e.horizon:<4d} {e.figure}"
            for e in entries]


def list_(
    pretrained: Annotated[bool, typer.Option("--pretrained", help="the bundled pretrained solvers, one line each: "
                                             "name, method, family, training horizon, a figure measured when made "
                                             "(use the name with --checkpoint of l2o solve / l2o eval)")] = False,
) -> None:
    """Show the problem families, presets and solvers, with a one-line description each."""
    if pretrained:
        for line in pretrained_lines():
            print(line)
        return
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
