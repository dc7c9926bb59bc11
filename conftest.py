"""Settings for everything pytest collects from the repository root: the tests
(``tests/``) and the doctests of the package (``src/l2o``, ``--doctest-modules``).

One torch thread per process: the suite runs with ``pytest -n 2`` on two cores, and
the OpenMP pools of the two workers would otherwise fight over the cores (small GEMMs
run 10-100x slower). ``tests/conftest.py`` says the same for runs of ``tests/`` alone.
"""

import torch

torch.set_num_threads(1)


def pytest_ignore_collect(collection_path, config):
    """Do not collect ``conftest.py`` files as doctest modules (``--doctest-modules``).

    pytest loads them as conftests anyway; collected as modules too, the several
    ``conftest.py`` of ``tests/`` (not packages, so all named ``conftest``) clash with an
    "import file mismatch" error. They hold no examples.
    """
    if collection_path.name == "conftest.py":
        return True
    return None
