"""``benchmarks/bench_structural_mpnn_speed.py`` on a tiny run: two labels merge into one results pair,
every table row is there, and the model gives the same sum-rate in both (the same code here)."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))  # the script imports benchmarks/_common.py as a sibling
    try:
        path = BENCH / "bench_structural_mpnn_speed.py"
        spec = importlib.util.spec_from_file_location("bench_structural_mpnn_speed", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def test_two_labels_merge_and_render(bench, tmp_path, capsys):
    common = ["--scales", "small", "--batch", "3", "--serial", "1", "--repeats", "1", "--results", str(tmp_path)]
    bench.main(["--label", "after", *common])
    bench.main(["--label", "before", *common])
    data = json.loads((tmp_path / "structural_mpnn_speed.json").read_text())
    assert list(data) == ["before", "after"]
    for run in data.values():
        e = run["scales"]["small"]
        assert set(e["methods"]) == {"wmmse_paper", "wmmse_paper_absolute", "structural_mpnn"}
        assert e["flops"]["model_solve"] == 5 * e["flops"]["model_iteration"] > 0
        m = e["methods"]["structural_mpnn"]["batched"]
        assert m["speedup_over_wmmse_paper"] == pytest.approx(
            e["methods"]["wmmse_paper"]["batched"]["cpu_s_min"] / m["cpu_s_min"])
    rates = [run["scales"]["small"]["mean_sum_rate"]["structural_mpnn"] for run in data.values()]
    assert rates[0] == pytest.approx(rates[1], rel=1e-6)
    md = (tmp_path / "structural_mpnn_speed.md").read_text()
    assert md.count("| small | batched (3) |") == 2 and "## before -> after" in md
    with pytest.raises(SystemExit) as e:
        bench.main(["--label", "x", "--batch", "0", "--results", str(tmp_path)])
    assert e.value.code == 2 and "--batch must be a positive integer" in capsys.readouterr().err
