"""FaceService: the one domain facade every door (CLI, HTTP API, workers) calls.

``FaceService.embedded()`` is the embedded default: a SQLite file under ``FACEID_DATA_DIR``,
brought to the newest schema, and an in-process FAISS gallery (``FaceService()`` is shorthand
for it). ``FaceService(settings)`` opens a database that is already at head (``faceid db
upgrade``) and never migrates it: with a Postgres ``database_url`` that is the production shape,
and the gallery follows the database's ``index_log``.

A service acts for one tenant, ``default`` unless it comes from :meth:`FaceService.for_tenant`:
collections are looked up and created in that tenant only.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..calibration.open_set import check_fpir
from ..config import Settings, get_settings
from ..errors import (
    FaceIDError,
    ModelMismatchError,
    NoFaceError,
    UnknownCollectionError,
    UnknownIdentityError,
)
from ..imaging import ImageInput, load_image_hashed
from ..index.snapshot import list_snapshots
from ..pipeline import FacePipeline
from ..store import (
    CollectionRecord,
    NewFace,
    Repository,
    check_schema,
    make_engine,
    upgrade,
)
from ..store.metadata import check_metadata
from ..types import DEFAULT_TENANT
from .enrollment import ManyFaces, new_face, pick_face
from .galleries import Galleries
from .ids import check_external_id
from .open_set import OpenSetPolicy
from .query import QueryMixin
from .results import EnrollResult, ImageFailure
from .thresholds import ThresholdsMixin
from .vector_store import drop_remote


class FaceService(QueryMixin, ThresholdsMixin):
    def __init__(self, settings: Settings | None = None, *, workers: int | None = None) -> None:
        """Open the database of ``settings``, which must be at head. ``FaceService()``, with no
        settings, is shorthand for ``FaceService.embedded()``."""
        if settings is None:
            settings = get_settings()
            _migrate_embedded(settings)
        self.settings = settings
        self.tenant = DEFAULT_TENANT
        self._owner = True
        self.engine = make_engine(settings.resolved_database_url)
        check_schema(self.engine)
        self.repo = Repository(self.engine)
        self.galleries = Galleries(self.repo, self.settings)
        self.open_set = OpenSetPolicy(
            self.repo, self.galleries, self.settings, self._verify_threshold
        )
        self._workers = workers
        self._pipelines: dict[str, FacePipeline] = {}
        self._lock = threading.Lock()

    @classmethod
    def embedded(
        cls, settings: Settings | None = None, *, workers: int | None = None
    ) -> FaceService:
        """The embedded default: with no ``database_url``, the SQLite file under ``data_dir``
        is created or brought to the newest schema first. A configured database is opened as
        it is (migrate it with ``faceid db upgrade``)."""
        settings = settings or get_settings()
        _migrate_embedded(settings)
        return cls(settings, workers=workers)

    def for_tenant(self, tenant: str) -> FaceService:
        """This service, acting for ``tenant``: the same database, indexes and loaded models;
        only that tenant's collections are seen. Closing it leaves the service open."""
        handle = copy.copy(self)
        handle.tenant = tenant
        handle._owner = False
        return handle

    # -- models ------------------------------------------------------------------------------
    def pipeline(self, model: str | None = None) -> FacePipeline:
        """The (cached) pipeline for an embedder name; models load once per process."""
        model = model or self.settings.models.embedder
        with self._lock:
            if model not in self._pipelines:
                self._pipelines[model] = FacePipeline(
                    embedder=model,
                    settings=self.settings,
                    workers=self._workers,
                    threshold_provider=self._calibration_in_force,
                )
            return self._pipelines[model]

    # -- collections -------------------------------------------------------------------------
    def create_collection(
        self,
        name: str,
        model: str | None = None,
        *,
        threshold: float | None = None,
        target_fpir: float | None = None,
    ) -> CollectionRecord:
        """A new gallery. ``threshold`` is its 1:1 (verify) threshold; ``target_fpir`` the
        false-positive identification rate ``find`` aims at (default: the settings')."""
        embedder = self.pipeline(model).embedder
        return self.repo.create_collection(
            name,
            model=embedder.name,
            model_version=embedder.version,
            dim=embedder.dim,
            tenant=self.tenant,
            threshold=threshold,
            target_fpir=None if target_fpir is None else check_fpir(target_fpir),
        )

    def collection(self, name: str) -> CollectionRecord:
        return self.repo.get_collection(name, self.tenant)

    def get_or_create_collection(self, name: str, model: str | None = None) -> CollectionRecord:
        try:
            coll = self.repo.get_collection(name, self.tenant)
        except UnknownCollectionError:
            return self.create_collection(name, model)
        if model and model != coll.model:
            raise ModelMismatchError(
                f"collection {name!r} uses model {coll.model_tag}, not {model}",
                collection=name,
                model=coll.model_tag,
            )
        return coll

    def _coll(self, collection: str | CollectionRecord) -> CollectionRecord:
        return (
            collection if isinstance(collection, CollectionRecord) else self.collection(collection)
        )

    # -- enrollment --------------------------------------------------------------------------
    def enroll(
        self,
        collection: str | CollectionRecord,
        external_id: str,
        images: Sequence[ImageInput],
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        many_faces: ManyFaces = "centre",
    ) -> EnrollResult:
        """Add photos of one person. Re-enrolling a stored photo adds nothing. With several faces
        in a photo the centre-most is enrolled (``many_faces="error"`` refuses instead)."""
        coll = self._coll(collection)
        check_external_id(external_id)
        check_metadata(metadata)
        result = EnrollResult(external_id=external_id, identity_id=None)
        known = {sha for ext, sha in self.repo.known_images(coll.id) if ext == external_id}
        todo: list[tuple[str, str, np.ndarray]] = []
        for i, image in enumerate(images):
            label = (
                str(image)
                if not isinstance(image, (bytes, bytearray, np.ndarray))
                else (f"image {i}")
            )
            try:
                loaded = load_image_hashed(image)
            except FaceIDError as exc:
                result.failures.append(ImageFailure(label[:200], exc.code, exc.message))
                continue
            if loaded.sha256 in known:
                result.duplicates += 1
                continue
            known.add(loaded.sha256)
            todo.append((label, loaded.sha256, loaded.array))
        pipeline = self.pipeline(coll.model)
        outcomes = pipeline.represent_batch([a for _, _, a in todo])
        new_faces: list[NewFace] = []
        for (label, sha, _), outcome in zip(todo, outcomes, strict=True):
            pick = pick_face(outcome, label, many_faces)
            if pick.failure is not None:
                result.failures.append(pick.failure)
            result.multi_face_images += pick.multi_face
            if pick.face is not None:
                new_faces.append(new_face(pick.face, sha))
        # A person is created only with a face; an existing one takes the name and metadata.
        if new_faces or self._identity_exists(coll, external_id):
            identity = self.repo.upsert_identity(coll.id, external_id, name, metadata)
            result.identity_id = identity.id
        if new_faces:
            assert result.identity_id is not None
            result.face_ids = self.repo.add_faces(coll.id, result.identity_id, new_faces)
            result.duplicates += len(new_faces) - len(result.face_ids)
        if result.identity_id is not None:
            self.galleries.notify_changed(coll)
        return result

    def _identity_exists(self, coll: CollectionRecord, external_id: str) -> bool:
        try:
            self.repo.get_identity(coll.id, external_id)
        except UnknownIdentityError:
            return False
        return True

    # -- deletion ----------------------------------------------------------------------------
    def delete_identity(self, collection: str | CollectionRecord, external_id: str) -> int:
        """Remove a person: their faces leave the database and every index."""
        coll = self._coll(collection)
        removed = self.repo.delete_identity(coll.id, external_id)
        self.galleries.notify_changed(coll)
        return removed

    def delete_face(self, collection: str | CollectionRecord, face_id: int) -> None:
        coll = self._coll(collection)
        self.repo.delete_face(coll.id, face_id)
        self.galleries.notify_changed(coll)

    def delete_collection(self, collection: str | CollectionRecord) -> None:
        """Drop a collection with its identities, faces and log, and its loaded index."""
        coll = self._coll(collection)
        self.repo.delete_collection(coll.id)
        self.galleries.drop(coll.id)
        drop_remote(self.repo, coll, self.settings)  # a Milvus collection goes with it
        self.open_set.forget(coll.id)
        # SQLite may hand the id to the next collection: its snapshots must not be loaded.
        for path in list_snapshots(self.settings.data_dir / "index", f"collection-{coll.id}"):
            path.unlink(missing_ok=True)

    # -- index admin -------------------------------------------------------------------------
    def snapshot(self, collection: str | CollectionRecord) -> str:
        coll = self._coll(collection)
        return str(self.galleries.fresh(coll, force=True).snapshot())

    def rebuild_index(self, collection: str | CollectionRecord) -> int:
        coll = self._coll(collection)
        return self.galleries.follower(coll).rebuild()

    def close(self) -> None:
        if not self._owner:
            return
        self.galleries.close()
        for pipeline in self._pipelines.values():
            pipeline.close()
        self.engine.dispose()

    def __enter__(self) -> FaceService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _migrate_embedded(settings: Settings) -> None:
    if settings.database_url is None:
        upgrade(settings.resolved_database_url)


__all__ = ["FaceService", "NoFaceError"]
