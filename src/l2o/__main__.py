"""``python -m l2o``: the ``l2o`` command, so that ``torchrun -m l2o train CONFIG.toml`` runs it."""

from l2o.cli import main

main()
