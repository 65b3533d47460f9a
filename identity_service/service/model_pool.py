"""Detection and embedding off the request path: a bounded pool of worker processes, fed by a
dispatcher that micro-batches concurrent probes and sheds what it cannot take.

The HTTP API hands each probe image (bytes) to :meth:`ModelPool.submit` and awaits the future.
A probe waits in one bounded queue; when it is full, ``submit`` raises
:class:`~identity_service.errors.OverloadedError` at once (503 with Retry-After), so a
saturated server sheds load in milliseconds instead of queueing it. A dispatcher thread sends a
batch to a worker process whenever one is idle: up to ``max_batch`` probes of one model, at most
its fair share of the queue (the queue split over all workers, so a CPU node keeps its cores
busy on small batches), after waiting up to ``max_wait_ms`` for the batch to fill (0 on a CPU
node; a few ms lets a GPU node batch). The worker decodes and detects each image and embeds the
whole batch's faces in one call of the embedder.

Each worker process loads its own models (spawned, not forked: the server has threads) on the
configured device, with ``cpu_count / workers`` threads for the embedder, at a lower CPU
priority than the server (``api.model_nice``): on a saturated node, admitting and shedding get
a core before model work does. A worker that dies fails its batch with a 503 and the pool
starts again. The embedded/library path (``FaceService.find``) does not use the pool.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from ..config import Settings
from ..errors import FaceIDError, NoFaceError, OverloadedError
from ..imaging import load_image
from ..pipeline import FacePipeline
from ..types import Face

log = logging.getLogger(__name__)


@dataclass
class Embedded:
    """The centre-most face of a probe, and where its time went (ms): ``decode``, ``queue``
    (submitted until a worker began it, with the hand-over), ``model`` (detection + the
    batch's embedding)."""

    face: Face
    timings: dict[str, float]
    batch: int  # probes in the batch it was embedded with


@dataclass
class _Job:
    model: str
    image: bytes
    future: Future[Embedded]
    queued: float  # time.monotonic(): the same clock in every process of one host


@dataclass
class PoolStats:
    workers: int
    queue_max: int
    shed: int = 0
    batches: int = 0
    probes: int = 0
    largest_batch: int = 0
    restarts: int = 0
    sizes: dict[int, int] = field(default_factory=dict)  # batch size -> batches


class ModelPool:
    def __init__(
        self,
        settings: Settings,
        *,
        workers: int | None = None,
        max_batch: int = 8,
        max_wait_ms: float = 0.0,
        queue_max: int | None = None,
    ) -> None:
        self.workers = max(1, workers or cores())
        self.max_batch = max(1, max_batch)
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        # Probes that may wait for a busy worker. By default none on a CPU node (a probe is taken
        # only when a worker is idle: accepted latency is the model's, not a queue's), and a
        # batch per worker where batches wait to fill (a GPU node).
        default = self.max_batch * self.workers if self.max_wait > 0 else 0
        self.queue_max = max(0, queue_max if queue_max is not None else default)
        # The embedder sizes its threads by ``workers``: the pool's processes share the cores.
        self._settings = settings.model_copy(update={"workers": self.workers})
        self._pending: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._idle = self.workers
        self._closed = False
        self.stats = PoolStats(self.workers, self.queue_max)
        self._executor = self._new_executor()
        self._thread = threading.Thread(
            target=self._dispatch, name="faceid-model-pool", daemon=True
        )
        self._thread.start()

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self._settings,),
        )

    # -- callers ------------------------------------------------------------------------------
    def submit(self, model: str, image: bytes) -> Future[Embedded]:
        """Queue one probe image for ``model``; OverloadedError when the queue is full."""
        future: Future[Embedded] = Future()
        with self._cond:
            if self._closed:
                raise OverloadedError("the server is shutting down; retry on another node")
            if len(self._pending) >= self.queue_max + self._idle:
                self.stats.shed += 1
                raise OverloadedError(
                    f"the server is at capacity ({self.queue_max} probes queued for "
                    f"{self.workers} model workers); retry shortly",
                    queued=len(self._pending),
                )
            self._pending.append(_Job(model, bytes(image), future, time.monotonic()))
            self._cond.notify_all()
        return future

    def warm(self, models: Iterable[str] = (), timeout: float = 600.0) -> None:
        """Start every worker process and load ``models`` in each (a worker loads a model on
        its first probe otherwise). Call before serving."""
        wanted = tuple(dict.fromkeys(models))
        seen: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(seen) < self.workers and time.monotonic() < deadline:
            futures = [self._executor.submit(_ping, wanted) for _ in range(self.workers)]
            seen.update(f.result(timeout=max(1.0, deadline - time.monotonic())) for f in futures)

    def depth(self) -> int:
        with self._cond:
            return len(self._pending)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            pending = list(self._pending)
            self._pending.clear()
            self._cond.notify_all()
        for job in pending:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(OverloadedError("the server is shutting down"))
        self._thread.join(timeout=10)
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ModelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the dispatcher thread ----------------------------------------------------------------
    def _dispatch(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._pending or self._idle == 0):
                    self._cond.wait()
                if self._closed:
                    return
                self._wait_to_fill()
                batch = self._take()
                if not batch:
                    continue
                self._idle -= 1
                executor = self._executor
            self._send(executor, batch)

    def _wait_to_fill(self) -> None:
        """Give a batch up to ``max_wait`` from its first probe's arrival to fill (locked)."""
        if self.max_wait <= 0 or not self._pending:
            return
        deadline = self._pending[0].queued + self.max_wait
        while not self._closed and len(self._pending) < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._cond.wait(left)

    def _take(self) -> list[_Job]:
        """The next batch: probes of the first one's model, at most ``max_batch`` and at most
        this worker's share of the queue (locked). Cancelled probes are dropped."""
        if not self._pending:
            return []
        share = -(-len(self._pending) // self.workers)
        size = min(self.max_batch, share if self.max_wait <= 0 else len(self._pending))
        model = self._pending[0].model
        batch: list[_Job] = []
        keep: deque[_Job] = deque()
        while self._pending:
            job = self._pending.popleft()
            if len(batch) < size and job.model == model:
                if job.future.set_running_or_notify_cancel():
                    batch.append(job)
            else:
                keep.append(job)
        self._pending = keep
        return batch

    def _send(self, executor: ProcessPoolExecutor, batch: list[_Job]) -> None:
        try:
            done = executor.submit(_run_batch, [(job.model, job.image) for job in batch])
        except Exception as exc:  # the executor broke or shut down between batches
            self._finished(executor, batch, exc)
            return
        done.add_done_callback(lambda f: self._finished(executor, batch, f))

    def _finished(
        self,
        executor: ProcessPoolExecutor,
        batch: list[_Job],
        done: Future[Any] | BaseException,
    ) -> None:
        error = done if isinstance(done, BaseException) else done.exception()
        with self._cond:
            self._idle += 1
            self.stats.batches += 1
            self.stats.probes += len(batch)
            self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
            self.stats.sizes[len(batch)] = self.stats.sizes.get(len(batch), 0) + 1
            broken = isinstance(error, BrokenProcessPool) and executor is self._executor
            if broken and not self._closed:
                log.error("a model worker died; starting the pool again")
                self.stats.restarts += 1
                self._executor = self._new_executor()
                executor.shutdown(wait=False, cancel_futures=True)
            self._cond.notify_all()
        if error is not None:
            if isinstance(error, BrokenProcessPool):
                error = OverloadedError("a model worker stopped; retry shortly")
            for job in batch:
                job.future.set_exception(error)
            return
        assert not isinstance(done, BaseException)
        results, started = done.result()
        for job, (outcome, timings) in zip(batch, results, strict=True):
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                timings["queue"] = round((started - job.queued) * 1000.0, 2)
                job.future.set_result(Embedded(outcome, timings, len(batch)))


# -- in the worker processes ------------------------------------------------------------------
_SETTINGS: Settings | None = None
_PIPELINES: dict[str, FacePipeline] = {}


def cores() -> int:
    """The cores this process may run on (its affinity; not a container's CPU quota)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _init_worker(settings: Settings) -> None:
    global _SETTINGS
    _SETTINGS = settings
    if settings.api.model_nice and hasattr(os, "nice"):
        os.nice(settings.api.model_nice)
    try:
        import cv2

        cv2.setNumThreads(max(1, cores() // max(1, settings.workers)))
    except ImportError:  # pragma: no cover - opencv is a dependency
        pass


def _pipeline(model: str) -> FacePipeline:
    pipeline = _PIPELINES.get(model)
    if pipeline is None:
        assert _SETTINGS is not None, "model worker not initialised"
        pipeline = _PIPELINES[model] = FacePipeline(embedder=model, settings=_SETTINGS)
    return pipeline


def _ping(models: tuple[str, ...]) -> int:
    for model in models:
        _pipeline(model)
    return os.getpid()


def _ms(start: float) -> float:
    return round((time.monotonic() - start) * 1000.0, 2)


def _run_batch(items: list[tuple[str, bytes]]) -> tuple[list[tuple[Any, dict[str, float]]], float]:
    """Decode and detect each probe, then embed the faces of each model in one call. Returns
    (per probe: its centre-most Face or the FaceIDError it raised, and its timings; the time
    the batch began)."""
    started = time.monotonic()
    assert _SETTINGS is not None, "model worker not initialised"
    limits = {"max_bytes": _SETTINGS.max_image_bytes, "max_pixels": _SETTINGS.max_image_pixels}
    out: list[tuple[Any, dict[str, float]]] = [(None, {}) for _ in items]
    for model in dict.fromkeys(m for m, _ in items):
        pipeline = _pipeline(model)
        found = []
        for i, (m, image) in enumerate(items):
            if m != model:
                continue
            t = time.monotonic()
            try:
                array = load_image(image, **limits)
                timings = {"decode": _ms(t)}
                t = time.monotonic()
                faces = pipeline.extract_faces(array, max_faces=1)
                timings["model"] = _ms(t)
                if not faces:
                    raise NoFaceError("no face found in the image")
                found.append((i, faces, timings))
            except FaceIDError as exc:
                out[i] = (exc, {})
        t = time.monotonic()
        embedded = pipeline._embed_extracted([faces for _, faces, _ in found])
        embed_ms = _ms(t)
        for (i, _, timings), faces in zip(found, embedded, strict=True):
            timings["model"] = round(timings["model"] + embed_ms, 2)
            out[i] = (faces[0], timings)
    return out, started
