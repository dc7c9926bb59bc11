"""l2o: learning to optimize, with classical baselines and guarantees.

The public names below are imported on first use (PEP 562), so that ``import l2o`` and
the command line's ``l2o --help`` / ``l2o list`` do not pay for importing torch::

    >>> import l2o
    >>> l2o.make_solver("fista").name
    'fista'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and IDEs; at run time ``__getattr__`` imports on first use
    from l2o.evaluation import Comparison, Reference, SolveResult, Trajectory, compare, reference, run, solve
    from l2o.problems import (
        AutogradInstances,
        DatasetLogisticFamily,
        Instances,
        LassoFamily,
        LassoInstances,
        LeastSquaresFamily,
        LeastSquaresInstances,
        LogisticFamily,
        LogisticInstances,
        QuadraticFamily,
        QuadraticInstances,
    )
    from l2o.registry import FAMILIES, PRESETS, SOLVERS, make_family, make_solver
    from l2o.workflows.load import load_solver

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("run", "solve", "compare", "reference", "Trajectory", "SolveResult", "Comparison", "Reference"),
                    "l2o.evaluation"),
    **dict.fromkeys(("Instances", "AutogradInstances", "QuadraticFamily", "QuadraticInstances", "LeastSquaresFamily",
                     "LeastSquaresInstances", "LassoFamily", "LassoInstances", "LogisticFamily", "LogisticInstances",
                     "DatasetLogisticFamily"), "l2o.problems"),
    **dict.fromkeys(("FAMILIES", "PRESETS", "SOLVERS", "make_family", "make_solver"), "l2o.registry"),
    "load_solver": "l2o.workflows.load",  # a bundled pretrained name or a run directory
}

__all__ = [
    "run", "solve", "compare", "reference", "Trajectory", "SolveResult", "Comparison", "Reference",
    "Instances", "AutogradInstances", "QuadraticFamily", "QuadraticInstances", "LeastSquaresFamily",
    "LeastSquaresInstances", "LassoFamily", "LassoInstances", "LogisticFamily", "LogisticInstances",
    "DatasetLogisticFamily", "FAMILIES", "PRESETS", "SOLVERS", "make_family", "make_solver", "load_solver",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":  # one place: the installed distribution's metadata (pyproject.toml)
        value: Any = _version()
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'l2o' has no attribute {name!r}")
    globals()[name] = value  # later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _version() -> str:
    """The version of the installed ``l2o`` distribution ("0+unknown" when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("l2o")
    except PackageNotFoundError:
        return "0+unknown"
