"""Enrollment (synchronous for small requests, jobs for server folders), jobs and admin."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.concurrency import run_in_threadpool

from .. import jobs
from ..store import JobRecord
from .auth import AdminScope, EnrollScope, Principal, QueryScope
from .deps import Runtime, collection_of, job_of, runtime
from .errors import ValidationError
from .inputs import image_body_openapi, read_image_request
from .schemas import EnrollJobCreate, EnrollJSON, EnrollOut, EnrollParams, JobOut
from .server_paths import permitted_folder

router = APIRouter(tags=["enrollment"])
Rt = Depends(runtime)
MAX_ERROR_SAMPLES = 20


def job_out(job: JobRecord) -> dict[str, Any]:
    return {**jobs.job_summary(job), "error_samples": job.errors[:MAX_ERROR_SAMPLES]}


@router.post(
    "/v1/collections/{collection}/enroll",
    response_model=EnrollOut,
    openapi_extra=image_body_openapi(
        EnrollJSON,
        {"images": "many"},
        {
            "external_id": {"type": "string"},
            "name": {"type": "string"},
            "metadata": {"type": "string", "description": "a JSON object"},
        },
    ),
)
async def enroll(
    collection: str, request: Request, who: Principal = EnrollScope, rt: Runtime = Rt
) -> Any:
    """Add photos of one person, synchronously (at most ``FACEID_API_MAX_BATCH`` images).
    Every image is enrolled, a duplicate, or listed in ``failures`` with its error code."""
    limit = rt.settings.api.max_batch
    req = await read_image_request(request, EnrollParams, EnrollJSON, ("images",), limit)
    params = req.params
    assert isinstance(params, EnrollParams)
    images = req.images.get("images") or []
    if not images:
        raise ValidationError("images: at least one image is required", field="images")
    return await run_in_threadpool(_enroll, rt, who, collection, params, images)


def _enroll(
    rt: Runtime, who: Principal, name: str, p: EnrollParams, images: list[bytes]
) -> dict[str, Any]:
    coll = collection_of(rt, who, name)
    result = rt.service.enroll(coll, p.external_id, images, name=p.name, metadata=p.metadata)
    return asdict(result)


@router.post("/v1/collections/{collection}/enroll-jobs", status_code=202, response_model=JobOut)
def enroll_job(
    collection: str,
    body: EnrollJobCreate,
    who: Principal = EnrollScope,
    rt: Runtime = Rt,
    idempotency_key: str | None = Header(
        None,
        max_length=200,
        description="the same key (per tenant) returns the job the first request created",
    ),
) -> Any:
    """Enroll a folder on the server (DIR/<person>/*.jpg) as a job. Refused (403) unless the
    server runs with ``FACEID_API_ALLOW_SERVER_PATHS=true`` and the folder lies under one of
    ``FACEID_API_SERVER_PATH_ROOTS`` for the tenant; URLs are never fetched."""
    coll = collection_of(rt, who, collection)  # an unknown collection is 404 on any server
    root = permitted_folder(body.path, rt.settings.api, who.tenant)
    job_id = jobs.submit_enroll_folder(
        rt.service,
        coll.name,
        root,
        body.batch_size,
        limit=body.limit,
        tenant=who.tenant,
        idempotency_key=idempotency_key,
    )
    return job_out(rt.service.repo.get_job(job_id))


@router.get("/v1/jobs/{job_id}", response_model=JobOut, tags=["jobs"])
def get_job(job_id: str, who: Principal = QueryScope, rt: Runtime = Rt) -> Any:
    """A job's status, progress, counts and first errors."""
    return job_out(job_of(rt, who, job_id))


@router.get("/v1/jobs", response_model=list[JobOut], tags=["jobs"])
def list_jobs(
    limit: int = Query(50, ge=1, le=500),
    status: str | None = Query(None, max_length=16),
    who: Principal = QueryScope,
    rt: Runtime = Rt,
) -> Any:
    found = rt.service.repo.list_jobs(status=status, limit=limit, tenant=who.tenant)
    return [job_out(j) for j in found]


@router.post(
    "/v1/collections/{collection}/reindex", status_code=202, response_model=JobOut, tags=["admin"]
)
def reindex(collection: str, who: Principal = AdminScope, rt: Runtime = Rt) -> Any:
    """Rebuild the collection's index from the database, as a job."""
    coll = collection_of(rt, who, collection)
    job_id = jobs.submit_reindex(rt.service, coll.name, who.tenant)
    return job_out(rt.service.repo.get_job(job_id))
