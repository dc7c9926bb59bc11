"""``benchmarks/_common.py``'s ``write_results``: the json / md pair every benchmark writes."""

import importlib.util
import json
import pathlib
from pathlib import Path

PATH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "_common.py"
spec = importlib.util.spec_from_file_location("l2o_benchmarks_common", PATH)
common = importlib.util.module_from_spec(spec)
spec.loader.exec_module(common)
write_results = common.write_results


def test_write_results_pair_creates_folder_and_stringifies(tmp_path):
    folder = tmp_path / "new" / "results"
    js, md = write_results(folder, "bench", {"n": 3, "where": Path("/x/y"), "ratio": 1.5}, "# title\n| a |")
    assert json.loads(js.read_text()) == {"n": 3, "where": "/x/y", "ratio": 1.5}
    assert md.read_text() == "# title\n| a |\n"
    # rewriting replaces both files whole, leaving no temporary files behind
    write_results(folder, "bench", [1], "again\n")
    assert json.loads(js.read_text()) == [1] and md.read_text() == "again\n"
    assert sorted(p.name for p in folder.iterdir()) == ["bench.json", "bench.md"]
