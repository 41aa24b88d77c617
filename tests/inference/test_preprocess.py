"""Preprocessing: resize placement, window, percentile scaling, colour and size checks."""

from __future__ import annotations

import numpy as np
import pytest

from radlens.domain.imaging import Window
from radlens.errors import IncompatibleInputError
from radlens.inference.preprocess import (
    apply_window,
    prepare_2d,
    resize_2d,
    scale_percentiles,
    to_gray,
)
from radlens.models.card import InputSpec, Resize


def ramp(rows: int, cols: int) -> np.ndarray:
    return np.arange(rows * cols, dtype=np.float32).reshape(rows, cols)


def test_stretch_fills_the_input_and_scales_each_axis() -> None:
    out, where = resize_2d(ramp(20, 10), (8, 8), Resize.STRETCH)
    assert out.shape == (8, 8)
    assert out.dtype == np.float32
    assert (where.source_shape, where.scale_y, where.scale_x) == ((20, 10), 2.5, 1.25)
    assert (where.offset_y, where.offset_x) == (0.0, 0.0)


def test_pad_keeps_aspect_and_centres_with_the_minimum() -> None:
    image = ramp(20, 10) + 100
    out, where = resize_2d(image, (8, 8), Resize.PAD)
    assert where.scale_y == where.scale_x == 2.5
    assert (where.offset_y, where.offset_x) == (0.0, 2.0)
    inner = out[:, 2:6]
    assert np.all(out[:, :2] == inner.min())
    assert np.all(out[:, 6:] == inner.min())
    # Top-to-bottom ramp survives resizing.
    assert np.all(np.diff(inner[:, 0]) > 0)


def test_pad_of_a_wide_image_pads_rows() -> None:
    _, where = resize_2d(ramp(10, 40), (16, 16), Resize.PAD)
    assert where.scale_y == where.scale_x == 2.5
    assert (where.offset_y, where.offset_x) == (6.0, 0.0)


def test_same_size_resize_is_a_copy() -> None:
    image = ramp(8, 8)
    out, where = resize_2d(image, (8, 8), Resize.STRETCH)
    np.testing.assert_array_equal(out, image)
    assert out is not image
    assert where.scale_y == 1.0


def test_window_clips_to_center_plus_minus_half_width() -> None:
    out = apply_window(np.array([-500.0, 0.0, 40.0, 500.0]), Window(40, 400))
    np.testing.assert_array_equal(out, [-160.0, 0.0, 40.0, 240.0])


def test_percentile_scaling_maps_percentiles_to_zero_and_one_and_clips() -> None:
    values = np.arange(101, dtype=np.float32)
    full = scale_percentiles(values, 0, 100)
    np.testing.assert_allclose(full, values / 100, atol=1e-6)
    clipped = scale_percentiles(values, 10, 90)
    assert clipped[:11].max() == 0.0
    assert clipped[90:].min() == 1.0
    assert clipped[50] == pytest.approx(0.5)


def test_flat_image_scales_to_zeros() -> None:
    out = scale_percentiles(np.full((16, 16), 1234.0, np.float32), 0.5, 99.5)
    assert out.dtype == np.float32
    assert not out.any()


def test_rgb_becomes_luminance() -> None:
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 0)
    rgb[1, 0] = (0, 0, 255)
    rgb[1, 1] = (255, 255, 255)
    gray = to_gray(rgb)
    assert gray.shape == (2, 2)
    np.testing.assert_allclose(gray, [[76.245, 149.685], [29.07, 255.0]], rtol=1e-4)


def test_gray_passes_through_to_gray() -> None:
    image = ramp(3, 3).astype(np.uint16)
    np.testing.assert_array_equal(to_gray(image), ramp(3, 3))


def test_prepare_2d_gives_normalized_channels_first_float32() -> None:
    spec = InputSpec(size=(32, 32), percentile_low=0, percentile_high=100, mean=0.5, std=0.25)
    out, where = prepare_2d(ramp(64, 64), spec)
    assert out.shape == (1, 32, 32)
    assert out.dtype == np.float32
    assert out.min() == pytest.approx(-2.0)
    assert out.max() == pytest.approx(2.0)
    assert where.source_shape == (64, 64)


def test_prepare_2d_of_rgb_for_a_gray_model_matches_its_luminance() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    spec = InputSpec(size=(16, 16))
    from_rgb, _ = prepare_2d(rgb, spec)
    from_gray, _ = prepare_2d(to_gray(rgb), spec)
    np.testing.assert_allclose(from_rgb, from_gray, atol=1e-5)


def test_prepare_2d_repeats_gray_for_a_three_channel_model() -> None:
    out, _ = prepare_2d(ramp(16, 16), InputSpec(size=(16, 16), channels=3))
    assert out.shape == (3, 16, 16)
    np.testing.assert_array_equal(out[0], out[2])


def test_prepare_2d_applies_the_window_only_when_the_spec_says_so() -> None:
    image = np.zeros((16, 16), np.float32)
    image[:, 8:] = 1000.0
    image[0, 0] = 50.0  # inside the window: left half becomes distinguishable
    window = Window(center=50, width=100)
    spec = InputSpec(size=(16, 16), percentile_low=0, percentile_high=100)
    windowed, _ = prepare_2d(image, spec, window)
    raw, _ = prepare_2d(
        image,
        InputSpec(size=(16, 16), use_window=False, percentile_low=0, percentile_high=100),
        window,
    )
    # Window [0, 100]: 50 sits half way up; without it, 50 is 5% of 1000.
    assert windowed[0, 0, 0] == pytest.approx((0.5 - 0.5) / 0.25, abs=1e-5)
    assert raw[0, 0, 0] == pytest.approx((0.05 - 0.5) / 0.25, abs=1e-5)


@pytest.mark.parametrize("shape", [(4, 200), (200, 7), (7, 7, 3)])
def test_too_small_image_raises_incompatible_input(shape: tuple[int, ...]) -> None:
    with pytest.raises(IncompatibleInputError, match="too small"):
        prepare_2d(np.zeros(shape, np.float32), InputSpec(size=(32, 32)))


@pytest.mark.parametrize("shape", [(16,), (2, 16, 16, 1), (16, 16, 4)])
def test_non_2d_array_raises_incompatible_input(shape: tuple[int, ...]) -> None:
    with pytest.raises(IncompatibleInputError, match="one 2D image"):
        prepare_2d(np.zeros(shape, np.float32), InputSpec(size=(32, 32)))


def test_3d_spec_is_refused_by_prepare_2d() -> None:
    with pytest.raises(IncompatibleInputError, match="2D spec"):
        prepare_2d(np.zeros((32, 32), np.float32), InputSpec(size=(16, 16, 16)))


def test_resize_linear_averages_pairs_when_halving_and_keeps_a_constant() -> None:
    from radlens.inference.preprocess import resize_linear

    ramp = np.arange(8, dtype=np.float32).reshape(1, 1, 8)
    np.testing.assert_allclose(resize_linear(ramp, (1, 1, 4)), [[[0.5, 2.5, 4.5, 6.5]]])
    flat = np.full((5, 7, 9), 3.0, np.float32)
    np.testing.assert_allclose(resize_linear(flat, (28, 28, 28)), 3.0)
    assert resize_linear(np.zeros((64, 64, 64)), (28, 28, 28)).shape == (28, 28, 28)


def test_resize_linear_upsampling_interpolates_between_centres() -> None:
    from radlens.inference.preprocess import resize_linear

    out = resize_linear(np.array([[0.0, 4.0]], np.float32), (1, 4))
    np.testing.assert_allclose(out, [[0.0, 1.0, 3.0, 4.0]])


def test_prepare_3d_gives_one_channel_normalized_volume() -> None:
    from radlens.inference.preprocess import prepare_3d

    spec = InputSpec(size=(28, 28, 28), percentile_low=0, percentile_high=100, mean=0.5, std=0.5)
    mask = np.zeros((40, 30, 30), np.uint8)
    mask[10:30, 5:25, 5:25] = 255
    out = prepare_3d(mask, spec)
    assert out.shape == (1, 28, 28, 28) and out.dtype == np.float32
    assert out.min() == pytest.approx(-1.0) and out.max() == pytest.approx(1.0)


def test_prepare_3d_refuses_a_2d_image_and_a_2d_spec() -> None:
    from radlens.inference.preprocess import prepare_3d

    with pytest.raises(IncompatibleInputError):
        prepare_3d(np.zeros((28, 28)), InputSpec(size=(28, 28, 28)))
    with pytest.raises(IncompatibleInputError):
        prepare_3d(np.zeros((28, 28, 28)), InputSpec(size=(28, 28)))


def test_prepare_dispatches_on_the_spec() -> None:
    from radlens.inference.preprocess import prepare

    assert prepare(np.zeros((30, 30)), InputSpec(size=(28, 28))).shape == (1, 28, 28)
    assert prepare(np.zeros((9, 9, 9)), InputSpec(size=(8, 8, 8))).shape == (1, 8, 8, 8)
