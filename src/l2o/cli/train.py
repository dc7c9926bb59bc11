"""``l2o train``: meta-train a learned solver from a run config."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import torch
import typer

from l2o.cli.options import console, error, say, user_errors
from l2o.training import load_config
from l2o.training import train as train_run
from l2o.training.distributed import DEFAULT_TIMEOUT, DistributedError, PeerError, init_from_env, shutdown
from l2o.training.trainer import RunDirectoryError
from l2o.workflows.robustness import resolve_evaluation

TRAIN_HELP = "\n\n".join([
    "Meta-train a learned solver from a run config: a TOML file with the tables problem, solver and training "
    "(see examples/).",
    "Writes the run directory (default runs/<config stem>): weights.safetensors, best.safetensors (best "
    "validation), config.toml (resolved, with every override), metrics.json, log.csv and a resumable state.",
    "--steps N sets training.steps; --set TABLE.KEY=VALUE (repeatable) sets any key of the config, e.g. "
    "--set training.lr=1e-3 --set solver.hidden=64 --set problem.family=lasso_250x500. Overrides are checked "
    "exactly like the file (unknown keys and values of the wrong type are errors); VALUE is read as a TOML value "
    "(1e-3, 10, true, [1, 2], \"text\") or else as a string.",
    "--resume continues a killed run from its last checkpoint to the same result as an uninterrupted one (it says "
    "from which step); a finished run is reported as such and not trained again (exit 0); --resume --steps N with "
    "a larger N continues a finished run to N steps.",
    "Several processes: torchrun --standalone --nproc-per-node N -m l2o train CONFIG.toml --set training.shards=S "
    "(S a multiple of N dividing batch_size): each meta-batch is S shards, each drawn from a seed of (seed, step, "
    "shard), the ranks compute S / N shards each and average the meta-gradients with all_reduce (gloo on CPU, "
    "nccl on CUDA); rank 0 writes the run directory. The same config gives the same run on 1 or N processes, and "
    "--resume may use another N. A rank that dies stops the others within --dist-timeout seconds.",
])


def train(
    config: Annotated[Path, typer.Argument(help="run config (.toml)")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="run directory (default runs/<config stem>)")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue the run checkpointed in the run directory")
    ] = False,
    steps: Annotated[int | None, typer.Option(help="meta-steps: sets training.steps")] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="TABLE.KEY=VALUE", help="set one key of the config (repeatable)"),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="train on this device (cpu, cuda, cuda:1): sets training.device")
    ] = None,
    tensorboard: Annotated[
        Path | None, typer.Option(help="write TensorBoard curves to this directory (pip install 'l2o[tensorboard]')")
    ] = None,
    backend: Annotated[
        str | None, typer.Option(help="torch.distributed backend under torchrun: gloo or nccl (default: nccl on "
                                      "cuda, else gloo)")
    ] = None,
    dist_timeout: Annotated[
        float, typer.Option(help="seconds a process waits for the others before it stops with an error")
    ] = DEFAULT_TIMEOUT,
) -> None:
    out_dir = out if out is not None else Path("runs") / config.stem
    changes = [*(overrides or []), *([] if steps is None else [f"training.steps={steps}"])]
    group = None
    peers_alive = True
    with user_errors({"backend": "--backend", "timeout": "--dist-timeout"}), _quiet_unless_main(lambda: group):
        run_config = load_config(config, changes)
        try:  # the [evaluation] table: checked now, written to the run's config.toml with its defaults
            run_config = resolve_evaluation(run_config)
        except ValueError as e:
            raise ValueError(f"{config}: {e}") from None
        if device is not None and device.split(":")[0] == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(f"--device {device}: CUDA is not available here (torch.cuda.is_available() is "
                                 f"False); use --device cpu")
        group = init_from_env(backend, device or run_config.training.device, dist_timeout)
        try:
            result = train_run(run_config, out_dir, resume=resume, progress=True, echo=say, device=device,
                               tensorboard=tensorboard)
        except RunDirectoryError as e:
            raise ValueError(_directory_message(e, config, out_dir)) from None
        except PeerError:  # rank 0 found the error and prints it
            raise typer.Exit(2) from None
        except DistributedError as e:
            peers_alive = False
            error(str(e))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            error(f"interrupted; continue from the last checkpoint with: l2o train {config} --out {out_dir} --resume")
            raise typer.Exit(130) from None
        finally:
            shutdown(peers_alive)
        if group is not None and not group.is_main:
            return
    con = console()
    if result.already_finished:
        con.print(f"{out_dir} already finished: {result.steps} of {run_config.training.steps} steps; nothing to do "
                  f"(more steps: --resume --steps N)")
        return
    gap = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
    head = "" if result.resumed_from is None else f"resumed from step {result.resumed_from}; "
    con.print(f"{head}trained {run_config.solver} on {run_config.family}: {result.steps} steps in "
              f"{result.seconds:.1f} s" + (f", {result.rejected} rejected" if result.rejected else ""))
    con.print(f"validation gap {gap(result.initial_val_gap)} (untrained) -> {gap(result.final_val_gap)} (last), "
              f"best {gap(result.best_val_gap)} at step {result.best_step}")
    con.print(f"wrote {out_dir}")


@contextlib.contextmanager
def _quiet_unless_main(group):
    """Under torchrun, an error every rank finds (a config that does not divide over them) is
    printed by rank 0 alone; the other ranks exit with the same status, silently."""
    try:
        yield
    except ValueError:
        g = group()
        if g is not None and not g.is_main:
            raise typer.Exit(2) from None
        raise


def _directory_message(e: RunDirectoryError, config: Path, out_dir: Path) -> str:
    """The library's ``RunDirectoryError`` in the command's words (flags, not arguments)."""
    if e.reason == "nothing_to_resume":
        return f"cannot resume: '{out_dir}' holds no run; start it without --resume"
    done = "" if e.steps_done is None or e.steps is None else f" ({e.steps_done} of {e.steps} steps done)"
    return (f"'{out_dir}' already holds a run{done}; continue it with --resume (more steps: --resume --steps N), "
            f"or choose another --out")
