"""Shared by the training tests: a tiny net's ``radlens train`` flags and a minimal recipe."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

# ``radlens train`` flags for a net small enough to train in seconds.
TINY = [
    "--set",
    "net.arch=resnet-tiny",
    "--set",
    "net.stem_kernel=3",
    "--set",
    "net.stem_stride=1",
    "--set",
    "schedule.threads=1",
    "--set",
    "schedule.batch_size=8",
    "--epochs",
    "2",
]


def minimal_recipe(task: str, labels: list[str], **schedule: Any) -> Any:
    """A valid recipe for ``task`` with 8 x 8 inputs and ``schedule`` fields replaced."""
    from radlens.training.recipe import Schedule, recipe_from_dict

    base = recipe_from_dict(
        {
            "name": "t",
            "version": "0",
            "task": task,
            "data": "x.npz",
            "labels": labels,
            "finding_code": "t",
            "finding_label": "t",
            "licence": "CC0",
            "commercial_use": True,
            "citation": "",
            "intended_use": "tests",
            "input": {"size": [8, 8]},
            "applies_to": {"modalities": ["OT"]},
        },
        "test",
    )
    return replace(base, schedule=replace(Schedule(), **schedule))
