"""``segment``: a segmentation model's mask, head circumference and gestational age."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from radlens.domain.imaging import Geometry, Image, ImageLayout
from radlens.inference.backends import FakeBackend
from radlens.inference.biometry import ellipse_perimeter
from radlens.inference.preprocess import Placement
from radlens.inference.segment import NO_HEAD, NO_PIXEL_SIZE, segment, to_source_grid
from radlens.models.card import card_from_dict, card_to_dict
from us_helpers import ellipse_logits, seg_card

ROWS, COLS = 270, 400  # source image


def us_image(spacing_mm: float | None) -> Image:
    array = np.random.default_rng(0).uniform(0, 255, (ROWS, COLS)).astype(np.float32)
    geometry = (
        Geometry((1.0, 1.0), spacing_known=False)
        if spacing_mm is None
        else Geometry((spacing_mm, spacing_mm))
    )
    return Image(array, ImageLayout.YX, geometry, source_uids=("1.2.3.4",))


def test_a_head_mask_gives_hc_and_ga_with_units_from_the_image_spacing() -> None:
    [finding] = segment(us_image(0.5), seg_card(), FakeBackend(ellipse_logits))
    assert finding.positive and finding.mask is not None and finding.mask.shape == (ROWS, COLS)
    hc, ga = finding.measurements
    expected = ellipse_perimeter(0.3 * COLS, 0.25 * ROWS) * 0.5  # semi-axes in source px
    assert hc.code == "head_circumference" and hc.unit == "mm"
    assert hc.value == pytest.approx(expected, rel=0.01)
    assert ga.unit == "wk" and ga.value is not None and ga.low is not None and ga.high is not None
    assert ga.low < ga.value < ga.high and "Hadlock" in ga.method
    assert finding.outline_px is not None and finding.box is not None
    assert finding.sop_instance_uid == "1.2.3.4"


def test_a_png_without_spacing_uses_the_given_pixel_size_or_says_it_cannot_measure() -> None:
    card = seg_card()
    [given] = segment(us_image(None), card, FakeBackend(ellipse_logits), pixel_size_mm=0.5)
    [stated] = segment(us_image(0.5), card, FakeBackend(ellipse_logits))
    assert given.measurements[0].value == pytest.approx(stated.measurements[0].value)
    [unknown] = segment(us_image(None), card, FakeBackend(ellipse_logits))
    assert unknown.measurements == () and NO_PIXEL_SIZE in unknown.warnings
    assert unknown.outline_px is not None  # the ellipse is still drawn


def test_the_edge_offset_of_the_card_shortens_both_semi_axes() -> None:
    plain = segment(us_image(0.5), seg_card(0.0), FakeBackend(ellipse_logits))[0]
    offset = segment(us_image(0.5), seg_card(2.0), FakeBackend(ellipse_logits))[0]
    assert plain.measurements[0].value is not None and offset.measurements[0].value is not None
    difference = plain.measurements[0].value - offset.measurements[0].value
    a, b = 0.3 * COLS, 0.25 * ROWS
    expected = (ellipse_perimeter(a, b) - ellipse_perimeter(a - 2.0, b - 2.0)) * 0.5
    assert difference == pytest.approx(expected, rel=0.02)


def test_no_head_is_a_negative_finding_without_mask_or_measurements() -> None:
    def empty(batch: np.ndarray) -> dict[str, np.ndarray]:
        return {"mask_logits": np.full((len(batch), 1, *batch.shape[-2:]), -5.0, np.float32)}

    [finding] = segment(us_image(0.5), seg_card(), FakeBackend(empty))
    assert not finding.positive and finding.mask is None and not finding.measurements
    assert NO_HEAD in finding.warnings


def test_probabilities_are_resized_back_to_the_source_grid() -> None:
    prob = np.zeros((4, 4), np.float32)
    prob[1:3, 1:3] = 1.0
    out = to_source_grid(prob, Placement((8, 12), 2.0, 3.0))
    assert out.shape == (8, 12) and out[4, 6] == pytest.approx(1.0)


def test_a_segmentation_card_round_trips_and_needs_its_section() -> None:
    card = seg_card(1.39)
    assert card_from_dict(card_to_dict(card)) == card
    with pytest.raises(ValueError, match="segmentation section"):
        dataclasses.replace(card, segmentation=None)
    with pytest.raises(ValueError, match="mask_logits"):
        dataclasses.replace(card, outputs=("logits", "cam"))


def test_the_input_statistics_score_flags_an_image_unlike_training() -> None:
    from radlens.inference.input_stats import statistic_set_for, statistics_of
    from radlens.inference.ood import LOW_TRUST, fit_input_stats
    from radlens.inference.preprocess import prepare_2d
    from radlens.models.card import InputOodSpec

    card = seg_card()
    statistics = statistic_set_for(card)
    assert statistics is not None
    rng = np.random.default_rng(0)
    images = [rng.uniform(0, 255, (ROWS, COLS)).astype(np.float32) for _ in range(12)]
    values = np.stack(
        [statistics_of(statistics, a, prepare_2d(a, card.input)[0], card.input) for a in images]
    )
    stats = fit_input_stats(values, statistics.kind)
    spec = InputOodSpec("image2d/1", "ood_inputs.npz", "0" * 64, 5.0, 2.0, 0.05)
    assert card.segmentation is not None
    card = dataclasses.replace(
        card, segmentation=dataclasses.replace(card.segmentation, ood_inputs=spec)
    )
    [usual] = segment(us_image(0.5), card, FakeBackend(ellipse_logits), input_stats=stats)
    assert usual.ood_input_score is not None and usual.ood_score is not None
    assert usual.ood_score == pytest.approx(usual.ood_input_score / 5.0)
    flat = Image(
        np.where(np.arange(COLS) < COLS // 2, 0.0, 255.0)[None].repeat(ROWS, 0).astype(np.float32),
        ImageLayout.YX,
        Geometry((0.5, 0.5)),
    )
    [odd] = segment(flat, card, FakeBackend(ellipse_logits), input_stats=stats)
    assert odd.ood_flag and LOW_TRUST in odd.warnings and odd.ood_score is not None
    assert odd.ood_score >= 1.0
    # It says why: the statistics furthest from the noise it was fitted on, in plain words.
    assert 1 <= len(odd.ood_reasons) <= 3 and all(abs(z) >= 3 for _, z in odd.ood_reasons)
    assert any(w.startswith("unlike training data in: ") for w in odd.warnings)
    assert usual.ood_score < 1 and usual.ood_reasons == ()
    assert card_from_dict(card_to_dict(card)) == card


def test_a_measured_structure_is_counted_and_raises_no_priority_unless_the_card_triages() -> None:
    from radlens.domain.findings import Priority
    from radlens.triage.priority import study_priority

    [head] = segment(us_image(0.5), seg_card(), FakeBackend(ellipse_logits))
    assert head.positive and head.counted
    assert study_priority([head]) is Priority.ROUTINE
    assert seg_card().segmentation is not None
    lesion_card = dataclasses.replace(
        seg_card(),
        segmentation=dataclasses.replace(seg_card().segmentation, triage=True),  # type: ignore[arg-type]
    )
    [lesion] = segment(us_image(0.5), lesion_card, FakeBackend(ellipse_logits))
    assert lesion.positive and not lesion.counted
    assert study_priority([lesion]) is Priority.PRIORITY
    assert card_from_dict(card_to_dict(lesion_card)).segmentation.triage  # type: ignore[union-attr]
