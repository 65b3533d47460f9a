from __future__ import annotations

from pathlib import Path

import pytest

from identity_service.config import get_settings


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    path = get_settings().lfw_dir
    if not (path / "pairs.txt").is_file():
        pytest.fail(
            f"shared LFW data not found at {path}: put shared/ beside the checkout "
            "or set FACEID_SHARED_DIR"
        )
    return path


@pytest.fixture(scope="session")
def lfw_image(lfw_dir: Path):
    def image(name: str, number: int) -> Path:
        return lfw_dir / "images" / name / f"{name}_{number:04d}.jpg"

    return image


@pytest.fixture(scope="session")
def pipeline():
    from identity_service import FacePipeline

    return FacePipeline()
