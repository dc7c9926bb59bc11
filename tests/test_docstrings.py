"""Every public family, registered solver and top-level function carries a runnable example.

The examples themselves run as doctests (``--doctest-modules`` in ``pyproject.toml``
collects ``src/l2o``); this test makes sure none goes missing: a docstring without a
``>>>`` example would simply not be collected.
"""

from __future__ import annotations

import inspect

import pytest

import l2o
from l2o.problems import AutogradInstances
from l2o.registry import FAMILIES, SOLVERS, make_family
from l2o.safeguard import Safeguard


def _has_example(obj: object) -> bool:
    doc = inspect.getdoc(obj) or ""
    return ">>>" in doc


def _own_docstring(cls: type) -> str:
    """The class's own docstring: ``inspect.getdoc`` falls back to a parent's, so a
    subclass without one would pass on its parent's example."""
    return cls.__dict__.get("__doc__") or ""


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_every_registered_solver_has_an_example(name):
    cls = SOLVERS[name].factory
    assert ">>>" in _own_docstring(cls), f"solver {name!r} ({cls.__module__}.{cls.__qualname__}) has no >>> example"


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_registered_family_has_an_example(name):
    cls = type(make_family(name))
    assert ">>>" in _own_docstring(cls), f"family {name!r} ({cls.__qualname__}) has no >>> example"


def test_the_other_public_entry_points_have_examples():
    assert ">>>" in _own_docstring(AutogradInstances)
    assert ">>>" in _own_docstring(Safeguard)
    functions = [getattr(l2o, name) for name in l2o.__all__ if inspect.isfunction(getattr(l2o, name))]
    assert {f.__name__ for f in functions} >= {"run", "solve", "compare", "reference", "make_family", "make_solver"}
    missing = [f.__name__ for f in functions if not _has_example(f)]
    assert missing == [], f"top-level functions without a >>> example: {missing}"
