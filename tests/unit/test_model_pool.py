"""find's model pool: worker processes detect and embed, concurrent probes are micro-batched and
each caller gets its own face back, a full queue sheds at once, and closing stops the workers."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from identity_service.config import ModelSettings, Settings
from identity_service.errors import NoFaceError, OverloadedError, UndecodableImageError
from identity_service.pipeline import FacePipeline
from identity_service.service.model_pool import ModelPool

MODEL = "dlib-resnet-v1"
PEOPLE = ("Abel_Pacheco", "Adam_Sandler", "Abdullah_Gul", "Akhmed_Zakayev")


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("pool"), models=ModelSettings(embedder=MODEL), workers=1
    )


@pytest.fixture(scope="module")
def probes(lfw_image) -> dict[str, bytes]:
    return {f"{p}-{n}": lfw_image(p, n).read_bytes() for p in PEOPLE for n in (1, 3)}


@pytest.fixture(scope="module")
def reference(settings, probes) -> dict[str, np.ndarray]:
    """Each probe's embedding from an in-process pipeline."""
    with FacePipeline(embedder=MODEL, settings=settings) as pipeline:
        return {k: pipeline.represent(v, max_faces=1)[0].embedding for k, v in probes.items()}


@pytest.fixture(scope="module")
def batching(settings):
    """One worker that waits up to 300 ms for a batch of 4 to fill."""
    with ModelPool(settings, workers=1, max_batch=4, max_wait_ms=300, queue_max=16) as pool:
        pool.warm([MODEL])
        yield pool


def test_concurrent_distinct_probes_are_batched_and_each_gets_its_own(batching, probes, reference):
    names = list(probes)
    results: dict[str, object] = {}

    def ask(name: str) -> None:
        results[name] = batching.submit(MODEL, probes[name]).result(timeout=60)

    threads = [threading.Thread(target=ask, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) == set(names)
    for name, embedded in results.items():
        vector = embedded.face.embedding  # type: ignore[attr-defined]
        mine = float(np.dot(vector, reference[name]))
        others = [float(np.dot(vector, reference[n])) for n in names if n != name]
        assert mine > 0.9999 and max(others) < mine, name
        assert {"decode", "queue", "model"} <= set(embedded.timings)  # type: ignore[attr-defined]
    assert batching.stats.largest_batch > 1  # micro-batched through the embedder
    assert max(e.batch for e in results.values()) > 1  # type: ignore[attr-defined]


def test_each_probe_of_a_batch_gets_its_own_error(batching, probes):
    black = _jpeg(np.zeros((120, 120, 3), np.uint8))
    futures = [
        batching.submit(MODEL, probes["Abel_Pacheco-1"]),
        batching.submit(MODEL, b"not an image"),
        batching.submit(MODEL, black),
    ]
    assert futures[0].result(timeout=60).face.embedding.shape == (128,)
    with pytest.raises(UndecodableImageError):
        futures[1].result(timeout=60)
    with pytest.raises(NoFaceError):
        futures[2].result(timeout=60)


def test_a_full_queue_sheds_at_once_a_dead_worker_is_replaced_and_close_stops_them(
    settings, probes
):
    pool = ModelPool(settings, workers=1, max_batch=1, queue_max=1)
    try:
        pool.warm([MODEL])
        image = probes["Adam_Sandler-1"]
        accepted = []
        start = time.perf_counter()
        with pytest.raises(OverloadedError) as shed:
            for _ in range(10):
                accepted.append(pool.submit(MODEL, image))
        assert time.perf_counter() - start < 1.0 and shed.value.http_status == 503
        assert 1 <= len(accepted) <= 3 and pool.stats.shed == 1
        assert all(f.result(timeout=60).face is not None for f in accepted)  # nothing lost
        assert pool.submit(MODEL, image).result(timeout=60).face is not None  # load dropped
        # a worker killed: its probe fails with a 503 (the client retries), the pool starts again
        killed = next(iter(pool._executor._processes.values()))
        probe = pool.submit(MODEL, image)
        os.kill(killed.pid, signal.SIGKILL)
        with pytest.raises(OverloadedError):
            probe.result(timeout=60)
        assert pool.submit(MODEL, image).result(timeout=120).face is not None
        assert pool.stats.restarts == 1
        workers = list(pool._executor._processes.values())
        assert workers and all(p.is_alive() for p in workers)
    finally:
        pool.close()
    assert not any(p.is_alive() for p in workers)
    with pytest.raises(OverloadedError):
        pool.submit(MODEL, image)


def _jpeg(array: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG")
    return buf.getvalue()


def test_model_workers_run_below_the_server_priority(settings):
    """Admission and shedding must not wait behind model work for a core."""
    server = os.nice(0)
    nicer = settings.model_copy(update={"api": settings.api.model_copy(update={"model_nice": 5})})
    same = settings.model_copy(update={"api": settings.api.model_copy(update={"model_nice": 0})})
    for config, expected in ((nicer, min(19, server + 5)), (same, server)):
        with ModelPool(config, workers=1) as pool:
            pool.warm()
            assert pool._executor.submit(os.nice, 0).result(timeout=60) == expected
