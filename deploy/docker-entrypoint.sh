#!/bin/sh
# Fetch missing models into the cache volume (FACEID_MODEL_DIR) once, then run the command.
# FACEID_FETCH_MODELS=0 skips it (air-gapped hosts with a pre-filled cache or a baked image).
set -eu
if [ "${FACEID_FETCH_MODELS:-1}" != "0" ]; then
    python /opt/faceid/fetch_models.py
fi
exec "$@"
