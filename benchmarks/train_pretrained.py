"""Train the bundled pretrained solvers, measure them on fresh instances, write the bundle.

    python benchmarks/train_pretrained.py                       # every bundle, from SPECS
    python benchmarks/train_pretrained.py --only lgd-ls_32x25   # one (comma-separated list)
    python benchmarks/train_pretrained.py --from-bundle         # retrain from each solver.json's config
    python benchmarks/train_pretrained.py --list                # the names and their configs
    python benchmarks/train_pretrained.py --summary             # results/pretrained.* from the bundles

For each name ``<method>-<preset>``: the training config is an ``examples/*.toml`` with
the ``[training]`` changes listed in ``SPECS`` (shortened: paper-length training takes
hours on this machine's two shared cores), or with ``--from-bundle`` the config the
bundle recorded (so the bundle is reproducible: the trainer is deterministic on the CPU
for a given config, seed and thread count). The solver is trained in a temporary run
directory (``l2o.training.train``, best validation weights), then measured against its
template classical solver and its family's fallback on ``--batch`` fresh instances
(seed ``eval_seed`` of the training seed, the training dtype; every solver runs
max(10 x horizon, 1000) iterations, stopping early once every instance is below 1e-7),
and the bundle ``src/l2o/pretrained/<name>/`` is written (weights, then solver.json,
each atomically; ``l2o.pretrained.write_bundle``). One model is trained at a time, with
``--threads`` torch threads (default 1: the machine is shared).

``benchmarks/results/pretrained.{json,md}`` gathers the figures of every bundle (read
back from the solver.json files, so bundles made by earlier runs keep the date and
command that made them).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import platform
import shlex
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import torch

import l2o
from l2o.evaluation.compare import compare
from l2o.evaluation.defaults import default_fallback, eval_seed
from l2o.pretrained import BUNDLE_ROOT, list_pretrained, read_record, write_bundle
from l2o.registry import LEARNED, make_solver
from l2o.report.table import summarize_comparison
from l2o.training import RunConfig, train
from l2o.training.checkpoint import load_run, weights_of
from l2o.workflows.load import handover

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
RESULTS = Path(__file__).resolve().parent / "results"
TOLERANCES = (1e-2, 1e-4, 1e-6)
HEADLINE_TOL = 1e-4
STOP_AT = 1e-7


@dataclasses.dataclass(frozen=True)
class Spec:
    """How a bundle is made: an example config, the ``[training]`` keys changed (the
    shortening), what the paper or the example does instead, and the classical method
    it is measured against when its class declares no ``template``."""

    example: str
    training: dict[str, Any]
    shortened: str
    template: str | None = None
    #: fresh instances and iterations of the figures (None: ``--batch``; max(10 x horizon, 1000))
    batch: int | None = None
    max_iter: int | None = None
    #: the ``[problem]`` table's changes (another preset of the example's family)
    problem: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: iteration cap of the reference of the figures (None: ``l2o.reference``'s default)
    reference_max_iter: int | None = None


SPECS: dict[str, Spec] = {
    "lfista-lasso_250x500": Spec(
        "lfista_lasso.toml", {},
        "the demo's config unchanged (300 meta-steps of 64 instances, 40 learned iterations, float64)"),
    "lgd-ls_32x25": Spec(
        "lgd_neurips2025_qp_32x25.toml", {},
        "300 meta-steps (paper: 5000) of the fixed 32-instance training set, T = 100"),
    "go_math_l2o-lasso_250x500": Spec(
        "go_math_l2o_lasso.toml", {"steps": 30, "decay_every": 10, "val_every": 5, "checkpoint_every": 10},
        "30 meta-steps of 16 instances (paper: 1500 of 128; the example: 90), lr decayed 10x every 10 steps",
        template="ista"),
    "math_l2o-logistic_1000x50": Spec(
        "math_l2o_logistic.toml", {"unroll": 5, "segment": 5, "update_per_segment": False},
        "100 meta-steps of 16 instances (paper: 500 of 64) with horizon 5 (paper: 100): on this family every "
        "solver is at float precision (relative gap ~1e-14) well before 100 iterations, so a horizon-100 run "
        "never improves its validation gap and keeps its initial weights (best step 0, measured); at 5 "
        "iterations the gap is ~1e-6 and training has something to learn"),
    "gnn_wmmse-mimo_medium": Spec(
        "gnn_wmmse_mimo.toml", {},
        "600 meta-steps of 64 instances (the example's; paper-scale training is longer)", batch=128, max_iter=200),
    "gcn_wmmse-mimo_medium": Spec(
        "gcn_wmmse_mimo.toml", {"steps": 100},
        "100 meta-steps (the example's batch; the INFOCOM paper: 100 epochs over 100k-180k samples)",
        batch=128, max_iter=200),
    "alista-lasso_250x500": Spec(
        "alista_lasso.toml", {},
        "300 meta-steps of 64 instances (the example's), 16 layers"),
    "l2o_dm-lasso_250x500": Spec(
        "l2o_dm_lasso.toml", {},
        "80 meta-steps of 16 instances (the example's)", template="adam"),
    "rnnprop-lasso_250x500": Spec(
        "rnnprop_lasso.toml", {},
        "80 meta-steps of 16 instances (the example's)", template="adam"),
    "lqn-logistic_l2_100": Spec(
        "lqn_logistic.toml", {},
        "the example's config unchanged (300 meta-steps of 8 instances, one-step log-gap losses along 30-step "
        "trajectories, float64)"),
    "lqn-logsumexp_100": Spec(
        "lqn_logsumexp.toml", {},
        "the example's config unchanged (300 meta-steps of 8 instances, one-step log-gap losses along 30-step "
        "trajectories, float64; benchmarks/bench_quasi_newton.py's log-sum-exp model)"),
    "lqn-ls_100x200": Spec(
        "lqn_ls.toml", {},
        "the example's config unchanged (300 meta-steps of 8 instances, one-step log-gap losses along 30-step "
        "trajectories, float64; benchmarks/bench_quasi_newton.py's least-squares model)"),
    "lista-lasso_50x100": Spec(
        "lista_lasso.toml", {},
        "the example's training (300 meta-steps of 64 instances, 16 untied layers, Adam 5e-4 decayed 10x per "
        "third) on lasso_50x100, lasso_250x500 scaled down 5x: LISTA's untied layers on lasso_250x500 are 6.0M "
        "parameters (24 MB in float32), above the bundle's budget of a few MB; at 50 x 100 they are 240k "
        "(about 1 MB)", problem={"family": "lasso_50x100"}),
    **{
        f"structural_mpnn-mimo_infocom_{scale}": Spec(
            f"structural_mpnn_{scale}.toml", {},
            f"{steps} meta-steps of {batch} fresh instances (paper: 400 epochs of {paper}k samples), "
            "the example's; measured against its start (zero-forcing) and WMMSE",
            template="zf", batch=64, max_iter=20, reference_max_iter=300)
        for scale, steps, batch, paper in (("small", 6000, 64, 80), ("moderate", 4000, 32, 96),
                                           ("large", 2000, 16, 144))
    },
}
#: Learned methods with no bundle, and why.
NOT_BUNDLED: dict[str, str] = {
    "iaidnn": "trained here (100 meta-steps of 64 on mimo_medium, 64 s; 2026-11-28) it stays below its template: "
              "0.674 of R* after its 7 layers against WMMSE's 0.903 after 7 iterations, so it is not bundled (a "
              "bundle must beat its template somewhere); the INFOCOM baseline's figures are in "
              "benchmarks/results/infocom.md",
    "structural_mpnn_b": "an ablation of StructuralMPNN (Table IV of the INFOCOM 2024 paper), benchmarked in "
                         "benchmarks/results/infocom.md, not meant for use",
    "structural_mpnn_o": "an ablation of StructuralMPNN (Table IV of the INFOCOM 2024 paper), benchmarked in "
                         "benchmarks/results/infocom.md, not meant for use",
}


def spec_config(name: str) -> RunConfig:
    """The ``RunConfig`` of ``SPECS[name]``: its example with the training changes."""
    spec = SPECS[name]
    with open(EXAMPLES / spec.example, "rb") as fh:
        data = tomllib.load(fh)
    data.setdefault("training", {}).update(spec.training)
    if spec.problem:
        data["problem"] = dict(spec.problem)  # another preset: the example's family fields do not carry over
    return RunConfig.from_dict(data)


def template_of(method: str, spec: Spec | None) -> str:
    """The classical method a learned one is compared with: its class's ``template``,
    else the spec's."""
    own = LEARNED[method].factory.template
    if own is not None:
        return own
    if spec is None or spec.template is None:
        raise ValueError(f"{method} declares no template and its spec names none")
    return spec.template


def _median_its(rows: list[dict[str, Any]], solver: str, tol: float) -> float:
    r = next(r for r in rows if r["solver"] == solver and r["tol"] == tol)
    return math.inf if r["iterations_median"] is None else float(r["iterations_median"])


def measure(solver: Any, method: str, family: Any, config: RunConfig, horizon: int, template: str,
            batch: int, max_iter: int | None = None, reference_max_iter: int | None = None) -> dict[str, Any]:
    """Figures on ``batch`` fresh instances: the learned solver alone, the same handing
    over to the family's fallback past its horizon, its template and the fallback."""
    seed = eval_seed(config.training.seed)
    dtype = config.training.torch_dtype
    problem = family.sample(batch, seed, dtype=dtype)
    fallback = default_fallback(family)
    names = [template] + ([fallback] if fallback != template else [])
    solvers = {method: solver, f"{method}+handover": handover(solver, family, horizon),
               **{n: make_solver(n) for n in names}}
    K = max(10 * horizon, 1000) if max_iter is None else max_iter
    start = time.perf_counter()
    with torch.no_grad():
        ref = None if reference_max_iter is None else l2o.reference(problem, max_iter=reference_max_iter)
        comparison = compare(solvers, problem, reference=ref, max_iter=K, stop_at=STOP_AT)
    seconds = time.perf_counter() - start
    rows = summarize_comparison(comparison, TOLERANCES)
    out: dict[str, Any] = {}
    for name, traj in comparison.trajectories.items():
        at = min(horizon, int(traj.iterations[-1]))
        idx = int((traj.iterations == at).nonzero()[0])
        gap_h = traj.gap[idx].to(torch.float64)
        entry = {
            "gap_at_horizon_median": float(gap_h.median()),
            "iterations_run": int(traj.iterations[-1]),
            "tolerances": {f"{r['tol']:g}": {k: r[k] for k in ("reached", "iterations_median", "iterations_p90")}
                           for r in rows if r["solver"] == name},
        }
        if hasattr(problem, "sum_rate"):
            entry["sum_rate_fraction_at_horizon_mean"] = float((1.0 - gap_h).mean())
        out[name] = entry
    beats = {f"{tol:g}": _median_its(rows, method, tol) < _median_its(rows, template, tol) for tol in TOLERANCES}
    beats_h = {f"{tol:g}": _median_its(rows, f"{method}+handover", tol) < _median_its(rows, template, tol)
               for tol in TOLERANCES}
    gap_beats = out[method]["gap_at_horizon_median"] < out[template]["gap_at_horizon_median"]
    return {
        "batch": batch, "seed": seed, "dtype": str(dtype).removeprefix("torch."), "max_iter": K, "stop_at": STOP_AT,
        "reference": comparison.reference.method if comparison.reference is not None else None,
        "measure": "relative suboptimality (F - F*) / |F*| against the certified reference",
        "template": template, "fallback": fallback, "seconds": round(seconds, 2),
        "solvers": out, "beats_template_in_median_iterations": beats,
        "handover_beats_template_in_median_iterations": beats_h,
        "beats_template_in_gap_at_horizon": gap_beats,
        "headline": headline(method, template, horizon, out, rows),
    }


def headline(method: str, template: str, horizon: int, out: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """One measured figure: for a sum-rate family the mean sum-rate fraction at the
    horizon against the template's; else the median iterations to 1e-4 against the
    template's, or (a learned solver that does not get there by itself) its gap at the
    horizon and the iterations of its hand-over form."""
    if "sum_rate_fraction_at_horizon_mean" in out[method]:
        f, t = (out[n]["sum_rate_fraction_at_horizon_mean"] for n in (method, template))
        return f"mean sum-rate / R* after {horizon} iterations: {f:.3f} ({template}: {t:.3f})"
    mine, theirs = _median_its(rows, method, HEADLINE_TOL), _median_its(rows, template, HEADLINE_TOL)
    other = f"{theirs:g}" if math.isfinite(theirs) else "not reached"
    if math.isfinite(mine):
        return f"median iterations to {HEADLINE_TOL:g}: {mine:g} ({template}: {other})"
    g, t = out[method]["gap_at_horizon_median"], out[template]["gap_at_horizon_median"]
    h = _median_its(rows, f"{method}+handover", HEADLINE_TOL)
    return (f"median gap after its {horizon} iterations: {g:.2g} ({template}: {t:.2g}); with the hand-over, "
            f"median iterations to {HEADLINE_TOL:g}: {h:g} ({template}: {other})")


def make_bundle(name: str, config: RunConfig, spec: Spec | None, batch: int, threads: int, command: str,
                root: Path, say=print, run_dir: Path | None = None) -> Path:
    """Train ``config`` (or take the finished run ``run_dir`` trained from it), measure, write
    the bundle ``root/name``; returns its folder."""
    method = config.solver
    template = template_of(method, spec)
    preset = name.split("-", 1)[1]
    if config.family != preset or name.split("-", 1)[0] != method:
        raise ValueError(f"bundle {name!r} must be trained as {name.split('-', 1)[0]} on {preset}, "
                         f"its config trains {method} on {config.family}")
    torch.set_num_threads(threads)
    say(f"{name}: training {method} on {config.family}, {config.training.steps} meta-steps of "
        f"{config.training.batch_size}, unroll {config.training.unroll}")
    if run_dir is not None:
        run = load_run(run_dir, "best" if (Path(run_dir) / "best.safetensors").exists() else "last")
        trained, wanted = run.config.to_dict(), config.to_dict()
        if any(trained.get(k) != wanted.get(k) for k in ("problem", "solver", "training")):
            raise ValueError(f"run {run_dir} was not trained from the config of {name}")
        m = run.metrics
        result = argparse.Namespace(solver=run.solver, initial_val_gap=m.get("initial_val_gap"),
                                    best_val_gap=m.get("best_val_gap"), best_step=m.get("best_step"))
        train_seconds = float(m.get("seconds", math.nan))
    else:
        with tempfile.TemporaryDirectory(prefix=f"l2o-pretrained-{name}-") as tmp:
            start = time.perf_counter()
            result = train(config, Path(tmp) / "run")
            train_seconds = time.perf_counter() - start
    solver = result.solver.eval()
    family = config.make_family()
    horizon = int(getattr(solver, "horizon", config.training.unroll))
    batch = batch if spec is None or spec.batch is None else spec.batch
    gaps = (f"{result.initial_val_gap:.3g} -> {result.best_val_gap:.3g}" if result.best_val_gap is not None
            else "no validation")
    say(f"{name}: trained in {train_seconds:.0f} s ({gaps}); measuring on {batch} fresh instances")
    figures = measure(solver, method, family, config, horizon, template, batch,
                      None if spec is None else spec.max_iter, None if spec is None else spec.reference_max_iter)
    say(f"{name}: {figures['headline']} ({figures['seconds']:.0f} s)")
    overrides = dict(spec_overrides(config))
    tensors = weights_of(solver)
    record = {
        "solver": {"name": method, "kwargs": {k: v for k, v in config.to_dict()["solver"].items() if k != "name"},
                   "class": type(solver).__qualname__,
                   "parameters": int(sum(t.numel() for t in solver.parameters())),
                   "dtype": config.training.dtype},
        "family": {"preset": config.family, "overrides": overrides, "name": getattr(family, "name", None)},
        "horizon": horizon,
        "template": template,
        "l2o_version": l2o.__version__,
        "config": config.to_dict(),
        "command": command,
        "training": {
            "seconds": round(train_seconds, 1), "steps": config.training.steps,
            "batch_size": config.training.batch_size, "unroll": config.training.unroll,
            "threads": threads, "shortened": spec.shortened if spec is not None else "as recorded",
            "initial_val_gap": result.initial_val_gap, "best_val_gap": result.best_val_gap,
            "best_step": result.best_step,
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}",
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
        },
        "figures": figures,
    }
    return write_bundle(root, name, tensors, record)


def spec_overrides(config: RunConfig) -> list[tuple[str, Any]]:
    """The family fields that differ from the preset's (none for the SPECS)."""
    base = l2o.make_family(config.family)
    family = config.make_family()
    return [(f.name, getattr(family, f.name)) for f in dataclasses.fields(family)
            if f.init and getattr(family, f.name) != getattr(base, f.name)]


def summary(root: Path) -> tuple[dict[str, Any], str]:
    """Every bundle's figures (from its solver.json) as JSON and markdown."""
    data: dict[str, Any] = {"bundles": {}, "not_bundled": NOT_BUNDLED}
    lines = ["# Bundled pretrained solvers", "",
             "Each bundle's figures as measured when it was made (`benchmarks/train_pretrained.py`; the command, date "
             "and settings are in its solver.json). Training is SHORTENED (minutes on 2 shared CPU cores instead of "
             "the papers' hours); 'shortened' says how. Figures: median iterations to reach a relative suboptimality "
             "on fresh instances (seed derived from the training seed), '-' where the median instance never reaches "
             "it; `+handover`: the learned solver up to its horizon, then its family's fallback.", ""]
    entries = list_pretrained(root)
    lines += ["| bundle | method | family | horizon | figure (measured when made) | training | kB |",
              "|---|---|---|---|---|---|---|"]
    for e in entries:
        rec = read_record(e.directory)
        size = sum(p.stat().st_size for p in e.directory.iterdir())
        lines.append(f"| {e.name} | {e.method} | {e.family} | {e.horizon} | {e.figure} | "
                     f"{rec['training']['steps']} steps, {rec['training']['seconds']:.0f} s | {size / 1e3:.0f} |")
    lines.append("")
    total = 0
    for e in entries:
        rec = read_record(e.directory)
        size = sum(p.stat().st_size for p in e.directory.iterdir())
        total += size
        fig, tr = rec["figures"], rec["training"]
        data["bundles"][e.name] = {"figures": fig, "training": tr, "command": rec["command"], "bytes": size}
        lines += [f"## {e.name}", "",
                  f"{e.method} on {e.family}, horizon {e.horizon}; {fig['batch']} fresh instances (seed {fig['seed']}, "
                  f"{fig['dtype']}); trained in {tr['seconds']} s ({tr['shortened']}); bundle {size / 1e3:.0f} kB; "
                  f"command `{rec['command']}`.", "",
                  f"| solver | gap at horizon {e.horizon} | " + " | ".join(f"it. to {t:g}" for t in TOLERANCES) + " |",
                  "|---|---|" + "---|" * len(TOLERANCES)]
        for sname, s in fig["solvers"].items():
            its = [s["tolerances"][f"{t:g}"]["iterations_median"] for t in TOLERANCES]
            lines.append(f"| {sname} | {s['gap_at_horizon_median']:.3g} | "
                         + " | ".join("-" if v is None else str(v) for v in its) + " |")
        lines += ["", f"Beats {fig['template']} in median iterations: {fig['beats_template_in_median_iterations']}; "
                  f"with the hand-over: {fig['handover_beats_template_in_median_iterations']}.", ""]
    data["total_bytes"] = total
    lines += [f"Bundle size: {total / 1e6:.2f} MB in all.", "",
              ("Not bundled: " + "; ".join(f"{k}: {v}" for k, v in NOT_BUNDLED.items()) + "." if NOT_BUNDLED
               else "Every learned method has a bundle (LISTA on lasso_50x100: see its 'shortened' above for why).")]
    return data, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated bundle names (default: all of SPECS)")
    ap.add_argument("--from-bundle", action="store_true", help="train from each installed bundle's config")
    ap.add_argument("--batch", type=int, default=256, help="fresh instances of the figures (256)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    ap.add_argument("--root", type=Path, default=BUNDLE_ROOT, help="where the bundles go (the package's folder)")
    ap.add_argument("--list", action="store_true", help="print the names and their configs, train nothing")
    ap.add_argument("--summary", action="store_true", help="only rewrite results/pretrained.{json,md} from the bundles")
    ap.add_argument("--from-run", type=Path,
                    help="bundle this finished run (trained from the spec's config; one --only)")
    args = ap.parse_args(argv)
    names = list(SPECS) if not args.only else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SPECS]
    if unknown:
        ap.error(f"unknown bundle(s) {', '.join(unknown)}; known: {', '.join(SPECS)}")
    if args.list:
        for n in names:
            print(n, SPECS[n].example, SPECS[n].training, "-", SPECS[n].shortened)
        return 0
    command = "python benchmarks/train_pretrained.py " + shlex.join(
        (["--from-bundle"] if args.from_bundle else []) + ["--threads", str(args.threads), "--batch", str(args.batch)])
    if args.from_run is not None and len(names) != 1:
        ap.error("--from-run needs exactly one bundle name in --only")
    for n in [] if args.summary else names:
        config = RunConfig.from_dict(read_record(BUNDLE_ROOT / n)["config"]) if args.from_bundle else spec_config(n)
        how = f"{command} --only {n}" if args.from_run is None else f"{command} --from-run {args.from_run} --only {n}"
        make_bundle(n, config, SPECS[n], args.batch, args.threads, how, args.root, run_dir=args.from_run)
    data, md = summary(args.root)
    if args.root == BUNDLE_ROOT:
        data["command"] = " ".join(["python", "benchmarks/train_pretrained.py", *(argv or sys.argv[1:])])
        write_results(RESULTS, "pretrained", data, md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
