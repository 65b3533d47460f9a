"""Settings, read from the environment with the ``FACEID_`` prefix (or a ``.env`` file).

One :class:`Settings` holds the core settings and four groups, each a pydantic-settings class of
its own that reads its own variables, so every variable keeps its name:

- ``settings.models`` (:class:`ModelSettings`): which models run, where their files are, on what
  device: ``FACEID_MODEL_DIR``, ``FACEID_EMBEDDER``, ``FACEID_DEVICE``, ...
- ``settings.index`` (:class:`IndexSettings`): how a gallery is searched and where ``find``
  decides: ``FACEID_INDEX_KIND``, ``FACEID_INDEX_POLL_INTERVAL``, ``FACEID_TARGET_FPIR``, ...
- ``settings.jobs`` (:class:`JobSettings`): the broker and the job tasks: ``FACEID_BROKER_URL``
  (unset: tasks run in-process), ``FACEID_VISIBILITY_TIMEOUT``, ``FACEID_JOB_STALL_SECONDS``, ...
- ``settings.api`` (:class:`ApiSettings`): the HTTP server: ``FACEID_API_AUTH``, ...

Build one in code with the groups you change, e.g.
``Settings(data_dir=d, api=ApiSettings(auth=False))``; a group left out reads the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


class _Section(BaseSettings):
    """Settings or one of its groups. A group field whose variable lies outside the group's
    prefix names it in ``validation_alias``; in code it is still set by its field name. A keyword
    that names no setting is an error (the environment and .env may hold any others)."""

    model_config = SettingsConfigDict(env_prefix="FACEID_", env_file=".env", extra="ignore")

    def __init__(self, **values: Any) -> None:
        fields = type(self).model_fields
        unknown = sorted(k for k in values if k not in fields and not k.startswith("_"))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no setting {', '.join(unknown)}")
        aliased = {
            (
                alias if k in fields and isinstance(alias := fields[k].validation_alias, str) else k
            ): v
            for k, v in values.items()
        }
        super().__init__(**aliased)


class ModelSettings(_Section):
    """Which models run and on what (``FACEID_`` + the field name)."""

    # The model folder, read first; downloads go here when it is set. Empty means
    # ``<shared_dir>/models``, only read (downloads then go to ``<data_dir>/cache/models``).
    model_dir: Path | None = None
    allow_download: bool = True
    # Installed embedding adapters (``faceid learn install``). Empty means ``<data_dir>/adapters``.
    adapter_dir: Path | None = None
    device: str = "cpu"  # "cpu" or "cuda" / "cuda:N"
    detector: str = "dlib-hog+yunet"
    embedder: str = "fused-dlib-mobilefacenet"
    # dlib-resnet-v1 runs through onnxruntime (converted from dlib's weights: same numbers,
    # ~20x less CPU) or through dlib itself.
    dlib_runtime: Literal["onnx", "dlib"] = "onnx"
    # Which attribute models analyze uses: the published set (pinned in the registry, read from
    # the model folder's attributes/) or the set `faceid train-attributes` wrote to the cache.
    attribute_models: Literal["published", "trained"] = "published"


class IndexSettings(_Section):
    """The gallery index (``FACEID_INDEX_`` + the field name) and find's open-set operating point
    (``FACEID_TARGET_FPIR``, ``FACEID_OPEN_SET_*``)."""

    model_config = SettingsConfigDict(env_prefix="FACEID_INDEX_")

    kind: Literal["auto", "flat", "ivf", "hnsw", "ivfpq", "ivfpq-refine"] = "auto"
    gpu: bool = False
    # Where galleries live: "faiss" (an index in each process, kind and gpu above) or
    # "milvus://host:port[/db][?options]", one Milvus collection per faceid collection that
    # every node shares (identity_service/index/milvus.py; docs/operations.md).
    vector_store: str = Field(
        default="faiss",
        pattern=r"^(faiss|milvus://\S+)$",
        validation_alias="FACEID_VECTOR_STORE",
    )
    # How stale a query node may be: it polls the index_log at most this often (seconds).
    poll_interval: float = 0.05
    # find's operating point: the false-positive identification rate it aims at (a collection
    # may set its own), how many gallery faces the open-set calibration searches, and by which
    # factor the gallery may grow or shrink before it is measured again.
    target_fpir: float = Field(default=0.01, gt=0, lt=1, validation_alias="FACEID_TARGET_FPIR")
    open_set_max_searches: int = Field(
        default=10_000, ge=1, validation_alias="FACEID_OPEN_SET_MAX_SEARCHES"
    )
    open_set_recalibrate_factor: float = Field(
        default=1.25, gt=1, validation_alias="FACEID_OPEN_SET_RECALIBRATE_FACTOR"
    )


class JobSettings(_Section):
    """The job system (``FACEID_`` + the field name, ``FACEID_JOB_*`` for the watchdog)."""

    broker_url: str | None = None  # default: Celery tasks run in-process (eager)
    result_backend: str | None = None  # default: the broker when it is Redis
    # Queue of the enrollment batches: "cpu", or "gpu" where GPU workers consume it.
    embed_queue: str = "cpu"
    # Redis redelivers a message its worker never acknowledged (killed) after this long; it
    # must exceed the longest task, or a slow task is run a second time meanwhile.
    visibility_timeout: float = Field(default=600.0, gt=0)
    # A running task whose worker stopped its heartbeat this long ago, or every unfinished
    # task when no job anywhere showed activity this long: sent again (see jobs/recovery.py).
    stall_seconds: float = Field(default=60.0, gt=0, validation_alias="FACEID_JOB_STALL_SECONDS")
    # How often each worker beats the heart of its tasks and checks for stalled jobs; keep it
    # well below stall_seconds.
    sweep_interval: float = Field(default=5.0, gt=0, validation_alias="FACEID_JOB_SWEEP_INTERVAL")
    task_max_retries: int = Field(default=6, ge=0)

    @property
    def eager(self) -> bool:
        """No broker: tasks run in the calling process (the embedded default)."""
        return not self.broker_url


class ApiSettings(_Section):
    """The HTTP API (``FACEID_API_`` + the field name)."""

    model_config = SettingsConfigDict(env_prefix="FACEID_API_")

    # Default true: a server refuses requests without a valid API key.
    auth: bool = True
    # Whole request bodies; one image is also held to max_image_bytes by imaging.
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    max_k: int = Field(default=100, ge=1)
    # Images in one enroll request (bigger imports go through enroll jobs).
    max_batch: int = Field(default=16, ge=1)
    # Default false: no request may name a file on the server.
    allow_server_paths: bool = False
    # The folders server-side paths must lie under (JSON list); "{tenant}" in one stands for the
    # requesting tenant, so each tenant reads only its own tree. None configured: none accepted.
    server_path_roots: list[str] = Field(default_factory=list)
    # Load models and indexes at startup, before /readyz says ready.
    preload: bool = True
    # /metrics needs no key: it shows each collection's index size only when this is on (an
    # operator's opt-in for a private scrape), otherwise the total of every loaded index.
    metrics_per_collection: bool = False
    # FAISS threads per query. Requests already run in parallel, and OpenMP's fork/join on a
    # busy machine costs more than it saves: measured 8 ms vs 0.01 ms for a 1-face index and
    # 39 vs 3.5 ms at 100k faces with 2 threads vs 1 on a 2-vCPU host. 0: FAISS's default.
    search_threads: int = Field(default=1, ge=0)
    # Tenant of requests when auth is off (a request may name another in X-FaceID-Tenant).
    default_tenant: str = "default"
    # find's probe images are decoded, detected and embedded in this many worker processes
    # (None: one per core; 0: in the request's thread, unqueued, as before the pool).
    model_workers: int | None = Field(default=None, ge=0)
    # Probes waiting for a busy model worker before find sheds with 503 + Retry-After (None: 0,
    # only what an idle worker takes at once, or batch_max_faces per worker when batch_wait_ms
    # is set). It bounds the latency of what is accepted.
    queue_max: int | None = Field(default=None, ge=0)
    # Micro-batches through the embedder: at most this many probes, waiting at most this long
    # for a batch to fill (0 on a CPU node: batch what queued meanwhile; 2-5 ms on a GPU node).
    batch_max_faces: int = Field(default=8, ge=1)
    batch_wait_ms: float = Field(default=0.0, ge=0, le=1000)
    # The model workers' niceness (added to the server's). Admitting, shedding, embedding probes
    # and health checks are cheap and latency-bound; model work is neither, so on a busy node
    # the server process gets a core before a model worker does. 0: the same priority.
    model_nice: int = Field(default=10, ge=0, le=19)


class Settings(_Section):
    # The core: where data and state live, the database, and the limits on one image and on
    # the processes of a batch. Every layer reads these and no one subsystem owns them, so they
    # belong to no group; a group is what one subsystem alone reads (models, index, jobs, api).

    # Where labelled data and model files live; never copied into the project.
    shared_dir: Path = Field(default=_PROJECT_ROOT.parent / "shared")
    # Where faceid keeps its own state (SQLite file, index snapshots, embedding caches).
    data_dir: Path = Field(default=Path.home() / ".faceid")
    database_url: str | None = None  # default: sqlite file under data_dir
    workers: int = Field(default=1, ge=1, description="processes used by batch embedding")

    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    min_face_size: int = 20
    # Detection runs on the image shrunk to this long side (crops still come from the full
    # image): it bounds the time and memory one image can cost. 0: detect at full size.
    detect_max_side: int = Field(default=2048, ge=0)

    models: ModelSettings = Field(default_factory=ModelSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

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

    # The model folders join a models setting to a core folder, so they are answered here.
    @property
    def resolved_model_dir(self) -> Path:
        folder = self.models.model_dir
        return folder if folder is not None else self.shared_dir / "models"

    @property
    def resolved_adapter_dir(self) -> Path:
        folder = self.models.adapter_dir
        return folder if folder is not None else self.data_dir / "adapters"

    @property
    def model_cache_dir(self) -> Path:
        """faceid's own model files: downloads, conversions, trained heads."""
        return self.cache_dir / "models"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
