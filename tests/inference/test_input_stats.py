"""Input statistics: each reacts to the shift it is there for, and ignores better-than-training
images in the one-sided ones."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageFilter

from radlens.inference.input_stats import STATISTICS, statistic_set_for, statistics_of
from radlens.inference.preprocess import prepare_2d, prepare_3d
from radlens.models.card import AppliesTo, InputSpec

IMAGE = STATISTICS["image2d/1"]
MASK = STATISTICS["mask3d/1"]
SPEC = InputSpec(size=(64, 64), percentile_low=0.5, percentile_high=99.5)


def texture(side: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth, textured 8-bit image that uses most of the range (like a radiograph)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:side, :side] / side
    smooth = sum(
        np.sin(2 * np.pi * (rng.uniform(1, 6) * y + rng.uniform(1, 6) * x) + rng.uniform(0, 6))
        for _ in range(6)
    ) + rng.normal(0, 0.1, (side, side))
    scaled = (smooth - smooth.min()) / np.ptp(smooth) * 250
    return np.round(scaled).astype(np.uint8)


def stats(raw: np.ndarray, spec: InputSpec = SPEC) -> dict[str, float]:
    values = statistics_of(IMAGE, raw, prepare_2d(raw, spec)[0], spec)
    return dict(zip(IMAGE.names, values.tolist(), strict=True))


def test_contrast_reduction_of_a_stored_image_uses_fewer_grey_levels() -> None:
    clean = texture()
    low = np.round((clean - clean.mean()) * 0.2 + clean.mean()).astype(np.uint8)
    a, b = stats(clean), stats(low)
    assert a["grey_levels_bits"] > 7.5 and b["grey_levels_bits"] < 6.0
    # The model input looks the same: percentile scaling undoes the contrast change.
    assert abs(a["std"] - b["std"]) < 0.03


def test_grey_levels_are_counted_up_to_8_bits_whatever_the_bit_depth() -> None:
    fine = np.random.default_rng(4).integers(0, 16, (128, 128))
    wide = (texture().astype(np.uint16) * 16 + fine).astype(np.uint16)  # 12 bits, 4000 levels
    assert stats(wide)["grey_levels_bits"] == 8.0
    # A 12-bit image using only part of its range is not unusual for it either.
    assert stats((wide // 4).astype(np.uint16))["grey_levels_bits"] == 8.0


def test_jpeg_block_edges_raise_blockiness() -> None:
    clean = texture(seed=1)
    buffer = io.BytesIO()
    PILImage.fromarray(clean).save(buffer, format="JPEG", quality=8)
    jpeg = np.asarray(PILImage.open(io.BytesIO(buffer.getvalue())))
    assert abs(stats(clean)["jpeg_blockiness"]) < 0.1
    assert stats(jpeg)["jpeg_blockiness"] > 0.3


def test_blocks_and_steps_too_small_to_reach_the_model_input_are_not_counted() -> None:
    big = np.kron(texture(seed=5), np.ones((4, 4))).astype(np.uint8)  # 512 px, read at 64
    buffer = io.BytesIO()
    PILImage.fromarray(big).save(buffer, format="JPEG", quality=8)
    jpeg = np.asarray(PILImage.open(io.BytesIO(buffer.getvalue())))
    assert stats(jpeg)["jpeg_blockiness"] == stats(jpeg)["staircase_decoded"] == 0.0
    assert stats(jpeg, InputSpec(size=(256, 256)))["jpeg_blockiness"] > 0.3


def test_pixelation_makes_flat_steps_and_blur_lowers_the_gradient() -> None:
    spec = InputSpec(size=(128, 128))
    clean = texture(seed=2)
    pil = PILImage.fromarray(clean)
    blocky = np.asarray(
        pil.resize((45, 45), PILImage.Resampling.BOX).resize(
            (128, 128), PILImage.Resampling.NEAREST
        )
    )
    a, b = stats(clean, spec), stats(blocky, spec)
    assert a["staircase"] < 0.3 < 0.6 < b["staircase"]
    assert a["staircase_decoded"] < 0.3 < 0.6 < b["staircase_decoded"]
    assert b["flat_steps"] > a["flat_steps"] + 0.3
    blurred = np.asarray(pil.filter(ImageFilter.GaussianBlur(4)))
    soft = stats(blurred, spec)
    assert soft["gradient"] < 0.8 * a["gradient"]
    assert soft["autocorr_lag1"] > a["autocorr_lag1"]


def test_colour_shows_in_chroma_and_saturation_but_not_for_grey() -> None:
    grey = texture()
    rgb = np.stack([grey, np.roll(grey, 20, axis=0), 255 - grey], axis=-1).astype(np.uint8)
    spec3 = InputSpec(size=(64, 64), channels=3)
    colour = statistics_of(IMAGE, rgb, prepare_2d(rgb, spec3)[0], spec3)
    values = dict(zip(IMAGE.names, colour.tolist(), strict=True))
    assert stats(grey)["colour_chroma"] == 0.0 and stats(grey)["saturation"] == 0.0
    assert values["colour_chroma"] > 0.2 and values["saturation"] > 0.2


def test_a_large_radiograph_takes_a_few_milliseconds() -> None:
    raw = (np.random.default_rng(3).random((2000, 2000)) * 4095).astype(np.uint16)
    spec = InputSpec(size=(224, 224))
    x = prepare_2d(raw, spec)[0]
    statistics_of(IMAGE, raw, x, spec)
    times = []
    for _ in range(5):
        clock = time.perf_counter()
        statistics_of(IMAGE, raw, x, spec)
        times.append(time.perf_counter() - clock)
    assert np.median(times) < 0.05  # about 2 ms on the 2-core dev box


def test_statistics_are_finite_for_a_blank_image() -> None:
    blank = np.zeros((40, 40), np.uint8)
    assert np.isfinite(statistics_of(IMAGE, blank, prepare_2d(blank, SPEC)[0], SPEC)).all()


MASK_SPEC = InputSpec(
    size=(28, 28, 28), percentile_low=0, percentile_high=100, std=0.5, use_window=False
)


def mask_stats(volume: np.ndarray) -> dict[str, float]:
    values = statistics_of(MASK, volume, prepare_3d(volume, MASK_SPEC), MASK_SPEC)
    return dict(zip(MASK.names, values.tolist(), strict=True))


def ball(centre: tuple[float, float, float], radius: float, side: int = 28) -> np.ndarray:
    z, y, x = np.mgrid[:side, :side, :side]
    d = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2
    return (d <= radius**2).astype(np.uint8) * 255


def test_mask_statistics_tell_a_tube_from_a_ball_and_a_centred_from_an_offset_object() -> None:
    tube = np.zeros((28, 28, 28), np.uint8)
    tube[2:26, 13:15, 13:15] = 255
    centred, offset = mask_stats(ball((13.5, 13.5, 13.5), 6)), mask_stats(ball((8, 9, 20), 5))
    long_thin = mask_stats(tube)
    assert long_thin["log_elongation_short"] < centred["log_elongation_short"] - 1.5
    assert long_thin["log_surface_share"] > centred["log_surface_share"]
    assert offset["log_centre_offset_large"] > centred["log_centre_offset_large"] + 2
    assert centred["log_box_fill"] == pytest.approx(np.log(np.pi / 6), abs=0.1)


def test_mask_statistics_do_not_depend_on_the_stored_label_value() -> None:
    sphere = ball((12, 14, 15), 6)
    np.testing.assert_allclose(
        list(mask_stats(sphere).values()), list(mask_stats(sphere // 255).values())
    )


def test_an_empty_mask_gives_finite_extreme_values() -> None:
    values = mask_stats(np.zeros((28, 28, 28), np.uint8))
    assert all(np.isfinite(v) and v < -5 for v in values.values())


def test_each_set_describes_every_statistic_once() -> None:
    for statistics in STATISTICS.values():
        n = len(statistics.names)
        assert len(set(statistics.names)) == n == len(statistics.direction)
        assert set(statistics.direction) <= {-1, 0, 1}


def test_the_set_follows_the_card(make_card) -> None:  # type: ignore[no-untyped-def]
    assert statistic_set_for(make_card()) is IMAGE
    mask_card = make_card(input=MASK_SPEC, applies_to=AppliesTo(modalities=("SEG",), dims=3))
    assert statistic_set_for(mask_card) is MASK
    ct_card = make_card(input=MASK_SPEC, applies_to=AppliesTo(modalities=("CT",), dims=3))
    assert statistic_set_for(ct_card) is None
