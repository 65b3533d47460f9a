"""Prometheus metrics of one app (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30)


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
        self.faces_enrolled = Counter(
            "faceid_faces_enrolled",
            "faces added to galleries through this server",
            registry=self.registry,
        )
        self.index_size = Gauge(
            "faceid_index_size",
            "vectors in each loaded gallery index",
            ["collection_id"],
            registry=self.registry,
        )
        self.jobs_unfinished = Gauge(
            "faceid_jobs_unfinished",
            "jobs pending or running (the enrollment/admin queue depth)",
            registry=self.registry,
        )

    def render(
        self, index_sizes: Callable[[], dict[int, int]], unfinished: Callable[[], int]
    ) -> bytes:
        """The exposition text, with the gauges read at scrape time."""
        self.index_size.clear()
        for collection_id, size in index_sizes().items():
            self.index_size.labels(str(collection_id)).set(size)
        self.jobs_unfinished.set(unfinished())
        return generate_latest(self.registry)
