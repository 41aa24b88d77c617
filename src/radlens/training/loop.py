"""The training loop: AdamW, warm-up then cosine decay, class-balanced cross-entropy,
early stopping on validation AUC (ties broken by validation loss).

Multi-label recipes (``task = "multilabel"``) train every logit as its own yes/no with
``BCEWithLogitsLoss``; ``schedule.class_weights = "balanced"`` then weighs each label's
positives by its negatives / positives (``pos_weight``), and ``schedule.loss = "ce"`` means
this per-label binary cross-entropy. Validation AUC, ACC and loss follow the multi-label
definitions of ``radlens.evaluation.metrics``.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from radlens.evaluation import metrics as m
from radlens.models.card import Task
from radlens.training.augment import RandomAugment, js_divergence, mix_corrupted, pick_copy
from radlens.training.localize import BoxHead, cam_box_loss
from radlens.training.nets import CamClassifier
from radlens.training.recipe import Recipe


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    train_loss: float
    val_loss: float
    val_auc: float
    val_acc: float
    lr: float
    seconds: float


def positive_weights(y: np.ndarray, mode: str) -> torch.Tensor:
    """Multi-label ``pos_weight``: ``balanced``: negatives / positives per label (a label
    without positives gets its negatives); ``none``: all ones."""
    if mode == "none":
        return torch.ones(y.shape[1])
    positives = y.sum(axis=0).astype(np.float64)
    negatives = len(y) - positives
    return torch.tensor(negatives / np.maximum(positives, 1), dtype=torch.float32)


def class_weights(y: np.ndarray, n_classes: int, mode: str) -> torch.Tensor:
    """``balanced``: n / (k * count_k), as scikit-learn; ``none``: all ones."""
    if mode == "none":
        return torch.ones(n_classes)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    return torch.tensor(len(y) / (n_classes * np.maximum(counts, 1)), dtype=torch.float32)


def loss_fn(
    logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, recipe: Recipe
) -> torch.Tensor:
    """The recipe's training loss (see ``Schedule.loss``).

    For a multi-label recipe ``y`` is ``(B, K)`` 0/1 and ``weights`` the ``pos_weight``.
    """
    s = recipe.schedule
    if recipe.task is Task.MULTILABEL:
        if s.loss != "ce":
            raise ValueError(f"loss {s.loss!r} is not for multi-label tasks; use ce")
        # Label smoothing for a yes/no target pulls it towards 0.5 by the same amount.
        target = y.to(logits.dtype) * (1 - s.label_smoothing) + s.label_smoothing / 2
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=weights)
    loss = F.cross_entropy(logits, y, weight=weights, label_smoothing=s.label_smoothing)
    if s.loss == "ce+emd":
        cdf = torch.softmax(logits, dim=1).cumsum(dim=1)
        target = F.one_hot(y, logits.shape[1]).to(cdf.dtype).cumsum(dim=1)
        loss = loss + s.emd_weight * ((cdf - target) ** 2).sum(dim=1).mean()
    elif s.loss != "ce":
        raise ValueError(f"unknown loss {s.loss!r}; known: ce, ce+emd")
    return loss


def validation_scores(task: Task, logits: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Validation ``(loss, auc, acc)`` at temperature 1, by the task's definitions."""
    if task is Task.MULTILABEL:
        p = m.sigmoid(logits)
        return m.nll_multilabel(y, p), m.auc_multilabel(y, p), m.accuracy_multilabel(y, p)
    probs = m.softmax(logits)
    return m.nll(y, probs), m.auc(y, probs), m.accuracy(y, probs.argmax(1))


def selection_key(record: EpochRecord) -> tuple[float, float]:
    """How epochs are ranked: validation AUC to 4 places, then lower validation loss.

    An undefined AUC (a validation split without both outcomes) ranks below any other.
    """
    auc = -0.5 if math.isnan(record.val_auc) else round(record.val_auc, 4)
    return auc, -record.val_loss


def keep_key(record: EpochRecord, keep: str) -> tuple[float, float]:
    """How epochs are ranked for keeping (``schedule.keep``): "best" by
    :func:`selection_key`; "last" by number, so each replaces the one before and none stops
    training early."""
    return selection_key(record) if keep == "best" else (float(record.epoch), 0.0)


@torch.no_grad()
def predict(
    model: CamClassifier, x: torch.Tensor, mean: float, std: float, batch_size: int = 128
) -> np.ndarray:
    """Logits for ``x`` in [0, 1] (normalized here), eval mode."""
    model.eval()
    out = [model((x[i : i + batch_size] - mean) / std)[0] for i in range(0, len(x), batch_size)]
    return torch.cat(out).double().numpy()


def box_head(
    model: CamClassifier,
    masks: torch.Tensor | None,
    recipe: Recipe,
    x_train: torch.Tensor,
    log: logging.Logger,
) -> BoxHead | None:
    """The auxiliary box head when the recipe asks for one and there are masks."""
    s = recipe.schedule
    if s.box_loss == 0:
        return None
    if masks is None:
        log.info("schedule.box_loss %.2f: no box masks given, so no box loss", s.box_loss)
        return None
    head = BoxHead(model, (x_train[:1] - recipe.input.mean) / recipe.input.std, masks)
    log.info(
        "box supervision: loss weight %.2f, %d x %d cells, positive cells weighted %.1f",
        s.box_loss,
        *head.cells,
        head.pos_weight,
    )
    return head


def moving_average(
    model: CamClassifier, decay: float
) -> torch.optim.swa_utils.AveragedModel | None:
    """The exponential moving average of ``model``'s weights, or None for ``decay`` 0."""
    if decay <= 0:
        return None
    average = torch.optim.swa_utils.get_ema_multi_avg_fn(decay)  # type: ignore[no-untyped-call]
    return torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=average, use_buffers=True)


def batch_loss(
    model: CamClassifier,
    head: BoxHead | None,
    augment: RandomAugment,
    xb: torch.Tensor,
    idx: torch.Tensor,
    yb: torch.Tensor,
    weights: torch.Tensor,
    recipe: Recipe,
    view: torch.Tensor | None = None,
    train_masks: torch.Tensor | None = None,
) -> torch.Tensor:
    """Augment the batch ``xb`` (train items ``idx``) and return its training loss.

    ``view`` is a corrupted copy of the same items for the consistency term
    (``augment.consistency``): it gets the very same augmentation draws as ``xb``, and with
    ``augment.consistency_anchor`` the clean predictions are its fixed target. With a
    box ``head`` too, the box loss is the clean items' (the view's boxes are theirs).
    ``train_masks`` are all train items' box masks, for the ``head``'s box loss and, with
    ``schedule.cam_loss``, the CAM box loss of the clean items' positive-class maps.
    """
    spec, s = recipe.input, recipe.schedule
    state = augment.gen.get_state()  # for the view's draws (a few kB)
    batch = augment(xb, None if train_masks is None else train_masks[idx])
    masks = None
    if train_masks is not None:
        batch, masks = batch[:, :-1], batch[:, -1:]
    if view is not None:  # the same draws as its clean items (masks change no draw)
        augment.gen.set_state(state)
        batch = torch.cat([batch, augment(view)])
    logits, cams = model((batch - spec.mean) / spec.std)
    ours = logits[: len(xb)]
    loss = loss_fn(ours, yb, weights, recipe)
    if view is not None:
        target = ours.detach() if recipe.augment.consistency_anchor else ours
        js = js_divergence(target, logits[len(xb) :], recipe.task is Task.MULTILABEL)
        loss = loss + recipe.augment.consistency * js
    if head is not None and masks is not None:
        loss = loss + s.box_loss * head.loss(masks)
    if s.cam_loss > 0 and masks is not None:
        cam = cams[: len(xb), recipe.positive_index]
        loss = loss + s.cam_loss * cam_box_loss(cam, masks)
    return loss


def draw_batch(
    x_train: torch.Tensor,
    x_corrupted: torch.Tensor | None,
    idx: torch.Tensor,
    recipe: Recipe,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Train items ``idx``, some swapped for a corrupted copy (``augment.corruption_prob``),
    and with ``augment.consistency`` a corrupted copy of each for the consistency term."""
    xb, view, spec = x_train[idx], None, recipe.augment
    if x_corrupted is not None:
        if spec.corruption_prob > 0:
            xb = mix_corrupted(xb, pick_copy(x_corrupted, idx, gen), spec.corruption_prob, gen)
        if spec.consistency > 0:
            view = pick_copy(x_corrupted, idx, gen)
    return xb, view


def check_extras(
    recipe: Recipe,
    x_corrupted: torch.Tensor | None,
    masks: torch.Tensor | None,
    log: logging.Logger,
) -> None:
    """Refuse a consistency term without corrupted copies; say whether the CAM box loss is on
    (as with the box head, there is none without masks: ``radlens learn``'s cases)."""
    if recipe.augment.consistency > 0 and x_corrupted is None:
        raise ValueError("augment.consistency needs corrupted copies (2D)")
    weight = recipe.schedule.cam_loss
    if weight > 0 and masks is None:
        log.info("schedule.cam_loss %.2f: no box masks given, so no CAM box loss", weight)
    elif weight > 0:
        log.info("CAM box loss: weight %.2f on the positive class's map", weight)


def fit(
    model: CamClassifier,
    recipe: Recipe,
    x_train: torch.Tensor,
    y_train: np.ndarray,
    x_val: torch.Tensor,
    y_val: np.ndarray,
    log: logging.Logger,
    x_corrupted: torch.Tensor | None = None,
    masks: torch.Tensor | None = None,
) -> tuple[CamClassifier, list[EpochRecord]]:
    """Train ``model`` and return the best epoch's weights (the last epoch's with
    ``schedule.keep = "last"``) and the history.

    ``x_*`` are ``(N, C, ...)`` float tensors in [0, 1]; normalization is applied per batch.
    ``x_corrupted`` (``(K, N, C, ...)``) holds K copies of ``x_train`` corrupted item by item
    (robustness training): a batch item comes from one of them with probability
    ``recipe.augment.corruption_prob``, and with ``recipe.augment.consistency`` every item
    is also paired with one for the consistency term. ``masks``
    (``(N, 1, H, W)`` box masks of ``x_train``) turn on the auxiliary box loss of
    ``training.localize``, weighted by ``recipe.schedule.box_loss``, and its CAM box
    loss, weighted by ``recipe.schedule.cam_loss``.
    """
    s, spec = recipe.schedule, recipe.input
    gen = torch.Generator().manual_seed(recipe.seed)
    augment = RandomAugment(recipe.augment, gen)
    if recipe.task is Task.MULTILABEL:
        weights = positive_weights(y_train, s.class_weights)
    else:
        weights = class_weights(y_train, len(recipe.labels), s.class_weights)
    yt = torch.as_tensor(y_train)
    ema = moving_average(model, s.ema)
    head = box_head(model, masks, recipe, x_train, log)
    check_extras(recipe, x_corrupted, masks, log)
    params = list(model.parameters()) + ([] if head is None else list(head.parameters()))
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    steps_per_epoch = math.ceil(len(x_train) / s.batch_size)
    total = s.epochs * steps_per_epoch
    warm = max(1, int(s.warmup_epochs * steps_per_epoch))

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    evaluated: CamClassifier = ema.module if ema is not None else model  # type: ignore[assignment]
    best_state, best_key, history, stale = None, (-1.0, 0.0), [], 0
    for epoch in range(1, s.epochs + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        running = 0.0
        for i in range(0, len(order), s.batch_size):
            idx = order[i : i + s.batch_size]
            if len(idx) < 2:
                continue
            xb, view = draw_batch(x_train, x_corrupted, idx, recipe, gen)
            loss = batch_loss(model, head, augment, xb, idx, yt[idx], weights, recipe, view, masks)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            if ema is not None:
                ema.update_parameters(model)
            sched.step()
            running += float(loss.detach()) * len(idx)
        val_logits = predict(evaluated, x_val, spec.mean, spec.std)
        record = EpochRecord(
            epoch,
            running / len(x_train),
            *validation_scores(recipe.task, val_logits, y_val),
            opt.param_groups[0]["lr"],
            time.perf_counter() - start,
        )
        history.append(record)
        log.info(
            "epoch %d/%d train_loss %.4f val_loss %.4f val_auc %.4f val_acc %.4f lr %.2e %.0fs",
            epoch,
            s.epochs,
            record.train_loss,
            record.val_loss,
            record.val_auc,
            record.val_acc,
            record.lr,
            record.seconds,
        )
        key = keep_key(record, s.keep)
        if key > best_key:
            best_key, best_state, stale = key, copy.deepcopy(evaluated.state_dict()), 0
        else:
            stale += 1
            if stale >= s.patience:
                log.info("early stop: no val improvement for %d epochs", stale)
                break
    assert best_state is not None
    if head is not None:
        head.remove()
    model.load_state_dict(best_state)
    model.eval()
    return model, history
