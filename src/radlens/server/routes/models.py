"""Model cards for readers (``/api/models``): what each model is for, its validation
figures and its limitations, by the name and version a finding records.

Cards are read from the shipped zoo, the site's extra model folders and its model store
(:func:`radlens.feedback.cards.known_cards`), so a finding made by a version no longer
active still finds its card. Cards hold no patient data: no audit record is written.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool

from radlens.errors import NotFoundError
from radlens.feedback.cards import known_cards
from radlens.models.card import ModelCard
from radlens.privacy.roles import Action, Principal
from radlens.server.authz import permit
from radlens.server.deps import Services, ServicesDep
from radlens.server.schemas import ModelCardPublic

router = APIRouter(prefix="/api/models", tags=["models"])
_Part = Annotated[str, PathParam(max_length=128)]


def _cards(services: Services) -> dict[tuple[str, str], ModelCard]:
    return known_cards(services.settings.card_folders)


@router.get("", response_model=list[ModelCardPublic])
async def model_cards(
    services: ServicesDep,
    _user: Annotated[Principal, permit(Action.MODELS_READ)],
) -> list[ModelCardPublic]:
    """Every model card the site knows (installed and stored versions), by name and
    version."""
    cards = await run_in_threadpool(_cards, services)
    return [ModelCardPublic.of(cards[key]) for key in sorted(cards)]


@router.get(
    "/{name}/{version}",
    response_model=ModelCardPublic,
    responses={404: {"description": "no card of that name and version"}},
)
async def model_card(
    services: ServicesDep,
    _user: Annotated[Principal, permit(Action.MODELS_READ)],
    name: _Part,
    version: _Part,
) -> ModelCardPublic:
    """The card of the model version a finding names (``model_name``, ``model_version``)."""
    cards = await run_in_threadpool(_cards, services)
    card = cards.get((name, version))
    if card is None:
        raise NotFoundError(f"no model card {name} {version}")
    return ModelCardPublic.of(card)
