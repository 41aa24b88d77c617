"""Batch augmentation on CPU tensors in [0, 1].

Each random transform draws its parameters and calls a deterministic function, so a test
can run the deterministic step with known parameters. No left-right flip unless the recipe
asks for it: flipping a chest radiograph changes what the anatomy means.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from radlens.evaluation.corruptions import corrupt
from radlens.training.recipe import Augment


def affine(
    x: torch.Tensor,
    angle_rad: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    flip: torch.Tensor,
) -> torch.Tensor:
    """Rotate, scale, translate (fractions of the image) and flip a 2D batch ``(B, C, H, W)``."""
    cos, sin = torch.cos(angle_rad) / scale, torch.sin(angle_rad) / scale
    sign = torch.where(flip, -1.0, 1.0)
    theta = torch.stack(
        [
            torch.stack([cos * sign, -sin, shift[:, 0] * 2], dim=1),
            torch.stack([sin * sign, cos, shift[:, 1] * 2], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def affine_3d(
    x: torch.Tensor,
    angle_rad: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    flips: torch.Tensor,
) -> torch.Tensor:
    """Rotate in-plane (about the slice axis), scale, translate and flip ``(B, C, D, H, W)``.

    ``shift`` is ``(B, 3)`` in fractions of the volume (x, y, z); ``flips`` is ``(B, 3)``
    booleans for the (x, y, z) = (cols, rows, slices) axes.
    """
    cos, sin = torch.cos(angle_rad) / scale, torch.sin(angle_rad) / scale
    zero = torch.zeros_like(cos)
    sign = torch.where(flips, -1.0, 1.0)
    theta = torch.stack(
        [
            torch.stack([cos * sign[:, 0], -sin * sign[:, 1], zero, shift[:, 0] * 2], dim=1),
            torch.stack([sin * sign[:, 0], cos * sign[:, 1], zero, shift[:, 1] * 2], dim=1),
            torch.stack([zero, zero, sign[:, 2] / scale, shift[:, 2] * 2], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


_PERMUTATIONS = ((2, 3, 4), (2, 4, 3), (3, 2, 4), (3, 4, 2), (4, 2, 3), (4, 3, 2))


def permute_spatial(x: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """Reorder the spatial axes of each volume of ``(B, C, D, H, W)`` (cubic) by index."""
    out = torch.empty_like(x)
    for i, k in enumerate(which.tolist()):
        out[i] = x[i].permute(0, *(a - 1 for a in _PERMUTATIONS[k]))
    return out


def intensity(
    x: torch.Tensor, gamma: torch.Tensor, contrast: torch.Tensor, brightness: torch.Tensor
) -> torch.Tensor:
    """Gamma, then contrast about the image mean, then brightness; stays in [0, 1]."""
    view = (-1,) + (1,) * (x.dim() - 1)
    y = x.clamp(0, 1) ** gamma.view(view)
    mean = y.mean(dim=tuple(range(1, x.dim())), keepdim=True)
    y = (y - mean) * contrast.view(view) + mean + brightness.view(view)
    return y.clamp(0, 1)


def blur(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Separable Gaussian blur of a 2D batch."""
    radius = max(1, math.ceil(2 * sigma_px))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma_px**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(
        F.pad(x, (radius, radius, 0, 0), mode="replicate"),
        k.view(1, 1, 1, -1).repeat(c, 1, 1, 1),
        groups=c,
    )
    return F.conv2d(
        F.pad(x, (0, 0, radius, radius), mode="replicate"),
        k.view(1, 1, -1, 1).repeat(c, 1, 1, 1),
        groups=c,
    )


def corrupted_copy(images: list[np.ndarray], spec: Augment, seed: int) -> list[np.ndarray]:
    """Each 2D image corrupted once at its source resolution, stored as 8-bit like a file.

    Item ``i`` gets a kind from ``spec.corruptions`` (of ``spec.corruption_table``) and a
    severity from
    ``spec.corruption_severities`` (1-5 unless narrowed) drawn by a generator
    seeded with ``seed``; the corruption's own noise is seeded per item, so the copy is
    reproducible.
    """
    rng = np.random.default_rng(seed)
    kinds = rng.integers(0, len(spec.corruptions), len(images))
    levels = spec.corruption_severities
    severities = rng.integers(0, len(levels), len(images))
    return [
        np.rint(
            corrupt(image, spec.corruptions[k], levels[s], seed + i, spec.corruption_table)
        ).astype(np.uint8)
        for i, (image, k, s) in enumerate(zip(images, kinds, severities, strict=True))
    ]


def corrupted_copies(images: list[np.ndarray], spec: Augment, seed: int) -> list[list[np.ndarray]]:
    """``spec.corruption_copies`` independent corrupted copies of ``images``.

    Copy 0 is ``corrupted_copy(images, spec, seed)``; copy ``j`` draws its kinds,
    severities and noise from ``seed + j * len(images)``, so no two items of any copies
    share a noise seed.
    """
    return [
        corrupted_copy(images, spec, seed + j * len(images)) for j in range(spec.corruption_copies)
    ]


def pick_copy(copies: torch.Tensor, idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Items ``idx`` of ``copies`` (``(K, N, ...)``), each from one of the K copies at random.

    With one copy nothing is drawn from ``generator``, so a single-copy recipe trains as
    it did before copies existed.
    """
    if copies.shape[0] == 1:
        return copies[0, idx]
    which = torch.randint(0, copies.shape[0], (len(idx),), generator=generator)
    return copies[which, idx]


def js_divergence(a: torch.Tensor, b: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """Mean Jensen-Shannon divergence (nats) between the predictions of logits ``a``, ``b``.

    Softmax distributions for single-label tasks; for multi-label ones each label is its own
    yes/no distribution and the divergences are summed over labels.
    """
    if multilabel:
        pa, pb = torch.sigmoid(a), torch.sigmoid(b)
        pa, pb = torch.stack([pa, 1 - pa], -1), torch.stack([pb, 1 - pb], -1)
    else:
        pa, pb = torch.softmax(a, 1), torch.softmax(b, 1)
    mixture = ((pa + pb) / 2).clamp_min(1e-7).log()
    js = (F.kl_div(mixture, pa, reduction="none") + F.kl_div(mixture, pb, reduction="none")) / 2
    return js.sum(dim=tuple(range(1, js.dim()))).mean()


def mix_corrupted(
    clean: torch.Tensor, corrupted: torch.Tensor, prob: float, generator: torch.Generator
) -> torch.Tensor:
    """Each item of a batch from ``corrupted`` with probability ``prob``, else from ``clean``."""
    take = torch.rand(clean.shape[0], generator=generator) < prob
    return torch.where(take.view((-1,) + (1,) * (clean.dim() - 1)), corrupted, clean)


class RandomAugment:
    """Draws per-sample parameters from an ``Augment`` and applies the deterministic ops."""

    def __init__(self, spec: Augment, generator: torch.Generator) -> None:
        self.spec = spec
        self.gen = generator

    def _uniform(self, n: int, low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=self.gen) * (high - low) + low

    def __call__(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        """Augmented ``x``; with ``masks`` (2D, ``(B, 1, H, W)``), also the masks.

        The masks follow the geometric transforms of their images and none of the
        intensity ones; they come back as the last channel (split with ``[:, :-1]``). The
        random draws are the same with or without masks.
        """
        s, n = self.spec, x.shape[0]
        if masks is not None:
            if x.dim() != 4:
                raise ValueError("masks are for 2D batches")
            x = torch.cat([x, masks], dim=1)
        if x.dim() == 4 and (s.rotate_deg or s.scale != (1.0, 1.0) or s.translate or s.hflip):
            angle = self._uniform(n, -s.rotate_deg, s.rotate_deg) * math.pi / 180
            scale = self._uniform(n, *s.scale)
            shift = self._uniform(2 * n, -s.translate, s.translate).view(n, 2)
            flip = (torch.rand(n, generator=self.gen) < 0.5) & s.hflip
            x = affine(x, angle, scale, shift, flip)
        if x.dim() == 5 and s.permute_axes:
            x = permute_spatial(x, torch.randint(0, 6, (n,), generator=self.gen))
        if x.dim() == 5 and (s.rotate_deg or s.scale != (1.0, 1.0) or s.translate or s.flip_axes):
            angle = self._uniform(n, -s.rotate_deg, s.rotate_deg) * math.pi / 180
            scale = self._uniform(n, *s.scale)
            shift = self._uniform(3 * n, -s.translate, s.translate).view(n, 3)
            allowed = torch.tensor([axis in s.flip_axes for axis in ("x", "y", "z")])
            flips = (torch.rand(n, 3, generator=self.gen) < 0.5) & allowed
            x = affine_3d(x, angle, scale, shift, flips)
        if masks is not None:
            return torch.cat([self._photometric(x[:, :-1]), x[:, -1:]], dim=1)
        return self._photometric(x)

    def _photometric(self, x: torch.Tensor) -> torch.Tensor:
        """Blur, intensity and noise: the image-only transforms."""
        s, n = self.spec, x.shape[0]
        if (
            x.dim() == 4
            and s.blur_prob > 0
            and torch.rand(1, generator=self.gen).item() < s.blur_prob
        ):
            x = blur(x, float(self._uniform(1, 0.5, 1.5)))
        log_g = self._uniform(n, math.log(s.gamma[0]), math.log(s.gamma[1]))
        x = intensity(
            x,
            torch.exp(log_g),
            self._uniform(n, 1 - s.contrast, 1 + s.contrast),
            self._uniform(n, -s.brightness, s.brightness),
        )
        if s.noise_std:
            sigma = self._uniform(n, 0, s.noise_std).view((-1,) + (1,) * (x.dim() - 1))
            x = (x + sigma * torch.randn(x.shape, generator=self.gen)).clamp(0, 1)
        return x
