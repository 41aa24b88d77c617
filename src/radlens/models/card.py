"""Model cards: what a model is, what it applies to, and how far to trust it.

A model is a folder holding ``model.onnx`` and ``card.json``. The card follows the spirit of
MONAI bundle metadata (name, version, task, labels, input spec, intended use, data licence)
and adds what a second reader needs at run time: the routing rule (``applies_to``), the
preprocessing that matches training, calibration, operating thresholds and
validation metrics. ``read_card`` validates everything, so an invalid card cannot exist.

Example:
    >>> card = read_card(Path("src/radlens/zoo/cxr_pneumonia/card.json"))  # doctest: +SKIP
    >>> card.applies_to.modalities
    ('CR', 'DX')
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from radlens.errors import InvalidModelCardError, UnsupportedTaskError
from radlens.evaluation.metrics import sigmoid, softmax

CARD_SCHEMA_VERSION = 1
GRADE_RULES = ("argmax", "median")


class Task(StrEnum):
    BINARY = "binary"
    MULTICLASS = "multiclass"
    ORDINAL = "ordinal"
    # Independent yes/no per label (ChestMNIST): sigmoid per logit, one finding per label.
    MULTILABEL = "multilabel"
    # A mask per image (one ``mask_logits`` output on the input grid), measured after
    # (see ``SegmentationSpec`` and ``radlens.inference.segment``).
    SEGMENTATION = "segmentation"
    # Boxes with a class and a score (``heatmap`` + ``ltrb`` outputs, see ``DetectionSpec``
    # and ``radlens.inference.detection``).
    DETECTION = "detection"


class Resize(StrEnum):
    """How an image is brought to the model's input size.

    ``stretch`` ignores the aspect ratio (as the Kermany images were made); ``pad`` keeps it
    and pads the short side with the minimum value.
    """

    STRETCH = "stretch"
    PAD = "pad"


@dataclass(frozen=True)
class Denoise:
    """Read an input noisier than every training image after a median filter
    (:mod:`radlens.inference.restore`).

    Attributes:
        median: side of the median filter (3 or 5 px at the model's input size).
        noise_above: the training images' largest noise level
            (:func:`radlens.inference.restore.noise_level`, share of the intensity range);
            infinite until fitted (``radlens denoise``, or ``radlens train`` when the recipe
            asks for it), so an unfitted spec never filters.
        impulse_above: the training images' largest share of impulse pixels.
        n_train: training images the thresholds were taken from.
        val_filtered: share of val images above a threshold (filtered when read).
    """

    median: int = 5
    noise_above: float = float("inf")
    impulse_above: float = float("inf")
    n_train: int = 0
    val_filtered: float | None = None

    def __post_init__(self) -> None:
        if self.median not in (3, 5):
            raise ValueError(f"denoise.median must be 3 or 5, got {self.median}")
        if self.noise_above < 0 or self.impulse_above < 0:
            raise ValueError("denoise thresholds must not be negative")

    @property
    def fitted(self) -> bool:
        return bool(np.isfinite(self.noise_above) and np.isfinite(self.impulse_above))


@dataclass(frozen=True)
class Deblur:
    """Read an input far blurrier than every training image after Wiener deconvolution
    (:mod:`radlens.inference.restore`).

    Attributes:
        factor: deconvolve when the input's blur estimate
            (:func:`radlens.inference.restore.blur_level`, px at the model's input size) is
            at least this multiple of ``blur_max``.
        blur_max: the training images' largest blur estimate; infinite until fitted
            (``radlens deblur``, or ``radlens train`` when the recipe asks for it), so an
            unfitted spec never deconvolves.
        wiener_k: the Wiener filter's noise-to-signal ratio (larger: gentler).
        n_train: training images ``blur_max`` was taken from.
        val_deblurred: share of val images at or above the trigger (deconvolved when read).
        calibration: ``(estimated excess, sigma)`` pairs, the excess blur estimate
            (``sqrt(estimate^2 - blur_max^2)``) the training images read, in median, after a
            known Gaussian blur of ``sigma`` px, in increasing order; :meth:`sigma_for`
            reads an input's excess through them. Empty: the excess is taken as it is.
    """

    factor: float = 2.0
    blur_max: float = float("inf")
    wiener_k: float = 0.01
    n_train: int = 0
    val_deblurred: float | None = None
    calibration: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        pairs = tuple((float(e), float(s)) for e, s in self.calibration)
        object.__setattr__(self, "calibration", pairs)
        if any(e <= 0 or s <= 0 for e, s in pairs) or any(
            b[0] <= a[0] or b[1] <= a[1] for a, b in zip(pairs, pairs[1:], strict=False)
        ):
            raise ValueError("deblur.calibration must be positive pairs, increasing in both")
        if not self.factor >= 1.0:
            raise ValueError(f"deblur.factor must be at least 1, got {self.factor}")
        if not self.wiener_k > 0:
            raise ValueError(f"deblur.wiener_k must be positive, got {self.wiener_k}")
        if self.blur_max < 0:
            raise ValueError("deblur.blur_max must not be negative")

    @property
    def fitted(self) -> bool:
        return bool(np.isfinite(self.blur_max))

    @property
    def trigger(self) -> float:
        """The blur estimate (px) at and above which an input is deconvolved."""
        return self.factor * self.blur_max

    def sigma_for(self, excess: float) -> float:
        """The Gaussian (px) to deconvolve for an excess blur estimate: read through
        ``calibration`` (linear between its pairs, proportional below the first, and no more
        than the last pair's sigma, the largest blur it was calibrated on: beyond it the
        estimate saturates and a larger deconvolution would only amplify noise).

        Example:
            >>> spec = Deblur(blur_max=1.0, calibration=((2.0, 1.5), (4.0, 3.8)))
            >>> spec.sigma_for(3.0), spec.sigma_for(1.0), spec.sigma_for(8.0)
            (2.65, 0.75, 3.8)
            >>> Deblur(blur_max=1.0).sigma_for(3.0)
            3.0
        """
        if not self.calibration:
            return excess
        (e0, s0), (e1, s1) = self.calibration[0], self.calibration[-1]
        if excess <= e0:
            return excess * s0 / e0
        if excess >= e1:
            return s1
        xs, ys = zip(*self.calibration, strict=True)
        return float(np.interp(excess, xs, ys))


@dataclass(frozen=True)
class InputSpec:
    """Preprocessing that reproduces training exactly.

    Intensities: the DICOM VOI window is applied first when ``use_window`` and the file has
    one; then values are scaled so the ``percentile_low``..``percentile_high`` percentiles map
    to 0..1 and clipped; then ``(x - mean) / std``. With ``denoise``, an input noisier than
    every training image is median-filtered before the scaling (:class:`Denoise`); with
    ``deblur``, one far blurrier is deconvolved (:class:`Deblur`).
    """

    size: tuple[int, ...]
    channels: int = 1
    resize: Resize = Resize.STRETCH
    use_window: bool = True
    percentile_low: float = 0.5
    percentile_high: float = 99.5
    mean: float = 0.5
    std: float = 0.25
    denoise: Denoise | None = None
    deblur: Deblur | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", tuple(int(s) for s in self.size))
        object.__setattr__(self, "resize", Resize(self.resize))
        if isinstance(self.denoise, dict):
            object.__setattr__(self, "denoise", Denoise(**self.denoise))
        if isinstance(self.deblur, dict):
            object.__setattr__(self, "deblur", Deblur(**self.deblur))
        if self.denoise is not None and len(self.size) != 2:
            raise ValueError("denoise applies to 2D inputs only")
        if self.deblur is not None and len(self.size) != 2:
            raise ValueError("deblur applies to 2D inputs only")
        if len(self.size) not in (2, 3) or min(self.size) < 8:
            raise ValueError(f"size must be 2 or 3 sides of at least 8 px, got {self.size}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if not 0 <= self.percentile_low < self.percentile_high <= 100:
            raise ValueError("need 0 <= percentile_low < percentile_high <= 100")
        if self.std <= 0:
            raise ValueError("std must be positive")

    @property
    def dims(self) -> int:
        return len(self.size)


@dataclass(frozen=True)
class Population:
    """Who the training images came from; findings outside it carry a warning."""

    description: str = ""
    age_years_min: float | None = None
    age_years_max: float | None = None


@dataclass(frozen=True)
class AppliesTo:
    """The routing rule: a model never runs on a series outside it.

    An empty tuple means "any". Body parts are matched after upper-casing against
    ``body_parts`` and their synonyms (see ``radlens.models.registry``).
    """

    modalities: tuple[str, ...]
    body_parts: tuple[str, ...] = ()
    views: tuple[str, ...] = ()
    dims: int = 2
    color: bool = False
    population: Population = field(default_factory=Population)

    def __post_init__(self) -> None:
        for name in ("modalities", "body_parts", "views"):
            object.__setattr__(self, name, tuple(v.upper() for v in getattr(self, name)))
        if not self.modalities:
            raise ValueError("applies_to.modalities must name at least one modality")
        if self.dims not in (2, 3):
            raise ValueError(f"applies_to.dims must be 2 or 3, got {self.dims}")


class CalibrationMethod(StrEnum):
    """How logits become calibrated probabilities (see :meth:`Calibration.probabilities`).

    ``temperature``: one temperature for every class (Guo et al. 2017). ``platt``: binary
    only, a temperature and a bias on the logit difference (Platt 1999). ``vector``: a
    temperature and a bias per class (vector scaling, Guo et al. 2017), multi-class and
    ordinal only.
    """

    TEMPERATURE = "temperature"
    PLATT = "platt"
    VECTOR = "vector"


def _check_npz_beside_card(where: str, name: str, file: str, sha256: str) -> None:
    """A card's ``where.name`` must name an ``.npz`` beside the card, with a 64-character
    ``where.sha256``."""
    if not file.endswith(".npz") or "/" in file:
        raise ValueError(f"{where}.{name} must be an .npz beside the card: {file}")
    if len(sha256) != 64:
        raise ValueError(f"{where}.sha256 must be 64 hex characters")


@dataclass(frozen=True)
class CrossFitted:
    """Items pooled with val for a calibration: the out-of-fold logits of the model's recipe
    cross-fitted over its train split (each item scored by a model of the same recipe that
    never trained on it, ``benchmarks/bench_crossfit.py --save-logits``), in an ``.npz``
    beside the card (``logits``, ``labels``).

    Attributes:
        file, sha256: the ``.npz`` beside the card and its hash.
        n: how many items it holds.
        use: ``fit`` (the method is chosen and fitted on the pool) or ``choose`` (the method
            is chosen on the pool and fitted on val alone: the choice is the recipe's, read
            on many items, the parameters the model's own).
    """

    file: str
    sha256: str
    n: int
    use: str = "fit"

    def __post_init__(self) -> None:
        _check_npz_beside_card("calibration.cross_fitted", "file", self.file, self.sha256)
        if self.n < 1:
            raise ValueError("calibration.cross_fitted.n must be positive")
        if self.use not in CROSS_FITTED_USES:
            raise ValueError(
                f"calibration.cross_fitted.use must be one of {', '.join(CROSS_FITTED_USES)}"
            )

    @property
    def fitted_on_pool(self) -> bool:
        """Whether the calibration's parameters (and figures) are of val + these items."""
        return self.use == "fit"


CROSS_FITTED_USES = ("fit", "choose")


@dataclass(frozen=True)
class Calibration:
    """Calibration fitted on validation data, and how well it worked there.

    Probabilities are ``softmax(logits / t + b)``: ``t`` is ``temperature`` (``temperature``,
    ``platt``) or ``class_temperatures`` (``vector``), ``b`` is ``biases`` (zero for
    ``temperature``; ``(0, bias)`` for ``platt``, so ``p1 = sigmoid((z1 - z0) / T + bias)``).
    A multi-label model uses ``sigmoid(logits / temperature)`` per label.

    Attributes:
        method: the method chosen by cross-validated NLL on val (the more flexible one only
            when it wins out of fold).
        temperature, class_temperatures, biases: the fitted parameters.
        ece_before, ece_after: val ECE at temperature 1 and after calibration (in-sample).
        ece_cv: val ECE of the chosen method's out-of-fold probabilities.
        ece_noise_mean, ece_noise_p95: the ECE a perfectly calibrated model with the
            calibrated probabilities would show at this val size (labels simulated from the
            probabilities): its mean and 95th percentile.
        cv_nll: method -> out-of-fold NLL on val, for every method tried.
        cross_fitted: when set, val was pooled with these cross-fitted train items: with
            ``use`` ``fit`` the calibration was chosen and fitted on the pool and every figure
            above is of it (val + ``n`` items); with ``use`` ``choose`` only the method was
            chosen on the pool (``cv_nll`` is the pool's), and the parameters and the ECE
            figures are of val alone.

    Cards written before the other methods existed have only ``method``, ``temperature``,
    ``ece_before`` and ``ece_after``, and read as temperature scaling.
    """

    method: CalibrationMethod = CalibrationMethod.TEMPERATURE
    temperature: float = 1.0
    class_temperatures: tuple[float, ...] = ()
    biases: tuple[float, ...] = ()
    ece_before: float | None = None
    ece_after: float | None = None
    ece_cv: float | None = None
    ece_noise_mean: float | None = None
    ece_noise_p95: float | None = None
    cv_nll: dict[str, float] = field(default_factory=dict)
    cross_fitted: CrossFitted | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", CalibrationMethod(self.method))
        object.__setattr__(self, "class_temperatures", tuple(self.class_temperatures))
        object.__setattr__(self, "biases", tuple(self.biases))
        if self.temperature <= 0 or any(t <= 0 for t in self.class_temperatures):
            raise ValueError("temperature and class_temperatures must be positive")
        method = self.method
        if method is CalibrationMethod.TEMPERATURE and (self.class_temperatures or self.biases):
            raise ValueError("calibration method temperature has no class_temperatures or biases")
        if method is CalibrationMethod.PLATT and (
            len(self.biases) != 2 or self.biases[0] != 0 or self.class_temperatures
        ):
            raise ValueError("calibration method platt needs biases (0, bias) and one temperature")
        if method is CalibrationMethod.VECTOR and (
            len(self.class_temperatures) < 2 or len(self.biases) != len(self.class_temperatures)
        ):
            raise ValueError(
                "calibration method vector needs one class temperature and one bias per class"
            )

    def probabilities(self, logits: np.ndarray, task: Task) -> np.ndarray:
        """Calibrated probabilities of ``(N, K)`` logits: softmax rows, or sigmoid per label.

        The one place logits become probabilities: ``predict``, ``radlens evaluate`` and
        training all call it, so they agree.

        Example:
            >>> platt = Calibration(CalibrationMethod.PLATT, 2.0, biases=(0.0, 1.0))
            >>> platt.probabilities(np.array([[0.0, 2.0]]), Task.BINARY).round(4).tolist()
            [[0.1192, 0.8808]]
        """
        task = Task(task)
        if task is Task.MULTILABEL:
            return sigmoid(logits, self.temperature)
        z = np.asarray(logits, dtype=np.float64)
        if self.method is CalibrationMethod.TEMPERATURE:
            return softmax(z, self.temperature)  # exactly as cards before the other methods
        scale = np.asarray(self.class_temperatures or (self.temperature,), dtype=np.float64)
        return softmax(z / scale + np.asarray(self.biases, dtype=np.float64))


@dataclass(frozen=True)
class Training:
    """Where the weights came from, so anyone can make them again."""

    command: str
    data: str
    licence: str
    commercial_use: bool
    citation: str = ""
    recipe: str = ""
    seed: int = 0
    duration_min: float | None = None
    machine: str = ""
    log: str = ""

    def data_path(self, root: Path | None = None) -> Path:
        """The training data this card names (``data`` without its split counts), as
        written (relative to where the model was trained), or, for data under
        ``shared/data/``, moved under a data ``root``. A prepared view made in the
        repository (``build/data/...`` by ``radlens data prepare``) stays where it is.

        Example:
            >>> t = Training("", "../shared/data/medmnist/x.npz (train split 9)", "", True)
            >>> t.data_path().as_posix(), t.data_path(Path("/data")).as_posix()
            ('../shared/data/medmnist/x.npz', '/data/medmnist/x.npz')
            >>> Training("", "build/data/fracatlas (train split 9)", "", True).data_path(
            ...     Path("/data")).as_posix()
            'build/data/fracatlas'
        """
        path = self.data.split(" (")[0]
        if root is None or "shared/data/" not in path:
            return Path(path)
        return root / path.split("shared/data/", 1)[-1]


@dataclass(frozen=True)
class Int8Variant:
    """A statically quantized (INT8) copy of the weights, kept because it is faster and as good.

    Written by ``radlens quantize`` only when the INT8 file was faster than the fp32 one
    (single image, one thread) and its AUC on ``gate_split`` fell by no more than the allowed
    drop; the figures are the ones that decided it.

    Attributes:
        file, sha256: the ``.onnx`` file beside the card and its hash.
        gate_split: the split the AUCs were measured on.
        auc, auc_fp32: AUC of the INT8 and of the fp32 weights on ``gate_split``.
        ms, ms_fp32: median single-image latency (batch 1, one thread) of each, in ms.
    """

    file: str
    sha256: str
    gate_split: str
    auc: float
    auc_fp32: float
    ms: float
    ms_fp32: float

    def __post_init__(self) -> None:
        if not self.file.endswith(".onnx") or "/" in self.file or "\\" in self.file:
            raise ValueError(f"int8.file must be an .onnx file name beside the card: {self.file}")
        if len(self.sha256) != 64:
            raise ValueError("int8.sha256 must be 64 hex characters")
        if not (self.ms > 0 and self.ms_fp32 > 0):
            raise ValueError("int8.ms and int8.ms_fp32 must be positive")


FEATURES_OUTPUT = "features"
"""The ONNX output the feature OOD score reads (a classifier's after ``radlens ood``, a
detector's on a ResNet trunk from export)."""


@dataclass(frozen=True)
class InputStatsSpec:
    """The second out-of-distribution score, from statistics of the input image, and how it
    is combined with the feature score (``radlens ood``).

    The input score is the Mahalanobis distance of the input's statistics (grey levels,
    block edges, histogram, gradients, ...; shape for masks) to their training distribution.
    An input is flagged when any of three holds:

    * ``max(feature / feature_median, 1) * max(input / input_median, 1) >= product_threshold``
      (both scores somewhat unusual; each is a multiple of its median on own validation
      images, floored at 1 so a typical score cannot offset an unusual one);
    * ``feature >= feature_threshold`` or ``input >= input_threshold`` (one score alone
      extreme: just above the ``guard_quantile`` of own validation scores, so a shift only
      one score sees is never hidden by the other).

    ``product_threshold`` is set so the share of validation images flagged by the three
    together comes closest to the flag rate asked for; ``val_flag_rate`` is that share.

    Attributes:
        statistics: the statistic set, versioned (``image2d/1``, ``mask3d/1``).
        stats_file, sha256: the ``.npz`` beside the card and its hash.
        feature_median, input_median: median scores on validation images.
        feature_threshold, input_threshold: each score alone flags at or above these.
        product_threshold: the product of the median multiples flags at or above this.
        guard_quantile: the validation quantile the single-score thresholds sit at.
        val_flag_rate: the share of validation images flagged by the combined decision.
    """

    statistics: str
    stats_file: str
    sha256: str
    feature_median: float
    input_median: float
    feature_threshold: float
    input_threshold: float
    product_threshold: float
    guard_quantile: float
    val_flag_rate: float

    def __post_init__(self) -> None:
        _check_npz_beside_card("ood.inputs", "stats_file", self.stats_file, self.sha256)
        scores = (self.feature_median, self.input_median)
        if min(scores) <= 0 or self.feature_threshold <= 0 or self.input_threshold <= 0:
            raise ValueError("ood.inputs medians and thresholds must be positive")
        if self.product_threshold < 1:
            raise ValueError("ood.inputs.product_threshold must be at least 1")
        if not (0 < self.guard_quantile <= 1 and 0 <= self.val_flag_rate <= 1):
            raise ValueError("ood.inputs.guard_quantile and val_flag_rate must lie in [0, 1]")


@dataclass(frozen=True)
class OodSpec:
    """How unlike its training data an input is, from the model's own features.

    The ONNX graph has a third output, ``features`` (the global average of the last feature
    map of every member and mirror pass, concatenated). The score is the smallest
    Mahalanobis distance to a class mean of the training features under one shared,
    shrunk covariance (Lee et al., NeurIPS 2018); ``stats_file`` holds the means and the
    precision matrix. ``threshold`` is the score above which a finding is flagged: the
    ``1 - val_flag_rate`` quantile of the validation scores. With ``inputs`` the decision is
    the combined one of :class:`InputStatsSpec` instead, and ``threshold`` is kept for
    reference (the feature score alone).

    Attributes:
        method: ``mahalanobis``.
        stats_file, sha256: the ``.npz`` beside the card (``means``, ``precision``) and its hash.
        threshold: flag at or above this score (without ``inputs``).
        val_flag_rate: the share of validation images flagged at ``threshold``.
        output: the ONNX output name of the features.
        inputs: the input-statistics score and the combined decision; absent on cards
            fitted before it existed, which decide on the feature score alone.
    """

    method: str
    stats_file: str
    sha256: str
    threshold: float
    val_flag_rate: float
    output: str = FEATURES_OUTPUT
    inputs: InputStatsSpec | None = None

    def __post_init__(self) -> None:
        if self.method != "mahalanobis":
            raise ValueError(f"ood.method must be 'mahalanobis', got {self.method!r}")
        _check_npz_beside_card("ood", "stats_file", self.stats_file, self.sha256)
        if not 0 <= self.val_flag_rate <= 1:
            raise ValueError("ood.val_flag_rate must lie in [0, 1]")
        if self.inputs is not None and self.inputs.stats_file == self.stats_file:
            raise ValueError("ood.inputs.stats_file must differ from ood.stats_file")


class Measure(StrEnum):
    """What is measured on a segmentation mask (``radlens.inference.segment``)."""

    NONE = "none"
    # Ellipse of the fetal skull, head circumference and Hadlock 1984 gestational age.
    HEAD_CIRCUMFERENCE = "head_circumference"


@dataclass(frozen=True)
class InputOodSpec:
    """The out-of-distribution score of a model without a features output (segmentation, a
    BoxNet detector): the Mahalanobis distance of the input image's statistics (``image2d/1``, the
    same statistics as :class:`InputStatsSpec`) to the training images', alone.

    Attributes:
        statistics: the statistic set, versioned (``image2d/1``).
        stats_file, sha256: ``ood_inputs.npz`` beside the card and its hash.
        threshold: flag at or above this distance (the ``1 - val_flag_rate`` quantile of
            the validation images' distances).
        median: the median distance of the validation images.
        val_flag_rate: the share of validation images flagged.
    """

    statistics: str
    stats_file: str
    sha256: str
    threshold: float
    median: float
    val_flag_rate: float

    def __post_init__(self) -> None:
        _check_npz_beside_card("ood_inputs", "stats_file", self.stats_file, self.sha256)
        if not (self.threshold > 0 and self.median > 0 and 0 <= self.val_flag_rate <= 1):
            raise ValueError("ood_inputs: threshold and median positive, flag rate in [0, 1]")


@dataclass(frozen=True)
class SegmentationSpec:
    """How a segmentation model's mask becomes a finding and its measurements.

    The ``mask_logits`` output (``(B, 1, rows, cols)`` on the input grid) becomes a
    probability by the sigmoid, is resized to the source image (bilinear, the inverse of
    the input placement) and thresholded at the card's ``operating`` threshold.

    Attributes:
        measure: what to measure on the mask.
        edge_offset_px: source pixels between the edge of the training masks and the line
            the reference measurement follows (the HC18 masks are filled ellipses whose
            edge lies half an annotation line outside the annotated ellipse); subtracted
            from both semi-axes before the perimeter is taken. Fitted on the train split.
        min_area_fraction: a mask smaller than this share of the image is "not found".
        ood_inputs: the input-statistics out-of-distribution score, when fitted.
        triage: whether a found mask raises the study's priority. A lesion would; a normal
            structure segmented to be measured (the fetal head) does not: its finding is
            ``counted`` (reported, drawn and measured, never an alert).
    """

    measure: Measure = Measure.NONE
    edge_offset_px: float = 0.0
    min_area_fraction: float = 0.005
    ood_inputs: InputOodSpec | None = None
    triage: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "measure", Measure(self.measure))
        if isinstance(self.ood_inputs, dict):
            object.__setattr__(self, "ood_inputs", InputOodSpec(**self.ood_inputs))
        if not 0 <= self.min_area_fraction < 1:
            raise ValueError("segmentation.min_area_fraction must lie in [0, 1)")
        if abs(self.edge_offset_px) > 20:
            raise ValueError("segmentation.edge_offset_px must lie within 20 px")


@dataclass(frozen=True)
class DetectionSpec:
    """How a detector's two output maps become boxes (``radlens.inference.detection``).

    ``heatmap`` ``(B, K, h, w)`` holds per class the probability of a box centre in each
    cell and ``ltrb`` ``(B, 4, h, w)`` the distances in input pixels from the cell centre to
    the box edges, at ``stride`` input pixels per cell. A box is a 3 x 3 peak of the heatmap
    at or above ``min_score``, among the ``max_detections`` best, after non-maximum
    suppression per class at ``nms_iou``. The card's ``operating`` threshold is the score a
    box needs to be reported as a finding; ``min_score`` is the lower cut used to measure AP.

    Attributes:
        stride: input pixels per output cell.
        nms_iou: boxes of one class overlapping a better one by more than this are dropped.
        max_detections: at most this many boxes per image.
        min_score: boxes below this score are never decoded.
        triage_classes: the classes whose boxes are findings that raise a study's priority;
            None (the default) for every class. The others are counted and shown but
            never make a study urgent: the cell types of a normal blood smear, say.
        ood_inputs: the input-statistics out-of-distribution score of a detector without a
            ``features`` output (a BoxNet), when fitted, as a segmentation model's; one with
            (a TrunkBoxNet) has the card's ``ood`` instead.
    """

    stride: int = 4
    nms_iou: float = 0.5
    max_detections: int = 100
    min_score: float = 0.01
    triage_classes: tuple[str, ...] | None = None
    ood_inputs: InputOodSpec | None = None

    def __post_init__(self) -> None:
        if self.triage_classes is not None:  # a list when read from JSON or TOML
            object.__setattr__(self, "triage_classes", tuple(self.triage_classes))
        if isinstance(self.ood_inputs, dict):
            object.__setattr__(self, "ood_inputs", InputOodSpec(**self.ood_inputs))
        if self.ood_inputs is not None and not isinstance(self.ood_inputs, InputOodSpec):
            raise ValueError("detection.ood_inputs must be an input OOD spec")
        if self.stride not in (1, 2, 4, 8, 16, 32):
            raise ValueError("detection.stride must be a power of 2 up to 32")
        if not (0 < self.nms_iou <= 1 and 0 <= self.min_score < 1 and self.max_detections > 0):
            raise ValueError("detection: need 0 < nms_iou <= 1, 0 <= min_score < 1, max > 0")


@dataclass(frozen=True)
class ModelCard:
    """Everything radlens knows about one model.

    Attributes:
        name, version: identity; findings record both.
        task: binary, multiclass or ordinal; ``labels`` are in logit order.
        finding_code, finding_label: the label a binary model reports when positive
            (class ``positive_index``); multi-class and ordinal models report their top class.
        positive_index: for binary models, the logit index of the finding (1 unless the
            dataset codes the finding as class 0, as BreastMNIST codes malignant).
        thresholds: operating points on the calibrated probability of ``finding_code``;
            ``operating`` is the one used for the positive flag.
        metrics: split -> metric -> value, measured by ``radlens evaluate``.
        weights_file, sha256: the ONNX file beside the card and its hash.
        outputs: ONNX output names, ``logits`` and ``cam`` (class activation map).
        int8: the INT8 variant of the weights, when one was kept (``radlens quantize``).
        ood: the out-of-distribution score's statistics and threshold (``radlens ood``).
        segmentation: for ``task = "segmentation"``: how the mask is read and measured;
            ``outputs`` is then ``("mask_logits",)``.
        detection: for ``task = "detection"``: how boxes are decoded; ``outputs`` is then
            ``("heatmap", "ltrb")`` and ``labels`` may hold a single class.
        triage_min_grade: for ordinal models, the lowest grade (label index) whose finding
            raises the study's priority (diabetic retinopathy: 3, severe); findings of lower
            grades, and every finding when None (knee osteoarthritis), are ``counted``:
            reported and graded, never an alert.
        grade_rule: for ordinal models, how the reported grade is read from the grade
            distribution: ``argmax`` (the most probable grade) or ``median`` (the grade at
            which the cumulative probability first reaches 0.5: the choice with the least
            expected absolute grade error, so grades far from the truth are rarer).
    """

    name: str
    version: str
    task: Task
    labels: tuple[str, ...]
    finding_code: str
    finding_label: str
    input: InputSpec
    applies_to: AppliesTo
    calibration: Calibration
    thresholds: dict[str, float]
    metrics: dict[str, dict[str, float]]
    training: Training
    intended_use: str
    limitations: tuple[str, ...]
    sha256: str
    weights_file: str = "model.onnx"
    outputs: tuple[str, ...] = ("logits", "cam")
    enabled_by_default: bool = True
    positive_index: int = 1
    int8: Int8Variant | None = None
    ood: OodSpec | None = None
    segmentation: SegmentationSpec | None = None
    detection: DetectionSpec | None = None
    triage_min_grade: int | None = None
    grade_rule: str = "argmax"
    schema_version: int = CARD_SCHEMA_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", Task(self.task))
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "limitations", tuple(self.limitations))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        if len(self.labels) < (1 if self.task is Task.DETECTION else 2):
            raise ValueError("a model needs at least two labels (a detector one)")
        if "operating" not in self.thresholds:
            raise ValueError("thresholds must include 'operating'")
        if any(not 0.0 <= t <= 1.0 for t in self.thresholds.values()):
            raise ValueError("thresholds must lie in [0, 1]")
        if len(self.sha256) != 64:
            raise ValueError("sha256 must be 64 hex characters")
        if self.applies_to.dims != self.input.dims:
            raise ValueError("applies_to.dims and the input size disagree")
        if self.task is not Task.DETECTION and not 0 <= self.positive_index < len(self.labels):
            raise ValueError(f"positive_index {self.positive_index} is not a label index")
        if not self.training.commercial_use and self.enabled_by_default:
            raise ValueError("a model trained on non-commercial data cannot be enabled by default")
        if self.int8 is not None and self.int8.file == self.weights_file:
            raise ValueError("int8.file must differ from weights_file")
        self._check_ordinal()
        self._check_segmentation()
        self._check_detection()
        self._check_calibration()

    def _check_ordinal(self) -> None:
        if self.triage_min_grade is not None and (
            self.task is not Task.ORDINAL or not 0 <= self.triage_min_grade < len(self.labels)
        ):
            raise ValueError("triage_min_grade must be a label index of an ordinal model")
        if self.grade_rule not in GRADE_RULES:
            raise ValueError(f"grade_rule {self.grade_rule!r}; known: {', '.join(GRADE_RULES)}")
        if self.grade_rule != "argmax" and self.task is not Task.ORDINAL:
            raise ValueError("grade_rule median is for ordinal models")

    def _check_detection(self) -> None:
        if (self.task is Task.DETECTION) != (self.detection is not None):
            raise ValueError("a detection card needs a detection section, and only it")
        if self.detection is None:
            return
        if self.outputs[:2] != ("heatmap", "ltrb"):
            raise ValueError("a detector's outputs must be heatmap and ltrb")
        if self.ood is not None:
            if self.ood.output not in self.outputs:
                raise ValueError(f"a detector's ood needs its {self.ood.output!r} output")
            if self.detection.ood_inputs is not None:
                raise ValueError(
                    "a detector decides on ood (features and input statistics) or on "
                    "detection.ood_inputs (input statistics alone), not both"
                )

    def _check_segmentation(self) -> None:
        if (self.task is Task.SEGMENTATION) != (self.segmentation is not None):
            raise ValueError("a segmentation card needs a segmentation section, and only it")
        if self.task is Task.SEGMENTATION and self.outputs[:1] != ("mask_logits",):
            raise ValueError("a segmentation model's first output must be mask_logits")

    def _check_calibration(self) -> None:
        method, k = self.calibration.method, len(self.labels)
        if method is CalibrationMethod.PLATT and self.task is not Task.BINARY:
            raise ValueError("calibration method platt is for binary models")
        if method is CalibrationMethod.VECTOR and self.task not in (Task.MULTICLASS, Task.ORDINAL):
            raise ValueError("calibration method vector is for multi-class and ordinal models")
        if method is CalibrationMethod.VECTOR and len(self.calibration.biases) != k:
            raise ValueError(f"calibration needs one class temperature and bias per label ({k})")

    @property
    def threshold(self) -> float:
        return self.thresholds["operating"]

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """The class each row of ``probs`` (calibrated, ``(N, K)``) reports: the most
        probable, or for an ordinal card with ``grade_rule = "median"`` the median grade.

        Example:
            >>> p = np.array([[0.4, 0.05, 0.3, 0.25]])
            >>> int(p.argmax()), int((np.cumsum(p) < 0.5).sum())  # argmax, median
            (0, 2)
        """
        probs = np.asarray(probs)
        if self.grade_rule == "median":
            below = (np.cumsum(probs, axis=-1) < 0.5).sum(axis=-1)
            median: np.ndarray = np.minimum(below, probs.shape[-1] - 1)
            return median
        top: np.ndarray = probs.argmax(axis=-1)
        return top

    @property
    def input_ood(self) -> InputOodSpec | None:
        """The input-statistics OOD score of a model whose score is that alone: a
        segmentation model's ``segmentation.ood_inputs`` or a detector's
        ``detection.ood_inputs``; None for a classifier (its scores are ``ood``)."""
        for task_spec in (self.segmentation, self.detection):
            if task_spec is not None and task_spec.ood_inputs is not None:
                return task_spec.ood_inputs
        return None


def card_from_dict(data: dict[str, Any], source: str = "card") -> ModelCard:
    """Build a validated card from parsed JSON.

    Raises:
        InvalidModelCardError: a field is missing, has the wrong type or breaks a rule.
    """
    try:
        if not isinstance(data, dict):
            raise TypeError(f"a card is a JSON object, got {type(data).__name__}")
        version = int(data.get("schema_version", CARD_SCHEMA_VERSION))
        if version != CARD_SCHEMA_VERSION:
            raise ValueError(f"schema_version {version} is not {CARD_SCHEMA_VERSION}")
        fields = dict(data)
        applies = dict(fields.pop("applies_to"))
        population = Population(**applies.pop("population", {}))
        int8 = fields.pop("int8", None)
        ood = fields.pop("ood", None)
        segmentation = fields.pop("segmentation", None)
        detection = fields.pop("detection", None)
        calibration = dict(fields.pop("calibration"))
        pooled = calibration.pop("cross_fitted", None)
        if ood is not None:
            ood = dict(ood)
            inputs = ood.pop("inputs", None)
            ood["inputs"] = None if inputs is None else InputStatsSpec(**inputs)
        return ModelCard(
            input=InputSpec(**fields.pop("input")),
            applies_to=AppliesTo(population=population, **applies),
            calibration=Calibration(
                **calibration, cross_fitted=None if pooled is None else CrossFitted(**pooled)
            ),
            training=Training(**fields.pop("training")),
            int8=None if int8 is None else Int8Variant(**int8),
            ood=None if ood is None else OodSpec(**ood),
            segmentation=None if segmentation is None else SegmentationSpec(**segmentation),
            detection=None if detection is None else DetectionSpec(**detection),
            **fields,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidModelCardError(f"{source}: {exc}; see docs/model-card.md") from exc


def _trim_calibration(data: dict[str, Any], calibration: Calibration) -> None:
    """The JSON form of a card's calibration, without the keys a card written before them
    lacks where they hold their defaults, so such a card reads exactly as before."""
    data["method"] = calibration.method.value
    for key in ("class_temperatures", "biases", "cv_nll"):
        if not data[key]:
            del data[key]  # a temperature card reads as before the methods
    for key in ("ece_cv", "ece_noise_mean", "ece_noise_p95", "cross_fitted"):
        if data[key] is None:
            del data[key]
    pooled = data.get("cross_fitted")
    if pooled is not None and pooled["use"] == "fit":
        del pooled["use"]


def card_to_dict(card: ModelCard) -> dict[str, Any]:
    """The JSON form of a card (the inverse of :func:`card_from_dict`)."""
    data = asdict(card)
    data["task"] = card.task.value
    data["input"]["resize"] = card.input.resize.value
    if card.input.denoise is None:
        del data["input"]["denoise"]  # cards without it read exactly as before it existed
    if card.input.deblur is None:
        del data["input"]["deblur"]  # likewise
    _trim_calibration(data["calibration"], card.calibration)
    if card.int8 is None:
        del data["int8"]  # cards without a variant read exactly as before it existed
    if card.grade_rule == "argmax":
        del data["grade_rule"]  # the default: cards read exactly as before it existed
    if card.segmentation is None:
        del data["segmentation"]  # classification cards read exactly as before it existed
    else:
        data["segmentation"]["measure"] = card.segmentation.measure.value
        if card.segmentation.ood_inputs is None:
            del data["segmentation"]["ood_inputs"]
    if card.detection is None:
        del data["detection"]  # cards of other tasks read exactly as before it existed
    else:  # every class triaged, no OOD score fitted: written as before those fields existed
        unset = {k for k in ("triage_classes", "ood_inputs") if data["detection"][k] is None}
        data["detection"] = {k: v for k, v in data["detection"].items() if k not in unset}
    if card.ood is None:
        del data["ood"]
    elif card.ood.inputs is None:
        del data["ood"]["inputs"]  # cards fitted before input statistics read as before
    return data


def read_card(path: Path) -> ModelCard:
    """Read and validate ``card.json``.

    Raises:
        InvalidModelCardError: the file is not JSON or breaks the schema.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidModelCardError(f"{path}: cannot read card: {exc}") from exc
    return card_from_dict(data, source=str(path))


def write_card(card: ModelCard, path: Path) -> None:
    """Write ``card.json`` (sorted keys, so diffs of retrained cards stay readable)."""
    path.write_text(json.dumps(card_to_dict(card), indent=2, sort_keys=True) + "\n", "utf-8")


# What each classifier-only operation does instead for the other tasks: the refusal says
# where a segmenter's or detector's corresponding figures come from.
CLASSIFIER_ONLY: dict[str, str] = {
    "calibrate": (
        "calibration refits a classifier's class probabilities on val; a {task} model's "
        "threshold is fitted by `radlens train` and its figures are measured by "
        "`radlens evaluate`"
    ),
    "ood": (
        "the feature OOD score needs a classifier's penultimate features; a {task} model's "
        "input-statistics OOD score (if its card has one) is fitted by `radlens train`"
    ),
    "quantize": ("the INT8 gate compares a classifier's val AUC; {task} models run in fp32"),
    "half": (
        "a float16 version is recalibrated and re-measured as a classifier; a {task} model "
        'stores float16 weights when its recipe says net.weights = "float16"'
    ),
}


def require_classifier(card: ModelCard, operation: str) -> None:
    """Refuse a classifier-only ``operation`` (a key of ``CLASSIFIER_ONLY``) on another task.

    Example:
        >>> require_classifier(card, "calibrate")  # doctest: +SKIP

    Raises:
        UnsupportedTaskError: the card is a segmentation or detection model.
    """
    if card.task not in (Task.SEGMENTATION, Task.DETECTION):
        return
    why = CLASSIFIER_ONLY[operation].format(task=card.task.value)
    raise UnsupportedTaskError(
        f"{card.name} is a {card.task.value} model: radlens {operation} applies to "
        f"classifiers only ({why})"
    )
