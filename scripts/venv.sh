#!/usr/bin/env bash
# Creates (once) the project's Python venv at target/test-venv with numpy + gguf and
# tree-sitter-swift (tests/reference/requirements-ci.txt) and prints its python. Used by test.sh
# and bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/test-venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" 2>/dev/null || { rm -rf "$VENV"; python3 -m venv --without-pip "$VENV"; }
fi
"$VENV/bin/python" -m pip --version >/dev/null 2>&1 || "$VENV/bin/python" -m ensurepip -q
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/reference/requirements-ci.txt >&2
echo "$PWD/$VENV/bin/python"
