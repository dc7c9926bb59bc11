"""The docstring examples of l2o.serving run and pass."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import l2o.serving

MODULES = sorted(m.name for m in pkgutil.iter_modules(l2o.serving.__path__, "l2o.serving."))


@pytest.mark.parametrize("name", ["l2o.serving", *MODULES])
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_every_public_function_has_an_example():
    missing = []
    for name in ["l2o.serving", *MODULES]:
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", []):
            obj = getattr(module, attr)
            if callable(obj) and getattr(obj, "__module__", "") == name and ">>>" not in (obj.__doc__ or ""):
                missing.append(f"{name}.{attr}")
    assert missing == []
