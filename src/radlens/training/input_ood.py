"""The out-of-distribution score of a detector's or segmenter's card, fitted without
retraining.

Their graphs have no ``features`` output (a BoxNet detector's outputs are the ``heatmap`` and
``ltrb`` maps, a segmenter's the ``mask_logits``), so their OOD score is the input-statistics
distance alone (:func:`radlens.training.segment_card.fit_input_ood`): the statistics of the
training images are written to ``ood_inputs.npz`` beside the card, and the threshold flags
``flag_rate`` of the val images. The weights are never touched; rerunning on the same data
gives the same file and card.

``radlens train`` fits it at the end of training; ``radlens ood MODEL --data PATH``
(:func:`fit_input_only_ood`) refits it, for a model trained before it existed or with an
earlier statistic set (``image2d/1`` -> ``image2d/4``). A detector whose graph has a
``features`` output (a ``TrunkBoxNet``) gets a classifier's score instead
(:func:`radlens.training.ood.refit_detector_ood`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from radlens.errors import InputError, UnsupportedTaskError
from radlens.io.box_sets import read_boxes
from radlens.io.segmentation_sets import read_segmentation
from radlens.models.card import ModelCard, Task, write_card
from radlens.models.registry import load_model
from radlens.training.segment_card import FLAG_RATE, HasImages, fit_input_ood


@dataclass(frozen=True)
class InputOodReport:
    """What ``radlens ood`` fitted for a detector or a segmenter.

    Attributes:
        model: the model's name.
        n_train, n_val: images the statistics and the threshold were fitted on.
        statistics: the statistic set (``image2d/4``).
        threshold, median: the flag threshold and the median distance on val.
        val_flag_rate: the share of val images flagged.
    """

    model: str
    n_train: int
    n_val: int
    statistics: str
    threshold: float
    median: float
    val_flag_rate: float


def fit_input_only_ood(model_dir: Path, data: Path, flag_rate: float = FLAG_RATE) -> InputOodReport:
    """Fit the input-statistics OOD score of the detector or segmenter in ``model_dir`` from
    the data it was trained on (a box set, or a segmentation set split with the card's seed):
    ``ood_inputs.npz`` and the card's ``detection.ood_inputs`` / ``segmentation.ood_inputs``.

    Example:
        >>> fit_input_only_ood(Path("src/radlens/zoo/bccd_cells"),
        ...                    Path("../shared/data/det/bccd_blood_cells")).n_val  # doctest: +SKIP
        87

    Raises:
        UnsupportedTaskError: the model is a classifier (``radlens ood`` fits those with
            :func:`radlens.training.ood.fit_ood`).
        InputError: ``data`` is not the right kind of set, or its splits differ in size from
            the ones the card says the model was trained on.
        ModelIntegrityError: the weights differ from the card.
    """
    installed = load_model(model_dir)
    card = installed.card
    train: HasImages
    val: HasImages
    if card.task is Task.DETECTION and card.detection is not None:
        train = read_boxes(data, "train", card.labels)
        val = read_boxes(data, "val", card.labels)
    elif card.task is Task.SEGMENTATION and card.segmentation is not None:
        train = read_segmentation(data, "train", seed=card.training.seed)
        val = read_segmentation(data, "val", seed=card.training.seed)
    else:
        raise UnsupportedTaskError(
            f"{card.name} is a {card.task.value} model: fit_input_only_ood is for detectors "
            "and segmenters"
        )
    check_splits(card, data, len(train.images), len(val.images))
    spec = fit_input_ood(card, model_dir, train, val, flag_rate)
    if card.detection is not None:
        card = replace(card, detection=replace(card.detection, ood_inputs=spec))
    elif card.segmentation is not None:
        card = replace(card, segmentation=replace(card.segmentation, ood_inputs=spec))
    write_card(card, model_dir / "card.json")
    return InputOodReport(
        card.name,
        len(train.images),
        len(val.images),
        spec.statistics,
        spec.threshold,
        spec.median,
        spec.val_flag_rate,
    )


_SPLITS = re.compile(r"\(train split (\d+), val split (\d+)\)")


def check_splits(card: ModelCard, data: Path, n_train: int, n_val: int) -> None:
    """Refuse data whose split sizes differ from the ones in ``card.training.data``
    (``"... (train split 205, val split 87)"``): statistics of other images would describe
    another training set. A card that does not state them is not checked.

    Example:
        >>> check_splits(card, Path("boxes"), 205, 87)  # doctest: +SKIP

    Raises:
        InputError: the sizes differ.
    """
    stated = _SPLITS.search(card.training.data)
    if stated is None:
        return
    want = (int(stated.group(1)), int(stated.group(2)))
    if (n_train, n_val) != want:
        raise InputError(
            data,
            f"train/val splits of {n_train}/{n_val} images, but {card.name} was trained on "
            f"{want[0]}/{want[1]} ({card.training.data}); give the data it was trained on",
        )
