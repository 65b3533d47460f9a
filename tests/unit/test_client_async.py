"""AsyncFaceIDClient against the in-process app (httpx.ASGITransport); the fixtures `api`,
`keys` and `lfw_image` are in tests/conftest.py."""

from __future__ import annotations

import inspect

import httpx
import pytest

from identity_service.client import AsyncFaceIDClient, Collection, FaceIDClient, Job
from identity_service.client.calls import endpoint
from identity_service.client.endpoints import Endpoints
from identity_service.errors import UnknownCollectionError

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def aclient(api, key: str | None) -> AsyncFaceIDClient:
    app, _ = api
    transport = httpx.ASGITransport(app=app)
    return AsyncFaceIDClient("http://testserver", api_key=key, transport=transport)


def test_same_methods_as_the_sync_client():
    names = [n for n, v in vars(Endpoints).items() if isinstance(v, endpoint)]
    assert {"find", "verify", "enroll", "enroll_job", "create_collection"} <= set(names)
    sync, asyn = FaceIDClient("http://x"), AsyncFaceIDClient("http://x")
    for name in [*names, "request", "close"]:
        assert inspect.signature(getattr(sync, name)) == inspect.signature(getattr(asyn, name))
        assert inspect.iscoroutinefunction(getattr(asyn, name)), name
        assert not inspect.iscoroutinefunction(getattr(sync, name)), name


async def test_create_enroll_find_verify(api, keys, lfw_image):
    async with aclient(api, keys["a_admin"]) as acme:
        coll = await acme.create_collection("async-staff")
        assert isinstance(coll, Collection) and coll.name == "async-staff"
        abel = [lfw_image("Abel_Pacheco", 1), lfw_image("Abel_Pacheco", 2)]
        assert len((await acme.enroll(coll.name, "abel", abel)).face_ids) == 2
        adam = await acme.enroll(coll.name, "adam", lfw_image("Adam_Sandler", 1), name="Adam")
        assert adam.external_id == "adam" and not adam.failures

        matches = await acme.find(coll.name, lfw_image("Abel_Pacheco", 3), k=2)
        assert matches[0].external_id == "abel" and matches[0].accepted
        assert not matches[1].accepted

        probe = lfw_image("Abel_Pacheco", 3)
        same = await acme.verify(probe, collection=coll.name, identity="abel")
        other = await acme.verify(probe, lfw_image("Adam_Sandler", 1))
        assert same.verified and same.identity == "abel" and not other.verified


async def test_unknown_collection_raises_typed(api, keys):
    async with aclient(api, keys["a_query"]) as acme:
        with pytest.raises(UnknownCollectionError):
            await acme.collection("nope")


async def test_jobs_wait_async(api, keys, lfw_image, tmp_path):
    root = tmp_path / "photos" / "Abel_Pacheco"
    root.mkdir(parents=True)
    (root / "3.jpg").symlink_to(lfw_image("Abel_Pacheco", 3))
    settings = api[0].state.runtime.settings
    settings.api.allow_server_paths = True
    settings.api.server_path_roots = [str(tmp_path)]
    try:
        async with aclient(api, keys["a_admin"]) as acme:
            await acme.create_collection("async-jobs")
            job = await acme.enroll_job("async-jobs", str(root.parent), batch_size=1)
            assert isinstance(job, Job)
            with pytest.raises(TypeError, match="refresh_async"):
                job.refresh()
            seen: list[str] = []
            await job.wait_async(timeout=60, poll=0.05, on_update=lambda j: seen.append(j.status))
    finally:
        settings.api.allow_server_paths = False
        settings.api.server_path_roots = []
    assert job.status == "succeeded" and job.counts["faces_added"] == 1 and seen[-1] == job.status


async def test_retries_503_then_raises_typed():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) < 3:
            return httpx.Response(503, json={"error": {"code": "unavailable", "message": "x"}})
        return httpx.Response(
            404, json={"error": {"code": "unknown_collection", "message": "gone"}}
        )

    transport = httpx.MockTransport(handler)
    async with AsyncFaceIDClient("http://x", transport=transport, backoff=0.001) as c:
        with pytest.raises(UnknownCollectionError, match="gone"):
            await c.collection("c")
    assert len(calls) == 3


async def test_image_files_are_read_off_the_event_loop(api, keys, lfw_image, monkeypatch):
    import threading
    from pathlib import Path

    readers = []
    real_read = Path.read_bytes

    def spy(self):
        readers.append(threading.current_thread())
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", spy)
    async with aclient(api, keys["a_query"]) as acme:
        await acme.verify(lfw_image("Abel_Pacheco", 1), lfw_image("Abel_Pacheco", 2))
    assert len(readers) == 2 and threading.current_thread() not in readers
