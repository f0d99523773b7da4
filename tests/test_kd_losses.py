"""Distillation losses: level assignment at its edges, masks for known boxes, gradients, zero at equality."""
from __future__ import annotations

import math

import pytest
import torch

from studio.core.compress import kd_losses as kd


@pytest.mark.parametrize(("side", "level"), [
    (1.0, 2),        # floor(3 + 0) = 3, clamped to the coarsest level
    (0.5, 2),        # exactly on the edge: floor(3 - 1) = 2
    (0.4999, 1),     # just below it
    (0.25, 1),
    (0.2499, 0),
    (0.125, 0),      # floor(3 - 3) = 0
    (0.01, 0),       # floor(3 - 6.6) < 0, clamped to the finest level
])
def test_level_assignment_follows_the_formula_at_its_edges(side, level):
    wh = torch.tensor([[side, side]])
    assert kd.assign_levels(wh, 3).item() == level
    expected = min(max(math.floor(3 + math.log2(math.sqrt(side * side))), 0), 2)
    assert expected == level


def test_level_assignment_uses_the_area_not_the_longer_side():
    # a 0.5 x 0.125 box has the area of a 0.25 square: level floor(3 - 2) = 1
    assert kd.assign_levels(torch.tensor([[0.5, 0.125]]), 3).item() == 1


def test_foreground_and_weight_masks_for_known_boxes():
    # image 0: a big box (level 2 on a 3-level pyramid) and a small one (level 0); image 1: none
    boxes = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.125, 0.125, 0.0625, 0.0625]])
    masks = kd.level_masks(boxes, torch.tensor([0, 0]), 2, [(16, 16), (8, 8), (4, 4)])
    big, small = masks[2], masks[0]
    expected_big = torch.zeros(4, 4)
    expected_big[1:3, 1:3] = 1.0  # cells 1..2 of 4 cover 0.25..0.75
    assert torch.equal(big.foreground[0], expected_big)
    expected_small = torch.zeros(16, 16)
    expected_small[1:3, 1:3] = 1.0  # 0.09375..0.15625 of 16 cells: cells 1 and 2
    assert torch.equal(small.foreground[0], expected_small)
    assert masks[1].foreground.sum() == 0 and big.foreground[1].sum() == 0
    # size weights: A_avg / A_i, so the small box weighs (mean area / its area) and the big one less than 1
    a_big, a_small = 0.25, 0.0625**2
    mean = (a_big + a_small) / 2
    assert small.weights[0, 1, 1].item() == pytest.approx(mean / a_small, rel=1e-5)
    assert big.weights[0, 1, 1].item() == pytest.approx(mean / a_big, rel=1e-5)
    assert big.weights[0, 0, 0].item() == pytest.approx(kd.EPSILON)
    assert torch.equal(big.background, 1 - big.foreground)
    assert big.boxes == [(0, 1, 1, 3, 3)] and small.boxes == [(0, 1, 1, 3, 3)]


def test_a_box_smaller_than_a_cell_still_covers_one():
    cells = kd.box_cells(torch.tensor([0.51, 0.51, 0.001, 0.001]), 4, 4)
    assert cells == (2, 2, 3, 3)


def _features(seed: int, channels: int = 8, size: int = 8, batch: int = 2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, size, size, generator=g)


def _masks(size: int = 8):
    boxes = torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.3, 0.4], [0.5, 0.5, 0.25, 0.25]])
    return kd.level_masks(boxes, torch.tensor([0, 0, 1]), 2, [(size, size)])[0]


def _loss_fns():
    masks = _masks()
    logits_t = _features(7, channels=4).flatten(2)  # (B, nc=4, N) logits
    boxes_t = _features(8, channels=64).flatten(2)  # (B, 4*16, N) box bins
    return {
        "foreground": (lambda s, t: kd.feature_loss(s, t, masks)[0], _features(1)),
        "background": (lambda s, t: kd.feature_loss(s, t, masks)[1], _features(1)),
        "relation": (lambda s, t: kd.relation_loss(s, t, masks), _features(1)),
        "class response": (lambda s, t: kd.class_response_loss(s, t, 2.0), logits_t),
        "box response": (lambda s, t: kd.box_response_loss(s, t, logits_t, 16, 2.0), boxes_t),
    }


@pytest.mark.parametrize("name", ["foreground", "background", "relation", "class response", "box response"])
def test_each_loss_is_zero_at_equality_and_passes_gradients_otherwise(name):
    fn, teacher = _loss_fns()[name]
    same = teacher.clone().requires_grad_(True)
    assert fn(same, teacher).item() == pytest.approx(0.0, abs=1e-6)
    student = (teacher + 0.5 * torch.randn_like(teacher)).requires_grad_(True)
    loss = fn(student, teacher)
    assert loss.item() > 1e-4
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert torch.isfinite(student.grad).all()


def test_foreground_loss_sees_only_boxes_and_background_loss_only_the_rest():
    masks, teacher = _masks(), _features(3)
    inside = teacher.clone()
    inside[masks.foreground[:, None].expand_as(teacher) > 0] += 1.0  # differ only inside boxes
    fg, bg = kd.feature_loss(inside, teacher, masks)
    assert fg > 0 and bg == 0
    outside = teacher.clone()
    outside[masks.background[:, None].expand_as(teacher) > 0] += 1.0
    fg, bg = kd.feature_loss(outside, teacher, masks)
    assert fg == 0 and bg > 0


def test_small_objects_weigh_more_in_the_foreground_loss():
    boxes = torch.tensor([[0.25, 0.25, 0.1, 0.1], [0.7, 0.7, 0.4, 0.4]])  # one image, one small and one big box
    masks = kd.level_masks(boxes, torch.tensor([0, 0]), 1, [(16, 16)])[0]
    teacher = _features(4, batch=1, size=16)
    small_wrong, big_wrong = teacher.clone(), teacher.clone()
    x0, y0, x1, y1 = masks.boxes[0][1:]
    small_wrong[:, :, y0:y1, x0:x1] += 1.0
    x0, y0, x1, y1 = masks.boxes[1][1:]
    big_wrong[:, :, y0:y1, x0:x1] += 1.0
    cells = [(x1 - x0) * (y1 - y0) for _, x0, y0, x1, y1 in masks.boxes]
    # the same error per cell costs more inside the small box
    small_cost = kd.feature_loss(small_wrong, teacher, masks)[0] / cells[0]
    assert small_cost > kd.feature_loss(big_wrong, teacher, masks)[0] / cells[1]


def test_relation_matrices_are_cosine_similarities():
    objects = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    backgrounds = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    r_obj, r_bg = kd.relation_matrices(objects, backgrounds)
    s = 1 / math.sqrt(2)
    assert torch.allclose(r_obj, torch.tensor([[1.0, 0.0, s], [0.0, 1.0, s], [s, s, 1.0]]), atol=1e-6)
    assert torch.allclose(r_bg, torch.tensor([1.0, 0.0, s]), atol=1e-6)


def test_relation_loss_ignores_a_uniform_rescaling_of_the_student():
    masks, teacher = _masks(), _features(5)
    assert kd.relation_loss(3.0 * teacher, teacher, masks).item() == pytest.approx(0.0, abs=1e-6)


def test_class_response_loss_grows_with_disagreement():
    teacher = torch.tensor([[[4.0, -4.0]]])
    near, far = torch.tensor([[[3.0, -3.0]]]), torch.tensor([[[-4.0, 4.0]]])
    assert kd.class_response_loss(far, teacher, 1.0) > kd.class_response_loss(near, teacher, 1.0) > 0
