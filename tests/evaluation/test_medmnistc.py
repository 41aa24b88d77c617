"""MedMNIST-C's corruption tables: every kind at every severity, the operations as the
package defines them, and the rules for images smaller or larger than 224 px."""

from __future__ import annotations

import numpy as np
import pytest

from radlens.evaluation.corruptions import corrupt, kinds_in
from radlens.evaluation.medmnistc import TABLES, medmnistc_corrupt


def textured(side: int, rgb: bool = False) -> np.ndarray:
    """A smooth ramp with a fine grating: something for every corruption to change."""
    t = np.linspace(0, 1, side)
    base = 40 + 150 * np.add.outer(t, t) / 2 + 25 * np.sin(np.add.outer(t, t) * side / 3)
    return np.stack([base, base * 0.9, base * 0.8], -1) if rgb else base


CASES = [(table, kind) for table in TABLES for kind in TABLES[table]]


@pytest.mark.parametrize(("table", "kind"), CASES)
def test_every_kind_keeps_shape_and_range_is_seeded_and_grows_with_severity(
    table: str, kind: str
) -> None:
    x = textured(224, rgb=table == "retinamnist")
    damage = []
    for severity in range(1, 6):
        out = corrupt(x, kind, severity, seed=3, table=table)
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 255
        np.testing.assert_array_equal(out, np.rint(out))  # 8-bit values, as a file holds
        damage.append(float(np.abs(out - np.rint(x)).mean()))
    assert damage[0] > 0 and damage[-1] > damage[0], damage
    np.testing.assert_array_equal(
        corrupt(x, kind, 2, seed=5, table=table), corrupt(x, kind, 2, seed=5, table=table)
    )


def test_gaussian_blur_is_torchvisions_kernel_for_its_size() -> None:
    """Kernel size 3 (chestmnist severity 1): sigma 0.3 ((3 - 1) / 2 - 1) + 0.8 = 0.8."""
    x = np.zeros((224, 224))
    x[100, 120] = 200.0
    out = medmnistc_corrupt(x, "chestmnist", "gaussian_blur", 1) / 255.0
    w = np.exp(-0.5 * (np.array([-1.0, 0.0, 1.0]) / 0.8) ** 2)
    w /= w.sum()
    expected = np.zeros((224, 224))
    expected[99:102, 119:122] = np.outer(w, w) * 200.0 / 255.0
    # 8-bit output: each pixel within one gray level (truncated) of the exact blur
    assert np.all(out <= expected + 1e-9) and np.all(out > expected - 1 / 255)


def test_impulse_noise_flips_the_tables_share_of_pixels_to_black_or_white() -> None:
    x = np.full((224, 224), 128.0)
    out = medmnistc_corrupt(x, "chestmnist", "impulse_noise", 5, seed=0)
    changed = out != 128
    assert abs(changed.mean() - 0.17) < 0.01
    assert set(np.unique(out[changed])) == {0.0, 255.0}
    assert abs((out[changed] == 255).mean() - 0.5) < 0.03


def test_brightness_scales_and_pixelate_makes_blocks() -> None:
    flat = np.full((224, 224), 100.0)
    assert np.all(medmnistc_corrupt(flat, "breastmnist", "brightness_down", 5) == 30.0)
    assert np.all(medmnistc_corrupt(flat, "breastmnist", "brightness_up", 1) == 140.0)
    x = textured(224)
    out = medmnistc_corrupt(x, "chestmnist", "pixelate", 5)  # 10% resolution: 22 px
    assert len(np.unique(out[0])) <= 23 + 22  # box-resized back: blocks and their edges


def test_motion_blur_spreads_an_impulse_along_one_line_to_one_side() -> None:
    x = np.zeros((224, 224))
    x[112, 112] = 255.0
    out = medmnistc_corrupt(x, "breastmnist", "motion_blur", 1, seed=0)
    ys, xs = np.nonzero(out)
    assert len(ys) >= 5  # radius 5: 11 taps, several above one gray level
    # one-sided: every blurred pixel lies on the same side of the impulse
    assert (np.all(ys >= 112) or np.all(ys <= 112)) and (np.all(xs >= 112) or np.all(xs <= 112))
    assert abs(out.sum() - 255.0) < 12  # weights sum to one (less 8-bit truncation)


def test_a_28px_image_gets_the_change_made_at_224_without_the_round_trip() -> None:
    """A flat image darkened by a factor stays exactly flat and darkened: the resampling
    round trip itself adds nothing."""
    flat = np.full((28, 28), 100.0)
    out = medmnistc_corrupt(flat, "breastmnist", "brightness_down", 5)
    assert out.shape == (28, 28) and np.all(out == 30.0)
    x = textured(28)
    small = medmnistc_corrupt(x, "breastmnist", "speckle_noise", 5, seed=1)
    assert small.shape == (28, 28)
    # speckle at 224, averaged over 8 x 8 pixels: about an eighth of its 224-px damage
    at_224 = np.abs(medmnistc_corrupt(textured(224), "breastmnist", "speckle_noise", 5) - 0)
    assert 0 < np.abs(small - x).mean() < np.abs(at_224 - np.rint(textured(224))).mean() / 3


def test_a_larger_image_gets_blur_sizes_scaled_by_its_side() -> None:
    def edge_width(side: int) -> int:
        x = np.zeros((side, side))
        x[:, side // 2 :] = 255.0
        out = medmnistc_corrupt(x, "chestmnist", "gaussian_blur", 5)  # k = 11, sigma 2
        row = out[side // 2]
        return int(((row > 25) & (row < 230)).sum())

    assert edge_width(448) == pytest.approx(2 * edge_width(224), abs=1)


def test_tables_and_kinds_are_checked() -> None:
    assert kinds_in("chestmnist")[0] == "pixelate" and "gamma_corr_down" in kinds_in("chestmnist")
    assert len(kinds_in()) == 6  # radlens' own six
    with pytest.raises(ValueError, match="unknown corruption table 'organmnist'"):
        kinds_in("organmnist")
    with pytest.raises(ValueError, match="has no corruption 'blur'"):
        corrupt(textured(28), "blur", 1, table="breastmnist")
    with pytest.raises(ValueError, match="severity 6"):
        medmnistc_corrupt(textured(28), "breastmnist", "pixelate", 6)
