"""Bridges from l2o to other projects' interfaces (the room at the top of the layers,
beside ``l2o.cli`` and ``l2o.sklearn``): ``l2o.contrib.benchopt`` holds solver files for
benchopt's LASSO and l2-logistic benchmarks."""
