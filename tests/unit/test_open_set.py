"""Open-set calibration: thresholds at a target FPIR on score distributions whose answer is
known, leave-one-identity-out searches, the small-gallery rule, and recalibration on growth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from identity_service import FaceService, Settings
from identity_service.calibration.open_set import (
    LEAVE_ONE_OUT,
    MODEL_PRIOR,
    OpenSetEstimate,
    leave_one_out_scores,
    prior_similarity,
    similarity_at_fpir,
)
from identity_service.config import IndexSettings
from identity_service.errors import FaceIDError
from identity_service.store import NewFace


def test_threshold_at_fpir_is_the_known_normal_quantile():
    scores = np.random.default_rng(1).standard_normal(200_000)
    for fpir, z in ((0.1, 1.2816), (0.01, 2.3263), (0.001, 3.0902)):
        t = similarity_at_fpir(scores, fpir)
        assert abs(t - z) < 0.03
        assert np.mean(scores >= t) <= fpir


def test_threshold_accepts_exactly_the_allowed_share():
    scores = np.arange(100, dtype=float)  # 0..99
    t = similarity_at_fpir(scores, 0.05)
    # The smallest such threshold: one step lower accepts a sixth.
    assert np.sum(scores >= t) == 5 and np.sum(scores >= np.nextafter(t, -np.inf)) == 6
    assert 94 < t <= 95
    # No score may be accepted when the share allows none.
    assert similarity_at_fpir(scores, 0.001) > 99


@pytest.mark.parametrize("fpir", [0.0, 1.0, -0.1, 2.0])
def test_fpir_outside_0_1_is_a_typed_error(fpir):
    with pytest.raises(FaceIDError):
        similarity_at_fpir(np.arange(10.0), fpir)


def test_prior_scales_the_per_comparison_rate_to_the_gallery():
    # A tail with similarity linear in log10(FAR): s = -0.1 * log10(FAR).
    tail = tuple((10.0**-e, 0.1 * e) for e in range(1, 8))
    # One identity: the per-comparison FAR is the FPIR itself.
    assert prior_similarity(tail, 1, 0.01) == pytest.approx(0.2, abs=1e-6)
    # N identities: FAR = 1 - (1 - f)^(1/N), about f / N.
    far = -math.expm1(math.log1p(-0.01) / 1000)
    assert prior_similarity(tail, 1000, 0.01) == pytest.approx(-0.1 * math.log10(far), abs=1e-6)
    assert prior_similarity(tail, 1000, 0.01) > prior_similarity(tail, 10, 0.01)


def test_leave_one_out_skips_the_probes_own_identity():
    # Gallery: identity 0 has faces 0 and 1 (identical), identity 1 face 2, identity 2 face 3.
    gallery = np.array([[1, 0, 0], [1, 0, 0], [0.8, 0.6, 0], [0, 0, 1]], dtype=np.float32)
    owners_all = np.array([0, 0, 1, 2])

    def search(q, k):
        sims = q @ gallery.T
        ids = np.argsort(-sims, axis=1)[:, :k]
        return np.take_along_axis(sims, ids, axis=1), ids

    scores = leave_one_out_scores(
        gallery[[0, 2]], owners_all[[0, 2]], np.array([2, 1]), search, lambda i: owners_all[i], 4
    )
    # Face 0's best other identity is face 2 (0.8); face 2's is face 0 or 1 (0.8).
    np.testing.assert_allclose(sorted(scores), [0.8, 0.8], atol=1e-6)


def test_estimate_uses_its_searches_when_enough_else_the_prior_else_says_so():
    scores = np.sort(np.random.default_rng(0).uniform(0, 1, 2000))[::-1]
    tail = ((0.1, 0.3), (0.01, 0.5), (0.001, 0.7))
    est = OpenSetEstimate("m@1", 2000, 2000, scores, tail, created="2026-12-05T00:00:00")
    point = est.operating_point(0.01)
    assert point.source.startswith(LEAVE_ONE_OUT) and "2,000 searches" in point.source
    assert point.threshold == pytest.approx(1 - similarity_at_fpir(scores, 0.01))
    # 2,000 searches place FPIR 0.001 on 2 exceedances: the prior answers instead.
    point = est.operating_point(0.001)
    assert point.source.startswith(MODEL_PRIOR) and "too few" in point.source
    # Without a prior, too few searches place nothing: the service says what it uses instead.
    assert OpenSetEstimate("m@1", 2000, 2000, scores).operating_point(0.001) is None
    assert OpenSetEstimate("m@1", 1, 1, np.zeros(0)).operating_point(0.01) is None


# -- the service: every find states its operating point; growth recalibrates ------------------
DIM = 16


def _faces(rng, n, identities, start=0):
    centres = rng.standard_normal((identities, DIM))
    out = []
    for i in range(n):
        v = centres[i % identities] + 0.3 * rng.standard_normal(DIM)
        out.append((start + i % identities, v / np.linalg.norm(v)))
    return out


def _add(service, coll, faces, tag):
    for ident, vec in faces:
        row = service.repo.upsert_identity(coll.id, f"p{ident}", None, None)
        face = NewFace(
            image_sha256=f"{tag}-{ident}-{vec[0]:.6f}",
            face_index=0,
            box=[0, 0, 1, 1],
            landmarks=[[0, 0]] * 5,
            det_score=1.0,
            quality=None,
            embedding=vec.astype(np.float32),
            model=coll.model_tag,
        )
        service.repo.add_faces(coll.id, row.id, [face])
    service.galleries.notify_changed(coll)


@pytest.fixture
def synthetic(tmp_path, vector_store):
    """A collection of synthetic faces, once per vector store (faiss, milvus)."""
    index = IndexSettings(open_set_recalibrate_factor=1.5, vector_store=vector_store)
    settings = Settings(data_dir=tmp_path, workers=1, index=index)
    service = FaceService.embedded(settings)
    coll = service.repo.create_collection(
        "syn", model="synthetic", model_version="1", dim=DIM, target_fpir=0.05
    )
    yield service, coll
    service.close()


def test_find_states_its_operating_point_and_recalibrates_on_growth(synthetic):
    service, coll = synthetic
    rng = np.random.default_rng(3)
    _add(service, coll, _faces(rng, 400, 400), "a")
    probe = rng.standard_normal(DIM)
    matches = service.find(coll, probe, k=3)
    point = matches.operating_point
    assert point.target_fpir == 0.05 and point.gallery_identities == 400
    assert "400 searches at 400 identities" in point.source
    assert all(m.threshold == point.threshold for m in matches)
    first = service.repo.open_set_newest_id(coll.id, coll.model_tag)

    _add(service, coll, _faces(rng, 100, 100, start=400), "b")  # x1.25: below the factor
    service.find(coll, probe)
    assert service.repo.open_set_newest_id(coll.id, coll.model_tag) == first

    _add(service, coll, _faces(rng, 200, 200, start=500), "c")  # x1.75 of the calibrated 400
    again = service.find(coll, probe).operating_point
    assert service.repo.open_set_newest_id(coll.id, coll.model_tag) != first
    assert again.gallery_identities == 700


def test_per_call_fpir_and_threshold_and_collection_target(synthetic):
    service, coll = synthetic
    _add(service, coll, _faces(np.random.default_rng(4), 1500, 1500), "a")
    probe = np.random.default_rng(5).standard_normal(DIM)
    loose = service.find(coll, probe, fpir=0.1).operating_point
    strict = service.find(coll, probe, fpir=0.01).operating_point
    assert loose.target_fpir == 0.1 and loose.threshold > strict.threshold
    fixed = service.find(coll, probe, threshold=0.2).operating_point
    assert fixed.threshold == 0.2 and fixed.target_fpir is None and "caller" in fixed.source
    assert service.find(coll, probe).operating_point.target_fpir == 0.05  # the collection's
    service.set_target_fpir(coll.name, 0.1)
    assert service.find(coll.name, probe).operating_point.threshold == loose.threshold
    with pytest.raises(FaceIDError):
        service.set_target_fpir(coll.name, 1.5)


def test_calibrated_fpir_holds_on_strangers_held_apart(synthetic):
    """Leave-one-out on the gallery predicts how often people never enrolled are accepted."""
    service, coll = synthetic
    rng = np.random.default_rng(6)
    _add(service, coll, _faces(rng, 2000, 2000), "a")
    strangers = np.stack([v for _, v in _faces(rng, 3000, 3000)])
    for fpir in (0.01, 0.05):
        results = service.find_batch(coll, list(strangers), k=1, fpir=fpir)
        measured = np.mean([r[0].accepted for r in results])
        assert fpir / 2 <= measured <= fpir * 2, (fpir, measured)


def test_small_gallery_without_prior_says_it_uses_the_verify_threshold(synthetic):
    service, coll = synthetic
    coll = service.repo.set_threshold(coll.id, 0.3)
    _add(service, coll, _faces(np.random.default_rng(8), 40, 40), "a")
    point = service.find(coll, np.ones(DIM)).operating_point
    assert point.threshold == 0.3 and point.source.startswith("1:1 verify threshold")
    assert "40 searches" in point.source and "no open-set prior" in point.source


def test_strangers_add_searches_and_are_kept_for_recalibration(synthetic):
    service, coll = synthetic
    rng = np.random.default_rng(7)
    _add(service, coll, _faces(rng, 300, 300), "a")
    strangers = [v for _, v in _faces(rng, 50, 50)]
    est = service.calibrate_open_set(coll, strangers=strangers)
    assert est.strangers == 50 and est.n_searches == 350
    assert "50 strangers" in service.find(coll, strangers[0]).operating_point.source
    again = service.open_set.calibrate(coll)
    assert again.strangers == 50 and again.n_searches == 350
