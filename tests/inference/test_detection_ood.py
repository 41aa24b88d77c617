"""A detector's input-statistics OOD score: every box finding carries it, an unlike or
low-quality image is flagged, and a low-trust image without boxes still says so."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from det_helpers import detector_card, one_box_backend
from radlens.domain.imaging import Geometry, Image, ImageLayout
from radlens.errors import ModelIntegrityError
from radlens.inference.detection import NO_BOX, detect_findings
from radlens.inference.input_stats import statistic_set_for, statistics_of
from radlens.inference.ood import (
    LOW_TRUST,
    InputStats,
    card_input_stats,
    fit_input_stats,
    save_input_stats,
)
from radlens.inference.preprocess import prepare_2d
from radlens.models.card import InputOodSpec, ModelCard
from radlens.models.registry import sha256_of

THRESHOLD = 6.0


def smear(seed: int) -> np.ndarray:
    """A colour image in the manner of a smear: pink background, darker round cells."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    image = np.empty((64, 64, 3), np.float32)
    image[...] = (230, 190, 200)
    for _ in range(6):
        cy, cx, r = rng.uniform(8, 56), rng.uniform(8, 56), rng.uniform(5, 9)
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        image[inside] = (200, 120, 140)
    image += rng.normal(0, 4, image.shape)
    out: np.ndarray = np.clip(image, 0, 255).astype(np.uint8)
    return out


def fitted(card: ModelCard) -> InputStats:
    statistics = statistic_set_for(card)
    assert statistics is not None
    values = np.stack(
        [
            statistics_of(statistics, a, prepare_2d(a, card.input)[0], card.input)
            for a in (smear(seed) for seed in range(40))
        ]
    )
    return fit_input_stats(values, statistics.kind)


def with_ood(card: ModelCard, sha256: str = "0" * 64) -> ModelCard:
    spec = InputOodSpec("image2d/1", "ood_inputs.npz", sha256, THRESHOLD, 2.0, 0.05)
    assert card.detection is not None
    return dataclasses.replace(card, detection=dataclasses.replace(card.detection, ood_inputs=spec))


def image_of(array: np.ndarray) -> Image:
    layout = ImageLayout.YXC if array.ndim == 3 else ImageLayout.YX
    return Image(array, layout, Geometry((1.0, 1.0)), source_uids=("1.2",))


def test_every_box_carries_the_input_score_and_a_usual_image_is_not_flagged() -> None:
    card = with_ood(detector_card())
    stats = fitted(card)
    [box] = detect_findings(image_of(smear(99)), card, one_box_backend(label=2), input_stats=stats)
    assert box.ood_input_score is not None and box.ood_score is not None
    assert box.ood_score == pytest.approx(box.ood_input_score / THRESHOLD)
    assert box.ood_score < 1.0 and not box.ood_flag and LOW_TRUST not in box.warnings
    assert box.detected and box.box is not None and box.probability == pytest.approx(0.9)


def test_every_box_on_an_unlike_image_is_flagged_and_keeps_its_score() -> None:
    card = with_ood(detector_card())
    stats = fitted(card)
    # A grey radiograph-like image: dark background, a bright smooth blob, no colour.
    yy, xx = np.mgrid[:64, :64]
    grey = (255 * np.exp(-((yy - 32.0) ** 2 + (xx - 20.0) ** 2) / 300)).astype(np.uint8)
    found = detect_findings(image_of(grey), card, one_box_backend(label=1), input_stats=stats)
    assert len(found) == 1
    [box] = found
    assert box.ood_score is not None and box.ood_score >= 1.0
    assert box.ood_flag and LOW_TRUST in box.warnings
    assert box.detected and box.probability == pytest.approx(0.9)  # nothing lowered


def test_a_blank_image_without_boxes_still_gives_one_low_trust_finding() -> None:
    card = with_ood(detector_card())
    stats = fitted(card)
    blank = image_of(np.full((64, 64, 3), 128, np.uint8))
    [image_level] = detect_findings(blank, card, one_box_backend(score=0.2), input_stats=stats)
    assert image_level.code == "blood_cell" and image_level.label == "Blood cell"
    assert image_level.box is None and image_level.detected and image_level.counted
    assert not image_level.positive and image_level.probability == pytest.approx(0.2)
    assert image_level.ood_flag and NO_BOX in image_level.warnings
    assert any(w.startswith("blank image") for w in image_level.warnings)
    assert image_level.ood_reasons and image_level.ood_reasons[0][0] in stats.statistics.names
    # A usual image without a box above the operating score gives no finding, as before.
    usual = detect_findings(image_of(smear(7)), card, one_box_backend(score=0.2), input_stats=stats)
    assert usual == []


def test_a_low_trust_image_with_boxes_gets_no_extra_finding() -> None:
    card = with_ood(detector_card())
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    found = detect_findings(image_of(noise), card, one_box_backend(), input_stats=fitted(card))
    assert len(found) == 1 and found[0].detected and found[0].ood_flag


def test_input_stats_are_read_only_when_the_card_names_them_and_their_hash_matches(
    tmp_path: Path,
) -> None:
    plain = detector_card()
    assert card_input_stats(tmp_path, plain) is None
    stats = fitted(plain)
    save_input_stats(stats, tmp_path / "ood_inputs.npz")
    card = with_ood(plain, sha256_of(tmp_path / "ood_inputs.npz"))
    read = card_input_stats(tmp_path, card)
    assert read is not None and np.array_equal(read.centre, stats.centre)
    with pytest.raises(ModelIntegrityError, match="ood_inputs.npz"):
        card_input_stats(tmp_path, with_ood(plain, "1" * 64))
    with pytest.raises(ModelIntegrityError, match="missing or changed"):
        card_input_stats(tmp_path / "elsewhere", card)
