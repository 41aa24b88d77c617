"""Liveness (``/healthz``) and readiness (``/readyz``)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from radlens.server.deps import ServicesDep
from radlens.server.schemas import Health, Readiness
from radlens.store.db import at_head

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
def readyz(services: ServicesDep) -> JSONResponse:
    """Ready to take studies: database reachable, schema at head, models loaded."""
    try:
        with services.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        database, head = True, at_head(services.db.engine)
    except SQLAlchemyError:
        database, head = False, False
    ready = database and head and services.models_loaded > 0
    body = Readiness(
        ready=ready,
        database=database,
        migrations_at_head=head,
        models_loaded=services.models_loaded,
        dicom_port=services.scp.port if services.scp else None,
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
