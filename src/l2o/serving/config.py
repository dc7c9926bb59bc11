"""Serving configs: TOML files whose unknown keys are errors.

::

    trace = "requests.csv"    # optional: a CSV trace (arrival,prefill,decode) instead of [[types]]
                              # (a relative path is relative to the config file)
    [gpu]
    d0 = 0.03                 # seconds per iteration
    d1 = 1.2e-5               # seconds per KV token touched
    d2 = 0.0                  # seconds per prompt token prefilled (optional; 0 in the paper's model)
    memory = 137000           # KV-cache capacity C, tokens
    max_batch = 256           # batch-size limit B
    [[types]]                 # one table per request type
    prefill = 512
    decode = 20
    rate = 20.0               # requests per second
    [policy]
    name = "wait"             # vllm | sarathi | wait | nested_wait, plus that policy's parameters
    [policy.sarathi]          # optional: parameters of other policies (used by --policy)
    chunk = 512
    [run]
    requests = 100000         # Poisson requests (with a trace: the first rows; default all)
    seed = 0
    drain = true              # run until every request completes
    [sweep]                   # optional: a rate sweep (latency vs rate, lambda*)
    rates = [10, 15, 20]      # total arrival rates (requests per second), or
    scale = [0.5, 1.0]        # multiples of the workload's rate
    tracking = 0.97           # stable: completions >= 97% of arrivals over [T/2, T]

Every error is one ``ValueError`` line naming the file, the table and the key.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

from l2o.serving.base import Policy
from l2o.serving.policy import POLICIES, make_policy, policy_parameters
from l2o.serving.simulator import GPU
from l2o.serving.sweep import TRACKING
from l2o.serving.workload import RequestType, Workload, poisson_workload, read_trace
from l2o.utils.files import read_toml

TOP_KEYS = ("trace", "gpu", "types", "policy", "run", "sweep")
GPU_KEYS = ("d0", "d1", "d2", "memory", "max_batch")
TYPE_KEYS = ("prefill", "decode", "rate")
RUN_KEYS = ("requests", "seed", "drain")
SWEEP_KEYS = ("rates", "scale", "tracking")


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """A validated serving config (see the module docstring for the file format).

    >>> cfg = ServingConfig.from_dict({"gpu": {"memory": 4096}, "types": [{"prefill": 64, "decode": 8, "rate": 5}],
    ...                                "policy": {"name": "vllm"}, "run": {"requests": 50}})
    >>> cfg.policy, cfg.workload().n, cfg.gpu.memory
    ('vllm', 50, 4096)
    >>> ServingConfig.from_dict({"types": [{"prefill": 64, "decode": 8, "rate": 5}], "gpu": {"memroy": 1}})
    Traceback (most recent call last):
    ...
    ValueError: config: [gpu] has unknown key 'memroy'; valid keys: d0, d1, d2, memory, max_batch
    """

    gpu: GPU
    types: tuple[RequestType, ...] | None
    trace: Path | None
    policy: str
    policy_params: dict[str, dict[str, Any]]
    requests: int | None
    seed: int
    drain: bool
    rates: tuple[float, ...] | None = None
    scale: tuple[float, ...] | None = None
    tracking: float = TRACKING
    source: str = "config"

    # -- parsing ------------------------------------------------------------------------------------
    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> ServingConfig:
        """Read and validate a TOML config (``ValueError`` naming the file otherwise)."""
        p = Path(path)
        data = read_toml(p)
        return cls.from_dict(data, base_dir=p.parent, source=f"config '{p}'")

    @classmethod
    def from_dict(cls, data: dict[str, Any], base_dir: str | os.PathLike[str] | None = None,
                  source: str = "config") -> ServingConfig:
        """Validate a config given as nested dicts (as ``tomllib`` returns them)."""

        def err(msg: str) -> ValueError:
            return ValueError(f"{source}: {msg}")

        def table(name: str, keys: tuple[str, ...]) -> dict[str, Any]:
            t = data.get(name, {})
            if not isinstance(t, dict):
                raise err(f"[{name}] must be a table")
            for k in t:
                if k not in keys:
                    raise err(f"[{name}] has unknown key {k!r}; valid keys: {', '.join(keys)}")
            return t

        if not isinstance(data, dict):
            raise err("expected a table of settings")
        for k in data:
            if k not in TOP_KEYS:
                raise err(f"unknown key {k!r}; valid keys: {', '.join(TOP_KEYS)}")

        g = table("gpu", GPU_KEYS)
        try:
            gpu = GPU(**g)
        except (TypeError, ValueError) as e:
            raise err(f"[gpu] {e}") from None

        trace = data.get("trace")
        types_raw = data.get("types")
        if (trace is None) == (types_raw is None):
            raise err("expected exactly one of [[types]] (Poisson request types) or trace = \"file.csv\"")
        types: tuple[RequestType, ...] | None = None
        trace_path: Path | None = None
        if trace is not None:
            if not isinstance(trace, str) or not trace:
                raise err(f"trace is {trace!r}; expected a file name")
            trace_path = Path(trace)
            if not trace_path.is_absolute() and base_dir is not None:
                trace_path = Path(base_dir) / trace_path
        else:
            if not isinstance(types_raw, list) or not types_raw:
                raise err("[[types]] must be a non-empty array of tables (prefill, decode, rate)")
            out = []
            for i, t in enumerate(types_raw, 1):
                if not isinstance(t, dict):
                    raise err(f"[[types]] entry {i} must be a table")
                for k in t:
                    if k not in TYPE_KEYS:
                        raise err(f"[[types]] entry {i} has unknown key {k!r}; valid keys: {', '.join(TYPE_KEYS)}")
                missing = [k for k in TYPE_KEYS if k not in t]
                if missing:
                    raise err(f"[[types]] entry {i} is missing {', '.join(missing)}")
                try:
                    out.append(RequestType(t["prefill"], t["decode"], t["rate"]))
                except ValueError as e:
                    raise err(f"[[types]] entry {i}: {e}") from None
            types = tuple(out)

        pol = data.get("policy", {})
        if not isinstance(pol, dict):
            raise err("[policy] must be a table")
        name = pol.get("name", "wait")
        if name not in POLICIES:
            raise err(f"[policy] name is {name!r}; expected one of {', '.join(POLICIES)}")
        params: dict[str, dict[str, Any]] = {p: {} for p in POLICIES}
        for k, v in pol.items():
            if k == "name":
                continue
            if k in POLICIES:
                if not isinstance(v, dict):
                    raise err(f"[policy.{k}] must be a table of {k}'s parameters")
                sub = v
                target = k
            else:
                sub = {k: v}
                target = name
            valid = policy_parameters(target)
            for kk, vv in sub.items():
                if kk not in valid:
                    where = f"[policy.{target}]" if k in POLICIES else "[policy]"
                    raise err(f"{where} has unknown key {kk!r}; {target}'s parameters: {', '.join(valid)}")
                params[target][kk] = vv
        for p, kw in params.items():
            try:
                make_policy(p, **kw)
            except ValueError as e:
                raise err(f"[policy] {p}: {e}") from None

        run = table("run", RUN_KEYS)
        requests = run.get("requests", None if trace is not None else 10_000)
        if requests is not None and (isinstance(requests, bool) or not isinstance(requests, int) or requests < 1):
            raise err(f"[run] requests is {requests!r}; expected an integer >= 1")
        seed = run.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise err(f"[run] seed is {seed!r}; expected an integer >= 0")
        drain = run.get("drain", True)
        if not isinstance(drain, bool):
            raise err(f"[run] drain is {drain!r}; expected true or false")

        sw = table("sweep", SWEEP_KEYS)
        rates = scale = None
        if "rates" in sw and "scale" in sw:
            raise err("[sweep] has both rates and scale; expected one of them")
        for key in ("rates", "scale"):
            if key in sw:
                v = sw[key]
                if not isinstance(v, list) or not v or any(
                        isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0
                        for x in v):
                    raise err(f"[sweep] {key} is {v!r}; expected a non-empty list of numbers > 0")
                if key == "rates":
                    rates = tuple(float(x) for x in v)
                else:
                    scale = tuple(float(x) for x in v)
        if sw and rates is None and scale is None:
            raise err("[sweep] needs rates or scale")
        tracking = sw.get("tracking", TRACKING)
        if isinstance(tracking, bool) or not isinstance(tracking, (int, float)) or not (0 < tracking <= 1):
            raise err(f"[sweep] tracking is {tracking!r}; expected a fraction in (0, 1]")
        return cls(gpu, types, trace_path, name, params, requests, seed, drain, rates, scale, float(tracking),
                   source)

    # -- use ----------------------------------------------------------------------------------------
    def workload(self) -> Workload:
        """The requests: Poisson arrivals of the types (``requests``, ``seed``) or the trace."""
        if self.trace is not None:
            return read_trace(self.trace, limit=self.requests)
        assert self.types is not None and self.requests is not None
        return poisson_workload(self.types, self.requests, seed=self.seed)

    def make_policy(self, name: str | None = None) -> Policy:
        """Policy ``name`` (default: the config's) with its parameters from the config."""
        name = self.policy if name is None else name
        if name not in POLICIES:
            raise ValueError(f"policy {name!r} is unknown; expected one of {', '.join(POLICIES)}")
        return make_policy(name, **self.policy_params.get(name, {}))

    def sweep_rates(self, workload: Workload) -> list[float] | None:
        """The total arrival rates of the sweep (``scale`` times the workload's rate)."""
        if self.rates is not None:
            return list(self.rates)
        if self.scale is not None:
            return [s * workload.total_rate for s in self.scale]
        return None


__all__ = ["ServingConfig"]
