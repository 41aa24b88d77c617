"""radlens.domain.coding: finding and anatomy concepts."""

from __future__ import annotations

import json
from pathlib import Path

from radlens.domain.coding import LOCAL, SNOMED, body_site, finding_concept

ZOO = Path(__file__).resolve().parents[2] / "src" / "radlens" / "zoo"


def test_known_findings_are_snomed_and_unknown_ones_local_with_their_label() -> None:
    assert finding_concept("pneumonia", "x") == finding_concept("pneumonia", "Pneumonia")
    pneumonia = finding_concept("pneumonia", "Pneumonia")
    assert (pneumonia.value, pneumonia.scheme) == ("233604007", SNOMED)
    assert pneumonia.system == "http://snomed.info/sct"
    local = finding_concept("adrenal_hyperplasia", "Adrenal hyperplasia")
    assert (local.value, local.scheme, local.meaning) == (
        "adrenal_hyperplasia",
        LOCAL,
        "Adrenal hyperplasia",
    )
    assert local.system.startswith("urn:")


def test_every_shipped_finding_code_has_a_concept() -> None:
    for card_path in ZOO.glob("*/card.json"):
        card = json.loads(card_path.read_text())
        concept = finding_concept(card["finding_code"], card["finding_label"])
        assert concept.value and concept.meaning, card_path


def test_body_parts_map_case_insensitively_and_unknown_is_none() -> None:
    chest = body_site(" chest ")
    assert chest is not None and chest.value == "51185008"
    assert body_site("PELVIS_OF_A_CAT") is None
