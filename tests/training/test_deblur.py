"""``fit_deblur``: the trigger is ``factor`` times the training images' largest blur
estimate, so no training image is deconvolved; val images at or above it are counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from radlens.errors import UnsupportedTaskError
from radlens.inference.preprocess import blur_of_image, prepare_2d
from radlens.inference.restore import gaussian_blur
from radlens.models.card import AppliesTo, InputSpec
from radlens.training.deblur import fit_deblur


def textures(n: int, rng: np.random.Generator, blur: float = 0.0) -> np.ndarray:
    out = []
    for _ in range(n):
        t = gaussian_blur(rng.random((64, 64)), rng.uniform(0.5, 1.0))
        if blur:
            t = gaussian_blur(t, blur)
        out.append(np.rint(20 + 220 * (t - t.min()) / (t.max() - t.min())).astype(np.uint8))
    return np.stack(out)


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    """20 train and 10 val textures; the last two val images are blurred by 6 px."""
    rng = np.random.default_rng(0)
    val = textures(10, rng)
    val[-2:] = textures(2, rng, blur=6.0)
    path = tmp_path / "texturemnist.npz"
    np.savez(
        path,
        train_images=textures(20, rng),
        train_labels=np.arange(20)[:, None] % 2,
        val_images=val,
        val_labels=np.arange(10)[:, None] % 2,
    )
    return path


def test_the_trigger_is_a_multiple_of_the_blurriest_training_image_and_blurred_val_is_counted(
    make_card, npz: Path
) -> None:  # type: ignore[no-untyped-def]
    card = make_card(input=InputSpec(size=(48, 48)))
    fit = fit_deblur(card, npz, factor=1.5, wiener_k=0.02)
    train = np.load(npz)["train_images"]
    measured = np.array([blur_of_image(im, card.input) for im in train])
    assert fit.spec.blur_max == pytest.approx(measured.max(), abs=1e-6)
    assert fit.spec.blur_max >= measured.max()
    assert fit.spec.trigger == pytest.approx(1.5 * fit.spec.blur_max)
    assert (fit.spec.wiener_k, fit.spec.n_train, fit.n_val) == (0.02, 20, 10)
    assert fit.spec.val_deblurred == pytest.approx(0.2)
    assert fit.val_blur_max >= fit.spec.trigger
    # No training image is deconvolved when read.
    fitted = InputSpec(size=(48, 48), deblur=fit.spec)
    assert all(prepare_2d(im, fitted)[1].deblurred is None for im in train)


def test_the_calibration_reads_a_known_blur_back_near_its_sigma(make_card, npz: Path) -> None:  # type: ignore[no-untyped-def]
    card = make_card(input=InputSpec(size=(48, 48)))
    spec = fit_deblur(card, npz).spec
    excess, sigmas = zip(*spec.calibration, strict=True)
    assert list(excess) == sorted(excess) and list(sigmas) == sorted(sigmas)
    assert set(sigmas) <= {1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0} and len(sigmas) >= 4
    fitted = InputSpec(size=(48, 48), deblur=spec)
    for image in np.load(npz)["train_images"][:5]:
        soft = np.rint(gaussian_blur(image.astype(np.float32), 3.0))
        done = prepare_2d(soft, fitted)[1].deblurred
        # 3 px at 64 px is 2.25 px at the 48 px input.
        assert done is not None and done.sigma == pytest.approx(2.25, rel=0.3)


def test_bad_settings_are_refused_before_any_image_is_read(make_card, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    card = make_card(input=InputSpec(size=(48, 48)))
    with pytest.raises(ValueError, match="factor"):
        fit_deblur(card, tmp_path / "absent.npz", factor=0.5)


def test_only_2d_classifiers_are_fitted(make_card, npz: Path) -> None:  # type: ignore[no-untyped-def]
    volume = make_card(
        input=InputSpec(size=(16, 16, 16)), applies_to=AppliesTo(modalities=("CT",), dims=3)
    )
    with pytest.raises(UnsupportedTaskError, match="2D classifiers"):
        fit_deblur(volume, npz)
