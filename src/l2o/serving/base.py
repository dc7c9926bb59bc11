"""The protocol between the simulator and a batching policy.

The engine (``l2o.serving.simulator.simulate``) owns the clock; a policy owns the state
of the requests in the system (which wait, which are resident, at which stage) and
writes the records. At each decision epoch (the GPU is idle) the engine calls
``schedule(t, n_arrived)``: the policy either starts a batch and returns
``(tokens, memory, size, prefill)`` (KV tokens touched, KV tokens in use during the
iteration, requests in the batch, prompt tokens whose prefill it computes), or returns
``None`` and then ``wake(t, n_arrived)`` gives the
next time it could act (``None``: nothing left to do). When the iteration ends the
engine calls ``finish(t_end)``, where the policy advances the batch's requests one
stage, records first tokens (``state.first_token``) and completions
(``state.finish``).

Requests are numbered 0..M-1 in arrival order (requests larger than the KV cache are
dropped by the engine before the policy sees them); request i has arrived at time t iff
i < n_arrived.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import numpy as np

from l2o.serving.workload import RequestType


@dataclasses.dataclass
class SimState:
    """What a policy sees: the admitted requests (arrays of shape (M,), arrival order),
    the request types, the GPU constants, and the record arrays it writes.

    >>> from l2o.serving.analysis import sim_state
    >>> from l2o.serving.simulator import GPU
    >>> from l2o.serving.workload import RequestType, poisson_workload
    >>> st = sim_state(poisson_workload([RequestType(8, 4, 1.0), RequestType(9, 9, 1e-9)], 5), GPU(memory=100))
    >>> st.n, st.present.tolist()
    (5, [True, False])
    """

    arrival: np.ndarray
    prefill: np.ndarray
    decode: np.ndarray
    kind: np.ndarray
    types: tuple[RequestType, ...]
    memory: int
    max_batch: int
    d0: float
    d1: float
    d2: float
    drain: bool
    first_token: np.ndarray
    finish: np.ndarray
    evictions: np.ndarray

    @property
    def n(self) -> int:
        """M, the number of requests the policy serves."""
        return int(self.arrival.shape[0])

    @property
    def present(self) -> np.ndarray:
        """Boolean mask over ``types``: the types with at least one request to serve (the
        others, e.g. types larger than the KV cache, play no part in threshold rules)."""
        return np.bincount(self.kind, minlength=len(self.types)) > 0


class Policy(abc.ABC):
    """A batching policy (see the module docstring for the protocol).

    >>> from l2o.serving.policy import make_policy
    >>> isinstance(make_policy("vllm"), Policy)
    True
    """

    name: str = "policy"

    @abc.abstractmethod
    def start(self, state: SimState) -> None:
        """Reset for a new run on ``state``; validate parameters against the workload."""

    @abc.abstractmethod
    def schedule(self, t: float, n_arrived: int) -> tuple[int, int, int, int] | None:
        """Start a batch at time ``t`` -> (tokens, memory, size, prefill), or None to wait."""

    @abc.abstractmethod
    def wake(self, t: float, n_arrived: int) -> float | None:
        """After ``schedule`` returned None: the next time (> t) to call it, or None."""

    @abc.abstractmethod
    def finish(self, t: float) -> None:
        """The batch started last ended at time ``t``: advance its requests."""

    def info(self) -> dict[str, Any]:
        """Parameters the run used (thresholds chosen, feasibility flags), for the records."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


__all__ = ["SimState", "Policy"]
