"""The package's import graph: one-way layers, no cycles, no hidden imports.

The layers themselves are an import-linter ``layers`` contract in ``pyproject.toml``
(run by the README's test command as ``lint-imports``); these tests check, from the
source alone and without import-linter, what that contract cannot express:

* no two modules import each other, directly or through a longer cycle;
* imports of l2o's own modules inside functions (which hide arrows from readers and
  tools) are allowed only where listed below, each for an optional dependency.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src"

#: In-function imports of l2o's own modules that are allowed: (module, imported module).
#: Each must be for an optional or heavy dependency and carry a comment at the import.
ALLOWED_LOCAL_IMPORTS: set[tuple[str, str]] = set()


def _modules() -> dict[str, pathlib.Path]:
    mods = {}
    for path in (SRC / "l2o").rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    return mods


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str | None:
    if node.level == 0:
        return node.module
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(mods: dict[str, pathlib.Path]) -> tuple[dict[str, set[str]], list[tuple[str, str, int]]]:
    """Module -> l2o modules it imports at module level; and the in-function imports."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    hidden: list[tuple[str, str, int]] = []
    for mod, path in mods.items():
        tree = ast.parse(path.read_text())
        top_level = {id(n) for n in tree.body}
        for stmt in tree.body:  # imports under `if TYPE_CHECKING:` count as top level
            if isinstance(stmt, ast.If):
                top_level |= {id(n) for n in stmt.body}
            if isinstance(stmt, ast.Try):
                top_level |= {id(n) for n in stmt.body}
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = _resolve(node, mod, path.name == "__init__.py")
                if base and (base == "l2o" or base.startswith("l2o.")):
                    targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("l2o")]
            for target in targets:
                while target not in mods and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target == mod or target not in mods:
                    continue
                if id(node) in top_level:
                    edges[mod].add(target)
                else:
                    hidden.append((mod, target, node.lineno))
    return edges, hidden


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def _without_package_inits(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """Drop edges into and out of package ``__init__`` re-export modules (``l2o``, ``l2o.x``):
    a package that re-exports its submodules is not a cycle with them."""
    mods = _modules()
    packages = {m for m, p in mods.items() if p.name == "__init__.py"}
    return {a: {b for b in bs if b not in packages} for a, bs in edges.items() if a not in packages}


def test_no_import_cycles_between_modules():
    edges, _ = _imports(_modules())
    assert _cycles(_without_package_inits(edges)) == []


def test_no_import_cycles_between_packages():
    edges, _ = _imports(_modules())
    top = lambda m: ".".join(m.split(".")[:2])  # noqa: E731
    packages: dict[str, set[str]] = {}
    for a, bs in edges.items():
        for b in bs:
            if top(a) != top(b) and top(a) != "l2o" and top(b) != "l2o":
                packages.setdefault(top(a), set()).add(top(b))
    assert _cycles(packages) == []


def test_no_hidden_imports_of_own_modules():
    _, hidden = _imports(_modules())
    unexpected = [f"{m}:{line} imports {t}" for m, t, line in hidden if (m, t) not in ALLOWED_LOCAL_IMPORTS]
    assert unexpected == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_import_contract_holds():
    """import-linter's layers contract of pyproject.toml (skipped where it is not installed)."""
    lint = pathlib.Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    root = SRC.parent
    proc = subprocess.run([str(lint), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
