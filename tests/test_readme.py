"""The README's Python examples run, so that they cannot rot.

Every ```python block of README.md is executed on its own (a fresh namespace, in a
temporary working directory). A block that cannot run as written (it stands for the
user's own objects, say a trained solver) is marked in README.md by an HTML comment on
the line just before its fence, invisible in the rendered page:

    <!-- not run by tests/test_readme.py: uses a trained solver -->

or by a first line ``# not run: <reason>`` inside the block; it is then reported as
skipped, with the reason. The only change made to a block before it runs: batches
larger than ``MAX_BATCH`` (``.sample(1000, ...)``) are sampled at ``MAX_BATCH``, so the
test takes seconds; the API it exercises is the same.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
MAX_BATCH = 64
_FENCE = re.compile(r"^\s*```\s*([\w+-]*)\s*$")
_SKIP_COMMENT = re.compile(r"^\s*<!--\s*not run by tests/test_readme\.py:?\s*(.*?)\s*-->\s*$")
_SKIP_LINE = re.compile(r"^\s*#\s*not run:?\s*(.*)$")
_SAMPLE = re.compile(r"(\.sample\(\s*)(\d[\d_]*)")


@dataclasses.dataclass(frozen=True)
class Block:
    """A fenced code block: the README line of its first code line, its code, and the
    reason it is not run (None: it runs)."""

    line: int
    code: str
    skip: str | None


def python_blocks(text: str) -> list[Block]:
    """The ```python blocks of a Markdown text, with their skip markers."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        lang, start = m.group(1).lower(), i + 1
        end = start
        while end < len(lines) and not _FENCE.match(lines[end]):
            end += 1
        if end == len(lines):
            raise ValueError(f"README.md:{i + 1}: code block is never closed")
        if lang in ("python", "py"):
            body = lines[start:end]
            prev = lines[i - 1] if i > 0 else ""
            skip = None
            if (c := _SKIP_COMMENT.match(prev)) is not None:
                skip = c.group(1) or "marked as not runnable"
            elif body and (c := _SKIP_LINE.match(body[0])) is not None:
                skip = c.group(1) or "marked as not runnable"
            blocks.append(Block(line=start + 1, code="\n".join(body) + "\n", skip=skip))
        i = end + 1
    return blocks


def shrink_batches(code: str, limit: int = MAX_BATCH) -> str:
    """``.sample(N, ...)`` with N > ``limit`` becomes ``.sample(limit, ...)``."""
    return _SAMPLE.sub(lambda m: m.group(1) + str(min(int(m.group(2).replace("_", "")), limit)), code)


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_runnable_python_blocks():
    assert [b for b in BLOCKS if b.skip is None], "no runnable ```python block found in README.md"


@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{b.line}" for b in BLOCKS])
def test_readme_python_block_runs(block: Block, tmp_path, monkeypatch):
    if block.skip is not None:
        pytest.skip(f"README.md:{block.line}: {block.skip}")
    monkeypatch.chdir(tmp_path)
    code = compile(shrink_batches(block.code), f"README.md:{block.line}", "exec")
    exec(code, {"__name__": "__readme__"})


# ----- the parser itself ------------------------------------------------------------------------
SAMPLE = """\
text
```python
x = 1
```
```bash
not python
```
<!-- not run by tests/test_readme.py: needs a trained solver -->
```python
solver.step()
```
```python
# not run: illustrative
y = undefined
```
"""


def test_python_blocks_finds_python_fences_and_their_skip_markers():
    blocks = python_blocks(SAMPLE)
    assert [(b.line, b.code, b.skip) for b in blocks] == [
        (3, "x = 1\n", None),
        (10, "solver.step()\n", "needs a trained solver"),
        (13, "# not run: illustrative\ny = undefined\n", "illustrative"),
    ]
    with pytest.raises(ValueError, match="never closed"):
        python_blocks("```python\nx = 1\n")


def test_shrink_batches_caps_large_batches_only():
    code = "f.sample(1000, generator=0)\ng.sample(8)\nh.sample(10_000)\n"
    assert shrink_batches(code) == f"f.sample({MAX_BATCH}, generator=0)\ng.sample(8)\nh.sample({MAX_BATCH})\n"
