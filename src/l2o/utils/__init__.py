"""Small helpers with one job each, below every other layer of l2o (they import no l2o module)."""
