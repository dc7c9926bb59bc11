"""The meta-training loop of a learned solver.

``train(config, out_dir)`` samples batches from the config's family, asks a gradient
estimator (``l2o.training.estimators``) for meta-gradients of the unrolled loss, applies
them with the learner (``l2o.training.learner``: meta-optimizer, schedule, clipping,
NaN/Inf guard), validates on a fixed held-out batch, keeps the best weights, and
checkpoints the run directory (``l2o.training.checkpoint``) so that ``train(..., resume=True)`` continues a killed run
to the same result as an uninterrupted one (bitwise on the CPU).

Randomness: four independent streams derived from ``[training] seed`` (numpy
``SeedSequence``): the fixed training set, the training batches (fresh samples or
minibatch indices), the validation batch, and the random unroll lengths; the global
torch RNG (the solver's random initialization, anything a solver draws without a
generator) is seeded from a fifth and saved in checkpoints, inside ``fork_rng`` so the
caller's global state is left alone.

With ``[training] shards = S`` the training batches, unroll lengths and the torch RNG of
each step are instead drawn from seeds of (seed, step, shard) (``l2o.training.distributed``):
the batch is S shards whose meta-gradients are averaged, and a process group of N ranks
(``torchrun``) computes S / N shards each, summed with ``all_reduce``. Rank 0 alone reads and
writes the run directory, validates and logs; it hands its state to the others at the start
and its result at the end, so every rank returns the same ``TrainResult``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import struct
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn

from l2o.evaluation.reference import Reference, reference
from l2o.problems.base import Instances
from l2o.training.checkpoint import (
    RunDirectory,
    TrainingState,
    assign_weights,
    optimizer_tensors,
    read_config,
    read_json,
    restore_optimizer,
    weights_of,
)
from l2o.training.config import RunConfig
from l2o.training.distributed import (
    PERM,
    TORCH,
    UNROLL,
    Distributed,
    check_shards,
    local_shards,
    shard_seed,
)
from l2o.training.estimators import Estimate, GradientEstimator, make_estimator, trainable
from l2o.training.learner import Learner, lr_at, make_meta_optimizer
from l2o.training.unroll import MetaLoss
from l2o.utils.progress import as_progress

# ----- validation --------------------------------------------------------------------------------------


@torch.no_grad()
def validation_gap(solver, problem: Instances, reference: Reference, horizon: int,
                   exact: Instances | None = None) -> float:
    """Mean over the batch of the relative gap (F(x_K) - F*) / max(|F*|, floor) after
    ``horizon`` iterations from the default start, F in float64; +inf if not finite."""
    was_training = getattr(solver, "training", False)
    if isinstance(solver, nn.Module):
        solver.eval()
    try:
        state = solver.init(problem, problem.initial_point())
        for _ in range(horizon):
            state = solver.step(problem, state)
    finally:
        if isinstance(solver, nn.Module):
            solver.train(was_training)
    exact = exact if exact is not None else problem.as_float64()
    gap = float(reference.relative_gap(exact.objective(state.x.to(device=exact.device, dtype=torch.float64))).mean())
    return gap if math.isfinite(gap) else math.inf


# ----- results ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class StepInfo:
    """Passed to ``train``'s callback after every meta-step (after validation and any checkpoint)."""

    step: int
    row: dict[str, Any]
    trainer: Trainer


@dataclasses.dataclass
class TrainResult:
    """Outcome of ``train``.

    Attributes:
        directory: the run directory.
        solver: the learned solver with its best-validation weights, eval mode.
        steps: meta-steps done; best_step: the step whose weights are the best (0 = untrained).
        initial_val_gap, best_val_gap, final_val_gap: mean relative validation gap at the
            horizon (None without validation).
        final_loss: loss of the last step; rejected: steps rejected by the NaN/Inf guard.
        seconds: wall time of the training (all sessions of a resumed run).
        log: the rows of log.csv.
        resumed_from: the step a resumed run continued from (None: not resumed).
        already_finished: ``resume=True`` found the run finished at ``steps``: nothing was
            trained (the result is read from the run directory).
    """

    directory: Path
    solver: nn.Module
    steps: int
    best_step: int
    initial_val_gap: float | None
    best_val_gap: float | None
    final_val_gap: float | None
    final_loss: float | None
    rejected: int
    seconds: float
    log: list[dict[str, Any]]
    resumed_from: int | None = None
    already_finished: bool = False


class RunDirectoryError(ValueError):
    """``train`` cannot use its output directory as asked: ``reason`` is "exists" (it holds a
    run and ``resume`` is False; ``steps_done`` and ``steps`` say how far that run got, None
    where unknown) or "nothing_to_resume" (``resume=True`` but it holds no run)."""

    def __init__(self, message: str, root: Path, reason: str, steps_done: int | None = None,
                 steps: int | None = None):
        super().__init__(message)
        self.root, self.reason, self.steps_done, self.steps = root, reason, steps_done, steps


# ----- the trainer -------------------------------------------------------------------------------------------


def _derive_seeds(seed: int, n: int) -> list[int]:
    return [int(s) & (2**63 - 1) for s in np.random.SeedSequence(seed).generate_state(n, dtype=np.uint64)]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Trainer:
    """Meta-trains the config's learned solver on its family (see ``train``).

    The solver (``.solver``), family (``.family``), estimator (``.estimator``), loss
    (``.loss``) and learner (``.learner``) are built on construction and may be
    replaced or hooked before ``fit``.
    """

    def __init__(
        self,
        config: RunConfig,
        out_dir: str | Path,
        *,
        progress: bool = False,
        callback: Callable[[StepInfo], None] | None = None,
        echo: Callable[[str], None] | None = None,
        dist: Distributed | None = None,
        tensorboard: str | Path | None = None,
    ):
        self.dist = dist if dist is not None else Distributed.current()
        self.main = self.dist is None or self.dist.is_main
        if self.dist is not None:
            check_shards(config.training.shards, self.dist.world_size)
        self.tensorboard = Path(tensorboard) if tensorboard is not None else None
        if self.tensorboard is not None and self.main:
            _summary_writer_class(required=True)  # absent extra: one clear error before any work
        self.config = config
        self.cfg = cfg = config.training
        self.dir = RunDirectory(out_dir)
        self.progress = progress and self.main
        self.callback = callback
        self.echo = echo if self.main else None
        self._bar = None
        self.dtype = cfg.torch_dtype
        self.device = torch.device(cfg.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"[training] device = {cfg.device!r} but CUDA is not available "
                             f"(torch.cuda.is_available() is False); use device 'cpu'")
        if self.dist is not None and self.dist.backend == "nccl":
            if self.device.type != "cuda":
                raise ValueError(f"backend nccl needs [training] device = 'cuda', got {cfg.device!r}")
            self.device = torch.device("cuda", torch.cuda.current_device())  # this rank's GPU (LOCAL_RANK)
        (self.seed_train_set, self.seed_data, self.seed_val, self.seed_unroll,
         self.seed_torch) = _derive_seeds(cfg.seed, 5)
        self.family = config.make_family()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed_torch)
            self.solver = config.make_solver(self.family, self.dtype)
        self.solver.to(device=self.device, dtype=self.dtype)
        self.solver.train()
        self.loss = MetaLoss(cfg.loss, cfg.log_eps, cfg.reduction, cfg.tail)
        self.estimator: GradientEstimator = make_estimator(cfg.unroll, cfg.segment, cfg.update_per_segment,
                                                           cfg.gradient_checkpointing)
        self.learner = Learner(self.solver, make_meta_optimizer(cfg, trainable(self.solver)), cfg.grad_clip)

    # ----- data ----------------------------------------------------------------------------------------
    def _sample(self, n: int, seed_or_gen) -> Instances:
        return self.family.sample(n, seed_or_gen, dtype=self.dtype, device=self.device)

    def _setup_data(self) -> None:
        cfg = self.cfg
        self.g_data = _generator(self.seed_data)
        self.g_unroll = _generator(self.seed_unroll)
        phases = as_progress(self.progress)  # the references take seconds before the training bar shows
        self.train_set = None
        if cfg.train_set_size:
            with phases.phase(f"sampling {cfg.train_set_size} training instances"):
                self.train_set = self._sample(cfg.train_set_size, self.seed_train_set)
        if self.train_set is not None and self.loss.needs_reference:
            with phases.phase(f"reference optima of the {cfg.train_set_size} training instances"):
                self.train_ref = reference(self.train_set)
        else:
            self.train_ref = None
        if cfg.val_batch and self.main:  # rank 0 alone validates
            self.val_set = self._sample(cfg.val_batch, self.seed_val)
            self.val_exact = self.val_set.as_float64()
            with phases.phase(f"reference optima of the {cfg.val_batch} validation instances"):
                self.val_ref = reference(self.val_set)
        else:
            self.val_set = self.val_exact = self.val_ref = None

    def _batch(self) -> tuple[Instances, Reference | None]:
        cfg = self.cfg
        if self.train_set is None:
            problem = self._sample(cfg.batch_size, self.g_data)
            return problem, (reference(problem) if self.loss.needs_reference else None)
        if cfg.batch_size == cfg.train_set_size:
            return self.train_set, self.train_ref
        idx = torch.randperm(cfg.train_set_size, generator=self.g_data)[: cfg.batch_size]
        ref = self.train_ref.index(idx) if self.train_ref is not None else None
        return self.train_set.index(idx.to(self.device)), ref

    def _horizon(self, step: int = 0) -> int:
        K = self.cfg.unroll
        if not self.cfg.random_unroll:
            return K
        lo, hi = (K + 1) // 2, max((K + 1) // 2, (3 * K) // 2)
        g = _generator(shard_seed(self.cfg.seed, step, 0, UNROLL)) if self.cfg.shards else self.g_unroll
        return int(torch.randint(lo, hi + 1, (1,), generator=g))

    # ----- shards ----------------------------------------------------------------------------------
    def _shard_batch(self, step: int, shard: int, perm: torch.Tensor | None) -> tuple[Instances, Reference | None]:
        """Shard ``shard`` of meta-step ``step``: fresh instances from the seed of (seed, step,
        shard), or its slice of the step's permutation of the fixed training set."""
        cfg = self.cfg
        size = cfg.batch_size // cfg.shards
        if self.train_set is None:
            problem = self._sample(size, shard_seed(cfg.seed, step, shard))
            return problem, (reference(problem) if self.loss.needs_reference else None)
        idx = perm[shard * size:(shard + 1) * size]
        ref = self.train_ref.index(idx) if self.train_ref is not None else None
        return self.train_set.index(idx.to(self.device)), ref

    def _estimates(self, step: int, horizon: int):
        """The estimates of meta-step ``step`` (0-based): the estimator's on the step's batch, or
        with shards the mean (sum for reduction "sum") of the shard estimates of all ranks."""
        cfg = self.cfg
        if not cfg.shards:
            problem, ref = self._batch()
            return self.estimator.estimates(self.solver, problem, horizon, self.loss, ref)
        return self._sharded_estimates(step, horizon)

    def _sharded_estimates(self, step: int, horizon: int):
        cfg = self.cfg
        rank, world = (0, 1) if self.dist is None else (self.dist.rank, self.dist.world_size)
        perm = None
        if self.train_set is not None:
            perm = torch.randperm(cfg.train_set_size, generator=_generator(shard_seed(cfg.seed, step, 0, PERM)))
        scale = 1.0 if cfg.reduction == "sum" else 1.0 / cfg.shards
        params = trainable(self.solver)
        gens, rngs = [], []
        for shard in local_shards(rank, world, cfg.shards):
            problem, ref = self._shard_batch(step, shard, perm)
            gens.append(self.estimator.estimates(self.solver, problem, horizon, self.loss, ref))
            rngs.append(torch.Generator().manual_seed(shard_seed(cfg.seed, step, shard, TORCH)).get_state())
        try:
            while True:
                parts = []
                for i, g in enumerate(gens):
                    outer = torch.get_rng_state()
                    torch.set_rng_state(rngs[i])  # each shard draws from its own torch RNG stream
                    try:
                        parts.append(next(g, None))
                    finally:
                        rngs[i] = torch.get_rng_state()
                        torch.set_rng_state(outer)
                if all(p is None for p in parts):
                    return
                if any(p is None for p in parts):
                    raise RuntimeError("the shards of a meta-step yielded different numbers of estimates")
                yield self._combine(parts, params, scale)
        finally:
            for g in gens:
                g.close()

    def _combine(self, parts: list[Estimate], params, scale: float) -> Estimate:
        """Sum the shard estimates of this rank and (in a process group) of all ranks, times ``scale``."""
        like = params[0]
        loss = sum(p.loss.detach().to(torch.float64) for p in parts)
        grads, has = [], []
        for j, prm in enumerate(params):
            gs = [p.grads[j] for p in parts if p.grads[j] is not None]
            grads.append(sum(gs[1:], gs[0]) if gs else torch.zeros_like(prm))
            has.append(float(bool(gs)))
        flags = torch.tensor([*has, float(loss)], dtype=torch.float64)
        if self.dist is not None:
            flags, *grads = self.dist.all_reduce_sum([flags.to(like.device), *grads])
            flags = flags.cpu()
        out = [g * scale if flags[j] > 0 else None for j, g in enumerate(grads)]
        return Estimate(loss=(flags[-1] * scale).to(like.dtype), grads=out, iterations=parts[0].iterations)

    def validate(self) -> float | None:
        if self.val_set is None:
            return None
        return validation_gap(self.solver, self.val_set, self.val_ref, self.cfg.unroll, self.val_exact)

    # ----- checkpoints ---------------------------------------------------------------------------------
    def _generators(self) -> dict[str, torch.Generator]:
        torch_gen = torch.Generator()
        torch_gen.set_state(torch.get_rng_state())
        return {"data": self.g_data, "unroll": self.g_unroll, "torch": torch_gen}

    def _metrics(self, finished: bool) -> dict[str, Any]:
        s, cfg = self.state, self.cfg
        return {
            "solver": self.config.solver, "family": self.config.family, "finished": finished,
            "steps": cfg.steps, "steps_done": s.step, "best_step": s.best_step,
            "initial_val_gap": s.initial_val, "best_val_gap": s.best_val, "final_val_gap": s.last_val,
            "final_loss": self.rows[-1]["loss"] if self.rows else None,
            "rejected_steps": s.rejected, "seconds": s.seconds,
            "seconds_per_step": s.seconds / s.step if s.step else None,
            "val_metric": f"mean relative gap (F(x_K) - F*) / max(|F*|, floor) at K = {cfg.unroll} "
                          f"on {cfg.val_batch} held-out instances",
            "parameters": sum(p.numel() for p in trainable(self.solver)),
        }

    def _checkpoint(self, finished: bool = False) -> None:
        self.dir.write_checkpoint(self.solver, self.best, self.learner.optimizer, self._generators(), self.state,
                                  self.rows, self._metrics(finished))

    def _saved_config(self) -> RunConfig:
        """The run's config.toml, which must equal ours except for ``steps`` and the
        ``[evaluation]`` table (which training does not read)."""
        saved = read_config(self.dir.root)
        ours, theirs = _training_part(self.config), _training_part(saved)
        ours["training"].pop("steps"), theirs["training"].pop("steps")
        if ours != theirs:
            diff = [f"[{t}] {k}" for t in ours for k in sorted(set(ours[t]) | set(theirs[t]))
                    if ours[t].get(k) != theirs[t].get(k)]
            raise ValueError(f"cannot resume: the config differs from the run's config.toml in {', '.join(diff)}")
        return saved

    def _resume(self) -> None:
        saved = self._saved_config()
        tensors, scalars = self.dir.read_checkpoint()
        source = str(self.dir.path("state.safetensors"))
        fields = {f.name for f in dataclasses.fields(TrainingState)}
        self.state = TrainingState(**{k: v for k, v in scalars.items() if k in fields})
        if self.state.step > self.cfg.steps:
            raise ValueError(f"cannot resume: the run has done {self.state.step} steps, "
                             f"more than steps = {self.cfg.steps}")
        model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
        assign_weights(self.solver, model, source)
        own = weights_of(self.solver)
        if set(best) != set(own):
            raise ValueError(f"'{source}' holds best weights that do not fit the model")
        self.best = {k: v.to(device=own[k].device, dtype=own[k].dtype).clone() for k, v in best.items()}
        restore_optimizer(self.learner.optimizer, tensors, scalars.get("optimizer_scalars", {}), source)
        for name, g in (("data", self.g_data), ("unroll", self.g_unroll)):
            if f"rng.{name}" not in tensors:
                raise ValueError(f"'{source}' lacks the generator state rng.{name}")
            g.set_state(tensors[f"rng.{name}"])
        if "rng.torch" in tensors:
            torch.set_rng_state(tensors["rng.torch"])
        self.rows = self.dir.read_log(self.state.step)
        if saved.training.steps != self.cfg.steps or saved.evaluation != self.config.evaluation:
            self.dir.write_config(self.config.to_toml())

    # ----- the loop ------------------------------------------------------------------------------------
    def _say(self, message: str) -> None:
        """Report an event (a rejected step): above the progress bar when one is shown, else
        through ``echo``, else as a ``RuntimeWarning``."""
        if self._bar is not None:
            self._bar.progress.console.print(f"warning: {message}", markup=False, highlight=False)
        elif self.echo is not None:
            self.echo(message)
        else:
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    def _done_steps(self) -> tuple[int | None, bool]:
        """``(steps done, finished)`` of the run in the directory, from its metrics.json
        (``(None, False)`` when it is missing or unreadable: state.safetensors decides)."""
        path = self.dir.path("metrics.json")
        try:
            metrics = read_json(path) if path.exists() else {}
        except (OSError, ValueError):
            return None, False
        done = metrics.get("steps_done") if isinstance(metrics, dict) else None
        return (done if isinstance(done, int) else None), bool(isinstance(metrics, dict) and metrics.get("finished"))

    def _finished_result(self) -> TrainResult | None:
        """The result of a run that is already finished at ``steps``, read back (no training);
        None if its last checkpoint is not at ``steps`` (killed while writing the final one)."""
        tensors, scalars = self.dir.read_checkpoint()
        fields = {f.name for f in dataclasses.fields(TrainingState)}
        s = TrainingState(**{k: v for k, v in scalars.items() if k in fields})
        if s.step != self.cfg.steps:
            return None
        self.state = s
        self.best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
        self.rows = self.dir.read_log(s.step)
        return self._result(resumed_from=s.step, already_finished=True)

    def _result(self, resumed_from: int | None, already_finished: bool = False) -> TrainResult:
        """The ``TrainResult`` of ``self.state``, ``self.rows``, with the best weights loaded."""
        self.solver.eval()
        assign_weights(self.solver, self.best, "best weights")
        s, rows = self.state, self.rows
        return TrainResult(
            directory=self.dir.root, solver=self.solver, steps=s.step, best_step=s.best_step,
            initial_val_gap=s.initial_val, best_val_gap=s.best_val, final_val_gap=s.last_val,
            final_loss=rows[-1]["loss"] if rows else None, rejected=s.rejected, seconds=s.seconds, log=rows,
            resumed_from=resumed_from, already_finished=already_finished,
        )

    def fit(self, resume: bool = False) -> TrainResult:
        """Train (or continue a checkpointed run with ``resume=True``) to ``steps``.

        A run that is already finished at ``steps`` is not trained again: the result is read
        from its directory (``TrainResult.already_finished``). A directory this call created
        is removed again if the call fails before writing anything into it.
        """
        d = self.dist
        if d is None:
            resume, finished = self._check_directory(resume)
            if finished is not None:
                return finished
            with _remove_created_dirs_on_error(self.dir.root):
                self.dir.root.mkdir(parents=True, exist_ok=True)
                return self._fit(resume)
        # a process group: rank 0 alone reads the run directory and tells the others
        error, finished = None, None
        if d.is_main:
            try:
                resume, finished = self._check_directory(resume)
            except Exception as e:  # noqa: BLE001 - every rank must stop, re-raised by agree
                error = e
        d.agree(error)
        flags = d.broadcast_bytes(bytes([int(resume), int(finished is not None)]) if d.is_main else None)
        resume = bool(flags[0])
        if flags[1]:
            self._sync_result()
            return self._result(resumed_from=self.state.step, already_finished=True)
        if not d.is_main:
            return self._fit(resume)
        with _remove_created_dirs_on_error(self.dir.root):
            self.dir.root.mkdir(parents=True, exist_ok=True)
            return self._fit(resume)

    def _check_directory(self, resume: bool) -> tuple[bool, TrainResult | None]:
        """Check the run directory against ``resume``: ``(resume, the result of a run already
        finished at steps or None)`` (a run killed before its first checkpoint restarts)."""
        root = self.dir.root
        if not resume and self.dir.has_run():
            done, finished = self._done_steps()
            try:
                total = read_config(root).training.steps
            except (OSError, ValueError):  # no or a damaged config.toml: the count is unknown
                total = None
            progress = ("" if done is None or total is None
                        else f" ({'finished, ' if finished else ''}{done} of {total} steps done)")
            raise RunDirectoryError(f"'{root}' already holds a run{progress}; pass resume=True to continue it, or "
                                    f"choose another output directory", root, "exists", done, total)
        if resume and not self.dir.path("state.safetensors").exists():
            if not self.dir.path("config.toml").exists():
                raise RunDirectoryError(f"cannot resume: '{root}' has no checkpoint (no run was started there)",
                                        root, "nothing_to_resume")
            self._saved_config()  # killed before its first checkpoint: start it again, same config
            resume = False
        if resume:
            self._saved_config()  # the same run (steps may grow), before any work
            done, finished = self._done_steps()
            if finished and done == self.cfg.steps:
                result = self._finished_result()
                if result is not None:
                    return resume, result
            if done is not None and done > self.cfg.steps:
                raise ValueError(f"cannot resume: the run has done {done} steps, more than steps = {self.cfg.steps}")
        return resume, None

    # ----- a process group: rank 0's state to every rank ---------------------------------------------
    def _sync_start(self) -> None:
        """Every rank takes rank 0's weights, meta-optimizer state and step counters."""
        d = self.dist
        opt_tensors, opt_scalars = optimizer_tensors(self.learner.optimizer)
        tensors = {**{f"model.{k}": v for k, v in weights_of(self.solver).items()}, **opt_tensors}
        payload = _pack(tensors, {"state": dataclasses.asdict(self.state), "optimizer": opt_scalars}) \
            if d.is_main else None
        tensors, meta = _unpack(d.broadcast_bytes(payload))
        if d.is_main:
            return
        self.state = TrainingState(**meta["state"])
        self.rows = []
        assign_weights(self.solver, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, "rank 0")
        restore_optimizer(self.learner.optimizer, {k: v for k, v in tensors.items() if k.startswith("optim.")},
                          meta["optimizer"], "rank 0")
        self.best = {k: v.clone() for k, v in weights_of(self.solver).items()}

    def _sync_result(self) -> None:
        """Every rank takes rank 0's best weights, counters and log (what ``TrainResult`` reports)."""
        d = self.dist
        payload = _pack({f"best.{k}": v for k, v in self.best.items()},
                        {"state": dataclasses.asdict(self.state), "rows": self.rows}) if d.is_main else None
        tensors, meta = _unpack(d.broadcast_bytes(payload))
        if d.is_main:
            return
        self.state = TrainingState(**meta["state"])
        self.rows = meta["rows"]
        own = weights_of(self.solver)
        self.best = {k[5:]: v.to(device=own[k[5:]].device, dtype=own[k[5:]].dtype) for k, v in tensors.items()}

    def _fit(self, resume: bool) -> TrainResult:
        cfg = self.cfg
        resumed_from = None
        main = self.main
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed_torch)
            error = None
            try:
                self._setup_data()
                if resume:
                    if main:
                        self._resume()
                        resumed_from = self.state.step
                        if self.echo is not None:
                            self.echo(f"resuming '{self.dir.root}' from step {resumed_from} of {cfg.steps}")
                elif main:
                    self.dir.write_config(self.config.to_toml())
                    self.rows: list[dict[str, Any]] = []
                    self.state = TrainingState()
                    with as_progress(self.progress).phase("validating the untrained solver"):
                        val = self.validate()
                    self.state.initial_val = self.state.last_val = self.state.best_val = val
                    self.best = {k: v.clone() for k, v in weights_of(self.solver).items()}
                    self._checkpoint()
            except Exception as e:  # noqa: BLE001 - in a process group every rank must stop
                if self.dist is None:
                    raise
                error = e
            if self.dist is not None:
                self.dist.agree(error)
                self._sync_start()
                if resume:
                    resumed_from = self.state.step
            with _tensorboard(self.tensorboard, self.state.step, main) as tb, \
                    _progress(self.progress and main, cfg.steps) as bar:
                self._bar = bar
                try:
                    if bar is not None:
                        bar.start(self.state, self.rows)
                    self._loop(tb, bar)
                finally:
                    self._bar = None
                if main:
                    self._checkpoint(finished=True)
                if tb is not None:
                    _log_final(tb, self.state)
            if self.dist is not None:
                self._sync_result()
        return self._result(resumed_from)

    def _loop(self, tb, bar) -> None:
        cfg, s = self.cfg, self.state
        while s.step < cfg.steps:
            t0 = time.perf_counter()
            lr = lr_at(cfg, s.step)
            self.learner.set_lr(lr)
            horizon = self._horizon(s.step)
            outcome = self.learner.step(self._estimates(s.step, horizon))
            s.step += 1
            if outcome.rejected:
                s.rejected += 1
                if self.main:
                        self._say(f"step {s.step} rejected ({outcome.reason}, loss {outcome.loss:.4g}); "
                              f"restored the last good weights and meta-optimizer state")
            val = None
            if cfg.val_batch and not self.main:
                pass  # rank 0 validates and keeps the best weights
            elif cfg.val_batch and (s.step % cfg.val_every == 0 or s.step == cfg.steps):
                val = self.validate()
                s.last_val = val
                if s.best_val is None or val < s.best_val:
                    s.best_val, s.best_step = val, s.step
                    self.best = {k: v.clone() for k, v in weights_of(self.solver).items()}
            elif not cfg.val_batch:
                s.best_step = s.step
                self.best = {k: v.clone() for k, v in weights_of(self.solver).items()}
            s.seconds += time.perf_counter() - t0
            row = {"step": s.step, "loss": outcome.loss, "val_gap": val, "lr": lr, "seconds": s.seconds,
                   "rejected": int(outcome.rejected), "unroll": horizon, "grad_norm": outcome.grad_norm}
            self.rows.append(row)
            if tb is not None:
                tb.add_scalar("loss", outcome.loss, s.step)
                tb.add_scalar("lr", lr, s.step)
                tb.add_scalar("grad_norm", outcome.grad_norm, s.step)
                tb.add_scalar("rejected_steps", s.rejected, s.step)
                if val is not None:
                    tb.add_scalar("val_gap", val, s.step)
            if self.main and cfg.checkpoint_every and s.step % cfg.checkpoint_every == 0 and s.step < cfg.steps:
                self._checkpoint()
            if bar is not None:
                bar.update(s, row)
            if self.callback is not None:
                self.callback(StepInfo(step=s.step, row=row, trainer=self))


def train(
    config: RunConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = False,
    callback: Callable[[StepInfo], None] | None = None,
    echo: Callable[[str], None] | None = None,
    *,
    device: str | torch.device | None = None,
    tensorboard: str | Path | None = None,
    dist: Distributed | None = None,
) -> TrainResult:
    """Meta-train the learned solver of ``config`` and write the run directory ``out_dir``.

    Args:
        config: a ``RunConfig`` (``load_config(path)`` or ``RunConfig.from_dict``).
        out_dir: the run directory (created; must not hold a run unless ``resume``).
        resume: continue the run checkpointed in ``out_dir`` (the config must match the
            run's config.toml, except ``steps``, which may grow).
        progress: show a rich progress bar (step, loss, validation gap, ETA) on stderr;
            rejected steps are then reported there, otherwise as ``RuntimeWarning``s. The
            set-up before it (the reference optima of the training and validation
            instances) shows its phases when stderr is a terminal.
        callback: called with a ``StepInfo`` after every meta-step.
        echo: where events go as one-line messages when no progress bar shows them
            (rejected steps; default: ``RuntimeWarning``s).
        device: train on this device ("cpu", "cuda", "cuda:1"), in place of ``[training] device``
            (which does not count as a change of config on ``resume``); ``ValueError`` for CUDA
            where ``torch.cuda.is_available()`` is False.
        tensorboard: write TensorBoard scalars to this directory (loss, lr, grad_norm,
            rejected_steps, val_gap per step; final/* at the end); needs the extra
            ``pip install 'l2o[tensorboard]'`` (``ValueError`` without it, before any work).
            Default: no TensorBoard files.
        dist: the process group to train in (default: ``torch.distributed``'s initialized group,
            if any, see ``l2o.training.distributed``); needs ``[training] shards``, a multiple of
            its size. Rank 0 writes the run directory; every rank returns the same result.

    Returns a ``TrainResult`` whose ``solver`` holds the best validation weights
    (``resumed_from``: the step a resumed run continued from; ``already_finished``: a
    finished run that was only read back). Raises ``RunDirectoryError`` (a ``ValueError``)
    when ``out_dir`` holds a run and ``resume`` is False, or holds none and it is True.
    """
    if device is not None:
        config = dataclasses.replace(config, training=dataclasses.replace(config.training, device=str(device)))
    return Trainer(config, out_dir, progress=progress, callback=callback, echo=echo, dist=dist,
                   tensorboard=tensorboard).fit(resume=resume)


def _training_part(config: RunConfig) -> dict:
    """The config without its ``[evaluation]`` table and ``[training] device``, which do not
    change the training (a run directory written with the table's defaults filled in, or
    continued on another device, is the same run)."""
    part = {k: v for k, v in config.to_dict().items() if k != "evaluation"}
    part["training"].pop("device", None)
    return part


def run_status(config: RunConfig, out_dir: str | Path) -> str:
    """What ``out_dir`` holds for ``config``: "new" (no run), "cut_off" (a run of this
    config that did not finish: resume it) or "finished". A run of another config is a
    ``ValueError``, so that nothing there is overwritten."""
    root = Path(out_dir)
    if not (root / "config.toml").exists():
        return "new"
    if _training_part(read_config(root)) != _training_part(config):
        raise ValueError(f"'{root}' holds a different training run; remove it or choose another directory")
    metrics = read_json(root / "metrics.json") if (root / "metrics.json").exists() else {}
    return "finished" if metrics.get("finished") else "cut_off"


def prepare_run(config: RunConfig, out_dir: str | Path, progress: bool = False) -> str:
    """Make ``out_dir`` hold a finished run of ``config``, doing only the work left (see
    ``run_status``): train a new run, resume a cut-off one, reuse a finished one.
    Returns "trained", "resumed" or "reused"; the run's figures (seconds over all
    resumptions, validation gaps, best step) are in its metrics.json."""
    status = run_status(config, out_dir)
    if status == "finished":
        return "reused"
    train(config, out_dir, resume=status == "cut_off", progress=progress)
    return "resumed" if status == "cut_off" else "trained"


@contextlib.contextmanager
def _remove_created_dirs_on_error(root: Path):
    """On an exception, remove ``root`` and the parents that did not exist on entry, if
    they are (still) empty: a failed start leaves no empty run directory behind."""
    created = []
    p = Path(root)
    while not p.exists() and p != p.parent:
        created.append(p)  # deepest first
        p = p.parent
    try:
        yield
    except BaseException:
        for d in created:
            try:
                d.rmdir()
            except OSError:  # not empty (the run wrote files) or gone
                break
        raise


# ----- optional outputs -----------------------------------------------------------------------------


TENSORBOARD_MISSING = ("--tensorboard needs the tensorboard package, which is not installed: "
                       "pip install 'l2o[tensorboard]'")


def _summary_writer_class(required: bool):
    """``torch.utils.tensorboard.SummaryWriter``, or None where it does not import (a
    ``ValueError`` saying how to install it when ``required``)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # not installed (or broken)
        if required:
            raise ValueError(TENSORBOARD_MISSING) from None
        return None
    return SummaryWriter


@contextlib.contextmanager
def _tensorboard(log_dir: Path | None, step: int, enabled: bool = True):
    """A TensorBoard ``SummaryWriter`` on ``log_dir`` (None without a directory or when not
    ``enabled``); a run resumed at step t hides the events a killed session wrote after t
    (``purge_step`` t + 1)."""
    if log_dir is None or not enabled:
        yield None
        return
    cls = _summary_writer_class(required=True)
    writer = cls(log_dir=str(log_dir), purge_step=step + 1 if step else None)  # drop events after the checkpoint
    try:
        yield writer
    finally:
        writer.close()


def _log_final(tb, state: TrainingState) -> None:
    """The run's final figures as scalars at its last step (final/*; gaps where validated)."""
    for tag, value in (("final/val_gap", state.last_val), ("final/best_val_gap", state.best_val),
                       ("final/initial_val_gap", state.initial_val), ("final/best_step", state.best_step),
                       ("final/rejected_steps", state.rejected), ("final/seconds", state.seconds)):
        if value is not None:
            tb.add_scalar(tag, value, state.step)


def _pack(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> bytes:
    """Tensors and JSON metadata as one safetensors byte string (what ranks send each other)."""
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return safetensors.torch.save(cpu, {"meta": json.dumps(meta, allow_nan=True)})


def _unpack(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    return safetensors.torch.load(data), json.loads(header["__metadata__"]["meta"])


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


class _Bar:
    def __init__(self, progress, total: int):
        self.progress = progress
        self.task = progress.add_task("training", total=total, loss="-", val="-")

    def start(self, state: TrainingState, rows) -> None:
        self.progress.update(self.task, completed=state.step, loss=_fmt(rows[-1]["loss"] if rows else None),
                             val=_fmt(state.last_val))

    def update(self, state: TrainingState, row) -> None:
        self.progress.update(self.task, completed=state.step, loss=_fmt(row["loss"]), val=_fmt(state.last_val))


@contextlib.contextmanager
def _progress(enabled: bool, total: int):
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"), TextColumn("val gap {task.fields[val]}"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=Console(stderr=True), transient=False,
    )
    with progress:
        yield _Bar(progress, total)
