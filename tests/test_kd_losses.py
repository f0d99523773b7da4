"""Distillation losses against values computed by hand, plus level edges, masks, gradients and zero at equality.

The expected values are worked out from the formulas in the docstrings (and docs/distillation.md) with plain
Python `math` on a few numbers, never with torch.nn.functional or the module's own helpers, so a wrong factor,
direction, weighting or normalisation in kd_losses.py shows up as a different number.
"""
from __future__ import annotations

import math

import pytest
import torch

from studio.core.compress import kd_losses as kd

# ---------------------------------------------------------------------------------------------------------------
# Plain-Python references (lists of floats, no torch)
# ---------------------------------------------------------------------------------------------------------------


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _bernoulli_kl(p: float, q: float) -> float:
    """KL(Bernoulli(p) || Bernoulli(q))."""
    return p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))


def _softmax(xs: list[float]) -> list[float]:
    exps = [math.exp(x) for x in xs]
    total = sum(exps)
    return [e / total for e in exps]


def _cosine(u: list[float], v: list[float]) -> float:
    dot = sum(a * b for a, b in zip(u, v))
    return dot / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))


def _masks_by_hand(fg: list, weights: list, boxes: list) -> kd.LevelMasks:
    """A LevelMasks built from literal (B, H, W) lists, so a loss test does not depend on level_masks."""
    return kd.LevelMasks(torch.tensor(fg), torch.tensor(weights), boxes, list(range(len(boxes))))


def _pool_by_hand(feature: list, boxes: list, fg: list) -> tuple[list, list]:
    """Object vectors (mean inside each box) and each object's own-image background vector (mean over bg cells)."""
    channels, height, width = len(feature[0]), len(feature[0][0]), len(feature[0][0][0])
    objects, backgrounds = [], []
    for b, x0, y0, x1, y1 in boxes:
        cells = [(y, x) for y in range(y0, y1) for x in range(x0, x1)]
        objects.append([sum(feature[b][c][y][x] for y, x in cells) / len(cells) for c in range(channels)])
        bg_cells = [(y, x) for y in range(height) for x in range(width) if fg[b][y][x] == 0]
        backgrounds.append([sum(feature[b][c][y][x] for y, x in bg_cells) / len(bg_cells) for c in range(channels)])
    return objects, backgrounds


# ---------------------------------------------------------------------------------------------------------------
# Level assignment, cells and masks
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("side", "level"), [
    (1.0, 2),        # floor(3 + log2(1)) = 3, clamped to the coarsest level
    (0.5, 2),        # exactly on the edge: floor(3 - 1) = 2
    (0.4999, 1),     # just below it: floor(3 - 1.0003) = 1
    (0.25, 1),       # floor(3 - 2) = 1
    (0.2499, 0),     # floor(3 - 2.0006) = 0
    (0.125, 0),      # floor(3 - 3) = 0
    (0.01, 0),       # floor(3 - 6.64) = -4, clamped to the finest level
])
def test_level_assignment_follows_the_formula_at_its_edges(side, level):
    """A square box of side s goes to level clamp(floor(3 + log2(s)), 0, 2) on a 3-level pyramid, edges included."""
    assert kd.assign_levels(torch.tensor([[side, side]]), 3).item() == level


def test_level_assignment_uses_the_area_not_the_longer_side():
    """Level depends on sqrt(w*h): a 0.5 x 0.125 box has the area of a 0.25 square, so level floor(3 - 2) = 1."""
    assert kd.assign_levels(torch.tensor([[0.5, 0.125]]), 3).item() == 1


def test_foreground_and_weight_masks_for_known_boxes():
    """Foreground cells, A_avg / A_i size weights, the 1e-3 background weight and the complement mask."""
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
    # the background mask is the complement: 12 of the 16 cells of image 0, all 16 of image 1
    assert big.background[0].sum().item() == 12 and big.background[0, 0, 0].item() == 1.0
    assert big.background[0, 1, 1].item() == 0.0 and big.background[1].sum().item() == 16
    # size weights: A_avg / A_i with A_avg over all boxes of the image (both levels):
    # A_big = 0.25, A_small = 0.00390625, A_avg = 0.126953125 -> 32.5 for the small box, 0.5078125 for the big one
    assert small.weights[0, 1, 1].item() == pytest.approx(32.5, rel=1e-5)
    assert big.weights[0, 1, 1].item() == pytest.approx(0.5078125, rel=1e-5)
    # everywhere outside the boxes (and in the image without boxes) the weight is the EPSILON value 1e-3
    for level in masks:
        outside = level.weights[level.foreground == 0]
        assert outside.numel() > 0 and torch.allclose(outside, torch.full_like(outside, 1e-3))
    assert big.boxes == [(0, 1, 1, 3, 3)] and small.boxes == [(0, 1, 1, 3, 3)]
    assert big.box_ids == [0] and small.box_ids == [1]


def test_overlapping_boxes_keep_the_larger_size_weight():
    """Where two boxes of one level overlap, the cell keeps the larger (smaller box's) weight, not the last one."""
    # on a single 4x4 level: a 0.5 box over cells 0..1 and a 0.25 box over cell 1 only (listed second, then first)
    for order in ([0, 1], [1, 0]):
        boxes = torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.375, 0.375, 0.25, 0.25]])[order]
        masks = kd.level_masks(boxes, torch.tensor([0, 0]), 1, [(4, 4)])[0]
        # A = 0.25 and 0.0625, A_avg = 0.15625: weights 0.625 (big) and 2.5 (small)
        assert masks.weights[0, 0, 0].item() == pytest.approx(0.625, rel=1e-5)
        assert masks.weights[0, 1, 1].item() == pytest.approx(2.5, rel=1e-5)
        assert masks.weights[0, 3, 3].item() == pytest.approx(1e-3)


def test_a_box_smaller_than_a_cell_still_covers_one():
    """A box narrower than a cell is given the one cell that holds its corner."""
    cells = kd.box_cells(torch.tensor([0.51, 0.51, 0.001, 0.001]), 4, 4)
    assert cells == (2, 2, 3, 3)


# ---------------------------------------------------------------------------------------------------------------
# Local attention and feature loss
# ---------------------------------------------------------------------------------------------------------------

# (B=1, C=2, H=2, W=2), in [b][c][y][x] order
_ATTENTION_FEATURE = [[[[1.0, -2.0], [0.0, 3.0]],
                       [[2.0, 0.0], [-1.0, -1.0]]]]


def test_local_attention_matches_hand_computed_sigmoid_of_mean_plus_max():
    """Spatial attention is sigmoid(mean_c + max_c) per cell, channel attention sigmoid(mean_hw + max_hw)."""
    spatial, channel = kd.local_attention(torch.tensor(_ATTENTION_FEATURE))
    assert spatial.shape == (1, 1, 2, 2) and channel.shape == (1, 2, 1, 1)
    # cell (0,0): values 1, 2 -> mean 1.5 + max 2 = 3.5;  (0,1): -2, 0 -> -1 + 0 = -1
    # cell (1,0): 0, -1 -> -0.5 + 0 = -0.5;              (1,1): 3, -1 -> 1 + 3 = 4
    expected_spatial = [[_sigmoid(3.5), _sigmoid(-1.0)], [_sigmoid(-0.5), _sigmoid(4.0)]]
    # channel 0: 1, -2, 0, 3 -> mean 0.5 + max 3 = 3.5;  channel 1: 2, 0, -1, -1 -> mean 0 + max 2 = 2
    expected_channel = [_sigmoid(3.5), _sigmoid(2.0)]
    assert spatial.flatten().tolist() == pytest.approx([v for row in expected_spatial for v in row], rel=1e-6)
    assert channel.flatten().tolist() == pytest.approx(expected_channel, rel=1e-6)


# three images, C=2, H=W=2; image 0 has one fg cell, image 1 two, image 2 none
_FEATURE_TEACHER = [
    [[[1.0, -0.5], [0.2, 2.0]], [[0.3, 1.5], [-1.0, 0.4]]],
    [[[-0.7, 0.9], [1.2, -0.3]], [[2.2, -1.1], [0.6, 0.8]]],
    [[[0.5, 0.1], [-0.4, 1.1]], [[-0.9, 0.7], [1.3, -0.2]]],
]
_FEATURE_STUDENT = [
    [[[0.4, -0.1], [0.9, 1.2]], [[0.8, 1.0], [-0.3, 1.1]]],
    [[[0.1, 0.3], [1.9, -1.0]], [[1.4, -0.2], [0.0, 1.5]]],
    [[[1.2, -0.6], [0.3, 0.4]], [[-0.1, 1.6], [0.5, 0.6]]],
]
_FEATURE_FG = [[[1.0, 0.0], [0.0, 0.0]],
               [[1.0, 1.0], [0.0, 0.0]],
               [[0.0, 0.0], [0.0, 0.0]]]
_FEATURE_WEIGHTS = [[[3.0, 1e-3], [1e-3, 1e-3]],
                    [[2.0, 0.5], [1e-3, 1e-3]],
                    [[1e-3, 1e-3], [1e-3, 1e-3]]]


def _feature_loss_by_hand(student, teacher, fg, weights):
    """The docstring's formula: e = mean_c((T - S) * A_s * A_c)^2; fg = sum(w*fg*e)/#fg, bg = sum(bg*e)/#bg; mean."""
    fg_losses, bg_losses = [], []
    for b in range(len(teacher)):
        t, s = teacher[b], student[b]
        channels, height, width = len(t), len(t[0]), len(t[0][0])
        spatial = [[_sigmoid(sum(t[c][y][x] for c in range(channels)) / channels
                             + max(t[c][y][x] for c in range(channels))) for x in range(width)] for y in range(height)]
        values = [[t[c][y][x] for y in range(height) for x in range(width)] for c in range(channels)]
        channel = [_sigmoid(sum(v) / len(v) + max(v)) for v in values]
        fg_sum = bg_sum = 0.0
        fg_cells = bg_cells = 0
        for y in range(height):
            for x in range(width):
                e = sum(((t[c][y][x] - s[c][y][x]) * spatial[y][x] * channel[c]) ** 2 for c in range(channels))
                e /= channels
                if fg[b][y][x]:
                    fg_sum += weights[b][y][x] * e
                    fg_cells += 1
                else:
                    bg_sum += e
                    bg_cells += 1
        fg_losses.append(fg_sum / max(fg_cells, 1))  # an image without boxes contributes 0 but still counts
        bg_losses.append(bg_sum / max(bg_cells, 1))
    return sum(fg_losses) / len(fg_losses), sum(bg_losses) / len(bg_losses)


def test_feature_loss_matches_hand_computed_foreground_and_background():
    """fg/bg: attention-weighted squared error, size weights on fg, divided by own cell counts, mean of images."""
    masks = _masks_by_hand(_FEATURE_FG, _FEATURE_WEIGHTS, [(0, 0, 0, 1, 1), (1, 0, 0, 2, 1)])
    fg, bg = kd.feature_loss(torch.tensor(_FEATURE_STUDENT), torch.tensor(_FEATURE_TEACHER), masks)
    want_fg, want_bg = _feature_loss_by_hand(_FEATURE_STUDENT, _FEATURE_TEACHER, _FEATURE_FG, _FEATURE_WEIGHTS)
    assert fg.item() == pytest.approx(want_fg, rel=1e-5)
    assert bg.item() == pytest.approx(want_bg, rel=1e-5)


def test_feature_loss_literal_single_cell():
    """One fg cell of weight 4 in a 1x2 map with one channel: the loss values worked out in full by hand."""
    # teacher F = [0, 0] (one channel, cells fg, bg): spatial = sigmoid(0 + 0) = 1/2 per cell, channel = 1/2,
    # so attention multiplies each difference by 1/4. Student [2, -4]: errors (2/4)^2 = 0.25 and (4/4)^2 = 1.
    # fg = 4 * 0.25 / 1 cell = 1.0;  bg = 1.0 / 1 cell = 1.0
    masks = _masks_by_hand([[[1.0, 0.0]]], [[[4.0, 1e-3]]], [(0, 0, 0, 1, 1)])
    fg, bg = kd.feature_loss(torch.tensor([[[[2.0, -4.0]]]]), torch.zeros(1, 1, 1, 2), masks)
    assert fg.item() == pytest.approx(1.0, rel=1e-6)
    assert bg.item() == pytest.approx(1.0, rel=1e-6)


def test_foreground_loss_sees_only_boxes_and_background_loss_only_the_rest():
    """A difference inside the boxes moves only the fg loss; one outside moves only the bg loss."""
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
    """The same error per cell costs more inside a small box than inside a big one (size weighting)."""
    boxes = torch.tensor([[0.25, 0.25, 0.1, 0.1], [0.7, 0.7, 0.4, 0.4]])  # one image, one small and one big box
    masks = kd.level_masks(boxes, torch.tensor([0, 0]), 1, [(16, 16)])[0]
    teacher = _features(4, batch=1, size=16)
    small_wrong, big_wrong = teacher.clone(), teacher.clone()
    x0, y0, x1, y1 = masks.boxes[0][1:]
    small_wrong[:, :, y0:y1, x0:x1] += 1.0
    x0, y0, x1, y1 = masks.boxes[1][1:]
    big_wrong[:, :, y0:y1, x0:x1] += 1.0
    cells = [(x1 - x0) * (y1 - y0) for _, x0, y0, x1, y1 in masks.boxes]
    small_cost = kd.feature_loss(small_wrong, teacher, masks)[0] / cells[0]
    assert small_cost > kd.feature_loss(big_wrong, teacher, masks)[0] / cells[1]


# ---------------------------------------------------------------------------------------------------------------
# Relation terms
# ---------------------------------------------------------------------------------------------------------------

# two images, C=2, H=W=2: image 0 holds box A (cell y0 x0) and box B (column x1), image 1 box C (row y0)
_REL_BOXES = [(0, 0, 0, 1, 1), (0, 1, 0, 2, 2), (1, 0, 0, 2, 1)]
_REL_FG = [[[1.0, 1.0], [0.0, 1.0]],
           [[1.0, 1.0], [0.0, 0.0]]]
_REL_WEIGHTS = [[[1.0, 1.0], [1e-3, 1.0]],
                [[1.0, 1.0], [1e-3, 1e-3]]]
_REL_TEACHER = [[[[1.0, 2.0], [3.0, 4.0]], [[0.0, -1.0], [5.0, 2.0]]],
                [[[2.0, -2.0], [1.0, 1.0]], [[1.0, 1.0], [0.0, 4.0]]]]
_REL_STUDENT = [[[[0.5, 1.0], [-1.0, 2.0]], [[1.5, 3.0], [2.0, -0.5]]],
                [[[1.0, 0.5], [2.0, -1.0]], [[-0.5, 2.5], [1.0, 3.0]]]]


def test_pooled_objects_match_hand_computed_box_and_background_means():
    """Object vector = mean inside its box; background = mean over its own image's background cells."""
    masks = _masks_by_hand(_REL_FG, _REL_WEIGHTS, _REL_BOXES)
    objects, backgrounds = kd.pooled_objects(torch.tensor(_REL_TEACHER), masks)
    # A: cell (0,0) -> (1, 0);  B: cells (0,1),(1,1) -> ((2+4)/2, (-1+2)/2) = (3, 0.5);  C: row 0 -> (0, 1)
    assert objects.flatten().tolist() == pytest.approx([1.0, 0.0, 3.0, 0.5, 0.0, 1.0])
    # image 0 background is cell (1,0) -> (3, 5); image 1 background row 1 -> ((1+1)/2, (0+4)/2) = (1, 2)
    assert backgrounds.flatten().tolist() == pytest.approx([3.0, 5.0, 3.0, 5.0, 1.0, 2.0])


def test_relation_matrices_are_cosine_similarities():
    """R_obj holds the cosine of every pair of objects, R_obj_bg that of each object and its background."""
    objects = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [-3.0, 0.0]])
    backgrounds = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    r_obj, r_bg = kd.relation_matrices(objects, backgrounds)
    s = 1 / math.sqrt(2)  # cos 45 degrees
    assert torch.allclose(r_obj, torch.tensor([[1.0, 0.0, s, -1.0],
                                               [0.0, 1.0, s, 0.0],
                                               [s, s, 1.0, -s],
                                               [-1.0, 0.0, -s, 1.0]]), atol=1e-6)
    assert torch.allclose(r_bg, torch.tensor([1.0, 0.0, s, -s]), atol=1e-6)


def test_relation_loss_matches_hand_computed_cosine_matrices():
    """Relation loss = mean over N*N of (R_obj_s - R_obj_t)^2 + mean over N of (R_bg_s - R_bg_t)^2."""
    masks = _masks_by_hand(_REL_FG, _REL_WEIGHTS, _REL_BOXES)
    loss = kd.relation_loss(torch.tensor(_REL_STUDENT), torch.tensor(_REL_TEACHER), masks)
    s_obj, s_bg = _pool_by_hand(_REL_STUDENT, _REL_BOXES, _REL_FG)
    t_obj, t_bg = _pool_by_hand(_REL_TEACHER, _REL_BOXES, _REL_FG)
    n = len(_REL_BOXES)
    obj_term = sum((_cosine(s_obj[i], s_obj[j]) - _cosine(t_obj[i], t_obj[j])) ** 2
                   for i in range(n) for j in range(n)) / (n * n)
    bg_term = sum((_cosine(s_obj[i], s_bg[i]) - _cosine(t_obj[i], t_bg[i])) ** 2 for i in range(n)) / n
    assert obj_term > 1e-3 and bg_term > 1e-3  # both parts matter on this input
    assert loss.item() == pytest.approx(obj_term + bg_term, rel=1e-5)


def test_relation_loss_ignores_a_uniform_rescaling_of_the_student():
    """Cosines do not change when the student's features are scaled, so neither does the loss."""
    masks, teacher = _masks(), _features(5)
    assert kd.relation_loss(3.0 * teacher, teacher, masks).item() == pytest.approx(0.0, abs=1e-6)


def test_relation_loss_is_zero_without_objects_and_keeps_the_graph():
    """A level with no boxes gives a zero loss that still backpropagates (zero gradient)."""
    empty = kd.level_masks(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), 2, [(4, 4)])[0]
    student = _features(6, size=4).requires_grad_(True)
    loss = kd.relation_loss(student, _features(7, size=4), empty)
    assert loss.item() == 0.0
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() == 0


# ---------------------------------------------------------------------------------------------------------------
# Response terms
# ---------------------------------------------------------------------------------------------------------------

# (B=2, nc=2, N=2) class logits, in [b][class][anchor] order; teacher and student deliberately asymmetric
_CLS_TEACHER = [[[1.5, -2.0], [0.5, 3.0]], [[-1.0, 2.5], [4.0, -0.5]]]
_CLS_STUDENT = [[[-0.5, 1.0], [2.0, 0.0]], [[1.5, -2.0], [0.5, 1.0]]]


@pytest.mark.parametrize("temperature", [2.0, 3.0])
def test_class_response_loss_matches_hand_computed_kl(temperature):
    """T^2 * mean over (image, anchor) of sum over classes of KL(Bern(sigmoid(t/T)) || Bern(sigmoid(s/T)))."""
    total = 0.0
    for b in range(2):
        for n in range(2):
            for c in range(2):
                p = _sigmoid(_CLS_TEACHER[b][c][n] / temperature)
                q = _sigmoid(_CLS_STUDENT[b][c][n] / temperature)
                total += _bernoulli_kl(p, q)
    expected = temperature**2 * total / (2 * 2)
    got = kd.class_response_loss(torch.tensor(_CLS_STUDENT), torch.tensor(_CLS_TEACHER), temperature)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_class_response_loss_literal_value_and_direction():
    """One logit at T=2: KL(teacher || student) times 4, worked out in closed form; the reverse KL differs."""
    # teacher logit 2*ln 3 at T=2 -> sigmoid(ln 3) = 3/4; student logit 0 -> 1/2.
    # KL(3/4 || 1/2) = 3/4 ln(3/2) + 1/4 ln(1/2) = 3/4 ln 3 - ln 2 = 0.1308120...; times T^2 = 4 -> 0.5232481...
    # (the reverse KL(1/2 || 3/4) = 1/2 ln(4/3) = 0.1438410..., times 4 = 0.575364..., so a swap shows.)
    teacher = torch.tensor([[[2 * math.log(3.0)]]])
    got = kd.class_response_loss(torch.zeros(1, 1, 1), teacher, 2.0)
    assert got.item() == pytest.approx(0.5232481437, rel=1e-6)


def test_class_response_loss_grows_with_disagreement():
    """A student further from the teacher gets a larger class loss."""
    teacher = torch.tensor([[[4.0, -4.0]]])
    near, far = torch.tensor([[[3.0, -3.0]]]), torch.tensor([[[-4.0, 4.0]]])
    assert kd.class_response_loss(far, teacher, 1.0) > kd.class_response_loss(near, teacher, 1.0) > 0


# box bins (B=2, 4 sides * reg_max=3, N=2) in [b][side*reg_max + bin][anchor] order, and teacher class logits
_REG_MAX = 3
_BOX_TEACHER = [
    [[2.0, 0.1], [0.5, 1.5], [-1.0, 0.3], [0.0, 0.0], [1.0, -1.0], [3.0, 2.0],
     [-0.5, 0.8], [0.4, 0.4], [1.2, -0.6], [2.5, 0.0], [0.0, 1.0], [-1.5, 0.5]],
    [[0.3, -0.2], [1.1, 2.2], [0.0, 0.7], [-0.8, 1.0], [0.6, 0.0], [0.2, -1.2],
     [1.4, 0.9], [-0.3, 0.1], [0.0, 2.0], [0.7, -0.4], [1.8, 0.3], [-0.2, 0.6]],
]
_BOX_STUDENT = [
    [[0.0, 0.4], [1.0, 1.0], [0.5, -0.5], [0.7, 0.2], [0.2, 0.3], [1.0, 1.5],
     [0.0, 0.0], [1.1, 0.9], [0.3, -0.1], [0.5, 0.6], [0.5, 0.4], [0.0, 0.2]],
    [[1.0, 0.2], [0.4, 0.8], [-0.5, 0.1], [0.0, 0.3], [0.9, 0.5], [0.6, -0.7],
     [0.2, 0.2], [0.5, 0.6], [0.8, 1.0], [0.1, 0.0], [0.9, 0.7], [0.4, 0.1]],
]
_BOX_TEACHER_LOGITS = [[[-3.0, 2.0], [0.5, -1.0]],   # image 0: max over classes 0.5 (anchor 0), 2.0 (anchor 1)
                       [[1.0, -4.0], [-2.0, -2.5]]]  # image 1: 1.0 (anchor 0), -2.5 (anchor 1)


@pytest.mark.parametrize("temperature", [2.0, 3.0])
def test_box_response_loss_matches_hand_computed_teacher_weighted_kl(temperature):
    """T^2 * sum(w * KL) / sum(w): KL of softmax(bins/T) summed over sides, w = max class sigmoid of the teacher."""
    weighted, weights = 0.0, 0.0
    for b in range(2):
        for n in range(2):
            kl = 0.0
            for side in range(4):
                rows = range(side * _REG_MAX, (side + 1) * _REG_MAX)
                p = _softmax([_BOX_TEACHER[b][r][n] / temperature for r in rows])
                q = _softmax([_BOX_STUDENT[b][r][n] / temperature for r in rows])
                kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
            w = max(_sigmoid(_BOX_TEACHER_LOGITS[b][c][n]) for c in range(2))
            weighted += w * kl
            weights += w
    expected = temperature**2 * weighted / weights
    student, teacher, logits = (torch.tensor(v) for v in (_BOX_STUDENT, _BOX_TEACHER, _BOX_TEACHER_LOGITS))
    got = kd.box_response_loss(student, teacher, logits, _REG_MAX, temperature)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_box_response_loss_literal_value_weights_anchors_by_teacher_confidence():
    """Two anchors, only the first disagrees: its KL times 4 (T^2) times its share of the teacher's confidence."""
    # reg_max=2, T=2. Anchor 0, side 0: teacher bins (2 ln 3, 0) -> softmax((ln 3, 0)) = (3/4, 1/4); student (0, 0)
    # -> (1/2, 1/2); KL = 3/4 ln 3 - ln 2 = 0.1308120. All other sides and anchor 1 agree: KL 0.
    # Teacher class logits: anchor 0 max 0 -> w0 = 1/2; anchor 1 max ln 3 -> w1 = 3/4.
    # loss = 4 * 0.1308120 * (1/2) / (1/2 + 3/4) = 1.6 * 0.1308120 = 0.2092993 (unweighted mean would be 0.261624)
    teacher = torch.zeros(1, 8, 2)
    teacher[0, 0, 0] = 2 * math.log(3.0)
    logits = torch.tensor([[[0.0, math.log(3.0)], [-1.0, -2.0]]])
    got = kd.box_response_loss(torch.zeros(1, 8, 2), teacher, logits, 2, 2.0)
    assert got.item() == pytest.approx(0.2092992575, rel=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Zero at equality and gradients
# ---------------------------------------------------------------------------------------------------------------


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
    angles_t = torch.rand(2, 1, 64, generator=torch.Generator().manual_seed(9)) * math.pi - math.pi / 4
    return {
        "foreground": (lambda s, t: kd.feature_loss(s, t, masks)[0], _features(1)),
        "background": (lambda s, t: kd.feature_loss(s, t, masks)[1], _features(1)),
        "relation": (lambda s, t: kd.relation_loss(s, t, masks), _features(1)),
        "class response": (lambda s, t: kd.class_response_loss(s, t, 2.0), logits_t),
        "box response": (lambda s, t: kd.box_response_loss(s, t, logits_t, 16, 2.0), boxes_t),
        "angle response": (lambda s, t: kd.angle_response_loss(s, t, logits_t), angles_t),
    }


@pytest.mark.parametrize("name", ["foreground", "background", "relation", "class response", "box response",
                                  "angle response"])
def test_each_loss_is_zero_at_equality_and_passes_gradients_otherwise(name):
    """Every loss is 0 when the student equals the teacher, positive otherwise, with finite non-zero gradients."""
    fn, teacher = _loss_fns()[name]
    same = teacher.clone().requires_grad_(True)
    assert fn(same, teacher).item() == pytest.approx(0.0, abs=1e-6)
    student = (teacher + 0.5 * torch.randn_like(teacher)).requires_grad_(True)
    loss = fn(student, teacher)
    assert loss.item() > 1e-4
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert torch.isfinite(student.grad).all()


@pytest.mark.parametrize("name", ["foreground", "class response", "box response", "angle response"])
def test_teacher_targets_keep_their_gradient(name):
    """The teacher's targets are not detached (teacher fine-tuning needs them), so its gradient is non-zero."""
    fn, reference = _loss_fns()[name]
    teacher = reference.clone().requires_grad_(True)
    student = reference + 0.5 * torch.randn_like(reference)
    fn(student, teacher).backward()
    assert teacher.grad is not None and teacher.grad.abs().sum() > 0


def test_angle_response_is_blind_to_a_half_turn_and_weighs_anchors_by_teacher_confidence():
    """A rectangle turned by pi is the same one: no loss. A quarter turn costs the most (sin^2 = 1), and an anchor the
    teacher is unsure of (sigmoid ~ 0) hardly counts: here the loss is the confident anchor's alone."""
    teacher = torch.tensor([[[0.1, 1.0]]])
    logits = torch.tensor([[[20.0, -20.0]]])  # (B, nc=1, N=2): anchor 0 confident, anchor 1 not
    assert kd.angle_response_loss(teacher + math.pi, teacher, logits).item() == pytest.approx(0.0, abs=1e-6)
    quarter = kd.angle_response_loss(teacher + torch.tensor([[[math.pi / 2, 0.0]]]), teacher, logits)
    assert quarter.item() == pytest.approx(1.0, abs=1e-6)
    only_unsure = kd.angle_response_loss(teacher + torch.tensor([[[0.0, math.pi / 2]]]), teacher, logits)
    assert only_unsure.item() < 1e-6


def test_an_oriented_box_covers_the_cells_of_its_upright_box_and_keeps_its_own_area():
    """A 0.5 x 0.125 box turned 45 degrees spans (0.5 + 0.125) / sqrt 2 = 0.442 of the image each way; its level and
    size weight come from 0.5 x 0.125 (level 1 of 3: side sqrt(1/16) = 1/4), as the unturned box's do."""
    turned = torch.tensor([[0.5, 0.5, 0.5, 0.125, math.pi / 4]])
    flat = torch.tensor([[0.5, 0.5, 0.5, 0.125]])
    assert kd.upright(turned)[0].tolist() == pytest.approx([0.5, 0.5, 0.4419, 0.4419], abs=1e-4)
    shapes = [(20, 20), (10, 10), (5, 5)]
    m_turned = kd.level_masks(turned, torch.tensor([0]), 1, shapes)
    m_flat = kd.level_masks(flat, torch.tensor([0]), 1, shapes)
    assert [len(m.boxes) for m in m_turned] == [len(m.boxes) for m in m_flat] == [0, 1, 0]
    assert m_turned[1].boxes[0][1:] == (2, 2, 8, 8)  # 0.279..0.721 of 10 cells, rounded outwards
    assert m_flat[1].boxes[0][1:] == (2, 4, 8, 6)  # 0.25..0.75 by 0.4375..0.5625
