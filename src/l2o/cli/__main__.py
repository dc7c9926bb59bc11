"""``python -m l2o.cli``: the ``l2o`` command."""

from l2o.cli import main

main()
