"""Denoising of inputs noisier than every training image: the two measures, the filter, and
how ``prepare_2d`` applies it (never to an input no noisier than training)."""

from __future__ import annotations

import numpy as np
import pytest

from radlens.inference.preprocess import noise_of, prepare_2d
from radlens.inference.restore import (
    Denoised,
    denoise,
    impulse_share,
    median_filter,
    noise_level,
)
from radlens.models.card import Denoise, InputSpec, card_from_dict, card_to_dict


def radiograph(side: int = 256) -> np.ndarray:
    """A smooth 8-bit image with hard edges: a ramp with a bright bar and a dark disc."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float32)
    img = 40 + 120 * x / side + 20 * np.sin(y / 17)
    img[side // 4 : side // 2, side // 3 : side // 3 + 12] = 240
    img[(y - 0.7 * side) ** 2 + (x - 0.6 * side) ** 2 < (side / 8) ** 2] = 10
    return np.rint(img).clip(0, 255).astype(np.uint8)


def noisy(img: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.rint(img + rng.normal(0, sigma * 255, img.shape)).clip(0, 255).astype(np.uint8)


def salt_and_pepper(img: np.ndarray, share: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = img.copy()
    hit = rng.random(img.shape) < share
    out[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 0, 255)
    return out


@pytest.mark.parametrize("sigma", [0.01, 0.03, 0.08])
def test_the_noise_level_reads_gaussian_noise_on_a_structured_image(sigma: float) -> None:
    img = radiograph().astype(np.float32) / 255
    rng = np.random.default_rng(1)
    measured = noise_level(img + rng.normal(0, sigma, img.shape).astype(np.float32))
    assert measured == pytest.approx(sigma, rel=0.15)


def test_edges_and_smooth_structure_alone_read_as_almost_no_noise() -> None:
    assert noise_level(radiograph().astype(np.float32) / 255) < 0.002


def test_the_impulse_share_counts_salt_and_pepper_pixels() -> None:
    img = radiograph()
    assert impulse_share(img / 255.0) < 0.001
    assert impulse_share(salt_and_pepper(img, 0.02) / 255.0) == pytest.approx(0.02, rel=0.2)


def test_the_median_filter_removes_impulses_and_keeps_a_step_edge() -> None:
    step = np.zeros((16, 16), np.float32)
    step[:, 8:] = 1.0
    spotted = step.copy()
    spotted[3, 3] = 1.0
    spotted[12, 12] = 0.0
    for size in (3, 5):
        np.testing.assert_array_equal(median_filter(spotted, size), step)


def test_an_input_at_or_below_the_training_maxima_is_returned_untouched() -> None:
    plane = radiograph().astype(np.float32)
    noise, impulses = noise_of(plane, InputSpec(size=(256, 256)))
    spec = Denoise(median=5, noise_above=noise, impulse_above=impulses)
    out, done = denoise(plane, spec, 0.5, 99.5)
    assert done is None and out is plane


def test_a_noisier_input_is_filtered_and_says_why() -> None:
    clean = radiograph()
    spec = Denoise(median=5, noise_above=0.004, impulse_above=0.005)
    out, done = denoise(noisy(clean, 0.05).astype(np.float32), spec, 0.5, 99.5)
    assert isinstance(done, Denoised) and done.median == 5 and done.noise > 0.004
    err_before = np.abs(noisy(clean, 0.05).astype(np.float32) - clean).mean()
    assert np.abs(out - clean).mean() < err_before / 2
    assert "noise 0.0" in done.warning() and "impulse" not in done.warning()
    assert "5 x 5 median filter" in done.warning()
    _, spotted = denoise(salt_and_pepper(clean, 0.02).astype(np.float32), spec, 0.5, 99.5)
    assert spotted is not None and spotted.impulses > 0.01 and spotted.noise < 0.004
    assert "impulse pixels" in spotted.warning() and "noise 0." not in spotted.warning()


def test_an_unfitted_spec_never_filters() -> None:
    assert not Denoise().fitted
    _, done = denoise(noisy(radiograph(), 0.2).astype(np.float32), Denoise(), 0.5, 99.5)
    assert done is None


def test_prepare_2d_filters_only_noisier_inputs_and_can_be_asked_not_to() -> None:
    plain = InputSpec(size=(128, 128), resize="pad")
    spec = InputSpec(
        size=(128, 128), resize="pad", denoise=Denoise(3, noise_above=0.004, impulse_above=0.01)
    )
    clean = radiograph()
    x_plain, _ = prepare_2d(clean, plain)
    x, where = prepare_2d(clean, spec)
    np.testing.assert_array_equal(x, x_plain)
    assert where.denoised is None

    bad = noisy(clean, 0.06)
    x_bad, where_bad = prepare_2d(bad, spec)
    as_came, where_as_came = prepare_2d(bad, spec, restore=False)
    np.testing.assert_array_equal(as_came, prepare_2d(bad, plain)[0])
    assert where_bad.denoised is not None and where_as_came.denoised is None
    assert np.abs(x_bad - x_plain).mean() < 0.7 * np.abs(as_came - x_plain).mean()


@pytest.mark.parametrize("bad", [{"median": 4}, {"noise_above": -1.0}])
def test_a_denoise_spec_refuses_bad_values(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Denoise(**bad)  # type: ignore[arg-type]


def test_denoise_is_for_2d_inputs() -> None:
    with pytest.raises(ValueError, match="2D"):
        InputSpec(size=(16, 16, 16), denoise=Denoise(3, 0.01, 0.01))


def test_a_card_keeps_its_denoise_through_json_and_one_without_reads_as_before(
    make_card,
) -> None:  # type: ignore[no-untyped-def]
    card = make_card()
    data = card_to_dict(card)
    assert "denoise" not in data["input"]
    spec = Denoise(5, 0.003869, 0.004365, n_train=1362, val_filtered=0.0)
    with_it = make_card(input=InputSpec(size=(224, 224), denoise=spec))
    assert card_from_dict(card_to_dict(with_it)).input.denoise == spec
