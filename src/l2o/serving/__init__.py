"""LLM serving under a KV-cache limit: a discrete-event simulator of one GPU, the batching
policies vLLM, Sarathi, WAIT and Nested WAIT, and the fluid benchmark.

Ao, Luo, Simchi-Levi, Wang, *Optimizing LLM Inference: Fluid-Guided Online Scheduling
with Memory Constraints* (arXiv 2504.11320). This room imports nothing of l2o's solver
stack (only ``l2o.utils``) and uses numpy, not torch.

>>> from l2o.serving import GPU, RequestType, make_policy, poisson_workload, simulate
>>> w = poisson_workload([RequestType(prefill=512, decode=20, rate=5.0)], 2000, seed=0)
>>> gpu = GPU(d0=0.03, d1=1.2e-5, memory=137_000, max_batch=256)
>>> s = simulate(w, make_policy("wait"), gpu).summary()
>>> s["completed"], s["evictions"]
(2000, 0)
"""

from l2o.serving.base import Policy, SimState
from l2o.serving.fcfs import VLLM, Sarathi
from l2o.serving.nested import NestedWait
from l2o.serving.policy import POLICIES, make_policy, policy_parameters
from l2o.serving.simulator import GPU, SimulationResult, simulate
from l2o.serving.wait import Wait
from l2o.serving.workload import RequestType, Workload, poisson_workload, read_trace, workload_from_arrays, write_trace

__all__ = [
    "GPU", "RequestType", "Workload", "poisson_workload", "read_trace", "write_trace", "workload_from_arrays",
    "Policy", "SimState", "VLLM", "Sarathi", "Wait", "NestedWait", "POLICIES", "make_policy", "policy_parameters",
    "simulate", "SimulationResult",
]
