"""Settings, read from the environment with the ``FACEID_`` prefix (or a ``.env`` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACEID_", env_file=".env", extra="ignore")

    # Where labelled data and model files live; never copied into the project.
    shared_dir: Path = Field(default=_PROJECT_ROOT.parent / "shared")
    # The model folder, read first; downloads go here when it is set. Empty means
    # ``<shared_dir>/models``, only read (downloads then go to ``<data_dir>/cache/models``).
    model_dir: Path | None = None
    # Where faceid keeps its own state (SQLite file, index snapshots, embedding caches).
    data_dir: Path = Field(default=Path.home() / ".faceid")
    allow_download: bool = True
    # Installed embedding adapters (``faceid learn install``). Empty means ``<data_dir>/adapters``.
    adapter_dir: Path | None = None

    device: str = "cpu"  # "cpu" or "cuda" / "cuda:N"
    detector: str = "dlib-hog+yunet"
    embedder: str = "fused-dlib-mobilefacenet"
    # dlib-resnet-v1 runs through onnxruntime (converted from dlib's weights: same numbers,
    # ~20x less CPU) or through dlib itself.
    dlib_runtime: Literal["onnx", "dlib"] = "onnx"
    workers: int = Field(default=1, ge=1, description="processes used by batch embedding")
    # Which attribute models analyze uses: the published set (pinned in the registry, read from
    # the model folder's attributes/) or the set `faceid train-attributes` wrote to the cache.
    attribute_models: Literal["published", "trained"] = "published"

    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    min_face_size: int = 20
    # Detection runs on the image shrunk to this long side (crops still come from the full
    # image): it bounds the time and memory one image can cost. 0: detect at full size.
    detect_max_side: int = Field(default=2048, ge=0)

    database_url: str | None = None  # default: sqlite file under data_dir
    broker_url: str | None = None  # default: Celery tasks run in-process (eager)
    index_kind: Literal["auto", "flat", "ivf", "hnsw", "ivfpq", "ivfpq-refine"] = "auto"
    index_gpu: bool = False
    # How stale a query node may be: it polls the index_log at most this often (seconds).
    index_poll_interval: float = 0.05
    # find's operating point: the false-positive identification rate it aims at (a collection
    # may set its own), how many gallery faces the open-set calibration searches, and by which
    # factor the gallery may grow or shrink before it is measured again.
    target_fpir: float = Field(default=0.01, gt=0, lt=1)
    open_set_max_searches: int = Field(default=10_000, ge=1)
    open_set_recalibrate_factor: float = Field(default=1.25, gt=1)

    @property
    def resolved_model_dir(self) -> Path:
        return self.model_dir if self.model_dir is not None else self.shared_dir / "models"

    @property
    def resolved_adapter_dir(self) -> Path:
        return self.adapter_dir if self.adapter_dir is not None else self.data_dir / "adapters"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'faceid.sqlite3'}"

    @property
    def lfw_dir(self) -> Path:
        return self.shared_dir / "data" / "lfw"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def model_cache_dir(self) -> Path:
        """faceid's own model files: downloads, conversions, trained heads."""
        return self.cache_dir / "models"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
