"""``create_app(settings)``: the FastAPI service; ``serve(settings)`` runs it with uvicorn.

The lifespan opens (and migrates) the database, clears partial files a crash left,
starts the analysis workers (which first requeue interrupted jobs) and, unless disabled,
the DICOM SCP. Shutdown stops the SCP first, so nothing is acknowledged after the workers
and the database are gone.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.base import RequestResponseEndpoint
from starlette.routing import NoMatchFound

from radlens import __version__, warning_scopes
from radlens.cluster.remote import ClusterAnalyzer, cluster_analyzer
from radlens.config import Settings
from radlens.io.limits import ReadLimits
from radlens.models.registry import InstalledModel, discover
from radlens.net.dicomweb import DicomWebClient
from radlens.net.pacs import PacsPoller, results_pusher
from radlens.net.scp import start_scp
from radlens.net.tls import client_context, server_context
from radlens.pipeline import onnx_backends
from radlens.privacy.crypto import KeyRing, load_key_ring
from radlens.privacy.logs import install_log_filters
from radlens.server import errors
from radlens.server.deps import Services
from radlens.server.https import HSTS, RedirectServer, check_plain_http, https_context
from radlens.server.routes import (
    auth,
    dicomweb,
    feedback,
    fhir,
    health,
    models,
    research,
    users,
    worklist,
)
from radlens.store.accounts import ensure_first_account
from radlens.store.db import open_database
from radlens.store.files import remove_partial_files
from radlens.store.intake import Intake
from radlens.store.jobs import Analyze, JobQueue, Workers, pipeline_analyzer
from radlens.store.keys import seal_plaintext_rows
from radlens.triage.priority import TriageRules

log = logging.getLogger(__name__)

DESCRIPTION = (
    "radlens reading room: DICOM intake (C-STORE, STOW-RS), analysis queue, worklist, "
    "viewer (WADO-RS) and reporting. Every result is an AI draft that requires physician "
    "review. Routes under /api and /fhir (FHIR R4) and GET /dicomweb need a login "
    "(POST /api/auth/login)."
)
STATIC_DIR = Path(__file__).parent / "static"  # the built web/ front end (make web)
_NOT_BUILT = (
    "<!doctype html><title>radlens</title><h1>radlens</h1><p>The web UI is not built: run "
    "<code>make web</code> (npm + Vite) and restart. The API is described at "
    "<a href=/openapi.json>/openapi.json</a>.</p>"
)
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def create_app(settings: Settings, analyze: Analyze | None = None) -> FastAPI:
    """The service for ``settings``; ``analyze`` replaces the installed models (tests).

    Example:
        >>> app = create_app(Settings(home=Path("/tmp/radlens")))  # doctest: +SKIP
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services, workers = start_services(settings, analyze)
        app.state.services = services
        poller = start_pacs_poller(settings, services.intake)
        try:
            yield
        finally:
            if poller is not None:
                poller.stop()
            if services.scp is not None:
                services.scp.stop()
            stop_workers(workers)
            if services.push_client is not None:
                services.push_client.close()
            services.db.close()

    install_log_filters()  # pydicom quotes invalid values, patient data included
    app = _routed_app(lifespan)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.scheme == "https":  # direct, or X-Forwarded-Proto from a trusted proxy
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        if request.url.path.startswith(("/api/", "/dicomweb/", "/fhir/")):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    if (STATIC_DIR / "index.html").is_file():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="web")
    else:

        @app.get("/", include_in_schema=False)
        def not_built() -> HTMLResponse:
            return HTMLResponse(_NOT_BUILT)

    return app


def _routed_app(lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]]) -> FastAPI:
    """The FastAPI app with radlens's routes and error handlers.

    FastAPI builds each route's fields, and the OpenAPI document, inside
    ``warnings.catch_warnings``: both happen under :data:`warning_scopes.LOCK` (the routes
    here, at once: :func:`build_routes`), so that the job workers' and the DICOM
    listener's warning scopes cannot interleave with them.
    """
    # No /docs or /redoc: FastAPI's Swagger UI and ReDoc pages load their scripts, styles
    # and favicon from CDNs, and radlens serves nothing that reaches outside the site
    # (docs/edge.md). The OpenAPI document stays at /openapi.json.
    with warning_scopes.LOCK:
        app = FastAPI(
            title="radlens",
            version=__version__,
            description=DESCRIPTION,
            lifespan=lifespan,
            docs_url=None,
            redoc_url=None,
        )
        errors.install(app)
        for module in (health, auth, users, dicomweb, worklist, feedback, models, research, fhir):
            app.include_router(module.router)
        build_routes(app)
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        with warning_scopes.LOCK:
            return build_openapi()

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def build_routes(app: FastAPI) -> None:
    """Have FastAPI build every route of ``app``'s included routers, and their fields, now.

    FastAPI 0.16x builds an included router's routes when the first request reaches them,
    inside ``warnings.catch_warnings``, in whatever thread serves that request, where a job
    worker's warning scope could undo its filters (:mod:`radlens.warning_scopes`).
    Resolving a URL for a name no route has walks, and so builds, all of them; the caller
    holds the lock.
    """
    with suppress(NoMatchFound):
        app.url_path_for("radlens: build every route")


def start_services(settings: Settings, analyze: Analyze | None) -> tuple[Services, Workers]:
    """Open storage, start the workers and the SCP."""
    keys = encryption_keys(settings)
    db = open_database(settings.database_url, keys=keys)
    if sealed := seal_plaintext_rows(db, keys):
        log.info("encrypted %d database value(s) stored before encryption at rest", sealed)
    storage = settings.storage_dir
    storage.mkdir(parents=True, exist_ok=True)
    if removed := remove_partial_files(storage):
        log.info("removed %d partial file(s) left by an interrupted write", removed)
    if analyze is None:
        # The site's promoted model versions (radlens models promote / rollback) take the
        # place of the installed ones.
        models = discover(list(settings.models), store=settings.model_store_dir)
        analyze = analysis_engine(settings, models)
        models_loaded = len(models)
    else:
        models_loaded = 1
    ensure_first_account(db, settings.home, settings.production)
    intake = Intake(
        db,
        storage,
        limits=ReadLimits(settings.max_pixel_bytes, settings.max_sequence_depth),
        max_instance_bytes=settings.max_instance_bytes,
    )
    on_complete = None
    push_client = None
    if settings.pacs_url and settings.pacs_push_results:
        push_client = pacs_client(settings)
        on_complete = results_pusher(push_client)
    rules = TriageRules(
        frozenset(settings.critical_labels), settings.ood_penalty, settings.aging_minutes
    )
    queue = JobQueue(
        db, storage, settings.quiet_period_s, settings.max_attempts, on_complete, rules
    )
    workers = Workers(queue, analyze, settings.workers, settings.poll_interval_s)
    workers.start()
    services = Services(settings, db, intake, models_loaded, rules=rules, push_client=push_client)
    if settings.dicom_enabled:
        services.scp = start_scp(
            intake,
            settings.ae_title,
            settings.host,
            None if settings.dicom_tls_only else settings.dicom_port,
            max_associations=settings.dicom_max_associations,
            max_pdu_bytes=settings.dicom_max_pdu_bytes,
            ssl_context=dicom_tls_context(settings),
            tls_port=settings.dicom_tls_port,
        )
    return services, workers


def stop_workers(workers: Workers) -> None:
    """Stop the job workers, then the Dask client they analyzed on (engine dask)."""
    workers.stop()
    if isinstance(workers.analyze, ClusterAnalyzer):
        workers.analyze.close()


def analysis_engine(settings: Settings, models: list[InstalledModel]) -> Analyze:
    """Where the job workers analyze: in their own threads (``engine = "local"``), or on
    a Dask cluster (``"dask"``, ``dask_address``; see docs/scaling.md)."""
    if settings.engine == "dask":
        return cluster_analyzer(
            "dask",
            settings.dask_address,
            settings.workers,
            settings.models,
            settings.threads,
            settings.model_store_dir,
        )
    return pipeline_analyzer(models, onnx_backends(settings.threads))


def dicom_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The DICOM TLS listener's context; None when ``dicom_tls_enabled`` is off."""
    if not settings.dicom_enabled or not settings.dicom_tls_enabled:
        return None
    assert settings.dicom_tls_cert is not None  # Settings validates it
    return server_context(
        settings.dicom_tls_cert, settings.dicom_tls_key, settings.dicom_tls_ca_file
    )


def pacs_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """How radlens trusts the PACS over HTTPS; None: the default (system CAs, no client
    certificate)."""
    if settings.pacs_ca_file is None and settings.pacs_client_cert_file is None:
        return None
    return client_context(
        settings.pacs_ca_file, settings.pacs_client_cert_file, settings.pacs_client_key_file
    )


def encryption_keys(settings: Settings) -> KeyRing:
    """The key ring of encryption at rest: ``key_file``, else ``encryption_key``, else the
    embedded default's ``home/keys/radlens.keys``, made at the first start unless
    ``production`` (which then refuses to start)."""
    return load_key_ring(
        settings.key_file,
        settings.encryption_key.get_secret_value(),
        settings.default_key_file,
        create=not settings.production,
    )


def pacs_client(settings: Settings) -> DicomWebClient:
    """The DICOMweb client of the configured PACS."""
    return DicomWebClient(
        settings.pacs_url,
        settings.pacs_username,
        settings.pacs_password.get_secret_value(),
        ssl_context=pacs_tls_context(settings),
    )


def start_pacs_poller(settings: Settings, intake: Intake) -> PacsPoller | None:
    """Poll the PACS when ``pacs_url`` is set; None otherwise."""
    if not settings.pacs_url:
        return None
    poller = PacsPoller(
        pacs_client(settings),
        intake,
        settings.pacs_poll_seconds,
        lookback_days=settings.pacs_lookback_days,
    )
    poller.start()
    log.info("polling PACS %s every %gs", poller.client.server, settings.pacs_poll_seconds)
    return poller


def check_accounts(settings: Settings) -> None:
    """Production mode starts only with an active admin account (none is ever made for
    you): a ``ConfigError`` naming ``radlens users add NAME --role admin`` otherwise."""
    if settings.production:
        db = open_database(settings.database_url, keys=encryption_keys(settings))
        try:
            ensure_first_account(db, settings.home, production=True)
        finally:
            db.close()


def serve(settings: Settings) -> None:
    """Run the service until interrupted (SIGINT/SIGTERM shut it down cleanly)."""
    import uvicorn

    check_plain_http(settings)  # production: no logins in clear on a network address
    check_accounts(settings)  # before anything listens
    # Every certificate and key is loaded here, so a bad file stops the start with one line.
    context = https_context(settings)
    dicom_tls_context(settings)
    pacs_tls_context(settings)
    tls: dict[str, Any] = {}
    if context is not None:
        # uvicorn >= 0.47 takes a ready context; radlens.net.tls sets its rules.
        tls["ssl_context_factory"] = lambda config, default: context
    redirect = None
    if context is not None and settings.http_redirect_port is not None:
        redirect = RedirectServer(settings.host, settings.http_redirect_port, settings.port)
        redirect.start()
        log.info("HTTP port %d redirects to HTTPS", redirect.port)
    try:
        uvicorn.run(
            create_app(settings), host=settings.host, port=settings.port, log_level="info", **tls
        )
    finally:
        if redirect is not None:
            redirect.stop()
