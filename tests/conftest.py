"""Shared test settings.

The suite runs with ``pytest -n 2`` on two cores: one torch thread per worker, or
the OpenMP pools of the two workers fight over the cores and small GEMMs run
10-100x slower.
"""

import torch

torch.set_num_threads(1)
