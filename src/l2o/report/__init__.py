"""Reports: summary tables (and later plots and HTML) drawn from trajectories."""

from l2o.report.table import DEFAULT_TOLERANCES, by_solver, render_table, summarize

__all__ = ["DEFAULT_TOLERANCES", "summarize", "by_solver", "render_table"]
