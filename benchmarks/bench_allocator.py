"""Effect of ``l2o.utils.performance.tune_allocator`` on one batched FISTA step.

Runs the same float64 / float32 FISTA-with-restart steps on 1000 LASSO-preset
instances in two fresh processes, one with glibc's default allocator settings and
one after ``tune_allocator()``, and reports the median step time of each.

    python benchmarks/bench_allocator.py     # writes benchmarks/results/allocator.md
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from _common import write_results  # benchmarks/_common.py: the script's folder is sys.path[0]

RESULTS = Path(__file__).parent / "results"

CHILD = r"""
import json, statistics, sys, time
import torch
from l2o import make_family, make_solver
from l2o.utils.performance import tune_allocator
torch.set_num_threads(2)
tuned = tune_allocator() if sys.argv[1] == "1" else False
p = make_family("lasso_250x500").sample(1000, 0)
out = {"tuned": tuned}
for dtype in (torch.float64, torch.float32):
    q = p.to(dtype=dtype)
    s = make_solver("fista_restart")
    st = s.init(q, q.initial_point())
    for _ in range(20):
        st = s.step(q, st)
    times = []
    for _ in range(60):
        t = time.perf_counter()
        st = s.step(q, st)
        times.append(time.perf_counter() - t)
    out[str(dtype).replace("torch.", "")] = 1000 * statistics.median(times)
print(json.dumps(out))
"""


def main() -> None:
    res = {}
    for flag in ("0", "1"):
        out = subprocess.run([sys.executable, "-c", CHILD, flag], capture_output=True, text=True, check=True)
        res["tuned" if flag == "1" else "default"] = json.loads(out.stdout.strip().splitlines()[-1])
    lines = [f"# Allocator setting and step time ({time.strftime('%Y-%m-%d %H:%M')})", "",
             "Median time of one FISTA-with-restart step on 1000 LASSO-preset instances, torch 2 threads "
             "(`python benchmarks/bench_allocator.py`).", "",
             "| dtype | glibc default (ms) | after tune_allocator() (ms) | ratio |", "|---|---|---|---|"]
    for dt in ("float64", "float32"):
        a, b = res["default"][dt], res["tuned"][dt]
        lines.append(f"| {dt} | {a:.2f} | {b:.2f} | {a / b:.2f}x |")
    write_results(RESULTS, "allocator", res, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
