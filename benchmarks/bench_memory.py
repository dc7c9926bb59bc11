"""Peak memory of one meta-step (unroll + backward + update) for the paper presets.

Each configuration runs in a fresh process and reports the growth of the peak
resident set (``ru_maxrss``) over the step, with and without per-step gradient
checkpointing, for full and truncated backpropagation.

    python benchmarks/bench_memory.py        # writes benchmarks/results/memory.md / .json
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from _common import write_results  # benchmarks/_common.py: the script's folder is sys.path[0]

RESULTS = Path(__file__).parent / "results"
# solver, family, batch, unroll K, segment S, gradient checkpointing
CONFIGS = [
    ("lgd", "ls_32x25", 32, 100, 100, False),
    ("lgd", "ls_32x25", 32, 100, 100, True),
    ("lgd", "ls_32x25", 32, 400, 400, True),
    ("math_l2o", "lasso_250x500", 16, 100, 100, False),
    ("math_l2o", "lasso_250x500", 16, 100, 100, True),
    ("math_l2o", "lasso_250x500", 16, 100, 20, True),
    ("math_l2o", "lasso_250x500", 16, 300, 20, True),
]

CHILD = r"""
import gc, json, resource, sys, tempfile, time
import torch
torch.set_num_threads(1)
from l2o.training import RunConfig
from l2o.training.trainer import Trainer
solver, family = sys.argv[1], sys.argv[2]
B, K, S, ckpt = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6] == "1"
hp = {"hidden": 1024, "expansion": 100.0} if solver == "lgd" else {}
cfg = RunConfig.from_dict({"problem": {"family": family}, "solver": {"name": solver, **hp},
    "training": {"steps": 1, "batch_size": B, "unroll": K, "segment": S, "gradient_checkpointing": ckpt,
                 "loss": "last" if solver == "lgd" else "mean", "val_batch": 0, "checkpoint_every": 0}})
tr = Trainer(cfg, tempfile.mkdtemp())
tr._setup_data()
problem, ref = tr._batch()
problem.smoothness()
gc.collect()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
tr.learner.step(tr.estimator.estimates(tr.solver, problem, K, tr.loss, ref))
seconds = time.perf_counter() - t
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"step_MB": round(after - before), "seconds": round(seconds, 2)}))
"""


def main() -> None:
    rows = []
    for solver, family, B, K, S, ckpt in CONFIGS:
        args = [solver, family, str(B), str(K), str(S), "1" if ckpt else "0"]
        out = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=True)
        row = {"solver": solver, "family": family, "batch": B, "unroll": K, "segment": S, "checkpointing": ckpt,
               **json.loads(out.stdout.strip().splitlines()[-1])}
        print(row, flush=True)
        rows.append(row)
    lines = [f"# Peak memory of one meta-step ({time.strftime('%Y-%m-%d %H:%M')})", "",
             "Growth of the peak resident set over one step, fresh process, one thread "
             "(`python benchmarks/bench_memory.py`).", "",
             "| solver | preset | batch | unroll K | segment | checkpointing | peak growth (MB) | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['solver']} | {r['family']} | {r['batch']} | {r['unroll']} | {r['segment']} | "
                     f"{'yes' if r['checkpointing'] else 'no'} | {r['step_MB']} | {r['seconds']} |")
    write_results(RESULTS, "memory", rows, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
