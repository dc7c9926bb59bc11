"""Decentralized optimization over directed networks: n nodes minimize ``(1/n) sum_i f_i(x)``, each
knowing only its own data and talking along a strongly connected digraph.

* ``topology``: weight matrices, pull (A) / push (B) matrices, checks, metrics and generators;
* ``objectives``: per-node objectives and data (synthetic, scikit-learn digits);
* ``algorithms``: Push-Pull, Pull-Diag-GT, MG-Pull-Diag-GT and baselines, written once over ``comm``;
* ``comm``: the communication interface, simulated (stacked) and torch.distributed (one process per node);
* ``simulate`` / ``processes``: the two entry points; ``files``: the npz formats.

A room of its own beside the solver stack: it imports only ``l2o.utils``.
"""

from l2o.decentralized.algorithms import ALGORITHMS, make_algorithm
from l2o.decentralized.objectives import OBJECTIVES, NodeData, make_objective
from l2o.decentralized.simulate import Result, metrics, simulate
from l2o.decentralized.topology import GENERATORS, Topology, make_topology

__all__ = ["ALGORITHMS", "OBJECTIVES", "GENERATORS", "NodeData", "Result", "Topology", "make_algorithm",
           "make_objective", "make_topology", "metrics", "simulate"]
