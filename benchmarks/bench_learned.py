"""Reproduction benchmark of the learned solvers, and the speed target.

Trains each learned solver from its example config (``examples/*.toml``; the number
of meta-steps can be scaled down with ``--steps``, and the results file says what
was used), then measures on fresh instances, side by side with the classical
baselines on the same instances and clock:

* LGD on the NeurIPS 2025 least-squares setting (32 x 25): the gain ratio
  (f_GD(x_T) - f_LGD(x_T)) / f_GD(x_T) at T = 100 on 32 test instances (the paper
  reports over 50%).
* Math-L2O and GO-Math-L2O (and the other learned solvers with a LASSO config) on
  the LASSO and logistic presets: median relative gap after 10, 100 and 1000
  iterations (10x the training horizon) against ISTA, FISTA, FISTA with restart and
  Adam, plus convergence plots.
* The speed target: on 1000 fresh LASSO-preset instances, solver seconds for every
  instance to reach 1e-4, for each learned solver and for FISTA with restart (timed by
  ``l2o.run``: solver steps only, same clock), and whether the learned solver keeps
  converging at 10x its horizon. Also the per-iteration cost of each architecture on
  that batch against one FISTA step.

    python benchmarks/bench_learned.py [--steps N] [--only NAME,...] [--quick | --paper]

``--paper`` trains with the papers' meta-steps and batch sizes (``PAPER_LENGTH``) into
``runs/bench-paper`` and writes ``learned-paper.*``: hours of CPU for GO-Math-L2O, so
pick settings with ``--only``.

writes ``benchmarks/results/learned.json`` and ``learned.md`` (atomically) and the
plots ``learned-*.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from l2o import make_family, make_solver, run
from l2o.evaluation import reference
from l2o.training import load_run, prepare_run
from l2o.training.checkpoint import read_json
from l2o.training.config import load_config
from l2o.utils.performance import tune_allocator

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/_common.py, also when a test imports this file
from _common import write_results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
EXAMPLES = ROOT / "examples"

SETTINGS = {  # name -> (config, problem kind)
    "lgd": ("lgd_neurips2025_qp_32x25.toml", "qp"),
    "alista": ("alista_lasso.toml", "lasso"),
    "lista": ("lista_lasso.toml", "lasso"),
    "math_l2o_lasso": ("math_l2o_lasso.toml", "lasso"),
    "go_math_l2o_lasso": ("go_math_l2o_lasso.toml", "lasso"),
    "math_l2o_logistic": ("math_l2o_logistic.toml", "logistic"),
    "go_math_l2o_logistic": ("go_math_l2o_logistic.toml", "logistic"),
    "l2o_dm_lasso": ("l2o_dm_lasso.toml", "lasso"),
    "rnnprop_lasso": ("rnnprop_lasso.toml", "lasso"),
}
# The papers' meta-training length and batch (``--paper``): LGD (NeurIPS 2025), Math-L2O
# (ICML 2023), GO-Math-L2O (CVPR 2024: 3 epochs of 500 steps).
PAPER_LENGTH = {"lgd": (5000, 32), "math_l2o_lasso": (500, 64), "math_l2o_logistic": (500, 64),
                "go_math_l2o_lasso": (1500, 128), "go_math_l2o_logistic": (1500, 128)}
BASELINES = {"qp": ["gd", "nesterov", "adam"], "lasso": ["ista", "fista", "fista_restart", "adam"],
             "logistic": ["ista", "fista", "fista_restart", "adam"]}


def rescaled(config, steps: int | None = None, batch_size: int | None = None):
    """``config`` with ``steps`` meta-steps and ``batch_size`` instances per step. A step
    schedule keeps its number of decays: ``decay_every`` scales with the steps (the GO
    examples decay every 30 of 90 steps; at the paper's 1500, every 500, one epoch)."""
    training = config.training
    if steps is not None:
        decay_every = max(1, round(training.decay_every * steps / training.steps)) if training.decay_every else 0
        training = dataclasses.replace(training, steps=steps, decay_every=decay_every)
    if batch_size is not None:
        training = dataclasses.replace(training, batch_size=batch_size)
    return dataclasses.replace(config, training=training)


def train_setting(name: str, steps: int | None, workdir: Path, batch_size: int | None = None) -> tuple[object, dict]:
    """Train ``name`` from its example config (steps and batch size overridden if given).

    A run of the same config already in ``workdir/name`` is resumed when it was cut off
    and reused when it finished (its weights are the result; ``train_seconds`` is the
    training time its state recorded, over all resumptions). A run of another config
    there is an error: delete it or pass another ``--workdir``.
    """
    config = rescaled(load_config(EXAMPLES / SETTINGS[name][0]), steps, batch_size)
    out = workdir / name
    try:
        status = prepare_run(config, out)
    except ValueError as e:  # another config in the workdir
        sys.exit(f"error: {e}")
    seconds = read_json(out / "metrics.json").get("seconds")
    return load_run(out), {"config": SETTINGS[name][0], "steps": config.training.steps,
                           "batch_size": config.training.batch_size, "unroll": config.training.unroll,
                           "train_seconds": seconds, "run": status}


@torch.no_grad()
def lgd_gain(run_, n_test: int = 32, seed: int = 777) -> dict:
    """Gain ratio over GD at T = horizon on fresh instances (the NeurIPS 2025 metric)."""
    family = run_.family
    T = run_.config.training.unroll
    problem = family.sample(n_test, seed, dtype=torch.float64)
    solver = run_.solver.double()
    x0 = problem.initial_point()
    out = {}
    for horizon in (T, 10 * T):
        f_lgd = _final_objective(solver, problem, x0, horizon)
        f_gd = _final_objective(make_solver("gd", step_scale=0.9999), problem, x0, horizon)
        gain = (f_gd - f_lgd) / f_gd
        out[f"T={horizon}"] = {"gain_median": float(gain.median()), "gain_mean": float(gain.mean()),
                               "f_gd_median": float(f_gd.median()), "f_lgd_median": float(f_lgd.median())}
    return out


def _final_objective(solver, problem, x0, iterations: int) -> torch.Tensor:
    state = solver.init(problem, x0)
    for _ in range(iterations):
        state = solver.step(problem, state)
    return problem.objective(state.x)


@torch.no_grad()
def convergence(run_, kind: str, batch: int, seed: int = 777, plot: Path | None = None) -> dict:
    """Median relative gap at 10, 100, 10x-horizon iterations vs the baselines."""
    problem = run_.family.sample(batch, seed, dtype=torch.float32)
    ref = reference(problem)
    horizon = run_.config.training.unroll
    K = 10 * horizon
    solvers = {run_.config.solver: run_.solver, **{b: make_solver(b) for b in BASELINES[kind]}}
    trajectories = {name: run(s, problem, max_iter=K, reference=ref) for name, s in solvers.items()}
    out = {}
    for name, tr in trajectories.items():
        row = {}
        for k in (10, horizon, K):
            idx = int((tr.iterations <= k).nonzero().max())
            row[f"gap@{k}"] = float(tr.gap[idx].median())
        for tol in (1e-2, 1e-4, 1e-6):
            its = tr.iterations_to(tol).double()
            row[f"median_iterations_to_{tol:g}"] = None if bool((its < 0).double().mean() > 0.5) else float(
                torch.where(its < 0, torch.inf, its).median())
        out[name] = row
    if plot is not None:
        try:
            from l2o.report.plots import plot_convergence

            plot_convergence(trajectories, plot, learned={run_.config.solver})
        except Exception as e:  # plots are a convenience here; the numbers are the result
            out["plot_error"] = str(e)
    return out


@torch.no_grad()
def speed_target(runs: dict, batch: int, seed: int = 999) -> dict:
    """Seconds for every instance of a 1000-batch to reach 1e-4: learned vs fista_restart."""
    family = make_family("lasso_250x500")
    problem = family.sample(batch, seed, dtype=torch.float32)
    ref = reference(problem)
    rows = {}

    def measure(name, solver, max_iter):
        run(solver, problem.index(torch.arange(8)), max_iter=5, reference=None)  # warm-up
        tr = run(solver, problem, max_iter=max_iter, reference=ref)
        t4 = tr.time_to(1e-4)
        per_step = float(tr.time[-1]) / max(1, int(tr.iterations[-1]))
        horizon = getattr(solver, "horizon", None)
        row = {"seconds_to_1e-4_all": None if bool(torch.isnan(t4).any()) else float(t4.max()),
               "fraction_reaching_1e-4": float((~torch.isnan(t4)).double().mean()),
               "ms_per_iteration": 1000 * per_step, "final_gap_max": float(tr.gap[-1].max())}
        if horizon:
            at_h = int((tr.iterations <= horizon).nonzero().max())
            row["gap_at_horizon_median"] = float(tr.gap[at_h].median())
            row["gap_at_10x_horizon_median"] = float(tr.gap[-1].median())
            row["keeps_converging"] = bool(tr.gap[-1].median() <= tr.gap[at_h].median())
        rows[name] = row

    measure("fista_restart", make_solver("fista_restart"), 300)
    for name, run_ in runs.items():
        if SETTINGS[name][1] == "lasso":
            # capped so that the per-coordinate LSTMs stay affordable on 1000 x 500
            # coordinates; convergence() checks 10x the horizon on the smaller batch
            measure(name, run_.solver.float(), min(10 * run_.config.training.unroll, 400))
    classical = rows["fista_restart"]["seconds_to_1e-4_all"]
    for name, row in rows.items():
        t = row["seconds_to_1e-4_all"]
        row["speedup_vs_fista_restart"] = None if (t is None or classical is None) else classical / t
    return {"batch": batch, "dtype": "float32", "rows": rows}


def to_markdown(results: dict) -> str:
    lines = [f"# Learned solvers: reproduction and speed ({results['date']})", "", results["note"], ""]
    for name, res in results["settings"].items():
        lines.append(f"## {name}")
        if res.get("measured"):
            lines.append(f"\nmeasured {res['measured']} by `{res['command']}`")
        lines.append(f"\ntrained: {json.dumps(res['training'])}\n")
        if "gain" in res:
            for T, g in res["gain"].items():
                lines.append(f"- gain over GD at {T}: median {100 * g['gain_median']:.1f}%, "
                             f"mean {100 * g['gain_mean']:.1f}%")
        if "convergence" in res:
            cols = sorted({k for row in res["convergence"].values() if isinstance(row, dict) for k in row})
            lines.append("| solver | " + " | ".join(cols) + " |")
            lines.append("|---" * (len(cols) + 1) + "|")
            for solver, row in res["convergence"].items():
                if isinstance(row, dict):
                    fmt = lambda v: "-" if v is None else (f"{v:.2e}" if isinstance(v, float) else str(v))  # noqa: E731
                    lines.append(f"| {solver} | " + " | ".join(fmt(row.get(c)) for c in cols) + " |")
        lines.append("")
    for sp in ([results["speed"]] if results.get("speed") else []) + results.get("speed_earlier", []):
        when = f" (measured {sp['measured']})" if sp.get("measured") else ""
        lines += [f"## Speed target: LASSO preset, batch {sp['batch']}, {sp['dtype']}{when}", "",
                  "| solver | s to 1e-4 (all) | speedup vs fista_restart | ms / iteration | gap at horizon "
                  "| gap at 10x horizon |",
                  "|---|---|---|---|---|---|"]
        for name, r in sp["rows"].items():
            fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
            lines.append(f"| {name} | {fmt(r['seconds_to_1e-4_all'], '.3f')} | "
                         f"{fmt(r['speedup_vs_fista_restart'], '.2f')} | "
                         f"{r['ms_per_iteration']:.2f} | {fmt(r.get('gap_at_horizon_median'), '.2e')} | "
                         f"{fmt(r.get('gap_at_10x_horizon_median'), '.2e')} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def parse_steps(text: str | None) -> dict[str, int]:
    """"300" -> {"*": 300}; "lgd=100,alista=300" -> {"lgd": 100, "alista": 300}."""
    if not text:
        return {}
    if "=" not in text:
        return {"*": int(text)}
    out = {}
    for item in text.split(","):
        name, _, n = item.partition("=")
        out[name.strip()] = int(n)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", default=None,
                    help="meta-steps: N for every setting, or NAME=N,NAME=N,... (default: the configs')")
    ap.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(SETTINGS)}")
    ap.add_argument("--batch", type=int, default=256, help="test instances for the convergence curves")
    ap.add_argument("--speed-batch", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="20 meta-steps, small batches (a smoke run)")
    ap.add_argument("--paper", action="store_true",
                    help="the papers' meta-steps and batch sizes where known (PAPER_LENGTH); writes learned-paper.*")
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "bench")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)  # the plots are written before the results
    if args.quick:
        args.steps, args.batch, args.speed_batch = "20", 32, 100
    if args.quick and args.paper:
        sys.exit("error: --quick and --paper exclude each other")
    steps = parse_steps(args.steps)
    batch_sizes = {}
    if args.paper:
        steps = {name: n for name, (n, _) in PAPER_LENGTH.items()} | steps
        batch_sizes = {name: b for name, (_, b) in PAPER_LENGTH.items()}
        args.workdir = args.workdir.with_name(args.workdir.name + "-paper")
    torch.set_num_threads(2)
    tune_allocator()
    names = list(SETTINGS) if args.only is None else args.only.split(",")
    unknown = set(names) - set(SETTINGS)
    if unknown:
        sys.exit(f"error: unknown setting(s) {sorted(unknown)}; valid: {', '.join(SETTINGS)}")
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join(["python"] + sys.argv),
               "note": ("Measured on this machine (2 CPU cores); the papers' meta-steps and batch sizes (--paper)."
                        if args.paper else
                        "Measured on this machine (2 CPU cores); meta-steps as listed per setting (the papers use "
                        "more: LGD 5000, Math-L2O 500, GO-Math-L2O 1500)."), "settings": {}}
    suffix = results_suffix(args)
    if args.only is not None:
        results = merge_previous(results, args.out / f"learned{suffix}.json", names)
    runs = {}
    for name in names:
        print(f"training {name}", flush=True)
        run_, info = train_setting(name, steps.get(name, steps.get("*")), args.workdir, batch_sizes.get(name))
        runs[name] = run_
        res = {"measured": time.strftime("%Y-%m-%d %H:%M"), "command": results["command"], "training": info}
        kind = SETTINGS[name][1]
        if name == "lgd":
            res["gain"] = lgd_gain(run_)
        else:
            res["convergence"] = convergence(run_, kind, args.batch, plot=args.out / f"learned{suffix}-{name}.png")
        print(json.dumps(res, indent=1), flush=True)
        results["settings"][name] = res
        save(results, args)  # after every setting: a cut-off run keeps what it measured
    if any(SETTINGS[n][1] == "lasso" for n in runs):
        adopt_speed(results, speed_target(runs, args.speed_batch) | {"measured": time.strftime("%Y-%m-%d %H:%M")})
        print(json.dumps(results["speed"], indent=1), flush=True)
    print(save(results, args))


def merge_previous(results: dict, path: Path, names: list[str]) -> dict:
    """With ``--only``, keep the settings of an earlier results file that this run does not
    retrain (each keeps its own date and command), so that long settings can be measured
    one at a time. The speed section is kept only until this run measures its own: its
    ratios are taken within one run, never across runs."""
    if not path.exists():
        return results
    try:
        previous = json.loads(path.read_text())
        kept = {k: v for k, v in previous["settings"].items() if k not in names}
    except (json.JSONDecodeError, KeyError, AttributeError) as e:
        print(f"warning: {path} is unreadable ({e}); writing a fresh results file", file=sys.stderr)
        return results
    for name, res in kept.items():
        res.setdefault("measured", previous.get("date"))
        res.setdefault("command", previous.get("command"))
    if previous.get("speed"):
        previous["speed"].setdefault("measured", previous.get("date"))
        results["speed"] = previous["speed"]
    results["speed_earlier"] = previous.get("speed_earlier", [])
    results["settings"] = kept
    return results


def adopt_speed(results: dict, speed: dict) -> None:
    """Make ``speed`` (one run's measurement) the file's speed section. Earlier sections
    stay as tables of their own, each with the fista_restart row of its run, without the
    solvers measured again now (a section left with fista_restart alone is dropped)."""
    earlier = ([results["speed"]] if results.get("speed") else []) + results.get("speed_earlier", [])
    kept = []
    for section in earlier:
        rows = {k: v for k, v in section["rows"].items() if k == "fista_restart" or k not in speed["rows"]}
        if len(rows) > 1:
            kept.append(section | {"rows": rows})
    results["speed"], results["speed_earlier"] = speed, kept


def results_suffix(args) -> str:
    """learned.*, learned-quick.* or learned-paper.* (and the plots alike): a smoke or a
    paper-length run never overwrites the default run's figures."""
    return "-quick" if args.quick else "-paper" if args.paper else ""


def save(results: dict, args) -> str:
    md = to_markdown(results)
    write_results(args.out, f"learned{results_suffix(args)}", results, md)
    return md


if __name__ == "__main__":
    main()
