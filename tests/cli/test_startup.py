"""Start-up: ``import l2o``, ``import l2o.cli``, ``l2o --help``, ``l2o --version`` and
``l2o list`` import neither torch nor any solver (each command's module loads when it
runs), and the lazy names resolve to what they name. The times themselves are measured by
``benchmarks/bench_startup.py``, not asserted here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import version

import pytest
from typer.testing import CliRunner

import l2o
from l2o.cli import COMMANDS, app, load_command

runner = CliRunner()

#: Runs ``code`` in a fresh interpreter, then prints (as JSON, last line of stderr) the
#: heavy modules it imported: torch and l2o's solver stack.
HEAVY = ("torch", "numpy", "scipy", "l2o.problems", "l2o.optimizers", "l2o.learned", "l2o.evaluation",
         "l2o.training", "l2o.workflows")
PROBE = f"""
import atexit, json, sys
def _heavy():
    top = {{m.split('.')[0] if not m.startswith('l2o') else '.'.join(m.split('.')[:2]) for m in sys.modules}}
    print(json.dumps(sorted(top & set({HEAVY!r}))), file=sys.stderr)
atexit.register(_heavy)
"""


def fresh(code: str, *argv: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    proc = subprocess.run([sys.executable, "-c", PROBE + code, *argv], capture_output=True, text=True, timeout=120)
    return proc, json.loads(proc.stderr.strip().splitlines()[-1])


def test_import_l2o_and_l2o_cli_import_no_torch():
    proc, heavy = fresh("import l2o, l2o.cli, l2o.registry")
    assert proc.returncode == 0 and heavy == [], heavy


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["list"], []])
def test_help_version_and_list_import_no_torch(argv):
    proc, heavy = fresh("from l2o.cli import main; main()", *argv)
    assert proc.returncode == 0, proc.stderr
    assert heavy == [], (argv, heavy)
    assert proc.stdout.strip()


def test_a_command_that_solves_does_import_torch():
    """The probe can fail: ``l2o solve --help`` loads the solve command and its stack."""
    proc, heavy = fresh("from l2o.cli import main; main()", "solve", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "torch" in heavy and "l2o.workflows" in heavy


def test_version_prints_the_distribution_version():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout == f"l2o {version('l2o')}\n"
    assert l2o.__version__ == version("l2o")


def test_help_lists_every_command_with_its_summary_and_the_exit_codes():
    load_command("list")  # as after `l2o list` in the same process: the package then has a `list` submodule
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    text = " ".join(res.stdout.split())
    for name, spec in COMMANDS.items():
        assert name in res.stdout and spec.summary.split()[0] in text
    assert "--version" in res.stdout and "3 l2o solve: some instance did not reach --tol" in text


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_lazy_command_loads_and_its_summary_opens_its_help(name):
    command = load_command(name)
    assert command.name == name and command.params is not None
    first = " ".join((command.help or "").replace("\\[", "[").split())  # as written (escaped for rich)
    assert first.startswith(COMMANDS[name].summary.rstrip(".")), (name, first[:120])
    res = runner.invoke(app, [name, "--help"])
    assert res.exit_code == 0 and "Usage" in res.stdout
    shown = " ".join(res.stdout.split())
    for fragment in re.findall(r"\S*\[[^\]]*\]\S*", first):  # H[k, i, j], [training]: not eaten as markup
        assert fragment in shown, (name, fragment)


def test_unknown_command_suggests_the_right_one():
    res = runner.invoke(app, ["sovle"])
    assert res.exit_code == 2 and res.stderr.strip() == "error: No such command 'sovle'. Did you mean 'solve'?"


def test_lazy_package_names_resolve():
    for name in l2o.__all__:
        assert getattr(l2o, name) is not None, name
    assert set(l2o.__all__) <= set(dir(l2o))
    from l2o.registry import make_solver

    assert l2o.make_solver is make_solver
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        l2o.nope  # noqa: B018
