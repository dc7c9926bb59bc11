"""Start-up time of the ``l2o`` command, before and after the lazy imports of issue 12.

Each command runs in a fresh interpreter (``python -c "from l2o.cli import main; main()" ARGS``
with the tree's ``src`` first on ``PYTHONPATH``), ``--repeats`` times (default 5), the two
trees interleaved (before, after, before, ...) so that a change in the machine's load hits
both alike; the table gives the median wall time (and min-max) of each, and the median CPU
time (user + sys of the child process): on a shared, busy machine the wall time waits for
a core, while the CPU time stays close to what the wall time is on an idle one. "before" is the
source tree of a git revision (``--before``, default the last commit before the change),
extracted with ``git archive``; "after" is this checkout's ``src``. A separate, untimed run
of each command records whether it imported torch.

    python benchmarks/bench_startup.py               # writes benchmarks/results/startup.{json,md}
    python benchmarks/bench_startup.py --repeats 9 --before HEAD~3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np

from _common import write_results  # benchmarks/_common.py: the script's folder is sys.path[0]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
#: The last commit before the lazy start-up (registry paths, lazy commands, lazy ``l2o``).
DEFAULT_BEFORE = "a7c0960"
RUN = "import sys; from l2o.cli import main; sys.exit(main())"
#: At exit, print on stderr whether torch was imported (the untimed probe run).
PROBE = "import atexit, sys; atexit.register(lambda: print('TORCH=' + str('torch' in sys.modules), file=sys.stderr))\n"


def commands(data: Path) -> dict[str, list[str]]:
    """Label -> argv after ``python``."""
    return {
        "python -c pass (interpreter alone)": ["-c", "pass"],
        "import torch (for scale)": ["-c", "import torch"],
        "import l2o.cli": ["-c", "import l2o.cli"],
        "l2o --help": ["-c", RUN, "--help"],
        "l2o --version": ["-c", RUN, "--version"],
        "l2o list": ["-c", RUN, "list"],
        "l2o solve (one 20 x 40 LASSO)": ["-c", RUN, "solve", "-p", "lasso", "-d", str(data)],
    }


def extract(rev: str, dest: Path) -> Path:
    """The ``src`` folder of git revision ``rev``, extracted under ``dest``."""
    blob = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "src"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def once(src: Path, argv: list[str], cwd: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + sys) and exit status of one fresh process."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    cpu = _children_cpu()
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, *argv], env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t, _children_cpu() - cpu, proc.returncode


def imports_torch(src: Path, argv: list[str], cwd: Path) -> bool:
    env = {**os.environ, "PYTHONPATH": str(src)}
    code = PROBE + argv[1]
    proc = subprocess.run([sys.executable, "-c", code, *argv[2:]], env=env, cwd=cwd, capture_output=True, text=True,
                          check=False)
    return "TORCH=True" in proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=DEFAULT_BEFORE, help="git revision of the 'before' tree")
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per command and tree")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.before], capture_output=True,
                         text=True, check=True).stdout.strip()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "src"], capture_output=True,
                                text=True, check=True).stdout.strip())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        trees = {"before": extract(rev, work / "before"), "after": ROOT / "src"}
        rng = np.random.default_rng(0)
        data = work / "lasso.npz"
        np.savez(data, A=rng.standard_normal((20, 40)), b=rng.standard_normal(20), lam=0.1)
        cmds = commands(data)
        load_start = os.getloadavg()
        times: dict[str, dict[str, list[float]]] = {c: {t: [] for t in trees} for c in cmds}
        cpu: dict[str, dict[str, list[float]]] = {c: {t: [] for t in trees} for c in cmds}
        codes: dict[str, dict[str, int]] = {c: {} for c in cmds}
        for label, argv in cmds.items():
            for _ in range(args.repeats):
                for tree, src in trees.items():  # interleaved: the same load for both
                    seconds, cpu_seconds, code = once(src, argv, work)
                    times[label][tree].append(seconds)
                    cpu[label][tree].append(cpu_seconds)
                    codes[label][tree] = code
        torch_used = {c: {t: imports_torch(src, argv, work) for t, src in trees.items()}
                      for c, argv in cmds.items() if argv[0] == "-c" and argv[1] != "pass"}
        load_end = os.getloadavg()
    rows = []
    for label in cmds:
        row = {"command": label}
        for tree in trees:
            ts = times[label][tree]
            row[tree] = {"median_s": statistics.median(ts), "min_s": min(ts), "max_s": max(ts), "times_s": ts,
                         "cpu_median_s": statistics.median(cpu[label][tree]), "cpu_s": cpu[label][tree],
                         "exit_status": codes[label][tree], "imports_torch": torch_used.get(label, {}).get(tree)}
        rows.append(row)
    data_out = {
        "what": "wall seconds of fresh `python -c ...` processes (see the script's docstring)",
        "before": f"git {rev} (src via git archive)",
        "after": f"working tree at {head}" + (" + changes" if dirty else ""),
        "repeats": args.repeats, "python": platform.python_version(), "cpus": os.cpu_count(),
        "loadavg_1_5_15_start": load_start, "loadavg_1_5_15_end": load_end,
        "date": time.strftime("%Y-%m-%d %H:%M"), "rows": rows,
    }

    def cell(r: dict) -> str:
        if r["exit_status"] not in (0,):
            return f"n/a (exit {r['exit_status']})"
        return f"{r['median_s']:.2f} ({r['min_s']:.2f}-{r['max_s']:.2f})"

    def cpu_cell(r: dict) -> str:
        return f"n/a (exit {r['exit_status']})" if r["exit_status"] != 0 else f"{r['cpu_median_s']:.2f}"

    def torch_cell(r: dict) -> str:
        return "-" if r["imports_torch"] is None else ("yes" if r["imports_torch"] else "no")

    lines = [
        f"# Start-up time of `l2o` ({data_out['date']})", "",
        f"Wall seconds of fresh processes, median of {args.repeats} (min-max), before = {data_out['before']}, after = "
        f"{data_out['after']}; the two trees interleaved. Python {data_out['python']}, {data_out['cpus']} CPUs, load "
        f"average (1 min) {load_start[0]:.2f} at the start and {load_end[0]:.2f} at the end (the machine is shared: "
        "wall times grow with its load, the CPU times (user + sys of the process, medians) much less and are close "
        "to the wall time on an idle core). Target: `--help`, `--version`, `list` under 0.5 s. "
        "`python benchmarks/bench_startup.py`.", "",
        "| command | wall before (s) | wall after (s) | speed-up | CPU before (s) | CPU after (s) "
        "| imports torch before / after |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b, a = r["before"], r["after"]
        ok = b["exit_status"] == 0 and a["exit_status"] == 0
        speed = f"{b['median_s'] / a['median_s']:.1f}x" if ok else "-"
        lines.append(f"| {r['command']} | {cell(b)} | {cell(a)} | {speed} | {cpu_cell(b)} | {cpu_cell(a)} "
                     f"| {torch_cell(b)} / {torch_cell(a)} |")
    lines += ["", "`l2o --version` did not exist before (exit 2: no such option).",
              "`l2o solve` still imports torch (it solves); its time is there to show that the lazy loading costs "
              "a command that needs everything nothing measurable."]
    write_results(args.out, "startup", data_out, "\n".join(lines))
    print("\n".join(lines))
    print(json.dumps({r["command"]: {t: round(r[t]["median_s"], 3) for t in trees} for r in rows}))


if __name__ == "__main__":
    main()
