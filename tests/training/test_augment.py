"""Augmentation: exact 3D flips, shapes kept, reproducible draws; corrupted copies for
robustness training."""

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


# --- robustness training: corrupted copies -------------------------------------------------


def test_corrupted_copy_is_reproducible_8_bit_and_uses_only_the_recipe_kinds() -> None:
    import numpy as np

    from radlens.evaluation.corruptions import corrupt
    from radlens.training.augment import corrupted_copy

    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(40)]
    spec = Augment(corruption_prob=0.5, corruptions=("gaussian_noise", "brightness"))
    first, again = corrupted_copy(images, spec, seed=7), corrupted_copy(images, spec, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert all(c.dtype == np.uint8 and c.shape == (28, 28) for c in first)
    assert not any(np.array_equal(c, i) for c, i in zip(first, images, strict=True))
    # Every item is one of the allowed kinds at some severity, with its own seed.
    for i, (image, out) in enumerate(zip(images, first, strict=True)):
        candidates = [
            np.rint(corrupt(image, kind, s, seed=7 + i)).astype(np.uint8)
            for kind in spec.corruptions
            for s in range(1, 6)
        ]
        assert any(np.array_equal(out, c) for c in candidates), i
    assert not np.array_equal(first[0], corrupted_copy(images, spec, seed=8)[0])


def test_a_corrupted_copy_draws_from_the_recipes_medmnistc_table() -> None:
    import numpy as np

    from radlens.evaluation.corruptions import corrupt
    from radlens.training.augment import corrupted_copy

    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(6)]
    kinds = ("speckle_noise", "gamma_corr_down")
    spec = Augment(consistency=1.0, corruptions=kinds, corruption_table="chestmnist")
    for i, (image, out) in enumerate(zip(images, corrupted_copy(images, spec, 9), strict=True)):
        candidates = [
            np.rint(corrupt(image, kind, s, 9 + i, "chestmnist")).astype(np.uint8)
            for kind in kinds
            for s in range(1, 6)
        ]
        assert any(np.array_equal(out, c) for c in candidates), i
    with pytest.raises(
        ValueError, match="unknown corruption\\(s\\) \\['blur'\\] in table 'chestmnist'"
    ):
        Augment(consistency=1.0, corruptions=("blur",), corruption_table="chestmnist")
    with pytest.raises(ValueError, match="unknown corruption table 'organmnist'"):
        Augment(consistency=1.0, corruptions=("pixelate",), corruption_table="organmnist")


def test_mix_corrupted_draws_items_from_the_corrupted_batch_at_its_rate() -> None:
    from radlens.training.augment import mix_corrupted

    clean, bad = torch.zeros(1000, 1, 2, 2), torch.ones(1000, 1, 2, 2)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(mix_corrupted(clean, bad, 0.0, gen), clean)
    assert torch.equal(mix_corrupted(clean, bad, 1.0, gen), bad)
    mixed = mix_corrupted(clean, bad, 0.3, gen)
    per_item = mixed.flatten(1)
    assert bool(((per_item == 0).all(1) | (per_item == 1).all(1)).all())  # whole items
    assert 0.25 < float(per_item[:, 0].mean()) < 0.35


def test_corruption_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown corruption"):
        Augment(corruption_prob=0.5, corruptions=("snow",))
    with pytest.raises(ValueError, match="needs augment.corruptions"):
        Augment(corruption_prob=0.5)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        Augment(corruption_prob=1.5, corruptions=("blur",))


def test_corrupted_copies_start_with_the_single_copy_and_differ_from_each_other() -> None:
    from dataclasses import replace

    import numpy as np

    from radlens.evaluation.corruptions import corrupt
    from radlens.training.augment import corrupted_copies, corrupted_copy

    rng = np.random.default_rng(4)
    images = [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(12)]
    spec = Augment(corruption_prob=0.5, corruptions=("gaussian_noise",), corruption_copies=3)
    copies = corrupted_copies(images, spec, seed=7)
    assert len(copies) == 3 and all(len(c) == 12 for c in copies)
    single = corrupted_copy(images, spec, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(copies[0], single, strict=True))
    for j in (1, 2):  # each copy draws its own noise
        assert not any(np.array_equal(a, b) for a, b in zip(copies[0], copies[j], strict=True))
    # Narrowed severities: every item is the kind at one of them, with its own noise seed.
    mild = replace(spec, corruption_severities=(1,))
    for i, (image, out) in enumerate(
        zip(images, corrupted_copy(images, mild, seed=7), strict=True)
    ):
        assert np.array_equal(
            out, np.rint(corrupt(image, "gaussian_noise", 1, seed=7 + i)).astype(np.uint8)
        )


def test_pick_copy_takes_each_item_from_some_copy_and_one_copy_draws_nothing() -> None:
    from radlens.training.augment import pick_copy

    n = 50
    # copies[k, i] holds 100 * k + i: the value says which copy and which item it came from
    copies = (100.0 * torch.arange(3).view(3, 1) + torch.arange(n).view(1, n)).view(3, n, 1, 1, 1)
    idx = torch.tensor([4, 9, 17, 30] * 10)
    gen = torch.Generator().manual_seed(0)
    picked = pick_copy(copies, idx, gen).flatten()
    copy_of, item_of = picked // 100, picked % 100
    assert torch.equal(item_of, idx.float())  # the right items ...
    assert set(copy_of.long().tolist()) == {0, 1, 2}  # ... from every copy
    # One copy: plain indexing and the generator untouched, so old recipes train as before.
    state = gen.get_state()
    assert torch.equal(pick_copy(copies[:1], idx, gen), copies[0, idx])
    assert torch.equal(gen.get_state(), state)


def test_js_divergence_is_zero_for_equal_predictions_symmetric_and_at_most_log_2() -> None:
    import math

    from radlens.training.augment import js_divergence

    a = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    b = torch.tensor([[-1.0, 0.5, 3.0], [1.0, 0.0, 0.0]])
    for multilabel in (False, True):
        assert float(js_divergence(a, a, multilabel)) == pytest.approx(0.0, abs=1e-6)
        ab, ba = js_divergence(a, b, multilabel), js_divergence(b, a, multilabel)
        assert float(ab) > 0.01 and float(ab) == pytest.approx(float(ba), abs=1e-6)
    # Opposite certainties reach the bound, ln 2 per distribution (per label if multi-label).
    sure = torch.tensor([[50.0, -50.0]])
    assert float(js_divergence(sure, -sure, False)) == pytest.approx(math.log(2), abs=1e-4)
    assert float(js_divergence(sure, -sure, True)) == pytest.approx(2 * math.log(2), abs=1e-4)


def test_consistency_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="needs augment.corruptions"):
        Augment(consistency=1.0)
    with pytest.raises(ValueError, match="at least 0"):
        Augment(consistency=-1.0, corruptions=("blur",))
    with pytest.raises(ValueError, match="at least 1"):
        Augment(corruption_copies=0, corruptions=("blur",))
    with pytest.raises(ValueError, match="some of"):
        Augment(corruption_severities=(0, 2), corruptions=("blur",))
    with pytest.raises(ValueError, match="some of"):
        Augment(corruption_severities=(), corruptions=("blur",))
    with pytest.raises(ValueError, match="consistency_anchor needs augment.consistency"):
        Augment(consistency_anchor=True, corruptions=("blur",))
    assert Augment(consistency=1.0, corruptions=("blur",)).corrupts
    assert not Augment(corruptions=("blur",)).corrupts
