"""The batching policies by name: ``make_policy("wait", all_types=True)``.

========================  ===========================================================
name                      policy (parameters, defaults)
========================  ===========================================================
``vllm``                  FCFS, new arrivals first, full prefills, LIFO eviction
                          (``watermark=0.01``, ``max_tokens=4096``)
``sarathi``               FCFS, ongoing first, chunked prefill, LIFO eviction
                          (``watermark=0.01``, ``chunk=512``)
``wait``                  WAIT, known output lengths (``thresholds=None``,
                          ``rule="fluid" | "balanced" | "paper"``, ``slack=0.2``,
                          ``all_types=False``: the authors' all-types-ready variant)
``nested_wait``           Nested WAIT, unknown output lengths (``boundaries=None``,
                          ``segments=None``, ``thresholds=None``,
                          ``rule="fluid" | "batch"``, ``slack=0.2``, ``eta=0.05``)
========================  ===========================================================
"""

from __future__ import annotations

import inspect
from typing import Any

from l2o.serving.base import Policy
from l2o.serving.fcfs import VLLM, Sarathi
from l2o.serving.nested import NestedWait
from l2o.serving.wait import Wait

#: Policy classes by name.
POLICIES: dict[str, type[Policy]] = {"vllm": VLLM, "sarathi": Sarathi, "wait": Wait, "nested_wait": NestedWait}


def policy_parameters(name: str) -> dict[str, Any]:
    """The parameters of policy ``name`` with their defaults.

    >>> policy_parameters("sarathi")
    {'watermark': 0.01, 'chunk': 512}
    """
    if name not in POLICIES:
        raise ValueError(f"policy {name!r} is unknown; expected one of {', '.join(POLICIES)}")
    sig = inspect.signature(POLICIES[name].__init__)
    return {k: p.default for k, p in sig.parameters.items() if k != "self"}


def make_policy(name: str, **params: Any) -> Policy:
    """A policy by name with its parameters (unknown names and parameters are errors).

    >>> make_policy("wait", all_types=True)
    Wait(thresholds=None, rule='fluid', slack=0.2, all_types=True)
    >>> make_policy("wait", treshold=3)
    Traceback (most recent call last):
    ...
    ValueError: policy 'wait': unknown parameter 'treshold'; valid: thresholds, rule, slack, all_types
    """
    valid = policy_parameters(name)
    for k in params:
        if k not in valid:
            raise ValueError(f"policy {name!r}: unknown parameter {k!r}; valid: {', '.join(valid)}")
    return POLICIES[name](**params)


__all__ = ["POLICIES", "make_policy", "policy_parameters"]
