"""``l2o train``: meta-train a learned solver from a run config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from l2o.cli.options import error, user_errors
from l2o.training import load_config
from l2o.training import train as train_run
from l2o.workflows.robustness import resolve_evaluation

TRAIN_HELP = "\n\n".join([
    "Meta-train a learned solver from a run config: a TOML file with the tables problem, solver and training "
    "(see examples/).",
    "Writes the run directory (default runs/<config stem>): weights.safetensors, best.safetensors (best "
    "validation), config.toml (resolved), metrics.json, log.csv and a resumable state. --resume continues a "
    "killed run from its last checkpoint to the same result as an uninterrupted one.",
])


def train(
    config: Annotated[Path, typer.Argument(help="run config (.toml)")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="run directory (default runs/<config stem>)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the run checkpointed in the run directory")] = False,
) -> None:
    out_dir = out if out is not None else Path("runs") / config.stem
    with user_errors():
        run_config = load_config(config)
        try:  # the [evaluation] table: checked now, written to the run's config.toml with its defaults
            run_config = resolve_evaluation(run_config)
        except ValueError as e:
            raise ValueError(f"{config}: {e}") from None
        try:
            result = train_run(run_config, out_dir, resume=resume, progress=True)
        except KeyboardInterrupt:
            error(f"interrupted; continue from the last checkpoint with: l2o train {config} --out {out_dir} --resume")
            raise typer.Exit(130) from None
    console = Console(highlight=False, markup=False)
    gap = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
    console.print(f"trained {run_config.solver} on {run_config.family}: {result.steps} steps in {result.seconds:.1f} s"
                  + (f", {result.rejected} rejected" if result.rejected else ""))
    console.print(f"validation gap {gap(result.initial_val_gap)} (untrained) -> {gap(result.final_val_gap)} (last), "
                  f"best {gap(result.best_val_gap)} at step {result.best_step}")
    console.print(f"wrote {out_dir}")
