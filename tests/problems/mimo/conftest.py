"""Shared MIMO fixtures."""

import pytest

from l2o.evaluation import Reference, reference
from l2o.problems import MimoFamily, MimoInstances


@pytest.fixture(scope="session")
def small_batch() -> MimoInstances:
    """4 instances of the small preset."""
    p = MimoFamily(cells=3, users=2, tx_antennas=4, rx_antennas=2, streams=2, power=10.0, noise=1.0).sample(4, 0)
    return p


@pytest.fixture(scope="session")
def small_reference(small_batch) -> Reference:
    """The reference of ``small_batch``, computed once."""
    return reference(small_batch)
