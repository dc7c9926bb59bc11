"""``python -m l2o.contrib.benchopt lasso|logreg_l2``: print the path of l2o's solver
file for that benchopt benchmark (for ``benchopt run BENCH -s "$(...)[solver=NAME]"``)."""

from __future__ import annotations

import sys

from l2o.contrib.benchopt import SOLVER_FILES, solver_file


def main(argv: list[str] | None = None) -> int:
    """Print the solver file's path; exit 2 with one line on a bad argument.

    >>> main(["lasso"])  # doctest: +ELLIPSIS
    /.../l2o/contrib/benchopt/lasso.py
    0
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in SOLVER_FILES:
        print(f"error: give one benchmark, one of {', '.join(SOLVER_FILES)} (got {' '.join(args) or 'none'})",
              file=sys.stderr)
        return 2
    print(solver_file(args[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
