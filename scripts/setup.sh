#!/usr/bin/env bash
# Create .venv and install faceid with the given extras (idempotent). Usage: setup.sh [extras]
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
spec="."
if [ -n "$extras" ]; then spec=".[$extras]"; fi
.venv/bin/python -m pip install -q -e "$spec" 2>&1 | grep -v "is ignored: it is neither" || true
.venv/bin/python -c "import identity_service" # fail loudly if the install did not work
