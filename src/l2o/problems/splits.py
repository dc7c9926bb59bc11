"""Named out-of-distribution splits of a problem family.

A split turns the training family into the family its test instances come from.
Every family has the same common splits:

* ``id``: in distribution (the family itself);
* ``x0_+10`` ... ``x0_-100``: the initial-point shifts x0 = s * 1, s in {+-10, +-20,
  +-50, +-100}, of Song et al. (CVPR 2024);
* ``objective_shift_1``, ``objective_shift_10``: solve F(x + t), t = s * 1 (same paper);

and each family adds its natural shifts in ``ProblemFamily.natural_splits`` (data scale,
noise, sparsity, regularization, conditioning, dimension, real datasets). Splits are
data: a name, a description and either field changes (``family.replace(**changes)``)
or a different family (for a real dataset), so configs and the CLI name them.

``family_splits(family)`` gives every named split of a family. A natural split that a
family's own module cannot build without importing a module above it (the real datasets
of ``LogisticFamily`` are ``DatasetLogisticFamily``s, defined in ``l2o.problems.datasets``,
which imports ``l2o.problems.logistic``) is registered for the family type by the module
that can build it (``register_splits``) and returned by ``registered_splits``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from l2o.problems.family import ProblemFamily, Split

X0_SHIFTS = (10.0, -10.0, 20.0, -20.0, 50.0, -50.0, 100.0, -100.0)
OBJECTIVE_SHIFTS = (1.0, 10.0)


def _fmt(v: float) -> str:
    return f"{v:+g}"


def common_splits() -> list[Split]:
    """The splits every family has: in distribution and the CVPR 2024 shifts."""
    out = [Split("id", "in distribution (the training family)", kind="id")]
    out += [Split(f"x0_{_fmt(s)}", f"initial point x0 = {s:g} * 1", {"x0_shift": s}, kind="cvpr") for s in X0_SHIFTS]
    out += [
        Split(f"objective_shift_{t:g}", f"objective shift F(x + t), t = {t:g} * 1", {"objective_shift": t}, kind="cvpr")
        for t in OBJECTIVE_SHIFTS
    ]
    return out


def scaled(name: str, field: str, value: Any, what: str) -> Split:
    """A natural split changing one field: ``name`` = f"{name}", description from ``what``."""
    return Split(name, f"{what} = {value}", {field: value})


def lam_splits(lam: float) -> list[Split]:
    """``lam_{lam/2}`` and ``lam_{2 lam}``: the regularization halved and doubled."""
    return [scaled(f"lam_{v:g}", "lam", v, "lam") for v in (lam / 2, lam * 2)]


#: Family type -> functions ``family -> [Split, ...]`` registered by modules above the
#: family's own (``register_splits``), in registration order.
_REGISTERED: dict[type[ProblemFamily], list[Callable[[Any], list[Split]]]] = {}


def register_splits(family_type: type[ProblemFamily], make: Callable[[Any], list[Split]]) -> None:
    """Add the natural splits ``make(family)`` to every family of type ``family_type``
    (``family_type.natural_splits`` includes them through ``registered_splits``)."""
    makers = _REGISTERED.setdefault(family_type, [])
    if make not in makers:
        makers.append(make)


def registered_splits(family: ProblemFamily) -> list[Split]:
    """The natural splits registered for ``type(family)`` (``register_splits``)."""
    return [s for make in _REGISTERED.get(type(family), ()) for s in make(family)]


def family_splits(family: ProblemFamily) -> dict[str, Split]:
    """Every named split of ``family``: the common ones, then its natural ones."""
    # the CVPR shifts apply to families of vector variables, not, e.g., to precoders
    splits = {s.name: s for s in common_splits() if s.kind != "cvpr" or family.cvpr_shifts}
    for s in family.natural_splits():
        if s.name in splits:
            raise ValueError(f"{family.name}: natural split {s.name!r} repeats a common split's name")
        splits[s.name] = s
    return splits


def resolve_splits(family: ProblemFamily, names: list[str] | None) -> list[Split]:
    """The splits named in ``names`` (None or ["all"]: all of them), in the order given.

    Raises ``ValueError`` for an unknown name, listing the valid ones.
    """
    available = family_splits(family)
    if names is None or list(names) == ["all"]:
        return list(available.values())
    out = []
    for n in names:
        if n not in available:
            raise ValueError(f"unknown split {n!r} for family '{family.name}'; valid splits: {', '.join(available)}")
        out.append(available[n])
    return out
