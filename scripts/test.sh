#!/usr/bin/env bash
# Set up, start the local services the integration tests need if they are down, then run ruff,
# the import contracts (lint-imports, pyproject.toml) and the whole test suite. Extra arguments
# go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,learn,milvus
bash scripts/services.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports
exec .venv/bin/python -m pytest -q "$@"
