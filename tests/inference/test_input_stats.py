"""Input statistics: each reacts to the shift it is there for, and ignores better-than-training
images in the one-sided ones."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageFilter

from radlens.inference.input_stats import (
    DESCRIPTIONS,
    STATISTICS,
    StatisticSet,
    _symmetric_eigenvalues,
    describe,
    statistic_set_for,
    statistics_of,
)
from radlens.inference.preprocess import prepare_2d, prepare_3d
from radlens.models.card import AppliesTo, InputSpec

IMAGE = STATISTICS["image2d/1"]
MASK = STATISTICS["mask3d/1"]
SHAPE = STATISTICS["mask3d/2"]
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


def test_a_large_radiograph_gives_finite_repeatable_statistics() -> None:
    # Its cost (about 2 ms on the 2-core dev box) is measured by benchmarks/bench_analyze.py.
    raw = (np.random.default_rng(3).random((2000, 2000)) * 4095).astype(np.uint16)
    spec = InputSpec(size=(224, 224))
    x = prepare_2d(raw, spec)[0]
    first = statistics_of(IMAGE, raw, x, spec)
    assert first.shape == (len(IMAGE.names),) and np.isfinite(first).all()
    np.testing.assert_array_equal(statistics_of(IMAGE, raw, x, spec), first)


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


def shape_stats(volume: np.ndarray, spec: InputSpec = MASK_SPEC) -> dict[str, float]:
    values = statistics_of(SHAPE, volume, prepare_3d(volume, spec), spec)
    return dict(zip(SHAPE.names, values.tolist(), strict=True))


def tube(side: int = 28, radius: float = 2.5, diagonal: bool = False) -> np.ndarray:
    """A straight tube through the centre, along an axis or the body diagonal."""
    p = np.stack(np.mgrid[:side, :side, :side], -1) - (side - 1) / 2
    axis = np.ones(3) / np.sqrt(3) if diagonal else np.array([1.0, 0.0, 0.0])
    along = p @ axis
    across = np.linalg.norm(p - along[..., None] * axis, axis=-1)
    return ((across <= radius) & (np.abs(along) <= 0.4 * side)).astype(np.uint8) * 255


def sheet(side: int = 28) -> np.ndarray:
    """A curved plate two voxels thick (like an adrenal limb), 18 x 18 voxels wide."""
    z, y, x = np.mgrid[:side, :side, :side]
    surface = 11 + 0.04 * (y - 14) ** 2
    inside = (np.abs(y - 14) <= 9) & (np.abs(x - 14) <= 9)
    return ((np.abs(z - surface) <= 1) & inside).astype(np.uint8) * 255


def test_mask3d_1_statistics_are_unchanged() -> None:
    """Cards fitted with mask3d/1 keep scoring the same (values from before mask3d/2)."""
    z, y, x = np.mgrid[:28, :28, :28]
    blob = ((z - 12) / 7) ** 2 + ((y - 14) / 5) ** 2 + ((x - 15) / 4) ** 2 <= 1
    rod = (np.abs(y - 20) <= 1) & (np.abs(x - 9) <= 1) & (z > 3) & (z < 22)
    values = list(mask_stats((blob | rod).astype(np.uint8) * 255).values())
    expected = [-3.391316, -0.847298, -0.767255, -0.441833, -1.33493, -0.584275]
    expected += [-5.021178, -3.002618, -2.735959, -0.083615, -0.794339]
    np.testing.assert_allclose(values, expected, atol=1e-6)


def test_mask3d_2_extends_mask3d_1() -> None:
    volume = ball((10, 14, 17), 6)
    assert SHAPE.names[: len(MASK.names)] == MASK.names
    np.testing.assert_array_equal(
        list(shape_stats(volume).values())[: len(MASK.names)], list(mask_stats(volume).values())
    )


def test_a_sheet_is_planar_and_a_tube_is_round_in_cross_section() -> None:
    plate, pipe = shape_stats(sheet()), shape_stats(tube())
    assert plate["log_local_planarity_fine"] > pipe["log_local_planarity_fine"] + 0.5
    assert plate["log_local_planarity_coarse"] > pipe["log_local_planarity_coarse"] + 1.0
    assert pipe["log_local_roundness_coarse"] > plate["log_local_roundness_coarse"] + 0.4
    assert pipe["log_local_linearity_coarse"] > plate["log_local_linearity_coarse"] + 0.5
    assert pipe["log_cross_section_ratio"] > plate["log_cross_section_ratio"] + 0.5


def test_a_tube_reads_alike_along_an_axis_and_along_the_diagonal() -> None:
    """Round (Gaussian) neighbourhoods: the tube's direction moves its local form far less
    than the difference between a tube and a sheet."""
    straight, slanted, plate = (
        shape_stats(tube()),
        shape_stats(tube(diagonal=True)),
        shape_stats(sheet()),
    )
    for name in ("log_local_planarity_coarse", "log_local_roundness_coarse"):
        assert abs(straight[name] - slanted[name]) < 0.3 * abs(plate[name] - straight[name])


def test_a_thin_tube_and_a_solid_ball_differ_in_thickness_and_fill() -> None:
    thin, solid = shape_stats(tube(radius=1.5)), shape_stats(ball((13.5, 13.5, 13.5), 7))
    assert solid["log_surface_share"] < thin["log_surface_share"] - 0.5
    assert solid["log_local_linearity_coarse"] < thin["log_local_linearity_coarse"] - 2.0
    assert solid["log_ellipsoid_fill"] == pytest.approx(0.0, abs=0.1)  # an ellipsoid fills itself
    cross = np.maximum(tube(radius=1.5), np.transpose(tube(radius=1.5), (1, 0, 2)))
    assert shape_stats(cross)["log_ellipsoid_fill"] < solid["log_ellipsoid_fill"] - 1.0


def test_the_local_form_tells_a_sheet_from_a_tube_on_a_64_voxel_input_too() -> None:
    spec64 = replace(MASK_SPEC, size=(64, 64, 64))  # 28³ shapes stretched to 64³
    plate, pipe = shape_stats(sheet(), spec64), shape_stats(tube(), spec64)
    assert plate["log_local_planarity_coarse"] > pipe["log_local_planarity_coarse"] + 0.5
    assert pipe["log_local_roundness_coarse"] > plate["log_local_roundness_coarse"] + 0.2
    for name in ("log_local_planarity_coarse", "log_local_roundness_coarse"):
        assert plate[name] == pytest.approx(shape_stats(sheet())[name], abs=0.2)


def test_shape_statistics_are_deterministic_and_ignore_the_label_value() -> None:
    plate = sheet()
    first = statistics_of(SHAPE, plate, prepare_3d(plate, MASK_SPEC), MASK_SPEC)
    again = statistics_of(SHAPE, plate, prepare_3d(plate, MASK_SPEC), MASK_SPEC)
    ones = statistics_of(SHAPE, plate // 255, prepare_3d(plate // 255, MASK_SPEC), MASK_SPEC)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, ones)


@pytest.mark.parametrize("voxels", [0, 1, 2])
def test_shape_statistics_are_finite_for_an_empty_or_tiny_mask(voxels: int) -> None:
    volume = np.zeros((28, 28, 28), np.uint8)
    volume[14, 14, 14 : 14 + voxels] = 255
    values = shape_stats(volume)
    assert all(np.isfinite(v) for v in values.values())
    if voxels == 0:
        assert all(v < -5 for v in values.values())


def test_closed_form_eigenvalues_match_lapack() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 3, 3))
    cov = a @ np.transpose(a, (0, 2, 1))
    cov[:3] = [np.eye(3), np.diag([4.0, 1.0, 1.0]), np.zeros((3, 3))]  # repeated eigenvalues
    expected = np.linalg.eigvalsh(cov)[:, ::-1]
    np.testing.assert_allclose(_symmetric_eigenvalues(cov), expected, atol=1e-9)


def test_a_64_voxel_mask_gives_finite_repeatable_statistics() -> None:
    spec64 = replace(MASK_SPEC, size=(64, 64, 64))
    x = prepare_3d(sheet(64), spec64)
    first = statistics_of(SHAPE, None, x, spec64)  # type: ignore[arg-type]
    assert first.shape == (len(SHAPE.names),) and np.isfinite(first).all()
    np.testing.assert_array_equal(statistics_of(SHAPE, None, x, spec64), first)  # type: ignore[arg-type]


def test_each_set_describes_every_statistic_once() -> None:
    for statistics in STATISTICS.values():
        n = len(statistics.names)
        assert len(set(statistics.names)) == n == len(statistics.direction)
        assert set(statistics.direction) <= {-1, 0, 1}


def test_the_set_follows_the_card(make_card) -> None:  # type: ignore[no-untyped-def]
    # Newly fitted 2D cards get image2d/4; cards fitted with an earlier set keep theirs.
    assert statistic_set_for(make_card()) is STATISTICS["image2d/4"]
    mask_card = make_card(input=MASK_SPEC, applies_to=AppliesTo(modalities=("SEG",), dims=3))
    assert statistic_set_for(mask_card) is SHAPE  # newly fitted; mask3d/1 cards keep theirs
    ct_card = make_card(input=MASK_SPEC, applies_to=AppliesTo(modalities=("CT",), dims=3))
    assert statistic_set_for(ct_card) is None


def test_image2d_2_adds_tissue_texture_that_tells_speckle_from_a_smooth_radiograph() -> None:
    v2 = STATISTICS["image2d/2"]
    assert v2.names[: len(IMAGE.names)] == IMAGE.names  # image2d/1 plus the texture
    assert v2.names[len(IMAGE.names) :] == ("tissue_block_cv", "tissue_laplacian")
    spec = InputSpec(size=(256, 256), percentile_low=0.5, percentile_high=99.5)
    y, x = np.mgrid[:512, :512] / 512
    smooth = (np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.08) * 200 + 30).astype(np.uint8)
    # Speckle: multiplicative grain on the same anatomy, as ultrasound shows it.
    grain = np.random.default_rng(1).gamma(4.0, 0.25, smooth.shape)
    speckled = np.clip(smooth * grain, 0, 255).astype(np.uint8)

    def values(image: np.ndarray, stats: StatisticSet = v2) -> np.ndarray:
        return statistics_of(stats, image, prepare_2d(image, spec)[0], spec)

    plain, grainy = values(smooth), values(speckled)
    np.testing.assert_array_equal(plain[: len(IMAGE.names)], values(smooth, IMAGE))
    cv, laplacian = len(IMAGE.names), len(IMAGE.names) + 1
    assert plain[cv] < 0.1 < 0.15 < grainy[cv]  # about 0.06 and 0.20
    assert plain[laplacian] < 0.01 < 0.3 < grainy[laplacian]  # about 0.002 and 0.44
    black = values(np.zeros((64, 64), np.uint8))  # no tissue: defined, not NaN
    assert black[cv] == 0.0 and black[laplacian] == 0.0


def test_image2d_3_sees_pixelation_of_a_frame_much_larger_than_the_model_input() -> None:
    """A 768 px ultrasound-like frame read at 192 x 128: enlarging it 2.86x by nearest
    neighbour (the severity-5 pixelation) barely changes the model input, so image2d/2 sees
    nothing; image2d/3's decoded-frame pixelation goes from about 0.2 to 3."""
    v2, v3 = STATISTICS["image2d/2"], STATISTICS["image2d/3"]
    assert v3.names == v2.names[:2] + ("pixelation_decoded",) + v2.names[3:]
    assert v3.direction[2] == 1  # one-sided: fewer flat steps than training is no reason
    spec = InputSpec(size=(128, 192), percentile_low=0.5, percentile_high=99.5)
    rng = np.random.default_rng(3)
    anatomy = np.asarray(PILImage.fromarray(texture(seed=3)).resize((768, 512)), np.float64)
    frame = np.clip(anatomy * rng.gamma(4.0, 0.25, anatomy.shape), 0, 255).astype(np.uint8)
    pil = PILImage.fromarray(frame)
    enlarged = np.asarray(
        pil.resize((269, 179), PILImage.Resampling.BOX).resize(
            (768, 512), PILImage.Resampling.NEAREST
        )
    )

    def values(image: np.ndarray, stats: StatisticSet) -> dict[str, float]:
        v = statistics_of(stats, image, prepare_2d(image, spec)[0], spec)
        return dict(zip(stats.names, v.tolist(), strict=True))

    assert values(frame, v2)["staircase_decoded"] == values(enlarged, v2)["staircase_decoded"] == 0
    clean, pixelated = values(frame, v3), values(enlarged, v3)
    assert clean["pixelation_decoded"] < 0.5 and pixelated["pixelation_decoded"] > 2.5
    # Every other statistic is image2d/2's.
    same = [n for n in v3.names if n != "pixelation_decoded"]
    assert [clean[n] for n in same] == [values(frame, v2)[n] for n in same]
    # A 12-bit frame with noise moves at nearly every step: no pixelation.
    wide = frame.astype(np.uint16) * 16 + rng.integers(0, 16, frame.shape).astype(np.uint16)
    assert values(wide, v3)["pixelation_decoded"] < 0.2


V3, V4 = STATISTICS["image2d/3"], STATISTICS["image2d/4"]
GAPS, HIGH, LOW = (V4.names.index(n) for n in V4.names[len(V3.names) :])


def v4(raw: np.ndarray, spec: InputSpec = SPEC) -> np.ndarray:
    return statistics_of(V4, raw, prepare_2d(raw, spec)[0], spec)


def mapped(curve: np.ndarray) -> np.ndarray:
    """An image put through a grey-level curve (on 0..1), stored back as 8 bits."""
    return np.round(np.clip(curve, 0, 1) * 255).astype(np.uint8)


def test_image2d_4_extends_image2d_3_with_the_stored_levels() -> None:
    assert V4.names[: len(V3.names)] == V3.names
    assert V4.names[len(V3.names) :] == (
        "level_gaps_decoded",
        "high_level_decoded",
        "low_level_decoded",
    )
    assert (V4.direction[GAPS], V4.direction[HIGH], V4.direction[LOW]) == (1, -1, 1)
    image = texture(256)
    np.testing.assert_array_equal(
        v4(image)[: len(V3.names)], statistics_of(V3, image, prepare_2d(image, SPEC)[0], SPEC)
    )


def test_a_grey_level_stretch_of_a_stored_image_leaves_empty_levels() -> None:
    """Gamma 1.6, contrast x1.6 and brightness x1.5 (MedMNIST-C's severity 5) spread the
    stored levels apart; the untouched image uses every level it spans."""
    image = texture(256)
    u = image / 255.0
    clean = v4(image)[GAPS]
    assert clean < 0.01
    for curve in (u**1.6, 0.5 + 1.6 * (u - 0.5), 1.5 * u):
        assert v4(mapped(curve))[GAPS] > 0.1
    # Dimming merges levels, leaving no gaps, but a dimmed or flattened image no longer
    # reaches the stored range's ends.
    dim, flat = v4(mapped(0.5 * u)), v4(mapped(0.5 + 0.4 * (u - 0.5)))
    assert dim[GAPS] < 0.01 and dim[HIGH] < 0.45 < 0.8 < v4(image)[HIGH]
    assert flat[LOW] > 0.3 > 0.15 > v4(image)[LOW]


def test_level_statistics_are_neutral_beyond_8_bits_on_floats_and_on_sparse_histograms() -> None:
    image = texture(256)
    neutral = [0.0, 1.0, 0.0]
    # A 12-bit frame using every 16th level, as stored, is not a stretched 8-bit image.
    assert v4(image.astype(np.uint16) * 16)[[GAPS, HIGH, LOW]].tolist() == neutral
    assert v4(image / 255.0 * 200.5)[[GAPS, HIGH, LOW]].tolist() == neutral
    # Integers stored as floats count as 8-bit.
    assert v4(image.astype(np.float32))[HIGH] == v4(image)[HIGH]
    # A 28 px image spreads 784 pixels over ~250 levels: too few to call a level empty.
    small = texture(28)
    assert np.count_nonzero(np.bincount(small.ravel(), minlength=256)[3:248] == 0) > 50
    assert v4(small, InputSpec(size=(28, 28)))[GAPS] == 0.0
    # A colour frame is read on its green channel.
    colour = np.stack([image, mapped((image / 255.0) ** 1.6), image], axis=-1)
    assert v4(colour, InputSpec(size=(64, 64), channels=3))[GAPS] > 0.1


@pytest.mark.parametrize("levels", [1, 2, 4])
def test_level_statistics_of_a_frame_with_a_few_levels_are_defined(levels: int) -> None:
    few = (np.random.default_rng(levels).integers(0, levels, (64, 64)) * 60).astype(np.uint8)
    values = v4(few)
    assert np.isfinite(values).all()
    if levels == 1:  # blank: one level, nothing between
        assert values[GAPS] == 0.0 and values[HIGH] == values[LOW] == 0.0
    else:  # a few levels 60 apart: the dense levels beside each are empty
        assert 0.5 < values[GAPS] < 1.0
        assert (values[LOW], values[HIGH]) == (0.0, 60 * (levels - 1) / 255)


def test_every_statistic_has_plain_words_for_each_side() -> None:
    for statistics in STATISTICS.values():
        for name in statistics.names:
            above, below = DESCRIPTIONS[name]
            assert above and below and above != below, name
            assert describe(name, 1.0) == above and describe(name, -1.0) == below
