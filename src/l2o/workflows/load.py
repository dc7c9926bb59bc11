"""``load_solver``: a trained solver by bundled name or from a training run directory.

``--checkpoint`` of ``l2o solve`` and ``l2o eval`` goes through here, so both take either
form. Resolution order: an existing directory is a run directory (``config.toml``,
``l2o.training.load_run``) or a bundle folder (``solver.json``, ``l2o.pretrained``);
anything else must be the name of a bundled pretrained solver
(``l2o list --pretrained``); otherwise one line says neither was found and lists the
bundled names.

``handover`` wraps a loaded solver so that past its training horizon it hands over to
its family's classical fallback for good (``Safeguard(..., rule="finite",
after_horizon="fallback")``: every finite learned step is taken up to the horizon,
then only the fallback's, as learned_optimization's VeLO prefab never runs its
optimizer past the steps it was meta-trained for). This is what ``l2o solve
--checkpoint`` runs, so a solver trained for K iterations still reaches a tight
tolerance with the fallback's guarantee.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from l2o.evaluation.defaults import default_fallback, trained_horizon
from l2o.pretrained import (
    RECORD,
    WEIGHTS,
    LoadedSolver,
    bundled_names,
    load_bundle,
    load_pretrained,
    looks_like_name,
)
from l2o.registry import make_solver
from l2o.safeguard import Safeguard
from l2o.training import Run, RunConfig, load_run
from l2o.training.checkpoint import CONFIG

#: What ``checkpoint_source`` tells apart.
SOURCES = ("run", "bundle")


def checkpoint_source(name_or_dir: str | os.PathLike[str]) -> tuple[str, Path | str]:
    """``("run", dir)`` for a run directory, ``("bundle", dir)`` for a bundle folder or
    ``("bundle", name)`` for a bundled name; ``ValueError`` when it is none of them.

    >>> checkpoint_source("lfista-lasso_250x500")
    ('bundle', 'lfista-lasso_250x500')
    """
    path = Path(name_or_dir)
    if path.is_dir():
        if (path / RECORD).is_file() and not (path / CONFIG).exists():
            return "bundle", path
        return "run", path
    text = str(name_or_dir)
    names = bundled_names()
    if text in names:
        return "bundle", text
    if not looks_like_name(text):  # a path: the run directory's message
        raise ValueError(f"run directory '{path}' does not exist")
    raise ValueError(f"run directory '{path}' does not exist, and {text!r} is not a bundled pretrained solver either "
                     f"(bundled: {', '.join(names) or 'none'})")


def _load(name_or_dir: str | os.PathLike[str]) -> tuple[Run, dict[str, Any]]:
    """``(Run, metadata)`` of a run directory or a bundle (see ``load_solver``)."""
    kind, where = checkpoint_source(name_or_dir)
    if kind == "run":
        run = load_run(where)
        fallback = default_fallback(run.family)
        return run, {"source": "run", "directory": str(run.directory), "name": run.config.solver,
                     "config": run.config.to_dict(), "metrics": run.metrics, "fallback": fallback}
    loaded = load_pretrained(where) if isinstance(where, str) else load_bundle(where)
    folder = Path(loaded.metadata["directory"])
    try:
        config = RunConfig.from_dict(loaded.metadata["config"])
    except ValueError as e:
        raise ValueError(f"'{folder / RECORD}': its config: {e}") from None
    run = Run(solver=loaded.solver, family=loaded.family, config=config,
              metrics=dict(loaded.metadata.get("figures") or {}), directory=folder, weights=folder / WEIGHTS)
    return run, {**loaded.metadata, "source": "pretrained", "fallback": default_fallback(loaded.family)}


def load_checkpoint(name_or_dir: str | os.PathLike[str]) -> Run:
    """The ``l2o.training.Run`` view of a run directory or of a bundled solver (its
    recorded config read back as a ``RunConfig``, its figures as ``metrics``), for the
    workflows that need the training config (``evaluate_run``, ``load_for_checkpoint``).

    >>> load_checkpoint("lgd-ls_32x25").config.solver
    'lgd'
    """
    return _load(name_or_dir)[0]


def is_bundled(run: Run) -> bool:
    """Whether ``run`` came from a bundle (``load_checkpoint`` of a name or bundle folder)."""
    folder = Path(run.directory)
    return (folder / RECORD).is_file() and not (folder / CONFIG).exists()


def load_solver(name_or_dir: str | os.PathLike[str]) -> LoadedSolver:
    """A trained solver ready to run, from a bundled name or a run directory.

    Returns ``LoadedSolver(solver, family, horizon, metadata)`` (``l2o.pretrained``):
    the learned solver (eval mode, training dtype), the family it was trained on, its
    training horizon, and metadata: for a bundle its solver.json; for a run directory
    ``name``, ``directory``, ``config`` (the resolved config as a table) and ``metrics``;
    both with ``source`` ("pretrained" or "run") and ``fallback``, the classical solver
    that ``handover`` hands over to.

    >>> solver, family, horizon, meta = load_solver("lfista-lasso_250x500")
    >>> solver.name, horizon, meta["source"], meta["fallback"]
    ('lfista', 40, 'pretrained', 'fista_restart')
    """
    run, meta = _load(name_or_dir)
    return LoadedSolver(run.solver, run.family, trained_horizon(run.solver, run.config), meta)


def handover(solver: Any, family: Any, horizon: int, fallback: str | None = None) -> Safeguard:
    """``solver`` for its first ``horizon`` iterations (every finite step taken), then
    the classical ``fallback`` (default: the family's, ``default_fallback``) for good.

    >>> solver, family, horizon, _ = load_solver("lgd-ls_32x25")
    >>> handover(solver, family, horizon).fallback.name
    'fista_restart'
    """
    return Safeguard(solver, make_solver(fallback or default_fallback(family)), rule="finite",
                     after_horizon="fallback", horizon=int(horizon))


__all__ = ["SOURCES", "checkpoint_source", "load_checkpoint", "is_bundled", "load_solver", "handover"]
