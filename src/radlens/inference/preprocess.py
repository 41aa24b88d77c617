"""Turn an image into a model input exactly the way training did.

Training (``radlens.training``) calls :func:`prepare_2d` on every training image, and
inference calls it on every DICOM, PNG or JPEG image, so the two cannot drift apart.

Order of operations (2D):
    1. colour to luminance when the model takes one channel (ITU-R BT.601 weights);
    2. resize to the input size (``stretch`` ignores aspect, ``pad`` keeps it), with
       Pillow's antialiased bilinear filter; doing this first keeps the later steps cheap
       on 2000 x 2000 radiographs;
    3. the file's VOI window (linear, PS3.3 C.11.2.1.2.1) when the spec says so;
    4. with the card's ``denoise``, a median filter when the input is noisier than every
       training image, and with its ``deblur``, Wiener deconvolution when it is far blurrier
       (:mod:`radlens.inference.restore`; ``restore=False`` skips both, for the
       out-of-distribution score, which reads the input as it came);
    5. percentile scaling to [0, 1] with clipping;
    6. ``(x - mean) / std``.

3D (:func:`prepare_3d`): linear resize of the ``(slices, rows, cols)`` volume to the input
size, then steps 5 and 6.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image as PILImage

from radlens.domain.imaging import Window
from radlens.errors import IncompatibleInputError
from radlens.inference.restore import (
    Deblurred,
    Denoised,
    blur_of,
    deblur,
    denoise,
    gaussian_blur,
    measure,
)
from radlens.models.card import InputSpec, Resize

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class Placement:
    """Where the model input sits in the source image, to map heatmaps back.

    ``scale_y`` / ``scale_x`` are source pixels per input pixel; ``offset_y`` /
    ``offset_x`` are the input pixels of padding before the image starts. ``denoised`` says
    whether (and why) the input was median-filtered before the model read it, ``deblurred``
    whether it was deconvolved.
    """

    source_shape: tuple[int, int]
    scale_y: float
    scale_x: float
    offset_y: float = 0.0
    offset_x: float = 0.0
    denoised: Denoised | None = None
    deblurred: Deblurred | None = None

    @property
    def restorations(self) -> tuple[Denoised | Deblurred, ...]:
        """What was done to the input before the model read it (empty: nothing)."""
        return tuple(r for r in (self.denoised, self.deblurred) if r is not None)


def to_gray(array: np.ndarray) -> np.ndarray:
    """Luminance of an RGB image (``...xC``) as float32; grayscale passes through."""
    if array.ndim >= 3 and array.shape[-1] == 3:
        return (array.astype(np.float32) @ _LUMA).astype(np.float32)
    return array.astype(np.float32, copy=False)


def resize_2d(
    array: np.ndarray, size: tuple[int, int], mode: Resize
) -> tuple[np.ndarray, Placement]:
    """Resize a 2D float image to ``size`` (rows, cols).

    Example:
        >>> out, where = resize_2d(np.zeros((20, 10), np.float32), (8, 8), Resize.PAD)
        >>> out.shape, where.scale_y
        ((8, 8), 2.5)
    """
    rows, cols = array.shape
    out_rows, out_cols = size
    if mode is Resize.STRETCH:
        resized = _pil_resize(array, (out_rows, out_cols))
        return resized, Placement((rows, cols), rows / out_rows, cols / out_cols)
    scale = max(rows / out_rows, cols / out_cols)
    new_rows = max(1, round(rows / scale))
    new_cols = max(1, round(cols / scale))
    inner = _pil_resize(array, (new_rows, new_cols))
    out = np.full((out_rows, out_cols), float(inner.min()), dtype=np.float32)
    off_y = (out_rows - new_rows) // 2
    off_x = (out_cols - new_cols) // 2
    out[off_y : off_y + new_rows, off_x : off_x + new_cols] = inner
    return out, Placement((rows, cols), scale, scale, float(off_y), float(off_x))


def _pil_resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if array.shape == size:
        return array.astype(np.float32, copy=True)
    pil = PILImage.fromarray(array.astype(np.float32, copy=False), mode="F")
    return np.asarray(pil.resize((size[1], size[0]), PILImage.Resampling.BILINEAR), np.float32)


def apply_window(array: np.ndarray, window: Window) -> np.ndarray:
    """Clip to a linear VOI window; output keeps the image's units."""
    low = window.center - window.width / 2
    high = window.center + window.width / 2
    clipped: np.ndarray = np.clip(array, low, high)
    return clipped


def scale_percentiles(array: np.ndarray, low_pct: float, high_pct: float) -> np.ndarray:
    """Map the given percentiles to 0 and 1 and clip; a flat image becomes all zeros."""
    low, high = np.percentile(array, [low_pct, high_pct])
    if high - low <= 1e-6 * max(1.0, abs(float(high))):
        return np.zeros_like(array, dtype=np.float32)
    scaled: np.ndarray = np.clip((array - low) / (high - low), 0.0, 1.0).astype(np.float32)
    return scaled


def prepare_2d(
    array: np.ndarray, spec: InputSpec, window: Window | None = None, restore: bool = True
) -> tuple[np.ndarray, Placement]:
    """Model input ``(channels, rows, cols)`` float32 from one 2D image.

    Args:
        array: ``(rows, cols)`` grayscale or ``(rows, cols, 3)`` RGB, any numeric dtype.
        spec: the card's input spec.
        window: the file's default VOI window, applied when ``spec.use_window``.
        restore: apply the spec's ``denoise`` and ``deblur`` (when it has them); the
            placement says whether they changed the input.

    Raises:
        IncompatibleInputError: the array is not a single 2D image, or is too small.
    """
    planes = _planes(array, spec, window)
    placement = planes[0][1]  # every plane has the same placement
    out = []
    denoised: Denoised | None = None
    deblurred: Deblurred | None = None
    for resized, _ in planes:
        if restore and spec.denoise is not None:
            resized, done = denoise(
                resized, spec.denoise, spec.percentile_low, spec.percentile_high
            )
            denoised = denoised or done
        if restore and spec.deblur is not None:
            resized, sharpened = deblur(
                resized, spec.deblur, spec.percentile_low, spec.percentile_high
            )
            deblurred = deblurred or sharpened
        out.append(scale_percentiles(resized, spec.percentile_low, spec.percentile_high))
    stacked = np.stack(out)
    if spec.channels == 3 and stacked.shape[0] == 1:
        stacked = np.repeat(stacked, 3, axis=0)
    if denoised is not None or deblurred is not None:
        placement = replace(placement, denoised=denoised, deblurred=deblurred)
    return ((stacked - spec.mean) / spec.std).astype(np.float32), placement


def _planes(
    array: np.ndarray, spec: InputSpec, window: Window | None
) -> list[tuple[np.ndarray, Placement]]:
    """Steps 1-3 of :func:`prepare_2d`: each plane resized (and windowed), with its placement.

    Raises:
        IncompatibleInputError: the array is not a single 2D image, or is too small.
    """
    if spec.dims != 2:
        raise IncompatibleInputError(None, f"prepare_2d needs a 2D spec, got size {spec.size}")
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] != 3):
        raise IncompatibleInputError(
            None, f"expected one 2D image (rows, cols[, 3]), got shape {array.shape}"
        )
    if min(array.shape[:2]) < 8:
        raise IncompatibleInputError(None, f"image of {array.shape[:2]} px is too small")
    size = (spec.size[0], spec.size[1])
    if spec.channels == 1 or array.ndim == 2:
        planes = [to_gray(array)]
    else:
        planes = [array[..., c].astype(np.float32) for c in range(3)]
    out = []
    for plane in planes:
        resized, placement = resize_2d(plane, size, spec.resize)
        if spec.use_window and window is not None:
            resized = apply_window(resized, window)
        out.append((resized, placement))
    return out


def noise_of(
    array: np.ndarray, spec: InputSpec, window: Window | None = None
) -> tuple[float, float]:
    """The noise level and impulse share (:func:`radlens.inference.restore.measure`) of a 2D
    image at the model's input size, as its denoising compares them (largest over planes).

    Raises:
        IncompatibleInputError: as :func:`prepare_2d`.
    """
    measured = [
        measure(plane, spec.percentile_low, spec.percentile_high)
        for plane, _ in _planes(array, spec, window)
    ]
    return max(n for n, _ in measured), max(i for _, i in measured)


def blur_of_image(
    array: np.ndarray, spec: InputSpec, window: Window | None = None, extra_blur: float = 0.0
) -> float:
    """The blur estimate (:func:`radlens.inference.restore.blur_level`, px) of a 2D image at
    the model's input size, as its deblurring compares it (largest over planes).

    ``extra_blur``: first blur the model-size planes by a Gaussian of this many px and round
    them to whole values, as a stored blurred image would be (the deblurring calibration).

    Raises:
        IncompatibleInputError: as :func:`prepare_2d`.
    """
    planes = [plane for plane, _ in _planes(array, spec, window)]
    if extra_blur > 0:
        planes = [np.rint(gaussian_blur(plane, extra_blur)) for plane in planes]
    return max(blur_of(plane, spec.percentile_low, spec.percentile_high) for plane in planes)


def resize_linear(array: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Separable linear resize of an n-D array (pixel centres aligned, edges clamped).

    Example:
        >>> resize_linear(np.arange(4, dtype=np.float32).reshape(1, 1, 4), (1, 1, 2))
        array([[[0.5, 2.5]]], dtype=float32)
    """
    out = array.astype(np.float32, copy=False)
    for axis, (n_in, n_out) in enumerate(zip(array.shape, size, strict=True)):
        if n_in == n_out:
            continue
        if n_out < n_in:
            # Box-average first when shrinking by 2 or more, as an antialiased resize would.
            factor = n_in // n_out
            if factor >= 2:
                usable = (n_in // factor) * factor
                shape = (*out.shape[:axis], n_in // factor, factor, *out.shape[axis + 1 :])
                out = np.take(out, np.arange(usable), axis=axis).reshape(shape).mean(axis=axis + 1)
                n_in = out.shape[axis]
                if n_in == n_out:
                    continue
        coords = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
        coords = np.clip(coords, 0, n_in - 1)
        low = np.floor(coords).astype(np.int64)
        high = np.minimum(low + 1, n_in - 1)
        w_shape = [1] * out.ndim
        w_shape[axis] = n_out
        w = (coords - low).astype(np.float32).reshape(w_shape)
        out = np.take(out, low, axis=axis) * (1 - w) + np.take(out, high, axis=axis) * w
    return out.astype(np.float32, copy=False)


def prepare_3d(volume: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Model input ``(1, slices, rows, cols)`` float32 from one volume.

    Raises:
        IncompatibleInputError: the array is not a 3D volume or the spec is not 3D.
    """
    if spec.dims != 3:
        raise IncompatibleInputError(None, f"prepare_3d needs a 3D spec, got size {spec.size}")
    if volume.ndim != 3:
        raise IncompatibleInputError(
            None, f"expected one volume (slices, rows, cols), got shape {volume.shape}"
        )
    if min(volume.shape) < 2:
        raise IncompatibleInputError(None, f"volume of {volume.shape} voxels is too small")
    resized = resize_linear(volume, spec.size)
    scaled = scale_percentiles(resized, spec.percentile_low, spec.percentile_high)
    return ((scaled[None] - spec.mean) / spec.std).astype(np.float32)


def prepare(array: np.ndarray, spec: InputSpec, restore: bool = True) -> np.ndarray:
    """The model input for a training or evaluation item, 2D or 3D by the spec
    (``restore``: as :func:`prepare_2d`)."""
    if spec.dims == 3:
        return prepare_3d(array, spec)
    return prepare_2d(array, spec, restore=restore)[0]
