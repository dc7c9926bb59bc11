"""Run directories: atomic files, resumable training state, and ``load_run``.

A run directory holds::

    config.toml          the resolved run config (every default filled in)
    weights.safetensors  the current weights (at the last checkpoint)
    best.safetensors     the weights with the best validation gap so far
    metrics.json         initial / best / final validation gap, steps done, timing
    log.csv              one row per meta-step: step, loss, val_gap, lr, seconds, rejected, ...
    state.safetensors    everything needed to resume, as named tensors: the model and best
                         weights ("model.*", "best.*"), the meta-optimizer's state
                         ("optim.<param index>.<name>"), the torch generators' states
                         ("rng.<name>", uint8); its metadata carries the scalars as JSON
    state.json           the same scalars as readable JSON (step, best, counters, RNG names)

Every file is written atomically: a temporary file in the same directory, flushed and
fsynced, then ``os.replace``; a failed write leaves the previous file intact and no
temporary file behind. ``state.safetensors`` is written last at a checkpoint and is the
one commit point of a resume: it alone holds every tensor and scalar the resumed run
needs (state.json is its readable mirror). Nothing is pickled: tensors go through
safetensors, everything else through JSON or TOML.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import Tensor, nn

from l2o.training.config import RunConfig
from l2o.utils.files import (
    atomic_write,
    json_safe,
    read_bytes,
    read_json,
    read_safetensors,
    read_toml,
    save_safetensors,
    write_json,
)

CONFIG = "config.toml"
WEIGHTS = "weights.safetensors"
BEST = "best.safetensors"
METRICS = "metrics.json"
LOG = "log.csv"
STATE = "state.safetensors"
STATE_JSON = "state.json"
STATE_FORMAT = "l2o-train-state/1"
LOG_COLUMNS = ("step", "loss", "val_gap", "lr", "seconds", "rejected", "unroll", "grad_norm")


# ----- weights --------------------------------------------------------------------------------------


def weights_of(module: nn.Module) -> dict[str, Tensor]:
    """The module's ``state_dict`` tensors (parameters and buffers)."""
    return {k: v for k, v in module.state_dict().items() if isinstance(v, Tensor)}


def save_weights(path: str | os.PathLike[str], module: nn.Module | Mapping[str, Tensor],
                 metadata: Mapping[str, str] | None = None) -> None:
    tensors = weights_of(module) if isinstance(module, nn.Module) else module
    save_safetensors(path, tensors, metadata)


def load_weights(module: nn.Module, path: str | os.PathLike[str]) -> None:
    """Copy the weights of a safetensors file into ``module`` (in the module's dtype and
    device); ``ValueError`` naming the file for missing, unexpected or misshapen tensors."""
    tensors, _ = read_safetensors(path)
    assign_weights(module, tensors, source=str(path))


def assign_weights(module: nn.Module, tensors: Mapping[str, Tensor], source: str) -> None:
    own = module.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise ValueError(f"weights in '{source}' do not fit the solver {getattr(module, 'name', '?')!r} of the config: "
                         f"missing {missing or 'none'}, unexpected {unexpected or 'none'}")
    for k, v in own.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise ValueError(f"weights in '{source}': {k} has shape {tuple(tensors[k].shape)}, "
                             f"the model expects {tuple(v.shape)}")
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(tensors[k])


# ----- meta-optimizer state ------------------------------------------------------------------------


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Flatten ``optimizer.state_dict()['state']`` into named tensors
    ``optim.<param index>.<key>`` and JSON scalars ``{"<index>.<key>": value}``."""
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, entry in optimizer.state_dict()["state"].items():
        for key, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{idx}.{key}"] = value
            elif value is None or isinstance(value, (bool, int, float, str)):
                scalars[f"{idx}.{key}"] = value
            else:
                raise TypeError(f"cannot checkpoint meta-optimizer state {key!r} of type {type(value).__name__}")
    return tensors, scalars


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: Mapping[str, Tensor],
                      scalars: Mapping[str, Any], source: str) -> None:
    """Inverse of ``optimizer_tensors`` (the param groups come from the live optimizer)."""
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        if name.startswith("optim."):
            idx, key = name[len("optim."):].split(".", 1)
            state.setdefault(int(idx), {})[key] = t
    for name, v in scalars.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = v
    current = optimizer.state_dict()
    n_params = sum(len(g["params"]) for g in current["param_groups"])
    if any(i >= n_params for i in state):
        raise ValueError(f"meta-optimizer state in '{source}' has more parameters than the model ({n_params})")
    try:
        optimizer.load_state_dict({"state": state, "param_groups": current["param_groups"]})
    except (ValueError, KeyError, RuntimeError) as e:
        raise ValueError(f"meta-optimizer state in '{source}' does not fit: {e}") from None


def clone_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """A deep copy of ``optimizer.state_dict()`` (tensors cloned), for in-memory restore."""
    sd = optimizer.state_dict()
    return {
        "state": {i: {k: (v.clone() if isinstance(v, Tensor) else v) for k, v in e.items()}
                  for i, e in sd["state"].items()},
        "param_groups": [dict(g) for g in sd["param_groups"]],
    }


# ----- the run directory ----------------------------------------------------------------------------


@dataclasses.dataclass
class TrainingState:
    """Scalars of a training run between two meta-steps (saved in state.json)."""

    step: int = 0
    best_val: float | None = None
    best_step: int = 0
    initial_val: float | None = None
    last_val: float | None = None
    rejected: int = 0
    seconds: float = 0.0


class RunDirectory:
    """The files of a run directory (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def path(self, name: str) -> Path:
        return self.root / name

    def has_run(self) -> bool:
        return any(self.path(n).exists() for n in (CONFIG, STATE, WEIGHTS, LOG))

    # ----- writing ------------------------------------------------------------------------------
    def write_config(self, toml_text: str) -> None:
        atomic_write(self.path(CONFIG), toml_text)

    def write_log(self, rows: list[dict[str, Any]]) -> None:
        def write(fh: BinaryIO) -> None:
            text = io.StringIO()
            w = csv.DictWriter(text, fieldnames=LOG_COLUMNS, lineterminator="\n")
            w.writeheader()
            for r in rows:
                w.writerow({k: _csv_value(r.get(k)) for k in LOG_COLUMNS})
            fh.write(text.getvalue().encode("utf-8"))

        atomic_write(self.path(LOG), write)

    def write_metrics(self, metrics: Mapping[str, Any]) -> None:
        write_json(self.path(METRICS), dict(metrics))

    def write_checkpoint(
        self,
        model: nn.Module,
        best: Mapping[str, Tensor],
        optimizer: torch.optim.Optimizer,
        generators: Mapping[str, torch.Generator],
        state: TrainingState,
        log_rows: list[dict[str, Any]],
        metrics: Mapping[str, Any],
    ) -> None:
        """Write every file of a checkpoint; ``state.safetensors`` last (the commit point)."""
        meta = {"step": str(state.step)}
        self.write_log(log_rows)
        save_weights(self.path(BEST), best, meta)
        save_weights(self.path(WEIGHTS), model, meta)
        self.write_metrics(metrics)
        opt_tensors, opt_scalars = optimizer_tensors(optimizer)
        scalars = {"format": STATE_FORMAT, **dataclasses.asdict(state), "optimizer_scalars": opt_scalars,
                   "generators": sorted(generators)}
        tensors = {
            **{f"model.{k}": v for k, v in weights_of(model).items()},
            **{f"best.{k}": v for k, v in best.items()},
            **opt_tensors,
            **{f"rng.{k}": g.get_state() for k, g in generators.items()},
        }
        text = json.dumps(json_safe(scalars), allow_nan=False)
        write_json(self.path(STATE_JSON), scalars)
        save_safetensors(self.path(STATE), tensors, {"format": STATE_FORMAT, "state_json": text})

    # ----- reading ------------------------------------------------------------------------------
    def read_checkpoint(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """``(tensors, scalars)`` of state.safetensors (ValueError naming a bad file)."""
        path = self.path(STATE)
        tensors, meta = read_safetensors(path)
        if meta.get("format") != STATE_FORMAT or "state_json" not in meta:
            raise ValueError(f"'{path}' is not an l2o training state (format {meta.get('format')!r}, "
                             f"expected {STATE_FORMAT!r})")
        try:
            scalars = json.loads(meta["state_json"])
        except ValueError as e:
            raise ValueError(f"cannot read '{path}': corrupt state metadata ({e})") from None
        # state.json is the readable mirror; the safetensors copy wins if a crash separated them
        mirror = self.path(STATE_JSON)
        if mirror.exists():
            read_json(mirror)  # corrupt -> ValueError naming the file
        return tensors, scalars

    def read_log(self, up_to_step: int) -> list[dict[str, Any]]:
        """The log rows with step <= ``up_to_step`` (later rows belong to lost steps)."""
        path = self.path(LOG)
        text = read_bytes(path).decode("utf-8")
        rows = []
        try:
            for r in csv.DictReader(io.StringIO(text)):
                row = {k: _parse_csv_value(k, r.get(k, "")) for k in LOG_COLUMNS}
                if row["step"] is not None and row["step"] <= up_to_step:
                    rows.append(row)
        except (ValueError, csv.Error) as e:
            raise ValueError(f"cannot read '{path}': corrupt CSV ({e})") from None
        if len(rows) != up_to_step:
            raise ValueError(f"'{path}' has {len(rows)} rows up to step {up_to_step}; expected {up_to_step}")
        return rows


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float):
        return repr(v)
    return v


def _parse_csv_value(key: str, s: str | None) -> Any:
    if s is None or s == "":
        return None
    if key in ("step", "rejected", "unroll"):
        return int(s)
    return float(s)


# ----- loading a finished (or interrupted) run -------------------------------------------------------


@dataclasses.dataclass
class Run:
    """A trained run read back from its directory.

    Attributes:
        solver: the learned solver with the chosen weights, in the config's dtype, eval mode.
        family: the problem family it was trained on.
        config: the resolved ``RunConfig``.
        metrics: metrics.json (empty if the run never reached a checkpoint that wrote it).
        directory: the run directory.
        weights: which file the weights came from.
    """

    solver: nn.Module
    family: Any
    config: Any
    metrics: dict[str, Any]
    directory: Path
    weights: Path


def read_config(directory: str | os.PathLike[str]):
    """The resolved ``RunConfig`` of a run directory."""
    path = Path(directory) / CONFIG
    data = read_toml(path)
    try:
        return RunConfig.from_dict(data)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def load_run(directory: str | os.PathLike[str], which: str = "best") -> Run:
    """Load a run directory written by ``l2o.training.train`` / ``l2o train``.

    Args:
        which: "best" (best validation, the default) or "last" (weights.safetensors).

    Raises ``ValueError`` naming the file for a missing, empty, truncated or corrupt
    config, weights or metrics file, and for weights that do not fit the config's model.
    """
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last', got {which!r}")
    root = Path(directory)
    if not root.is_dir():
        raise ValueError(f"run directory '{root}' does not exist")
    config = read_config(root)
    family = config.make_family()
    dtype = config.training.torch_dtype
    solver = config.make_solver(family, dtype)
    solver.to(dtype=dtype)
    path = root / (BEST if which == "best" else WEIGHTS)
    load_weights(solver, path)
    solver.eval()
    metrics_path = root / METRICS
    metrics = read_json(metrics_path) if metrics_path.exists() else {}
    if not isinstance(metrics, dict):
        raise ValueError(f"cannot read '{metrics_path}': expected a JSON object")
    return Run(solver=solver, family=family, config=config, metrics=metrics, directory=root, weights=path)
