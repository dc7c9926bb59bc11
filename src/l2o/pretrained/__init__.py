"""Bundled pretrained solvers: learned solvers trained once and installed with l2o.

Each bundle is ``l2o/pretrained/<method>-<preset>/`` with ``solver.json`` (what the
solver is, the family and horizon it was trained for, the config and command that
trained it, the sha256 of its weights, the figures measured when it was made) and
``weights.safetensors``, shipped as package data, so nothing is fetched
(learned_optimization keeps each pretrained optimizer's config beside its weights; the
pinned hash is what PyLO's hub keys lack). ``benchmarks/train_pretrained.py`` rebuilds
every bundle from its recorded config.

    from l2o.pretrained import list_pretrained, load_pretrained
    for e in list_pretrained():                # reads solver.json only
        print(e.name, e.method, e.family, e.horizon, e.figure)
    solver, family, horizon, meta = load_pretrained("lfista-lasso_250x500")
    problem = family.sample(8, 0)              # fresh instances of its family
    result = l2o.solve(solver, problem, tol=1e-6)

``l2o.load_solver(name_or_dir)`` (``l2o.workflows.load``) takes a bundled name or a
training run directory and adds the hand-over to the family's fallback past the horizon.
"""

from l2o.pretrained.bundle import (
    BUNDLE_ROOT,
    RECORD,
    RECORD_FORMAT,
    WEIGHTS,
    PretrainedEntry,
    bundled_names,
    list_pretrained,
    looks_like_name,
    read_record,
    sha256_hex,
    write_bundle,
)
from l2o.pretrained.load import LoadedSolver, load_bundle, load_pretrained

__all__ = [
    "list_pretrained", "load_pretrained", "load_bundle", "LoadedSolver", "PretrainedEntry", "bundled_names",
    "read_record", "sha256_hex", "looks_like_name", "write_bundle", "BUNDLE_ROOT", "RECORD", "RECORD_FORMAT", "WEIGHTS",
]
