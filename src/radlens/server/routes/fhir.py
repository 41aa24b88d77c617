"""FHIR R4 REST reads of the analyzed studies (``/fhir/...``, ``application/fhir+json``).

- ``GET /fhir/DiagnosticReport?study=<Study Instance UID>``: a ``searchset`` Bundle.
- ``GET /fhir/{DiagnosticReport|Observation|ImagingStudy|Device}/{id}``: one resource.
- ``GET /fhir/Bundle/{Study Instance UID}``: the study's transaction Bundle, the same
  document ``radlens analyze --fhir`` writes, ready to post to another FHIR server.

Every route needs a logged-in account whose role may export reports (``server/authz.py``).
Errors under ``/fhir`` are answered as ``OperationOutcome`` by ``server/errors.py``. The
resources are built by ``report.fhir`` from the stored study (``store.exports``); a signed
report is ``final``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from radlens.errors import InputError
from radlens.privacy.audit import AuditEvent
from radlens.privacy.roles import Action, Principal
from radlens.report.fhir import FHIR_JSON, search_bundle
from radlens.server.audit import audited
from radlens.server.authz import permit
from radlens.server.deps import ServicesDep
from radlens.store import exports

router = APIRouter(prefix="/fhir", tags=["fhir"])
_Responses = dict[int | str, dict[str, Any]]
_FHIR: _Responses = {200: {"content": {FHIR_JSON: {}}}}
_NOT_FOUND: _Responses = {404: {"description": "no such resource (an OperationOutcome)"}}
_Exporter = Annotated[Principal, permit(Action.REPORT_EXPORT)]


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON


def _base(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}{router.prefix}"


@router.get(
    "/DiagnosticReport",
    response_class=FhirResponse,
    responses=_FHIR | {400: {"description": "no study parameter (an OperationOutcome)"}},
    dependencies=[audited(AuditEvent.FHIR_QUERIED)],
)
def search_diagnostic_reports(
    request: Request, services: ServicesDep, _user: _Exporter, study: str = ""
) -> FhirResponse:
    """The reports of a study (``study`` = its Study Instance UID, or ``urn:oid:<uid>``);
    an empty searchset when the study is unknown or not analyzed yet."""
    if not study:
        raise InputError(None, "search DiagnosticReport by study=<Study Instance UID>")
    reports = exports.study_reports(
        services.db, services.settings.storage_dir, study.removeprefix("urn:oid:")
    )
    return FhirResponse(search_bundle(reports, _base(request), str(request.url)))


@router.get(
    "/Bundle/{study_uid}",
    response_class=FhirResponse,
    responses=_FHIR | _NOT_FOUND,
    dependencies=[audited(AuditEvent.EXPORTED)],
)
def study_bundle(study_uid: str, services: ServicesDep, _user: _Exporter) -> FhirResponse:
    """The study's transaction Bundle (its id is the Study Instance UID)."""
    return FhirResponse(exports.study_bundle(services.db, services.settings.storage_dir, study_uid))


@router.get(
    "/{resource_type}/{resource_id}",
    response_class=FhirResponse,
    responses=_FHIR | _NOT_FOUND,
    dependencies=[audited(AuditEvent.FHIR_READ)],
)
def read(
    resource_type: str, resource_id: str, services: ServicesDep, _user: _Exporter
) -> FhirResponse:
    """One DiagnosticReport, Observation, ImagingStudy or Device by id."""
    resource = exports.read_resource(
        services.db, services.settings.storage_dir, resource_type, resource_id
    )
    return FhirResponse(resource)
