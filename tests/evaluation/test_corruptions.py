"""Corruptions: shapes kept, severity orders the damage, deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from radlens.evaluation.corruptions import CORRUPTIONS, corrupt


def image(rgb: bool = False) -> np.ndarray:
    base = np.add.outer(np.linspace(20, 200, 28), np.linspace(0, 40, 28))
    return np.stack([base] * 3, -1) if rgb else base


@pytest.mark.parametrize("kind", CORRUPTIONS)
@pytest.mark.parametrize("rgb", [False, True])
def test_every_corruption_keeps_shape_and_range_and_grows_with_severity(
    kind: str, rgb: bool
) -> None:
    x = image(rgb)
    damage = []
    for severity in range(1, 6):
        out = corrupt(x, kind, severity)
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 255
        damage.append(float(np.abs(out - x).mean()))
    assert damage[-1] > damage[0]
    np.testing.assert_array_equal(corrupt(x, kind, 3, seed=1), corrupt(x, kind, 3, seed=1))


def test_unknown_corruption_is_refused() -> None:
    with pytest.raises(ValueError):
        corrupt(image(), "fog", 1)
