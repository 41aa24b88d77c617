"""Model cards: a JSON round trip, and every invalid card raises InvalidModelCardError."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from radlens.errors import InvalidModelCardError
from radlens.models.card import (
    AppliesTo,
    InputSpec,
    ModelCard,
    Resize,
    Task,
    card_from_dict,
    card_to_dict,
    read_card,
    write_card,
)


def test_write_then_read_gives_an_equal_card(make_card, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    card = make_card()
    write_card(card, tmp_path / "card.json")
    back = read_card(tmp_path / "card.json")
    assert back == card
    assert back.task is Task.BINARY
    assert back.input.resize is Resize.STRETCH
    assert back.applies_to.population.age_years_max == 5
    assert back.threshold == 0.5


def test_card_json_has_sorted_keys_and_plain_values(make_card, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_card(make_card(), tmp_path / "card.json")
    data = json.loads((tmp_path / "card.json").read_text())
    assert list(data) == sorted(data)
    assert data["task"] == "binary"
    assert data["input"]["resize"] == "stretch"
    assert data["schema_version"] == 1


def test_applies_to_upper_cases_and_needs_a_modality() -> None:
    rule = AppliesTo(modalities=("cr",), body_parts=("chest",), views=("pa",))
    assert (rule.modalities, rule.body_parts, rule.views) == (("CR",), ("CHEST",), ("PA",))
    with pytest.raises(ValueError, match="at least one modality"):
        AppliesTo(modalities=())


def test_input_spec_accepts_the_resize_string() -> None:
    assert InputSpec(size=[64, 64], resize="pad").resize is Resize.PAD  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": (4, 4)},
        {"size": (64,)},
        {"size": (64, 64), "channels": 2},
        {"size": (64, 64), "percentile_low": 50, "percentile_high": 10},
        {"size": (64, 64), "std": 0},
    ],
)
def test_invalid_input_spec_is_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        InputSpec(**kwargs)


def test_non_commercial_model_cannot_be_enabled_by_default(make_card) -> None:  # type: ignore[no-untyped-def]
    card = make_card()
    non_commercial = replace(card.training, commercial_use=False, licence="CC BY-NC 4.0")
    with pytest.raises(ValueError, match="non-commercial"):
        make_card(training=non_commercial)
    assert not make_card(training=non_commercial, enabled_by_default=False).enabled_by_default


def _mutations() -> list[tuple[str, Any]]:
    def drop(key: str) -> Any:
        return lambda d: d.pop(key)

    def put(path: str, value: Any) -> Any:
        def apply(d: dict[str, Any]) -> None:
            *parents, last = path.split(".")
            for p in parents:
                d = d[p]
            d[last] = value

        return apply

    return [
        ("missing name", drop("name")),
        ("missing applies_to", drop("applies_to")),
        ("unknown task", put("task", "regression")),
        ("one label", put("labels", ["ONLY"])),
        ("no operating threshold", put("thresholds", {"youden": 0.4})),
        ("threshold above 1", put("thresholds", {"operating": 1.5})),
        ("short sha256", put("sha256", "abc")),
        ("zero temperature", put("calibration.temperature", 0)),
        ("unknown calibration method", put("calibration.method", "isotonic")),
        ("platt without biases", put("calibration.method", "platt")),
        (
            "vector on a binary model",
            put(
                "calibration",
                {"method": "vector", "class_temperatures": [1, 1], "biases": [0, 0]},
            ),
        ),
        (
            "platt bias on class 0",
            put("calibration", {"method": "platt", "temperature": 1, "biases": [0.5, 0]}),
        ),
        ("temperature with biases", put("calibration.biases", [0.0, 0.3])),
        ("3D rule with 2D input", put("applies_to.dims", 3)),
        ("no modality", put("applies_to.modalities", [])),
        ("unknown field", put("colour_scheme", "viridis")),
        ("wrong schema version", put("schema_version", 99)),
        ("non-commercial enabled", put("training.commercial_use", False)),
        ("bad resize", put("input.resize", "crop")),
    ]


@pytest.mark.parametrize(("what", "mutate"), _mutations(), ids=[m[0] for m in _mutations()])
def test_invalid_card_raises_invalid_model_card_error(make_card, what: str, mutate: Any) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(json.dumps(card_to_dict(make_card())))
    mutate(data)
    with pytest.raises(InvalidModelCardError, match="card.json"):
        card_from_dict(data, source="x/card.json")


def test_unreadable_card_file_raises_invalid_model_card_error(tmp_path: Path) -> None:
    (tmp_path / "card.json").write_text("{not json", "utf-8")
    with pytest.raises(InvalidModelCardError, match="cannot read card"):
        read_card(tmp_path / "card.json")
    with pytest.raises(InvalidModelCardError, match="cannot read card"):
        read_card(tmp_path / "missing.json")


def test_model_card_is_a_model_card(make_card) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(make_card(), ModelCard)


def test_card_with_and_without_int8_variant_round_trips(make_card, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from radlens.models.card import Int8Variant

    plain = make_card()
    write_card(plain, tmp_path / "card.json")
    assert "int8" not in json.loads((tmp_path / "card.json").read_text())
    assert read_card(tmp_path / "card.json").int8 is None

    variant = Int8Variant("model.int8.onnx", "1" * 64, "val", 0.9951, 0.9953, 1.02, 1.81)
    with_int8 = make_card(int8=variant)
    write_card(with_int8, tmp_path / "card.json")
    back = read_card(tmp_path / "card.json")
    assert back == with_int8 and back.int8 == variant
    assert json.loads((tmp_path / "card.json").read_text())["int8"]["ms_fp32"] == 1.81

    data = card_to_dict(plain) | {"int8": None}
    assert card_from_dict(json.loads(json.dumps(data))).int8 is None
    for bad in ({"file": "../x.onnx"}, {"sha256": "abc"}, {"ms": 0.0}, {"file": "model.onnx"}):
        data = card_to_dict(with_int8)
        data["int8"].update(bad)
        with pytest.raises(InvalidModelCardError, match="int8"):
            card_from_dict(json.loads(json.dumps(data)), source="x/card.json")


def _ood(**inputs: Any) -> Any:
    from radlens.models.card import InputStatsSpec, OodSpec

    spec = None
    if inputs:
        fields: dict[str, Any] = {
            "statistics": "image2d/1",
            "stats_file": "ood_inputs.npz",
            "sha256": "2" * 64,
            "feature_median": 7.7,
            "input_median": 2.9,
            "feature_threshold": 11.4,
            "input_threshold": 6.2,
            "product_threshold": 2.7,
            "guard_quantile": 0.99,
            "val_flag_rate": 0.048,
        }
        spec = InputStatsSpec(**(fields | inputs))
    return OodSpec("mahalanobis", "ood.npz", "3" * 64, 10.1, 0.052, inputs=spec)


def test_card_with_input_statistics_round_trips(make_card, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    card = make_card(ood=_ood(statistics="image2d/1"))
    write_card(card, tmp_path / "card.json")
    back = read_card(tmp_path / "card.json")
    assert back == card and back.ood is not None and back.ood.inputs is not None
    assert back.ood.inputs.product_threshold == 2.7
    assert json.loads((tmp_path / "card.json").read_text())["ood"]["inputs"]["guard_quantile"]


def test_a_card_fitted_before_input_statistics_reads_and_writes_as_before(
    make_card, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(json.dumps(card_to_dict(make_card(ood=_ood()))))
    assert "inputs" not in data["ood"]  # written exactly as before input statistics existed
    card = card_from_dict(data)
    assert card.ood is not None and card.ood.inputs is None and card.ood.threshold == 10.1
    data["ood"]["inputs"] = None
    assert card_from_dict(data).ood == card.ood


@pytest.mark.parametrize(
    "bad",
    [
        {"stats_file": "../x.npz"},
        {"stats_file": "ood.npz"},  # the feature statistics' file
        {"sha256": "abc"},
        {"input_median": 0.0},
        {"feature_threshold": -1.0},
        {"product_threshold": 0.5},
        {"val_flag_rate": 1.5},
        {"guard_quantile": 0.0},
    ],
)
def test_invalid_input_statistics_are_rejected(make_card, bad: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(json.dumps(card_to_dict(make_card(ood=_ood(statistics="image2d/1")))))
    data["ood"]["inputs"].update(bad)
    with pytest.raises(InvalidModelCardError, match="ood"):
        card_from_dict(data, source="x/card.json")


def test_calibration_methods_round_trip(make_card, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from radlens.models.card import Calibration, CalibrationMethod

    platt = Calibration(
        "platt",  # type: ignore[arg-type]
        1.2,
        biases=(0.0, -0.4),
        ece_before=0.05,
        ece_after=0.02,
        ece_cv=0.025,
        ece_noise_mean=0.03,
        ece_noise_p95=0.045,
        cv_nll={"temperature": 0.31, "platt": 0.29},
    )
    vector = Calibration(
        CalibrationMethod.VECTOR, 1.0, class_temperatures=(0.8, 1.1, 1.3), biases=(0.2, 0, -0.2)
    )
    three = {"labels": ("A", "B", "C"), "task": Task.MULTICLASS}
    for card in (make_card(calibration=platt), make_card(calibration=vector, **three)):
        write_card(card, tmp_path / "card.json")
        back = read_card(tmp_path / "card.json")
        assert back == card
        assert back.calibration.method is card.calibration.method
    data = json.loads((tmp_path / "card.json").read_text())["calibration"]
    assert data["method"] == "vector" and data["class_temperatures"] == [0.8, 1.1, 1.3]


def test_a_temperature_only_card_reads_and_writes_as_before(make_card) -> None:  # type: ignore[no-untyped-def]
    from radlens.models.card import CalibrationMethod

    data = json.loads(json.dumps(card_to_dict(make_card())))
    old = {"ece_after": 0.012, "ece_before": 0.013, "method": "temperature", "temperature": 1.18}
    data["calibration"] = dict(old)
    card = card_from_dict(data)
    assert card.calibration.method is CalibrationMethod.TEMPERATURE
    assert card.calibration.biases == () and card.calibration.ece_cv is None
    assert card_to_dict(card)["calibration"] == old  # no new keys on a card that had none
    del data["calibration"]["method"]  # cards may omit it: temperature scaling
    assert card_from_dict(data).calibration.method is CalibrationMethod.TEMPERATURE


def test_calibration_probabilities_follow_the_method() -> None:
    import numpy as np

    from radlens.evaluation.metrics import sigmoid, softmax
    from radlens.models.card import Calibration, CalibrationMethod

    logits = np.array([[0.3, 1.9], [2.0, -1.0], [0.0, 0.0]])
    plain = Calibration(temperature=1.7)
    np.testing.assert_array_equal(plain.probabilities(logits, Task.BINARY), softmax(logits, 1.7))
    np.testing.assert_array_equal(
        plain.probabilities(logits, Task.MULTILABEL), sigmoid(logits, 1.7)
    )
    platt = Calibration(CalibrationMethod.PLATT, 1.7, biases=(0.0, 0.6))
    p1 = platt.probabilities(logits, "binary")[:, 1]  # type: ignore[arg-type]
    np.testing.assert_allclose(p1, sigmoid((logits[:, 1] - logits[:, 0]) / 1.7 + 0.6))
    vector = Calibration(CalibrationMethod.VECTOR, 1.0, (0.5, 2.0), (0.1, -0.1))
    np.testing.assert_allclose(
        vector.probabilities(logits, Task.MULTICLASS),
        softmax(logits / np.array([0.5, 2.0]) + np.array([0.1, -0.1])),
    )


def test_training_data_path_is_the_card_data_as_written_or_under_a_root() -> None:
    from radlens.models.card import Training

    t = Training("", "../shared/data/cxr_pneumonia (train split 4694, val split 522)", "", True)
    assert t.data_path() == Path("../shared/data/cxr_pneumonia")
    assert t.data_path(Path("/data")) == Path("/data/cxr_pneumonia")
    assert Training("", "/abs/x.npz", "", True).data_path(Path("/data")) == Path("/abs/x.npz")


def test_detection_card_round_trips_and_may_have_a_single_class(tmp_path: Path) -> None:
    from det_helpers import detector_card
    from radlens.models.card import DetectionSpec, read_card, write_card

    card = detector_card(labels=("fracture",), detection=DetectionSpec(stride=8, nms_iou=0.4))
    write_card(card, tmp_path / "card.json")
    assert read_card(tmp_path / "card.json") == card
    data = json.loads((tmp_path / "card.json").read_text())
    assert data["detection"] == {
        "max_detections": 100,
        "min_score": 0.01,
        "nms_iou": 0.4,
        "stride": 8,
    }
    with pytest.raises(ValueError, match="detection section"):
        detector_card(detection=None)
    with pytest.raises(ValueError, match="heatmap and ltrb"):
        detector_card(outputs=("logits", "cam"))
    with pytest.raises(ValueError, match="stride"):
        DetectionSpec(stride=3)


def test_grade_rule_round_trips_and_the_default_is_not_written(make_card, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plain = make_card(task="ordinal", labels=("a", "b", "c"))
    assert "grade_rule" not in card_to_dict(plain)  # cards read exactly as before it existed
    median = make_card(task="ordinal", labels=("a", "b", "c"), grade_rule="median")
    write_card(median, tmp_path / "card.json")
    again = read_card(tmp_path / "card.json")
    assert again.grade_rule == "median" and again == median
    probs = np.array([[0.5, 0.2, 0.3], [0.2, 0.2, 0.6], [0.3, 0.2, 0.5]])
    assert median.decide(probs).tolist() == [0, 2, 1]
    assert plain.decide(probs).tolist() == [0, 2, 2]
