"""Box supervision for a classifier: an auxiliary localization loss during training.

A study-level classifier learns from one bit per image. When the training set also has
boxes (FracAtlas marks every fracture), ``schedule.box_loss > 0`` adds a second signal: a
1 x 1 convolution on the trunk's third stage (1/16 of the input) predicts, for each cell,
whether a labelled box covers it, trained with binary cross-entropy beside the
classification loss. The head exists only during training: it shapes the trunk's features
and is dropped before export, so the ONNX graph, its outputs and its CAM contract are those
of a plain classifier. This is deep supervision (Lee et al., AISTATS 2015) with box masks as
the targets, as in weakly-and-strongly supervised detectors of chest findings (Li et al.,
CVPR 2018), without their multi-instance pooling.

The box head leaves the classifier's own class activation map free: on FracAtlas its peak
lay near a fracture in 13 of 82 fractured val images (benchmarks/msk.md). ``schedule.cam_loss
> 0`` supervises that map directly (:func:`cam_box_loss`): for each boxed item, the negative
log of the share of the positive class's CAM softmax (over cells) that falls in its boxes,
as attention supervision does (Li et al., "Tell Me Where to Look", CVPR 2018). The term
changes where the map points, not its scale or the logits' mean, so it does not fight the
classification loss, and it trains exactly the heatmap that is exported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from radlens.errors import ConfigError
from radlens.inference.preprocess import resize_2d
from radlens.io.box_sets import TABLE, BoxedImages, read_boxes
from radlens.io.datasets import LabelledImages
from radlens.models.card import InputSpec
from radlens.training.nets import CamClassifier

# Positive cells are rare (a fracture box covers about 1% of a radiograph); their loss is
# weighted by the negative / positive cell ratio of the training set, at most this.
MAX_POSITIVE_WEIGHT = 50.0


def box_masks(data: LabelledImages, boxes: BoxedImages, spec: InputSpec) -> torch.Tensor:
    """``(N, 1, rows, cols)`` 0/1 masks of each image's boxes, placed as the model input is.

    Images are matched by file name; an image of ``data`` with no entry in ``boxes`` (or
    with no boxes) gets an empty mask.

    Raises:
        ConfigError: ``spec`` is not 2D.
    """
    if spec.dims != 2:
        raise ConfigError(f"box masks need a 2D input, got size {spec.size}")
    by_name = {Path(name).name: k for k, name in enumerate(boxes.ids)}
    size = (spec.size[0], spec.size[1])
    out = np.zeros((len(data.images), 1, *size), np.float32)
    for i, (image, name) in enumerate(zip(data.images, data.ids, strict=True)):
        k = by_name.get(Path(name).name)
        if k is None or not len(boxes.boxes[k]):
            continue
        mask = np.zeros(image.shape[:2], np.float32)
        for x0, y0, x1, y1 in boxes.boxes[k]:
            mask[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))] = 1.0
        resized, _ = resize_2d(mask, size, spec.resize)
        out[i, 0] = resized > 0.25
    return torch.from_numpy(out)


def read_box_masks(source: Path, data: LabelledImages, spec: InputSpec) -> torch.Tensor:
    """:func:`box_masks` of ``data`` from the box table in its folder ``source``.

    Raises:
        ConfigError: ``source`` has no box table.
    """
    if not (source / TABLE).is_file():
        raise ConfigError(
            f"schedule.box_loss and cam_loss need {source / TABLE} (boxes of the train split)"
        )
    return box_masks(data, read_boxes(source, data.split or "train"), spec)


class BoxHead(nn.Module):
    """A 1 x 1 convolution on a ``CamClassifier``'s third stage, fed by a forward hook.

    ``masks`` are the training images' box masks (:func:`box_masks`); their positive
    cells are weighted by the negative / positive cell ratio, at most
    ``MAX_POSITIVE_WEIGHT``.
    """

    conv: nn.Conv2d
    cells: tuple[int, int]
    pos_weight: float

    def __init__(
        self, classifier: CamClassifier, sample: torch.Tensor, masks: torch.Tensor
    ) -> None:
        """Hook ``classifier.trunk.layer3``; ``sample`` (one normalized input) sizes the head."""
        super().__init__()
        self._stage: torch.Tensor | None = None
        self._hook = classifier.trunk.layer3.register_forward_hook(self._keep)
        was_training = classifier.training
        with torch.no_grad():
            classifier.eval()
            classifier(sample)
        classifier.train(was_training)
        assert self._stage is not None
        self.cells = (int(self._stage.shape[-2]), int(self._stage.shape[-1]))
        self.conv = nn.Conv2d(int(self._stage.shape[1]), 1, kernel_size=1)
        self._stage = None
        self.pos_weight = positive_weight(masks, self.cells)

    def _keep(self, _module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        self._stage = output

    def forward(self) -> torch.Tensor:
        """Cell logits ``(B, 1, h, w)`` of the last batch the classifier read."""
        if self._stage is None:
            raise RuntimeError("the classifier has not read a batch yet")
        logits: torch.Tensor = self.conv(self._stage)
        return logits

    def loss(self, masks: torch.Tensor) -> torch.Tensor:
        """Box loss of the last batch the classifier read, or of its first ``len(masks)``
        items (a batch that also holds other views of them), whose masks are ``masks``."""
        return box_loss(self()[: len(masks)], masks, self.pos_weight)

    def remove(self) -> None:
        self._hook.remove()
        self._stage = None


def positive_weight(masks: torch.Tensor, cells: tuple[int, int]) -> float:
    """Negative / positive cell ratio of the training masks at the head's resolution."""
    targets = cell_targets(masks, cells)
    positive = float(targets.sum())
    if positive == 0:
        raise ConfigError("schedule.box_loss: no training image has a box")
    return min(MAX_POSITIVE_WEIGHT, (targets.numel() - positive) / positive)


def cell_targets(masks: torch.Tensor, cells: tuple[int, int]) -> torch.Tensor:
    """A cell is positive when a pixel of it lies in a box (mask > 0.5 after resampling)."""
    return (F.adaptive_max_pool2d(masks, cells) > 0.5).to(masks.dtype)


def box_loss(logits: torch.Tensor, masks: torch.Tensor, pos_weight: float) -> torch.Tensor:
    """Binary cross-entropy of the cell logits against the augmented masks' cells."""
    targets = cell_targets(masks, (logits.shape[-2], logits.shape[-1]))
    return F.binary_cross_entropy_with_logits(
        logits, targets, pos_weight=torch.tensor(pos_weight, dtype=logits.dtype)
    )


def cam_box_loss(cam: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean over boxed items of ``-log`` (share of the CAM's softmax over cells in the boxes).

    ``cam`` is one class's map ``(B, h, w)``, ``masks`` the items' augmented box masks
    ``(B, 1, H, W)``; a cell counts as boxed as in :func:`cell_targets`. Items without a
    box add nothing; a batch without one gives 0 (still part of the graph).

    Example:
        >>> cam = torch.zeros(1, 2, 2); masks = torch.zeros(1, 1, 4, 4)
        >>> masks[0, 0, :2, :2] = 1  # one of four cells: a flat map puts 1/4 there
        >>> round(float(cam_box_loss(cam, masks)), 4) == round(float(np.log(4)), 4)
        True
    """
    cells = (int(cam.shape[-2]), int(cam.shape[-1]))
    inside = cell_targets(masks, cells).flatten(1) > 0
    boxed = inside.any(dim=1)
    if not bool(boxed.any()):
        return cam.sum() * 0.0
    log_share = torch.log_softmax(cam.flatten(1)[boxed], dim=1)
    masked = log_share.masked_fill(~inside[boxed], float("-inf"))
    return -torch.logsumexp(masked, dim=1).mean()
