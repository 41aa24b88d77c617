"""ONNX export with two outputs, ``logits`` and ``cam``, and a parity check against torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from radlens.warning_scopes import ignoring


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path, opset: int = 17) -> None:
    """Write ``model`` to ``path`` with a dynamic batch axis."""
    model.eval()
    with ignoring():
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["image"],
            output_names=["logits", "cam"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}, "cam": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )


def parity(model: nn.Module, path: Path, batch: torch.Tensor) -> float:
    """Largest absolute difference between torch and ONNX Runtime on ``batch``."""
    import onnxruntime as ort

    model.eval()
    with torch.no_grad():
        t_logits, t_cam = model(batch)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    o_logits, o_cam = session.run(["logits", "cam"], {"image": batch.numpy()})
    return float(
        max(np.abs(o_logits - t_logits.numpy()).max(), np.abs(o_cam - t_cam.numpy()).max())
    )
