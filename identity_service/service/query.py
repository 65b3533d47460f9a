"""FaceService's 1:N queries: ``find`` and ``find_batch`` (probes are images or embeddings) and
``search`` (embeddings only: what the HTTP API calls once its model pool has embedded a probe).

Everything but the embedding comes from memory in the common case: the collection record, the
operating point in force and the owners of the faces hit live in the collection's state
(:mod:`.live`), kept fresh by polls of the index log (:mod:`.galleries`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from ..embed import l2_normalise
from ..errors import FaceIDError, InvalidParameterError, ModelMismatchError
from ..imaging import ImageInput
from ..pipeline import FacePipeline
from ..store import CollectionRecord
from ..types import OperatingPoint
from .galleries import Galleries
from .open_set import OpenSetPolicy
from .ranking import Aggregate, rank_identities
from .results import Matches


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class QueryMixin:
    # Defined by FaceService.
    tenant: str
    galleries: Galleries
    open_set: OpenSetPolicy
    _coll: Callable[[str | CollectionRecord], CollectionRecord]
    pipeline: Callable[[str | None], FacePipeline]

    def live_collection(self, name: str) -> CollectionRecord:
        """The collection for a query: from this node's memory when it holds it (as fresh as
        the last poll of the index log), else from the database."""
        found = self.galleries.lookup(self.tenant, name)
        return found if found is not None else self._coll(name)

    def find(
        self,
        collection: str | CollectionRecord,
        probe: ImageInput,
        k: int = 5,
        *,
        aggregate: Aggregate = "max",
        top_m: int = 3,
        threshold: float | None = None,
        fpir: float | None = None,
    ) -> Matches:
        """Who is this? Ranked identities (best first); ``matches[0].accepted`` is False when
        nobody passes the operating point (open set: "unknown"), which
        ``matches.operating_point`` states: by default the threshold at which the collection's
        own gallery accepts its target FPIR of strangers (``fpir`` for another rate,
        ``threshold`` for a fixed cosine distance).

        ``probe`` is an image (its centre-most face is used) or an embedding of the collection's
        model. ``aggregate="max"`` ranks identities by their best face, ``"mean"`` by the mean
        of their top ``top_m`` face similarities."""
        return self.find_batch(
            collection,
            [probe],
            k,
            aggregate=aggregate,
            top_m=top_m,
            threshold=threshold,
            fpir=fpir,
        )[0]

    def find_batch(
        self,
        collection: str | CollectionRecord,
        probes: Sequence[ImageInput],
        k: int = 5,
        *,
        aggregate: Aggregate = "max",
        top_m: int = 3,
        threshold: float | None = None,
        fpir: float | None = None,
    ) -> list[Matches]:
        if k < 1:
            raise InvalidParameterError(f"k must be at least 1, got {k}", parameter="k")
        coll = self.live_collection(collection) if isinstance(collection, str) else collection
        queries = self._probe_vectors(coll, probes)
        return self.search(
            coll, queries, k, aggregate=aggregate, top_m=top_m, threshold=threshold, fpir=fpir
        )

    def search(
        self,
        collection: CollectionRecord,
        queries: np.ndarray,
        k: int = 5,
        *,
        aggregate: Aggregate = "max",
        top_m: int = 3,
        threshold: float | None = None,
        fpir: float | None = None,
        timings: dict[str, float] | None = None,
    ) -> list[Matches]:
        """``find`` for L2-normalised embeddings ``(n, dim)`` of the collection's model.
        ``timings`` (ms) receives ``point`` (the operating point), ``index`` (the FAISS search)
        and ``owners`` (face hits to ranked people)."""
        if k < 1:
            raise InvalidParameterError(f"k must be at least 1, got {k}", parameter="k")
        timings = {} if timings is None else timings
        start = time.perf_counter()
        follower = self.galleries.fresh(collection)
        coll = self.galleries.current(collection)
        if threshold is not None:
            point = OperatingPoint(threshold, None, None, "threshold given by the caller")
        else:
            point = self.open_set.operating_point(coll, fpir)
        timings["point"] = _ms(start)
        start = time.perf_counter()
        # Enough faces to fill k identities even when each has several photos.
        k_faces = min(max(4 * k, k + 4 * top_m, 20), max(len(follower), 1))
        sims, ids = follower.search(queries, k_faces)
        timings["index"] = _ms(start)
        start = time.perf_counter()
        faces = self.galleries.owners(coll, sorted({int(i) for i in ids.ravel() if i >= 0}))
        matches = [
            Matches(
                rank_identities(row_sims, row_ids, faces, k, aggregate, top_m, point.threshold),
                point,
            )
            for row_sims, row_ids in zip(sims, ids, strict=True)
        ]
        timings["owners"] = _ms(start)
        return matches

    def _probe_vectors(self, coll: CollectionRecord, probes: Sequence[ImageInput]) -> np.ndarray:
        vectors = []
        images: list[tuple[int, ImageInput]] = []
        for i, probe in enumerate(probes):
            if isinstance(probe, np.ndarray) and probe.ndim == 1:
                vectors.append((i, check_embedding(probe, coll)))
            else:
                images.append((i, probe))
        if images:
            outcomes = self.pipeline(coll.model).represent_batch([p for _, p in images])
            for (i, _), outcome in zip(images, outcomes, strict=True):
                if isinstance(outcome, FaceIDError):
                    if len(probes) > 1:
                        outcome.details.setdefault("probe", i)
                    raise outcome
                vectors.append((i, outcome[0].embedding))
        vectors.sort(key=lambda item: item[0])
        return np.stack([v for _, v in vectors]).astype(np.float32)


def check_embedding(probe: np.ndarray | Sequence[float], coll: CollectionRecord) -> np.ndarray:
    """An embedding probe of ``coll``'s model, L2-normalised: its dimension must match (else
    ModelMismatchError), and it must be finite and not zero (else InvalidParameterError)."""
    vector = np.asarray(probe, dtype=np.float32).reshape(-1)
    if vector.shape[0] != coll.dim:
        raise ModelMismatchError(
            f"embedding has {vector.shape[0]} dimensions; collection {coll.name!r} "
            f"holds {coll.dim}-d embeddings of {coll.model_tag}",
            collection=coll.name,
            model=coll.model_tag,
        )
    if not np.isfinite(vector).all() or not vector.any():
        raise InvalidParameterError(
            "embedding must be finite and not all zero", parameter="embedding"
        )
    return l2_normalise(vector[None])[0]
