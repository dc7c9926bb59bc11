"""Atomic file output: write to a temporary file in the target folder, then rename.

An existing file is never left half-written, and no temporary file is left behind
when writing fails (the same rule as ``l2o.io.save_npz_atomic``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable


def new_file_mode(p: Path) -> int:
    """The mode of the file being replaced, else 0666 less the umask."""
    try:
        return p.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[IO[Any]], None] | bytes | str, binary: bool = True
) -> Path:
    """Write to a temporary file next to ``path``, flush it to disk and rename it to ``path``.

    ``write`` is a function called with the open file, or the content itself (bytes,
    or text written as UTF-8). Raises ``OSError`` for a missing folder or a directory path.
    """
    if not callable(write):
        content = write.encode("utf-8") if isinstance(write, str) else bytes(write)
        write, binary = (lambda fh: fh.write(content)), True
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(p))
    if not folder.is_dir():
        raise FileNotFoundError(2, "No such file or directory", str(folder))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", newline="", encoding="utf-8")) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, new_file_mode(p))  # mkstemp makes 0600; keep the usual permissions
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return p


def write_results(folder: str | os.PathLike[str], stem: str, data: Any, markdown: str) -> tuple[Path, Path]:
    """A benchmark's results: ``folder/stem.json`` (``data`` as indented JSON; values JSON
    cannot hold are written with ``str``) and ``folder/stem.md``, each atomically; the
    folder is created if needed. Returns both paths."""
    import json

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    text = markdown if markdown.endswith("\n") else markdown + "\n"
    return (atomic_write(out / f"{stem}.json", json.dumps(data, indent=1, default=str) + "\n"),
            atomic_write(out / f"{stem}.md", text))
