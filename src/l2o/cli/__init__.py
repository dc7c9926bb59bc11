"""The ``l2o`` command line: a thin layer over the Python API.

    l2o list                                   families, presets and solvers
    l2o solve --problem lasso --data d.npz     solve instances read from a file
    l2o train config.toml                      meta-train a learned solver
    l2o eval runs/x                            a trained run against classical baselines
    l2o demo                                   train LFISTA on LASSO, compare with classical solvers

One module per command (``l2o.cli.list``, ``solve``, ``train``, ``eval``, ``demo``): each
parses its options (``l2o.cli.options``), calls one workflow (``l2o.workflows``) and
prints. Every error caused by the input (a bad file, a bad option value, a solver that
does not fit the problem) is one line ``error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

from l2o.cli import demo as _demo
from l2o.cli import eval as _eval
from l2o.cli import list as _list
from l2o.cli import serving as _serving
from l2o.cli import solve as _solve
from l2o.cli import train as _train
from l2o.cli.options import USAGE_ERROR, error
from l2o.utils.performance import tune_allocator

# typer >= 0.22 vendors click; find its ClickException wherever it lives.
_ClickException: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class _OneLineErrors(TyperGroup):
    """Report click's usage errors (missing option, value of the wrong type) as one
    ``error: ...`` line, like the errors of the commands themselves."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
            code = rv if isinstance(rv, int) else 0
        except _ClickException as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # plain `l2o`: the help, not an error
                text = e.format_message()  # typer's rich help has already printed itself
                if text.strip():
                    print(text)
                code = 0
            else:
                error(e.format_message())
                code = getattr(e, "exit_code", USAGE_ERROR)
        except typer.Abort:
            print("Aborted!", file=sys.stderr)
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=_OneLineErrors,
    name="l2o",
    help="Learning to optimize: solve problems from files, list solvers, compare solvers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("list")(_list.list_)
app.command("solve", help=_solve.SOLVE_HELP)(_solve.solve)
app.command("train", help=_train.TRAIN_HELP)(_train.train)
app.command("eval", help=_eval.EVAL_HELP)(_eval.eval_)
app.command("demo", help=_demo.DEMO_HELP)(_demo.demo)
app.add_typer(_serving.app, name="serving")


def main() -> None:
    """Console-script entry point (``l2o = "l2o.cli:main"``)."""
    tune_allocator()  # the CLI owns its process: keep large temporaries in the heap
    app()


__all__ = ["app", "main", "USAGE_ERROR"]
