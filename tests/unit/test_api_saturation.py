"""A saturated server sheds find requests with 503 + Retry-After instead of queueing them,
counts them in /metrics, recovers when the load drops, and loses no enrollment meanwhile.
A real uvicorn server in a thread (requests in parallel), one model worker, a queue of one."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from identity_service.api import create_app
from identity_service.client import FaceIDClient
from identity_service.config import ApiSettings, ModelSettings, Settings

PEOPLE = ("Abel_Pacheco", "Adam_Sandler", "Abdullah_Gul", "Akhmed_Zakayev")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> Iterator[str]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("saturation"),
        workers=1,
        models=ModelSettings(embedder="dlib-resnet-v1"),
        api=ApiSettings(auth=False, model_workers=1, queue_max=1, batch_max_faces=1),
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(600):  # the lifespan loads the models and starts the model worker
            if server.started:
                break
            time.sleep(0.1)
        assert server.started
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _shed_total(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    found = re.search(r"^faceid_requests_shed_total ([0-9.e+]+)$", text, re.M)
    assert found, "faceid_requests_shed_total missing from /metrics"
    return float(found.group(1))


def test_saturated_find_sheds_with_retry_after_and_loses_no_enrollment(url, lfw_image):
    client = FaceIDClient(url, retries=20, backoff=0.05)
    client.create_collection("busy")
    client.enroll("busy", "abel", [lfw_image("Abel_Pacheco", 1)])
    probe = lfw_image("Abel_Pacheco", 3).read_bytes()
    before = _shed_total(url)
    answers: list[tuple[int, str | None, str]] = []  # how fast: bench/http_find.py
    lock = threading.Lock()

    def find() -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            for _ in range(3):
                r = http.post("/v1/collections/busy/find", files={"image": ("p.jpg", probe)})
                with lock:
                    answers.append((r.status_code, r.headers.get("retry-after"), r.text))

    enrolled: dict[str, object] = {}

    def enroll(person: str) -> None:  # the client retries 503s; nothing may be lost
        enrolled[person] = FaceIDClient(url, retries=20, backoff=0.05).enroll(
            "busy", person, [lfw_image(person, 2)]
        )

    threads = [threading.Thread(target=find) for _ in range(12)]
    threads += [threading.Thread(target=enroll, args=(p,)) for p in PEOPLE[1:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    shed = [a for a in answers if a[0] == 503]
    ok = [a for a in answers if a[0] == 200]
    assert len(shed) + len(ok) == len(answers), [a[2] for a in answers if a[0] not in (200, 503)]
    assert shed and ok
    assert all(a[1] is not None and int(a[1]) >= 1 and '"overloaded"' in a[2] for a in shed)
    assert _shed_total(url) - before == len(shed)
    assert all(enrolled[p].face_ids for p in PEOPLE[1:])  # type: ignore[attr-defined]
    assert {i.external_id for i in client.identities("busy").items} == {"abel", *PEOPLE[1:]}
    # the load is gone: every find is answered again
    for person in PEOPLE[1:]:
        assert client.find("busy", lfw_image(person, 3), k=1)[0].external_id == person
