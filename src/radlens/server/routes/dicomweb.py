"""DICOMweb (PS3.18): STOW-RS ``POST /dicomweb/studies`` for senders; QIDO-RS and WADO-RS
``GET`` routes for the viewer. Every resource needs a login whose role may read images
(QIDO, WADO) or store them (STOW); a researcher gets de-identified data under
``/api/research`` instead (``server/authz.py``).

WADO-RS frames are sent decoded and uncompressed (explicit VR little endian, see
``radlens.io.wado``), so the browser needs no codec for any stored transfer syntax.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from radlens.io.wado import FRAME_TRANSFER_SYNTAX, web_frame, web_metadata
from radlens.privacy.audit import AuditEvent
from radlens.privacy.roles import Action, Principal
from radlens.server.audit import audited
from radlens.server.authz import permit
from radlens.server.deps import Services, ServicesDep
from radlens.server.stow import DICOM_JSON, read_body, split_multipart, store_parts
from radlens.store.files import read_stored, reading_stored
from radlens.store.worklist import get_study, list_series, series_instances

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])
_T = TypeVar("_T")
_UID = Annotated[str, Path(max_length=64, pattern=r"^[0-9]+(\.[0-9]+)*$")]
_Reader = Annotated[Principal, permit(Action.IMAGES_READ)]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such study, series, instance or frame"}
}


@router.post(
    "/studies",
    responses={
        200: {"description": "all instances stored"},
        202: {"description": "some instances failed (see Failed SOP Sequence)"},
        409: {"description": "no instance stored"},
        413: {"description": "request body over max_upload_bytes"},
        415: {"description": 'not multipart/related; type="application/dicom"'},
    },
    dependencies=[audited(AuditEvent.IMPORTED)],
)
async def stow_studies(
    request: Request,
    services: ServicesDep,
    _user: Annotated[Principal, permit(Action.IMAGES_STORE)],
) -> JSONResponse:
    """Store instances sent as ``multipart/related; type="application/dicom"``."""
    cap = services.settings.max_upload_bytes
    body = await read_body(request.stream(), request.headers.get("content-length"), cap)
    parts = split_multipart(request.headers.get("content-type", ""), body)
    client = request.client.host if request.client else "unknown"
    # Durable writes block: keep them off the event loop.
    outcome = await run_in_threadpool(store_parts, services.intake, parts, f"stow-rs:{client}")
    base_url = str(request.url_for("stow_studies")).rstrip("/")
    return JSONResponse(
        outcome.to_dicom_json(base_url), status_code=outcome.http_status, media_type=DICOM_JSON
    )


@router.get(
    "/studies/{study}/series",
    responses=_NOT_FOUND,
    dependencies=[audited(AuditEvent.INSTANCES_QUERIED)],
)
def search_series(study: _UID, services: ServicesDep, _user: _Reader) -> JSONResponse:
    """QIDO-RS: the study's series."""
    get_study(services.db, study)
    found = [
        {
            "0020000D": _value("UI", study),
            "0020000E": _value("UI", s.series_uid),
            "00080060": _value("CS", s.modality),
            "00180015": _value("CS", s.body_part),
            "00201209": _value("IS", len(s.instances)),
        }
        for s in list_series(services.db, study)
    ]
    return JSONResponse(found, media_type=DICOM_JSON)


@router.get(
    "/studies/{study}/series/{series}/instances",
    responses=_NOT_FOUND,
    dependencies=[audited(AuditEvent.INSTANCES_QUERIED)],
)
def search_instances(
    study: _UID, series: _UID, services: ServicesDep, _user: _Reader
) -> JSONResponse:
    """QIDO-RS: the series' instances, in Instance Number order."""
    storage = services.settings.storage_dir
    found = [
        {
            "0020000D": _value("UI", study),
            "0020000E": _value("UI", series),
            "00080018": _value("UI", i.sop_uid),
            "00200013": _value("IS", i.instance_number),
            "00280008": _value("IS", i.frames),
        }
        for i in series_instances(services.db, storage, study, series)
    ]
    return JSONResponse(found, media_type=DICOM_JSON)


@router.get(
    "/studies/{study}/series/{series}/metadata",
    responses=_NOT_FOUND,
    dependencies=[audited(AuditEvent.IMAGES_VIEWED)],
)
async def series_metadata(
    study: _UID, series: _UID, services: ServicesDep, _user: _Reader
) -> JSONResponse:
    """WADO-RS: DICOM JSON of every instance, without bulk data, describing the frames
    as the frames route sends them."""
    storage = services.settings.storage_dir
    instances = series_instances(services.db, storage, study, series)
    documents = await run_in_threadpool(
        _decrypting, services, lambda: [web_metadata(i.path) for i in instances]
    )
    return JSONResponse(documents, media_type=DICOM_JSON)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
    response_class=Response,
    responses=_NOT_FOUND,
    dependencies=[audited(AuditEvent.IMAGES_VIEWED)],
)
async def retrieve_frames(
    study: _UID,
    series: _UID,
    instance: _UID,
    frames: Annotated[str, Path(pattern=r"^[1-9][0-9]*(,[1-9][0-9]*)*$", max_length=200)],
    services: ServicesDep,
    _user: _Reader,
) -> Response:
    """WADO-RS: frames (comma-separated numbers from 1), uncompressed, one part each."""
    storage = services.settings.storage_dir
    (stored,) = series_instances(services.db, storage, study, series, instance)
    numbers = [int(n) for n in frames.split(",")]
    data = await run_in_threadpool(
        _decrypting, services, lambda: [web_frame(stored.path, n) for n in numbers]
    )
    part_type = f"application/octet-stream; transfer-syntax={FRAME_TRANSFER_SYNTAX}"
    return _multipart(data, part_type, 'type="application/octet-stream"')


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}",
    response_class=Response,
    responses=_NOT_FOUND,
    dependencies=[audited(AuditEvent.IMAGES_VIEWED)],
)
async def retrieve_instance(
    study: _UID, series: _UID, instance: _UID, services: ServicesDep, _user: _Reader
) -> Response:
    """WADO-RS: the stored instance as sent, ``multipart/related; type="application/dicom"``."""
    storage = services.settings.storage_dir
    (stored,) = series_instances(services.db, storage, study, series, instance)
    data = await run_in_threadpool(read_stored, storage, stored.path, services.db.keys)
    return _multipart([data], "application/dicom", 'type="application/dicom"')


def _decrypting(services: Services, work: Callable[[], _T]) -> _T:
    """``work()``, reading the (encrypted) stored files through the store."""
    with reading_stored(services.settings.storage_dir, services.db.keys):
        return work()


def _multipart(parts: list[bytes], part_type: str, type_parameter: str) -> Response:
    boundary = uuid.uuid4().hex
    body = bytearray()
    for part in parts:
        body += f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode("ascii")
        body += part
        body += b"\r\n"
    body += f"--{boundary}--\r\n".encode("ascii")
    return Response(
        bytes(body), media_type=f"multipart/related; {type_parameter}; boundary={boundary}"
    )


def _value(vr: str, value: Any) -> dict[str, Any]:
    if value is None or value == "":
        return {"vr": vr}
    return {"vr": vr, "Value": [value]}
