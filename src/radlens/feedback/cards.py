"""The model cards feedback and monitoring compare against, by (name, version).

Findings record the model's name and card version; monitoring needs that version's card
(its OOD statistics), and export needs the model's labels. Cards are read (not verified:
no weights are loaded) from the shipped zoo, the extra model folders and the site model
store (``Settings.model_store_dir``: ``<store>/<name>/<number>/card.json``, see
:mod:`radlens.models.versions`), so versions no longer active are still found.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from radlens.errors import InvalidModelCardError, ModelNotFoundError
from radlens.models.card import ModelCard, read_card
from radlens.models.registry import zoo_folder

_DEPTH = 3  # <root>/card.json, <root>/<name>/card.json, <store>/<name>/<n>/card.json


def known_cards(folders: Iterable[Path] = ()) -> dict[tuple[str, str], ModelCard]:
    """Every readable card under the zoo and ``folders``, by (name, version); the first
    found wins (the zoo first). Unreadable cards are left out.

    Example:
        >>> ("cxr_pneumonia", "1.0.0") in known_cards()  # doctest: +SKIP
        True
    """
    found: dict[tuple[str, str], ModelCard] = {}
    for root in [zoo_folder(), *folders]:
        for path in _card_files(root.expanduser()):
            try:
                card = read_card(path)
            except (InvalidModelCardError, OSError, ValueError):
                continue
            found.setdefault((card.name, card.version), card)
    return found


def card_named(name: str, cards: dict[tuple[str, str], ModelCard]) -> ModelCard:
    """A card of the model ``name`` (its highest version when several are known).

    Raises:
        ModelNotFoundError: no card of that name.
    """
    versions = [card for (n, _), card in cards.items() if n == name]
    if not versions:
        known = ", ".join(sorted({n for n, _ in cards})) or "none"
        raise ModelNotFoundError(f"no model named {name!r}; known: {known}")
    return max(versions, key=lambda c: _version_key(c.version))


def _card_files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    found = []
    for depth in range(_DEPTH):
        found.extend(sorted(root.glob("/".join(["*"] * depth + ["card.json"]))))
    return found


def _version_key(version: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in version.split("."))
