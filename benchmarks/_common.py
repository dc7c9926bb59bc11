"""Helpers shared by the benchmark scripts (not part of the library)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from l2o.utils.files import atomic_write


def write_results(folder: str | os.PathLike[str], stem: str, data: Any, markdown: str) -> tuple[Path, Path]:
    """A benchmark's results: ``folder/stem.json`` (``data`` as indented JSON; values JSON
    cannot hold are written with ``str``) and ``folder/stem.md``, each atomically; the
    folder is created if needed. Returns both paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    return (atomic_write(out / f"{stem}.json", json.dumps(data, indent=1, default=str) + "\n"),
            atomic_write(out / f"{stem}.md", text))


@contextlib.contextmanager
def results_lock(folder: str | os.PathLike[str]) -> Iterator[None]:
    """An exclusive lock on a results ``folder`` (flock on the directory itself, where POSIX
    has it; created if needed), so that benchmark runs that read, merge and write the same
    results file at once merge rather than overwrite each other."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
