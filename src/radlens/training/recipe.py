"""Training recipes: one TOML file per shipped model, read into a frozen ``Recipe``.

A recipe holds every choice that shaped a model (data, network, schedule, augmentation,
routing rule, intended use), so changing a hyper-parameter is a one-line diff in
``recipes/<name>.toml``, never a subclass.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radlens.errors import ConfigError
from radlens.models.card import AppliesTo, InputSpec, Population, Task


@dataclass(frozen=True)
class NetSpec:
    """A MONAI ResNet trunk with a class-activation head (see ``training.nets``)."""

    arch: str = "resnet"
    layers: tuple[int, ...] = (1, 1, 1, 1)
    widths: tuple[int, ...] = (32, 64, 128, 256)
    stem_kernel: int = 7
    stem_stride: int = 2
    max_pool: bool = True
    dropout: float = 0.2


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
    threads: int = 2
    max_train_items: int | None = None


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
    source: str = ""


def read_recipe(path: Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read ``recipes/<name>.toml``; ``overrides`` replace top-level or ``section.key`` values.

    Raises:
        ConfigError: the file is missing, not TOML, or has unknown or invalid fields.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read recipe: {exc}") from exc
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
            schedule=Schedule(**data.pop("schedule", {})),
            augment=Augment(**_tuples(data.pop("augment", {}))),
            task=Task(data.pop("task")),
            labels=tuple(data.pop("labels")),
            limitations=tuple(data.pop("limitations", ())),
            source=str(path),
            **data,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: invalid recipe: {exc}") from exc


def _tuples(section: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()}
