"""``l2o serving simulate`` and ``l2o serving fluid`` end to end on tiny configs."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from l2o.cli import app

runner = CliRunner()

CONFIG = """
[gpu]
d0 = 0.01
d1 = 1e-5
memory = 6000
max_batch = 64

[[types]]
prefill = 64
decode = 8
rate = 20.0

[[types]]
prefill = 32
decode = 24
rate = 5.0

[policy]
name = "wait"

[run]
requests = 400
seed = 0
"""


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def _config(tmp_path, text=CONFIG, name="c.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_simulate_json_several_policies(tmp_path):
    res = invoke("serving", "simulate", _config(tmp_path), "--policy", "vllm,sarathi", "--policy", "wait",
                 "-p", "nested_wait", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    rows = data["policies"]
    assert [r["policy"] for r in rows] == ["vllm", "sarathi", "wait", "nested_wait"]
    for r in rows:
        for key in ("arrived", "completed", "throughput", "latency_mean", "latency_p99", "ttft_mean", "evictions",
                    "max_memory"):
            assert key in r
        assert r["arrived"] == 400 and r["completed"] == 400 and r["max_memory"] <= 6000
    assert data["fluid"]["stable"] is True


def test_simulate_table_and_out(tmp_path):
    cfg = _config(tmp_path, CONFIG + "\n[sweep]\nrates = [10.0, 40.0, 400.0]\n")
    out = tmp_path / "out"
    res = invoke("serving", "simulate", cfg, "--policy", "vllm,wait", "--out", out)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split()[:4] == ["policy", "arrived", "completed", "tokens/s"]
    assert lines[1].startswith("vllm") and lines[2].startswith("wait")
    assert any(line.startswith("lambda*: vllm") for line in lines)
    for name in ("summary.json", "requests-vllm.csv", "iterations-wait.csv", "memory.png", "sweep.json",
                 "latency.png"):
        assert (out / name).stat().st_size > 0, name
    header = (out / "requests-wait.csv").read_text().splitlines()[0]
    assert header == "id,type,arrival,prefill,decode,first_token,finish,latency,ttft,evictions,status"
    sweep = json.loads((out / "sweep.json").read_text())["sweep"]
    assert sweep["transition"]["vllm"] in (10.0, 40.0) and len(sweep["rows"]) == 6
    assert not [r for r in sweep["rows"] if r["rate"] == 400.0][0]["stable"]


def test_simulate_trace(tmp_path):
    rows = "\n".join(f"{0.05 * i:.2f},{16 + i % 3},{2 + i % 5}" for i in range(200))
    (tmp_path / "req.csv").write_text("arrival,prefill,decode\n" + rows + "\n")
    cfg = _config(tmp_path, 'trace = "req.csv"\n[gpu]\nmemory = 3000\nd0 = 0.01\nd1 = 1e-5\n'
                            '[policy]\nname = "nested_wait"\n')
    res = invoke("serving", "simulate", cfg, "--policy", "vllm,sarathi,wait,nested_wait", "--json")
    assert res.exit_code == 0, res.output
    assert [r["completed"] for r in json.loads(res.stdout)["policies"]] == [200] * 4


def test_overload_is_flagged_but_simulated(tmp_path):
    res = invoke("serving", "simulate", _config(tmp_path, CONFIG.replace("rate = 20.0", "rate = 2000.0")),
                 "--policy", "vllm", "--json")
    assert res.exit_code == 0, res.output
    assert res.stderr.startswith("warning: the offered load is")
    data = json.loads(res.stdout)
    assert data["fluid"]["stable"] is False and data["policies"][0]["completed"] == 400


def test_requests_larger_than_the_cache_are_reported(tmp_path):
    (tmp_path / "req.csv").write_text("arrival,prefill,decode\n0,10,3\n0.5,5000,4\n1.0,10,3\n")
    cfg = _config(tmp_path, 'trace = "req.csv"\n[gpu]\nmemory = 1000\n[policy]\nname = "sarathi"\n')
    res = invoke("serving", "simulate", cfg, "--json")
    assert res.exit_code == 0, res.output
    assert "warning: 1 request(s) need more KV cache than memory 1000" in res.stderr
    row = json.loads(res.stdout)["policies"][0]
    assert row["dropped"] == 1 and row["completed"] == 2 and row["arrived"] == 3


def test_fluid_command(tmp_path):
    res = invoke("serving", "fluid", _config(tmp_path))
    assert res.exit_code == 0, res.output
    assert "M* (fluid memory)" in res.stdout and "WAIT thresholds (fluid" in res.stdout
    assert "Nested WAIT boundaries [8, 24]" in res.stdout
    res = invoke("serving", "fluid", _config(tmp_path), "--json")
    data = json.loads(res.stdout)
    assert data["stable"] and data["wait"]["fluid"]["conditions_hold"]
    assert data["throughput"] == 20 * 8 + 5 * 24


def _one_error_line(res, fragment):
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], res.stderr
    assert res.stdout == ""


def test_errors_are_one_line(tmp_path):
    _one_error_line(invoke("serving", "simulate", _config(tmp_path, CONFIG + "\n[extra]\nx = 1\n")),
                    "unknown key 'extra'")
    _one_error_line(invoke("serving", "simulate", _config(tmp_path), "--policy", "fifo"), "unknown policy 'fifo'")
    _one_error_line(invoke("serving", "simulate", tmp_path / "missing.toml"), "does not exist")
    (tmp_path / "bad.csv").write_text("arrival,prefill,decode\n0,4,2\n1,-4,2\n")
    _one_error_line(invoke("serving", "simulate", _config(tmp_path, 'trace = "bad.csv"\n')),
                    "line 3: prefill -4 is below 1")
    _one_error_line(invoke("serving", "fluid", _config(tmp_path, CONFIG.replace("decode = 8", "decode = 8.5"))),
                    "decode is 8.5")
    _one_error_line(invoke("serving", "simulate"), "Missing argument")
    (tmp_path / "file").write_text("x")
    _one_error_line(invoke("serving", "simulate", _config(tmp_path), "--out", tmp_path / "file"),
                    "is not a folder")


def test_help_lists_the_commands():
    res = invoke("serving", "--help")
    assert res.exit_code == 0 and "simulate" in res.stdout and "fluid" in res.stdout
