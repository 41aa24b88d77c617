"""Deblurring of inputs far blurrier than every training image: the blur estimate, the
pixelation guard, the Wiener filter, and how ``prepare_2d`` applies it (never to an input
no blurrier than training)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image as PILImage

from radlens.inference.preprocess import blur_of_image, prepare_2d
from radlens.inference.restore import (
    Deblurred,
    blur_level,
    deblur,
    gaussian_blur,
    looks_gaussian,
    wiener_deblur,
)
from radlens.models.card import Deblur, InputSpec, card_from_dict, card_to_dict


def textured(side: int = 160, seed: int = 0) -> np.ndarray:
    """A float image of fine texture over 40-220, about as sharp as a radiograph at model
    size (its blur estimate is 0.6 px, the knee radiographs' 0.5-1.2)."""
    rng = np.random.default_rng(seed)
    t = gaussian_blur(rng.random((side, side)), 1.0)
    return (40 + 180 * (t - t.min()) / (t.max() - t.min())).astype(np.float32)


def blurred(img: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian_blur(img, sigma) if sigma else img


def pixelated(img: np.ndarray, factor: int) -> np.ndarray:
    """``img`` shrunk by ``factor`` and blown up again with nearest-neighbour: blocks."""
    gray = PILImage.fromarray(np.asarray(img, np.float32))
    small = gray.resize((img.shape[1] // factor, img.shape[0] // factor))
    big = small.resize((img.shape[1], img.shape[0]), PILImage.Resampling.NEAREST)
    return np.asarray(big, np.float32)


def test_the_blur_estimate_grows_with_the_blur_and_reads_near_its_sigma() -> None:
    img = textured()
    levels = [blur_level(blurred(img, s) / 255.0) for s in (0.0, 1.0, 2.0, 3.0, 4.0)]
    assert levels[0] < 0.7
    assert levels == sorted(levels)
    # An estimate, not a measurement: within half of the blur applied from 2 px on.
    assert levels[2] == pytest.approx(2.0, rel=0.5) and levels[4] == pytest.approx(4.0, rel=0.5)


def test_a_flat_image_reads_no_blur() -> None:
    assert blur_level(np.full((32, 32), 0.5)) == 0.0


def test_gaussian_blur_looks_gaussian_and_pixelation_does_not() -> None:
    img = textured()
    for sigma in (1.5, 3.0, 5.0):
        assert looks_gaussian(blurred(img, sigma) / 255.0)
    for factor in (2, 4, 8):
        assert not looks_gaussian(pixelated(img, factor) / 255.0)


def test_the_wiener_filter_undoes_much_of_a_known_blur() -> None:
    img = textured()
    soft = gaussian_blur(img, 3.0)
    sharp = wiener_deblur(soft, 3.0, 0.01)
    assert np.abs(sharp - img).mean() < 0.9 * np.abs(soft - img).mean()
    assert blur_level(sharp / 255.0) < 0.8 * blur_level(soft / 255.0)


def test_an_input_under_the_trigger_is_returned_untouched() -> None:
    plane = blurred(textured(), 1.0)
    spec = Deblur(factor=2.0, blur_max=blur_level(plane / 255.0))
    out, done = deblur(plane, spec, 0.5, 99.5)
    assert done is None and out is plane


def test_a_far_blurrier_input_is_deconvolved_and_says_why() -> None:
    img = textured()
    spec = Deblur(factor=2.0, blur_max=0.6)
    soft = blurred(img, 3.0)
    out, done = deblur(soft, spec, 0.5, 99.5)
    assert isinstance(done, Deblurred) and done.blur >= spec.trigger
    assert done.sigma == pytest.approx(np.sqrt(done.blur**2 - 0.6**2), abs=1e-3)
    assert np.abs(out - img).mean() < np.abs(soft - img).mean()
    said = done.warning()
    assert "blurrier than every training image" in said and "training at most 0.6 px" in said
    assert f"Wiener deconvolution of a {done.sigma:.1f} px Gaussian" in said


def test_a_pixelated_input_is_left_as_it_is_however_blurry_it_reads() -> None:
    blocky = pixelated(textured(), 8)
    spec = Deblur(factor=2.0, blur_max=0.3)
    assert blur_level(blocky / 255.0) >= spec.trigger
    out, done = deblur(blocky, spec, 0.5, 99.5)
    assert done is None and out is blocky


def test_the_calibration_sets_the_gaussian_deconvolved() -> None:
    soft = blurred(textured(), 3.0)
    plain = Deblur(blur_max=0.6)
    _, raw = deblur(soft, plain, 0.5, 99.5)
    halved = Deblur(blur_max=0.6, calibration=((1.0, 0.5), (10.0, 5.0)))
    _, read = deblur(soft, halved, 0.5, 99.5)
    assert raw is not None and read is not None and read.blur == raw.blur
    assert read.sigma == pytest.approx(raw.sigma / 2, rel=1e-3)


def test_the_calibration_caps_the_gaussian_at_the_largest_blur_it_was_fitted_on() -> None:
    spec = Deblur(blur_max=1.0, calibration=((1.0, 1.0), (7.8, 8.0)))
    assert spec.sigma_for(0.5) == pytest.approx(0.5)
    assert spec.sigma_for(4.4) == pytest.approx(4.5)
    assert spec.sigma_for(7.8) == spec.sigma_for(70.0) == 8.0


def test_an_unfitted_spec_never_deconvolves() -> None:
    assert not Deblur().fitted
    _, done = deblur(blurred(textured(), 6.0), Deblur(), 0.5, 99.5)
    assert done is None


def test_prepare_2d_deblurs_only_far_blurrier_inputs_and_can_be_asked_not_to() -> None:
    plain = InputSpec(size=(160, 160))
    clean = textured(224)
    spec = InputSpec(size=(160, 160), deblur=Deblur(blur_max=blur_of_image(clean, plain)))
    x, where = prepare_2d(clean, spec)
    np.testing.assert_array_equal(x, prepare_2d(clean, plain)[0])
    assert where.deblurred is None and where.restorations == ()

    soft = blurred(clean, 4.0)
    x_soft, where_soft = prepare_2d(soft, spec)
    as_came, where_as_came = prepare_2d(soft, spec, restore=False)
    np.testing.assert_array_equal(as_came, prepare_2d(soft, plain)[0])
    assert where_soft.deblurred is not None and where_as_came.deblurred is None
    assert where_soft.restorations == (where_soft.deblurred,)
    assert np.abs(x_soft - x).mean() < np.abs(as_came - x).mean()


@pytest.mark.parametrize(
    "bad",
    [
        {"factor": 0.5},
        {"wiener_k": 0.0},
        {"blur_max": -1.0},
        {"calibration": ((2.0, 1.5), (1.0, 3.0))},
        {"calibration": ((1.0, 1.5), (2.0, 1.0))},
        {"calibration": ((0.0, 1.0),)},
    ],
)
def test_a_deblur_spec_refuses_bad_values(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="deblur"):
        Deblur(**bad)


def test_deblur_is_for_2d_inputs() -> None:
    with pytest.raises(ValueError, match="2D"):
        InputSpec(size=(16, 16, 16), deblur=Deblur(blur_max=1.0))


def test_a_card_keeps_its_deblur_through_json_and_one_without_reads_as_before(
    make_card,
) -> None:  # type: ignore[no-untyped-def]
    assert "deblur" not in card_to_dict(make_card())["input"]
    spec = Deblur(
        factor=2.0,
        blur_max=1.180885,
        n_train=681,
        val_deblurred=0.0,
        calibration=((0.9405, 1.0), (2.4542, 2.0), (7.8499, 8.0)),
    )
    with_it = make_card(input=InputSpec(size=(160, 160), deblur=spec))
    assert card_from_dict(card_to_dict(with_it)).input.deblur == spec
