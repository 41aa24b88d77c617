"""Shared by the training tests: a tiny net's ``radlens train`` flags, a minimal recipe and a
tiny segmentation set."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from radlens.inference.biometry import ellipse_perimeter

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


def ellipse_set(root: Path, n_subjects: int = 12) -> Path:
    """A tiny mask set: bright ellipses of different sizes, with their HC in labels.csv."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    lines = ["filename,subject_id,mask,pixel_size_mm,head_circumference_mm"]
    yy, xx = np.mgrid[:64, :96]
    for i in range(n_subjects):
        a, b = 20 + i % 6, 12 + i % 4
        inside = ((xx - 48) / a) ** 2 + ((yy - 32) / b) ** 2 <= 1
        image = (rng.integers(0, 60, (64, 96)) + 150 * inside).astype(np.uint8)
        PILImage.fromarray(image).save(root / "images" / f"{i:03d}_HC.png")
        PILImage.fromarray((inside * 255).astype(np.uint8)).save(root / "masks" / f"{i:03d}_m.png")
        hc = ellipse_perimeter(a, b) * 0.5
        lines.append(f"{i:03d}_HC.png,{i},{i:03d}_m.png,0.5,{hc:.2f}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def mask_net_onnx(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    """A randomly initialized segmentation network (``image -> mask_logits``, the shipped
    BasicUNet's 5 levels at 4-64 channels) exported for ``size`` (rows, cols). Needs torch."""
    import torch

    from radlens.training.segment import MaskNet, export_mask_onnx

    torch.manual_seed(seed)
    net = MaskNet((4, 8, 16, 32, 64, 4)).eval()
    example = torch.randn(2, 1, *size, generator=torch.Generator().manual_seed(seed))
    export_mask_onnx(net, example, path)
    return path


def assert_same_statistics(made: Path, shipped: Path) -> None:
    """Two statistics files (``ood_inputs.npz``, ``ood.npz``) hold the same names and the same
    numbers to the rounding of the machine that made them: another numpy or BLAS build sums
    in another order, so the last bits (and the file's hash) may differ, nothing more."""
    with np.load(made) as a, np.load(shipped) as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            if a[key].dtype.kind in "fc":
                np.testing.assert_allclose(a[key], b[key], rtol=1e-9, atol=1e-12, err_msg=key)
            else:
                assert np.array_equal(a[key], b[key]), key
