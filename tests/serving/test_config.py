"""Serving configs: validation with one-line errors naming the table and the key."""

from __future__ import annotations

import pytest

from l2o.serving.config import ServingConfig

BASE = {"gpu": {"d0": 0.03, "d1": 1.2e-5, "memory": 137000, "max_batch": 256},
        "types": [{"prefill": 512, "decode": 20, "rate": 5.0}],
        "policy": {"name": "wait"}, "run": {"requests": 100, "seed": 1}}


def _with(**changes):
    d = {k: (dict(v) if isinstance(v, dict) else list(v)) for k, v in BASE.items()}
    for k, v in changes.items():
        d[k] = v
    return d


def test_valid_config_and_defaults():
    cfg = ServingConfig.from_dict(BASE)
    assert cfg.gpu.memory == 137000 and cfg.gpu.d2 == 0.0
    assert cfg.policy == "wait" and cfg.requests == 100 and cfg.seed == 1 and cfg.drain
    w = cfg.workload()
    assert w.n == 100 and w.types[0].rate == 5.0
    assert cfg.sweep_rates(w) is None
    assert cfg.make_policy("sarathi").chunk == 512


def test_policy_parameters_flat_and_per_policy():
    cfg = ServingConfig.from_dict(_with(policy={"name": "wait", "all_types": True, "sarathi": {"chunk": 256},
                                                "vllm": {"max_tokens": 2048}}))
    assert cfg.make_policy().all_types is True
    assert cfg.make_policy("sarathi").chunk == 256 and cfg.make_policy("vllm").max_tokens == 2048


def test_sweep_rates_and_scale():
    cfg = ServingConfig.from_dict(_with(sweep={"scale": [0.5, 1.0]}))
    assert cfg.sweep_rates(cfg.workload()) == [2.5, 5.0]
    cfg = ServingConfig.from_dict(_with(sweep={"rates": [1, 2], "tracking": 0.9}))
    assert cfg.sweep_rates(cfg.workload()) == [1.0, 2.0] and cfg.tracking == 0.9


@pytest.mark.parametrize("changes, message", [
    ({"gpus": {}}, "unknown key 'gpus'; valid keys: trace, gpu, types, policy, run, sweep"),
    ({"gpu": {"memroy": 5}}, "[gpu] has unknown key 'memroy'"),
    ({"gpu": {"memory": -5}}, "[gpu] memory is -5; expected an integer >= 1"),
    ({"gpu": {"d0": "fast"}}, "[gpu] d0 is 'fast'"),
    ({"types": [{"prefill": 512, "decode": 20}]}, "[[types]] entry 1 is missing rate"),
    ({"types": [{"prefill": 512, "decode": 20, "rate": 1, "color": 3}]}, "[[types]] entry 1 has unknown key 'color'"),
    ({"types": [{"prefill": 512, "decode": 0, "rate": 1}]}, "[[types]] entry 1: decode is 0"),
    ({"types": []}, "[[types]] must be a non-empty array"),
    ({"trace": "x.csv"}, "expected exactly one of [[types]]"),
    ({"policy": {"name": "fifo"}}, "[policy] name is 'fifo'; expected one of vllm, sarathi, wait, nested_wait"),
    ({"policy": {"name": "wait", "chunk": 5}}, "[policy] has unknown key 'chunk'; wait's parameters: thresholds"),
    ({"policy": {"name": "wait", "sarathi": {"treshold": 5}}}, "[policy.sarathi] has unknown key 'treshold'"),
    ({"policy": {"name": "wait", "rule": "magic"}}, "[policy] wait: rule is 'magic'"),
    ({"policy": {"name": "vllm", "watermark": 2}}, "[policy] vllm: watermark is 2"),
    ({"run": {"requests": 0}}, "[run] requests is 0; expected an integer >= 1"),
    ({"run": {"steps": 3}}, "[run] has unknown key 'steps'"),
    ({"run": {"drain": "yes"}}, "[run] drain is 'yes'; expected true or false"),
    ({"sweep": {"rates": []}}, "[sweep] rates is []"),
    ({"sweep": {"rates": [1], "scale": [1]}}, "[sweep] has both rates and scale"),
    ({"sweep": {"tracking": 0.9}}, "[sweep] needs rates or scale"),
])
def test_errors_are_one_line(changes, message):
    with pytest.raises(ValueError) as e:
        ServingConfig.from_dict(_with(**changes))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_trace_config_relative_to_the_file(tmp_path):
    (tmp_path / "req.csv").write_text("arrival,prefill,decode\n0,10,3\n0.5,12,4\n1.0,10,3\n")
    (tmp_path / "c.toml").write_text('trace = "req.csv"\n[gpu]\nmemory = 1000\n[policy]\nname = "vllm"\n')
    cfg = ServingConfig.from_toml(tmp_path / "c.toml")
    w = cfg.workload()
    assert w.n == 3 and len(w.types) == 2 and cfg.requests is None


def test_invalid_toml_names_the_file(tmp_path):
    (tmp_path / "c.toml").write_text("[gpu\n")
    with pytest.raises(ValueError, match="invalid TOML"):
        ServingConfig.from_toml(tmp_path / "c.toml")
