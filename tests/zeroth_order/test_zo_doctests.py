"""The docstring examples of ``l2o.zeroth_order`` run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["directions", "accounting", "estimators", "objective", "zo_gd"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(f"l2o.zeroth_order.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
