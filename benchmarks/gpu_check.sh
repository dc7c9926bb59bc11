#!/usr/bin/env bash
# GPU check (issue 18): the CUDA tests, then timings at batch 10,000 on the GPU, in one short run
# (a few minutes on one GPU; hard limits: 4 min for the tests, 4 min for the timings).
#
#   bash benchmarks/gpu_check.sh [OUT]        # OUT default benchmarks/results/gpu_check
#   BATCH=16 DEVICE=cpu [ONLY=mimo_medium] bash benchmarks/gpu_check.sh /tmp/dry   # dry run of the timings on the CPU
#
# Writes OUT-tests.txt (pytest's report of the CUDA tests) and OUT.json / OUT.md: per solver, the
# seconds of one iteration on the whole batch (median of 3 timed blocks of 20 iterations, after a
# warm-up, torch.cuda.synchronize around each block), and a certified solve with l2o.solve (float32
# iterates, certificate in float64, tol 1e-4, checked every 10 iterations, converged rows leave the
# batch): seconds, iterations, fraction converged.
#   LASSO preset lasso_250x500:  fista_restart  vs  lfista and go_math_l2o (bundled pretrained, handed
#                                over to fista_restart past their trained horizon, as `l2o solve --checkpoint`)
#   MIMO preset mimo_medium:     wmmse          vs  gnn_wmmse (bundled pretrained, same hand-over)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/results/gpu_check}
PY=${PYTHON:-python}
DEVICE=${DEVICE:-cuda}
BATCH=${BATCH:-10000}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$(dirname "$OUT")"

if [ "$DEVICE" = cuda ]; then
    $PY -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else
        'gpu_check.sh: no CUDA device here (torch.cuda.is_available() is False); nothing measured')"
    # the CUDA tests (they skip without a GPU; here they must run)
    timeout 240 $PY -m pytest -q -p no:cacheprovider -rs -k cuda tests/test_device.py tests/test_sklearn.py \
        2>&1 | tee "$OUT-tests.txt"
fi

timeout 240 $PY - "$OUT" "$DEVICE" "$BATCH" <<'PYEOF'
import json, os, statistics, sys, time

import torch

import l2o
from l2o.registry import make_family
from l2o.workflows.load import handover, load_solver

out, device, batch = sys.argv[1], torch.device(sys.argv[2]), int(sys.argv[3])


def sync():
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def per_iteration(solver, problem, block=20, blocks=3):
    with torch.no_grad():
        state = solver.init(problem, problem.initial_point())
        for _ in range(5):  # warm-up: kernels, lazy caches
            state = solver.step(problem, state)
        times = []
        for _ in range(blocks):
            sync()
            t = time.perf_counter()
            for _ in range(block):
                state = solver.step(problem, state)
            sync()
            times.append((time.perf_counter() - t) / block)
    return statistics.median(times)


def certified(solver, problem, max_iter):
    l2o.solve(solver, problem.index(torch.arange(min(64, problem.batch_size), device=device)), tol=1e-4,
              max_iter=20)  # warm-up
    r = l2o.solve(solver, problem, tol=1e-4, max_iter=max_iter, check_every=10)
    return {"seconds": r.seconds, "converged": float(r.converged.float().mean()),
            "iterations_mean": float(r.iterations.float().mean()), "iterations_max": int(r.iterations.max())}


def row(preset, name, solver, problem, max_iter):
    if isinstance(getattr(solver, "learned", None), torch.nn.Module):
        solver.learned.to(device=device, dtype=problem.dtype)
    entry = {"preset": preset, "solver": name, "batch": problem.batch_size, "dtype": str(problem.dtype),
             "seconds_per_iteration": per_iteration(solver, problem), **certified(solver, problem, max_iter)}
    print(json.dumps(entry), flush=True)
    return entry


rows = []
for preset, classical, learned, max_iter in (("lasso_250x500", "fista_restart", ("lfista", "go_math_l2o"), 2000),
                                             ("mimo_medium", "wmmse", ("gnn_wmmse",), 500)):
    if os.environ.get("ONLY", preset) != preset:
        continue
    family = make_family(preset)
    problem = family.sample(batch, 12345, dtype=torch.float32, device=device)
    rows.append(row(preset, classical, l2o.make_solver(classical), problem, max_iter))
    for name in learned:
        solver, fam, horizon, meta = load_solver(f"{name}-{preset}")
        rows.append(row(preset, f"{name} (pretrained, then {meta['fallback']})", handover(solver, fam, horizon),
                        problem, max_iter))

card = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
data = {"device": card, "torch": torch.__version__, "batch": batch, "rows": rows,
        "command": "bash benchmarks/gpu_check.sh"}
with open(out + ".json", "w") as fh:
    json.dump(data, fh, indent=1)
lines = [f"# GPU check on {card} (batch {batch}, float32 iterates, certificate tol 1e-4)", "",
         "| preset | solver | s / iteration | solve s | converged | mean its | max its |", "|---|---|---|---|---|---|---|"]
lines += [f"| {r['preset']} | {r['solver']} | {r['seconds_per_iteration']:.3g} | {r['seconds']:.3g} | "
          f"{r['converged']:.3f} | {r['iterations_mean']:.0f} | {r['iterations_max']} |" for r in rows]
with open(out + ".md", "w") as fh:
    fh.write("\n".join(lines) + "\n")
print(f"wrote {out}.json and {out}.md")
PYEOF
