"""A detector card's ``detection.ood_inputs``: round trip with and without it, validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from det_helpers import detector_card
from radlens.errors import InvalidModelCardError
from radlens.models.card import (
    DetectionSpec,
    InputOodSpec,
    card_from_dict,
    card_to_dict,
    read_card,
    write_card,
)

SPEC = InputOodSpec("image2d/1", "ood_inputs.npz", "a" * 64, 5.97, 3.21, 0.057)


def test_a_detector_card_with_input_ood_round_trips(tmp_path: Path) -> None:
    card = detector_card(detection=DetectionSpec(stride=4, ood_inputs=SPEC))
    write_card(card, tmp_path / "card.json")
    back = read_card(tmp_path / "card.json")
    assert back == card
    assert back.detection is not None and back.detection.ood_inputs == SPEC
    data = json.loads((tmp_path / "card.json").read_text())
    assert data["detection"]["ood_inputs"] == {
        "median": 3.21,
        "sha256": "a" * 64,
        "statistics": "image2d/1",
        "stats_file": "ood_inputs.npz",
        "threshold": 5.97,
        "val_flag_rate": 0.057,
    }


def test_a_detector_card_without_input_ood_is_written_as_before_it_existed() -> None:
    card = detector_card()
    data = card_to_dict(card)
    assert "ood_inputs" not in data["detection"]
    assert card_from_dict(data) == card
    data["detection"]["ood_inputs"] = None  # an explicit null reads as "none fitted"
    back = card_from_dict(data)
    assert back.detection is not None and back.detection.ood_inputs is None


def test_the_spec_read_as_a_dict_becomes_the_dataclass() -> None:
    written = card_to_dict(detector_card(detection=DetectionSpec(ood_inputs=SPEC)))
    spec = DetectionSpec(ood_inputs=written["detection"]["ood_inputs"])
    assert spec.ood_inputs == SPEC


@pytest.mark.parametrize(
    "bad",
    [
        {"stats_file": "../ood_inputs.npz"},
        {"stats_file": "ood_inputs.json"},
        {"sha256": "abc"},
        {"threshold": 0.0},
        {"val_flag_rate": 1.5},
        {"unknown_field": 1},
    ],
    ids=lambda d: next(iter(d)),
)
def test_an_invalid_detector_input_ood_spec_is_refused(bad: dict[str, Any]) -> None:
    data = card_to_dict(detector_card(detection=DetectionSpec(ood_inputs=SPEC)))
    data["detection"]["ood_inputs"].update(bad)
    with pytest.raises(InvalidModelCardError, match="ood_inputs|unknown_field"):
        card_from_dict(data)


def test_a_detector_input_ood_spec_of_the_wrong_type_is_refused() -> None:
    data = card_to_dict(detector_card())
    data["detection"]["ood_inputs"] = "ood_inputs.npz"
    with pytest.raises(InvalidModelCardError, match="ood_inputs"):
        card_from_dict(data)
