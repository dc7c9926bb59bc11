"""Meta-steps per second of `l2o train` with 1 and 2 processes (torchrun), in one run.

The LFISTA example (examples/lfista_lasso.toml: LASSO 250 x 500, batch 64, K = 40 full backprop,
float64) cut short so that the benchmark takes a minute or two: --steps meta-steps, a training
set of 256 instances and a validation batch of 64 (their reference optima are set-up, not timed),
and `training.shards = 2` so that the same run can be split over 2 processes. Three launches of
`torchrun --standalone -m l2o train`, one after the other on the same machine:

* 1 process x 1 thread   (OMP_NUM_THREADS=1, what torchrun gives each rank),
* 1 process x 2 threads  (the whole machine for one process),
* 2 processes x 1 thread (each rank computes one shard of 32 instances; all_reduce over gloo).

A step's time is read from the run's log.csv (``seconds``, cumulative over the training loop,
without set-up); steps that validate (every 20th and the last) are left out, so the figure is
the meta-step alone. The runs' weights are compared: 2 processes must give the weights of 1.
The load average of the machine (shared with other jobs) is recorded before and after.

    nice -n 10 python benchmarks/bench_distributed.py [--steps 30]
    # writes benchmarks/results/distributed.{json,md}
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from _common import write_results  # benchmarks/_common.py: the script's folder is sys.path[0]
from l2o.training import read_safetensors

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
CONFIG = ROOT / "examples" / "lfista_lasso.toml"
SETS = ["training.shards=2", "training.train_set_size=256", "training.val_batch=64", "training.checkpoint_every=0"]
LAUNCHES = [("1 process x 1 thread", 1, 1), ("1 process x 2 threads", 1, 2), ("2 processes x 1 thread", 2, 1)]


def step_seconds(run: Path) -> list[float]:
    """Seconds of each meta-step that did not validate, from log.csv's cumulative seconds."""
    rows = list(csv.DictReader((run / "log.csv").open()))
    out, before = [], 0.0
    for r in rows:
        t = float(r["seconds"])
        if r["val_gap"] == "":
            out.append(t - before)
        before = t
    return out


def launch(nproc: int, threads: int, out: Path, steps: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "l2o", "train", str(CONFIG), "--out", str(out), "--steps", str(steps)]
    for s in SETS:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=1800)
    return time.perf_counter() - t0


def max_diff(a: Path, b: Path, name: str) -> float:
    wa, wb = read_safetensors(a / f"{name}.safetensors")[0], read_safetensors(b / f"{name}.safetensors")[0]
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for label, nproc, threads in LAUNCHES:
            run = Path(tmp) / f"run-{nproc}-{threads}"
            wall = launch(nproc, threads, run, args.steps)
            secs = sorted(step_seconds(run))
            median = secs[len(secs) // 2]
            mean = sum(secs) / len(secs)
            runs[(nproc, threads)] = run
            rows.append({"launch": label, "processes": nproc, "threads_per_process": threads,
                         "timed_steps": len(secs), "median_step_s": median, "mean_step_s": mean,
                         "steps_per_s": 1 / mean, "wall_s_with_startup": wall})
            print(f"{label}: {1 / mean:.2f} meta-steps/s (median step {median:.3f} s, {len(secs)} steps)",
                  flush=True)
        diffs = {name: max_diff(runs[(1, 1)], runs[(2, 1)], name) for name in ("weights", "best")}
    load_after = os.getloadavg()
    by = {(r["processes"], r["threads_per_process"]): r["steps_per_s"] for r in rows}
    ratio_1t = by[(2, 1)] / by[(1, 1)]
    ratio_2t = by[(2, 1)] / by[(1, 2)]
    data = {
        "what": "meta-steps per second of l2o train on the LFISTA example (shortened), 1 vs 2 processes",
        "config": str(CONFIG.relative_to(ROOT)), "overrides": SETS, "steps": args.steps,
        "rows": rows, "speedup_2proc_vs_1proc_1thread": ratio_1t, "speedup_2proc_vs_1proc_2threads": ratio_2t,
        "max_abs_weight_difference_1proc_vs_2proc": diffs,
        "load_average_before": load_before, "load_average_after": load_after,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "command": f"nice -n 10 python benchmarks/bench_distributed.py --steps {args.steps}",
    }
    lines = [
        "# Distributed meta-training: meta-steps per second, 1 vs 2 processes",
        "",
        f"`{data['command']}` on this machine ({os.cpu_count()} CPU cores, shared with other jobs; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after). The LFISTA example "
        f"(`{data['config']}`: LASSO 250 x 500, batch 64, K = 40, float64) for {args.steps} meta-steps with "
        f"`{' '.join('--set ' + s for s in SETS)}`, launched with `torchrun --standalone --nproc-per-node N -m l2o "
        "train`. Step time: from log.csv, steps that validate left out (set-up and validation not timed).",
        "",
        "| launch | meta-steps/s | median step (s) | timed steps | wall incl. start-up (s) |",
        "|---|---|---|---|---|",
        *[f"| {r['launch']} | {r['steps_per_s']:.2f} | {r['median_step_s']:.3f} | {r['timed_steps']} | "
          f"{r['wall_s_with_startup']:.1f} |" for r in rows],
        "",
        f"Speed-up of 2 processes: **{ratio_1t:.2f}x** over 1 process with 1 thread, **{ratio_2t:.2f}x** over 1 "
        "process with 2 threads.",
        f"Same training: the largest weight difference between the 1-process and 2-process runs is "
        f"{diffs['weights']:.1e} (last weights) and {diffs['best']:.1e} (best weights), float64.",
    ]
    json_path, md_path = write_results(RESULTS, "distributed", data, "\n".join(lines))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
