"""Helpers shared by the benchmark scripts (not part of the library)."""

from __future__ import annotations

import json
import os
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
