"""``l2o.utils.files``: atomic writes and readers whose errors are one line naming the file."""

from __future__ import annotations

import os

import pytest
import torch

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


def test_atomic_write_accepts_bytes_text_and_a_writer_and_keeps_the_mode(tmp_path):
    p = tmp_path / "out.txt"
    assert atomic_write(p, b"bytes") == p and p.read_bytes() == b"bytes"
    atomic_write(p, "texte \u00e9\n")
    assert p.read_text(encoding="utf-8") == "texte \u00e9\n"
    os.chmod(p, 0o640)
    atomic_write(p, lambda fh: fh.write("by a function"), binary=False)
    assert p.read_text() == "by a function" and (p.stat().st_mode & 0o777) == 0o640
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_write_failures_leave_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "keep.bin"
    atomic_write(p, b"old")

    def fail(fh):
        fh.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(p, fail)
    assert p.read_bytes() == b"old" and os.listdir(tmp_path) == ["keep.bin"]
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "missing" / "x", b"")
    with pytest.raises(IsADirectoryError):
        atomic_write(tmp_path, b"")


@pytest.mark.parametrize("reader", [read_bytes, read_json, read_toml, read_safetensors])
def test_readers_name_a_missing_a_directory_or_an_empty_file(tmp_path, reader):
    with pytest.raises(ValueError, match=r"^'.*nope' does not exist$"):
        reader(tmp_path / "nope")
    with pytest.raises(ValueError, match=r"is not a regular file$"):
        reader(tmp_path)
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError, match=r"'.*empty' is empty \(0 bytes\)$"):
        reader(tmp_path / "empty")


def test_json_round_trip_is_strict_and_corrupt_json_is_one_line(tmp_path):
    p = tmp_path / "m.json"
    write_json(p, {"a": 1.5, "bad": float("nan"), "rows": (1, float("inf"))})
    assert read_json(p) == {"a": 1.5, "bad": None, "rows": [1, None]}
    assert json_safe([{"x": float("-inf")}]) == [{"x": None}]
    p.write_text('{"a": ')
    with pytest.raises(ValueError, match=r"cannot read '.*m.json': corrupt JSON") as e:
        read_json(p)
    assert "\n" not in str(e.value)


def test_read_toml(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('[problem]\nfamily = "lasso"\n')
    assert read_toml(p) == {"problem": {"family": "lasso"}}
    p.write_text("[problem\n")
    with pytest.raises(ValueError, match=r"cannot read '.*c.toml': invalid TOML"):
        read_toml(p)


def test_safetensors_round_trip_and_truncation(tmp_path):
    p = tmp_path / "w.safetensors"
    save_safetensors(p, {"w": torch.arange(6.0).reshape(2, 3)[:, 1:]}, {"format": "x"})  # non-contiguous view
    tensors, meta = read_safetensors(p)
    assert torch.equal(tensors["w"], torch.tensor([[1.0, 2.0], [4.0, 5.0]])) and meta == {"format": "x"}
    data = p.read_bytes()
    p.write_bytes(data[:5])
    with pytest.raises(ValueError, match="truncated safetensors file"):
        read_safetensors(p)
    p.write_bytes(data[:-4])
    with pytest.raises(ValueError, match="truncated safetensors file"):
        read_safetensors(p)
