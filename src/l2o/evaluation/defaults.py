"""Evaluation defaults, in one place: the horizon rule, the evaluation seed, and the
classical baselines and safeguard fallback of a family.

What a family uses by default is declared by the family (``ProblemFamily.baselines``,
``smooth_baselines``, ``fallback``; ``baselines_for(problem)`` picks by the instances'
structure); the functions here only read those declarations, so no module tests a
family's name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from l2o.problems.base import Instances
from l2o.problems.family import ProblemFamily

#: A learned solver is evaluated at this multiple of its training horizon by default.
HORIZON_FACTOR = 10


def _family_class(family: Any) -> type[ProblemFamily]:
    """The class that declares ``family``'s defaults: the family's own class, or
    ``ProblemFamily`` (the generic declarations) for None or an object that is no family."""
    cls = family if isinstance(family, type) else type(family)
    return cls if issubclass(cls, ProblemFamily) else ProblemFamily


def default_baselines(problem: Instances, family: Any = None) -> tuple[str, ...]:
    """The baselines of ``l2o eval`` for ``problem``, instances of ``family``: what the
    family declares (``family.baselines_for(problem)``: ``baselines`` for nonsmooth
    instances, ``smooth_baselines`` for smooth ones); the generic declarations of
    ``ProblemFamily`` without a family.

    >>> import l2o
    >>> fam = l2o.make_family("qp_100")
    >>> default_baselines(fam.sample(1, 0), fam)
    ('gd', 'nesterov', 'fista_restart', 'adam', 'lbfgs')
    """
    return _family_class(family).baselines_for(problem)


def default_fallback(family: Any) -> str:
    """The classical solver a safeguard falls back to: ``family.fallback`` (FISTA with
    restart unless the family declares another, e.g. WMMSE for MIMO).

    >>> import l2o
    >>> default_fallback(l2o.make_family("mimo_small")), default_fallback(l2o.make_family("lasso_250x500"))
    ('wmmse', 'fista_restart')
    """
    return _family_class(family).fallback


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
    "HORIZON_FACTOR", "default_baselines", "default_fallback", "eval_seed", "trained_horizon", "evaluation_iterations",
]
