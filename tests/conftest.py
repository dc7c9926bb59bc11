"""Shared test settings.

The suite runs with ``pytest -n 2`` on two cores: one torch thread per worker, or
the OpenMP pools of the two workers fight over the cores and small GEMMs run
10-100x slower.
"""

import pytest
import torch

from l2o.utils.progress import Progress

torch.set_num_threads(1)


class RecordingProgress(Progress):
    """A ``Progress`` that records the descriptions of the phases it is given, in order."""

    enabled = True

    def __init__(self):
        self.phases = []

    def phase(self, description, total=None):
        self.phases.append(description)
        return super().phase(description, total)


@pytest.fixture
def recording():
    """The ``RecordingProgress`` class: ``rec = recording()``, run, then check ``rec.phases``."""
    return RecordingProgress
