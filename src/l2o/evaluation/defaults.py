"""Evaluation defaults, in one place: the horizon rule, the evaluation seed and the
classical baselines and safeguard fallback of a family.

The string tests on family names that choose a default live here (``is_mimo``), one
function each, until families declare their defaults themselves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from l2o.registry import SOLVERS

#: A learned solver is evaluated at this multiple of its training horizon by default.
HORIZON_FACTOR = 10

#: Baselines of ``l2o eval`` when none are named: by the kind of problem.
BASELINES_NONSMOOTH = ("ista", "fista", "fista_restart", "adam")
BASELINES_SMOOTH = ("gd", "nesterov", "fista_restart", "adam", "lbfgs")
#: ... and of the MIMO sum-rate family: WMMSE and the linear precoders (ZF is left out
#: where it does not fit, M < I d).
BASELINES_MIMO = ("wmmse", "mrt", "zf", "rzf")
#: The classical solver a safeguard falls back to (``default_fallback``).
FALLBACK = "fista_restart"
FALLBACK_MIMO = "wmmse"


def is_mimo(family: Any) -> bool:
    """Whether ``family`` is the MIMO sum-rate family (``family.name == "mimo"``)."""
    return getattr(family, "name", None) == "mimo"


def default_baselines(has_nonsmooth: bool, family: Any = None) -> tuple[str, ...]:
    """The baselines of ``l2o eval``: ``BASELINES_MIMO`` for the MIMO sum-rate family,
    else by smoothness."""
    if is_mimo(family):
        return BASELINES_MIMO
    return BASELINES_NONSMOOTH if has_nonsmooth else BASELINES_SMOOTH


def default_fallback(family: Any) -> str:
    """The classical solver a safeguard falls back to: WMMSE for the MIMO family (when
    registered), else FISTA with restart (smooth or composite, any family here)."""
    return FALLBACK_MIMO if is_mimo(family) and FALLBACK_MIMO in SOLVERS else FALLBACK


def eval_seed(training_seed: int) -> int:
    """The default seed of evaluation instances: derived from the training seed but
    distinct from every stream training draws from (those come from
    ``SeedSequence(seed)``; this is ``SeedSequence([seed, 'eval'])``)."""
    tag = int.from_bytes(b"eval", "big")
    return int(np.random.SeedSequence([int(training_seed), tag]).generate_state(1, dtype=np.uint32)[0])


def trained_horizon(solver: Any, config: Any) -> int:
    """The horizon a learned solver was trained for (its own, else the config's unroll)."""
    h = getattr(solver, "horizon", None)
    return int(h) if h is not None else int(config.training.unroll)


def evaluation_iterations(horizon: int) -> int:
    """Iterations of a learned solver with training horizon ``horizon`` when none are
    given: ``HORIZON_FACTOR`` x the horizon."""
    return HORIZON_FACTOR * int(horizon)


__all__ = [
    "HORIZON_FACTOR", "BASELINES_NONSMOOTH", "BASELINES_SMOOTH", "BASELINES_MIMO", "FALLBACK", "FALLBACK_MIMO",
    "is_mimo", "default_baselines", "default_fallback", "eval_seed", "trained_horizon", "evaluation_iterations",
]
