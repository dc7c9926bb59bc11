"""Files: atomic output, and readers whose errors are one line naming the file.

Output: write to a temporary file in the target folder, flush it, then rename. An
existing file is never left half-written, and no temporary file is left behind when
writing fails (the same rule as ``l2o.io.save_npz_atomic``).

Input: ``read_bytes``, ``read_json``, ``read_toml`` and ``read_safetensors`` raise
``ValueError`` naming the file when it is missing, not a regular file, empty,
truncated or corrupt. Nothing is pickled: tensors go through safetensors, everything
else through JSON or TOML.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import safetensors.torch
from torch import Tensor


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


def save_safetensors(path: str | os.PathLike[str], tensors: Mapping[str, Tensor],
                     metadata: Mapping[str, str] | None = None) -> None:
    """Write named tensors (copied to contiguous CPU memory) atomically as safetensors."""
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    atomic_write(path, safetensors.torch.save(flat, metadata=dict(metadata) if metadata else None))


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The content of a non-empty regular file; ``ValueError`` naming it otherwise."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"'{p}' does not exist")
    if not p.is_file():
        raise ValueError(f"'{p}' is not a regular file")
    data = p.read_bytes()
    if not data:
        raise ValueError(f"'{p}' is empty (0 bytes)")
    return data


def read_safetensors(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file.

    Raises ``ValueError`` naming the file when it is missing, empty, truncated or corrupt.
    """
    p = Path(path)
    data = read_bytes(p)
    if len(data) < 8:
        raise ValueError(f"cannot read '{p}': truncated safetensors file ({len(data)} bytes, no header)")
    (n,) = struct.unpack("<Q", data[:8])
    if n == 0 or 8 + n > len(data):
        raise ValueError(f"cannot read '{p}': truncated or corrupt safetensors file "
                         f"(header of {n} bytes, file of {len(data)} bytes)")
    try:
        header = json.loads(data[8:8 + n])
        metadata = header.pop("__metadata__", None) or {}
        end = max((int(v["data_offsets"][1]) for v in header.values()), default=0)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        raise ValueError(f"cannot read '{p}': corrupt safetensors header ({e})") from None
    if 8 + n + end > len(data):
        raise ValueError(f"cannot read '{p}': truncated safetensors file "
                         f"({len(data)} bytes, its header describes {8 + n + end})")
    try:
        tensors = safetensors.torch.load(data)
    except Exception as e:  # safetensors_rust.SafetensorError and friends
        raise ValueError(f"cannot read '{p}': corrupt safetensors file ({' '.join(str(e).split())})") from None
    return tensors, {str(k): str(v) for k, v in metadata.items()}


def read_json(path: str | os.PathLike[str]) -> Any:
    """Parsed JSON; ``ValueError`` naming the file when missing, empty or corrupt."""
    p = Path(path)
    text = read_bytes(p)
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read '{p}': corrupt JSON ({e})") from None


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parsed TOML; ``ValueError`` naming the file when missing, empty or invalid."""
    p = Path(path)
    text = read_bytes(p)
    try:
        return tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read '{p}': invalid TOML ({e})") from None


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """``obj`` as indented strict JSON (non-finite floats become null), atomically."""
    atomic_write(path, json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")


def json_safe(v: Any) -> Any:
    """Non-finite floats become null (strict JSON), in nested dicts, lists and tuples."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    return v
