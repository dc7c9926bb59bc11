"""Learned optimizers: ``nn.Module``s with the init / step protocol of ``l2o.optimizers``.

They are registered with the classical solvers in ``l2o.registry`` (``SOLVERS``, the
``LEARNED`` view, ``make_solver(name, **hparams)``). A saved model is rebuilt as
``type(m)(**m.hparams)`` (for LISTA / ALISTA, optionally with ``A=...``) followed by
``load_state_dict``.
"""

from __future__ import annotations

from l2o.learned.base import CoordLSTM, LearnedOptimizer
from l2o.learned.blackbox import L2ODM, RNNprop
from l2o.learned.gcn_wmmse import GCNWMMSE
from l2o.learned.gnn_wmmse import GNNWMMSE
from l2o.learned.go_math_l2o import GOMathL2O
from l2o.learned.iaidnn import IAIDNN
from l2o.learned.lfista import LFISTA
from l2o.learned.lgd import LGD
from l2o.learned.lista import ALISTA, LISTA, analytic_weight
from l2o.learned.lqn import LQN
from l2o.learned.math_l2o import MathL2O
from l2o.learned.structural_mpnn import StructuralMPNN, StructuralMPNNB, StructuralMPNNO

__all__ = [
    "ALISTA",
    "L2ODM",
    "LFISTA",
    "LGD",
    "LISTA",
    "LQN",
    "IAIDNN",
    "CoordLSTM",
    "GCNWMMSE",
    "GNNWMMSE",
    "GOMathL2O",
    "LearnedOptimizer",
    "MathL2O",
    "RNNprop",
    "StructuralMPNN",
    "StructuralMPNNB",
    "StructuralMPNNO",
    "analytic_weight",
]
