"""Training losses."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.train
torch = pytest.importorskip("torch")

from radlens.training.loop import class_weights, loss_fn  # noqa: E402
from radlens.training.recipe import Recipe  # noqa: E402
from train_helpers import minimal_recipe  # noqa: E402


def recipe_with(**schedule: object) -> Recipe:
    recipe: Recipe = minimal_recipe("ordinal", ["0", "1", "2"], **schedule)
    return recipe


def test_emd_term_punishes_far_grades_more_than_cross_entropy_does() -> None:
    y = torch.tensor([0])
    near = torch.tensor([[0.0, 3.0, 0.0]])  # mass on grade 1
    far = torch.tensor([[0.0, 0.0, 3.0]])  # the same mass on grade 2
    w = torch.ones(3)
    ce = recipe_with(loss="ce")
    emd = recipe_with(loss="ce+emd")
    assert loss_fn(near, y, w, ce) == pytest.approx(float(loss_fn(far, y, w, ce)))
    assert float(loss_fn(far, y, w, emd)) > float(loss_fn(near, y, w, emd))


def test_unknown_loss_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown loss"):
        loss_fn(torch.zeros(1, 3), torch.tensor([0]), torch.ones(3), recipe_with(loss="focal"))


def test_balanced_class_weights() -> None:
    import numpy as np

    w = class_weights(np.array([0, 0, 0, 1]), 2, "balanced")
    assert w.tolist() == pytest.approx([4 / 6, 2.0])
    assert class_weights(np.array([0, 1]), 2, "none").tolist() == [1.0, 1.0]
