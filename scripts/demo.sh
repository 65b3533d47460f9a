#!/usr/bin/env bash
# Set up, then run the main job on the embedded default: enroll a folder of faces (shared LFW by
# default, or --dir DIR/<person>/*.jpg), then find and verify. Extra arguments go to `faceid demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/faceid demo "$@"
