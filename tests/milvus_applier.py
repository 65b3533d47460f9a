"""A process that applies a collection's index_log to Milvus and can be killed mid-batch.

Run by tests/unit/test_vector_store.py::test_kill_9_mid_batch_then_restart_gives_each_face_once:
``python tests/milvus_applier.py DATA_DIR VECTOR_STORE COLLECTION_ID PAUSE_AFTER``. It applies
the log in pages of 500 entries and prints ``upserted N`` after each page's vectors are
written; after the ``PAUSE_AFTER``-th it sleeps before recording the page, so a kill -9 then
lands between the vectors and their sequence number.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from identity_service import FaceService, Settings
from identity_service.config import IndexSettings
from identity_service.index.milvus import MilvusConfig
from identity_service.service.vector_store import milvus_follower


def main(data_dir: str, url: str, collection_id: str, pause_after: str) -> int:
    settings = Settings(data_dir=Path(data_dir), workers=1, index=IndexSettings(vector_store=url))
    service = FaceService(settings)
    coll = service.repo.get_collection_by_id(int(collection_id))
    follower = milvus_follower(service.repo, coll, MilvusConfig.from_url(url))
    follower.chunk = 500
    upsert = follower.remote.upsert
    calls = 0

    def counted(physical: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        nonlocal calls
        upsert(physical, ids, vectors)
        calls += 1
        print(f"upserted {calls} {int(ids.min())} {int(ids.max())}", flush=True)
        if calls == int(pause_after):
            time.sleep(120)  # killed here: the page's vectors are in, its seq is not

    follower.remote.upsert = counted  # type: ignore[method-assign]
    follower.start()
    print("done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
