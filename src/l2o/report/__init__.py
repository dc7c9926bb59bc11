"""Reports drawn from recorded trajectories or tidy records: summary tables and
convergence plots (and later HTML). Nothing here runs a solver."""

from l2o.report.plots import convergence_figure, plot_convergence
from l2o.report.table import (
    DEFAULT_TOLERANCES,
    by_solver,
    render_table,
    summarize,
    summarize_comparison,
    summarize_records,
)

__all__ = [
    "DEFAULT_TOLERANCES", "summarize", "summarize_comparison", "summarize_records", "by_solver", "render_table",
    "convergence_figure", "plot_convergence",
]
