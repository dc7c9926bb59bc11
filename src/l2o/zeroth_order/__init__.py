"""Zeroth-order optimization: gradient estimates from function values, under a query budget.

* ``estimate_gradient``: ZO-Avg and ZO-Align estimates with Gaussian, sphere, orthonormal or
  coordinate directions and forward or central differences, batched over instances, all
  queries of an iteration in one call of the function (``estimators``).
* ``QueryAccounting`` / ``CountingObjective``: what an iteration costs against a budget, and
  what a function was really asked (``accounting``).
* ``ZOGD`` (registry name ``zo_gd``): zeroth-order gradient descent behind the init / step
  protocol, calling only the problem's objective (``zo_gd``).

Lin, Song, Xu, *The Multi-Query Paradox in Zeroth-Order Optimization*, arXiv 2509.15552.
"""

from l2o.zeroth_order.accounting import BASES, COUNTS, DIFFERENCES, CountingObjective, QueryAccounting
from l2o.zeroth_order.directions import DIRECTIONS, draw_directions
from l2o.zeroth_order.estimators import RULES, Estimate, default_mu, estimate_gradient
from l2o.zeroth_order.objective import EVALUATIONS, instances_objective
from l2o.zeroth_order.zo_gd import DECAYS, ZOGD, ZOState, descent_factor

__all__ = [
    "estimate_gradient", "Estimate", "default_mu", "draw_directions", "QueryAccounting", "CountingObjective",
    "instances_objective", "ZOGD", "ZOState", "descent_factor",
    "RULES", "DIRECTIONS", "DIFFERENCES", "BASES", "COUNTS", "EVALUATIONS", "DECAYS",
]
