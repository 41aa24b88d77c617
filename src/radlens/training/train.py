"""``train``: recipe in, model folder out (``model.onnx`` + ``card.json`` + ``train.log``).

Steps: read the labelled data, preprocess it with the inference code
(``radlens.inference.preprocess.prepare_2d``), fit, export to ONNX, then calibrate, choose
thresholds and measure validation metrics *through ONNX Runtime* with the same function
``radlens evaluate`` uses, so the card's figures are what a user reproduces. Calibration and
thresholds are :func:`radlens.evaluation.calibration.calibrate_card`, which
``radlens calibrate`` reruns on a trained model.

A multi-label recipe is calibrated with one temperature shared by the sigmoids of all its
labels; its thresholds are ``operating`` = 0.5 (every label) and, for reference, each
label's Youden threshold on validation as ``youden:<label>``.
"""

from __future__ import annotations

import logging
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from radlens.errors import ConfigError
from radlens.evaluation.calibration import calibrate_card, describe
from radlens.evaluation.evaluate import Evaluation, predict_logits
from radlens.inference.backends import OnnxBackend
from radlens.inference.preprocess import prepare
from radlens.io.datasets import LabelledImages, read_labelled
from radlens.models.card import Calibration, ModelCard, Task, Training, read_card, write_card
from radlens.models.registry import sha256_of
from radlens.training.augment import corrupted_copies
from radlens.training.deblur import describe_calibration, fit_deblur
from radlens.training.denoise import fit_denoise
from radlens.training.export import export_onnx, parity
from radlens.training.localize import read_box_masks
from radlens.training.loop import fit, keep_key
from radlens.training.members import run_members
from radlens.training.nets import FlipAverage, MeanEnsemble, build_net, tta_flips
from radlens.training.ood import fit_ood
from radlens.training.recipe import Recipe

PARITY_TOLERANCE = 1e-4


def to_tensor(data: LabelledImages, recipe: Recipe) -> torch.Tensor:
    """Preprocess every image as inference does, back in [0, 1] for augmentation."""
    spec = recipe.input
    arrays = [prepare(img, spec) * spec.std + spec.mean for img in data.images]
    return torch.from_numpy(np.stack(arrays).astype(np.float32))


def training_record(
    recipe: Recipe, command: str | None, n_train: int, n_val: int, minutes: float
) -> Training:
    """The card's ``training`` section: how, on what and where the weights were made."""
    return Training(
        command=command or shlex.join(["radlens", "train", recipe.source]),
        data=f"{recipe.data} (train split {n_train}, val split {n_val})",
        licence=recipe.licence,
        commercial_use=recipe.commercial_use,
        citation=recipe.citation,
        recipe=recipe.source,
        seed=recipe.seed,
        duration_min=round(minutes, 1),
        machine=machine(),
        log="train.log",
    )


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}, {platform.system()}"
    )


def _logger(path: Path) -> logging.Logger:
    log = logging.getLogger(f"radlens.training.{path.parent.name}")
    log.setLevel(logging.INFO)
    log.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    for handler in (logging.FileHandler(path, mode="w"), logging.StreamHandler(sys.stderr)):
        handler.setFormatter(fmt)
        log.addHandler(handler)
    log.propagate = False
    return log


def train(
    recipe: Recipe,
    out_dir: Path,
    data_path: Path | None = None,
    command: str | None = None,
    members: Sequence[Path] | None = None,
) -> tuple[ModelCard, Evaluation]:
    """Train the recipe's model into ``out_dir`` and return its card and val evaluation.

    ``members``: for a segmentation ensemble (``schedule.member_sizes``), already trained
    members' ONNX files to compose instead of training them.
    """
    if members and (recipe.task is not Task.SEGMENTATION or not recipe.schedule.member_sizes):
        raise ConfigError(
            f"{recipe.source}: trained members are for segmentation recipes with "
            "schedule.member_sizes"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    log = _logger(out_dir / "train.log")
    try:
        return _train(recipe, out_dir, data_path, command, log, members)
    finally:
        for handler in log.handlers:
            handler.close()
        log.handlers.clear()


def _train(
    recipe: Recipe,
    out_dir: Path,
    data_path: Path | None,
    command: str | None,
    log: logging.Logger,
    members: Sequence[Path] | None = None,
) -> tuple[ModelCard, Evaluation]:
    if recipe.task is Task.SEGMENTATION:
        from radlens.training.segment import train_segmentation

        return train_segmentation(recipe, out_dir, data_path, command, log, members)
    if recipe.task is Task.DETECTION:
        from radlens.training.detection import train_detection

        return train_detection(recipe, out_dir, data_path, command, log)  # type: ignore[return-value]
    started = time.perf_counter()
    torch.manual_seed(recipe.seed)
    torch.set_num_threads(recipe.schedule.threads)
    source = data_path or Path(recipe.data)
    log.info("recipe %s (%s), data %s", recipe.name, recipe.source, source)
    multilabel = recipe.task is Task.MULTILABEL
    train_set = read_labelled(source, "train", recipe.labels, multilabel)
    val_set = read_labelled(source, "val", recipe.labels, multilabel)
    if recipe.schedule.max_train_items:
        train_set = train_set.sample(recipe.schedule.max_train_items, recipe.seed)
    log.info("train %s, val %s", train_set.class_counts(), val_set.class_counts())
    masks = None
    if recipe.needs_box_masks:
        masks = read_box_masks(source, train_set, recipe.input)
        boxed = int((masks.flatten(1).amax(1) > 0).sum())
        log.info("box masks: %d of %d train images have boxes", boxed, len(masks))
    initial_state = None
    if recipe.net.init:
        initial_state = transferred(recipe, train_set, log)
    elif recipe.net.start:
        initial_state = started_from(recipe, train_set, log)
    model, x_val = fit_model(recipe, train_set, val_set, log, initial_state, masks)
    onnx_path = export_checked(model, recipe, x_val, out_dir, log)
    minutes = (time.perf_counter() - started) / 60
    training = training_record(recipe, command, len(train_set), len(val_set), minutes)
    card = draft_card(recipe, onnx_path, training)
    card, evaluation = finish_card(card, out_dir, val_set, recipe, source, log)
    log.info("done in %.1f min", minutes)
    return card, evaluation


def transferred(
    recipe: Recipe, train_set: LabelledImages, log: logging.Logger
) -> dict[str, torch.Tensor]:
    """The trunk of the shipped model ``recipe.net.init`` (see ``learn.transfer_state``)."""
    from radlens.models.registry import discover, get_model
    from radlens.training.learn import transfer_state

    source = get_model(recipe.net.init, discover(include_disabled=True))
    return transfer_state(source, recipe, _probe(recipe, train_set), log)


def _probe(recipe: Recipe, train_set: LabelledImages) -> torch.Tensor:
    """Up to 256 train images as the network reads them (normalized), on which a start from
    another model's weights re-estimates batch norms and checks parity."""
    probe_set = train_set.sample(min(256, len(train_set)), recipe.seed)
    spec = recipe.input
    return (to_tensor(probe_set, recipe) - spec.mean) / spec.std


def started_from(
    recipe: Recipe, train_set: LabelledImages, log: logging.Logger
) -> dict[str, torch.Tensor]:
    """The whole weights of the trained model folder ``recipe.net.start``, to fine-tune (see
    ``learn.warm_start``: its torch weights must give what its ONNX Runtime file gives).

    Raises:
        ConfigError: the folder holds no model, or a model of other labels or another task.
        ModelIntegrityError: the weights loaded into the recipe's network do not reproduce it.
    """
    from radlens.models.registry import load_model
    from radlens.training.learn import warm_start

    folder = Path(recipe.net.start)
    if not (folder / "card.json").is_file():
        raise ConfigError(f"net.start {str(folder)!r}: no trained model there (no card.json)")
    parent = load_model(folder)
    card = parent.card
    if tuple(card.labels) != tuple(recipe.labels) or card.task is not recipe.task:
        raise ConfigError(
            f"net.start {str(folder)!r} is a {card.task.value} model of {list(card.labels)}, "
            f"not of this recipe's {recipe.task.value} {list(recipe.labels)}"
        )
    return warm_start(parent, recipe, _probe(recipe, train_set), log)


@dataclass(frozen=True)
class MemberData:
    """What every ensemble member trains on (the same tensors for each)."""

    x_train: torch.Tensor
    y_train: np.ndarray
    x_val: torch.Tensor
    y_val: np.ndarray
    x_corrupted: torch.Tensor | None
    masks: torch.Tensor | None


def train_member(
    recipe: Recipe,
    member: int,
    data: MemberData,
    initial_state: dict[str, torch.Tensor] | None,
    log: logging.Logger,
) -> torch.nn.Module:
    """Fit ensemble member ``member``: the recipe with seed ``seed + member`` (member 0 is
    the plain recipe), its torch random state set from that seed first, so a member is the
    same network whichever process trains it and whatever trained before it."""
    member_recipe = replace(recipe, seed=recipe.seed + member)
    torch.manual_seed(member_recipe.seed)
    net = build_net(recipe.net, recipe.input.channels, len(recipe.labels), recipe.input.dims)
    if initial_state is not None:
        # A transferred trunk leaves the head as the seed made it.
        net.load_state_dict({**net.state_dict(), **initial_state})
    log.info(
        "member %d/%d: net %s, %d parameters, input %s, seed %d%s",
        member + 1,
        recipe.schedule.ensemble,
        recipe.net,
        sum(p.numel() for p in net.parameters()),
        tuple(data.x_train.shape[1:]),
        member_recipe.seed,
        "" if initial_state is None else ", warm start",
    )
    net, history = fit(
        net,
        member_recipe,
        data.x_train,
        data.y_train,
        data.x_val,
        data.y_val,
        log,
        data.x_corrupted,
        data.masks,
    )
    keep = member_recipe.schedule.keep
    kept = max(history, key=lambda record: keep_key(record, keep))
    what = "best epoch" if keep == "best" else "kept the last epoch"
    log.info("%s %d (val_auc %.4f)", what, kept.epoch, kept.val_auc)
    return net


def fit_model(
    recipe: Recipe,
    train_set: LabelledImages,
    val_set: LabelledImages,
    log: logging.Logger,
    initial_state: dict[str, torch.Tensor] | None = None,
    masks: torch.Tensor | None = None,
) -> tuple[torch.nn.Module, torch.Tensor]:
    """Fit the recipe's network (every ensemble member) and return it with the val tensor.

    ``initial_state`` starts each member from those weights instead of the seed's random
    ones (``radlens learn`` fine-tunes a model this way). ``masks`` are the train images'
    box masks for the auxiliary box loss and the CAM box loss (``schedule.box_loss``,
    ``schedule.cam_loss``).
    """
    x_train, x_val = to_tensor(train_set, recipe), to_tensor(val_set, recipe)
    x_corrupted = None
    if recipe.augment.corrupts:  # the recipe refuses it outside 2D classifiers
        copies = corrupted_copies(train_set.images, recipe.augment, recipe.seed)
        tensors = [to_tensor(replace(train_set, images=copy), recipe) for copy in copies]
        x_corrupted = tensors[0][None] if len(tensors) == 1 else torch.stack(tensors)
        del tensors
        log.info(
            "robustness training: %s (%s) at severities %s; %d corrupted cop%s per image, "
            "p=%.2f per item, consistency weight %g%s",
            ", ".join(recipe.augment.corruptions),
            recipe.augment.corruption_table,
            ", ".join(str(v) for v in recipe.augment.corruption_severities),
            len(copies),
            "y" if len(copies) == 1 else "ies",
            recipe.augment.corruption_prob,
            recipe.augment.consistency,
            " (anchored on the clean prediction)" if recipe.augment.consistency_anchor else "",
        )
    data = MemberData(x_train, train_set.labels, x_val, val_set.labels, x_corrupted, masks)
    members = run_members(
        recipe,
        train_member,
        (data, initial_state),
        lambda: build_net(recipe.net, recipe.input.channels, len(recipe.labels), recipe.input.dims),
        log,
    )
    model: torch.nn.Module = members[0] if len(members) == 1 else MeanEnsemble(members).eval()
    return model, x_val


def exported_module(model: torch.nn.Module, recipe: Recipe) -> torch.nn.Module:
    """What goes into the ONNX graph: the model, or its mirror-image average (``tta``)."""
    if not recipe.schedule.tta:
        return model
    flips = tta_flips(recipe.augment.hflip, recipe.augment.flip_axes, recipe.input.dims)
    return FlipAverage(model, flips).eval()


def export_checked(
    model: torch.nn.Module, recipe: Recipe, x_val: torch.Tensor, out_dir: Path, log: logging.Logger
) -> Path:
    """Export ``model`` to ``out_dir/model.onnx`` and check ONNX Runtime agrees with torch.

    Raises:
        RuntimeError: the exported graph differs from torch by more than the tolerance.
    """
    onnx_path = out_dir / "model.onnx"
    example = (x_val[:4] - recipe.input.mean) / recipe.input.std
    exported = exported_module(model, recipe)
    if recipe.schedule.tta:
        flips = tta_flips(recipe.augment.hflip, recipe.augment.flip_axes, recipe.input.dims)
        log.info("test-time augmentation in the graph: mean over identity and flips %s", flips)
    export_onnx(exported, example, onnx_path)
    diff = parity(exported, onnx_path, example)
    log.info("onnx parity: max |torch - onnxruntime| = %.2e", diff)
    if diff > PARITY_TOLERANCE:
        raise RuntimeError(f"ONNX export differs from torch by {diff:.2e}")
    if recipe.net.weights == "float16":
        store_half(exported, example, onnx_path, log)
    return onnx_path


def store_half(
    model: torch.nn.Module, example: torch.Tensor, path: Path, log: logging.Logger
) -> None:
    """Store the exported weights as float16 (``net.weights = "float16"``) and check the
    logits and CAM against torch again, relative to their scale."""
    from radlens.training.half_weights import halve_checked

    with torch.no_grad():
        logits, cam = model(example)
    halve_checked(path, example.numpy(), {"logits": logits.numpy(), "cam": cam.numpy()}, log)


def draft_card(recipe: Recipe, onnx_path: Path, training: Training) -> ModelCard:
    """The card of freshly exported weights, before calibration and validation metrics."""
    return ModelCard(
        name=recipe.name,
        version=recipe.version,
        task=recipe.task,
        labels=recipe.labels,
        finding_code=recipe.finding_code,
        finding_label=recipe.finding_label,
        input=recipe.input,
        applies_to=recipe.applies_to,
        calibration=Calibration(),
        thresholds={"operating": 0.5},
        metrics={},
        training=training,
        intended_use=recipe.intended_use,
        limitations=recipe.limitations,
        sha256=sha256_of(onnx_path),
        enabled_by_default=recipe.commercial_use and recipe.enabled_by_default is not False,
        positive_index=recipe.positive_index,
        triage_min_grade=recipe.triage_min_grade,
        grade_rule=recipe.grade_rule,
    )


def finish_card(
    card: ModelCard,
    out_dir: Path,
    val_set: LabelledImages,
    recipe: Recipe,
    source: Path,
    log: logging.Logger,
) -> tuple[ModelCard, Evaluation]:
    """Fit the denoising thresholds and the deblurring trigger when the recipe asks for them
    (``input.denoise``, ``input.deblur``), calibrate on ``val_set`` through ONNX Runtime,
    write ``card.json``, fit the OOD score on
    ``source`` and return the card as written and the ``val_set`` evaluation."""
    if card.input.denoise is not None and not card.input.denoise.fitted:
        fit = fit_denoise(card, source, card.input.denoise.median)
        card = replace(card, input=replace(card.input, denoise=fit.spec))
        log.info(
            "denoise: %d x %d median filter above noise %.6f or impulses %.4f (train maxima); "
            "%.1f%% of val filtered",
            fit.spec.median,
            fit.spec.median,
            fit.spec.noise_above,
            fit.spec.impulse_above,
            100 * (fit.spec.val_filtered or 0.0),
        )
    if card.input.deblur is not None and not card.input.deblur.fitted:
        wanted = card.input.deblur
        blur = fit_deblur(card, source, wanted.factor, wanted.wiener_k)
        card = replace(card, input=replace(card.input, deblur=blur.spec))
        log.info(
            "deblur: Wiener deconvolution (k %g) at blur %.4f px and above (%g x the train "
            "maximum %.6f; %s); %.1f%% of val deblurred",
            blur.spec.wiener_k,
            blur.spec.trigger,
            blur.spec.factor,
            blur.spec.blur_max,
            describe_calibration(blur.spec),
            100 * (blur.spec.val_deblurred or 0.0),
        )
    backend = OnnxBackend(out_dir / card.weights_file, threads=recipe.schedule.threads)
    logits = predict_logits(card, backend, val_set)
    card, evaluation = calibrate_card(card, logits, val_set.labels, recipe.high_sensitivity)
    write_card(card, out_dir / "card.json")
    log.info("calibration %s, thresholds %s", describe(card.calibration), card.thresholds)
    log.info("val metrics (onnxruntime): %s", card.metrics["val"])
    ood = fit_ood(out_dir, source, threads=recipe.schedule.threads)
    log.info(
        "out-of-distribution score: %d features, threshold %.3f flags %.1f%% of val",
        ood.feature_dim,
        ood.threshold,
        100 * ood.val_flag_rate,
    )
    return read_card(out_dir / "card.json"), evaluation
