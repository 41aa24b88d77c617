"""The out-of-distribution score of a detector's card, fitted without retraining.

A detector's graph has no ``features`` output (its outputs are the ``heatmap`` and ``ltrb``
maps), so its OOD score is the input-statistics distance alone, as a segmentation model's
(:func:`radlens.training.segment_card.fit_input_ood`): the statistics of the training
images are written to ``ood_inputs.npz`` beside the card, and the threshold flags
``flag_rate`` of the val images. The weights are never touched; rerunning on the same data
gives the same file and card.

``radlens train`` fits it at the end of training a detector; ``radlens ood MODEL --data
PATH`` (:func:`fit_detector_ood`) adds it to a detector trained before it existed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from radlens.errors import InputError, UnsupportedTaskError
from radlens.io.box_sets import read_boxes
from radlens.models.card import ModelCard, Task, write_card
from radlens.models.registry import load_model
from radlens.training.segment_card import FLAG_RATE, fit_input_ood


@dataclass(frozen=True)
class DetectorOodReport:
    """What ``radlens ood`` fitted for a detector.

    Attributes:
        model: the model's name.
        n_train, n_val: images the statistics and the threshold were fitted on.
        statistics: the statistic set (``image2d/1``).
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


def fit_detector_ood(
    model_dir: Path, data: Path, flag_rate: float = FLAG_RATE
) -> DetectorOodReport:
    """Add the input-statistics OOD score to the detector in ``model_dir`` from its box set
    ``data`` (the train and val splits it was trained on): ``ood_inputs.npz`` and the card's
    ``detection.ood_inputs``.

    Example:
        >>> fit_detector_ood(Path("src/radlens/zoo/bccd_cells"),
        ...                  Path("../shared/data/det/bccd_blood_cells")).n_val  # doctest: +SKIP
        87

    Raises:
        UnsupportedTaskError: the model is not a detector.
        InputError: ``data`` is not a box set, or its splits differ in size from the ones
            the card says the model was trained on.
        ModelIntegrityError: the weights differ from the card.
    """
    installed = load_model(model_dir)
    card = installed.card
    if card.task is not Task.DETECTION or card.detection is None:
        raise UnsupportedTaskError(
            f"{card.name} is a {card.task.value} model: fit_detector_ood is for detectors"
        )
    train = read_boxes(data, "train", card.labels)
    val = read_boxes(data, "val", card.labels)
    check_splits(card, data, len(train), len(val))
    spec = fit_input_ood(card, model_dir, train, val, flag_rate)
    write_card(
        replace(card, detection=replace(card.detection, ood_inputs=spec)),
        model_dir / "card.json",
    )
    return DetectorOodReport(
        card.name,
        len(train),
        len(val),
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
