"""Queries: find, verify, represent. Bodies are multipart (files) or JSON (base64).

The endpoints are ``async`` only to read the body; the blocking work runs elsewhere: find's
detection and embedding in the model pool (bounded: a full queue answers 503 at once), its
search and the other routes' work in the threadpool.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faiss
import numpy as np
from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from ..errors import ConflictError, OverloadedError
from ..imaging import load_image
from ..service.model_pool import ModelPool
from ..service.query import check_embedding
from ..store import CollectionRecord
from .auth import Principal, QueryScope
from .deps import Runtime, collection_of, query_collection, runtime
from .errors import LimitExceededError, ValidationError
from .inputs import image_body_openapi, read_image_request
from .schemas import (
    FindJSON,
    FindOut,
    FindParams,
    RepresentJSON,
    RepresentOut,
    RepresentParams,
    VerifyJSON,
    VerifyOut,
    VerifyParams,
)

router = APIRouter(tags=["queries"])
Rt = Depends(runtime)
_NUM = {"type": "number"}
_STR = {"type": "string"}


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 2)


def server_timing(timings: dict[str, float]) -> str:
    return ", ".join(f"{name};dur={ms:.2f}" for name, ms in timings.items())


def _decode(rt: Runtime, data: bytes) -> np.ndarray:
    s = rt.settings
    return load_image(data, max_bytes=s.max_image_bytes, max_pixels=s.max_image_pixels)


def _required(image: bytes | None, field: str) -> bytes:
    if image is None:
        raise ValidationError(f"{field}: an image is required", field=field)
    return image


@router.post(
    "/v1/collections/{collection}/find",
    response_model=FindOut,
    openapi_extra=image_body_openapi(
        FindJSON,
        {"image": "one"},
        {
            "k": {"type": "integer", "default": 5},
            "aggregate": _STR,
            "threshold": _NUM,
            "fpir": _NUM,
        },
    ),
    responses={200: {"headers": {"Server-Timing": {"schema": _STR}}}},
)
async def find(
    collection: str,
    request: Request,
    response: Response,
    who: Principal = QueryScope,
    rt: Runtime = Rt,
) -> Any:
    """Who is this? Identities ranked best first; ``matches[0].accepted`` is false when nobody
    passes the operating point (open set: unknown). ``operating_point`` states it: the
    threshold at which this gallery accepts the target FPIR of strangers, the gallery size it
    was measured at, and its source.

    The probe is an image (its centre-most face), or, as JSON, an ``embedding`` of the
    collection's model (callers that embed at the edge or on GPU workers: no image travels and
    no model runs here). Images are detected and embedded in the server's pool of model
    workers; when its queue is full the answer is 503 ``overloaded`` with Retry-After, at once.
    The ``Server-Timing`` header splits the server's time into decode, queue (waiting for a
    model worker), model (detection and embedding), point (the operating point), index (the
    search), owners (face hits to people) and app (all of it)."""
    req = await read_image_request(request, FindParams, FindJSON, ("image",), 1)
    params = req.params
    assert isinstance(params, FindParams)
    if params.k > rt.settings.api.max_k:
        raise LimitExceededError(
            f"k is {params.k}; at most {rt.settings.api.max_k}", limit=rt.settings.api.max_k
        )
    image = req.one("image")
    embedding = getattr(params, "embedding", None)
    if (image is None) == (embedding is None):
        raise ValidationError("send either an image or an embedding", field="image")
    coll = rt.service.galleries.lookup(who.tenant, collection, poll=False)
    if coll is None:  # not held here yet, or stale: the database, off the event loop
        coll = await run_in_threadpool(query_collection, rt, who, collection)
    timings: dict[str, float] = {}
    vector = None
    if embedding is not None:
        vector = check_embedding(embedding, coll)
    elif (pool := rt.model_pool()) is not None:
        assert image is not None
        vector = await _embed_in_pool(rt, pool, coll.model, image, timings)
    out = await run_in_threadpool(_find, rt, coll, vector, image, params, timings)
    response.headers["Server-Timing"] = server_timing(out["timings_ms"])
    return out


async def _embed_in_pool(
    rt: Runtime, pool: ModelPool, model: str, image: bytes, timings: dict[str, float]
) -> np.ndarray:
    try:
        future = pool.submit(model, image)
    except OverloadedError:
        rt.metrics.shed.inc()
        raise
    embedded = await asyncio.wrap_future(future)
    timings.update(embedded.timings)
    return embedded.face.embedding


def _find(
    rt: Runtime,
    coll: CollectionRecord,
    vector: np.ndarray | None,
    image: bytes | None,
    p: FindParams,
    timings: dict[str, float],
) -> dict[str, Any]:
    service = rt.service
    if rt.settings.api.search_threads:  # OpenMP's setting is per thread: this one's
        faiss.omp_set_num_threads(rt.settings.api.search_threads)
    if vector is None:  # no model pool (FACEID_API_MODEL_WORKERS=0): in this thread
        assert image is not None
        start = time.perf_counter()
        array = _decode(rt, image)
        timings["decode"] = _ms(start)
        start = time.perf_counter()
        vector = service.pipeline(coll.model).represent(array, max_faces=1)[0].embedding
        timings["model"] = _ms(start)
    matches = service.search(
        coll,
        vector[None].astype(np.float32),
        k=p.k,
        aggregate=p.aggregate,
        threshold=p.threshold,
        fpir=p.fpir,
        timings=timings,
    )[0]
    order = ("decode", "queue", "model", "point", "index", "owners")
    timings = {name: round(timings[name], 2) for name in order if name in timings}
    return {"collection": coll.name, **matches.to_dict(), "timings_ms": timings}


@router.post(
    "/v1/verify",
    response_model=VerifyOut,
    openapi_extra=image_body_openapi(
        VerifyJSON,
        {"image1": "one", "image2": "optional"},
        {"collection": _STR, "identity": _STR},
    ),
)
async def verify(request: Request, who: Principal = QueryScope, rt: Runtime = Rt) -> Any:
    """Same person? Either two images, or one image against an identity of a collection (its
    best-matching stored face)."""
    req = await read_image_request(request, VerifyParams, VerifyJSON, ("image1", "image2"), 2)
    params = req.params
    assert isinstance(params, VerifyParams)
    image1 = _required(req.one("image1"), "image1")
    image2 = req.one("image2")
    if (image2 is None) == (params.identity is None):
        raise ValidationError("send either image2 or identity (with collection), not both")
    if params.identity is not None and params.collection is None:
        raise ValidationError("identity needs a collection")
    if image2 is not None:
        return await run_in_threadpool(_verify_images, rt, who, params, image1, image2)
    return await run_in_threadpool(_verify_identity, rt, who, params, image1)


def _verify_images(
    rt: Runtime, who: Principal, p: VerifyParams, image1: bytes, image2: bytes
) -> dict[str, Any]:
    coll = collection_of(rt, who, p.collection) if p.collection else None
    pipeline = rt.service.pipeline(coll.model if coll else None)
    result = pipeline.verify(_decode(rt, image1), _decode(rt, image2)).to_dict()
    if coll is not None:
        in_force = rt.service.threshold_in_force(coll)
        result.update(
            threshold=in_force.threshold,
            threshold_source=in_force.source,
            verified=float(result["distance"]) <= in_force.threshold,  # type: ignore[arg-type]
        )
    return result


def _verify_identity(rt: Runtime, who: Principal, p: VerifyParams, image: bytes) -> dict[str, Any]:
    assert p.collection is not None and p.identity is not None
    service = rt.service
    coll = collection_of(rt, who, p.collection)
    start = time.perf_counter()
    stored = service.repo.identity_embeddings(coll.id, p.identity)
    if len(stored) == 0:
        raise ConflictError(f"identity {p.identity!r} has no enrolled faces", identity=p.identity)
    face = service.pipeline(coll.model).represent(_decode(rt, image), max_faces=1)[0]
    similarity = float(np.max(stored @ face.embedding))
    distance = 1.0 - similarity
    in_force = service.threshold_in_force(coll)
    return {
        "verified": distance <= in_force.threshold,
        "distance": round(distance, 6),
        "similarity": round(similarity, 6),
        "threshold": in_force.threshold,
        "threshold_source": in_force.source,
        "model": coll.model_tag,
        "faces": [face.to_dict(with_embedding=False)],
        "identity": p.identity,
        "timings_ms": {"total": _ms(start)},
    }


@router.post(
    "/v1/represent",
    response_model=RepresentOut,
    openapi_extra=image_body_openapi(
        RepresentJSON, {"image": "one"}, {"max_faces": {"type": "integer"}, "collection": _STR}
    ),
)
async def represent(request: Request, who: Principal = QueryScope, rt: Runtime = Rt) -> Any:
    """Every face in the image (centre-most first) with its embedding."""
    req = await read_image_request(request, RepresentParams, RepresentJSON, ("image",), 1)
    params = req.params
    assert isinstance(params, RepresentParams)
    image = _required(req.one("image"), "image")
    return await run_in_threadpool(_represent, rt, who, params, image)


def _represent(rt: Runtime, who: Principal, p: RepresentParams, image: bytes) -> dict[str, Any]:
    coll = collection_of(rt, who, p.collection) if p.collection else None
    pipeline = rt.service.pipeline(coll.model if coll else None)
    faces = pipeline.represent(_decode(rt, image), max_faces=p.max_faces)
    return {"model": pipeline.model, "faces": [f.to_dict() for f in faces]}
