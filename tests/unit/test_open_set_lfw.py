"""Open-set find on real LFW people through the public API, with the default model: strangers
(people never enrolled) are accepted at about the target rate, enrolled people are found, and a
deleted identity never comes back."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from identity_service import FaceService, Settings
from identity_service.service import import_folder

ENROLLED = STRANGERS = 588  # the shared LFW people with two or more photos, in two halves


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, lfw_dir):
    """588 people with one enrolled photo each; 588 other people as strangers."""
    people: dict[str, list] = defaultdict(list)
    for path in sorted((lfw_dir / "images").glob("*/*.jpg")):
        people[path.parent.name].append(path)
    multi = sorted(p for p, photos in people.items() if len(photos) >= 2)
    enrolled, strangers = multi[0::2], multi[1::2]
    assert len(enrolled) == ENROLLED and len(strangers) == STRANGERS
    view = tmp_path_factory.mktemp("view")
    for person in enrolled:
        (view / person).mkdir()
        (view / person / "1.jpg").symlink_to(people[person][0])
    settings = Settings(data_dir=tmp_path_factory.mktemp("faceid"), workers=2)
    service = FaceService.embedded(settings)
    coll = service.create_collection("lfw")
    import_folder(service, coll, view)
    mated = {p: people[p][1] for p in enrolled}
    stranger_photos = [people[p][0] for p in strangers]
    yield service, coll, mated, stranger_photos
    service.close()


@pytest.mark.slow
@pytest.mark.parametrize("fpir", [0.05, 0.01])
def test_strangers_are_accepted_at_about_the_target_rate(gallery, fpir):
    service, coll, _, strangers = gallery
    results = service.find_batch(coll, strangers, k=1, fpir=fpir)
    point = results[0].operating_point
    assert point.target_fpir == fpir and point.gallery_identities == ENROLLED
    measured = np.mean([bool(r.accepted) for r in results])
    # 588 leave-one-out searches place FPIR 0.05 (29 expected accepts); FPIR 0.01 needs 1,000,
    # so the model's prior answers there, scaled to the gallery.
    expected_source = "leave-one-identity-out" if fpir == 0.05 else "model prior"
    assert point.source.startswith(expected_source), point.source
    assert fpir / 2 <= measured <= fpir * 2, (fpir, measured, point)


@pytest.mark.slow
def test_enrolled_people_are_found_and_deleted_ones_never_return(gallery):
    service, coll, mated, _ = gallery
    people = list(mated)[:200]
    results = service.find_batch(coll, [mated[p] for p in people], k=1)
    rank1 = np.mean([r[0].external_id == p for p, r in zip(people, results, strict=True)])
    accepted = np.mean(
        [
            r.accepted is not None and r[0].external_id == p
            for p, r in zip(people, results, strict=True)
        ]
    )
    assert rank1 >= 0.95 and accepted >= 0.8, (rank1, accepted)
    gone = people[:20]
    for person in gone:
        service.delete_identity(coll, person)
    again = service.find_batch(coll, [mated[p] for p in gone], k=5)
    assert not {m.external_id for r in again for m in r} & set(gone)
