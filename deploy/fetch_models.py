"""Fetch the configured models into the model cache (FACEID_MODEL_DIR), verifying sha256.

Run by the container entrypoint at first start (the cache is a volume, so later starts find
the files) and by ``docker build --build-arg BAKE_MODELS=1`` to bake them into the image.
Files that ship in PyPI packages (dlib's) are found there; files with no public URL (bring
your own, e.g. ArcFace) are reported, not fatal, unless the configured models need them.
"""

from __future__ import annotations

import sys

from identity_service.config import Settings
from identity_service.errors import FaceIDError
from identity_service.models import MODELS
from identity_service.models.registry import get_model, resolve_file


def wanted(settings: Settings) -> list[str]:
    names = [*settings.models.detector.split("+"), settings.models.embedder]
    return [n for n in names if n in MODELS]


def main() -> int:
    settings = Settings()
    settings.resolved_model_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in wanted(settings):
        for file in get_model(name).files:
            try:
                path = resolve_file(file, settings)
                print(f"model {name}: {file.filename} at {path}")
            except FaceIDError as exc:
                failed += 1
                print(f"model {name}: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
