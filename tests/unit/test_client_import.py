"""The HTTP client stays light: importing it loads no model runtime, index or server code."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "cv2",
    "dlib",
    "faiss",
    "onnxruntime",
    "sqlalchemy",
    "fastapi",
    "identity_service.api.app",
    "identity_service.pipeline",
    "identity_service.service.facade",
)


def _loaded_after(statement: str) -> list[str]:
    code = f"{statement}; import json, sys; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(out.stdout.splitlines()[-1])


def test_client_import_is_light():
    loaded = set(_loaded_after("import identity_service.client"))
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_package_names_still_import_lazily():
    import identity_service

    loaded = _loaded_after("from identity_service import FacePipeline, FaceService, Match")
    assert {"identity_service.pipeline", "identity_service.service.facade"} <= set(loaded)
    assert set(identity_service.__all__) <= set(dir(identity_service))
    from identity_service import Settings, get_settings

    assert get_settings().__class__ is Settings
