"""Learned optimizers: ``nn.Module``s with the init / step protocol of ``l2o.optimizers``.

``LEARNED`` maps each solver's ``name`` to its class; ``make_learned(name, **hparams)``
builds one. A saved model is rebuilt as ``type(m)(**m.hparams)`` (for LISTA / ALISTA,
optionally with ``A=...``) followed by ``load_state_dict``.
"""

from __future__ import annotations

from typing import Any

from l2o.learned.base import CoordLSTM, LearnedOptimizer
from l2o.learned.blackbox import L2ODM, RNNprop
from l2o.learned.gnn_wmmse import GNNWMMSE
from l2o.learned.go_math_l2o import GOMathL2O
from l2o.learned.lfista import LFISTA
from l2o.learned.lgd import LGD
from l2o.learned.lista import ALISTA, LISTA, analytic_weight
from l2o.learned.math_l2o import MathL2O

LEARNED: dict[str, type[LearnedOptimizer]] = {
    cls.name: cls for cls in (LGD, MathL2O, GOMathL2O, LISTA, ALISTA, L2ODM, RNNprop, LFISTA, GNNWMMSE)
}


def make_learned(name: str, **hparams: Any) -> LearnedOptimizer:
    """Instantiate the learned solver ``name`` with constructor arguments ``hparams``."""
    if name not in LEARNED:
        raise ValueError(f"unknown learned solver {name!r}; valid learned solvers: {', '.join(sorted(LEARNED))}")
    return LEARNED[name](**hparams)


__all__ = [
    "ALISTA",
    "L2ODM",
    "LEARNED",
    "LFISTA",
    "LGD",
    "LISTA",
    "CoordLSTM",
    "GNNWMMSE",
    "GOMathL2O",
    "LearnedOptimizer",
    "MathL2O",
    "RNNprop",
    "analytic_weight",
    "make_learned",
]
