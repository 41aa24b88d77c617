"""Segmentation training pieces: the net, its ONNX export, the loss, joint augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from radlens.inference.biometry import ellipse_perimeter
from radlens.io.segmentation_sets import SegmentedImages
from radlens.training.augment import affine
from radlens.training.recipe import Augment, NetSpec
from radlens.training.segment import MaskNet, augment_pair, dice_bce, export_mask_onnx
from radlens.training.segment_card import fit_edge_offset


def test_mask_net_exports_to_onnx_with_one_output_matching_torch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = MaskNet((4, 4, 8, 8, 16, 4)).eval()
    example = torch.randn(2, 1, 32, 48)
    diff = export_mask_onnx(net, example, tmp_path / "model.onnx")
    assert diff < 1e-4
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "model.onnx"))
    assert [o.name for o in session.get_outputs()] == ["mask_logits"]
    (out,) = session.run(None, {"image": np.zeros((3, 1, 32, 48), np.float32)})
    assert out.shape == (3, 1, 32, 48)


def test_dice_bce_is_small_for_a_confident_right_answer_and_large_for_a_wrong_one() -> None:
    target = torch.zeros(2, 1, 8, 8)
    target[:, :, 2:6, 2:6] = 1
    right = dice_bce((target * 2 - 1) * 20, target)
    wrong = dice_bce((1 - target * 2) * 20, target)
    assert float(right) < 0.01 < 1.5 < float(wrong)


def test_joint_augmentation_moves_image_and_mask_together() -> None:
    from radlens.training.recipe import Recipe

    x = torch.zeros(4, 1, 32, 32)
    x[:, :, 8:20, 10:24] = 1.0
    recipe = Recipe.__new__(Recipe)
    object.__setattr__(recipe, "augment", Augment(rotate_deg=20, scale=(0.9, 1.1), hflip=True))
    xa, ya = augment_pair(x, x.clone(), recipe, torch.Generator().manual_seed(0))
    assert torch.allclose(xa, ya, atol=1e-5)  # no intensity change configured: identical
    assert not torch.allclose(xa, x)
    same = affine(x, torch.zeros(4), torch.ones(4), torch.zeros(4, 2), torch.zeros(4, dtype=bool))
    assert torch.allclose(same, x, atol=1e-5)


def test_float16_weights_are_for_classification_and_segmentation_recipes() -> None:
    assert NetSpec(arch="basicunet", weights="float16").weights == "float16"
    assert NetSpec(arch="resnet18", weights="float16").weights == "float16"
    with pytest.raises(ValueError, match="float32 or float16"):
        NetSpec(arch="basicunet", weights="int8")
    # A detection recipe refuses float16: test_detection_train.py.


def test_basicunet_net_spec_needs_six_feature_counts() -> None:
    assert NetSpec(arch="basicunet", features=(8, 16, 32, 64, 128, 8)).features[0] == 8
    with pytest.raises(ValueError, match="6 channel counts"):
        NetSpec(arch="basicunet", features=(8, 16))


def test_edge_offset_is_the_line_half_width_that_reproduces_the_reference() -> None:
    yy, xx = np.mgrid[:200, :300].astype(np.float64)
    masks, references = [], []
    for a, b in ((100.0, 70.0), (80.0, 60.0)):
        masks.append(((xx - 150) / a) ** 2 + ((yy - 100) / b) ** 2 <= 1)
        references.append(ellipse_perimeter(a - 3.0, b - 3.0) * 0.2)  # centre line 3 px inside
    data = SegmentedImages(
        [m.astype(np.uint8) for m in masks],
        masks,
        np.array([0.2, 0.2]),
        np.array(references),
        ("a.png", "b.png"),
        ("1", "2"),
    )
    assert fit_edge_offset(data) == pytest.approx(3.0, abs=0.6)
