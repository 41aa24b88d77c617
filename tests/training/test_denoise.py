"""``fit_denoise``: the thresholds are the training images' largest noise level and impulse
share, so no training image is filtered; val images above them are counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radlens.errors import UnsupportedTaskError
from radlens.inference.preprocess import noise_of, prepare_2d
from radlens.models.card import AppliesTo, InputSpec
from radlens.training.denoise import fit_denoise


def smooth_images(n: int, rng: np.random.Generator, sigma: float = 0.0) -> np.ndarray:
    y, x = np.mgrid[0:64, 0:64].astype(np.float32)
    out = []
    for _ in range(n):
        img = 60 + 100 * (x / 64) * rng.uniform(0.5, 1.5) + 30 * np.sin(y / rng.uniform(5, 15))
        img = img + rng.normal(0, sigma * 255 + rng.uniform(0, 1.5), img.shape)
        out.append(np.rint(img).clip(0, 255).astype(np.uint8))
    return np.stack(out)


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    """20 train and 10 val smooth images; the last two val images carry strong noise."""
    rng = np.random.default_rng(0)
    val = smooth_images(10, rng)
    val[-2:] = smooth_images(2, rng, sigma=0.08)
    path = tmp_path / "smoothmnist.npz"
    np.savez(
        path,
        train_images=smooth_images(20, rng),
        train_labels=np.arange(20)[:, None] % 2,
        val_images=val,
        val_labels=np.arange(10)[:, None] % 2,
    )
    return path


def test_thresholds_are_the_training_maxima_and_noisy_val_images_are_counted(
    make_card, npz: Path
) -> None:  # type: ignore[no-untyped-def]
    card = make_card(input=InputSpec(size=(32, 32)))
    fit = fit_denoise(card, npz, median=3)
    train = np.load(npz)["train_images"]
    measured = np.array([noise_of(im, card.input) for im in train])
    assert fit.spec.noise_above == pytest.approx(measured[:, 0].max(), abs=1e-6)
    assert fit.spec.noise_above >= measured[:, 0].max()
    assert fit.spec.impulse_above >= measured[:, 1].max()
    assert (fit.spec.median, fit.spec.n_train, fit.n_val) == (3, 20, 10)
    assert fit.spec.val_filtered == pytest.approx(0.2)
    # No training image is filtered when read.
    fitted = InputSpec(size=(32, 32), denoise=fit.spec)
    assert all(prepare_2d(im, fitted)[1].denoised is None for im in train)


def test_only_2d_classifiers_are_fitted(make_card, npz: Path) -> None:  # type: ignore[no-untyped-def]
    volume = make_card(
        input=InputSpec(size=(16, 16, 16)), applies_to=AppliesTo(modalities=("CT",), dims=3)
    )
    with pytest.raises(UnsupportedTaskError, match="2D classifiers"):
        fit_denoise(volume, npz)
