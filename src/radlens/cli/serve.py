"""``radlens serve``: the reading-room service (HTTP API + DICOM SCP); see docs/serve.md."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from radlens.cli.main import configure_logging
from radlens.cli.render import out


def serve_command(
    home: Annotated[Path | None, typer.Option(help="data folder (default ~/.radlens)")] = None,
    db: Annotated[str | None, typer.Option(help="database URL, e.g. postgresql://...")] = None,
    host: Annotated[str | None, typer.Option(help="bind address (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default 8000)")] = None,
    dicom_port: Annotated[int | None, typer.Option(help="DICOM port (default 11112)")] = None,
    ae_title: Annotated[str | None, typer.Option(help="DICOM AE title (default RADLENS)")] = None,
    no_dicom: Annotated[bool, typer.Option("--no-dicom", help="no C-STORE SCP")] = False,
    config: Annotated[Path | None, typer.Option(help="TOML settings file")] = None,
    quiet_period: Annotated[
        float | None, typer.Option(help="seconds without new instances before analysis")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="analysis worker threads")] = None,
    engine: Annotated[
        str | None, typer.Option("--engine", help="local (threads) or dask: run analyses on Dask")
    ] = None,
    dask_address: Annotated[
        str | None,
        typer.Option("--dask-address", help="Dask scheduler tcp://HOST:PORT (default: local)"),
    ] = None,
    models_dir: Annotated[
        list[Path] | None, typer.Option("--models", help="extra model folders")
    ] = None,
    production: Annotated[
        bool,
        typer.Option(
            "--production", help="production mode: needs an admin account, makes none for you"
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False,
) -> None:
    """Serve the worklist API, STOW-RS and a DICOM C-STORE SCP until interrupted."""
    # Imported here: `radlens` without the [serve] extra must still run its other commands.
    from radlens.config import load_settings
    from radlens.server.app import serve

    configure_logging(verbose, quiet=False)
    logging.getLogger("pynetdicom").setLevel(logging.DEBUG if verbose else logging.WARNING)
    settings = load_settings(
        home=home,
        db=db,
        host=host,
        port=port,
        dicom_port=dicom_port,
        ae_title=ae_title,
        dicom_enabled=False if no_dicom else None,
        production=True if production else None,
        config_file=config,
        quiet_period_s=quiet_period,
        workers=workers,
        engine=engine,
        dask_address=dask_address,
        models=tuple(models_dir) if models_dir else None,
    )
    dicom = f", DICOM {settings.ae_title}@{settings.host}:{settings.dicom_port}"
    out.print(
        f"radlens serve: {'https' if settings.tls_cert_file else 'http'}://"
        f"{settings.host}:{settings.port}"
        f"{dicom if settings.dicom_enabled else ''}; data in {settings.home}",
        soft_wrap=True,
        highlight=False,
    )
    serve(settings)
