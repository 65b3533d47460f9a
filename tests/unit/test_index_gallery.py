"""GalleryIndex: exactness, recall of approximate kinds, removal, validation, kind switching,
and concurrent searches during changes."""

from __future__ import annotations

import threading
import time

import faiss
import numpy as np
import pytest

from identity_service.errors import FaceIDError
from identity_service.index import GalleryIndex, GalleryIndexError, GpuUnavailableError


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int, clusters: int = 40, spread: float = 0.6, seed: int = 0):
    """Unit vectors around ``clusters`` centres: a small stand-in for identities' embeddings."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((clusters, dim)))
    labels = rng.integers(0, clusters, n)
    noise = rng.standard_normal((n, dim)) * spread / np.sqrt(dim)
    return unit(centres[labels] + noise)


def probes(gallery: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = gallery[rng.choice(len(gallery), n, replace=False)]
    return unit(picks + rng.standard_normal(picks.shape) * 0.3 / np.sqrt(gallery.shape[1]))


def recall_at(approx: np.ndarray, exact: np.ndarray) -> float:
    hits = [len(set(a.tolist()) & set(e.tolist())) for a, e in zip(approx, exact, strict=True)]
    return sum(hits) / exact.size


SMALL_IVFPQ = {"ivfpq_min_train": 1000, "pq_m": 8, "pq_nbits": 6}


def test_flat_search_equals_numpy_brute_force():
    x = clustered(600, 32)
    ids = np.arange(600, dtype=np.int64) * 7 + 3
    q = probes(x, 25)
    index = GalleryIndex(32, "flat")
    assert index.add(ids, x) == 600
    sims, found = index.search(q, 10)
    scores = q @ x.T
    order = np.argsort(-scores, axis=1)[:, :10]
    assert found.dtype == np.int64 and sims.dtype == np.float32
    np.testing.assert_array_equal(found, ids[order])
    np.testing.assert_allclose(sims, np.take_along_axis(scores, order, axis=1), atol=1e-5)


@pytest.mark.parametrize("kind", ["ivf", "hnsw", "ivfpq-refine"])
def test_approximate_kinds_recall_at_10(kind):
    x = clustered(5000, 32, clusters=200, spread=1.0)
    q = probes(x, 200)
    ids = np.arange(len(x), dtype=np.int64)
    exact = GalleryIndex(32, "flat")
    exact.add(ids, x)
    approx = GalleryIndex(32, kind)
    approx.add(ids, x)
    assert approx.backend_kind == kind
    assert recall_at(approx.search(q, 10).ids, exact.search(q, 10).ids) >= 0.95


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw", "ivfpq", "ivfpq-refine", "auto"])
def test_remove_really_removes(kind):
    x = clustered(3000, 32)
    ids = np.arange(3000, dtype=np.int64) + 100
    index = GalleryIndex(32, kind, **(SMALL_IVFPQ if kind == "ivfpq" else {}))
    index.add(ids, x)
    gone = ids[::3]
    assert index.remove(np.append(gone, [10**9])) == len(gone)  # a missing id is ignored
    assert index.remove(gone) == 0
    assert len(index) == 3000 - len(gone)
    assert int(gone[0]) not in index and int(ids[1]) in index
    np.testing.assert_array_equal(index.ids(), np.setdiff1d(ids, gone))
    # Search for the removed vectors themselves: none of them may come back.
    _, found = index.search(x[::3][:200], 20)
    assert not np.isin(found, gone).any()
    assert (found >= 0).all()


def test_refine_returns_exact_similarities_and_retrains_when_outgrown():
    x = clustered(4500, 32, clusters=100, spread=1.0)
    ids = np.arange(4500, dtype=np.int64) * 3
    index = GalleryIndex(32, "ivfpq-refine", ivf_min_train=1000)
    index.add(ids[:1000], x[:1000])
    assert index.backend_kind == "ivfpq-refine"
    trained_on = index.export_state().extra["trained_n"]
    index.add(ids[1000:], x[1000:])  # > 4x the training size: retrained from its own vectors
    assert index.export_state().extra["trained_n"] > trained_on and len(index) == 4500
    q = probes(x, 50)
    sims, found = index.search(q, 5)
    # Whatever the PQ pass picked, the similarity reported is the exact inner product.
    rows = found // 3
    np.testing.assert_allclose(sims, np.einsum("qkd,qd->qk", x[rows], q), atol=1e-5)
    assert (np.diff(sims, axis=1) <= 1e-6).all()  # ranked best first


def test_refine_picks_lists_itself_for_any_nprobe_including_all_of_them():
    x = clustered(3000, 32, clusters=60, spread=1.0)
    index = GalleryIndex(32, "ivfpq-refine", ivf_min_train=1000)
    index.add(np.arange(3000, dtype=np.int64), x)
    nlist = index.export_state().extra["nlist"]
    q = probes(x, 60)
    exact = np.argmax(q @ x.T, axis=1)
    hits = {}
    for nprobe in (1, nlist // 2, nlist, 10 * nlist):
        sims, found = index.search(q, 5, nprobe=nprobe)
        # One list may hold fewer than k faces: those slots are -1 with similarity -inf.
        assert (found[:, 0] >= 0).all() and np.isneginf(sims[found < 0]).all()
        if nprobe >= nlist // 2:
            assert (found >= 0).all() and (np.diff(sims, axis=1) <= 1e-6).all()
        hits[nprobe] = (found[:, 0] == exact).mean()
    assert hits[nlist] >= 0.95 and hits[10 * nlist] == hits[nlist]  # capped at every list
    assert hits[1] <= hits[nlist // 2] <= hits[nlist]


def test_refine_search_survives_faiss_torch_patch():
    # pytorch-metric-learning imports this; it makes faiss' reconstruct_n return torch tensors.
    import faiss.contrib.torch_utils  # noqa: F401

    x = clustered(2000, 32, clusters=40, spread=1.0)
    index = GalleryIndex(32, "ivfpq-refine", ivf_min_train=1000)
    index.add(np.arange(2000, dtype=np.int64), x)
    found = index.search(x[:20], 3).ids
    assert isinstance(found, np.ndarray) and (found[:, 0] == np.arange(20)).mean() >= 0.95


def test_hnsw_tombstones_are_filtered_then_compacted():
    x = clustered(1000, 16)
    ids = np.arange(1000, dtype=np.int64)
    index = GalleryIndex(16, "hnsw", tombstone_fraction=0.2)
    index.add(ids, x)
    index.remove(ids[:100])
    stats = index.stats()
    assert (stats.count, stats.stored, stats.tombstones) == (900, 1000, 100)
    _, found = index.search(x[:100], 10)
    assert not np.isin(found, ids[:100]).any() and (found >= 0).all()
    index.remove(ids[100:300])  # 300 tombstones > 20% of 1000 stored: compaction
    stats = index.stats()
    assert (stats.count, stats.stored, stats.tombstones) == (700, 700, 0)
    # A removed id can come back (compaction first, so its tombstone does not hide it).
    index.add(ids[:1], x[:1])
    assert index.search(x[:1], 1).ids[0, 0] == 0


def test_fewer_results_than_k_are_padded():
    index = GalleryIndex(8, "flat")
    sims, found = index.search(unit(np.ones((2, 8))), 4)
    assert (found == -1).all() and np.isneginf(sims).all()
    index.add([5, 6, 7], unit(np.eye(8)[:3]))
    sims, found = index.search(np.eye(8, dtype=np.float32)[0], 5)
    assert found.shape == (1, 5)
    assert found[0, 0] == 5 and (found[0, 3:] == -1).all() and np.isneginf(sims[0, 3:]).all()


def test_add_skips_ids_already_present_and_normalises():
    index = GalleryIndex(4, "flat")
    assert index.add([1, 2], np.array([[2, 0, 0, 0], [0, 3, 0, 0]], np.float64)) == 2
    assert index.add([2, 3], np.array([[0, 1, 0, 0], [0, 0, 1, 0]], np.float32)) == 1
    sims, found = index.search(np.array([1, 0, 0, 0], np.float32), 1)
    assert found[0, 0] == 1 and sims[0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "ids, vectors, fragment",
    [
        ([1], np.ones((1, 5), np.float32), "shape"),
        ([1], np.full((1, 4), np.nan, np.float32), "NaN"),
        ([1], np.ones((1, 4), np.int32), "floating"),
        ([1], np.zeros((1, 4), np.float32), "zero vector"),
        ([-1], np.ones((1, 4), np.float32), "ids must be in"),
        ([1.5], np.ones((1, 4), np.float32), "integer"),
        ([1, 1], np.ones((2, 4), np.float32), "repeat"),
        ([1, 2], np.ones((1, 4), np.float32), "2 ids but 1"),
    ],
)
def test_bad_inputs_raise_typed_errors(ids, vectors, fragment):
    index = GalleryIndex(4, "flat")
    with pytest.raises(GalleryIndexError, match=fragment) as info:
        index.add(ids, vectors)
    assert isinstance(info.value, FaceIDError) and isinstance(info.value, ValueError)
    assert info.value.code == "index_error"
    assert len(index) == 0


def test_bad_queries_and_configuration():
    index = GalleryIndex(4, "flat")
    with pytest.raises(GalleryIndexError):
        index.search(np.ones((1, 3), np.float32), 1)
    with pytest.raises(GalleryIndexError):
        index.search(np.ones((1, 4), np.float32), 0)
    with pytest.raises(GalleryIndexError):
        GalleryIndex(4, "lsh")
    with pytest.raises(GalleryIndexError):
        GalleryIndex(4, "flat", metric="l1")
    with pytest.raises(GalleryIndexError, match="unknown index parameter"):
        GalleryIndex(4, "hnsw", hnsw_mm=3)


def test_auto_switches_kind_with_gallery_size():
    x = clustered(800, 32)
    ids = np.arange(800, dtype=np.int64)
    # Threshold: 32 * 300 cells / 32 dims = 300 faces.
    index = GalleryIndex(32, "auto", auto_flat_max_cells=32 * 300, tombstone_fraction=0.3)
    index.add(ids[:200], x[:200])
    assert index.backend_kind == "flat"
    index.add(ids[200:400], x[200:400])
    assert index.backend_kind == "ivfpq-refine" and len(index) == 400
    assert index.search(x[:50], 1).ids[:, 0].tolist() == list(range(50))
    index.remove(ids[:150])  # 250 left: above half the threshold, stays approximate
    assert index.backend_kind == "ivfpq-refine" and len(index) == 250
    index.remove(ids[150:300])  # below half: back to exact
    assert index.backend_kind == "flat" and len(index) == 100
    np.testing.assert_array_equal(index.ids(), ids[300:400])
    index.rebuild(ids, x)
    assert index.backend_kind == "ivfpq-refine" and len(index) == 800


def test_ivf_trains_when_enough_data_and_retrains_when_outgrown():
    x = clustered(6000, 16)
    ids = np.arange(6000, dtype=np.int64)
    index = GalleryIndex(16, "ivf", ivf_min_train=500)
    index.add(ids[:400], x[:400])
    assert index.backend_kind == "flat"  # too little data to train k-means on
    index.add(ids[400:1000], x[400:1000])
    assert index.backend_kind == "ivf"
    nlist_small = index._backend.index.nlist
    index.add(ids[1000:], x[1000:])  # 6x the training size: retrained with more lists
    assert index._backend.index.nlist > nlist_small
    assert index._backend.trained_n == 6000 and len(index) == 6000


def test_ivfpq_flags_rebuild_when_outgrown():
    x = clustered(6000, 16)
    ids = np.arange(6000, dtype=np.int64)
    index = GalleryIndex(16, "ivfpq", **SMALL_IVFPQ)
    index.add(ids[:1200], x[:1200])
    assert index.backend_kind == "ivfpq" and not index.needs_rebuild
    index.add(ids[1200:], x[1200:])
    assert index.needs_rebuild and len(index) == 6000
    index.rebuild(ids, x)
    assert not index.needs_rebuild


@pytest.mark.skipif(
    hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0,
    reason="this faiss build has a GPU",
)
def test_gpu_without_gpu_support_is_a_typed_error():
    with pytest.raises(GpuUnavailableError) as info:
        GalleryIndex(8, "flat", gpu=True)
    assert info.value.code == "gpu_unavailable"


CONCURRENT_PARAMS = {
    "flat": {},
    "hnsw": {},
    "auto": {"auto_flat_max_cells": 16 * 1000},  # switches to ivfpq-refine mid-run
    "ivf": {"ivf_min_train": 500},  # trains, then retrains mid-run
    "ivfpq-refine": {"ivf_min_train": 500},
}


@pytest.mark.parametrize("kind", sorted(CONCURRENT_PARAMS))
def test_concurrent_searches_never_crash_nor_see_removed_ids(kind):
    dim = 16
    x = clustered(2400, dim, seed=3)
    ids = np.arange(2400, dtype=np.int64)
    params = CONCURRENT_PARAMS[kind]
    index = GalleryIndex(dim, kind, tombstone_fraction=0.25, **params)
    index.add(ids[:400], x[:400])
    removed: set[int] = set()
    errors: list[BaseException] = []
    searches = [0, 0, 0]
    stop = threading.Event()

    def writer():
        try:
            for start in range(400, 2400, 200):
                index.add(ids[start : start + 200], x[start : start + 200])
                victims = ids[start - 400 : start - 300]
                index.remove(victims)
                removed.update(victims.tolist())  # only after remove() returned
            index.rebuild(np.setdiff1d(ids, list(removed)), x[np.setdiff1d(ids, list(removed))])
        except BaseException as exc:
            errors.append(exc)
        finally:
            stop.set()

    def reader(seed: int):
        rng = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                gone = frozenset(removed)
                q = x[rng.integers(0, 2400, 8)]
                _, found = index.search(q, 10)
                leaked = gone.intersection(found.ravel().tolist())
                assert not leaked, f"search returned removed ids {sorted(leaked)[:5]}"
                searches[seed] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(3)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "threads did not finish"
    assert not errors, errors[0]
    assert len(index) == 2400 - len(removed)
    assert min(searches) > 0, searches


def test_refine_chooses_candidates_of_wide_embeddings_in_128_dims(tmp_path):
    from identity_service.index import load_snapshot, save_snapshot

    dim = 320
    x = clustered(4000, dim, clusters=200, spread=1.0)
    ids = np.arange(4000, dtype=np.int64) + 10
    index = GalleryIndex(dim, "ivfpq-refine", ivf_min_train=1000)
    index.add(ids, x)
    assert index.export_state().extra["code_dim"] == 128
    q = probes(x, 80)
    sims, found = index.search(q, 5, nprobe=10_000)
    exact = np.argmax(q @ x.T, axis=1) + 10
    assert (found[:, 0] == exact).mean() >= 0.95
    np.testing.assert_allclose(sims, np.einsum("qkd,qd->qk", x[found - 10], q), atol=1e-5)
    index.remove(found[:10, 0])
    after, _ = index.search(q[:10], 1, nprobe=10_000)
    assert not set(index.search(q[:10], 3, nprobe=10_000)[1].ravel()) & set(found[:10, 0])
    path = save_snapshot(index, tmp_path / "wide.fidx", seq=5)
    loaded, seq, _ = load_snapshot(path, dim=dim)
    again = loaded.search(q, 5, nprobe=10_000)
    np.testing.assert_array_equal(again[1], index.search(q, 5, nprobe=10_000)[1])
    assert seq == 5 and len(loaded) == 3990 and after.shape == (10, 1)
