"""Which vector store holds a collection's gallery, by ``settings.index.vector_store``:
``faiss`` (the default) keeps an index in this process, built from snapshots and the log;
``milvus://host:port`` follows the log into one Milvus collection every node shares."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np

from ..config import Settings
from ..index import IndexFollower, LogObserver, PollResult, SearchResult, StartReport
from ..index.milvus import MilvusCollection, MilvusConfig, collection_alias, is_milvus
from ..index.milvus_sync import MilvusFollower
from ..store import CollectionRecord, Repository
from ..store.applier_lock import applier_lock

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Follower(Protocol):
    """What the service uses of a collection's gallery, on either store."""

    @property
    def index(self) -> Any: ...

    @property
    def watermark(self) -> int: ...

    def __len__(self) -> int: ...

    def __contains__(self, face_id: object) -> bool: ...

    def search(self, queries: np.ndarray, k: int, **kwargs: Any) -> SearchResult: ...

    def start(self) -> StartReport: ...

    def poll(self) -> PollResult: ...

    def snapshot(self) -> Any: ...

    def rebuild(self) -> int: ...


def open_follower(
    repo: Repository,
    collection: CollectionRecord,
    settings: Settings,
    *,
    observer: LogObserver | None = None,
) -> Follower:
    """A follower of ``collection``'s log on the configured store; not started yet. A FAISS
    follower tells ``observer`` what each poll applies (a Milvus one does not: the caches of
    service/live.py then read the log themselves)."""
    if is_milvus(settings.index.vector_store):
        return milvus_follower(repo, collection, MilvusConfig.from_url(settings.index.vector_store))
    return IndexFollower(
        repo,
        collection.id,
        collection.dim,
        settings.data_dir / "index",
        kind=settings.index.kind,
        gpu=settings.index.gpu,
        observer=observer,
    )


def milvus_follower(
    repo: Repository, collection: CollectionRecord, config: MilvusConfig
) -> MilvusFollower:
    alias = collection_alias(config.prefix, collection.id, collection.model_tag)
    remote = MilvusCollection(config, alias, collection.dim, owner=owner_of(collection))
    lock = applier_lock(repo.engine, f"milvus|{config.display()}|{alias}")
    return MilvusFollower(repo, collection.id, collection.dim, remote, lock)


def owner_of(collection: CollectionRecord) -> str:
    """The collection's id and creation time (in microseconds, independent of the database's
    time zone): an id SQLite hands out again belongs to another owner."""
    micros = (collection.created.astimezone(UTC) - _EPOCH) // timedelta(microseconds=1)
    return f"{collection.id}@{micros}"


def drop_remote(repo: Repository, collection: CollectionRecord, settings: Settings) -> None:
    """Remove a deleted collection's vectors from a shared store (FAISS: nothing to do)."""
    if is_milvus(settings.index.vector_store):
        milvus_follower(repo, collection, MilvusConfig.from_url(settings.index.vector_store)).drop()


# -- operations: fill a Milvus before switching to it, check it, drop it ------------------------
def fill(
    repo: Repository, settings: Settings, followers: dict[int, Follower] | None = None
) -> dict[str, dict[str, int]]:
    """Bring every collection's Milvus collection up to date with the database (building it
    when missing); returns, per collection, its faces there and the log position. Followers
    kept in ``followers`` from an earlier call are polled instead of started again."""
    followers = {} if followers is None else followers
    report = {}
    for coll in repo.list_collections():
        follower = followers.get(coll.id)
        if follower is None:
            follower = followers[coll.id] = open_follower(repo, coll, settings)
            follower.start()
        else:
            follower.poll()
        report[f"{coll.tenant}/{coll.name}"] = {"faces": len(follower), "seq": follower.watermark}
    return report


def check(repo: Repository, settings: Settings) -> dict[str, dict[str, int]]:
    """Per collection: faces in the database and in Milvus, the log's end and how far Milvus
    got (equal figures: in step)."""
    config = MilvusConfig.from_url(settings.index.vector_store)
    report = {}
    for coll in repo.list_collections():
        follower = milvus_follower(repo, coll, config)
        state = follower.remote.state() if follower.remote.physical() else None
        report[f"{coll.tenant}/{coll.name}"] = {
            "database_faces": repo.counts(coll.id).faces,
            "milvus_faces": follower.remote.count() if state else 0,
            "database_seq": repo.max_seq(coll.id),
            "milvus_seq": state.seq if state else -1,
        }
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m identity_service.service.vector_store fill|follow|check|drop`` with the
    deployment's FACEID_* settings (FACEID_VECTOR_STORE naming the Milvus): the steps of the
    switch in docs/operations.md."""
    import argparse
    import json
    import time

    from ..config import get_settings
    from ..store import check_schema, make_engine

    parser = argparse.ArgumentParser(prog="python -m identity_service.service.vector_store")
    parser.add_argument("action", choices=["fill", "follow", "check", "drop"])
    args = parser.parse_args(argv)
    settings = get_settings()
    if not is_milvus(settings.index.vector_store):
        parser.error("set FACEID_VECTOR_STORE=milvus://host:port first")
    engine = make_engine(settings.resolved_database_url)
    check_schema(engine)
    repo = Repository(engine)
    if args.action == "check":
        print(json.dumps(check(repo, settings), indent=2))
    elif args.action == "drop":
        for coll in repo.list_collections():
            drop_remote(repo, coll, settings)
    else:
        followers: dict[int, Follower] = {}
        print(json.dumps(fill(repo, settings, followers), indent=2), flush=True)
        while args.action == "follow":  # until stopped: keeps Milvus in step until the flip
            time.sleep(max(settings.index.poll_interval, 0.5))
            fill(repo, settings, followers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
