"""Prometheus metrics of one app (its own registry, so several apps can live in one process)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30)
FACES_ENROLLED_TTL_S = 10.0  # a scrape every 15 s costs at most one count query per replica


@dataclass
class _Cached:
    """The last value read from a source, reused for ``ttl`` seconds."""

    ttl: float
    value: int = 0
    read_at: float = float("-inf")

    def get(self, source: Callable[[], int]) -> int:
        now = time.monotonic()
        if now - self.read_at >= self.ttl:
            self.value, self.read_at = source(), now
        return self.value

    def expire(self) -> None:
        self.read_at = float("-inf")


class FacesEnrolled(Collector):
    """``faceid_faces_enrolled_total``: faces added to galleries by every path, read from the
    database at scrape time.

    Not a counter in this process: Celery workers (enrollment jobs, model migrations) and the
    CLI's folder import enroll without passing through any API process, so an in-process count
    misses them. The database sees every path. It counts the index log's ``add`` rows rather
    than the stored faces because those only grow (a deleted face logs a ``remove``), so the
    figure stays a counter under its old name and ``rate()`` keeps working; only dropping a
    collection lowers it, which Prometheus reads as a counter reset. Every replica reports the
    same database-wide figure: aggregate replicas with ``max``, not ``sum``.
    """

    NAME = "faceid_faces_enrolled"
    HELP = "faces added to galleries by any path (sync API, jobs, CLI), from the database"

    def __init__(self, ttl: float = FACES_ENROLLED_TTL_S) -> None:
        self.source: Callable[[], int] | None = None
        self._cache = _Cached(ttl)

    def expire(self) -> None:
        """Read the database again at the next scrape."""
        self._cache.expire()

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.NAME, self.HELP)

    def collect(self) -> Iterator[Metric]:
        value = 0 if self.source is None else self._cache.get(self.source)
        yield CounterMetricFamily(self.NAME, self.HELP, value=value)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "faceid_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.faces_enrolled = FacesEnrolled()
        self.registry.register(self.faces_enrolled)
        self.index_size = Gauge(
            "faceid_index_size",
            "vectors in the loaded gallery indexes: per collection id when "
            'FACEID_API_METRICS_PER_COLLECTION is on, else all of them as collection_id="*"',
            ["collection_id"],
            registry=self.registry,
        )
        self.shed = Counter(
            "faceid_requests_shed",
            "find requests answered 503 at once because the model workers' queue was full",
            registry=self.registry,
        )
        self.model_queue = Gauge(
            "faceid_model_queue_depth",
            "probe images waiting for a model worker",
            registry=self.registry,
        )
        self.jobs_unfinished = Gauge(
            "faceid_jobs_unfinished",
            "jobs pending or running (the enrollment/admin queue depth)",
            registry=self.registry,
        )

    def render(
        self,
        index_sizes: Callable[[], dict[int, int]],
        unfinished: Callable[[], int],
        faces_enrolled: Callable[[], int] | None = None,
        *,
        per_collection: bool = False,
        queue_depth: Callable[[], int] | None = None,
    ) -> bytes:
        """The exposition text, with the gauges read at scrape time (``faces_enrolled``, the
        database count, at most once per ``FACES_ENROLLED_TTL_S``)."""
        self.index_size.clear()
        sizes = index_sizes()
        if per_collection:
            for collection_id, size in sizes.items():
                self.index_size.labels(str(collection_id)).set(size)
        else:
            self.index_size.labels("*").set(sum(sizes.values()))
        self.jobs_unfinished.set(unfinished())
        self.model_queue.set(queue_depth() if queue_depth is not None else 0)
        if faces_enrolled is not None:
            self.faces_enrolled.source = faces_enrolled
        return generate_latest(self.registry)
