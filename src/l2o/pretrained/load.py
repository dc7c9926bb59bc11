"""Loading a bundled pretrained solver: the sha256 of its weights checked, its family
and its model rebuilt from the recorded training config, its weights copied in.

``load_pretrained(name)`` returns a ``LoadedSolver`` ``(solver, family, horizon,
metadata)``: the learned solver in eval mode in its training dtype, the problem family
it was trained on, the number of learned iterations it was trained for, and the
solver.json record. Past its horizon a learned solver keeps its own recurrence;
``l2o.workflows.load.handover`` wraps it so that it hands over to its family's
classical fallback there (what ``l2o solve --checkpoint NAME`` runs).

Nothing is pickled: the weights are safetensors, everything else JSON. The model is
rebuilt the way ``l2o.training.RunConfig.make_solver`` builds it (the registry's class
with the recorded constructor arguments; a solver tied to the problem data, LISTA or
ALISTA, gets the family), so a bundle and a run directory trained from the same config
load the same solver.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import safetensors.torch
import torch
from torch import Tensor, nn

from l2o.pretrained.bundle import BUNDLE_ROOT, WEIGHTS, bundled_names, read_record, sha256_hex
from l2o.problems.family import ProblemFamily
from l2o.registry import LEARNED, make_family
from l2o.utils.files import read_bytes

#: The training dtypes a bundle may record.
DTYPES = {"float32": torch.float32, "float64": torch.float64}


class LoadedSolver(NamedTuple):
    """A trained solver ready to run, with what it was trained for.

    Attributes:
        solver: the learned solver (an ``l2o.learned`` ``nn.Module`` with the
            ``init``/``step`` protocol), weights loaded, eval mode, in its training dtype.
        family: the ``ProblemFamily`` it was trained on (``family.sample(B, seed)``
            draws fresh instances).
        horizon: the learned iterations it was trained for (the unroll).
        metadata: the bundle's solver.json (plus ``directory``), or for a run directory
            what ``l2o.workflows.load.load_solver`` records.
    """

    solver: Any
    family: ProblemFamily
    horizon: int
    metadata: dict[str, Any]


def _tuples(value: Any) -> Any:
    """JSON arrays back to tuples (constructor arguments and family fields are tuples)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def family_from_config(config: Mapping[str, Any]) -> ProblemFamily:
    """The family of a recorded training config's ``problem`` table (a family or preset
    name and its fields), as ``l2o.training.RunConfig.make_family`` builds it.

    >>> family_from_config({"problem": {"family": "ls_32x25"}}).d
    32
    """
    problem = dict(config["problem"])
    name = problem.pop("family")
    return make_family(name, **{k: _tuples(v) for k, v in problem.items()})


def solver_from_config(config: Mapping[str, Any], family: ProblemFamily) -> nn.Module:
    """A fresh (untrained) learned solver from a recorded training config's ``solver``
    table, in the ``training`` table's dtype: the registry's class with the recorded
    arguments; ``A`` (the shared dictionary of LISTA / ALISTA) and ``family`` (IAIDNN's
    sizes) are the family and
    ``dtype`` the training dtype, as ``RunConfig.make_solver`` passes them.

    >>> solver_from_config({"solver": {"name": "lgd", "hidden": 8}, "training": {"dtype": "float32"}},
    ...                    family_from_config({"problem": {"family": "ls_32x25"}})).horizon
    100
    """
    table = dict(config["solver"])
    name = table.pop("name")
    if name not in LEARNED:
        raise ValueError(f"the recorded solver {name!r} is not a learned solver of this l2o; "
                         f"learned solvers: {', '.join(sorted(LEARNED))}")
    dtype_name = (config.get("training") or {}).get("dtype", "float32")
    if dtype_name not in DTYPES:
        raise ValueError(f"the recorded training dtype {dtype_name!r} is not one of {', '.join(DTYPES)}")
    dtype = DTYPES[dtype_name]
    factory = LEARNED[name].factory
    accepted = inspect.signature(factory).parameters
    kwargs = {k: _tuples(v) for k, v in table.items()}
    if "A" in accepted:
        kwargs["A"] = family
    if "family" in accepted:  # IAIDNN: the problem sizes
        kwargs["family"] = family
    if "dtype" in accepted:
        kwargs["dtype"] = dtype
    return factory(**kwargs).to(dtype=dtype)


def assign_weights(module: nn.Module, tensors: Mapping[str, Tensor], source: str) -> None:
    """Copy ``tensors`` into ``module``'s ``state_dict`` (in the module's dtype); one-line
    ``ValueError`` naming ``source`` for missing, unexpected or misshapen tensors."""
    own = module.state_dict()
    missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    if missing or unexpected:
        raise ValueError(f"weights in '{source}' do not fit the {type(module).__name__} of its solver.json: "
                         f"missing {missing or 'none'}, unexpected {unexpected or 'none'}")
    for k, v in own.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise ValueError(f"weights in '{source}': {k} has shape {tuple(tensors[k].shape)}, "
                             f"the model expects {tuple(v.shape)}")
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(tensors[k])


def verified_weights(directory: Path, record: Mapping[str, Any], name: str) -> dict[str, Tensor]:
    """The bundle's weights, read once and checked against the sha256 that solver.json
    records (the bytes checked are the bytes loaded); ``ValueError`` on a mismatch."""
    path = directory / WEIGHTS
    want = str((record.get("weights") or {}).get("sha256", ""))
    data = read_bytes(path)
    got = sha256_hex(data)
    if got != want:
        raise ValueError(f"pretrained solver {name!r}: '{path}' has sha256 {got[:16]}..., its solver.json records "
                         f"{want[:16] or 'none'}...; the weights are corrupted or were changed (reinstall l2o, or "
                         f"rebuild the bundle with benchmarks/train_pretrained.py)")
    try:
        return safetensors.torch.load(data)
    except Exception as e:  # safetensors_rust.SafetensorError: only for a file that matches a bad hash
        raise ValueError(f"cannot read '{path}': corrupt safetensors file ({' '.join(str(e).split())})") from None


def load_bundle(directory: str | os.PathLike[str]) -> LoadedSolver:
    """Load the bundle in ``directory`` (a folder with solver.json and
    weights.safetensors), checking the weights' sha256; see ``load_pretrained``."""
    folder = Path(directory)
    record = read_record(folder)
    name = str(record["name"])
    tensors = verified_weights(folder, record, name)
    config = record["config"]
    family = family_from_config(config)
    solver = solver_from_config(config, family)
    assign_weights(solver, tensors, source=str(folder / WEIGHTS))
    solver.eval()
    horizon = int(record["horizon"])
    own = getattr(solver, "horizon", horizon)
    if int(own) != horizon:
        raise ValueError(f"'{folder / 'solver.json'}' records horizon {horizon}, but its solver has horizon {own}")
    return LoadedSolver(solver=solver, family=family, horizon=horizon, metadata={**record, "directory": str(folder)})


def load_pretrained(name: str, root: str | os.PathLike[str] | None = None) -> LoadedSolver:
    """A bundled pretrained solver by name, ready to run.

    Args:
        name: ``<method>-<preset>``, one of ``l2o.pretrained.list_pretrained()``.
        root: the folder of the bundles (default: the ones installed with l2o).

    Returns:
        ``LoadedSolver(solver, family, horizon, metadata)``.

    Raises:
        ValueError: an unknown name (the message lists the bundled ones); weights whose
            sha256 differs from the one solver.json records; an unreadable bundle.

    >>> solver, family, horizon, meta = load_pretrained("lgd-ls_32x25")
    >>> solver.name, family.d, horizon, meta["l2o_version"] is not None
    ('lgd', 32, 100, True)
    """
    base = BUNDLE_ROOT if root is None else Path(root)
    names = bundled_names(base)
    if name not in names:
        raise ValueError(f"unknown pretrained solver {name!r}; bundled: {', '.join(names) or 'none'}")
    return load_bundle(base / name)


__all__ = ["LoadedSolver", "load_pretrained", "load_bundle", "family_from_config", "solver_from_config",
           "assign_weights", "verified_weights", "DTYPES"]
