"""Input quality checks."""

from __future__ import annotations

import numpy as np
import pytest

from radlens.inference.quality import check_quality, noise_level


def smooth(n: int = 64) -> np.ndarray:
    return np.add.outer(np.linspace(0, 100, n), np.linspace(0, 50, n))


def test_a_smooth_image_passes() -> None:
    assert check_quality(smooth()) == ()


def test_blank_tiny_saturated_and_noisy_images_are_named() -> None:
    assert check_quality(np.full((64, 64), 7.0)) == ("blank image: no contrast",)
    assert check_quality(smooth(20)) == ("tiny image (20x20 px): too small to read",)
    assert check_quality(smooth(20), min_side=16) == ()
    white = smooth()
    white[:, 10:] = white.max()
    assert check_quality(white)[0].startswith("saturated image")
    noisy = smooth() + np.random.default_rng(0).normal(0, 40, (64, 64))
    assert check_quality(noisy)[0].startswith("extreme noise")


def test_masks_are_checked_for_emptiness_only() -> None:
    mask = np.zeros((28, 28, 28))
    assert check_quality(mask, mask=True, min_side=8) == ("empty mask",)
    mask[10:13, 10:13, 10:13] = 1  # a sparse mask is not "blank"
    assert check_quality(mask, mask=True, min_side=8) == ()


@pytest.mark.shared_data
def test_no_clean_val_image_of_the_2d_datasets_is_flagged(shared_data_dir) -> None:  # type: ignore[no-untyped-def]
    from radlens.io.datasets import read_labelled

    for name, side in (("medmnist/breastmnist.npz", 14), ("medmnist/retinamnist.npz", 14)):
        for image in read_labelled(shared_data_dir / name, "val").images:
            assert check_quality(image, min_side=side) == (), name
    assert noise_level(smooth()) < 0.01
