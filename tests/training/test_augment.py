"""3D augmentation: exact flips, shapes kept, reproducible draws."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.train
torch = pytest.importorskip("torch")

from radlens.training.augment import RandomAugment, affine_3d  # noqa: E402
from radlens.training.recipe import Augment  # noqa: E402


def test_affine_3d_identity_and_exact_flips() -> None:
    x = torch.arange(3 * 4 * 5, dtype=torch.float32).reshape(1, 1, 3, 4, 5).repeat(3, 1, 1, 1, 1)
    zero, one = torch.zeros(3), torch.ones(3)
    none = torch.zeros(3, 3, dtype=torch.bool)
    same = affine_3d(x, zero, one, torch.zeros(3, 3), none)
    torch.testing.assert_close(same, x, atol=1e-4, rtol=0)
    flips = torch.tensor([[True, False, False], [False, True, False], [False, False, True]])
    out = affine_3d(x, zero, one, torch.zeros(3, 3), flips)
    torch.testing.assert_close(out[0], x[0].flip(-1), atol=1e-4, rtol=0)  # x = columns
    torch.testing.assert_close(out[1], x[1].flip(-2), atol=1e-4, rtol=0)  # y = rows
    torch.testing.assert_close(out[2], x[2].flip(-3), atol=1e-4, rtol=0)  # z = slices


def test_random_3d_augment_keeps_shape_and_range_and_is_reproducible() -> None:
    spec = Augment(rotate_deg=15, scale=(0.9, 1.1), translate=0.05, flip_axes=("x", "y", "z"))
    x = torch.rand(4, 1, 12, 12, 12, generator=torch.Generator().manual_seed(1))
    a = RandomAugment(spec, torch.Generator().manual_seed(0))(x)
    b = RandomAugment(spec, torch.Generator().manual_seed(0))(x)
    assert a.shape == x.shape
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, x)


def test_flips_only_on_the_allowed_axes() -> None:
    x = torch.zeros(64, 1, 4, 4, 4)
    x[..., 0, 0, 0] = 1.0  # one corner voxel: (z, y, x) = (0, 0, 0)
    out = RandomAugment(Augment(flip_axes=("x",)), torch.Generator().manual_seed(0))(x)
    corners = out[:, 0].flatten(1).argmax(dim=1)
    # Flipping x moves the voxel to (0, 0, 3) = index 3; nothing moves it along y or z.
    assert set(corners.tolist()) == {0, 3}


def test_permute_spatial_reorders_axes_exactly() -> None:
    from radlens.training.augment import permute_spatial

    x = torch.arange(2 * 27, dtype=torch.float32).reshape(2, 1, 3, 3, 3)
    out = permute_spatial(x, torch.tensor([0, 5]))
    torch.testing.assert_close(out[0], x[0])
    torch.testing.assert_close(out[1], x[1].permute(0, 3, 2, 1))
    spec = Augment(permute_axes=True)
    mixed = RandomAugment(spec, torch.Generator().manual_seed(0))(x.repeat(8, 1, 1, 1, 1) / 54)
    assert sorted(mixed.flatten(1).sum(1).round(decimals=3).unique().tolist()) == sorted(
        (x / 54).flatten(1).sum(1).round(decimals=3).unique().tolist()
    )
