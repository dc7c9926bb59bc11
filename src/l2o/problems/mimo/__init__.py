"""Multi-cell multi-user MIMO weighted sum-rate maximization (the WMMSE setting).

* ``channel``: the tensor-level algebra (packing, signals and interference, MMSE
  receivers and weights, the V update, MRT / ZF / RZF, budgets);
* ``instances``: ``MimoInstances`` (-rate, gradient, budget projection, start, certificate);
* ``family``: ``MimoFamily`` (hexagonal cells, user drops, path loss);
* ``infocom``: ``InfocomMimoFamily``, the scenarios of Song et al. (INFOCOM 2024), and their ZF start;

Its reference solution (the best of several WMMSE runs, ``MimoInstances.reference_starts``)
is computed by ``l2o.evaluation.reference``, since it runs a solver.
"""

from l2o.problems.mimo.channel import (
    complex_dtype,
    direct_channels,
    mmse_receivers,
    pack,
    per_cell_power,
    scale_to_budget,
    signal_and_interference,
    transmit_covariance,
    unpack,
    user_rates,
)
from l2o.problems.mimo.family import MimoFamily, hexagonal_grid
from l2o.problems.mimo.infocom import InfocomMimoFamily, zf_equal_power
from l2o.problems.mimo.instances import POWER_TOL, MimoInstances

__all__ = [
    "MimoFamily", "InfocomMimoFamily", "MimoInstances", "POWER_TOL", "hexagonal_grid", "complex_dtype",
    "direct_channels",
    "mmse_receivers", "pack", "per_cell_power", "scale_to_budget", "signal_and_interference",
    "transmit_covariance", "unpack", "user_rates", "zf_equal_power",
]
