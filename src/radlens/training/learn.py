"""``radlens learn``: fine-tune a model from adjudicated feedback, gate it, store it.

The feedback export (``radlens feedback export MODEL -o DIR``) writes ``DIR/cases.csv``
(columns ``file,label,site,scanner,patient_key,n_readers,agreement,study_key,finding_id``):
``file`` relative to ``DIR`` (a de-identified DICOM file or a PNG/JPEG), ``label`` the
adjudicated class index into the card's ``labels`` (logit order, as
``radlens.io.datasets`` numbers them: a binary card's finding is ``positive_index``),
``patient_key`` a keyed hash of the patient.

One run (:func:`learn`):

1. the locked evaluation set (``radlens.evaluation.gate``) is read, or recorded from the
   recipe's ``val`` split the first time, and checked against the data;
2. cases sharing a patient or an image with it are refused;
3. the cases are split by ``patient_key`` into ``train``, ``tune`` (epoch choice and,
   with an anchor sample of the original data, calibration) and ``heldback`` (the gate)
   shares;
4. the current version is the warm start: its ``state_dict.pt`` when radlens made it,
   otherwise its ONNX weights loaded into the recipe's network (:func:`onnx_state`), which
   must reproduce ONNX Runtime's outputs on real images before anything trains;
5. ``radlens train``'s own code fits it on the ``train`` cases (repeated to
   ``case_share`` of each epoch) plus a replay sample of the recipe's ``train`` split,
   chooses the epoch on the ``tune`` cases, exports, checks parity, calibrates on the
   ``tune`` cases together with an *anchor* sample of the ``train`` split that was not
   replayed (so one calibration serves the site and the original population) and fits
   the OOD score;
6. the gate compares it with the current version on the locked set and the held-back
   cases; its report goes beside the weights, the folder becomes the model's next version
   in the site store, and it is promoted only when the site's policy says so and the gate
   passed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import time
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from radlens.errors import ConfigError, EmptyInputError, InputError, ModelIntegrityError
from radlens.evaluation.evaluate import Evaluation, evaluate, prepare_batch
from radlens.evaluation.gate import (
    GateMargins,
    GateReport,
    LockedSet,
    check_disjoint,
    decide,
    ensure_locked,
    image_sha256,
    report_dict,
    report_markdown,
    split_by_patient,
)
from radlens.inference.backends import OnnxBackend
from radlens.inference.predict import frames_of
from radlens.inference.preprocess import apply_window
from radlens.io.datasets import IMAGE_SUFFIXES, LabelledImages, read_image_file, read_labelled
from radlens.models.card import ModelCard, Task, Training, write_card
from radlens.models.registry import InstalledModel
from radlens.models.versions import (
    VERSION_FILE,
    ModelVersion,
    OnChange,
    Promotion,
    add_version,
    next_version,
    promote,
    write_gate,
)
from radlens.training.export import parity
from radlens.training.nets import CamClassifier, build_net
from radlens.training.recipe import Recipe, recipe_from_dict
from radlens.training.train import (
    _logger,
    draft_card,
    export_checked,
    exported_module,
    finish_card,
    fit_model,
    machine,
)

CASES_FILE = "cases.csv"
CASE_COLUMNS = (
    "file",
    "label",
    "site",
    "scanner",
    "patient_key",
    "n_readers",
    "agreement",
    "study_key",
    "finding_id",
)
STATE_FILE = "state_dict.pt"
"""The torch weights of a learned version, kept beside its ONNX file for the next warm start."""
WARM_START_TOLERANCE = 1e-3
"""Largest |torch - ONNX Runtime| (logits and CAM) a warm start may show before training."""
LEARN_DEFAULTS: dict[str, Any] = {"schedule.epochs": 2}
LR_SCALE = 0.2
"""A fine-tune starts from the recipe's learning rate times this (``--set schedule.lr``)."""

KeyOf = Callable[[str], str | None]


@dataclass(frozen=True)
class LearnOptions:
    """How the cases are used (the schedule is the recipe's, see :func:`learn_recipe`).

    Attributes:
        case_share: the training cases are repeated so they make up about this share of
            the items of each epoch (the rest is replay).
        replay_items: a reproducible sample of the recipe's ``train`` split of at most this
            many items (None: all of it).
        anchor_items: another sample of the ``train`` split, not replayed, that joins the
            tune cases for calibration, so the calibration holds for the original
            population too (the gate checks it on the locked set); 0: none.
        tune, heldback: the shares of patients whose cases choose the epoch and calibrate
            (``tune``) and judge the candidate at the gate (``heldback``).
        locked_fraction: the share of the ``val`` split's patients that make the locked set
            when it is recorded now (1.0: all).
        seed: for the replay sample, the splits and training.
    """

    case_share: float = 0.3
    replay_items: int | None = 2000
    anchor_items: int = 200
    tune: float = 0.25
    heldback: float = 0.25
    locked_fraction: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.case_share < 1:
            raise ConfigError("case_share must lie in (0, 1)")
        if self.tune <= 0 or self.heldback <= 0 or self.tune + self.heldback >= 1:
            raise ConfigError("tune and heldback shares must be positive and sum below 1")


@dataclass(frozen=True, eq=False)
class Cases:
    """Adjudicated feedback cases read from one or more export folders.

    Attributes:
        data: images as stored (PNG/JPEG pixels; DICOM windowed and scaled to 0-255),
            labels (class indices into the card's labels), ids (``folder/file``).
        patient_keys: the keyed patient hash of each case.
        image_sha256: the pixels' hash of each case.
        sites: the ``site`` column of each case ("" when not given).
        folders: per export folder: its path, case count and the sha256 of its
            ``cases.csv`` and of its file list and labels.
    """

    data: LabelledImages
    patient_keys: tuple[str, ...] = field(repr=False)
    image_sha256: tuple[str, ...] = field(repr=False)
    folders: tuple[dict[str, Any], ...] = ()
    sites: tuple[str, ...] = ()

    def subset(self, mask: np.ndarray, split: str) -> LabelledImages:
        rows = np.flatnonzero(mask)
        return replace(
            self.data,
            images=[self.data.images[i] for i in rows],
            labels=self.data.labels[rows],
            ids=tuple(self.data.ids[i] for i in rows),
            split=split,
        )


@dataclass(frozen=True)
class LearnResult:
    """What one ``radlens learn`` made."""

    version: ModelVersion
    card: ModelCard
    report: GateReport
    promotion: Promotion | None
    out_dir: Path
    counts: dict[str, int]


def learn_recipe(path: Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """The recipe of a fine-tune: the model's recipe with ``schedule.epochs`` = 2 and
    ``schedule.lr`` = its own times :data:`LR_SCALE`, then ``overrides`` (``--set``).

    Raises:
        ConfigError: the recipe cannot be read.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read recipe: {exc}; pass --recipe") from exc
    lr = float(raw.get("schedule", {}).get("lr", 2e-3)) * LR_SCALE
    merged = LEARN_DEFAULTS | {"schedule.lr": lr} | (overrides or {})
    return recipe_from_dict(raw, str(path), merged)


def read_cases(folders: Sequence[Path], card: ModelCard) -> Cases:
    """Read the ``cases.csv`` of each export folder (see the module docstring).

    Raises:
        InputError: a folder without ``cases.csv``, a missing column, a label that is not
            a class index of the card, a case without ``patient_key``, an unreadable image.
    """
    images: list[np.ndarray] = []
    labels: list[int] = []
    ids: list[str] = []
    keys: list[str] = []
    sites: list[str] = []
    summaries = []
    for folder in folders:
        table = folder / CASES_FILE
        if not table.is_file():
            raise InputError(folder, f"no {CASES_FILE}; write it with radlens feedback export")
        with table.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [
                c for c in ("file", "label", "patient_key") if c not in (reader.fieldnames or [])
            ]
            if missing:
                raise InputError(
                    table, f"missing column(s) {missing}; expected {list(CASE_COLUMNS)}"
                )
            rows = list(reader)
        if not rows:
            raise EmptyInputError(table, "no cases")
        files, folder_labels = [], []
        for n, row in enumerate(rows, start=2):
            label = _case_label(row["label"], card, table, n)
            key = (row["patient_key"] or "").strip()
            if not key:
                raise InputError(table, f"line {n}: no patient_key; cases are split by patient")
            images.append(read_case_image(folder / row["file"], card))
            labels.append(label)
            ids.append(f"{folder.name}/{row['file']}")
            keys.append(key)
            sites.append((row.get("site") or "").strip())
            files.append(row["file"])
            folder_labels.append(label)
        summaries.append(
            {
                "folder": str(folder),
                "n": len(rows),
                "cases_csv_sha256": hashlib.sha256(table.read_bytes()).hexdigest(),
                "items_sha256": _items_sha256(files, folder_labels),
            }
        )
    data = LabelledImages(
        images,
        np.array(labels, np.int64),
        card.labels,
        tuple(ids),
        ", ".join(map(str, folders)),
        "cases",
    )
    hashes = tuple(image_sha256(i) for i in images)
    return Cases(data, tuple(keys), hashes, tuple(summaries), tuple(sites))


def _items_sha256(files: list[str], labels: list[int]) -> str:
    text = "".join(f"{f}\t{y}\n" for f, y in zip(files, labels, strict=True))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _case_label(text: str, card: ModelCard, table: Path, line: int) -> int:
    try:
        label = int(text)
    except ValueError:
        label = -1
    if not 0 <= label < len(card.labels):
        raise InputError(
            table,
            f"line {line}: label {text!r} is not a class index of {card.name} "
            f"(0-{len(card.labels) - 1}: {', '.join(card.labels)})",
        )
    return label


def read_case_image(path: Path, card: ModelCard) -> np.ndarray:
    """A case's pixels in the form training reads: a PNG/JPEG as stored; a DICOM image
    through radlens's reader (LUTs, MONOCHROME1), its VOI window applied when the card uses
    it, scaled to 0-255 (the percentile scaling that follows ignores the scale).

    Raises:
        InputError: the file is missing or not a readable image.
    """
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return read_image_file(path)
    from radlens.io.load import load_instance
    from radlens.io.scan import scan

    if not path.is_file():
        raise InputError(path, "file not found")
    result = scan([path])
    instances = [i for s in result.studies for se in s.series for i in se.instances]
    if not instances:
        raise InputError(path, "not a readable DICOM or PNG/JPEG image")
    image = load_instance(instances[0])
    frame = np.asarray(frames_of(image)[0].array, np.float32)
    if card.input.use_window and image.window is not None:
        frame = apply_window(frame, image.window)
    low, high = float(frame.min()), float(frame.max())
    scaled: np.ndarray = (frame - low) / max(high - low, 1e-6) * 255.0
    return scaled.astype(np.float32)


# --- warm start ---------------------------------------------------------------------------


def onnx_state(net: CamClassifier, onnx_path: Path, probe: torch.Tensor) -> dict[str, torch.Tensor]:
    """Weights for ``net`` from an exported ONNX graph of the same network.

    The exporter folds each batch norm into the convolution before it, so the ONNX file holds
    one weight and one bias per convolution. They are matched to the network's convolutions
    in the order they run (checked shape by shape); each batch norm becomes the identity
    plus that bias in eval mode, re-parameterised with the per-channel mean and variance of
    its input over ``probe`` (normalized model inputs), so that in training mode, where
    batch statistics are used, it starts close to the same function. The linear head is
    matched by name (weight) and size (the bias the CAM adds).

    Raises:
        ConfigError: the graph does not have the network's structure (another recipe).
    """
    import onnx

    from radlens.training.half_weights import weight_values

    graph = onnx.load(str(onnx_path)).graph
    values = weight_values(graph)
    conv_inputs: list[tuple[str, str | None]] = []
    for node in graph.node:
        if node.op_type == "Conv" and node.input[1] not in [w for w, _ in conv_inputs]:
            conv_inputs.append((node.input[1], node.input[2] if len(node.input) > 2 else None))
    pairs = _conv_bn_pairs(net, probe[:1])
    if len(pairs) != len(conv_inputs):
        raise ConfigError(
            f"{onnx_path}: {len(conv_inputs)} convolutions in the graph, {len(pairs)} in the "
            "recipe's network; pass the recipe the model was trained with (--recipe)"
        )
    biases: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for (name, conv, bn), (w_name, b_name) in zip(pairs, conv_inputs, strict=True):
            weight = torch.from_numpy(values[w_name].copy())
            if weight.shape != conv.weight.shape:
                raise ConfigError(
                    f"{onnx_path}: convolution {name} is {tuple(conv.weight.shape)} in the "
                    f"recipe, {tuple(weight.shape)} in the graph; pass the model's recipe"
                )
            conv.weight.copy_(weight)
            bias = (
                torch.from_numpy(values[b_name].copy()) if b_name else torch.zeros(weight.shape[0])
            )
            if bn is None:
                if conv.bias is None:
                    raise ConfigError(f"{onnx_path}: {name} has a bias the recipe's net lacks")
                conv.bias.copy_(bias)
                continue
            biases[name] = bias
            if conv.bias is not None:
                conv.bias.zero_()  # folded into the graph's bias with the norm
            bn.weight.fill_(1.0)
            bn.bias.copy_(bias)
            bn.running_mean.zero_()  # type: ignore[union-attr]
            bn.running_var.fill_(1.0 - bn.eps)  # type: ignore[union-attr]
        _load_head(net, values, onnx_path)
        _reparameterise_norms(net, pairs, biases, probe)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _conv_bn_pairs(
    net: nn.Module, x: torch.Tensor
) -> list[tuple[str, nn.Conv2d | nn.Conv3d, nn.BatchNorm2d | nn.BatchNorm3d | None]]:
    """Each convolution in the order it runs, with the batch norm that runs right after it."""
    names = {module: name for name, module in net.named_modules()}
    calls: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda mod, _i, _o: calls.append(mod))
        for m in net.modules()
        if isinstance(m, nn.Conv2d | nn.Conv3d | nn.BatchNorm2d | nn.BatchNorm3d)
    ]
    try:
        net.eval()
        with torch.no_grad():
            net(x)
    finally:
        for hook in hooks:
            hook.remove()
    pairs: list[tuple[str, Any, Any]] = []
    for k, module in enumerate(calls):
        if isinstance(module, nn.Conv2d | nn.Conv3d) and module not in [p[1] for p in pairs]:
            after = calls[k + 1] if k + 1 < len(calls) else None
            norm = after if isinstance(after, nn.BatchNorm2d | nn.BatchNorm3d) else None
            pairs.append((names[module], module, norm))
    return pairs


def _load_head(net: nn.Module, values: dict[str, np.ndarray], onnx_path: Path) -> None:
    fc: nn.Linear = net.fc  # type: ignore[assignment]
    weight = values.get("fc.weight")
    if weight is None or weight.shape != tuple(fc.weight.shape):
        raise ConfigError(f"{onnx_path}: no fc.weight of shape {tuple(fc.weight.shape)}")
    fc.weight.copy_(torch.from_numpy(weight.copy()))
    n = fc.out_features
    candidates = [v for k, v in values.items() if k.startswith("onnx::Add") and v.size == n]
    if "fc.bias" in values:
        candidates = [values["fc.bias"]]
    if len(candidates) != 1:
        raise ConfigError(
            f"{onnx_path}: cannot tell the head's bias ({len(candidates)} candidates)"
        )
    fc.bias.copy_(torch.from_numpy(candidates[0].reshape(n).copy()))


def _reparameterise_norms(
    net: nn.Module,
    pairs: list[tuple[str, Any, Any]],
    biases: dict[str, torch.Tensor],
    probe: torch.Tensor,
) -> None:
    """Give each batch norm the statistics of its input over ``probe`` without changing the
    eval-mode function: mean m, variance v, scale sqrt(v + eps) and shift bias + m."""
    stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    dims: dict[str, list[int]] = {}

    def keep(name: str) -> Callable[..., None]:
        def hook(_m: nn.Module, _i: Any, out: torch.Tensor) -> None:
            axes = [0, *range(2, out.dim())]
            dims[name] = axes
            stats[name] = (out.mean(dim=axes), out.var(dim=axes, unbiased=False))

        return hook

    hooks = [conv.register_forward_hook(keep(name)) for name, conv, bn in pairs if bn is not None]
    try:
        net.eval()
        net(probe)
    finally:
        for hook in hooks:
            hook.remove()
    for name, _conv, bn in pairs:
        if bn is None:
            continue
        mean, var = stats[name]
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.weight.copy_(torch.sqrt(var + bn.eps))
        bn.bias.copy_(biases[name] + mean)


def warm_start(
    parent: InstalledModel, recipe: Recipe, probe: torch.Tensor, log: logging.Logger
) -> dict[str, torch.Tensor]:
    """The current version's weights as a state dict for the recipe's network, checked:
    torch must give what ONNX Runtime gives on ``probe`` (normalized inputs).

    Raises:
        ConfigError: an ensemble recipe, or weights that do not fit the recipe's network.
        ModelIntegrityError: torch and ONNX Runtime disagree beyond
            :data:`WARM_START_TOLERANCE`: the warm start is refused.
    """
    if recipe.schedule.ensemble != 1 or recipe.task not in (
        Task.BINARY,
        Task.MULTICLASS,
        Task.ORDINAL,
        Task.MULTILABEL,
    ):
        raise ConfigError(
            f"{recipe.name}: radlens learn fine-tunes single classification networks; "
            f"this recipe has ensemble={recipe.schedule.ensemble}, task {recipe.task.value}"
        )
    net = build_net(recipe.net, recipe.input.channels, len(recipe.labels), recipe.input.dims)
    state_path = parent.folder / STATE_FILE
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        how = f"{STATE_FILE} of version {parent.card.version}"
    else:
        state = onnx_state(net, parent.weights, probe)
        how = f"ONNX initializers of {parent.card.version} (batch norms folded, re-estimated)"
    diff = parity(exported_module(net, recipe), parent.weights, probe[:16])
    log.info("warm start from %s: max |torch - onnxruntime| = %.2e", how, diff)
    if not diff <= WARM_START_TOLERANCE:
        raise ModelIntegrityError(
            f"{parent.card.name} {parent.card.version}: the warm start differs from ONNX Runtime "
            f"by {diff:.2e} (> {WARM_START_TOLERANCE:g}); check the recipe matches the model"
        )
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def transfer_state(
    source: InstalledModel, recipe: Recipe, probe: torch.Tensor, log: logging.Logger
) -> dict[str, torch.Tensor]:
    """The trunk weights of another shipped model, to start the recipe's network from.

    ``source`` must have the recipe's trunk (the same ``net`` section; its class count may
    differ): its ONNX weights are read as :func:`onnx_state` reads them, with the batch
    norms re-estimated on ``probe`` (normalized inputs of the new task), and only the
    ``trunk.`` entries are returned, so the head starts from the seed.

    Raises:
        ConfigError: ``source`` does not have the recipe's trunk.
    """
    if source.card.input.channels != recipe.input.channels or source.card.input.dims != 2:
        raise ConfigError(
            f"net.init {source.card.name!r}: needs a 2D model with {recipe.input.channels} "
            "input channel(s)"
        )
    net = build_net(recipe.net, recipe.input.channels, len(source.card.labels), 2)
    try:
        state = onnx_state(net, source.weights, probe)
    except ConfigError as err:
        raise ConfigError(
            f"net.init {source.card.name!r}: its network is not the recipe's ({err})"
        ) from err
    trunk = {k: v.detach().clone() for k, v in state.items() if k.startswith("trunk.")}
    log.info(
        "transfer: trunk of %s %s (%d tensors; batch norms re-estimated on %d train images)",
        source.card.name,
        source.card.version,
        len(trunk),
        len(probe),
    )
    return trunk


# --- the run ------------------------------------------------------------------------------


def learn(
    parent: InstalledModel,
    recipe: Recipe,
    case_folders: Sequence[Path],
    out_dir: Path,
    store: Path,
    key_of: KeyOf,
    *,
    options: LearnOptions | None = None,
    margins: GateMargins | None = None,
    data_path: Path | None = None,
    command: str = "",
    auto_promote: bool = False,
    promoted_by: str = "",
    on_change: OnChange | None = None,
) -> LearnResult:
    """Fine-tune ``parent`` (the active version) from feedback cases; see the module docstring.

    Example:
        >>> result = learn(active, read_recipe(path), [Path("export")], Path("cand"),
        ...                store, key_of)  # doctest: +SKIP
        >>> result.report.passed, result.version.number  # doctest: +SKIP
        (True, 2)

    Raises:
        InputError: bad cases, too few cases in a share, or cases of locked-set patients.
        ConfigError: a recipe that is not the model's.
        ModelIntegrityError: the warm start does not reproduce the current version.
    """
    options = options or LearnOptions()
    margins = margins or GateMargins()
    if recipe.name != parent.card.name or tuple(recipe.labels) != parent.card.labels:
        raise ConfigError(
            f"recipe {recipe.source} is for {recipe.name} {list(recipe.labels)}, not "
            f"{parent.card.name} {list(parent.card.labels)}; pass the model's recipe"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    log = _logger(out_dir / "learn.log")
    try:
        return _learn(
            parent, recipe, case_folders, out_dir, store, key_of, options, margins,
            data_path, command, auto_promote, promoted_by, on_change, log,
        )  # fmt: skip
    finally:
        for handler in log.handlers:
            handler.close()
        log.handlers.clear()


def _learn(
    parent: InstalledModel,
    recipe: Recipe,
    case_folders: Sequence[Path],
    out_dir: Path,
    store: Path,
    key_of: KeyOf,
    options: LearnOptions,
    margins: GateMargins,
    data_path: Path | None,
    command: str,
    auto_promote: bool,
    promoted_by: str,
    on_change: OnChange | None,
    log: logging.Logger,
) -> LearnResult:
    started = time.perf_counter()
    torch.manual_seed(options.seed)
    torch.set_num_threads(recipe.schedule.threads)
    source = data_path or Path(recipe.data)
    card = parent.card
    number = next_version(store, card.name)
    version = f"{card.version.split('+')[0]}+site.{number}"
    recipe = replace(recipe, version=version, seed=options.seed)
    log.info("learn %s: %s -> %s (store version %d)", card.name, card.version, version, number)
    locked, locked_data = ensure_locked(
        store, card, source, recipe.data, key_of, options.locked_fraction, options.seed
    )
    log.info(
        "locked set: %d items of %s val, sha256 %s", len(locked_data), recipe.data, locked.sha256
    )
    cases = read_cases(case_folders, card)
    check_disjoint(locked, cases.patient_keys, cases.image_sha256, cases.data.source)
    parts = split_by_patient(cases.patient_keys, options.tune, options.heldback, options.seed)
    train_cases = cases.subset(parts == "train", "cases-train")
    tune_cases = cases.subset(parts == "tune", "cases-tune")
    heldback = cases.subset(parts == "heldback", "cases-heldback")
    _enough(cases.data.source, train_cases, tune_cases, heldback)
    replay, anchor = _replay(source, card, options)
    repeats = max(
        1, round(options.case_share / (1 - options.case_share) * len(replay) / len(train_cases))
    )
    train_set = _concat(replay, [train_cases] * repeats)
    calibration_set = _concat(tune_cases, [anchor]) if len(anchor) else tune_cases
    counts = {
        "replay": len(replay),
        "calibration_anchor": len(anchor),
        "cases": len(cases.data),
        "cases_train": len(train_cases),
        "cases_tune": len(tune_cases),
        "cases_heldback": len(heldback),
        "case_repeats": repeats,
        "locked": len(locked_data),
    }
    log.info(
        "data: %s; train %s, tune %s, calibration %s",
        counts,
        train_set.class_counts(),
        tune_cases.class_counts(),
        calibration_set.class_counts(),
    )

    probe_items = replay.sample(256, options.seed)
    probe = torch.from_numpy(prepare_batch(card, probe_items.images))
    state = warm_start(parent, recipe, probe, log)
    model, x_tune = fit_model(recipe, train_set, tune_cases, log, state)
    export_checked(model, recipe, x_tune, out_dir, log)
    torch.save(model.state_dict(), out_dir / STATE_FILE)
    minutes = (time.perf_counter() - started) / 60
    digest = hashlib.sha256("".join(f["items_sha256"] for f in cases.folders).encode()).hexdigest()
    training = Training(
        command=command,
        data=(
            f"{recipe.data} (train split {len(replay)} replayed) + {len(train_cases)} "
            f"adjudicated cases x{repeats} of {len(cases.data)} (cases sha256 {digest[:16]})"
        ),
        licence=card.training.licence,
        commercial_use=card.training.commercial_use,
        citation=card.training.citation,
        recipe=recipe.source,
        seed=options.seed,
        duration_min=round(minutes, 1),
        machine=machine(),
        log="learn.log",
    )
    draft = replace(
        draft_card(recipe, out_dir / "model.onnx", training),
        enabled_by_default=card.enabled_by_default,
        limitations=(
            *recipe.limitations,
            f"Fine-tuned by radlens learn from {card.version} on {len(train_cases)} adjudicated "
            f"feedback cases of one site ({', '.join(sorted(set(cases.sites))) or 'site'}); "
            "see its gate report for what the locked evaluation set showed.",
        ),
    )
    candidate, _ = finish_card(draft, out_dir, calibration_set, recipe, source, log)

    report, figures = _gate(
        candidate, parent, out_dir, locked, locked_data, heldback, cases.data, margins, recipe
    )
    log.info("gate: %s", "passed" if report.passed else "FAILED")
    for check in report.checks:
        log.info("  %s: %s, %s", check.name, "pass" if check.passed else "FAIL", check.detail)
    calibration_figures = candidate.metrics["val"]
    candidate = replace(candidate, metrics={"calibration": calibration_figures, **figures})
    write_card(candidate, out_dir / "card.json")
    (out_dir / "gate.md").write_text(report_markdown(report), "utf-8")
    write_gate(out_dir, report_dict(report))
    lineage = {
        "number": number,
        "parent": _parent_number(parent),
        "parent_card_version": card.version,
        "cases": list(cases.folders),
        "cases_sha256": digest,
        "counts": counts,
        "locked_sha256": locked.sha256,
        "recipe": recipe.source,
        "options": options.__dict__,
        "gate_passed": report.passed,
        "diff": {k: v for k, v in figures.items() if k.startswith("diff_")},
    }
    (out_dir / VERSION_FILE).write_text(json.dumps(lineage, indent=2, sort_keys=True) + "\n")
    stored = add_version(store, out_dir, lineage)
    log.info("stored as version %d in %s", stored.number, stored.folder)
    promotion = None
    if auto_promote and report.passed:
        promotion = promote(
            store, card.name, stored.number, by=promoted_by or "site policy", automatic=True,
            on_change=on_change,
        )  # fmt: skip
        log.info("promoted by site policy: %s", promotion.describe())
    return LearnResult(stored, candidate, report, promotion, out_dir, counts)


def _gate(
    candidate: ModelCard,
    parent: InstalledModel,
    out_dir: Path,
    locked: LockedSet,
    locked_data: LabelledImages,
    heldback: LabelledImages,
    all_cases: LabelledImages,
    margins: GateMargins,
    recipe: Recipe,
) -> tuple[GateReport, dict[str, dict[str, float]]]:
    threads = recipe.schedule.threads
    new = OnnxBackend(out_dir / candidate.weights_file, threads=threads)
    old = OnnxBackend(parent.weights, threads=threads)
    evals: dict[str, Evaluation] = {
        "locked": evaluate(candidate, new, locked_data),
        "locked_parent": evaluate(parent.card, old, locked_data),
        "heldback": evaluate(candidate, new, heldback),
        "heldback_parent": evaluate(parent.card, old, heldback),
        "cases_parent": evaluate(parent.card, old, all_cases),
    }
    report = decide(
        evals["locked"], evals["locked_parent"], evals["heldback"], evals["heldback_parent"],
        margins, locked.sha256, current_cases=evals["cases_parent"],
    )  # fmt: skip
    figures = {k: _rounded(e) for k, e in evals.items()}
    for where in ("locked", "heldback"):
        figures[f"diff_{where}"] = {
            k: round(figures[where][k] - figures[f"{where}_parent"][k], 6)
            for k in ("auc", "ece", "nll", "acc")
            if not (math.isnan(figures[where][k]) or math.isnan(figures[f"{where}_parent"][k]))
        }
    return report, figures


def _rounded(evaluation: Evaluation) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in evaluation.metrics.items()} | {"n": evaluation.n}


def _parent_number(parent: InstalledModel) -> int | None:
    name = parent.folder.name
    return int(name) if name.isdigit() else None


def _enough(
    where: str, train: LabelledImages, tune: LabelledImages, heldback: LabelledImages
) -> None:
    for part in (train, tune, heldback):
        if len(part) == 0:
            raise InputError(
                where,
                f"no cases fell in the {part.split.removeprefix('cases-')} share (split by "
                "patient); give more cases or change --tune / --heldback",
            )
    if not tune.multilabel and len(np.unique(tune.labels)) < 2:
        raise InputError(
            where,
            f"the tune share ({len(tune)} cases) holds one class only; calibration needs "
            "both: give more cases or a larger --tune",
        )


def _replay(
    source: Path, card: ModelCard, options: LearnOptions
) -> tuple[LabelledImages, LabelledImages]:
    """A reproducible sample of the original ``train`` split to replay, and a disjoint one
    (``anchor_items``) that joins the tune cases for calibration."""
    train = read_labelled(source, "train", card.labels, card.task is Task.MULTILABEL)
    order = np.random.default_rng(options.seed).permutation(len(train))
    n_anchor = min(options.anchor_items, len(train) // 4)
    n_replay = min(options.replay_items or len(train), len(train) - n_anchor)
    picks = (np.sort(order[:n_replay]), np.sort(order[n_replay : n_replay + n_anchor]))
    replay, anchor = (
        replace(
            train,
            images=[train.images[i] for i in rows],
            labels=train.labels[rows],
            ids=tuple(train.ids[i] for i in rows),
            split=split,
        )
        for rows, split in zip(picks, ("replay", "anchor"), strict=True)
    )
    return replay, anchor


def _concat(first: LabelledImages, more: Sequence[LabelledImages]) -> LabelledImages:
    parts = [first, *more]
    return replace(
        first,
        images=[image for part in parts for image in part.images],
        labels=np.concatenate([part.labels for part in parts]),
        ids=tuple(i for part in parts for i in part.ids),
        split="learn",
    )
