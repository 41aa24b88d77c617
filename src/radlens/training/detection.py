"""Train a box detector (``task = "detection"``): a compact anchor-free network.

The design is CenterNet's (Zhou et al., "Objects as Points", 2019) with TTFNet's box
regression (Liu et al., "Training-Time-Friendly Network for Real-Time Object Detection",
AAAI 2020), chosen because it trains in minutes on a CPU and needs no anchors, no
torchvision operators and no NMS inside the graph:

* ``BoxNet``: a small residual encoder to stride 16 (``layers[3] + 1`` blocks at the last
  stage, alternately dilated by 2 and 1 for context),
  a feature-pyramid decoder back to ``stride`` (4), and two heads: ``heatmap`` (sigmoid,
  one channel per class: a box centre lies here) and ``ltrb`` (distances from the cell
  centre to the four box edges, in input pixels, ``stride * exp(.)``);
* ``TrunkBoxNet`` (``net.arch`` a ResNet): the same heads on a classifier's MONAI ResNet
  trunk (stride 32; ``net.init`` can start it from a shipped classifier's) with a
  feature-pyramid decoder back to stride 4, whose pooled map is a third output,
  ``features``, for the out-of-distribution score a classifier has;
* ``schedule.tta``: mirror-image test-time augmentation in the exported graph
  (``FlipAverageBoxes``); ``net.weights = "float16"``: weights stored as float16;
* targets: per box an elliptical Gaussian on its class channel (sides ``alpha`` times the
  box's, peak 1 at the centre cell), trained with CenterNet's penalty-reduced focal loss;
  ``ltrb`` is trained with the GIoU loss at the cells of the Gaussian inside the box's
  central ``alpha`` part, weighted by the Gaussian and by the log of the box area (smaller
  boxes take the cells they share with larger ones);
* augmentation: random scale (``augment.scale``), a random crop of ``schedule.crop``,
  flips (``augment.hflip``; ``augment.flip_axes`` ``["x", "y"]`` adds vertical flips for
  images without an up), brightness and contrast per channel (``augment.brightness``,
  ``augment.contrast``).

Images are preprocessed once by ``radlens.inference.preprocess.prepare_2d`` (as inference
does), so training sees exactly the inputs the ONNX model will. Boxes are decoded by
``radlens.inference.detection.decode_boxes`` and scored by
``radlens.evaluation.detection.score_detections``, the same code as ``radlens evaluate``;
the epoch with the best val mAP@0.5 (of the EMA weights when ``schedule.ema``) is kept.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from radlens.errors import ConfigError
from radlens.evaluation.detection import DetectionScores, score_detections
from radlens.inference.detection import Detections, decode_boxes, to_source
from radlens.inference.preprocess import Placement, prepare_2d
from radlens.io.box_sets import BoxedImages, read_boxes
from radlens.models.card import (
    FEATURES_OUTPUT,
    Calibration,
    DetectionSpec,
    ModelCard,
    read_card,
    write_card,
)
from radlens.models.registry import sha256_of
from radlens.training.members import run_members
from radlens.training.nets import build_net
from radlens.training.recipe import NetSpec, Recipe
from radlens.warning_scopes import ignoring

GAUSSIAN_ALPHA = 0.54  # TTFNet's choice for both the heatmap and the regression area
FOCAL_ALPHA, FOCAL_BETA = 2.0, 4.0  # CenterNet
BOX_LOSS_WEIGHT = 5.0  # TTFNet
PARITY_TOLERANCE = 1e-4
OPERATING_SCORE = 0.3  # a box's score to be reported when val cannot fit one
FEATURES = FEATURES_OUTPUT


def conv_bn(
    c_in: int, c_out: int, kernel: int = 3, stride: int = 1, dilation: int = 1
) -> nn.Sequential:
    pad = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, pad, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Residual(nn.Module):
    """Two 3 x 3 convolutions with an identity shortcut (He et al. 2016)."""

    def __init__(self, channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(channels, channels, dilation=dilation),
            nn.Conv2d(channels, channels, 3, 1, dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


def heads(channels: int, n_classes: int) -> tuple[nn.Sequential, nn.Sequential]:
    """The heatmap and ``ltrb`` heads: a 3 x 3 convolution each, then a 1 x 1 one whose bias
    starts the heatmap at a prior of 0.01 (CenterNet) and the boxes at 4 cells a side."""
    heat = nn.Sequential(conv_bn(channels, channels), nn.Conv2d(channels, n_classes, 1))
    box = nn.Sequential(conv_bn(channels, channels), nn.Conv2d(channels, 4, 1))
    for head, bias in ((heat, -math.log((1 - 0.01) / 0.01)), (box, math.log(4.0))):
        last = head[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        nn.init.constant_(last.bias, bias)
    return heat, box


class BoxNet(nn.Module):
    """Encoder to stride 16, decoder to stride 4, heatmap and ltrb heads (see module doc).

    ``forward`` returns ``(heatmap, ltrb)``; ``heatmap`` is a probability unless
    ``logits=True`` (training, for a stable loss).
    """

    stride = 4
    has_features = False

    def __init__(
        self, channels: int, n_classes: int, widths: tuple[int, ...], layers: tuple[int, ...]
    ) -> None:
        super().__init__()
        w2, w4, w8, w16 = widths
        self.stem = conv_bn(channels, w2, stride=2)
        self.down4 = nn.Sequential(
            conv_bn(w2, w4, stride=2), *[Residual(w4) for _ in range(layers[1])]
        )
        self.down8 = nn.Sequential(
            conv_bn(w4, w8, stride=2), *[Residual(w8) for _ in range(layers[2])]
        )
        self.down16 = nn.Sequential(
            conv_bn(w8, w16, stride=2),
            *[Residual(w16, dilation=2 - k % 2) for k in range(layers[3] + 1)],
        )
        self.up8 = conv_bn(w16, w8, kernel=1)
        self.fuse8 = conv_bn(w8, w8)
        self.up4 = conv_bn(w8, w4, kernel=1)
        self.fuse4 = conv_bn(w4, w4)
        self.heat, self.box = heads(w4, n_classes)

    def forward(self, x: torch.Tensor, logits: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        c4 = self.down4(self.stem(x))
        c8 = self.down8(c4)
        c16 = self.down16(c8)
        p8 = self.fuse8(c8 + F.interpolate(self.up8(c16), size=c8.shape[-2:], mode="nearest"))
        p4 = self.fuse4(c4 + F.interpolate(self.up4(p8), size=c4.shape[-2:], mode="nearest"))
        heat = self.heat(p4)
        ltrb = self.stride * torch.exp(self.box(p4).clamp(max=8.0))
        return (heat if logits else torch.sigmoid(heat)), ltrb


class TrunkBoxNet(nn.Module):
    """BoxNet's decoder and heads on a classifier's ResNet trunk (``training.nets``).

    The trunk is the one ``CamClassifier`` builds from the same ``net`` section (its state
    keys start with ``trunk.``), so a shipped classifier's trunk can start it
    (``net.init``, :func:`radlens.training.learn.transfer_state`). A feature pyramid of
    ``widths[1]`` channels runs from the last stage (stride 32) back to stride 4, where the
    heads read it. ``forward`` returns ``(heatmap, ltrb)``, and with ``features=True`` also
    that stride-4 map averaged over positions. Both heads read this map, so it is the
    detector's penultimate layer, as the pooled last feature map is a classifier's; it feeds
    the out-of-distribution score. (The trunk's last stage, measured first, told fetal
    ultrasound from fracture radiographs less well: ``benchmarks/trust.md``.)
    """

    stride = 4
    has_features = True

    def __init__(self, spec: NetSpec, channels: int, n_classes: int) -> None:
        super().__init__()
        stride = spec.stem_stride * (2 if spec.max_pool else 1)
        if stride != self.stride:
            raise ValueError(
                f"a detector trunk reaches stride 4 at its first stage (stem stride x max "
                f"pool), not {stride}"
            )
        self.trunk = build_net(spec, channels, 1, 2).trunk
        w4, w8, w16, w32 = spec.widths
        d = w8
        self.lateral = nn.ModuleList([conv_bn(w, d, kernel=1) for w in (w4, w8, w16, w32)])
        self.fuse = nn.ModuleList([conv_bn(d, d) for _ in range(3)])
        self.heat, self.box = heads(d, n_classes)

    def forward(
        self, x: torch.Tensor, logits: bool = False, features: bool = False
    ) -> tuple[torch.Tensor, ...]:
        t = self.trunk
        x = t.act(t.bn1(t.conv1(x)))
        if not t.no_max_pool:
            x = t.maxpool(x)
        c4 = t.layer1(x)
        c8 = t.layer2(c4)
        c16 = t.layer3(c8)
        c32 = t.layer4(c16)
        p = self.lateral[3](c32)
        for k, c in ((2, c16), (1, c8), (0, c4)):
            up = F.interpolate(p, size=c.shape[-2:], mode="nearest")
            p = self.fuse[k](self.lateral[k](c) + up)
        heat = self.heat(p)
        ltrb = self.stride * torch.exp(self.box(p).clamp(max=8.0))
        out = (heat if logits else torch.sigmoid(heat)), ltrb
        return (*out, p.flatten(2).mean(dim=2)) if features else out


def build_detector(spec: NetSpec, channels: int, n_classes: int) -> nn.Module:
    """``BoxNet`` for ``net.arch = "boxnet"``, else ``TrunkBoxNet`` on the ResNet trunk."""
    if spec.arch == "boxnet":
        return BoxNet(channels, n_classes, spec.widths, spec.layers)
    return TrunkBoxNet(spec, channels, n_classes)


class FlipAverageBoxes(nn.Module):
    """Mirror-image test-time augmentation folded into a detector's graph.

    For each flip (1 mirrors left-right, 2 top-bottom: those training augmented with), the
    net reads the mirrored input; its maps are mirrored back, with the ``ltrb`` channels of
    the mirrored axis swapped (a box's left edge is its mirror image's right edge), and all
    are averaged. ``features`` (a ``TrunkBoxNet``'s) are averaged as they are.
    """

    def __init__(self, net: nn.Module, flips: tuple[tuple[int, ...], ...]) -> None:
        super().__init__()
        self.net = net
        self.flips = flips
        self.has_features = bool(getattr(net, "has_features", False))

    def forward(
        self, x: torch.Tensor, logits: bool = False, features: bool = False
    ) -> tuple[torch.Tensor, ...]:
        if logits:
            raise ValueError("flip averaging is for the exported probabilities, not training")
        extra = {"features": True} if features else {}
        total = list(self.net(x, **extra))
        for axes in self.flips:
            dims = [-a for a in axes]
            out = self.net(x.flip(dims), **extra)
            swap = [0, 1, 2, 3]
            for a in axes:  # x: left <-> right; y: top <-> bottom
                i, j = (0, 2) if a == 1 else (1, 3)
                swap[i], swap[j] = swap[j], swap[i]
            total[0] = total[0] + out[0].flip(dims)
            total[1] = total[1] + out[1].flip(dims)[:, swap]
            if features:
                total[2] = total[2] + out[2]
        n = 1 + len(self.flips)
        return tuple(t / n for t in total)


class _WithFeatures(nn.Module):
    """Export view of a ``TrunkBoxNet``: ``(heatmap, ltrb, features)``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.net(x, features=True))


# --- targets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Targets:
    heat: np.ndarray  # (K, h, w) Gaussian peaks
    ltrb: np.ndarray  # (4, h, w) target boxes [x0, y0, x1, y1] in input pixels
    weight: np.ndarray  # (h, w) box-loss weight


def make_targets(
    boxes: np.ndarray, classes: np.ndarray, n_classes: int, shape: tuple[int, int], stride: int
) -> Targets:
    """Heatmap and box targets of one input of ``shape`` (rows, cols) pixels."""
    h, w = shape[0] // stride, shape[1] // stride
    heat = np.zeros((n_classes, h, w), np.float32)
    target = np.zeros((4, h, w), np.float32)
    weight = np.zeros((h, w), np.float32)
    ys = (np.arange(h, dtype=np.float32) + 0.5) * stride
    xs = (np.arange(w, dtype=np.float32) + 0.5) * stride
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for k in np.argsort(-areas, kind="stable"):  # small boxes overwrite large ones
        x0, y0, x1, y1 = boxes[k]
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        sx = max(GAUSSIAN_ALPHA * (x1 - x0) / 6, 0.5 * stride)
        sy = max(GAUSSIAN_ALPHA * (y1 - y0) / 6, 0.5 * stride)
        g = np.exp(-((xs[None] - cx) ** 2) / (2 * sx**2) - ((ys[:, None] - cy) ** 2) / (2 * sy**2))
        ci, cj = min(int(cy // stride), h - 1), min(int(cx // stride), w - 1)
        g[ci, cj] = 1.0
        heat[classes[k]] = np.maximum(heat[classes[k]], g)
        inside = (np.abs(xs[None] - cx) <= GAUSSIAN_ALPHA * (x1 - x0) / 2) & (
            np.abs(ys[:, None] - cy) <= GAUSSIAN_ALPHA * (y1 - y0) / 2
        )
        inside[ci, cj] = True
        g_in = np.where(inside, g, 0.0)
        weight[inside] = (g_in[inside] / g_in.sum() * math.log(max(areas[k], 2.0))).astype(
            np.float32
        )
        target[:, inside] = np.array([x0, y0, x1, y1], np.float32)[:, None]
    return Targets(heat, target, weight)


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, summed over the batch / number of centres."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    pos_loss = -torch.log(p) * (1 - p) ** FOCAL_ALPHA * pos
    neg_loss = -torch.log(1 - p) * p**FOCAL_ALPHA * (1 - target) ** FOCAL_BETA * (1 - pos)
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)


def giou_loss(
    ltrb: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, stride: int
) -> torch.Tensor:
    """Weighted GIoU loss (Rezatofighi et al., CVPR 2019) of the predicted boxes."""
    mask = weight > 0
    if not bool(mask.any()):
        return ltrb.sum() * 0.0
    h, w = ltrb.shape[-2:]
    ys = (torch.arange(h, dtype=ltrb.dtype) + 0.5) * stride
    xs = (torch.arange(w, dtype=ltrb.dtype) + 0.5) * stride
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    pred = torch.stack([cx - ltrb[:, 0], cy - ltrb[:, 1], cx + ltrb[:, 2], cy + ltrb[:, 3]], dim=1)
    p = pred.permute(0, 2, 3, 1)[mask]
    t = target.permute(0, 2, 3, 1)[mask]
    wt = weight[mask]
    area_p = (p[:, 2] - p[:, 0]) * (p[:, 3] - p[:, 1])
    area_t = (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1])
    iw = (torch.minimum(p[:, 2], t[:, 2]) - torch.maximum(p[:, 0], t[:, 0])).clamp(min=0)
    ih = (torch.minimum(p[:, 3], t[:, 3]) - torch.maximum(p[:, 1], t[:, 1])).clamp(min=0)
    inter = iw * ih
    union = area_p + area_t - inter
    hull = (torch.maximum(p[:, 2], t[:, 2]) - torch.minimum(p[:, 0], t[:, 0])) * (
        torch.maximum(p[:, 3], t[:, 3]) - torch.minimum(p[:, 1], t[:, 1])
    )
    giou = inter / union.clamp(min=1e-6) - (hull - union) / hull.clamp(min=1e-6)
    return ((1 - giou) * wt).sum() / wt.sum().clamp(min=1e-6)


# --- data and augmentation -------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """A box set preprocessed for the network: inputs, boxes in input pixels, placements."""

    x: np.ndarray  # (N, C, rows, cols) float32
    boxes: list[np.ndarray]
    classes: list[np.ndarray]
    placements: list[Placement]


def prepare_set(data: BoxedImages, recipe: Recipe) -> Prepared:
    """Every image through ``prepare_2d``; boxes mapped into its input pixels."""
    arrays, boxes, placements = [], [], []
    for image, b in zip(data.images, data.boxes, strict=True):
        x, where = prepare_2d(image, recipe.input)
        arrays.append(x)
        placements.append(where)
        mapped = b.astype(np.float32).copy()
        mapped[:, 0::2] = mapped[:, 0::2] / where.scale_x + where.offset_x
        mapped[:, 1::2] = mapped[:, 1::2] / where.scale_y + where.offset_y
        boxes.append(mapped)
    return Prepared(np.stack(arrays), boxes, list(data.classes), placements)


def augment_item(
    x: np.ndarray,
    boxes: np.ndarray,
    classes: np.ndarray,
    recipe: Recipe,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One random draw of scale, crop, flips and intensity; boxes follow the pixels."""
    aug, spec = recipe.augment, recipe.input
    rows, cols = x.shape[1:]
    crop = recipe.schedule.crop or (rows, cols)
    low, high = aug.scale
    scale = float(np.exp(rng.uniform(math.log(low), math.log(high))))
    new_rows, new_cols = max(8, round(rows * scale)), max(8, round(cols * scale))
    t = torch.from_numpy(x)[None]
    if (new_rows, new_cols) != (rows, cols):
        t = F.interpolate(t, size=(new_rows, new_cols), mode="bilinear", align_corners=False)
    img = t[0].numpy()
    boxes = boxes * np.array([new_cols / cols, new_rows / rows] * 2, np.float32)
    fill = (0.0 - spec.mean) / spec.std
    out = np.full((x.shape[0], crop[0], crop[1]), fill, np.float32)
    top = int(rng.integers(min(0, new_rows - crop[0]), max(0, new_rows - crop[0]) + 1))
    left = int(rng.integers(min(0, new_cols - crop[1]), max(0, new_cols - crop[1]) + 1))
    src_y, src_x = max(top, 0), max(left, 0)
    dst_y, dst_x = max(-top, 0), max(-left, 0)
    n_y = min(new_rows - src_y, crop[0] - dst_y)
    n_x = min(new_cols - src_x, crop[1] - dst_x)
    out[:, dst_y : dst_y + n_y, dst_x : dst_x + n_x] = img[
        :, src_y : src_y + n_y, src_x : src_x + n_x
    ]
    boxes = boxes - np.array([left, top, left, top], np.float32)
    centre_x, centre_y = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    keep = (centre_x >= 0) & (centre_x < crop[1]) & (centre_y >= 0) & (centre_y < crop[0])
    boxes = np.clip(boxes[keep], 0, [crop[1], crop[0], crop[1], crop[0]]).astype(np.float32)
    classes = classes[keep]
    big = ((boxes[:, 2] - boxes[:, 0]) >= 2) & ((boxes[:, 3] - boxes[:, 1]) >= 2)
    boxes, classes = boxes[big], classes[big]
    if (aug.hflip or "x" in aug.flip_axes) and rng.random() < 0.5:
        out = out[:, :, ::-1]
        boxes = np.stack(
            [crop[1] - boxes[:, 2], boxes[:, 1], crop[1] - boxes[:, 0], boxes[:, 3]], 1
        )
    if "y" in aug.flip_axes and rng.random() < 0.5:
        out = out[:, ::-1, :]
        boxes = np.stack(
            [boxes[:, 0], crop[0] - boxes[:, 3], boxes[:, 2], crop[0] - boxes[:, 1]], 1
        )
    if aug.contrast or aug.brightness:
        unit = out * spec.std + spec.mean  # back to [0, 1]
        n_c = out.shape[0]
        gain = 1 + rng.uniform(-aug.contrast, aug.contrast, (n_c, 1, 1))
        shift = rng.uniform(-aug.brightness, aug.brightness, (n_c, 1, 1))
        centre = unit.mean(axis=(1, 2), keepdims=True)
        unit = (unit - centre) * gain + centre + shift
        out = (unit - spec.mean) / spec.std
    return (
        np.ascontiguousarray(out, dtype=np.float32),
        boxes.reshape(-1, 4).astype(np.float32),
        classes,
    )


def batch_targets(
    items: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n_classes: int, stride: int
) -> tuple[torch.Tensor, ...]:
    x = torch.from_numpy(np.stack([i[0] for i in items]))
    shape = (x.shape[2], x.shape[3])
    targets = [make_targets(b, c, n_classes, shape, stride) for _, b, c in items]
    return (
        x,
        torch.from_numpy(np.stack([t.heat for t in targets])),
        torch.from_numpy(np.stack([t.ltrb for t in targets])),
        torch.from_numpy(np.stack([t.weight for t in targets])),
    )


# --- evaluation ------------------------------------------------------------------------


def detect_batch(
    net: nn.Module, x: np.ndarray, spec: DetectionSpec, placements: list[Placement], batch: int = 8
) -> list[Detections]:
    """Torch forward plus the numpy decoding inference uses; boxes in source pixels."""
    net.eval()
    found: list[Detections] = []
    with torch.no_grad():
        for start in range(0, len(x), batch):
            heat, ltrb = net(torch.from_numpy(x[start : start + batch]))
            for k in range(len(heat)):
                d = decode_boxes(
                    heat[k].numpy(),
                    ltrb[k].numpy(),
                    spec.stride,
                    spec.min_score,
                    spec.max_detections,
                    spec.nms_iou,
                )
                found.append(to_source(d, placements[start + k]))
    return found


def evaluate_net(
    net: nn.Module, prepared: Prepared, data: BoxedImages, spec: DetectionSpec
) -> DetectionScores:
    found = detect_batch(net, prepared.x, spec, prepared.placements)
    return score_detections(found, data.boxes, data.classes, data.difficult, data.label_names)


# --- the loop --------------------------------------------------------------------------


def _start_from_trunk(net: nn.Module, recipe: Recipe, x: np.ndarray, log: logging.Logger) -> None:
    """Load the trunk of the shipped classifier ``recipe.net.init`` into ``net``, its batch
    norms re-estimated on up to 256 prepared training inputs ``x``
    (``learn.transfer_state``); the decoder and heads keep the seed's start."""
    from radlens.models.registry import discover, get_model
    from radlens.training.learn import transfer_state

    if not isinstance(net, TrunkBoxNet):
        raise ConfigError(f"{recipe.source}: net.init needs a ResNet trunk, not net.arch boxnet")
    source = get_model(recipe.net.init, discover(include_disabled=True))
    picks = np.sort(np.random.default_rng(recipe.seed).permutation(len(x))[:256])
    trunk = transfer_state(source, recipe, torch.from_numpy(x[picks]), log)
    net.load_state_dict({**net.state_dict(), **trunk})


def _follow(ema: nn.Module, net: nn.Module, decay: float) -> None:
    """One step of the exponential moving average of ``net``'s weights (buffers copied)."""
    with torch.no_grad():
        for e, p in zip(ema.state_dict().values(), net.state_dict().values(), strict=True):
            if e.dtype.is_floating_point:
                e.mul_(decay).add_(p.detach(), alpha=1 - decay)
            else:
                e.copy_(p)


def fit_detector(
    recipe: Recipe,
    train_set: BoxedImages,
    val_set: BoxedImages,
    log: logging.Logger,
    eval_every: int = 4,
) -> tuple[nn.Module, DetectionScores, int]:
    """Train ``BoxNet``; return the best net on val mAP@0.5, its scores and its epoch."""
    spec = recipe.detection or DetectionSpec()
    sched = recipe.schedule
    n_classes = len(recipe.labels)
    rng = np.random.default_rng(recipe.seed)
    torch.manual_seed(recipe.seed)
    train_p = prepare_set(train_set, recipe)
    val_p = prepare_set(val_set, recipe)
    net = build_detector(recipe.net, recipe.input.channels, n_classes)
    if recipe.net.init:
        _start_from_trunk(net, recipe, train_p.x, log)
    ema = copy.deepcopy(net).eval() if sched.ema else None
    log.info(
        "%s widths %s, %d parameters, input %s, crop %s, stride %d",
        type(net).__name__,
        recipe.net.widths,
        sum(p.numel() for p in net.parameters()),
        tuple(train_p.x.shape[1:]),
        sched.crop or "whole",
        spec.stride,
    )
    optim = torch.optim.AdamW(net.parameters(), lr=sched.lr, weight_decay=sched.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train_p.x) / sched.batch_size))
    total = steps_per_epoch * sched.epochs
    warmup = max(1, int(sched.warmup_epochs * steps_per_epoch))

    def lr_at(step: int) -> float:
        if step < warmup:
            return sched.lr * (step + 1) / warmup
        return sched.lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    best_scores: DetectionScores | None = None
    step, stale = 0, 0
    for epoch in range(1, sched.epochs + 1):
        started = time.perf_counter()
        net.train()
        order = rng.permutation(len(train_p.x))
        losses = []
        for start in range(0, len(order), sched.batch_size):
            picks = order[start : start + sched.batch_size]
            items = [
                augment_item(train_p.x[i], train_p.boxes[i], train_p.classes[i], recipe, rng)
                for i in picks
            ]
            x, heat_t, box_t, weight_t = batch_targets(items, n_classes, spec.stride)
            for group in optim.param_groups:
                group["lr"] = lr_at(step)
            heat, ltrb = net(x, logits=True)
            loss = focal_loss(heat, heat_t) + BOX_LOSS_WEIGHT * giou_loss(
                ltrb, box_t, weight_t, spec.stride
            )
            optim.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            optim.step()
            if ema is not None:
                _follow(ema, net, min(sched.ema, (1 + step) / (10 + step)))
            losses.append(float(loss.detach()))
            step += 1
        message = f"epoch {epoch:3d} loss {np.mean(losses):.4f} lr {lr_at(step - 1):.2e}"
        if epoch % eval_every == 0 or epoch > sched.epochs - 10:
            judged = ema if ema is not None else net
            scores = evaluate_net(judged, val_p, val_set, spec)
            per_class = " ".join(f"{k} {v:.3f}" for k, v in scores.ap_50.items())
            message += (
                f" val mAP@0.5 {scores.map_50:.4f} ({per_class}) mAP@.5:.95 {scores.map_50_95:.4f}"
            )
            if best is None or scores.map_50 > best[0]:
                state = {k: v.detach().clone() for k, v in judged.state_dict().items()}
                best, best_scores, stale = (scores.map_50, epoch, state), scores, 0
            else:
                stale += 1
        log.info("%s (%.0f s)", message, time.perf_counter() - started)
        if sched.patience and stale >= sched.patience:
            log.info("no val improvement in %d evaluations: stop", stale)
            break
    assert best is not None and best_scores is not None
    net.load_state_dict(best[2])
    return net.eval(), best_scores, best[1]


def fit_detector_member(
    recipe: Recipe,
    member: int,
    train_set: BoxedImages,
    val_set: BoxedImages,
    log: logging.Logger,
) -> nn.Module:
    """Ensemble member ``member`` (``schedule.ensemble``): :func:`fit_detector` on the recipe
    with seed ``seed + member``, so member 0 is the single network of the plain recipe."""
    if recipe.schedule.ensemble > 1:
        log.info(
            "member %d/%d: seed %d", member + 1, recipe.schedule.ensemble, recipe.seed + member
        )
    net, scores, epoch = fit_detector(
        replace(recipe, seed=recipe.seed + member), train_set, val_set, log
    )
    log.info("best epoch %d: val mAP@0.5 %.4f (torch)", epoch, scores.map_50)
    return net


class MeanBoxes(nn.Module):
    """Detector ensemble members in one graph: their ``heatmap`` and ``ltrb`` maps averaged,
    their pooled ``features`` (when every member has them) side by side, so the OOD score
    reads every member's feature space."""

    def __init__(self, nets: list[nn.Module]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)
        self.has_features = all(getattr(net, "has_features", False) for net in nets)

    def forward(
        self, x: torch.Tensor, logits: bool = False, features: bool = False
    ) -> tuple[torch.Tensor, ...]:
        if logits:
            raise ValueError("a detector ensemble is for the exported maps, not training")
        extra = {"features": True} if features else {}
        outs = [net(x, **extra) for net in self.nets]
        heat = torch.stack([o[0] for o in outs]).mean(0)
        ltrb = torch.stack([o[1] for o in outs]).mean(0)
        if features:
            return heat, ltrb, torch.cat([o[2] for o in outs], dim=1)
        return heat, ltrb


def detector_outputs(net: nn.Module) -> tuple[str, ...]:
    """The exported graph's outputs: ``TrunkBoxNet`` adds ``features``."""
    base = ("heatmap", "ltrb")
    return (*base, FEATURES) if getattr(net, "has_features", False) else base


def export_detector(net: nn.Module, example: torch.Tensor, path: Path, opset: int = 17) -> float:
    """Write the ONNX graph (``heatmap``, ``ltrb`` and for a ``TrunkBoxNet`` ``features``;
    dynamic batch, rows and columns) and return the largest |torch - ONNX Runtime|
    difference on ``example`` (``ltrb`` relative to its size)."""
    from radlens.inference.backends import OnnxBackend

    net.eval()
    names = detector_outputs(net)
    exported = _WithFeatures(net).eval() if FEATURES in names else net
    axes = {0: "batch", 2: "rows", 3: "cols"}
    dynamic = {"image": axes, "heatmap": axes, "ltrb": axes}
    if FEATURES in names:
        dynamic[FEATURES] = {0: "batch"}
    with ignoring():
        torch.onnx.export(
            exported,
            (example,),
            str(path),
            input_names=["image"],
            output_names=list(names),
            dynamic_axes=dynamic,
            opset_version=opset,
            dynamo=False,
        )
    with torch.no_grad():
        expected = dict(zip(names, (t.numpy() for t in exported(example)), strict=True))
    OnnxBackend.forget(path)  # a file rewritten at the same path
    out = OnnxBackend(path).run(example.numpy())
    diffs = []
    for name, want in expected.items():
        scale = np.maximum(1.0, np.abs(want)) if name == "ltrb" else 1.0
        diffs.append(float((np.abs(out[name] - want) / scale).max()))
    return max(diffs)


def train_detection(
    recipe: Recipe,
    out_dir: Path,
    data_path: Path | None,
    command: str | None,
    log: logging.Logger,
) -> tuple[ModelCard, DetectionScores]:
    """``radlens train`` for ``task = "detection"``: fit, export, measure through ONNX
    Runtime with the ``radlens evaluate`` code, fit the input-statistics OOD score
    (``ood_inputs.npz``, :mod:`radlens.training.input_ood`) and write the card."""
    from radlens.evaluation.detection import measure_detector
    from radlens.inference.backends import OnnxBackend
    from radlens.training.segment_card import fit_input_ood
    from radlens.training.train import training_record

    started = time.perf_counter()
    torch.set_num_threads(recipe.schedule.threads)
    source = data_path or Path(recipe.data)
    spec = recipe.detection or DetectionSpec()
    log.info("recipe %s (%s), data %s", recipe.name, recipe.source, source)
    train_set = read_boxes(source, "train", recipe.labels)
    val_set = read_boxes(source, "val", recipe.labels)
    log.info(
        "train %d images %s, val %d images %s",
        len(train_set),
        train_set.box_counts(),
        len(val_set),
        val_set.box_counts(),
    )
    members = run_members(
        recipe,
        fit_detector_member,
        (train_set, val_set),
        lambda: build_detector(recipe.net, recipe.input.channels, len(recipe.labels)),
        log,
    )
    net = members[0] if len(members) == 1 else MeanBoxes(members).eval()
    if len(members) > 1:
        log.info("ensemble: the mean of %d members' maps in one graph", len(members))
    aug = recipe.augment  # the mirrors training augmented with (see augment_item)
    flips = tuple(
        axes
        for axes, used in (((1,), aug.hflip or "x" in aug.flip_axes), ((2,), "y" in aug.flip_axes))
        if used
    )
    if recipe.schedule.tta and flips:
        net = FlipAverageBoxes(net, flips).eval()
        log.info("test-time augmentation: the mean over mirror images %s in the graph", flips)
    onnx_path = out_dir / "model.onnx"
    example = torch.from_numpy(prepare_set(val_set, recipe).x[:2])
    diff = export_detector(net, example, onnx_path)
    log.info("onnx parity: max |torch - onnxruntime| = %.2e", diff)
    if diff > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX export differs from torch by {diff:.2e}")
    if recipe.net.weights == "float16":
        from radlens.training.half_weights import halve_checked

        names = detector_outputs(net)
        with torch.no_grad():
            outputs = net(example, features=True) if FEATURES in names else net(example)
        expected = dict(zip(names, (t.numpy() for t in outputs), strict=True))
        halve_checked(onnx_path, example.numpy(), expected, log, separately=True)
    minutes = (time.perf_counter() - started) / 60
    card = ModelCard(
        name=recipe.name,
        version=recipe.version,
        task=recipe.task,
        labels=recipe.labels,
        finding_code=recipe.finding_code,
        finding_label=recipe.finding_label,
        input=recipe.input,
        applies_to=recipe.applies_to,
        calibration=Calibration(),
        thresholds={"operating": OPERATING_SCORE},
        metrics={},
        training=training_record(recipe, command, len(train_set), len(val_set), minutes),
        intended_use=recipe.intended_use,
        limitations=recipe.limitations,
        sha256=sha256_of(onnx_path),
        outputs=detector_outputs(net),
        enabled_by_default=recipe.commercial_use and recipe.enabled_by_default is not False,
        detection=spec,
    )
    backend = OnnxBackend(onnx_path, threads=recipe.schedule.threads)
    onnx_scores, point = measure_detector(card, backend, val_set, OPERATING_SCORE)
    log.info(point.describe())
    card = replace(
        card,
        thresholds={"operating": point.score},
        metrics={"val": onnx_scores.as_metrics() | point.as_metrics()},
    )
    if FEATURES in card.outputs:
        from radlens.training.ood import fit_detector_ood

        ood = fit_detector_ood(card, out_dir, backend, train_set, val_set)
        card = replace(card, ood=ood)
        log.info(
            "OOD score (features and input statistics): flags %.1f%% of val",
            100 * (ood.inputs.val_flag_rate if ood.inputs else ood.val_flag_rate),
        )
    else:
        ood_inputs = fit_input_ood(card, out_dir, train_set, val_set)
        log.info(
            "input-statistics OOD score: threshold %.3f flags %.1f%% of val",
            ood_inputs.threshold,
            100 * ood_inputs.val_flag_rate,
        )
        card = replace(card, detection=replace(spec, ood_inputs=ood_inputs))
    write_card(card, out_dir / "card.json")
    log.info("val metrics (onnxruntime): %s", card.metrics["val"])
    log.info("done in %.1f min", minutes)
    return read_card(out_dir / "card.json"), onnx_scores


def infer_detection_recipe(data: Path, name: str, size: int | None = None) -> dict[str, Any]:
    """A detection recipe (as TOML-like dict) for a box set nobody wrote a recipe for.

    Classes and grey or colour come from the train split; the input keeps the first image's
    aspect ratio (``pad``) with its long side ``size`` (default: the image's, at most 512)
    rounded to a multiple of 16. Radiographs have an up, so only left-right flips. The
    licence is unknown, so the model is not for commercial use and not enabled by default.

    Example:
        >>> infer_detection_recipe(Path("fracatlas"), "fracatlas")["input"]  # doctest: +SKIP
        {'size': [512, 416], 'channels': 1, 'resize': 'pad', ...}
    """
    train_set = read_boxes(data, "train")
    first = train_set.images[0]
    color = first.ndim == 3
    rows, cols = first.shape[:2]
    long_side = size or min(512, max(rows, cols))
    scale = long_side / max(rows, cols)
    side = [max(32, int(round(v * scale / 16)) * 16) for v in (rows, cols)]
    return {
        "name": name,
        "version": "0.1.0",
        "task": "detection",
        "data": str(data),
        "labels": list(train_set.label_names),
        "finding_code": name.lower(),
        "finding_label": name,
        "licence": "unknown: check the dataset's licence before use",
        "commercial_use": False,
        "citation": "",
        "intended_use": (
            f"Research detector trained on {data.name}; not validated for clinical use."
        ),
        "limitations": ["Trained from an inferred recipe; routing accepts only modality OT."],
        "input": {
            "size": side,
            "channels": 3 if color else 1,
            "resize": "pad",
            "use_window": not color,
            "percentile_low": 0.5,
            "percentile_high": 99.5,
        },
        "applies_to": {"modalities": ["OT"], "dims": 2, "color": color},
        "net": {"arch": "boxnet", "widths": [16, 32, 48, 64], "layers": [1, 1, 1, 1]},
        "detection": {"stride": 4},
        "schedule": {
            "epochs": 60,
            "batch_size": 16,
            "lr": 2e-3,
            "warmup_epochs": 2,
            "patience": 25,
            "ema": 0.995,
            "threads": 1,
            "crop": [side[0] * 3 // 4 // 16 * 16, side[1] * 3 // 4 // 16 * 16],
        },
        "augment": {"scale": [0.8, 1.25], "hflip": True, "brightness": 0.05, "contrast": 0.15},
    }
