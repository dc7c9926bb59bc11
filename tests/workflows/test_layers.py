"""The workflows and the evaluation library do not import the command line."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["l2o.workflows", "l2o.evaluation", "l2o.evaluation.defaults", "l2o"])
def test_library_does_not_import_the_cli(module):
    code = (f"import sys, {module}; bad = sorted(m for m in sys.modules if m == 'l2o.cli' or m.startswith('l2o.cli.'));"
            "print(','.join(bad))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", f"{module} imports {res.stdout.strip()}"
