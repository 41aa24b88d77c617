"""The evaluation gate: locked set records, patient overlap, the decision and its report."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from radlens.errors import ConfigError, InputError
from radlens.evaluation.evaluate import Evaluation, summarize
from radlens.evaluation.gate import (
    GateMargins,
    build_locked_set,
    check_disjoint,
    dataset_patient_ids,
    decide,
    ensure_locked,
    read_locked,
    report_dict,
    report_markdown,
    select_locked,
    split_by_patient,
    write_locked,
)
from radlens.io.datasets import LabelledImages, read_labelled

SECRET = b"site secret for tests, 32 bytes!"


def key_of(patient_id: str) -> str | None:
    return hmac.new(SECRET, patient_id.encode(), hashlib.sha256).hexdigest() if patient_id else None


def scored(make_card, y: np.ndarray, score: np.ndarray, split: str) -> Evaluation:  # type: ignore[no-untyped-def]
    """An evaluation of a binary model whose logit difference is ``score`` (temperature 1)."""
    logits = np.stack([np.zeros_like(score), score], axis=1)
    return summarize(make_card(), logits, y, split)


def separated(y: np.ndarray, strength: float, noise: float, seed: int) -> np.ndarray:
    """Calibrated logit differences: classes at -/+``strength`` plus Gaussian noise, scaled
    to the true log-odds (``2 * strength / noise**2`` times the score)."""
    rng = np.random.default_rng(seed)
    score = (2 * y - 1) * strength + rng.normal(0, noise, len(y))
    return score * 2 * strength / noise**2


@pytest.fixture
def evaluations(make_card):  # type: ignore[no-untyped-def]
    """Locked (400) and held-back (80) figures of a current model: good, calibrated-ish."""
    y_locked = np.arange(400) % 2
    y_held = np.arange(80) % 2

    def ev(split: str, y: np.ndarray, strength: float, noise: float, seed: int) -> Evaluation:
        return scored(make_card, y, separated(y, strength, noise, seed), split)

    return y_locked, y_held, ev


def test_the_gate_accepts_a_candidate_that_keeps_the_locked_set_and_improves_held_back(
    evaluations,  # type: ignore[no-untyped-def]
) -> None:
    y_locked, y_held, ev = evaluations
    current_locked = ev("locked", y_locked, 2.0, 1.0, 0)
    current_held = ev("heldback", y_held, 0.5, 1.0, 1)  # the shifted site: poor
    report = decide(
        ev("locked", y_locked, 2.0, 1.0, 0),
        current_locked,
        ev("heldback", y_held, 1.5, 1.0, 1),
        current_held,
        GateMargins(),
        "0" * 64,
    )
    assert report.passed, report.checks
    assert [c.name for c in report.checks] == ["locked AUC", "locked ECE", "held-back AUC"]


def test_the_gate_refuses_a_candidate_worse_on_the_locked_set(evaluations) -> None:  # type: ignore[no-untyped-def]
    y_locked, y_held, ev = evaluations
    report = decide(
        ev("locked", y_locked, 1.0, 1.0, 0),
        ev("locked", y_locked, 2.0, 1.0, 0),
        ev("heldback", y_held, 1.5, 1.0, 1),
        ev("heldback", y_held, 0.5, 1.0, 1),
        GateMargins(),
        "0" * 64,
    )
    assert not report.passed
    failed = {c.name for c in report.checks if not c.passed}
    assert "locked AUC" in failed and "held-back AUC" not in failed


def test_a_loss_of_auc_within_the_margin_passes_and_beyond_it_fails(make_card) -> None:  # type: ignore[no-untyped-def]
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1] * 25)
    base = separated(y, 1.0, 1.0, 3)
    current = scored(make_card, y, base, "locked")
    held_y = np.array([0, 1] * 20)
    held_now = scored(make_card, held_y, separated(held_y, 0.2, 1.0, 4), "heldback")
    held_new = scored(make_card, held_y, separated(held_y, 1.0, 1.0, 4), "heldback")
    # Lower a few positives' scores: AUC falls by a small amount, measured here.
    worse = base.copy()
    worse[np.flatnonzero(y == 1)[:3]] -= 2.0
    candidate = scored(make_card, y, worse, "locked")
    drop = current.metrics["auc"] - candidate.metrics["auc"]
    assert 0 < drop < 0.05
    loose = decide(candidate, current, held_new, held_now, GateMargins(auc=drop + 1e-6), "0" * 64)
    strict = decide(candidate, current, held_new, held_now, GateMargins(auc=drop / 2), "0" * 64)
    assert loose.checks[0].passed and not strict.checks[0].passed


def test_the_gate_refuses_worse_calibration_on_the_locked_set(evaluations, make_card) -> None:  # type: ignore[no-untyped-def]
    y_locked, y_held, ev = evaluations
    current = ev("locked", y_locked, 0.5, 1.0, 0)
    overconfident = scored(make_card, y_locked, 4 * separated(y_locked, 0.5, 1.0, 0), "locked")
    assert overconfident.metrics["ece"] > current.metrics["ece"] + 0.05
    assert overconfident.metrics["auc"] == pytest.approx(current.metrics["auc"])
    report = decide(
        overconfident,
        current,
        ev("heldback", y_held, 1.5, 1.0, 1),
        ev("heldback", y_held, 0.5, 1.0, 1),
        GateMargins(),
        "0" * 64,
    )
    assert [c.passed for c in report.checks] == [True, False, True]


def test_the_gate_refuses_a_candidate_that_does_not_improve_on_held_back_cases(
    evaluations,  # type: ignore[no-untyped-def]
) -> None:
    y_locked, y_held, ev = evaluations
    same_held = ev("heldback", y_held, 0.5, 1.0, 1)
    report = decide(
        ev("locked", y_locked, 2.0, 1.0, 0),
        ev("locked", y_locked, 2.0, 1.0, 0),
        same_held,
        same_held,
        GateMargins(),
        "0" * 64,
    )
    assert not report.passed and not report.checks[2].passed


def test_held_back_cases_of_one_class_are_judged_by_log_loss(make_card) -> None:  # type: ignore[no-untyped-def]
    y = np.arange(100) % 2
    locked = scored(make_card, y, separated(y, 2.0, 1.0, 0), "locked")
    ones = np.ones(10, dtype=np.int64)
    better = scored(make_card, ones, np.full(10, 3.0), "heldback")
    worse = scored(make_card, ones, np.full(10, 0.5), "heldback")
    passed = decide(locked, locked, better, worse, GateMargins(), "0" * 64)
    failed = decide(locked, locked, worse, better, GateMargins(), "0" * 64)
    assert passed.checks[2].name == "held-back log loss"
    assert passed.checks[2].passed and not failed.checks[2].passed


def test_the_report_says_the_verdict_in_json_and_markdown(evaluations) -> None:  # type: ignore[no-untyped-def]
    y_locked, y_held, ev = evaluations
    report = decide(
        ev("locked", y_locked, 1.0, 1.0, 0),
        ev("locked", y_locked, 2.0, 1.0, 0),
        ev("heldback", y_held, 1.5, 1.0, 1),
        ev("heldback", y_held, 0.5, 1.0, 1),
        GateMargins(),
        "a" * 64,
    )
    doc = json.loads(json.dumps(report_dict(report)))
    assert doc["passed"] is False and doc["locked_sha256"] == "a" * 64
    assert doc["figures"]["locked_candidate"]["n"] == 400
    text = report_markdown(report)
    assert "FAILED: not promotable" in text and "| locked AUC | FAIL |" in text


def image_folder(root: Path, n_patients: int = 12) -> Path:
    """A labelled folder with a val split and a patient_id column (2 images per patient)."""
    root.mkdir(parents=True)
    rows = ["file,label,split,patient_id"]
    rng = np.random.default_rng(0)
    for p in range(n_patients):
        for k in range(2):
            name = f"p{p}_{k}.png"
            pixels = rng.integers(0, 255, (12, 12), dtype=np.uint8)
            PILImage.fromarray(pixels).save(root / name)
            rows.append(f"{name},{'NORMAL' if p % 2 else 'PNEUMONIA'},val,P{p}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_a_locked_set_keeps_whole_patients_and_records_hashes(tmp_path: Path) -> None:
    folder = image_folder(tmp_path / "data")
    val = read_labelled(folder, "val", ("NORMAL", "PNEUMONIA"))
    ids = dataset_patient_ids(folder, val.ids)
    locked = build_locked_set("m", val, "data", ids, key_of, fraction=0.5, seed=0)
    kept_patients = {f.split("_")[0] for f in locked.files}
    assert all(f"{p}_{k}.png" in locked.files for p in kept_patients for k in (0, 1))
    assert 0 < len(locked.files) < len(val)
    assert set(locked.patient_keys) == {key_of(f"P{p[1:]}") for p in kept_patients}
    write_locked(locked, tmp_path / "locked.json")
    assert read_locked(tmp_path / "locked.json") == locked
    assert len(select_locked(locked, val)) == len(locked.files)


def test_a_locked_set_refuses_changed_data_and_is_never_replaced(tmp_path: Path) -> None:
    folder = image_folder(tmp_path / "data")
    val = read_labelled(folder, "val", ("NORMAL", "PNEUMONIA"))
    locked = build_locked_set("m", val, "data", dataset_patient_ids(folder, val.ids), key_of)
    relabelled = replace(val, labels=1 - val.labels)
    with pytest.raises(InputError, match="changed label or pixels"):
        select_locked(locked, relabelled)
    repixelled = replace(val, images=[im // 2 for im in val.images])
    with pytest.raises(InputError, match="changed label or pixels"):
        select_locked(locked, repixelled)
    shorter = replace(val, images=val.images[:2], labels=val.labels[:2], ids=val.ids[:2])
    with pytest.raises(InputError, match="are gone"):
        select_locked(locked, shorter)
    write_locked(locked, tmp_path / "locked.json")
    other = build_locked_set("m", val, "data", [""] * len(val), key_of, fraction=0.5)
    with pytest.raises(InputError, match="cannot be replaced"):
        write_locked(other, tmp_path / "locked.json")


def test_ensure_locked_records_once_and_refuses_another_fraction(tmp_path: Path, make_card) -> None:  # type: ignore[no-untyped-def]
    folder = image_folder(tmp_path / "data")
    card = make_card(name="m")
    store = tmp_path / "store"
    first, items = ensure_locked(store, card, folder, "data", key_of, fraction=0.5)
    again, _ = ensure_locked(store, card, folder, "data", key_of)
    assert again == first and len(items) == len(first.files)
    assert (store / "m" / "locked.json").is_file()
    with pytest.raises(ConfigError, match="never changed"):
        ensure_locked(store, card, folder, "data", key_of, fraction=0.3)


def test_cases_of_locked_set_patients_or_images_are_refused(tmp_path: Path) -> None:
    folder = image_folder(tmp_path / "data")
    val = read_labelled(folder, "val", ("NORMAL", "PNEUMONIA"))
    locked = build_locked_set("m", val, "data", dataset_patient_ids(folder, val.ids), key_of)
    outsider = key_of("P999")
    assert outsider is not None
    check_disjoint(locked, [outsider], ["f" * 64], "export")  # no overlap: no error
    with pytest.raises(InputError, match=r"1 patient\(s\) and 0 image\(s\)"):
        check_disjoint(locked, [outsider, key_of("P3") or ""], ["f" * 64], "export")
    with pytest.raises(InputError, match=r"0 patient\(s\) and 1 image\(s\)"):
        check_disjoint(locked, [outsider], [locked.image_sha256[0]], "export")


def test_cases_are_split_by_patient_in_about_the_asked_shares() -> None:
    keys = [f"patient{i // 3}" for i in range(3000)]
    parts = split_by_patient(keys, tune=0.25, heldback=0.25, seed=0)
    for i in range(0, 3000, 3):
        assert len(set(parts[i : i + 3])) == 1
    shares = {name: float(np.mean(parts == name)) for name in ("train", "tune", "heldback")}
    assert shares["train"] == pytest.approx(0.5, abs=0.05)
    assert shares["tune"] == pytest.approx(0.25, abs=0.05)
    assert shares["heldback"] == pytest.approx(0.25, abs=0.05)
    assert not np.array_equal(parts, split_by_patient(keys, 0.25, 0.25, seed=1))


def test_labelled_images_helper_is_consistent() -> None:
    data = LabelledImages([np.zeros((8, 8))], np.array([1]), ("a", "b"), ("x",))
    with pytest.raises(ValueError):
        build_locked_set("m", data, "d", [""], key_of, fraction=0.0)


def test_feedback_that_contradicts_the_current_version_is_refused(evaluations) -> None:  # type: ignore[no-untyped-def]
    """Labels inverted wholesale: the candidate 'improves' on held-back cases carrying the
    same inverted labels, and the locked set may not see it; the current version ranking
    the readers' labels the wrong way round does."""
    y_locked, y_held, ev = evaluations
    args = (
        ev("locked", y_locked, 2.0, 1.0, 0),
        ev("locked", y_locked, 2.0, 1.0, 0),
        ev("heldback", y_held, 1.5, 1.0, 1),
        ev("heldback", y_held, 0.5, 1.0, 1),
        GateMargins(),
        "0" * 64,
    )
    y_cases = np.arange(200) % 2
    agrees = ev("cases", y_cases, 0.5, 1.0, 2)
    contradicts = scored_against(agrees, 1 - y_cases)  # the readers' labels flipped
    assert decide(*args, current_cases=agrees).passed
    refused = decide(*args, current_cases=contradicts)
    assert not refused.passed
    assert refused.checks[-1].name == "feedback vs current version"
    assert "contradict" in refused.checks[-1].detail
    assert refused.figures["cases_current"]["auc"] < 0.5


def scored_against(evaluation: Evaluation, labels: np.ndarray) -> Evaluation:
    """The same probabilities judged against other labels."""
    from radlens.evaluation import metrics as m

    metrics = dict(evaluation.metrics) | {"auc": m.auc(labels, evaluation.probs)}
    return replace(evaluation, labels=labels, metrics=metrics)
