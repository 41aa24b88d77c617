"""Box supervision: masks placed as the model input is, masks that follow the geometric
augmentation, a head that trains the trunk and leaves the exported classifier unchanged."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.train
torch = pytest.importorskip("torch")

from radlens.errors import ConfigError  # noqa: E402
from radlens.io.box_sets import BoxedImages  # noqa: E402
from radlens.io.datasets import LabelledImages  # noqa: E402
from radlens.models.card import InputSpec, Resize  # noqa: E402
from radlens.training.augment import RandomAugment  # noqa: E402
from radlens.training.localize import (  # noqa: E402
    BoxHead,
    box_masks,
    cam_box_loss,
    cell_targets,
    read_box_masks,
)
from radlens.training.loop import fit  # noqa: E402
from radlens.training.nets import build_net  # noqa: E402
from radlens.training.recipe import Augment, NetSpec  # noqa: E402
from train_helpers import minimal_recipe  # noqa: E402


def _boxed(images: list[np.ndarray], boxes: list[list[list[float]]]) -> BoxedImages:
    return BoxedImages(
        images=images,
        boxes=[np.array(b, np.float32).reshape(-1, 4) for b in boxes],
        classes=[np.zeros(len(b), np.int64) for b in boxes],
        difficult=[np.zeros(len(b), bool) for b in boxes],
        label_names=("fracture",),
        ids=tuple(f"IMG{i}.png" for i in range(len(images))),
    )


def _labelled(images: list[np.ndarray], labels: list[int]) -> LabelledImages:
    return LabelledImages(
        images=images,
        labels=np.array(labels),
        label_names=("no fracture", "fracture"),
        ids=tuple(f"images/IMG{i}.png" for i in range(len(images))),
        split="train",
    )


def test_a_box_lands_where_the_padded_input_puts_its_pixels() -> None:
    # 40 x 80 into 32 x 32 with padding: scale 2.5, the image fills rows 8-24.
    image = np.zeros((40, 80), np.uint8)
    boxes = _boxed([image, image], [[[20, 10, 40, 30]], []])
    spec = InputSpec(size=(32, 32), resize=Resize.PAD)
    masks = box_masks(_labelled([image, image], [1, 0]), boxes, spec)
    assert masks.shape == (2, 1, 32, 32)
    inside = masks[0, 0]
    # The box is x 8-16, y 8 + 4 to 8 + 12 in input pixels.
    assert inside[13:19, 9:15].min() == 1 and inside[:8].max() == 0 and inside[24:].max() == 0
    assert inside[:, :7].max() == 0 and inside[:, 18:].max() == 0
    assert 40 <= float(inside.sum()) <= 100
    assert float(masks[1].sum()) == 0  # no boxes: an empty mask


def test_images_are_matched_to_their_boxes_by_file_name() -> None:
    image = np.zeros((16, 16), np.uint8)
    boxes = _boxed([image, image], [[], [[0, 0, 8, 8]]])
    data = _labelled([image, image], [0, 1])
    swapped = replace(data, images=data.images[::-1], ids=data.ids[::-1])
    masks = box_masks(swapped, boxes, InputSpec(size=(16, 16)))
    assert float(masks[0].sum()) > 0 and float(masks[1].sum()) == 0


def test_a_folder_without_a_box_table_is_refused(tmp_path: Path) -> None:
    image = np.zeros((16, 16), np.uint8)
    with pytest.raises(ConfigError, match="boxes.csv"):
        read_box_masks(tmp_path, _labelled([image], [0]), InputSpec(size=(16, 16)))


def test_masks_follow_the_geometric_augmentation_and_change_no_draw() -> None:
    spec = Augment(
        rotate_deg=20, scale=(0.8, 1.2), translate=0.1, hflip=True, gamma=(0.7, 1.4), noise_std=0.05
    )
    gen = torch.Generator().manual_seed(3)
    masks = (torch.rand(6, 1, 24, 24, generator=gen) > 0.7).float()
    x = torch.rand(6, 1, 24, 24, generator=gen)
    plain = RandomAugment(spec, torch.Generator().manual_seed(0))(x)
    both = RandomAugment(spec, torch.Generator().manual_seed(0))(x, masks)
    torch.testing.assert_close(both[:, :-1], plain)  # same draws, image unchanged by masks
    # The masks moved exactly as an image of the masks moves, with no intensity change.
    geometric = Augment(rotate_deg=20, scale=(0.8, 1.2), translate=0.1, hflip=True)
    moved = RandomAugment(geometric, torch.Generator().manual_seed(0))(masks)
    torch.testing.assert_close(both[:, -1:], moved)
    assert not torch.equal(both[:, -1:], masks)


def test_masks_without_any_box_are_refused_as_a_setting_that_cannot_work() -> None:
    from radlens.training.localize import positive_weight

    with pytest.raises(ConfigError, match="no training image has a box"):
        positive_weight(torch.zeros(4, 1, 16, 16), (4, 4))


def test_cells_are_positive_where_a_box_reaches() -> None:
    masks = torch.zeros(1, 1, 32, 32)
    masks[0, 0, 0:3, 0:3] = 1.0
    cells = cell_targets(masks, (4, 4))
    assert cells[0, 0, 0, 0] == 1 and float(cells.sum()) == 1


def _toy(n: int, size: int, seed: int) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """Images with a faint square where the label is 1, and its box mask."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.3, 0.5, (n, 1, size, size)).astype(np.float32)
    y = np.arange(n) % 2
    masks = np.zeros_like(x)
    for i in np.flatnonzero(y):
        r, c = rng.integers(0, size - 12, 2)
        x[i, 0, r : r + 12, c : c + 12] += 0.15
        masks[i, 0, r : r + 12, c : c + 12] = 1.0
    return torch.from_numpy(x), y, torch.from_numpy(masks)


def test_fit_with_box_loss_trains_the_head_then_drops_it(caplog: pytest.LogCaptureFixture) -> None:
    recipe = minimal_recipe(
        "binary", ["no", "yes"], epochs=2, batch_size=8, box_loss=1.0, threads=1
    )
    recipe = replace(
        recipe,
        input=replace(recipe.input, size=(64, 64), mean=0.5, std=0.25),
        net=NetSpec(arch="resnet-tiny", stem_kernel=3, stem_stride=1),
    )
    x, y, masks = _toy(32, 64, 0)
    torch.manual_seed(0)
    net = build_net(recipe.net, 1, 2, 2)
    keys = set(net.state_dict())
    log = logging.getLogger("test_localize")
    with caplog.at_level(logging.INFO, logger="test_localize"):
        trained, history = fit(net, recipe, x, y, x[:8], y[:8], log, masks=masks)
    assert "box supervision: loss weight 1.00, 8 x 8 cells" in caplog.text
    assert set(trained.state_dict()) == keys  # the head is not part of the model
    assert not trained.trunk.layer3._forward_hooks  # and no longer listens to it
    # The training loss includes the box term: higher than the same run without it.
    torch.manual_seed(0)
    plain_net = build_net(recipe.net, 1, 2, 2)
    plain = replace(recipe, schedule=replace(recipe.schedule, box_loss=0.0))
    _, plain_history = fit(plain_net, plain, x, y, x[:8], y[:8], log, masks=masks)
    assert history[0].train_loss > plain_history[0].train_loss


def test_the_box_head_learns_where_the_boxes_are() -> None:
    x, _, masks = _toy(16, 64, 1)
    torch.manual_seed(0)
    net = build_net(NetSpec(arch="resnet-tiny", stem_kernel=3, stem_stride=1), 1, 2, 2)
    head = BoxHead(net, x[:1], masks)
    assert head.cells == (8, 8)
    for p in net.parameters():
        p.requires_grad_(False)  # the head alone, on fixed random features
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    net.eval()
    losses = []
    for _ in range(60):
        net(x)
        loss = head.loss(masks)
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.85 * losses[0]
    with torch.no_grad():
        net(x)
        logits = head()
    cells = cell_targets(masks, head.cells).bool()
    # Box cells now score above the rest, on features the head did not shape.
    assert float(logits[cells].mean()) > float(logits[~cells].mean()) + 0.5
    head.remove()
    with pytest.raises(RuntimeError, match="not read a batch"):
        head()


def test_the_box_loss_of_a_batch_holding_other_views_is_its_first_items() -> None:
    """A batch of clean items followed by their corrupted views (the consistency term) is
    scored on the clean items' masks only: the loss is that of the clean items alone."""
    x, _, masks = _toy(8, 64, 1)
    torch.manual_seed(0)
    net = build_net(NetSpec(arch="resnet-tiny", stem_kernel=3, stem_stride=1), 1, 2, 2)
    net.eval()  # per-item features: a batch's other items change nothing
    head = BoxHead(net, x[:1], masks)
    with torch.no_grad():
        net(x)
        alone = float(head.loss(masks))
        net(torch.cat([x, torch.rand_like(x)]))
        mixed = float(head.loss(masks))
    assert mixed == pytest.approx(alone, rel=1e-5)
    head.remove()


def test_the_cam_box_loss_is_the_share_of_the_map_in_the_boxes() -> None:
    masks = torch.zeros(3, 1, 32, 32)
    masks[0, 0, 0:8, 0:8] = 1.0  # one of 16 cells
    masks[1, 0, 8:24, 8:24] = 1.0  # four of 16
    flat = torch.zeros(3, 4, 4)
    # A flat map puts 1/16 and 4/16 in the boxes; the boxless third item adds nothing.
    expected = (np.log(16) + np.log(4)) / 2
    assert float(cam_box_loss(flat, masks)) == pytest.approx(expected, rel=1e-6)
    on = flat.clone()
    on[0, 0, 0] = 6.0
    on[1, 1:3, 1:3] = 6.0  # the peaks on the boxes: close to 0
    off = flat.clone()
    off[0, 3, 3] = 6.0
    off[1, 0, 0] = 6.0  # the peaks elsewhere: more than flat
    assert float(cam_box_loss(on, masks)) < 0.05 < expected < float(cam_box_loss(off, masks))
    # The map's scale and offset on a boxless item change nothing.
    moved = flat.clone()
    moved[2] = torch.randn(4, 4) * 5 + 3
    assert float(cam_box_loss(moved, masks)) == pytest.approx(expected, rel=1e-6)


def test_a_batch_without_boxes_has_no_cam_box_loss_and_still_backpropagates() -> None:
    cam = torch.randn(2, 4, 4, requires_grad=True)
    loss = cam_box_loss(cam, torch.zeros(2, 1, 16, 16))
    assert float(loss.detach()) == 0.0
    loss.backward()  # type: ignore[no-untyped-call]
    assert cam.grad is not None and float(cam.grad.abs().sum()) == 0.0


def test_the_cam_box_loss_moves_the_classifiers_own_map_onto_the_boxes() -> None:
    """A few steps on the CAM box loss put the exported map's peak in the box (what the
    box head alone does not do: it shapes the third stage, not the map)."""
    x, y, masks = _toy(16, 64, 2)
    boxed = torch.from_numpy(y == 1)
    torch.manual_seed(0)
    net = build_net(NetSpec(arch="resnet-tiny", stem_kernel=3, stem_stride=1), 1, 2, 2)

    def peaks_in_box() -> int:
        net.eval()
        with torch.no_grad():
            _, cams = net((x[boxed] - 0.5) / 0.25)
        cells = cell_targets(masks[boxed], (cams.shape[-2], cams.shape[-1])).flatten(1)
        peak = cams[:, 1].flatten(1).argmax(dim=1)
        return int(cells[torch.arange(len(peak)), peak].sum())

    before = peaks_in_box()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(40):
        net.train()
        _, cams = net((x - 0.5) / 0.25)
        loss = cam_box_loss(cams[:, 1], masks)
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    after = peaks_in_box()
    assert after == int(boxed.sum()) > before


def test_fit_with_the_cam_box_loss_adds_it_when_there_are_box_masks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recipe = minimal_recipe("binary", ["no", "yes"], epochs=1, batch_size=8, cam_loss=1.0)
    recipe = replace(
        recipe,
        input=replace(recipe.input, size=(64, 64), mean=0.5, std=0.25),
        net=NetSpec(arch="resnet-tiny", stem_kernel=3, stem_stride=1),
    )
    x, y, masks = _toy(16, 64, 0)
    log = logging.getLogger("test_localize")
    net = build_net(recipe.net, 1, 2, 2)
    with caplog.at_level(logging.INFO, logger="test_localize"):
        fit(net, recipe, x, y, x[:8], y[:8], log)  # radlens learn: cases have no boxes
    assert "cam_loss 1.00: no box masks given, so no CAM box loss" in caplog.text
    caplog.clear()
    torch.manual_seed(0)
    with caplog.at_level(logging.INFO, logger="test_localize"):
        _, history = fit(
            build_net(recipe.net, 1, 2, 2), recipe, x, y, x[:8], y[:8], log, masks=masks
        )
    assert "CAM box loss: weight 1.00" in caplog.text
    assert "box supervision" not in caplog.text  # no head without box_loss
    torch.manual_seed(0)
    plain = replace(recipe, schedule=replace(recipe.schedule, cam_loss=0.0))
    _, plain_history = fit(
        build_net(recipe.net, 1, 2, 2), plain, x, y, x[:8], y[:8], log, masks=masks
    )
    assert history[0].train_loss > plain_history[0].train_loss  # the term is in the loss
