"""The ``l2o`` command line: a thin layer over the Python API.

    l2o list                                   families, presets and solvers
    l2o solve --problem lasso --data d.npz     solve instances read from a file
    l2o train config.toml                      meta-train a learned solver
    l2o eval runs/x                            a trained run against classical and learned baselines
    l2o demo                                   train LFISTA on LASSO, compare with classical solvers
    l2o --version                              the installed version

One module per command (``l2o.cli.list``, ``solve``, ``train``, ``eval``, ``demo``): each
parses its options (``l2o.cli.options``), calls one workflow (``l2o.workflows``) and
prints. Every error caused by the input (a bad file, a bad option value, a solver that
does not fit the problem) is one line ``error: ...`` on stderr and exit status 2.

A command's module (and with it torch and the solvers) is imported only when that command
runs (click's "lazily loading subcommands" pattern): ``l2o --help``, ``l2o --version`` and
``l2o list`` start in a fraction of a second. ``COMMANDS`` names each command's function
and help text by ``"module:attribute"`` path; to add a command, add its line there.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from l2o.cli.options import NOT_CONVERGED, USAGE_ERROR, error
from l2o.utils.performance import tune_allocator

# typer >= 0.22 vendors click; find its ClickException wherever it lives.
_ClickException: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


@dataclasses.dataclass(frozen=True)
class LazyCommand:
    """A command whose module is imported when it runs: its function and its help text
    (``"module:attribute"`` paths; help None: the function's docstring), and the one line
    that ``l2o --help`` shows for it (the first sentence of the help)."""

    function: str
    summary: str
    help: str | None = None


#: The commands, in the order ``l2o --help`` lists them.
COMMANDS: dict[str, LazyCommand] = {
    "list": LazyCommand("l2o.cli.list:list_", "Show the problem families, presets and solvers"),
    "solve": LazyCommand("l2o.cli.solve:solve", "Solve one instance or a batch read from FILE and write the solution.",
                         "l2o.cli.solve:SOLVE_HELP"),
    "train": LazyCommand("l2o.cli.train:train", "Meta-train a learned solver from a run config",
                         "l2o.cli.train:TRAIN_HELP"),
    "eval": LazyCommand("l2o.cli.eval:eval_",
                        "Evaluate a trained run (a directory written by l2o train) or a bundled pretrained solver "
                        "(DIR or --checkpoint NAME; l2o list --pretrained) against classical and learned baselines.",
                        "l2o.cli.eval:EVAL_HELP"),
    "demo": LazyCommand("l2o.cli.demo:demo",
                        "Train a learned solver and compare it with classical ones: the quickstart's main job.",
                        "l2o.cli.demo:DEMO_HELP"),
    "serving": LazyCommand("l2o.cli.serving:app", "LLM-serving simulator: batching policies under a KV-cache limit."),
    "decentralized": LazyCommand("l2o.cli.decentralized:decentralized", "Decentralized optimization over a "
                                 "directed graph.", "l2o.cli.decentralized:DECENTRALIZED_HELP"),
}


def _attribute(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def load_command(name: str) -> Any:
    """The click command ``name`` (its module imported now), built by typer from its function.

    >>> load_command("list").name
    'list'
    """
    spec = COMMANDS[name]
    target = _attribute(spec.function)
    if isinstance(target, typer.Typer):  # a group of subcommands (l2o serving simulate | fluid)
        group = typer.main.get_command(target)
        group.name = name
        return group
    one = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    text = _attribute(spec.help) if spec.help is not None else target.__doc__
    one.command(name, help=_plain_text(text))(target)
    return _plain_help_flag(typer.main.get_command(one))


def _plain_text(text: str | None) -> str | None:
    """A help text shown as written: typer renders help as rich markup, where
    ``H[k, i, j]`` or ``[training]`` would vanish as unknown tags."""
    if text is None or getattr(typer.core, "DEFAULT_MARKUP_MODE", None) != "rich":
        return text
    from rich.markup import escape  # rich renders the help; imported only when a command loads

    return escape(text)


def _plain_help_flag(command: Any) -> Any:
    """Make ``command``'s ``--help`` flag default to False rather than None. typer (0.29)
    coerces every option value that is not already a bool through pydantic, so a None
    default imports pydantic (about a quarter of ``l2o list``'s start-up) on every run;
    a bool is left alone. Behaviour is unchanged: the flag is still off unless given."""
    original = command.get_help_option

    def get_help_option(ctx: Any) -> Any:
        option = original(ctx)
        if option is not None and getattr(option, "default", False) is None:
            option.default = False
        return option

    command.get_help_option = get_help_option
    return command


class _LazyGroup(TyperGroup):
    """The ``l2o`` group: commands load on first use (``COMMANDS``); while the group's own
    help is written they are stand-ins that hold only their name and summary. Click's usage
    errors (missing option, value of the wrong type) are one ``error: ...`` line, like the
    errors of the commands themselves."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: dict[str, Any] = {}
        self._listing = False
        # stand-ins: click's typo suggestions ("Did you mean ...?") read the names from here
        self.commands = {name: TyperCommand(name=name, help=spec.summary) for name, spec in COMMANDS.items()}

    def list_commands(self, ctx: Any) -> list[str]:
        # not list(...): once ``l2o.cli.list`` is imported, the name ``list`` in this
        # package's namespace is that submodule
        return [*COMMANDS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        if self._listing:
            return self.commands[cmd_name]
        if cmd_name not in self._loaded:
            self._loaded[cmd_name] = load_command(cmd_name)
        return self._loaded[cmd_name]

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None and getattr(option, "default", False) is None:
            option.default = False  # see _plain_help_flag
        return option

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

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


def _show_version(value: bool) -> None:
    if value:
        print(f"l2o {_attribute('l2o:__version__')}")
        raise typer.Exit(0)


app = typer.Typer(
    cls=_LazyGroup,
    name="l2o",
    help="Learning to optimize: solve problems from files, list solvers, compare solvers.\n\n"
         f"Exit status: 0 success; {USAGE_ERROR} bad input or options (one line 'error: ...' on stderr); "
         f"{NOT_CONVERGED} l2o solve: some instance did not reach --tol; 130 interrupted.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", help="print 'l2o <version>' and exit", is_eager=True, callback=_show_version)
    ] = False,
) -> None:
    pass


def main() -> None:
    """Console-script entry point (``l2o = "l2o.cli:main"``)."""
    tune_allocator()  # the CLI owns its process: keep large temporaries in the heap
    app()


__all__ = ["app", "main", "COMMANDS", "LazyCommand", "load_command", "USAGE_ERROR", "NOT_CONVERGED"]
