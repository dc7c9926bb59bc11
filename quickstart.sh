#!/usr/bin/env bash
# Set up l2o in ./.venv (idempotent) and run the demo or the test suite.
#
#   bash quickstart.sh demo [ARGS...]   # set up, then `l2o demo ARGS...`
#   bash quickstart.sh test [ARGS...]   # set up, then ruff, the import contract and the tests (pytest ARGS...)
#
# torch is installed first and pinned to 2.13.0: that CPU wheel lies on this
# machine's disk; any other torch (or an unpinned one) downloads a CUDA build.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=.venv

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.l2o-installed"
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet torch==2.13.0
    "$VENV/bin/python" -m pip install --quiet -e ".[test]"
    touch "$STAMP"
fi

cmd=${1:-demo}
shift || true
case "$cmd" in
    demo) exec "$VENV/bin/l2o" demo "$@" ;;
    test)
        # the linter and the layer contract (tests/test_import_graph.py runs it too), then the tests
        "$VENV/bin/ruff" check src tests benchmarks
        "$VENV/bin/lint-imports" --no-cache
        exec "$VENV/bin/python" -m pytest -n 2 -q "$@" ;;
    *) echo "usage: bash quickstart.sh {demo|test} [ARGS...]" >&2; exit 2 ;;
esac
