"""DICOMweb: STOW-RS ``POST /dicomweb/studies`` (PS3.18 10.5)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from radlens.server.deps import ServicesDep
from radlens.server.stow import DICOM_JSON, split_multipart, store_parts

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])


@router.post(
    "/studies",
    responses={
        200: {"description": "all instances stored"},
        202: {"description": "some instances failed (see Failed SOP Sequence)"},
        409: {"description": "no instance stored"},
        415: {"description": 'not multipart/related; type="application/dicom"'},
    },
)
async def stow_studies(request: Request, services: ServicesDep) -> JSONResponse:
    """Store instances sent as ``multipart/related; type="application/dicom"``."""
    parts = split_multipart(request.headers.get("content-type", ""), await request.body())
    client = request.client.host if request.client else "unknown"
    # Durable writes block: keep them off the event loop.
    outcome = await run_in_threadpool(store_parts, services.intake, parts, f"stow-rs:{client}")
    base_url = str(request.url_for("stow_studies")).rstrip("/")
    return JSONResponse(
        outcome.to_dicom_json(base_url), status_code=outcome.http_status, media_type=DICOM_JSON
    )
