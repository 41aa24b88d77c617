"""Segmentation training (``task = "segmentation"``): a MONAI BasicUNet, Dice + BCE.

Images are prepared by the inference code (``prepare_2d``: resize to the input size,
percentile scaling), masks are resized the same way (bilinear: soft edges). Each batch is
augmented jointly (rotation, scale, shift, left-right mirror on image and mask together;
gamma, contrast, brightness, noise on the image only). AdamW, warm-up then cosine decay,
an exponential moving average of the weights (``schedule.ema``); the epoch kept is the
one with the best validation Dice at the input resolution. The network is exported with
one output, ``mask_logits`` (``(B, 1, rows, cols)``), and checked against ONNX Runtime.

:func:`finish_card` then measures the model *through ONNX Runtime at the source
resolution*, with the code ``radlens evaluate`` runs (``evaluation.segmentation``), and
writes the card.
"""

from __future__ import annotations

import copy
import logging
import math
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.nets.basic_unet import BasicUNet
from torch import nn

from radlens.evaluation.evaluate import Evaluation
from radlens.inference.preprocess import prepare, resize_2d
from radlens.io.segmentation_sets import SegmentedImages, read_segmentation
from radlens.models.card import Measure, ModelCard
from radlens.training.augment import affine, intensity
from radlens.training.recipe import Recipe
from radlens.warning_scopes import ignoring

PARITY_TOLERANCE = 1e-3


class MaskNet(nn.Module):
    """``forward(x) -> mask_logits`` of the same rows and columns as ``x``."""

    def __init__(self, features: tuple[int, ...], in_channels: int = 1) -> None:
        super().__init__()
        self.unet = BasicUNet(
            spatial_dims=2,
            in_channels=in_channels,
            out_channels=1,
            features=features,
            act=("LeakyReLU", {"negative_slope": 0.1, "inplace": True}),
            norm=("instance", {"affine": True}),
            dropout=0.0,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.unet(x)
        return out


def to_tensors(data: SegmentedImages, recipe: Recipe) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [0, 1] as inference prepares them, and masks resized alike (soft)."""
    spec = recipe.input
    size = (spec.size[0], spec.size[1])
    images = [prepare(img, spec) * spec.std + spec.mean for img in data.images]
    masks = [resize_2d(m.astype(np.float32), size, spec.resize)[0][None] for m in data.masks]
    x = torch.from_numpy(np.stack(images).astype(np.float32))
    y = torch.from_numpy(np.clip(np.stack(masks), 0, 1).astype(np.float32))
    return x, y


def dice_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice loss (per image, averaged)."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    dice = (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)
    return bce + (1 - dice).mean()


def augment_pair(
    x: torch.Tensor, y: torch.Tensor, recipe: Recipe, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one set of parameters per item; move image and mask together."""
    s, n = recipe.augment, x.shape[0]

    def uniform(count: int, low: float, high: float) -> torch.Tensor:
        return torch.rand(count, generator=gen) * (high - low) + low

    angle = uniform(n, -s.rotate_deg, s.rotate_deg) * math.pi / 180
    scale = uniform(n, *s.scale)
    shift = uniform(2 * n, -s.translate, s.translate).view(n, 2)
    flip = (torch.rand(n, generator=gen) < 0.5) & s.hflip
    both = affine(torch.cat([x, y], dim=1), angle, scale, shift, flip)
    x, y = both[:, :1], both[:, 1:]
    log_g = uniform(n, math.log(s.gamma[0]), math.log(s.gamma[1]))
    x = intensity(
        x,
        torch.exp(log_g),
        uniform(n, 1 - s.contrast, 1 + s.contrast),
        uniform(n, -s.brightness, s.brightness),
    )
    if s.noise_std:
        sigma = uniform(n, 0, s.noise_std).view(-1, 1, 1, 1)
        x = (x + sigma * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    return x, y


@torch.no_grad()
def predict_logits(
    model: nn.Module, x: torch.Tensor, mean: float, std: float, batch_size: int = 8
) -> torch.Tensor:
    model.eval()
    return torch.cat(
        [model((x[i : i + batch_size] - mean) / std) for i in range(0, len(x), batch_size)]
    )


def dice_at_input(logits: torch.Tensor, target: torch.Tensor) -> float:
    """Mean Dice of the thresholded prediction and mask (both at the input size)."""
    p = (logits > 0).flatten(1).float()
    t = (target > 0.5).flatten(1).float()
    dice = (2 * (p * t).sum(1) + 1e-6) / (p.sum(1) + t.sum(1) + 1e-6)
    return float(dice.mean())


def fit_segmentation(
    recipe: Recipe,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    log: logging.Logger,
) -> tuple[MaskNet, float, int]:
    """Train and return the best epoch's (EMA) weights, its val Dice and the epoch."""
    s, spec = recipe.schedule, recipe.input
    gen = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    model = MaskNet(recipe.net.features, spec.channels)
    log.info(
        "net basicunet features %s, %d parameters, input %s",
        recipe.net.features,
        sum(p.numel() for p in model.parameters()),
        tuple(x_train.shape[1:]),
    )
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    steps_per_epoch = math.ceil(len(x_train) / s.batch_size)
    total = s.epochs * steps_per_epoch
    warm = max(1, int(s.warmup_epochs * steps_per_epoch))

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    ema = None
    if s.ema > 0:
        average = torch.optim.swa_utils.get_ema_multi_avg_fn(s.ema)  # type: ignore[no-untyped-call]
        ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=average, use_buffers=True)
    evaluated: MaskNet = ema.module if ema is not None else model  # type: ignore[assignment]
    best_state, best_dice, best_epoch, stale = None, -1.0, 0, 0
    for epoch in range(1, s.epochs + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        running = 0.0
        for i in range(0, len(order), s.batch_size):
            idx = order[i : i + s.batch_size]
            if len(idx) < 2:
                continue
            xb, yb = augment_pair(x_train[idx], y_train[idx], recipe, gen)
            loss = dice_bce(model((xb - spec.mean) / spec.std), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
            sched.step()
            running += float(loss.detach()) * len(idx)
        val_logits = predict_logits(evaluated, x_val, spec.mean, spec.std)
        val_loss = float(dice_bce(val_logits, y_val))
        val_dice = dice_at_input(val_logits, y_val)
        log.info(
            "epoch %d/%d train_loss %.4f val_loss %.4f val_dice %.4f lr %.2e %.0fs",
            epoch,
            s.epochs,
            running / len(x_train),
            val_loss,
            val_dice,
            opt.param_groups[0]["lr"],
            time.perf_counter() - start,
        )
        if val_dice > best_dice:
            best_dice, best_epoch, stale = val_dice, epoch, 0
            best_state = copy.deepcopy(evaluated.state_dict())
        else:
            stale += 1
            if stale >= s.patience:
                log.info("early stop: no val improvement for %d epochs", stale)
                break
    assert best_state is not None
    final = MaskNet(recipe.net.features, spec.channels)
    final.load_state_dict(best_state)
    final.eval()
    log.info("best epoch %d (val_dice at input size %.4f)", best_epoch, best_dice)
    return final, best_dice, best_epoch


def infer_segmentation_recipe(data: Path, name: str, size: int | None = None) -> dict[str, Any]:
    """A segmentation recipe (as TOML-like dict) for a mask set nobody wrote a recipe for.

    The folder is read as :func:`radlens.io.segmentation_sets.read_segmentation` reads it
    (``images/``, ``masks/``, ``labels.csv``). The input keeps the first image's aspect
    ratio (stretched) with its long side ``size`` (default: the image's, at most 320),
    both sides rounded to a multiple of 16; the network and schedule are those of
    ``recipes/fetal_head_hc18.toml``. With a ``head_circumference_mm`` column and pixel
    sizes, the model measures head circumference (ellipse, HC, GA). The licence is unknown,
    so the model is not for commercial use and not enabled by default.

    Raises:
        ConfigError: ``data`` is not a segmentation set (says what one looks like).

    Example:
        >>> recipe = infer_segmentation_recipe(Path("hc18_fetal_head_us"), "hc18")  # doctest: +SKIP
        >>> recipe["input"]["size"], recipe["measure"]  # doctest: +SKIP
        ([224, 320], 'head_circumference')
    """
    from radlens.errors import ConfigError, InputError
    from radlens.io.segmentation_sets import REFERENCE_COLUMN, is_segmentation_set

    if not is_segmentation_set(data):
        raise ConfigError(
            f"--task segmentation needs a folder with images/, masks/ and labels.csv (columns "
            f"filename, mask, subject_id, optionally pixel_size_mm and {REFERENCE_COLUMN}); "
            f"{data} is not one"
        )
    try:
        train_set = read_segmentation(data, "train")
    except InputError as exc:
        raise ConfigError(f"--task segmentation: cannot read {data}: {exc}") from exc
    first = train_set.images[0]
    color = first.ndim == 3
    rows, cols = first.shape[:2]
    long_side = size or min(320, max(rows, cols))
    scale = long_side / max(rows, cols)
    side = [max(32, int(round(v * scale / 16)) * 16) for v in (rows, cols)]
    measured = bool(
        np.isfinite(train_set.reference_mm).any() and np.isfinite(train_set.pixel_size_mm).any()
    )
    return {
        "name": name,
        "version": "0.1.0",
        "task": "segmentation",
        "data": str(data),
        "labels": ["background", name],
        "finding_code": name.lower(),
        "finding_label": name,
        "measure": Measure.HEAD_CIRCUMFERENCE.value if measured else Measure.NONE.value,
        "licence": "unknown: check the dataset's licence before use",
        "commercial_use": False,
        "citation": "",
        "intended_use": (
            f"Research segmentation model trained on {data.name}; not validated for clinical use."
        ),
        "limitations": ["Trained from an inferred recipe; routing accepts only modality OT."],
        "input": {
            "size": side,
            "channels": 3 if color else 1,
            "resize": "stretch",
            "use_window": False,
            "percentile_low": 0.5,
            "percentile_high": 99.5,
            "mean": 0.5,
            "std": 0.25,
        },
        "applies_to": {"modalities": ["OT"], "dims": 2, "color": color},
        "net": {"arch": "basicunet", "features": [8, 16, 32, 64, 128, 8]},
        "schedule": {
            "epochs": 40,
            "batch_size": 4,
            "lr": 2e-3,
            "weight_decay": 1e-4,
            "warmup_epochs": 1,
            "patience": 40,
            "ema": 0.99,
            "threads": 1,
        },
        "augment": {
            "rotate_deg": 15.0,
            "scale": [0.9, 1.1],
            "translate": 0.05,
            "gamma": [0.8, 1.25],
            "contrast": 0.15,
            "brightness": 0.05,
            "hflip": True,
        },
    }


def export_mask_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> float:
    """Write ``model`` with one output ``mask_logits`` and a dynamic batch axis; return the
    largest |torch - ONNX Runtime| difference on ``example``."""

    model.eval()
    with ignoring():
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["image"],
            output_names=["mask_logits"],
            dynamic_axes={"image": {0: "batch"}, "mask_logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return mask_parity(model, example, path)


def mask_parity(model: nn.Module, example: torch.Tensor, path: Path) -> float:
    """The largest |torch - ONNX Runtime| on ``example``."""
    from radlens.inference.backends import OnnxBackend

    with torch.no_grad():
        expected = model(example).numpy()
    OnnxBackend.forget(path)
    got = OnnxBackend(path, threads=1).run(example.numpy())["mask_logits"]
    return float(np.abs(got - expected).max())


def store_half(model: nn.Module, example: torch.Tensor, path: Path, log: logging.Logger) -> None:
    """Store the exported weights as float16 (``net.weights = "float16"``) and check the
    logits against torch again, relative to their scale."""
    from radlens.training.half_weights import halve_checked

    with torch.no_grad():
        expected = model(example).numpy()
    halve_checked(path, example.numpy(), {"mask_logits": expected}, log)


def train_one(
    recipe: Recipe,
    train_set: SegmentedImages,
    val_set: SegmentedImages,
    onnx_path: Path,
    log: logging.Logger,
) -> None:
    """Fit the recipe's network at ``input.size`` and export it to ``onnx_path`` (checked
    against torch, then stored as float16 when ``net.weights`` says so)."""
    x_train, y_train = to_tensors(train_set, recipe)
    x_val, y_val = to_tensors(val_set, recipe)
    model, _, _ = fit_segmentation(recipe, x_train, y_train, x_val, y_val, log)
    example = (x_val[:2] - recipe.input.mean) / recipe.input.std
    diff = export_mask_onnx(model, example, onnx_path)
    log.info("onnx parity: max |torch - onnxruntime| = %.2e", diff)
    if diff > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX export differs from torch by {diff:.2e}")
    if recipe.net.weights == "float16":
        store_half(model, example, onnx_path, log)


def ensemble_members(
    recipe: Recipe,
    train_set: SegmentedImages,
    val_set: SegmentedImages,
    onnx_path: Path,
    log: logging.Logger,
    members: Sequence[Path] | None = None,
) -> None:
    """A multi-scale ensemble (``schedule.member_sizes``) exported to ``onnx_path``.

    Member *k* is :func:`train_one` of the recipe with ``input.size = member_sizes[k]`` and
    float32 weights: the very network a single-size run of the recipe at that size gives
    (training on one thread is deterministic; each member's sha256 is logged to compare).
    ``members`` replaces the training with already trained files. The members are joined by
    :func:`radlens.training.seg_ensemble.compose_members`, checked against the mean of the
    members run one by one, then stored as float16 when ``net.weights`` says so.

    Raises:
        ConfigError: ``input.size`` is not the largest member size, or ``members`` does not
            give one file per size.
    """
    import tempfile
    from dataclasses import replace

    from radlens.errors import ConfigError
    from radlens.models.registry import sha256_of
    from radlens.training.half_weights import halve_checked
    from radlens.training.seg_ensemble import compose_members, member_parity

    sizes = recipe.schedule.member_sizes
    if tuple(recipe.input.size) != max(sizes, key=lambda s: s[0] * s[1]):
        raise ConfigError(
            f"{recipe.source}: input.size {list(recipe.input.size)} must be the largest of "
            f"schedule.member_sizes {[list(s) for s in sizes]} (the ensemble's input)"
        )
    if members is not None and len(members) != len(sizes):
        raise ConfigError(f"{len(sizes)} member sizes but {len(members)} trained members given")
    x_val = (to_tensors(val_set, recipe)[0][:2] - recipe.input.mean) / recipe.input.std
    with tempfile.TemporaryDirectory() as tmp:
        paths: list[Path] = []
        for k, size in enumerate(sizes):
            if members is not None:
                path = Path(members[k])
                how = "given"
            else:
                member = replace(
                    recipe,
                    input=replace(recipe.input, size=size),
                    net=replace(recipe.net, weights="float32"),
                    schedule=replace(recipe.schedule, member_sizes=()),
                )
                log.info("member %d/%d: input %s", k + 1, len(sizes), list(size))
                path = Path(tmp) / f"member{k + 1}.onnx"
                train_one(member, train_set, val_set, path, log)
                how = "trained"
            log.info(
                "member %d/%d (%s): input %s, sha256 %s", k + 1, len(sizes), how, list(size),
                sha256_of(path),
            )  # fmt: skip
            paths.append(path)
        compose_members(paths, sizes, onnx_path)
        diff = member_parity(onnx_path, paths, sizes, x_val.numpy())
    log.info("ensemble of %d members composed; max |ensemble - mean of members| = %.2e",
             len(sizes), diff)  # fmt: skip
    if diff > PARITY_TOLERANCE:
        raise RuntimeError(f"the composed ensemble differs from its members by {diff:.2e}")
    if recipe.net.weights == "float16":
        from radlens.inference.backends import OnnxBackend

        example = x_val.numpy()
        expected = OnnxBackend(onnx_path, threads=1).run(example)
        halve_checked(onnx_path, example, expected, log)


def train_segmentation(
    recipe: Recipe,
    out_dir: Path,
    data_path: Path | None,
    command: str | None,
    log: logging.Logger,
    members: Sequence[Path] | None = None,
) -> tuple[ModelCard, Evaluation]:
    """Train, export ``model.onnx`` into ``out_dir``, write the card; return it and the val
    evaluation (through ONNX Runtime at the source resolution).

    With ``schedule.member_sizes`` the model is a multi-scale ensemble
    (:func:`ensemble_members`); ``members`` are already trained members to compose instead
    of training them.
    """
    from radlens.errors import ConfigError

    if recipe.net.arch != "basicunet":
        raise ConfigError(
            f"{recipe.source}: task segmentation trains net.arch 'basicunet', not "
            f'{recipe.net.arch!r}; set net.arch = "basicunet" (and net.features)'
        )
    started = time.perf_counter()
    torch.set_num_threads(recipe.schedule.threads)
    source = data_path or Path(recipe.data)
    log.info("recipe %s (%s), data %s", recipe.name, recipe.source, source)
    train_set = read_segmentation(source, "train", seed=recipe.seed)
    val_set = read_segmentation(source, "val", seed=recipe.seed)
    log.info(
        "train %d images of %d subjects, val %d images of %d subjects (subject-disjoint)",
        len(train_set),
        len(set(train_set.subjects)),
        len(val_set),
        len(set(val_set.subjects)),
    )
    onnx_path = out_dir / "model.onnx"
    if recipe.schedule.member_sizes:
        ensemble_members(recipe, train_set, val_set, onnx_path, log, members)
    else:
        train_one(recipe, train_set, val_set, onnx_path, log)
    minutes = (time.perf_counter() - started) / 60
    Measure(recipe.measure)  # validated here, used by the card step
    from radlens.training.segment_card import finish_card  # the card step, rerunnable alone

    return finish_card(
        recipe,
        out_dir,
        source,
        command or shlex.join(["radlens", "train", recipe.source]),
        minutes,
        log,
    )
