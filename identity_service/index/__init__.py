"""The FAISS gallery index (derived from the database) and its snapshot + log-replay sync."""

from .backends import IndexParams
from .errors import CorruptSnapshotError, GalleryIndexError, GpuUnavailableError
from .gallery import GalleryIndex, IndexState, IndexStats, SearchResult
from .snapshot import (
    latest_snapshot,
    list_snapshots,
    load_snapshot,
    prune_snapshots,
    save_snapshot,
    save_to_folder,
)
from .sync import IndexFollower, LogEntry, LogObserver, LogSource, PollResult, StartReport

__all__ = [
    "CorruptSnapshotError",
    "GalleryIndex",
    "GalleryIndexError",
    "GpuUnavailableError",
    "IndexFollower",
    "IndexParams",
    "IndexState",
    "IndexStats",
    "LogEntry",
    "LogObserver",
    "LogSource",
    "PollResult",
    "SearchResult",
    "StartReport",
    "latest_snapshot",
    "list_snapshots",
    "load_snapshot",
    "prune_snapshots",
    "save_snapshot",
    "save_to_folder",
]
