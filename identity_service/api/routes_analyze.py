"""``POST /v1/analyze``: age, gender, emotion and race of every face in an image."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..attributes import ACTIONS
from ..attributes.analyze import ATTRIBUTE_EMBEDDER
from .auth import Principal, QueryScope
from .deps import Runtime, runtime
from .errors import ValidationError
from .inputs import image_body_openapi, read_image_request
from .routes_query import _decode, _required

router = APIRouter(tags=["queries"])
Rt = Depends(runtime)


class AnalyzeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actions: str = Field(default=",".join(ACTIONS), max_length=64, description="comma-separated")
    max_faces: int | None = Field(default=None, ge=1, le=100)


class AnalyzeJSON(AnalyzeParams):
    image: str = Field(description="the image, base64 (a data: URL is accepted)")


class AnalyzeOut(BaseModel):
    model: str
    faces: list[dict[str, Any]]


@router.post(
    "/v1/analyze",
    response_model=AnalyzeOut,
    openapi_extra=image_body_openapi(
        AnalyzeJSON,
        {"image": "one"},
        {"actions": {"type": "string"}, "max_faces": {"type": "integer"}},
    ),
)
async def analyze(request: Request, who: Principal = QueryScope, rt: Runtime = Rt) -> Any:
    """Age, gender, emotion and race of every face (centre-most first), with class scores."""
    req = await read_image_request(request, AnalyzeParams, AnalyzeJSON, ("image",), 1)
    params = req.params
    assert isinstance(params, AnalyzeParams)
    actions = tuple(a.strip() for a in params.actions.split(",") if a.strip())
    unknown = sorted(set(actions) - set(ACTIONS))
    if not actions or unknown:
        raise ValidationError(
            f"actions must be some of {', '.join(ACTIONS)}; got {params.actions!r}",
            field="actions",
        )
    image = _required(req.one("image"), "image")
    return await run_in_threadpool(_analyze, rt, actions, params.max_faces, image)


def _analyze(
    rt: Runtime, actions: tuple[str, ...], max_faces: int | None, image: bytes
) -> dict[str, Any]:
    pipeline = rt.service.pipeline(ATTRIBUTE_EMBEDDER)  # what the attribute models read
    faces = pipeline.analyze(_decode(rt, image), actions, max_faces=max_faces)
    return {"model": pipeline.model, "faces": [f.to_dict() for f in faces]}
