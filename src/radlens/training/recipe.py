"""Training recipes: one TOML file per shipped model, read into a frozen ``Recipe``.

A recipe holds every choice that shaped a model (data, network, schedule, augmentation,
routing rule, intended use), so changing a hyper-parameter is a one-line diff in
``recipes/<name>.toml``, never a subclass.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radlens.errors import ConfigError
from radlens.evaluation.corruptions import RADLENS, SEVERITIES, kinds_in
from radlens.models.card import AppliesTo, DetectionSpec, InputSpec, Measure, Population, Task

# ``--arch`` presets: (blocks per stage, channels per stage) of a MONAI ResNet trunk.
ARCH_PRESETS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "resnet-tiny": ((1, 1, 1, 1), (16, 32, 64, 128)),
    "resnet-small": ((1, 1, 1, 1), (32, 64, 128, 256)),
    "resnet10": ((1, 1, 1, 1), (64, 128, 256, 512)),
    "resnet18": ((2, 2, 2, 2), (64, 128, 256, 512)),
}


@dataclass(frozen=True)
class NetSpec:
    """A MONAI ResNet trunk with a class-activation head (see ``training.nets``).

    ``arch`` is ``resnet`` (``layers`` and ``widths`` as given) or a name in
    ``ARCH_PRESETS``, which then sets ``layers`` and ``widths``. Segmentation recipes use
    ``basicunet``: MONAI's ``BasicUNet`` with ``features`` (six channel counts: four
    down-sampling levels, the bottom, and the last up-sampling level).
    """

    arch: str = "resnet"
    layers: tuple[int, ...] = (1, 1, 1, 1)
    widths: tuple[int, ...] = (32, 64, 128, 256)
    stem_kernel: int = 7
    stem_stride: int = 2
    max_pool: bool = True
    dropout: float = 0.2
    features: tuple[int, ...] = (16, 16, 32, 64, 128, 16)
    # Transfer: the name of a shipped model with the same ResNet trunk; its trunk weights
    # (read from its ONNX file, see training.learn.transfer_state) start the training and
    # its head is not taken. "" = a random start.
    init: str = ""
    # Fine-tuning: a trained model folder of this recipe's network (its card.json and
    # model.onnx: the shipped version, or a cross-fitting fold's model) whose whole weights,
    # head included, start the training instead of a random start (training.train.started_from).
    # With augment.consistency this is stability training (Zheng et al., CVPR 2016): a model
    # that already reads clean images is taught to read corrupted copies the same way.
    start: str = ""
    # How the exported ONNX file stores convolution weights: "float32", or "float16" behind a
    # cast that ONNX Runtime folds at load (training.half_weights: half the bytes, computed
    # in float32).
    weights: str = "float32"

    def __post_init__(self) -> None:
        if self.init and self.start:
            raise ValueError("net.init (a trunk) and net.start (whole weights) exclude each other")
        if self.weights not in ("float32", "float16"):
            raise ValueError(f"net.weights is float32 or float16, not {self.weights!r}")
        if self.arch == "boxnet":  # training.detection.BoxNet: 4 stages of ``widths``
            if len(self.widths) != 4:
                raise ValueError("net.widths needs 4 stages for boxnet")
            return
        if self.arch == "basicunet":
            if len(self.features) != 6:
                raise ValueError("net.features needs 6 channel counts for basicunet")
            return
        if self.arch in ARCH_PRESETS:
            layers, widths = ARCH_PRESETS[self.arch]
            object.__setattr__(self, "layers", layers)
            object.__setattr__(self, "widths", widths)
        elif self.arch != "resnet":
            known = ", ".join(["resnet", "basicunet", "boxnet", *ARCH_PRESETS])
            raise ValueError(f"unknown arch {self.arch!r}; known: {known}")
        if len(self.layers) != 4 or len(self.widths) != 4:
            raise ValueError("net.layers and net.widths need 4 stages each")


@dataclass(frozen=True)
class Schedule:
    epochs: int = 12
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 0.5
    patience: int = 4
    class_weights: str = "balanced"
    label_smoothing: float = 0.0
    # "ce": cross-entropy; "ce+emd": plus the squared earth mover's distance between the
    # predicted and true grade distributions (Hou et al. 2016), for ordinal grades.
    loss: str = "ce"
    emd_weight: float = 1.0
    # Exponential moving average of the weights (0 = off), evaluated and kept instead of
    # the raw weights; steadier on small, noisy validation sets.
    ema: float = 0.0
    # Fold mirror-image test-time augmentation (the flips the augmentation allows) into
    # the exported graph.
    tta: bool = False
    # Train this many members (seeds seed, seed + 1, ...) and export their mean as one graph.
    ensemble: int = 1
    threads: int = 2
    # Ensemble members trained at once (classifiers and detectors), each in its own process
    # with ``threads`` threads (training.members.run_members); the members and the exported
    # file are the same as when trained one after another. 1 = one after another, here.
    workers: int = 1
    max_train_items: int | None = None
    # Detection: train on random crops of (rows, cols) input pixels; () = the whole input.
    crop: tuple[int, ...] = ()
    # 2D classifiers whose data folder also has boxes.csv: weight of the auxiliary box
    # localization loss (training.localize; the head is dropped at export). 0 = off.
    box_loss: float = 0.0
    # Binary 2D classifiers whose data folder has boxes.csv: weight of a term that puts the
    # classifier's own class activation map on the boxes (training.localize.cam_box_loss:
    # the share of the positive class's CAM softmax that falls in a boxed item's boxes).
    # Unlike box_loss it shapes the exported heatmap itself. 0 = off.
    cam_loss: float = 0.0
    # Segmentation: a multi-scale ensemble (training.seg_ensemble). Member k is the recipe
    # trained at input size member_sizes[k] (rows, cols); input.size must be the largest.
    # () = one network at input.size.
    member_sizes: tuple[tuple[int, int], ...] = ()
    # Classifiers: which epoch's weights are kept. "best": the best by val (AUC, then loss),
    # stopping after ``patience`` epochs without improvement. "last": all ``epochs`` run and
    # the last is kept, so val picks nothing and stays an unbiased calibration set.
    keep: str = "best"

    def __post_init__(self) -> None:
        if self.keep not in ("best", "last"):
            raise ValueError(f"schedule.keep is best or last, not {self.keep!r}")
        if self.box_loss < 0:
            raise ValueError("schedule.box_loss must be >= 0")
        if self.cam_loss < 0:
            raise ValueError("schedule.cam_loss must be >= 0")
        if self.workers < 1:
            raise ValueError("schedule.workers must be at least 1")
        sizes = tuple(tuple(int(v) for v in size) for size in self.member_sizes)
        if sizes and (len(sizes) < 2 or any(len(s) != 2 or min(s) < 16 for s in sizes)):
            raise ValueError(
                "schedule.member_sizes needs two or more [rows, cols] sizes of at least 16 px"
            )
        object.__setattr__(self, "member_sizes", sizes)


@dataclass(frozen=True)
class Augment:
    """Random-draw ranges; ``training.augment`` turns them into deterministic ops."""

    rotate_deg: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    translate: float = 0.0
    gamma: tuple[float, float] = (1.0, 1.0)
    contrast: float = 0.0
    brightness: float = 0.0
    noise_std: float = 0.0
    blur_prob: float = 0.0
    hflip: bool = False
    # 3D only: axes that may be flipped, of "x" (cols), "y" (rows), "z" (slices).
    flip_axes: tuple[str, ...] = ()
    # 3D only: swap the spatial axes at random (cubic inputs), for shapes whose orientation
    # carries no meaning, such as vessel segments. Exact: no interpolation.
    permute_axes: bool = False
    # 2D only, robustness training: each training image is also stored corrupted
    # (radlens.evaluation.corruptions, at its source resolution, a kind from ``corruptions``
    # and a severity 1-5 drawn at random, 8-bit like a real file), and a batch item is drawn
    # from that copy with probability ``corruption_prob``; geometric and intensity
    # augmentation apply on top.
    corruption_prob: float = 0.0
    corruptions: tuple[str, ...] = ()
    # How many corrupted copies of each training image are stored, each with its own kind
    # and severity; a batch item takes one of them at random. 1 is the single copy above.
    corruption_copies: int = 1
    # The severities a copy is drawn from (all five unless narrowed).
    corruption_severities: tuple[int, ...] = SEVERITIES
    # Whose corruptions ``corruptions`` names: "radlens" (radlens.evaluation.corruptions'
    # own six) or a MedMNIST-C dataset's table ("chestmnist", "breastmnist", ...).
    corruption_table: str = RADLENS
    # Weight of a consistency term (AugMix, Hendrycks et al., ICLR 2020): every batch item
    # is also seen as one of its corrupted copies, under the same geometric and intensity
    # augmentation, and the Jensen-Shannon divergence between the two predictions is added
    # to the loss. The task loss stays on the clean (or ``corruption_prob``-mixed) items.
    consistency: float = 0.0
    # With ``consistency``: the clean prediction is the fixed target of the divergence (no
    # gradient flows through it), so the term moves the corrupted view's prediction
    # towards the clean one and never the clean one towards the corrupted one.
    consistency_anchor: bool = False

    @property
    def corrupts(self) -> bool:
        """Whether training stores corrupted copies of its images."""
        return self.corruption_prob > 0 or self.consistency > 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.corruption_prob <= 1.0:
            raise ValueError("augment.corruption_prob must be in [0, 1]")
        if self.consistency < 0:
            raise ValueError("augment.consistency must be at least 0")
        if self.consistency_anchor and self.consistency == 0:
            raise ValueError("augment.consistency_anchor needs augment.consistency")
        if self.corruption_copies < 1:
            raise ValueError("augment.corruption_copies must be at least 1")
        if self.corrupts and not self.corruptions:
            raise ValueError(
                "augment.corruption_prob or augment.consistency needs augment.corruptions (kinds)"
            )
        levels = tuple(int(v) for v in self.corruption_severities)
        if not levels or set(levels) - set(SEVERITIES):
            raise ValueError(f"augment.corruption_severities must be some of {SEVERITIES}")
        object.__setattr__(self, "corruption_severities", levels)
        known = kinds_in(self.corruption_table)  # refuses an unknown table
        unknown = set(self.corruptions) - set(known)
        if unknown:
            raise ValueError(
                f"unknown corruption(s) {sorted(unknown)} in table {self.corruption_table!r}; "
                f"known: {known}"
            )


@dataclass(frozen=True)
class Recipe:
    name: str
    version: str
    task: Task
    data: str
    labels: tuple[str, ...]
    finding_code: str
    finding_label: str
    input: InputSpec
    applies_to: AppliesTo
    intended_use: str
    limitations: tuple[str, ...]
    licence: str
    commercial_use: bool
    citation: str
    net: NetSpec = field(default_factory=NetSpec)
    schedule: Schedule = field(default_factory=Schedule)
    augment: Augment = field(default_factory=Augment)
    seed: int = 0
    high_sensitivity: float = 0.95
    positive_index: int = 1
    # None: enabled when the data allow commercial use. False: shipped for comparison
    # only (e.g. a lower-resolution twin of an enabled model); `radlens models` shows it.
    enabled_by_default: bool | None = None
    # task = "segmentation": what is measured on the mask (see models.card.Measure).
    measure: Measure = Measure.NONE
    # task = "detection": how boxes are decoded (see models.card.DetectionSpec).
    detection: DetectionSpec | None = None
    # task = "ordinal": the lowest grade that raises priority (see ModelCard).
    triage_min_grade: int | None = None
    # Ordinal models: "argmax" or "median" (ModelCard.grade_rule).
    grade_rule: str = "argmax"
    source: str = ""

    def __post_init__(self) -> None:
        if self.task is Task.DETECTION:
            if self.net.arch == "basicunet":
                raise ValueError("a detector is boxnet or a ResNet trunk, not basicunet")
        elif self.net.arch == "boxnet":
            raise ValueError("net.arch = boxnet is for detection recipes")
        if self.augment.corrupts and (
            self.input.dims != 2 or self.task in (Task.SEGMENTATION, Task.DETECTION)
        ):
            raise ValueError(
                "augment.corruption_prob and augment.consistency are for 2D classifiers"
            )
        if self.schedule.cam_loss > 0 and (self.task is not Task.BINARY or self.input.dims != 2):
            raise ValueError("schedule.cam_loss is for binary 2D classifiers")
        if self.schedule.keep != "best" and self.task in (Task.SEGMENTATION, Task.DETECTION):
            raise ValueError("schedule.keep = last is for classifiers")
        if self.input.denoise is not None and self.task in (Task.SEGMENTATION, Task.DETECTION):
            raise ValueError("input.denoise is fitted for 2D classifiers")
        if self.input.deblur is not None and self.task in (Task.SEGMENTATION, Task.DETECTION):
            raise ValueError("input.deblur is fitted for 2D classifiers")

    @property
    def needs_box_masks(self) -> bool:
        """Training reads the train split's box masks (``box_loss`` or ``cam_loss``)."""
        return self.schedule.box_loss > 0 or self.schedule.cam_loss > 0


def read_recipe(path: Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read ``recipes/<name>.toml``; ``overrides`` replace top-level or ``section.key`` values.

    Raises:
        ConfigError: the file is missing, not TOML, or has unknown or invalid fields.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read recipe: {exc}") from exc
    return recipe_from_dict(data, str(path), overrides)


def recipe_from_dict(
    data: dict[str, Any], source: str, overrides: dict[str, Any] | None = None
) -> Recipe:
    """Build a validated recipe from parsed TOML (see :func:`read_recipe`)."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    path = source
    for key, value in (overrides or {}).items():
        section, _, leaf = key.rpartition(".")
        (data.setdefault(section, {}) if section else data)[leaf] = value
    try:
        applies = dict(data.pop("applies_to"))
        population = Population(**applies.pop("population", {}))
        return Recipe(
            input=InputSpec(**data.pop("input")),
            applies_to=AppliesTo(population=population, **applies),
            net=NetSpec(**_tuples(data.pop("net", {}))),
            schedule=Schedule(**_tuples(data.pop("schedule", {}))),
            augment=Augment(**_tuples(data.pop("augment", {}))),
            task=Task(data.pop("task")),
            detection=DetectionSpec(**data.pop("detection")) if "detection" in data else None,
            labels=tuple(data.pop("labels")),
            limitations=tuple(data.pop("limitations", ())),
            source=source,
            **data,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: invalid recipe: {exc}") from exc


def _tuples(section: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}


DATA_ROOT_ENV = "RADLENS_DATA"


def data_root() -> Path:
    """Where ``--dataset NAME`` looks for data: ``$RADLENS_DATA`` or ``../shared/data``."""
    return Path(os.environ.get(DATA_ROOT_ENV, "../shared/data"))


def find_dataset(name: str, size: int | None = None) -> Path:
    """The data for ``--dataset NAME [--size N]``: a MedMNIST file or a labelled folder.

    Looks for ``NAME_N.npz`` (MedMNIST+ naming; plain ``NAME.npz`` is the 28-px file) and
    then a folder called ``NAME`` anywhere under the data root.

    Raises:
        ConfigError: nothing by that name is there.
    """
    root = data_root()
    stems = [f"{name}_{size}", name] if size and size != 28 else [name]
    for stem in stems:
        for found in sorted(root.rglob(f"{stem}.npz")):
            return found
    for found in sorted(root.rglob(name)):
        if found.is_dir():
            return found
    raise ConfigError(
        f"no dataset {name!r} (size {size or 'any'}) under {root}; set {DATA_ROOT_ENV} or pass "
        "--data FILE.npz|FOLDER"
    )


def recipe_for_dataset(
    name: str, size: int | None, recipes: Path, data: Path | None = None
) -> tuple[Path | None, dict[str, Any]]:
    """The recipe file and overrides for ``radlens train --dataset NAME [--size N]``.

    A recipe in ``recipes`` matches when its ``name`` is ``NAME`` or its data file is
    ``NAME.npz`` / ``NAME_N.npz``; one whose input size is ``N`` wins. A recipe made for
    another size is reused with that size and the matching data. Without a recipe the
    caller infers one from the data (:func:`infer_recipe`); the first element is ``None``.
    """
    matches: list[tuple[int, Path, dict[str, Any]]] = []
    for path in sorted(recipes.glob("*.toml")) if recipes.is_dir() else []:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            continue
        stem = Path(str(raw.get("data", ""))).stem
        if raw.get("name") != name and stem.split("_")[0] != name and stem != name:
            continue
        sides = list(raw.get("input", {}).get("size", []))
        matches.append((0 if size is None or (sides and sides[0] == size) else 1, path, raw))
    overrides: dict[str, Any] = {}
    if data is not None:
        overrides["data"] = str(data)
    if not matches:
        return None, overrides
    rank, path, raw = min(matches, key=lambda m: m[0])
    if rank and size:
        sides = list(raw["input"]["size"])
        overrides["input.size"] = [size] * len(sides)
        overrides["name"] = f"{raw['name']}_{size}"
        if data is None:
            overrides["data"] = str(find_dataset(Path(str(raw["data"])).stem, size))
    return path, overrides


def infer_recipe(data: Path, name: str, size: int | None = None) -> dict[str, Any]:
    """A recipe (as TOML-like dict) for a dataset nobody wrote a recipe for.

    Task, classes, input size, channels and 2D/3D come from the data (``(N, K)`` labels, or a
    ``labels.csv`` with ``|``-joined labels, make a ``multilabel`` task); the network and
    schedule from defaults that worked on the MedMNIST sets. The licence is unknown, so
    the model is marked not for commercial use and is not enabled by default until
    someone writes a recipe that states it.
    """
    from radlens.io.datasets import read_labelled

    train = read_labelled(data, "train")
    first = train.images[0]
    color = first.ndim == 3 and first.shape[-1] == 3
    dims = 3 if first.ndim == 3 and not color else 2
    side = size or max(first.shape[:dims])
    small = side <= 64
    if train.multilabel:
        task = "multilabel"
    else:
        task = "binary" if len(train.label_names) == 2 else "multiclass"
    return {
        "name": name,
        "version": "0.1.0",
        "task": task,
        "data": str(data),
        "labels": list(train.label_names),
        "finding_code": name.lower(),
        "finding_label": name,
        "licence": "unknown: check the dataset's licence before use",
        "commercial_use": False,
        "citation": "",
        "intended_use": f"Research model trained on {data.name}; not validated for clinical use.",
        "limitations": ["Trained from an inferred recipe; routing accepts only modality OT."],
        "input": {
            "size": [side] * dims,
            "channels": 3 if color else 1,
            "use_window": False,
            "percentile_low": 0.0,
            "percentile_high": 100.0,
        },
        "applies_to": {"modalities": ["OT"], "dims": dims, "color": color},
        "net": {
            "arch": "resnet-tiny" if dims == 3 else "resnet-small",
            "stem_kernel": 3 if small else 7,
            "stem_stride": 1 if small else 2,
            "max_pool": dims == 3 or not small,
        },
        "schedule": {"epochs": 30, "patience": 8},
        "augment": {"rotate_deg": 10.0, "scale": [0.9, 1.1], "translate": 0.05},
    }
