"""Every shipped model's out-of-distribution decision: both scores, hash-checked, and the
card's figures reproduced from its own val images through ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radlens.evaluation.corruptions import corrupt
from radlens.evaluation.evaluate import prepare_batch
from radlens.inference.backends import OnnxBackend
from radlens.inference.input_stats import statistic_set_for
from radlens.inference.ood import OodReading, read_ood, stats_for
from radlens.io.datasets import read_labelled
from radlens.models.registry import InstalledModel, discover

SHIPPED = {  # name -> its data under ../shared/data
    "cxr_pneumonia": "cxr_pneumonia",
    "cxr_pneumonia_128": "cxr_pneumonia",
    "breast_us_malignancy": "medmnist/breastmnist.npz",
    "retina_dr_grade": "medmnist/retinamnist.npz",
    "adrenal_ct_3d_64": "medmnist/adrenalmnist3d_64.npz",
    "vessel_mra_3d": "medmnist/vesselmnist3d.npz",
    "knee_oa_kl": "cls/knee_oa_kl_grade",
}


def readings(model: InstalledModel, images: list[np.ndarray]) -> list[OodReading]:
    card = model.card
    assert card.ood is not None
    stats = stats_for(model.folder, card.ood)
    backend = OnnxBackend(model.weights, threads=2)
    out: list[OodReading] = []
    for start in range(0, len(images), 64):
        raws = images[start : start + 64]
        batch = prepare_batch(card, raws)
        features = backend.run(batch)[card.ood.output]
        out += read_ood(card, stats, features, raws, batch)
    return out


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_model_has_both_scores_hash_checked(name: str) -> None:
    [model] = [m for m in discover(include_disabled=True) if m.card.name == name]
    spec = model.card.ood
    assert spec is not None and spec.inputs is not None
    statistics = statistic_set_for(model.card)
    assert statistics is not None and spec.inputs.statistics == statistics.kind
    stats = stats_for(model.folder, spec)
    assert stats is not None and stats.inputs is not None
    assert stats.inputs.centre.shape == (len(statistics.names),)
    assert 0.03 <= spec.inputs.val_flag_rate <= 0.055


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.shared_data
@pytest.mark.slow
def test_own_val_flags_as_the_card_says_and_faded_val_is_flagged(
    name: str, shared_data_dir: Path
) -> None:
    [model] = [m for m in discover(include_disabled=True) if m.card.name == name]
    card = model.card
    assert card.ood is not None and card.ood.inputs is not None
    val = read_labelled(shared_data_dir / SHIPPED[name], "val", card.labels)
    flags = [r.flagged for r in readings(model, val.images)]
    assert np.mean(flags) == pytest.approx(card.ood.inputs.val_flag_rate, abs=1e-6)
    if card.input.dims == 2:
        # Severity-5 contrast, stored as 8-bit: the feature score alone misses it (AUROC 0.5).
        sample = val.sample(60).images
        faded = [np.round(corrupt(im, "contrast", 5)).astype(np.uint8) for im in sample]
        assert np.mean([r.flagged for r in readings(model, faded)]) >= 0.9
