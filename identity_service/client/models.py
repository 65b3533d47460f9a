"""What the client hands back. Matches and enrollment results are the service's own value
objects (:mod:`identity_service.types`)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeElapsedColumn

from ..types import EnrollResult, ImageFailure, Match, Matches, OperatingPoint
from .calls import AsyncExecutor

T = TypeVar("T")
ANALYSIS_ACTIONS = ("age", "gender", "emotion", "race")
FINISHED = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class Collection:
    name: str
    tenant: str
    model: str
    model_version: str
    dim: int
    metric: str
    threshold: float | None
    created: str
    identities: int | None = None
    faces: int | None = None


@dataclass(frozen=True)
class Identity:
    external_id: str
    name: str | None
    metadata: dict[str, Any]
    created: str
    faces: int | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    offset: int
    limit: int
    total: int


@dataclass(frozen=True)
class Analysis:
    """One face's attributes; each is ``{"value": ..., "scores": {...}}`` as the API sends it."""

    index: int
    box: list[float]
    face_source: str
    age: dict[str, Any] | None = None
    gender: dict[str, Any] | None = None
    emotion: dict[str, Any] | None = None
    race: dict[str, Any] | None = None
    detection_score: float | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Analysis:
        return cls(
            index=d["index"],
            box=d["box"],
            face_source=d.get("face_source", "detected"),
            age=d.get("age"),
            gender=d.get("gender"),
            emotion=d.get("emotion"),
            race=d.get("race"),
            detection_score=d.get("detection_score"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The API's JSON for this face (attributes not asked for are left out)."""
        out: dict[str, Any] = {
            "index": self.index,
            "box": self.box,
            "detection_score": self.detection_score,
            "face_source": self.face_source,
        }
        for name in ANALYSIS_ACTIONS:
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        return out


@dataclass(frozen=True)
class FaceInfo:
    index: int
    box: list[float]
    landmarks: list[list[float]]
    score: float
    model: str
    detector: str
    embedding: np.ndarray | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FaceInfo:
        emb = d.get("embedding")
        return cls(
            index=d["index"],
            box=d["box"],
            landmarks=d["landmarks"],
            score=d["score"],
            model=d["model"],
            detector=d["detector"],
            embedding=None if emb is None else np.asarray(emb, dtype=np.float32),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "box": self.box,
            "landmarks": self.landmarks,
            "score": self.score,
            "model": self.model,
            "detector": self.detector,
        }
        if self.embedding is not None:
            out["embedding"] = [float(v) for v in self.embedding]
        return out


@dataclass(frozen=True)
class Verification:
    verified: bool
    distance: float
    similarity: float
    threshold: float
    threshold_source: str
    model: str
    faces: list[FaceInfo]
    identity: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verification:
        return cls(
            verified=d["verified"],
            distance=d["distance"],
            similarity=d["similarity"],
            threshold=d["threshold"],
            threshold_source=d.get("threshold_source", ""),
            model=d["model"],
            faces=[FaceInfo.from_dict(f) for f in d.get("faces", [])],
            identity=d.get("identity"),
            timings_ms=d.get("timings_ms", {}),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "verified": self.verified,
            "distance": self.distance,
            "similarity": self.similarity,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "model": self.model,
            "faces": [f.to_dict() for f in self.faces],
            "timings_ms": self.timings_ms,
        }
        if self.identity is not None:
            out["identity"] = self.identity
        return out


class JobClient(Protocol):
    """What a job polls: a FaceIDClient (``job`` returns a Job), or an AsyncFaceIDClient (an
    :class:`~.calls.AsyncExecutor`, whose ``job`` returns a coroutine of one)."""

    def job(self, job_id: str) -> Any: ...


@dataclass
class Job:
    """A server-side job; ``wait()`` polls it until it finishes (``await wait_async()`` for a
    job of an AsyncFaceIDClient)."""

    id: str
    kind: str
    status: str
    progress: float
    counts: dict[str, Any]
    errors: int
    params: dict[str, Any]
    created: str
    started: str | None = None
    finished: str | None = None
    seconds: float | None = None
    error_samples: list[Any] = field(default_factory=list)
    _client: JobClient | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any], client: JobClient | None = None) -> Job:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known, _client=client)

    def to_dict(self) -> dict[str, Any]:
        """The job's summary as the API sends it, without the error samples."""
        skip = {"_client", "error_samples"}
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in skip}

    @property
    def done(self) -> bool:
        return self.status in FINISHED

    def refresh(self) -> Job:
        client = self._bound_client()
        if isinstance(client, AsyncExecutor):
            raise TypeError("job of an AsyncFaceIDClient: use await job.refresh_async()")
        return self._update(client.job(self.id))

    async def refresh_async(self) -> Job:
        client = self._bound_client()
        if not isinstance(client, AsyncExecutor):
            raise TypeError("job of a sync client: use job.refresh()")
        return self._update(await client.job(self.id))

    def wait(
        self,
        progress: bool = False,
        timeout: float | None = None,
        poll: float = 0.5,
        on_update: Callable[[Job], None] | None = None,
    ) -> Job:
        """Poll until the job finishes (TimeoutError after ``timeout`` s); ``progress`` draws
        a bar on stderr."""
        with _Watch(self, progress, timeout, on_update) as watch:
            while not watch.finished():
                time.sleep(poll)
                self.refresh()
        return self

    async def wait_async(
        self,
        progress: bool = False,
        timeout: float | None = None,
        poll: float = 0.5,
        on_update: Callable[[Job], None] | None = None,
    ) -> Job:
        """:meth:`wait` for a job of an AsyncFaceIDClient."""
        with _Watch(self, progress, timeout, on_update) as watch:
            while not watch.finished():
                await asyncio.sleep(poll)
                await self.refresh_async()
        return self

    def _bound_client(self) -> JobClient:
        assert self._client is not None, "job not bound to a client"
        return self._client

    def _update(self, fresh: Job) -> Job:
        self.__dict__.update({k: v for k, v in fresh.__dict__.items() if k != "_client"})
        return self


class _Watch:
    """What ``wait`` does between polls: the bar, ``on_update``, the deadline."""

    def __init__(
        self,
        job: Job,
        progress: bool,
        timeout: float | None,
        on_update: Callable[[Job], None] | None,
    ) -> None:
        self.job, self.timeout, self.on_update = job, timeout, on_update
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.bar = _Bar(job.kind) if progress else None

    def finished(self) -> bool:
        """Whether the job is done; TimeoutError once past the deadline."""
        if self.bar is not None:
            self.bar.show(self.job)
        if self.on_update is not None:
            self.on_update(self.job)
        if self.job.done:
            return True
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TimeoutError(f"job {self.job.id} still {self.job.status} after {self.timeout} s")
        return False

    def __enter__(self) -> _Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


class _Bar:
    def __init__(self, label: str) -> None:
        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=Console(file=sys.stderr),
            transient=True,
        )
        self._task = self._progress.add_task(label, total=1.0)
        self._progress.start()

    def show(self, job: Job) -> None:
        self._progress.update(
            self._task, completed=job.progress, description=f"{job.kind} {job.status}"
        )

    def close(self) -> None:
        self._progress.stop()


def match_from_dict(d: dict[str, Any]) -> Match:
    return Match(**{k: d[k] for k in Match.__dataclass_fields__})


def enroll_result_from_dict(d: dict[str, Any]) -> EnrollResult:
    return EnrollResult(
        external_id=d["external_id"],
        identity_id=d["identity_id"],
        face_ids=list(d.get("face_ids", [])),
        duplicates=d.get("duplicates", 0),
        multi_face_images=d.get("multi_face_images", 0),
        failures=[ImageFailure(**f) for f in d.get("failures", [])],
    )


__all__ = [
    "Collection",
    "EnrollResult",
    "FaceInfo",
    "Identity",
    "ImageFailure",
    "Job",
    "Match",
    "Matches",
    "OperatingPoint",
    "Page",
    "Verification",
]
