"""FaceService on the embedded default (a SQLite file) with real faces, its galleries on each
vector store: in-process FAISS and Milvus (a milvus-lite server)."""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pytest
from opened_files import count_opens

from identity_service import FaceService, Settings
from identity_service.config import IndexSettings
from identity_service.errors import (
    DuplicateError,
    ModelMismatchError,
    NoFaceError,
    SchemaOutdatedError,
    UnknownCollectionError,
    UnknownIdentityError,
)
from identity_service.imaging import image_sha256
from identity_service.service import import_folder

PEOPLE = {
    "Abdullah_Gul": [1, 2, 3, 4],
    "Adam_Sandler": [1, 2, 3],
    "Akhmed_Zakayev": [1, 2],
    "Abel_Pacheco": [1, 2, 3],
}


@pytest.fixture(scope="module")
def settings(tmp_path_factory, vector_store):
    """Each test runs once per vector store (tests/vector_stores.py: faiss, milvus)."""
    index = IndexSettings(vector_store=vector_store)
    return Settings(data_dir=tmp_path_factory.mktemp("faceid"), workers=1, index=index)


@pytest.fixture(scope="module")
def service(settings, lfw_image):
    svc = FaceService.embedded(settings)
    svc.create_collection("people")
    for person, numbers in PEOPLE.items():
        gallery = [lfw_image(person, n) for n in numbers[:-1]]  # last photo kept as the probe
        svc.enroll("people", person, gallery, name=person.replace("_", " "))
    yield svc
    svc.close()


def test_find_ranks_the_right_person_first(service, lfw_image):
    for person, numbers in PEOPLE.items():
        matches = service.find("people", lfw_image(person, numbers[-1]), k=3)
        assert matches[0].external_id == person and matches[0].accepted
        assert matches[0].name == person.replace("_", " ")
        assert [m.rank for m in matches] == list(range(len(matches)))
        assert all(a.similarity >= b.similarity for a, b in itertools.pairwise(matches))
        assert not any(m.accepted for m in matches[1:])
        assert matches[0].distance == pytest.approx(1 - matches[0].similarity)


def test_stranger_is_unknown(service, lfw_image):
    matches = service.find("people", lfw_image("Aaron_Peirsol", 1), k=2)
    assert matches and not matches[0].accepted


def test_find_batch_and_embedding_probe_and_mean_aggregation(service, lfw_image):
    probes = [lfw_image("Adam_Sandler", 3), lfw_image("Abdullah_Gul", 4)]
    batch = service.find_batch("people", probes, k=2)
    assert [b[0].external_id for b in batch] == ["Adam_Sandler", "Abdullah_Gul"]
    embedding = service.pipeline().represent(probes[0])[0].embedding
    by_vector = service.find("people", embedding, k=2)
    assert by_vector[0].external_id == "Adam_Sandler"
    assert by_vector[0].similarity == pytest.approx(batch[0][0].similarity, abs=1e-5)
    mean = service.find("people", probes[1], k=1, aggregate="mean", top_m=3)
    assert mean[0].external_id == "Abdullah_Gul"
    assert mean[0].similarity <= batch[1][0].similarity + 1e-6


def test_reenrolling_the_same_photo_adds_nothing(service, lfw_image):
    again = service.enroll("people", "Akhmed_Zakayev", [lfw_image("Akhmed_Zakayev", 1)])
    assert again.face_ids == [] and again.duplicates == 1
    as_bytes = service.enroll(
        "people", "Akhmed_Zakayev", [lfw_image("Akhmed_Zakayev", 1).read_bytes()]
    )
    assert as_bytes.face_ids == [] and as_bytes.duplicates == 1


def test_enroll_reads_each_photo_once_and_stores_its_file_hash(service, lfw_image, monkeypatch):
    photos = [lfw_image("Aaron_Peirsol", n) for n in (1, 3)]
    opened = count_opens(monkeypatch)
    result = service.enroll("people", "Aaron_Peirsol", photos)
    monkeypatch.undo()
    assert len(result.face_ids) == 2
    assert [opened[str(p)] for p in photos] == [1, 1], opened
    coll = service.collection("people")
    stored = {sha for ext, sha in service.repo.known_images(coll.id) if ext == "Aaron_Peirsol"}
    # The hashes earlier releases stored (so existing galleries still dedupe).
    assert stored == {hashlib.sha256(p.read_bytes()).hexdigest() for p in photos}
    assert stored == {image_sha256(p) for p in photos}
    service.delete_identity("people", "Aaron_Peirsol")


def test_bad_images_are_reported_and_the_rest_enrolled(service, lfw_image):
    blank = np.full((200, 200, 3), 128, np.uint8)
    result = service.enroll(
        "people", "New_Person", [b"garbage", blank, lfw_image("Aaron_Sorkin", 1)]
    )
    assert len(result.face_ids) == 1
    assert sorted(f.code for f in result.failures) == ["no_face", "undecodable_image"]
    service.delete_identity("people", "New_Person")


def test_wrong_model_and_unknown_names(service, lfw_image):
    dim = service.collection("people").dim
    with pytest.raises(ModelMismatchError, match=f"holds {dim}-d embeddings"):
        service.find("people", np.ones(512, np.float32))
    with pytest.raises(UnknownCollectionError):
        service.find("nobody-here", lfw_image("Adam_Sandler", 1))
    with pytest.raises(UnknownIdentityError):
        service.delete_identity("people", "Not_Enrolled")
    with pytest.raises(DuplicateError):
        service.create_collection("people")
    with pytest.raises(NoFaceError):
        service.find("people", np.full((120, 120, 3), 50, np.uint8))


def test_many_faces_policy(service, lfw_image):
    from identity_service.imaging import load_image

    pair = np.concatenate(
        [load_image(lfw_image("Aaron_Sorkin", 2)), load_image(lfw_image("Aaron_Peirsol", 2))],
        axis=1,
    )
    refused = service.enroll("people", "Pair", [pair], many_faces="error")
    assert refused.face_ids == [] and refused.failures[0].code == "many_faces"
    taken = service.enroll("people", "Pair", [pair])
    assert len(taken.face_ids) == 1 and taken.multi_face_images == 1
    service.delete_identity("people", "Pair")


def test_delete_is_total_and_survives_a_restart(settings, lfw_image):
    svc = FaceService.embedded(settings)
    svc.create_collection("gone")
    svc.enroll("gone", "Adam_Sandler", [lfw_image("Adam_Sandler", 1)])
    svc.enroll("gone", "Abel_Pacheco", [lfw_image("Abel_Pacheco", 1)])
    probe = lfw_image("Adam_Sandler", 2)
    assert svc.find("gone", probe, k=1)[0].external_id == "Adam_Sandler"
    svc.snapshot("gone")  # the snapshot still holds Adam Sandler
    assert svc.delete_identity("gone", "Adam_Sandler") == 1
    assert all(m.external_id != "Adam_Sandler" for m in svc.find("gone", probe, k=5))
    svc.close()
    restarted = FaceService.embedded(settings)  # loads the old snapshot, replays the removal
    assert all(m.external_id != "Adam_Sandler" for m in restarted.find("gone", probe, k=5))
    follower = restarted.galleries.follower(restarted.collection("gone"))
    assert len(follower) == 1
    restarted.close()


def test_folder_import_is_idempotent(settings, lfw_dir, tmp_path, monkeypatch):
    root = tmp_path / "faces"
    for person in ("Adam_Sandler", "Abel_Pacheco"):
        (root / person).mkdir(parents=True)
        for src in sorted((lfw_dir / "images" / person).glob("*.jpg"))[:2]:
            (root / person / src.name).symlink_to(src)
    (root / "Adam_Sandler" / "notes.txt").write_text("not an image, ignored by suffix")
    (root / "Abel_Pacheco" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    svc = FaceService.embedded(settings)
    coll = svc.create_collection("folder")
    images = sorted(p for p in root.glob("*/*") if p.suffix == ".jpg")
    opened = count_opens(monkeypatch)
    ticks: list[int] = []
    first = import_folder(svc, coll, root, chunk=2, progress=ticks.append)
    monkeypatch.undo()
    assert first.images == 5 and first.faces_added == 4 and first.identities == 2
    assert [f.code for f in first.failures] == ["undecodable_image"]
    assert {opened[str(p)] for p in images} == {1}, opened
    assert sum(ticks) == 5
    stored = {sha for _, sha in svc.repo.known_images(coll.id)}
    good = [p for p in images if p.name != "broken.jpg"]
    assert stored == {hashlib.sha256(p.read_bytes()).hexdigest() for p in good}
    second = import_folder(svc, coll, root)
    assert second.faces_added == 0 and second.duplicates == 4
    assert svc.repo.counts(coll.id).faces == 4
    svc.close()


def test_folder_import_refuses_oversized_files_unread(settings, lfw_image, tmp_path, monkeypatch):
    root = tmp_path / "faces"
    (root / "Adam_Sandler").mkdir(parents=True)
    (root / "Adam_Sandler" / "1.jpg").symlink_to(lfw_image("Adam_Sandler", 1))
    big = root / "Adam_Sandler" / "big.jpg"
    big.write_bytes(b"\xff" * (settings.max_image_bytes + 1))
    svc = FaceService.embedded(settings)
    coll = svc.create_collection("oversized")
    opened = count_opens(monkeypatch)
    report = import_folder(svc, coll, root)
    monkeypatch.undo()
    assert report.images == 2 and report.faces_added == 1
    assert [(f.image, f.code) for f in report.failures] == [(str(big), "image_too_large")]
    assert opened[str(big)] == 0
    svc.close()


def test_an_enrollment_whose_images_all_fail_creates_no_person(service):
    result = service.enroll("people", "Nobody_Yet", [b"garbage", np.zeros((64, 64, 3), np.uint8)])
    assert result.identity_id is None and not result.face_ids and len(result.failures) == 2
    with pytest.raises(UnknownIdentityError):
        service.repo.get_identity(service.collection("people").id, "Nobody_Yet")
    # An existing person keeps their identity and takes the new name, faces or not.
    known = service.enroll("people", "Adam_Sandler", [b"garbage"], name="Adam S.")
    assert known.identity_id is not None and not known.face_ids
    coll_id = service.collection("people").id
    assert service.repo.get_identity(coll_id, "Adam_Sandler").name == "Adam S."


def test_opening_a_service_never_migrates_and_embedded_does(tmp_path):
    settings = Settings(data_dir=tmp_path, workers=1)
    with pytest.raises(SchemaOutdatedError, match="faceid db upgrade"):
        FaceService(settings)
    with FaceService.embedded(settings) as created:
        created.create_collection("c", model="dlib-resnet-v1")
    with FaceService(settings) as opened:  # at head now: opened as it is
        assert opened.collection("c").tenant == "default"


def test_a_tenant_handle_sees_only_its_tenant(service, lfw_image):
    acme = service.for_tenant("acme")
    with pytest.raises(UnknownCollectionError):
        acme.collection("people")
    acme.create_collection("people", model=service.collection("people").model)
    acme.enroll("people", "bob", [lfw_image("Bob_Hope", 1)])
    assert acme.collection("people").tenant == "acme"
    assert acme.collection("people").id != service.collection("people").id
    assert [m.external_id for m in acme.find("people", lfw_image("Bob_Hope", 2), k=3)] == ["bob"]
    acme.close()  # a handle's close leaves the service open
    assert service.find("people", lfw_image("Bob_Hope", 2), k=1)[0].external_id != "bob"
    acme.delete_collection("people")
