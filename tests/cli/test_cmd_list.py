"""``l2o list`` and the installed console script ``l2o``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from l2o.cli import app

runner = CliRunner()

def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])

def test_list_shows_families_presets_solvers():
    res = invoke("list")
    assert res.exit_code == 0, res.output
    for name in ("families", "presets", "solvers", "lasso", "lasso_250x500", "box_qp_100", "fista_restart", "newton"):
        assert name in res.stdout

# ----- the installed console script ---------------------------------------------------------------

def test_console_script_subprocess(tmp_path):
    exe = shutil.which("l2o", path=str(Path(sys.executable).parent))
    assert exe is not None, "console script l2o is not installed next to the interpreter"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    res = subprocess.run([exe, "list"], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "fista_restart" in res.stdout and "lasso_250x500" in res.stdout
    (tmp_path / "in.npz").write_bytes(b"")
    res = subprocess.run([exe, "solve", "--problem", "lasso", "--data", str(tmp_path / "in.npz")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [f"error: data file '{tmp_path / 'in.npz'}' is empty (0 bytes)"]


# ----- output piped to a file or a program is not cut to 80 columns -----------------------------------

def test_piped_tables_are_printed_whole():
    """CliRunner's stdout is not a terminal: rich would wrap a table at 80 columns; every
    description (the longest is about 100 characters) must appear whole on its row."""
    from l2o.registry import PRESETS, SOLVERS

    res = invoke("list")
    assert res.exit_code == 0
    descriptions = {**{n: e.description for n, e in SOLVERS.items()}, **{n: d for n, (_, d) in PRESETS.items()}}
    owner, longest = max(descriptions.items(), key=lambda item: len(item[1]))
    assert len(longest) > 80
    lines = res.stdout.splitlines()
    assert any(longest in line and f"│ {owner} " in line for line in lines), owner
    for name, entry in SOLVERS.items():
        assert any(f"│ {name} " in line and entry.description in line for line in lines), name
