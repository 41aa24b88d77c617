"""Training losses."""

from __future__ import annotations

import numpy as np
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


def _consistency_recipe(weight: float) -> Recipe:
    from dataclasses import replace

    from radlens.training.recipe import Augment

    recipe = recipe_with(batch_size=4)
    spec = Augment(rotate_deg=10, gamma=(0.8, 1.2), noise_std=0.05, hflip=True)
    return replace(recipe, augment=replace(spec, consistency=weight, corruptions=("blur",)))


def test_a_consistency_view_gets_the_same_augmentation_draws_as_its_clean_items() -> None:
    """An unchanged view adds nothing: same draws, the same batch statistics, JS of 0; the
    task loss is the clean items' alone. A changed view adds its weighted divergence."""
    from radlens.training.augment import RandomAugment
    from radlens.training.loop import batch_loss
    from radlens.training.nets import NetSpec, build_net

    torch.manual_seed(0)
    spec = NetSpec(arch="resnet-tiny", stem_kernel=3, stem_stride=1, dropout=0.0)
    net = build_net(spec, 1, 3, 2)  # in training mode: batch statistics, no dropout draws
    x = torch.rand(6, 1, 32, 32)
    y, idx, w = torch.tensor([0, 1, 2, 0, 1, 2]), torch.arange(6), torch.ones(3)

    def loss(weight: float, view: torch.Tensor | None) -> float:
        augment = RandomAugment(
            _consistency_recipe(weight).augment, torch.Generator().manual_seed(1)
        )
        recipe = _consistency_recipe(weight)
        with torch.no_grad():
            return float(batch_loss(net, None, augment, x, idx, y, w, recipe, view))

    plain = loss(5.0, None)
    assert loss(5.0, x.clone()) == pytest.approx(plain, rel=1e-5)
    other = x.flip(-1) * 0.5
    assert loss(5.0, other) > loss(1.0, other) > loss(0.0, other)


@pytest.mark.parametrize("anchor", [False, True])
def test_an_anchored_consistency_term_sends_no_gradient_to_the_clean_predictions(
    anchor: bool,
) -> None:
    """With ``augment.consistency_anchor`` the clean logits get the task loss's gradient
    alone and the corrupted view's logits get the divergence's; without it the divergence
    pulls the clean logits too."""
    from dataclasses import replace

    from radlens.training.augment import RandomAugment
    from radlens.training.loop import batch_loss
    from radlens.training.nets import NetSpec, build_net

    torch.manual_seed(0)
    spec = NetSpec(arch="resnet-tiny", stem_kernel=3, stem_stride=1, dropout=0.0)
    net = build_net(spec, 1, 3, 2)
    x = torch.rand(6, 1, 32, 32)
    view = x.flip(-1) * 0.5
    y, idx, w = torch.tensor([0, 1, 2, 0, 1, 2]), torch.arange(6), torch.ones(3)
    seen: list[torch.Tensor] = []
    hook = net.fc.register_forward_hook(lambda _m, _i, out: seen.append(out))

    def logit_grads(weight: float) -> tuple[torch.Tensor, torch.Tensor]:
        recipe = _consistency_recipe(weight)
        if weight > 0:
            spec = replace(recipe.augment, consistency_anchor=anchor)
            recipe = replace(recipe, augment=spec)
        augment = RandomAugment(recipe.augment, torch.Generator().manual_seed(1))
        seen.clear()
        net.zero_grad()
        loss = batch_loss(net, None, augment, x, idx, y, w, recipe, view)
        seen[0].retain_grad()
        loss.backward()
        grad = seen[0].grad
        assert grad is not None
        return grad[: len(x)], grad[len(x) :]

    task_clean, task_view = logit_grads(0.0)
    clean, on_view = logit_grads(5.0)
    hook.remove()
    assert float(task_view.abs().max()) == 0.0  # the task loss is the clean items' alone
    assert float(on_view.abs().max()) > 1e-4
    assert torch.allclose(clean, task_clean, atol=1e-7) is anchor


def test_consistency_with_box_supervision_keeps_the_box_loss_of_the_clean_items() -> None:
    """With a box head, an unchanged view leaves the loss as without a view (the box loss of
    the clean items); a changed view adds its divergence and not its boxes' loss."""
    from dataclasses import replace

    from radlens.training.augment import RandomAugment
    from radlens.training.localize import BoxHead
    from radlens.training.loop import batch_loss
    from radlens.training.nets import NetSpec, build_net

    torch.manual_seed(0)
    spec = NetSpec(arch="resnet-tiny", stem_kernel=3, stem_stride=1, dropout=0.0)
    net = build_net(spec, 1, 3, 2)
    x = torch.rand(6, 1, 32, 32)
    masks = torch.zeros(6, 1, 32, 32)
    masks[:3, :, 4:16, 8:20] = 1.0
    y, idx, w = torch.tensor([0, 1, 2, 0, 1, 2]), torch.arange(6), torch.ones(3)
    head = BoxHead(net, x[:1], masks)

    def loss(consistency: float, box: float, view: torch.Tensor | None) -> float:
        recipe = _consistency_recipe(consistency)
        recipe = replace(recipe, schedule=replace(recipe.schedule, box_loss=box))
        augment = RandomAugment(recipe.augment, torch.Generator().manual_seed(1))
        with torch.no_grad():
            return float(batch_loss(net, head, augment, x, idx, y, w, recipe, view, masks))

    plain = loss(5.0, 1.0, None)
    assert loss(5.0, 1.0, x.clone()) == pytest.approx(plain, rel=1e-5)
    assert loss(5.0, 2.0, x.clone()) > plain  # the box term is in
    other = x.flip(-1) * 0.5
    assert loss(5.0, 1.0, other) > loss(0.0, 1.0, other)
    head.remove()


def test_consistency_without_corrupted_copies_is_refused() -> None:
    import logging

    from radlens.training.loop import fit
    from radlens.training.nets import NetSpec, build_net

    net = build_net(NetSpec(arch="resnet-tiny", stem_kernel=3, stem_stride=1), 1, 3, 2)
    x, y = torch.rand(4, 1, 32, 32), torch.tensor([0, 1, 2, 0]).numpy()
    with pytest.raises(ValueError, match="consistency needs corrupted copies"):
        fit(net, _consistency_recipe(1.0), x, y, x, y, logging.getLogger("t"))


@pytest.mark.parametrize("keep", ["best", "last"])
def test_keep_last_runs_every_epoch_and_returns_the_last_weights(keep: str) -> None:
    """``schedule.keep = "last"`` ignores val for selection and stopping (val stays an
    unbiased calibration set); "best" keeps the best epoch and stops after ``patience``."""
    import logging

    from radlens.training.loop import fit, predict, selection_key, validation_scores
    from radlens.training.nets import NetSpec, build_net

    torch.manual_seed(0)
    net = build_net(NetSpec(arch="resnet-tiny", stem_kernel=3, stem_stride=1), 1, 3, 2)
    x = torch.rand(12, 1, 8, 8)
    y = np.array([0, 1, 2] * 4)
    recipe = recipe_with(epochs=8, patience=2, lr=0.05, warmup_epochs=0, batch_size=4, keep=keep)
    fitted, history = fit(net, recipe, x, y, x[:6], y[:6], logging.getLogger("t"))
    kept = history[-1] if keep == "last" else max(history, key=selection_key)
    if keep == "last":
        assert len(history) == 8
    logits = predict(fitted, x[:6], recipe.input.mean, recipe.input.std)
    val_loss = validation_scores(recipe.task, logits, y[:6])[0]
    assert val_loss == pytest.approx(kept.val_loss, rel=1e-5)
