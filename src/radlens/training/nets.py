"""Networks: a MONAI ResNet trunk with a class-activation-map head, 2D or 3D.

The head is global average pooling followed by one linear layer, so the class activation
map (Zhou et al., CVPR 2016) is exactly ``W @ features + b`` at every position and its
spatial mean equals the logits. The exported ONNX graph returns both, which is why
radlens needs no torch (and no Grad-CAM) to draw heatmaps.
"""

from __future__ import annotations

import torch
from monai.networks.nets.resnet import ResNet
from torch import nn

from radlens.training.recipe import NetSpec


class CamClassifier(nn.Module):
    """``forward(x) -> (logits, cam)``; ``cam`` has the trunk's spatial resolution."""

    def __init__(self, spec: NetSpec, in_channels: int, n_classes: int, dims: int) -> None:
        super().__init__()
        self.trunk = ResNet(
            block="basic",
            layers=list(spec.layers),
            block_inplanes=list(spec.widths),
            spatial_dims=dims,
            n_input_channels=in_channels,
            conv1_t_size=spec.stem_kernel,
            conv1_t_stride=spec.stem_stride,
            no_max_pool=not spec.max_pool,
            feed_forward=False,
        )
        self.dropout = nn.Dropout(spec.dropout)
        self.fc = nn.Linear(spec.widths[-1], n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        t = self.trunk
        x = t.act(t.bn1(t.conv1(x)))
        if not t.no_max_pool:
            x = t.maxpool(x)
        x = t.layer4(t.layer3(t.layer2(t.layer1(x))))
        return x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        flat = f.flatten(2)  # (B, C, N)
        cam = torch.einsum("bcn,kc->bkn", flat, self.fc.weight) + self.fc.bias[None, :, None]
        cam = cam.reshape(f.shape[0], -1, *f.shape[2:])
        if self.training:
            logits = self.fc(self.dropout(flat.mean(dim=2)))
        else:
            logits = cam.flatten(2).mean(dim=2)
        return logits, cam


class FlipAverage(nn.Module):
    """Test-time augmentation folded into the graph: the mean over mirror images.

    For each flip (a tuple of spatial axes counted from the last), the net reads the
    flipped input and its CAM is flipped back before averaging, so the averaged CAM still
    lines up with the input and its spatial mean is still the averaged logits.
    """

    def __init__(self, net: nn.Module, flips: tuple[tuple[int, ...], ...]) -> None:
        super().__init__()
        self.net = net
        self.flips = flips

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, cam = self.net(x)
        for axes in self.flips:
            dims = [-a for a in axes]
            f_logits, f_cam = self.net(x.flip(dims))
            logits = logits + f_logits
            cam = cam + f_cam.flip(dims)
        n = 1 + len(self.flips)
        return logits / n, cam / n


class MeanEnsemble(nn.Module):
    """Several nets in one graph: logits and CAMs averaged (the CAM contract still holds)."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = [member(x) for member in self.members]
        n = len(outputs)
        logits = torch.stack([o[0] for o in outputs]).sum(dim=0) / n
        cam = torch.stack([o[1] for o in outputs]).sum(dim=0) / n
        return logits, cam


def tta_flips(hflip: bool, flip_axes: tuple[str, ...], dims: int) -> tuple[tuple[int, ...], ...]:
    """The single-axis mirrors a recipe allows (axes counted from the last: x=1, y=2, z=3)."""
    if dims == 2:
        return ((1,),) if hflip else ()
    return tuple((("x", "y", "z").index(a) + 1,) for a in flip_axes)


def build_net(spec: NetSpec, in_channels: int, n_classes: int, dims: int) -> CamClassifier:
    return CamClassifier(spec, in_channels, n_classes, dims)
