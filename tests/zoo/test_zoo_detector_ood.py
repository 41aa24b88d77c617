"""The shipped detectors' OOD score (features and input statistics for a detector on a
ResNet trunk, input statistics alone for a BoxNet): hash-checked like every zoo model's
statistics files, the card's val flag rate reproduced, a val image trusted and a chest
radiograph or a noise image flagged on every finding, through to findings.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from radlens.analyze import analyze
from radlens.domain.imaging import Geometry, Image, ImageLayout
from radlens.inference.backends import OnnxBackend
from radlens.inference.detection import detect_findings
from radlens.inference.input_stats import statistic_set_for
from radlens.inference.ood import (
    LOW_TRUST,
    card_input_ood,
    card_input_stats,
    read_ood,
    stats_for,
    verified_input_stats,
)
from radlens.inference.preprocess import prepare_2d
from radlens.io.box_sets import read_boxes
from radlens.io.datasets import read_image_file
from radlens.io.raster import write_png
from radlens.models.card import ModelCard
from radlens.models.registry import InstalledModel, discover, get_model, sha256_of, zoo_folder

DETECTORS = {  # name -> its box set in the shared data, or the prepared FracAtlas view
    "bccd_cells": Path("det") / "bccd_blood_cells",
    "fracture_boxes": None,
}


@pytest.fixture(scope="module")
def installed() -> list[InstalledModel]:
    return discover(include_disabled=True)


def named_files(card: ModelCard) -> dict[str, str]:
    """Every statistics file a card names beside its weights, with its sha256."""
    files: dict[str, str] = {}
    if card.ood is not None:
        files[card.ood.stats_file] = card.ood.sha256
        if card.ood.inputs is not None:
            files[card.ood.inputs.stats_file] = card.ood.inputs.sha256
    for section in (card.segmentation, card.detection):
        spec = getattr(section, "ood_inputs", None)
        if spec is not None:
            files[spec.stats_file] = spec.sha256
    return files


def beside_card(card: ModelCard) -> dict[str, str]:
    """Every ``.npz`` a card names beside its weights, with its sha256: the statistics files
    and, for a calibration fitted on val pooled with cross-fitted logits, that file."""
    pooled = card.calibration.cross_fitted
    return named_files(card) | ({} if pooled is None else {pooled.file: pooled.sha256})


def test_every_shipped_model_names_an_ood_score_whose_files_pass_the_hash_check(
    installed: list[InstalledModel],
) -> None:
    names = {m.card.name for m in installed}
    assert set(DETECTORS) <= names
    for model in installed:
        assert named_files(model.card), f"{model.card.name} has no OOD score"
        for name, sha256 in beside_card(model.card).items():
            assert sha256_of(model.folder / name) == sha256, f"{model.card.name}: {name}"
        # ... and the loaders inference uses accept them (they check the same hashes).
        if model.card.ood is not None:
            assert stats_for(model.folder, model.card.ood) is not None
        for section in (model.card.segmentation, model.card.detection):
            spec = getattr(section, "ood_inputs", None)
            if spec is not None:
                verified_input_stats(model.folder / spec.stats_file, spec.sha256)
    on_disk = {p.relative_to(zoo_folder()).as_posix() for p in zoo_folder().glob("*/*.npz")}
    named = {f"{m.folder.name}/{n}" for m in installed for n in beside_card(m.card)}
    assert on_disk == named  # no stale .npz ships without a card naming it


@pytest.mark.parametrize("name", DETECTORS)
def test_each_detector_has_a_hash_checked_score_and_records_how_it_was_made(
    name: str, installed: list[InstalledModel]
) -> None:
    """A detector with a ``features`` output decides as a classifier (``ood``: features and
    input statistics); one without, on its input statistics alone (``detection.ood_inputs``).
    Either way the statistic set is the current one, about 5% of val is flagged, and the
    training log says how the score was fitted."""
    model = get_model(name, installed)
    card = model.card
    assert card.detection is not None
    current = statistic_set_for(card)  # shipped detectors are refitted when the set changes
    assert current is not None
    log = (model.folder / "train.log").read_text(encoding="utf-8")
    if "features" in card.outputs:
        assert card.ood is not None and card.ood.inputs is not None
        assert card.detection.ood_inputs is None
        assert card.ood.inputs.statistics == current.kind
        assert 0.03 <= card.ood.inputs.val_flag_rate <= 0.07
        stats = stats_for(model.folder, card.ood)
        assert stats is not None and stats.inputs is not None
        assert "OOD score (features and input statistics)" in log
        return
    assert card.ood is None and card.detection.ood_inputs is not None
    spec = card.detection.ood_inputs
    assert spec.statistics == current.kind and spec.stats_file == "ood_inputs.npz"
    assert 0.03 <= spec.val_flag_rate <= 0.07 and spec.median < spec.threshold
    input_stats = card_input_stats(model.folder, card)
    assert input_stats is not None and input_stats.kind == spec.statistics
    assert f"radlens ood {name} --data" in log


def val_set(name: str, shared_data_dir: Path, view: Path, card: ModelCard) -> list[np.ndarray]:
    path = DETECTORS[name]
    folder = view if path is None else shared_data_dir / path
    return read_boxes(folder, "val", card.labels).images


def as_image(array: np.ndarray) -> Image:
    layout = ImageLayout.YXC if array.ndim == 3 else ImageLayout.YX
    return Image(array, layout, Geometry((1.0, 1.0)), source_uids=("1.2.3",))


def decision_scores(
    model: InstalledModel, backend: OnnxBackend, images: list[np.ndarray]
) -> np.ndarray:
    """The ``ood_score`` each image's findings would carry (flagged at 1 or more)."""
    card = model.card
    if card.ood is None:
        stats = card_input_stats(model.folder, card)
        return np.array(
            [card_input_ood(card, stats, im, prepare_2d(im, card.input)[0]).score for im in images]
        )
    ood_stats = stats_for(model.folder, card.ood)
    scores = []
    for im in images:
        x = prepare_2d(im, card.input)[0][None]
        features = backend.run(x)[card.ood.output]
        scores.append(read_ood(card, ood_stats, features, [im], x)[0].score)
    return np.array(scores)


def card_flag_rate(card: ModelCard) -> float:
    if card.ood is not None:
        return (card.ood.inputs or card.ood).val_flag_rate
    assert card.detection is not None and card.detection.ood_inputs is not None
    return card.detection.ood_inputs.val_flag_rate


@pytest.mark.shared_data
@pytest.mark.parametrize("name", DETECTORS)
def test_val_flags_as_the_card_says_a_typical_val_image_is_trusted_and_a_chest_film_is_not(
    name: str, installed: list[InstalledModel], shared_data_dir: Path, fracatlas_view: Path
) -> None:
    model = get_model(name, installed)
    card = model.card
    backend = OnnxBackend(model.weights, threads=2)
    images = val_set(name, shared_data_dir, fracatlas_view, card)
    scores = decision_scores(model, backend, images)
    flags = scores >= 1.0
    assert np.mean(flags) == pytest.approx(card_flag_rate(card), abs=1e-6)
    trust = {
        "input_stats": card_input_stats(model.folder, card),
        "ood_stats": stats_for(model.folder, card.ood),
    }
    # The val image of median score: half of val is more unusual, 95% is not flagged.
    typical = images[int(np.argsort(scores)[len(scores) // 2])]
    for finding in detect_findings(as_image(typical), card, backend, **trust):
        assert not finding.ood_flag and LOW_TRUST not in finding.warnings
        assert finding.ood_score is not None and finding.ood_score < 1.0
    chest = read_image_file(sorted((shared_data_dir / "cxr_pneumonia").rglob("*.jpeg"))[0])
    found = detect_findings(as_image(chest), card, backend, **trust)
    assert found  # boxes, or the one finding of a low-trust image without boxes
    for finding in found:
        assert finding.ood_flag and LOW_TRUST in finding.warnings
        assert finding.ood_score is not None and finding.ood_score >= 1.0
        if card.ood is not None:
            assert finding.ood_feature_score is not None


@pytest.mark.shared_data
def test_a_tinted_chest_film_sent_as_a_smear_is_low_trust_in_findings_json(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    chest = read_image_file(sorted((shared_data_dir / "cxr_pneumonia").rglob("*.jpeg"))[0])
    # Photographed with a warm cast, so it is a colour image and routes to the smear model.
    grey = chest.astype(np.float32) if chest.ndim == 2 else chest.mean(axis=-1)
    rgb = (grey[..., None] * np.array([1.0, 0.85, 0.7], np.float32)).astype(np.uint8)
    write_png(tmp_path / "smear.png", rgb)
    run = analyze(
        [tmp_path / "smear.png"], tmp_path / "out", discover(), modality="SM", body_part="BLOOD"
    )
    [output] = run.outputs
    doc = json.loads((output.folder / "findings.json").read_text())
    [series] = doc["series"]
    assert series["models"] == ["bccd_cells"] and series["findings"]
    for f in series["findings"]:
        assert f["ood_flag"] and f["trust"].startswith("low") and LOW_TRUST in f["warnings"]
        assert f["ood_score"] >= 1.0 and f["ood_input_score"] is not None
    assert LOW_TRUST in series["warnings"]
