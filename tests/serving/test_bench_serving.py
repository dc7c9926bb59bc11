"""Smoke run of ``benchmarks/bench_serving.py --quick`` (tiny sizes) into a temporary folder."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_bench_serving_quick(tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_serving.py"), "--quick", "--out",
                          str(tmp_path)], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    data = json.loads((tmp_path / "serving.json").read_text())
    assert set(data["p512d20"]) == {"paper", "issue", "roofline"}
    assert data["quick"] is True and data["speed"]["rows"][0]["completed"] == data["speed"]["rows"][0]["requests"]
    md = (tmp_path / "serving.md").read_text()
    assert "## 1. p512d20" in md and "## 6. Speed" in md
    assert (tmp_path / "serving-p512d20-roofline.png").stat().st_size > 0
