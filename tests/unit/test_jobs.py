"""Jobs in the embedded default: no broker, tasks run in-process (Celery eager), SQLite, real
models on a few LFW photos."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from identity_service import FaceService, Settings
from identity_service.config import IndexSettings, JobSettings
from identity_service.jobs import (
    Dispatcher,
    Message,
    create_enroll_job,
    create_migration_job,
    dispatch_job,
    get_job,
    job_summary,
    list_jobs,
    recover_stalled,
    run_enroll_part,
    submit_enroll_folder,
    submit_migrate_model,
    submit_purge,
    submit_reindex,
)
from identity_service.store import Repository
from identity_service.store.models import Job, utcnow

PEOPLE = {"Abdullah_Gul": 3, "Adam_Sandler": 2, "Abel_Pacheco": 2}


@pytest.fixture(scope="module")
def photos(tmp_path_factory, lfw_image) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for person, n in PEOPLE.items():
        (root / person).mkdir()
        for i in range(1, n + 1):
            (root / person / f"{i}.jpg").symlink_to(lfw_image(person, i))
    (root / "Adam_Sandler" / "bad.jpg").write_bytes(b"not an image")
    return root


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("faceid"), workers=1, jobs=JobSettings(broker_url=None)
    )
    svc = FaceService.embedded(settings)
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def store_service(tmp_path_factory, vector_store):
    """The same, once per vector store (faiss, milvus): for the admin jobs on indexes."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("faceid"),
        workers=1,
        jobs=JobSettings(broker_url=None),
        index=IndexSettings(vector_store=vector_store),
    )
    svc = FaceService.embedded(settings)
    yield svc
    svc.close()


def test_enroll_job_runs_in_process_with_counts_and_errors(service, photos):
    job = get_job(service, submit_enroll_folder(service, "a", photos, batch_size=2))
    assert job.status == "succeeded" and job.progress == 1.0
    c = job.counts
    assert (c["images"], c["done"], c["faces_added"], c["failed"]) == (8, 8, 7, 1)
    assert (c["batches"], c["batches_done"], c["duplicates"], c["recovered"]) == (4, 4, 0, 0)
    assert [e["code"] for e in job.errors] == ["undecodable_image"]
    assert job.errors[0]["image"] == "Adam_Sandler/bad.jpg"
    parts = service.repo.job_parts(job.id)
    assert len(parts) == 4 and all(p.status == "succeeded" for p in parts)
    assert all(p.counts["attempts"] == 1 for p in parts)
    assert [j.id for j in list_jobs(service)] == [job.id]  # parts are not listed
    assert service.repo.counts(service.collection("a").id).faces == 7
    assert service.find("a", photos / "Adam_Sandler" / "2.jpg", k=1)[0].external_id == (
        "Adam_Sandler"
    )
    summary = job_summary(job)
    assert summary["status"] == "succeeded" and summary["params"]["collection"] == "a"

    again = get_job(service, submit_enroll_folder(service, "a", photos, batch_size=2))
    assert again.status == "succeeded"
    assert (again.counts["faces_added"], again.counts["duplicates"]) == (0, 7)


def test_a_batch_run_twice_is_counted_once(service, photos, monkeypatch):
    job = create_enroll_job(service, "b", photos, batch_size=3)
    first = service.repo.job_parts(job.id)[0]
    dispatcher = Dispatcher(service.settings, service)
    real = service.repo.complete_job_part

    def crash(*args, **kwargs):
        raise RuntimeError("worker died after committing its faces")

    monkeypatch.setattr(service.repo, "complete_job_part", crash)
    with pytest.raises(RuntimeError):
        run_enroll_part(service, first.id, dispatcher)
    monkeypatch.setattr(service.repo, "complete_job_part", real)
    redo = run_enroll_part(service, first.id, dispatcher)
    assert redo.recovered == redo.faces_added == 3 and not redo.skipped
    assert run_enroll_part(service, first.id, dispatcher).skipped
    assert dispatch_job(service, job.id) == 2  # the parts still unfinished
    done = get_job(service, job.id)
    assert done.status == "succeeded"
    assert (done.counts["faces_added"], done.counts["recovered"]) == (7, 3)
    assert service.repo.counts(service.collection("b").id).faces == 7
    assert service.repo.job_parts(job.id)[0].counts["attempts"] == 2


def test_part_completion_is_atomic_and_once(service):
    repo = service.repo
    parts = [{"task": "t", "queue": "cpu"}] * 12
    job = repo.create_job_with_parts("count", {}, parts, counts={"faces_added": 0})
    ids = [p.id for p in repo.job_parts(job.id)]

    def complete(part_ids: list[str]) -> None:
        for pid in part_ids:
            repo.complete_job_part(pid, {"faces_added": 2, "done": 1}, [{"image": pid}])

    threads = [threading.Thread(target=complete, args=(ids,)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = repo.get_job(job.id)
    assert done.status == "succeeded" and done.progress == 1.0
    assert (done.counts["faces_added"], done.counts["done"], done.counts["batches_done"]) == (
        24,
        12,
        12,
    )
    assert sorted(e["image"] for e in done.errors) == sorted(ids)


class _Recorder(Dispatcher):
    def __init__(self) -> None:
        self.sent: list[Message] = []

    def send_many(self, messages) -> int:
        self.sent.extend(messages)
        return len(self.sent)


def test_recovery_resends_unfinished_tasks_only_when_stalled(tmp_path):
    svc = FaceService.embedded(Settings(data_dir=tmp_path, jobs=JobSettings(broker_url=None)))
    repo: Repository = svc.repo
    parts = [{"task": "faceid.enroll_part", "queue": "gpu"}] * 3
    job = repo.create_job_with_parts("enroll", {}, parts)
    first, second, third = (p.id for p in repo.job_parts(job.id))
    repo.complete_job_part(first, {"done": 1})
    recorder = _Recorder()
    assert recover_stalled(repo, recorder, stall_seconds=30, now=utcnow()).resent == []
    later = utcnow() + timedelta(seconds=60)
    report = recover_stalled(repo, recorder, stall_seconds=30, now=later)
    assert report.stalled and sorted(report.resent) == [second, third]
    assert {m.queue for m in recorder.sent} == {"gpu"}
    # Resending counts as activity: nothing is sent again until the next stall.
    soon = utcnow() + timedelta(seconds=5)
    assert recover_stalled(repo, recorder, stall_seconds=30, now=soon).resent == []
    # A running part whose worker stopped beating its heart is sent again although other work
    # goes on; a queued part waiting its turn is not.
    repo.start_job_part(second)
    with repo.engine.begin() as conn:  # its last heartbeat: 100 s ago
        conn.execute(
            update(Job).where(Job.id == second).values(started=utcnow() - timedelta(seconds=100))
        )
    report = recover_stalled(repo, recorder, stall_seconds=30, now=utcnow())
    assert not report.stalled and report.resent == [second]
    svc.close()


def test_a_failing_task_fails_its_job(service, photos):
    job = create_enroll_job(service, "gone", photos, batch_size=8)
    service.repo.delete_collection(service.collection("gone").id)
    dispatch_job(service, job.id)
    failed = get_job(service, job.id)
    assert failed.status == "failed" and failed.errors[-1]["code"] == "unknown_collection"
    assert service.repo.job_parts(job.id)[0].status == "failed"


def test_reindex_and_purge(store_service, photos, vector_store):
    service = store_service
    submit_enroll_folder(service, "r", photos)
    reindex = get_job(service, submit_reindex(service, "r"))
    assert reindex.status == "succeeded" and reindex.counts["faces"] == 7
    if vector_store == "faiss":
        assert Path(reindex.counts["snapshot"]).is_file()
    else:  # Milvus keeps the data: the snapshot is a flush, named by collection and position
        assert reindex.counts["snapshot"].startswith("milvus:")
        assert reindex.counts["index"] == "milvus-hnsw"
    assert service.find("r", photos / "Adam_Sandler" / "2.jpg", k=1)[0].external_id == (
        "Adam_Sandler"
    )
    service.delete_identity("r", "Abel_Pacheco")
    purge = get_job(service, submit_purge(service, "r"))
    assert purge.status == "succeeded" and purge.counts["identities_purged"] == 1


def test_migration_switches_at_once_and_refuses_unsafe_switches(store_service, photos, lfw_image):
    service = store_service
    submit_enroll_folder(service, "m", photos)
    live = service.collection("m")
    job = get_job(service, submit_migrate_model(service, "m", "dlib-resnet-v1", photos))
    assert job.status == "succeeded", job.errors
    switched = service.collection("m")
    assert switched.id != live.id and service.repo.counts(switched.id).faces == 7
    retired = service.collection(job.counts["retired_as"])
    assert retired.id == live.id and service.repo.counts(retired.id).faces == 7
    assert service.find("m", photos / "Abdullah_Gul" / "3.jpg", k=1)[0].accepted

    # A person the source folder does not have: the switch would lose them, so it is refused.
    service.enroll("m", "Aaron_Peirsol", [lfw_image("Aaron_Peirsol", 1)])
    job = get_job(service, submit_migrate_model(service, "m", "dlib-resnet-v1", photos))
    assert job.status == "failed" and job.errors[-1]["code"] == "conflict"
    assert service.collection("m").id == switched.id

    # A write to the live collection during the migration: refused too.
    job = create_migration_job(service, "m", "dlib-resnet-v1", photos, allow_missing=True)
    service.delete_identity("m", "Abel_Pacheco")
    dispatch_job(service, job.id)
    failed = get_job(service, job.id)
    assert failed.status == "failed" and "changed since" in failed.errors[-1]["message"]
    assert service.collection("m").id == switched.id


def test_celery_app_configuration():
    from workers.app import celery_config

    eager = celery_config(JobSettings(broker_url=None))
    assert eager["task_always_eager"] and eager["result_backend"] is None
    conf = celery_config(JobSettings(broker_url="redis://h:6379/3", visibility_timeout=90))
    assert not conf["task_always_eager"] and conf["result_backend"] == "redis://h:6379/3"
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["broker_transport_options"] == {"visibility_timeout": 90}
    assert {(q.name, q.routing_key) for q in conf["task_queues"]} == {
        ("cpu", "cpu"),
        ("gpu", "gpu"),
        ("admin", "admin"),
    }
    from identity_service.jobs.tasks import JobTask

    assert JobTask.acks_late and JobTask.reject_on_worker_lost and JobTask.max_retries


def test_a_malformed_file_fails_alone_and_the_batch_enrolls(service, tmp_path, lfw_image):
    """A corrupt PPM named .jpg among good photos of the same batch: only it fails, typed, and
    with its path; the good photos of its batch are enrolled."""
    root = tmp_path / "mixed"
    (root / "Abdullah_Gul").mkdir(parents=True)
    for i in range(1, 5):
        (root / "Abdullah_Gul" / f"{i}.jpg").symlink_to(lfw_image("Abdullah_Gul", i))
    (root / "Abdullah_Gul" / "0.jpg").write_bytes(b"P6\n64 64\n99999999999\n")
    job = get_job(service, submit_enroll_folder(service, "mixed", root, batch_size=32))
    assert job.status == "succeeded", job.errors
    assert (job.counts["faces_added"], job.counts["failed"]) == (4, 1)
    (error,) = job.errors
    assert error["image"] == "Abdullah_Gul/0.jpg" and error["code"] == "undecodable_image"


def test_a_broker_outage_leaves_the_job_stored_for_the_recovery_sweep(service, photos, monkeypatch):
    import kombu.exceptions

    from identity_service.jobs import api as jobs_api

    def down(*args, **kwargs):
        raise kombu.exceptions.OperationalError("Error 111 connecting to redis")

    monkeypatch.setattr(jobs_api, "dispatch_job", down)
    job_id = jobs_api.submit_enroll_folder(service, "outage", photos, idempotency_key="k1")
    job = service.repo.get_job(job_id)
    assert job.status == "queued" and len(service.repo.job_parts(job_id)) > 0
    # The client's retry with the same key finds that job and creates nothing.
    assert jobs_api.submit_enroll_folder(service, "outage", photos, idempotency_key="k1") == job_id
    assert [j.id for j in service.repo.list_jobs(kind=job.kind) if j.id == job_id] == [job_id]
