"""``predict`` with a FakeBackend: calibrated probability, threshold, box, warnings, frames."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radlens.domain.findings import Box
from radlens.domain.imaging import Geometry, Image, ImageLayout, Patient
from radlens.inference.backends import FakeBackend
from radlens.inference.predict import population_warning, predict
from radlens.models.card import Calibration, CalibrationMethod, Population

SOURCE = 448  # source images are 448 x 448, twice the 224 input


def image(array: np.ndarray | None = None, layout: ImageLayout = ImageLayout.YX) -> Image:
    if array is None:
        # A smooth radiograph-like ramp with mild noise: passes the quality checks.
        ramp = np.add.outer(np.linspace(0, 200, SOURCE), np.linspace(0, 100, SOURCE))
        noise = np.random.default_rng(0).normal(0, 2, (SOURCE, SOURCE))
        array = (ramp + noise).astype(np.float32)
    return Image(array, layout, Geometry((0.2, 0.2)), source_uids=("1.2.3.9",))


def peaked_cam(row: int = 1, col: int = 5) -> np.ndarray:
    cam = np.zeros((2, 7, 7), np.float32)
    cam[1, row, col] = 5.0
    cam[0, 6 - row, 6 - col] = 5.0
    return cam


def fixed(logits: tuple[float, float], cam: np.ndarray | None = None) -> FakeBackend:
    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        out = {"logits": np.tile(np.array([logits], np.float32), (len(batch), 1))}
        if cam is not None:
            out["cam"] = np.tile(cam[None], (len(batch), 1, 1, 1))
        return out

    return FakeBackend(run)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_probability_is_softmax_of_logits_over_temperature(make_card, temperature: float) -> None:  # type: ignore[no-untyped-def]
    card = make_card(calibration=Calibration(temperature=temperature))
    [finding] = predict(image(), card, fixed((0.25, 1.75)), Patient(age_years=3))
    expected = 1 / (1 + math.exp(-(1.75 - 0.25) / temperature))
    assert finding.probability == pytest.approx(expected, rel=1e-6)
    assert (finding.code, finding.label) == ("pneumonia", "Pneumonia")
    assert (finding.model_name, finding.model_version) == ("tiny_cxr", "0.0.1")
    assert finding.sop_instance_uid == "1.2.3.9"


def test_probability_follows_a_platt_calibration(make_card) -> None:  # type: ignore[no-untyped-def]
    platt = Calibration(CalibrationMethod.PLATT, 2.0, biases=(0.0, -0.5))
    [finding] = predict(image(), make_card(calibration=platt), fixed((0.25, 1.75)))
    expected = 1 / (1 + math.exp(-((1.75 - 0.25) / 2.0 - 0.5)))
    assert finding.probability == pytest.approx(expected, rel=1e-6)


def test_positive_flag_follows_the_operating_threshold(make_card) -> None:  # type: ignore[no-untyped-def]
    card = make_card(thresholds={"operating": 0.8})
    [high] = predict(image(), card, fixed((0.0, 2.0)))  # p = 0.881
    [low] = predict(image(), card, fixed((0.0, 1.0)))  # p = 0.731
    assert high.threshold == low.threshold == 0.8
    assert high.positive and not low.positive


def test_box_is_where_the_cam_peaks_in_source_pixels(make_card) -> None:  # type: ignore[no-untyped-def]
    [finding] = predict(image(), make_card(), fixed((0.0, 3.0), peaked_cam(row=1, col=5)))
    assert finding.positive
    # Cell (1, 5) of 7x7 covers input rows 32-64, columns 160-192; the source is 2x larger.
    assert finding.box == Box(x0=320.0, y0=64.0, x1=384.0, y1=128.0)
    assert finding.heatmap is not None
    assert finding.heatmap.shape == (SOURCE, SOURCE)
    peak_y, peak_x = np.unravel_index(int(np.argmax(finding.heatmap)), finding.heatmap.shape)
    assert 64 <= peak_y < 128 and 320 <= peak_x < 384


def test_no_box_for_a_negative_finding_but_still_a_heatmap(make_card) -> None:  # type: ignore[no-untyped-def]
    [finding] = predict(image(), make_card(), fixed((3.0, 0.0), peaked_cam()))
    assert not finding.positive
    assert finding.box is None
    assert finding.heatmap is not None


def test_no_heatmap_or_box_without_a_cam_output(make_card) -> None:  # type: ignore[no-untyped-def]
    [finding] = predict(image(), make_card(), fixed((0.0, 3.0)))
    assert finding.heatmap is None and finding.box is None


def test_adult_gets_a_population_warning_and_ood_flag(make_card) -> None:  # type: ignore[no-untyped-def]
    [finding] = predict(image(), make_card(), fixed((0.0, 1.0)), Patient(age_years=64))
    assert finding.ood_flag
    assert len(finding.warnings) == 1
    assert "patient age 64 y is outside the training population" in finding.warnings[0]
    assert "pediatric, 1-5 years" in finding.warnings[0]


def test_unknown_age_gets_a_warning_without_ood_flag(make_card) -> None:  # type: ignore[no-untyped-def]
    [finding] = predict(image(), make_card(), fixed((0.0, 1.0)), Patient())
    assert not finding.ood_flag
    assert finding.warnings == ("patient age not stated; model trained on pediatric, 1-5 years",)


@pytest.mark.parametrize(
    ("age", "outside"), [(0.5, True), (1.0, False), (3.0, False), (5.9, False), (6.0, True)]
)
def test_population_bounds_include_the_whole_last_year(
    make_card, age: float, outside: bool
) -> None:  # type: ignore[no-untyped-def]
    warning, flagged = population_warning(make_card(), Patient(age_years=age))
    assert flagged is outside
    assert bool(warning) is outside


def test_card_without_population_limits_gives_no_warning(make_card) -> None:  # type: ignore[no-untyped-def]
    card = make_card()
    from dataclasses import replace

    card = replace(card, applies_to=replace(card.applies_to, population=Population("any")))
    assert population_warning(card, Patient()) == ("", False)


def test_multi_frame_image_analyzes_frame_zero(make_card) -> None:  # type: ignore[no-untyped-def]
    frames = np.zeros((3, 64, 64), np.float32)
    frames[0] = np.linspace(0, 1, 64)[None, :]  # brighter to the right
    frames[1:] = np.linspace(1, 0, 64)[None, :]  # brighter to the left
    seen: list[np.ndarray] = []

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        seen.append(batch)
        return {"logits": np.zeros((len(batch), 2), np.float32)}

    findings = predict(image(frames, ImageLayout.FYX), make_card(), FakeBackend(run))
    assert len(findings) == 1
    assert findings[0].frame == 0
    assert seen[0].shape == (1, 1, 224, 224)
    assert seen[0][0, 0, 100, -1] > seen[0][0, 0, 100, 0]


def test_multiclass_reports_the_top_class_with_zero_threshold(make_card) -> None:  # type: ignore[no-untyped-def]
    card = make_card(task="multiclass", labels=("A", "B", "C"))

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        return {"logits": np.array([[0.0, 0.5, 3.0]], np.float32)}

    [finding] = predict(image(), card, FakeBackend(run))
    assert (finding.code, finding.label, finding.threshold) == ("c", "C", 0.0)
    assert finding.grade is None


def test_ordinal_reports_grade(make_card) -> None:  # type: ignore[no-untyped-def]
    card = make_card(task="ordinal", labels=("none", "mild", "severe"))

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        return {"logits": np.array([[0.0, 4.0, 1.0]], np.float32)}

    [finding] = predict(image(), card, FakeBackend(run))
    assert (finding.grade, finding.grade_label) == (1, "mild")
    expected = np.exp([0.0, 4.0, 1.0]) / np.exp([0.0, 4.0, 1.0]).sum()
    assert [label for label, _ in finding.grade_probabilities] == ["none", "mild", "severe"]
    np.testing.assert_allclose([p for _, p in finding.grade_probabilities], expected, atol=1e-6)
    assert finding.probability == pytest.approx(expected.max(), abs=1e-6)


@pytest.mark.parametrize(
    ("triage_min_grade", "logits", "counted"),
    [
        (None, [0.0, 0.0, 9.0], True),  # never triaged (knee osteoarthritis)
        (2, [0.0, 9.0, 0.0], True),  # below the triage grade
        (2, [0.0, 0.0, 9.0], False),  # at it: raises priority
    ],
)
def test_an_ordinal_grade_raises_priority_only_from_the_cards_triage_grade(  # type: ignore[no-untyped-def]
    make_card, triage_min_grade: int | None, logits: list[float], counted: bool
) -> None:
    from radlens.domain.findings import Priority
    from radlens.triage.priority import study_priority

    card = make_card(
        task="ordinal", labels=("none", "mild", "severe"), triage_min_grade=triage_min_grade
    )

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        return {"logits": np.array([logits], np.float32)}

    [finding] = predict(image(), card, FakeBackend(run))
    assert finding.counted is counted
    expected = Priority.ROUTINE if counted else Priority.PRIORITY
    assert study_priority([finding]) is expected


@pytest.mark.parametrize(("rule", "grade"), [("argmax", 0), ("median", 2)])
def test_the_reported_grade_follows_the_cards_grade_rule(make_card, rule: str, grade: int) -> None:  # type: ignore[no-untyped-def]
    # Probabilities 0.4 / 0.05 / 0.3 / 0.25: grade 0 is the most probable, but half of the
    # mass lies at grade 2 or above; the median (least expected grade error) is grade 2.
    labels = ("0", "1", "2", "3")
    card = make_card(task="ordinal", labels=labels, grade_rule=rule)
    logits = np.log(np.array([[0.4, 0.05, 0.3, 0.25]], np.float32))

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        return {"logits": logits}

    [finding] = predict(image(), card, FakeBackend(run))
    assert (finding.grade, finding.grade_label, finding.code) == (grade, str(grade), str(grade))
    assert finding.probability == pytest.approx([0.4, 0.05, 0.3, 0.25][grade], abs=1e-5)
    assert [p for _, p in finding.grade_probabilities] == pytest.approx([0.4, 0.05, 0.3, 0.25])


def test_grade_rule_median_is_only_for_ordinal_models(make_card) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="grade_rule median is for ordinal models"):
        make_card(grade_rule="median")
    with pytest.raises(ValueError, match="grade_rule 'mean'"):
        make_card(task="ordinal", labels=("a", "b"), grade_rule="mean")


def test_triage_min_grade_is_only_for_ordinal_models(make_card) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="triage_min_grade"):
        make_card(triage_min_grade=1)
    with pytest.raises(ValueError, match="triage_min_grade"):
        make_card(task="ordinal", labels=("a", "b"), triage_min_grade=2)


def test_timings_are_accumulated(make_card) -> None:  # type: ignore[no-untyped-def]
    timings = {"preprocess": 1.0}
    predict(image(), make_card(), fixed((0.0, 1.0)), timings_s=timings)
    assert timings["preprocess"] > 1.0
    assert timings["inference"] >= 0.0


def volume_card(make_card, **fields):  # type: ignore[no-untyped-def]
    from radlens.models.card import AppliesTo, InputSpec

    return make_card(
        input=InputSpec(size=(28, 28, 28), percentile_low=0, percentile_high=100),
        applies_to=AppliesTo(modalities=("SEG",), body_parts=("ADRENAL",), dims=3),
        **fields,
    )


def test_a_volume_model_gives_one_finding_on_the_slice_where_its_map_peaks(make_card) -> None:  # type: ignore[no-untyped-def]
    card = volume_card(make_card)
    seen: list[tuple[int, ...]] = []
    cam = np.zeros((2, 7, 7, 7), np.float32)
    cam[1, 5, 2, 3] = 4.0  # peak in the sixth of seven depth cells

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        seen.append(batch.shape)
        return {"logits": np.array([[0.0, 2.0]], np.float32), "cam": cam[None]}

    volume = np.zeros((56, 40, 40), np.float32)
    volume[20:40, 10:30, 10:30] = 1.0
    findings = predict(
        Image(volume, ImageLayout.ZYX, Geometry((1.0, 1.0, 1.0)), source_uids=("1.2.3.7",)),
        card,
        FakeBackend(run),
    )
    assert seen == [(1, 1, 28, 28, 28)]
    [finding] = findings
    assert finding.code == "pneumonia" and finding.positive
    # Depth cell 5 of 7 covers slices 40-48 of 56; its centre is slice 44.
    assert finding.frame == 44
    assert finding.heatmap is not None and finding.heatmap.shape == (40, 40)
    assert finding.box is not None
    row, col = np.unravel_index(int(np.argmax(finding.heatmap)), finding.heatmap.shape)
    assert 10 <= row <= 16 and 16 <= col <= 22  # cell (2, 3) of 7 -> rows ~11-17, cols ~17-23


def test_a_volume_model_refuses_a_2d_image(make_card) -> None:  # type: ignore[no-untyped-def]
    from radlens.errors import IncompatibleInputError

    with pytest.raises(IncompatibleInputError, match="reads volumes"):
        predict(image(), volume_card(make_card), fixed((0.0, 1.0)))


def test_binary_finding_reports_the_positive_index_class(make_card) -> None:  # type: ignore[no-untyped-def]
    card = make_card(labels=("malignant", "benign"), positive_index=0)
    [finding] = predict(image(), card, fixed((3.0, 0.0), peaked_cam()))
    assert finding.code == "pneumonia"  # the card's finding_code names class 0 here
    assert finding.probability == pytest.approx(1 / (1 + math.exp(-3.0)))
    assert finding.positive


# --- multi-label -------------------------------------------------------------------------


def multilabel_card(make_card, **fields):  # type: ignore[no-untyped-def]
    return make_card(
        task="multilabel",
        labels=("Effusion", "Pleural Thickening", "Mass"),
        thresholds={"operating": 0.6},
        **fields,
    )


def test_multilabel_gives_one_finding_per_label_with_sigmoid_probabilities(make_card) -> None:  # type: ignore[no-untyped-def]
    card = multilabel_card(make_card, calibration=Calibration(temperature=2.0))
    cam = np.zeros((3, 7, 7), np.float32)
    cam[0, 1, 5] = cam[1, 5, 1] = cam[2, 3, 3] = 5.0

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        return {"logits": np.array([[3.0, -1.0, 0.4]], np.float32), "cam": cam[None]}

    findings = predict(image(), card, FakeBackend(run), Patient(age_years=3))
    assert [(f.code, f.label) for f in findings] == [
        ("effusion", "Effusion"),
        ("pleural_thickening", "Pleural Thickening"),
        ("mass", "Mass"),
    ]
    for finding, logit in zip(findings, (3.0, -1.0, 0.4), strict=True):
        assert finding.probability == pytest.approx(1 / (1 + math.exp(-logit / 2.0)), rel=1e-6)
        assert finding.threshold == 0.6
        assert finding.grade is None and finding.frame == 0
        assert finding.heatmap is not None
    effusion, thickening, mass = findings
    # Probabilities do not sum to one: each label is its own yes/no.
    assert [f.positive for f in findings] == [True, False, False]  # 0.82, 0.38, 0.55
    assert effusion.box == Box(x0=320.0, y0=64.0, x1=384.0, y1=128.0)
    assert thickening.box is None and mass.box is None
    # Each heatmap comes from its own label's CAM channel.
    assert thickening.heatmap is not None
    peak_y, peak_x = np.unravel_index(int(np.argmax(thickening.heatmap)), (SOURCE, SOURCE))
    assert 320 <= peak_y < 384 and 64 <= peak_x < 128


def test_a_multilabel_volume_model_finds_each_labels_peak_slice(make_card) -> None:  # type: ignore[no-untyped-def]
    card = volume_card(make_card, task="multilabel", labels=("Left", "Right"))
    cam = np.zeros((2, 7, 7, 7), np.float32)
    cam[0, 1, 3, 3] = 4.0
    cam[1, 5, 3, 3] = 4.0

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        return {"logits": np.array([[2.0, -2.0]], np.float32), "cam": cam[None]}

    volume = np.random.default_rng(0).random((56, 40, 40)).astype(np.float32)
    left, right = predict(
        Image(volume, ImageLayout.ZYX, Geometry((1.0, 1.0, 1.0)), source_uids=("1.2.3.7",)),
        card,
        FakeBackend(run),
    )
    assert (left.code, right.code) == ("left", "right")
    assert (left.frame, right.frame) == (12, 44)  # centres of depth cells 1 and 5 of 7
    assert left.positive and left.box is not None
    assert not right.positive and right.box is None and right.heatmap is not None


def test_findings_carry_the_ood_score_and_a_low_trust_flag_above_the_threshold(
    make_card,
) -> None:  # type: ignore[no-untyped-def]
    from radlens.inference.ood import LOW_TRUST, OodStats
    from radlens.models.card import OodSpec

    card = make_card(
        ood=OodSpec("mahalanobis", "ood.npz", "0" * 64, threshold=2.0, val_flag_rate=0.05)
    )
    stats = OodStats(np.zeros((2, 2)), np.eye(2))

    def run_with(features: list[float]) -> FakeBackend:
        def run(batch: np.ndarray) -> dict[str, np.ndarray]:
            return {
                "logits": np.array([[0.0, 1.0]], np.float32),
                "features": np.array([features], np.float32),
            }

        return FakeBackend(run)

    [inside] = predict(image(), card, run_with([1.0, 0.0]), ood_stats=stats)
    # The score is a multiple of the threshold; its feature part is the distance itself.
    assert inside.ood_score == pytest.approx(0.5) and not inside.ood_flag
    assert inside.ood_feature_score == pytest.approx(1.0) and inside.ood_input_score is None
    assert LOW_TRUST not in inside.warnings
    [outside] = predict(image(), card, run_with([3.0, 4.0]), ood_stats=stats)
    assert outside.ood_score == pytest.approx(2.5) and outside.ood_flag
    assert outside.ood_feature_score == pytest.approx(5.0)
    assert LOW_TRUST in outside.warnings
    # The probability is reported as computed, not lowered.
    assert outside.probability == pytest.approx(inside.probability)
    [unscored] = predict(image(), card, run_with([3.0, 4.0]))
    assert unscored.ood_score is None and not unscored.ood_flag


def test_a_faded_image_the_features_miss_is_flagged_by_its_input_statistics(
    make_card,
) -> None:  # type: ignore[no-untyped-def]
    from radlens.inference.input_stats import STATISTICS, statistics_of
    from radlens.inference.ood import LOW_TRUST, OodStats, fit_input_stats, input_scores
    from radlens.inference.preprocess import prepare_2d
    from radlens.models.card import InputStatsSpec, OodSpec

    def radiograph(seed: int) -> np.ndarray:
        ramp = np.add.outer(np.linspace(0, 200, SOURCE), np.linspace(0, 50, SOURCE))
        noise = np.random.default_rng(seed).normal(0, 2, (SOURCE, SOURCE))
        return np.round(ramp + noise).clip(0, 255).astype(np.uint8)

    spec = make_card().input
    statistics = STATISTICS["image2d/1"]
    train = np.array(
        [
            statistics_of(statistics, r, prepare_2d(r, spec)[0], spec)
            for r in map(radiograph, range(30))
        ]
    )
    fitted = fit_input_stats(train, "image2d/1")
    median = float(np.median(input_scores(train, fitted)))
    inputs = InputStatsSpec(
        "image2d/1", "ood_inputs.npz", "0" * 64, 1.0, median, 2.0, 8 * median, 4.0, 0.99, 0.05
    )
    card = make_card(ood=OodSpec("mahalanobis", "ood.npz", "0" * 64, 2.0, 0.05, inputs=inputs))
    stats = OodStats(np.zeros((1, 2)), np.eye(2), fitted)

    def typical_features(batch: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "logits": np.array([[0.0, 1.0]], np.float32),
            "features": np.array([[1.0, 0.0]], np.float32),
        }

    clean = image(radiograph(99).astype(np.float32))
    faded = image(np.round(radiograph(99) * 0.2 + 90).astype(np.float32))
    [ok] = predict(clean, card, FakeBackend(typical_features), ood_stats=stats)
    [low] = predict(faded, card, FakeBackend(typical_features), ood_stats=stats)
    assert not ok.ood_flag and ok.ood_input_score is not None and ok.ood_score is not None
    assert ok.ood_score < 1 and LOW_TRUST not in ok.warnings
    assert low.ood_flag and LOW_TRUST in low.warnings and low.ood_score is not None
    assert low.ood_score >= 1 and low.ood_feature_score == ok.ood_feature_score == 1.0
    assert low.ood_input_score is not None and low.ood_input_score > 8 * median
    assert low.probability == ok.probability  # never lowered


def test_a_blank_or_noisy_image_is_flagged_low_trust_with_its_reason(make_card) -> None:  # type: ignore[no-untyped-def]
    [blank] = predict(image(np.zeros((SOURCE, SOURCE), np.float32)), make_card(), fixed((0.0, 1.0)))
    assert blank.ood_flag and "blank image: no contrast" in blank.warnings
    noisy = np.random.default_rng(1).normal(100, 30, (SOURCE, SOURCE)).astype(np.float32)
    [finding] = predict(image(noisy), make_card(), fixed((0.0, 1.0)))
    assert finding.ood_flag and any(w.startswith("extreme noise") for w in finding.warnings)
    # The probability is still reported as computed.
    assert finding.probability == pytest.approx(1 / (1 + math.exp(-1.0)))


def test_a_probability_in_the_abstain_band_is_called_indeterminate(make_card) -> None:  # type: ignore[no-untyped-def]
    from radlens.inference.predict import INDETERMINATE

    card = make_card(thresholds={"operating": 0.5, "abstain_low": 0.4, "abstain_high": 0.6})
    [close] = predict(image(), card, fixed((0.0, 0.2)))  # p = 0.55
    assert INDETERMINATE in close.warnings and close.positive
    [clear] = predict(image(), card, fixed((0.0, 3.0)))  # p = 0.95
    assert INDETERMINATE not in clear.warnings


def _restoring_card(make_card, spec):  # type: ignore[no-untyped-def]
    """A card reading ``spec`` with an OOD score that never flags on its own, its statistics,
    and a backend whose logit and feature are the batch's mean horizontal step (so a
    filtered input reads smoother, a deblurred one sharper), recording every batch run."""
    from radlens.inference.ood import OodStats
    from radlens.models.card import OodSpec

    card = make_card(
        input=spec,
        ood=OodSpec("mahalanobis", "ood.npz", "0" * 64, threshold=100.0, val_flag_rate=0.05),
    )
    seen: list[np.ndarray] = []

    def run(batch: np.ndarray) -> dict[str, np.ndarray]:
        seen.append(batch.copy())
        step = np.abs(np.diff(batch, axis=-1)).mean(axis=(1, 2, 3))
        return {
            "logits": np.stack([np.zeros_like(step), step], axis=1).astype(np.float32),
            "features": step[:, None].astype(np.float32),
        }

    return card, OodStats(np.zeros((2, 1)), np.eye(1)), FakeBackend(run), seen


def test_a_noisier_input_is_read_filtered_flagged_and_scored_as_it_came(make_card) -> None:  # type: ignore[no-untyped-def]
    from radlens.inference.ood import LOW_TRUST
    from radlens.models.card import Denoise, InputSpec

    spec = InputSpec(size=(224, 224), denoise=Denoise(5, noise_above=0.01, impulse_above=0.01))
    card, stats, backend, seen = _restoring_card(make_card, spec)

    [clean] = predict(image(), card, backend, ood_stats=stats)
    assert len(seen) == 1 and not clean.ood_flag
    assert not any("median filter" in w for w in clean.warnings)

    rng = np.random.default_rng(3)
    grainy = image().array + rng.normal(0, 30, (SOURCE, SOURCE)).astype(np.float32)
    seen.clear()
    [read] = predict(image(grainy), card, backend, ood_stats=stats)
    # One run reads the filtered input, a second scores the input as it came.
    assert len(seen) == 2
    rough_read, rough_scored = (float(np.abs(np.diff(b, axis=-1)).mean()) for b in seen)
    assert rough_read < rough_scored / 2
    assert read.ood_feature_score == pytest.approx(rough_scored, rel=1e-5)
    assert read.ood_flag and LOW_TRUST in read.warnings
    assert any("5 x 5 median filter" in w for w in read.warnings)
    # Without OOD statistics the filtered reading is all there is: still flagged.
    seen.clear()
    [unscored] = predict(image(grainy), card, backend)
    assert unscored.ood_flag and len(seen) == 1


def test_a_far_blurrier_input_is_read_deconvolved_flagged_and_scored_as_it_came(make_card) -> None:  # type: ignore[no-untyped-def]
    from radlens.inference.ood import LOW_TRUST
    from radlens.inference.preprocess import blur_of_image
    from radlens.inference.restore import gaussian_blur
    from radlens.models.card import Deblur, InputSpec

    rng = np.random.default_rng(4)
    grain = gaussian_blur(rng.random((SOURCE, SOURCE)), 2.0)
    texture = (40 + 180 * (grain - grain.min()) / (grain.max() - grain.min())).astype(np.float32)
    plain = InputSpec(size=(224, 224))
    spec = InputSpec(size=(224, 224), deblur=Deblur(blur_max=blur_of_image(texture, plain)))
    card, stats, backend, seen = _restoring_card(make_card, spec)

    [clean] = predict(image(texture), card, backend, ood_stats=stats)
    assert len(seen) == 1 and not clean.ood_flag
    assert not any("deconvolution" in w for w in clean.warnings)

    seen.clear()
    [read] = predict(image(gaussian_blur(texture, 8.0)), card, backend, ood_stats=stats)
    # One run reads the deconvolved input, a second scores the input as it came.
    assert len(seen) == 2
    sharp_read, sharp_scored = (float(np.abs(np.diff(b, axis=-1)).mean()) for b in seen)
    assert sharp_read > 1.2 * sharp_scored
    assert read.ood_feature_score == pytest.approx(sharp_scored, rel=1e-5)
    assert read.ood_flag and LOW_TRUST in read.warnings
    assert any("Wiener deconvolution" in w for w in read.warnings)
