"""``Annotated`` dependency aliases: what a route may ask for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from radlens.config import Settings
from radlens.net.scp import StorageSCP
from radlens.store.db import Database
from radlens.store.intake import Intake


@dataclass
class Services:
    """What the lifespan started; one per app."""

    settings: Settings
    db: Database
    intake: Intake
    models_loaded: int
    scp: StorageSCP | None = None


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
