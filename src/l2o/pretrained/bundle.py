"""The files of a bundled pretrained solver, and the catalogue read from them.

A bundle is a folder ``<root>/<name>/`` (``root`` is this package's folder for the
solvers installed with l2o) holding two files:

    solver.json          what the solver is and how it was made (``RECORD_FORMAT``): the
                         registry name and constructor arguments of the solver, the family
                         (preset and overrides) it was trained on, its training horizon,
                         the l2o version, the sha256 of the weights, the full training
                         config and the command that trained it, and the figures measured
                         on fresh instances when it was made
    weights.safetensors  the weights (``state_dict`` tensors), nothing pickled

``solver.json`` is written last (``write_bundle``), so it is the commit point of a
bundle: the sha256 it records is checked against the weights at every load
(``l2o.pretrained.load``), which refuses a mismatch. The catalogue (``list_pretrained``)
reads the JSON files only: no weights are read and no model is built.

Names are ``<method>-<preset>`` (``lfista-lasso_250x500``), as learned_optimization names
its pretrained optimizers by run and keeps the config beside the weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from l2o.utils.files import atomic_write, json_safe, read_bytes, save_safetensors

#: The ``format`` field of every solver.json this version reads and writes.
RECORD_FORMAT = "l2o-pretrained/1"
RECORD = "solver.json"
WEIGHTS = "weights.safetensors"
#: The folder of the solvers installed with l2o (package data, see pyproject.toml).
BUNDLE_ROOT = Path(__file__).resolve().parent
#: Keys every solver.json holds.
REQUIRED = ("format", "name", "solver", "family", "horizon", "l2o_version", "weights", "config", "command",
            "figures")
_NAME = re.compile(r"^[a-z0-9_]+-[a-z0-9_]+$")


def check_name(name: str) -> str:
    """``name`` if it has the form ``<method>-<preset>`` (lower-case letters, digits and
    underscores on both sides of one hyphen); ``ValueError`` otherwise.

    >>> check_name("lfista-lasso_250x500")
    'lfista-lasso_250x500'
    """
    if not looks_like_name(name):
        raise ValueError(f"pretrained solver name {name!r} is not of the form <method>-<preset> "
                         f"(lower-case letters, digits, underscores), e.g. 'lfista-lasso_250x500'")
    return name


def looks_like_name(text: str) -> bool:
    """Whether ``text`` has the form of a bundle name (``check_name`` would accept it).

    >>> looks_like_name("lgd-ls_32x25"), looks_like_name("runs/lgd")
    (True, False)
    """
    return isinstance(text, str) and bool(_NAME.match(text))


def sha256_hex(data: bytes) -> str:
    """The sha256 of ``data`` as 64 hex digits.

    >>> sha256_hex(b"")[:16]
    'e3b0c44298fc1c14'
    """
    return hashlib.sha256(data).hexdigest()


def bundled_names(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Sorted names of the bundles under ``root`` (default ``BUNDLE_ROOT``): the folders
    that hold a solver.json.

    >>> "lfista-lasso_250x500" in bundled_names()
    True
    """
    base = BUNDLE_ROOT if root is None else Path(root)
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and (p / RECORD).is_file())


def read_record(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed solver.json of a bundle folder, checked for its format and keys;
    ``ValueError`` naming the file otherwise.

    >>> read_record(BUNDLE_ROOT / "lfista-lasso_250x500")["solver"]["name"]
    'lfista'
    """
    path = Path(directory) / RECORD
    data = read_bytes(path)  # missing or empty: ValueError naming the file
    try:
        record = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read '{path}': corrupt JSON ({e})") from None
    if not isinstance(record, dict):
        raise ValueError(f"cannot read '{path}': expected a JSON object")
    if record.get("format") != RECORD_FORMAT:
        raise ValueError(f"'{path}' has format {record.get('format')!r}; this l2o reads {RECORD_FORMAT!r}")
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise ValueError(f"'{path}' lacks {', '.join(missing)}; a solver.json holds {', '.join(REQUIRED)}")
    return record


@dataclasses.dataclass(frozen=True)
class PretrainedEntry:
    """One line of the catalogue: the bundle's ``name``, the learned ``method`` (registry
    name), the ``family`` it was trained on (preset, with overrides in brackets), its
    training ``horizon``, one measured ``figure`` (text) and its ``directory``."""

    name: str
    method: str
    family: str
    horizon: int
    figure: str
    directory: Path


def family_label(family: Mapping[str, Any]) -> str:
    """``preset`` or ``preset[key=value,...]`` for a solver.json ``family`` table.

    >>> family_label({"preset": "lasso_250x500", "overrides": {"lam": 0.05}})
    'lasso_250x500[lam=0.05]'
    """
    over = family.get("overrides") or {}
    inner = ",".join(f"{k}={v}" for k, v in over.items())
    return f"{family['preset']}[{inner}]" if inner else str(family["preset"])


def entry_of(record: Mapping[str, Any], directory: Path) -> PretrainedEntry:
    """The catalogue line of a parsed solver.json."""
    figures = record.get("figures") or {}
    return PretrainedEntry(name=str(record["name"]), method=str(record["solver"]["name"]),
                           family=family_label(record["family"]), horizon=int(record["horizon"]),
                           figure=str(figures.get("headline", "-")), directory=directory)


def list_pretrained(root: str | os.PathLike[str] | None = None) -> list[PretrainedEntry]:
    """The bundled pretrained solvers, one ``PretrainedEntry`` each, sorted by name.
    Reads the solver.json files only (no weights, no model).

    >>> [e.method for e in list_pretrained() if e.name == "lgd-ls_32x25"]
    ['lgd']
    """
    base = BUNDLE_ROOT if root is None else Path(root)
    return [entry_of(read_record(base / name), base / name) for name in bundled_names(base)]


def write_bundle(root: str | os.PathLike[str], name: str, tensors: Mapping[str, Any],
                 record: Mapping[str, Any]) -> Path:
    """Write the bundle ``root/name``: the weights first, then solver.json (the commit
    point) with the weights' sha256 and size filled in; each file atomically. Returns
    the folder. ``record`` is the solver.json content less ``format``, ``name`` and
    ``weights`` (set here); it must be JSON (non-finite floats become null).
    """
    check_name(name)
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS
    # one metadata key: safetensors writes a map's keys in no fixed order, and the same
    # tensors must give the same bytes (the same sha256) when a bundle is rebuilt
    save_safetensors(weights, tensors, {"format": RECORD_FORMAT})
    data = read_bytes(weights)
    full = {"format": RECORD_FORMAT, "name": name, **dict(record),
            "weights": {"file": WEIGHTS, "sha256": sha256_hex(data), "bytes": len(data)}}
    missing = [k for k in REQUIRED if k not in full]
    if missing:
        raise ValueError(f"record of {name!r} lacks {', '.join(missing)}")
    atomic_write(folder / RECORD, json.dumps(json_safe(full), indent=1, allow_nan=False) + "\n")
    return folder


__all__ = [
    "RECORD_FORMAT", "RECORD", "WEIGHTS", "BUNDLE_ROOT", "REQUIRED", "PretrainedEntry", "check_name", "looks_like_name",
    "sha256_hex",
    "bundled_names", "read_record", "family_label", "entry_of", "list_pretrained", "write_bundle",
]
