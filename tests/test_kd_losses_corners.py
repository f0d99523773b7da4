"""Distillation losses at their corners: cell rounding at map edges, non-square boxes and shapes, a barely
confident teacher, masks on another device; expected values worked out by hand as in test_kd_losses.py."""
from __future__ import annotations

import math

import pytest
import torch

from studio.core.compress import kd_losses as kd
from tests.test_kd_losses import _bernoulli_kl, _masks_by_hand, _sigmoid


@pytest.mark.parametrize(("box", "size", "cells"), [
    ((0.5, 0.5, 0.75, 0.75), 8, (1, 1, 7, 7)),   # 0.125..0.875 of 8 cells: exactly cells 1..6
    ((0.25, 0.5, 0.25, 0.5), 10, (1, 2, 4, 8)),  # x 1.25..3.75 cells -> 1..4, y 2.5..7.5 -> 2..8
    ((1.2, 1.2, 0.1, 0.1), 4, (3, 3, 4, 4)),     # wholly past the bottom-right edge: the last cell
    ((-0.2, -0.2, 0.1, 0.1), 4, (0, 0, 1, 1)),   # wholly past the top-left edge: the first cell
    ((0.5, 0.5, 0.0, 0.0), 4, (2, 2, 3, 3)),     # no size at all, on a cell border: the cell after it
])
def test_box_cells_round_outwards_and_stay_on_the_map(box, size, cells):
    """A box covers floor(left)..ceil(right) cells, clamped to the map, and never fewer than one cell."""
    assert kd.box_cells(torch.tensor(box), size, size) == cells


def test_size_weights_use_width_times_height():
    """A_avg / A_i uses each box's w*h: a 0.5 x 0.25 box and a 0.25 x 0.25 box weigh 0.75 and 1.5."""
    # areas 0.125 and 0.0625, mean 0.09375; the boxes sit in different cells of one 4x4 level
    boxes = torch.tensor([[0.25, 0.25, 0.5, 0.25], [0.75, 0.75, 0.25, 0.25]])
    masks = kd.level_masks(boxes, torch.tensor([0, 0]), 1, [(4, 4)])[0]
    assert masks.boxes == [(0, 0, 0, 2, 2), (0, 2, 2, 4, 4)]
    assert masks.weights[0, 0, 0].item() == pytest.approx(0.75, rel=1e-6)
    assert masks.weights[0, 3, 3].item() == pytest.approx(1.5, rel=1e-6)


def test_pooled_objects_of_an_empty_level_are_empty_rows_of_the_channel_width():
    """No boxes on a level: both results are (0, C), so they stack with other levels' rows."""
    masks = _masks_by_hand([[[0.0, 0.0], [0.0, 0.0]]], [[[1e-3, 1e-3], [1e-3, 1e-3]]], [])
    objects, backgrounds = kd.pooled_objects(torch.ones(1, 3, 2, 2), masks)
    assert objects.shape == (0, 3) and backgrounds.shape == (0, 3)


def test_masks_made_on_the_cpu_follow_the_features_to_their_device():
    """Feature and relation losses move the CPU-built masks to the features' device (here torch's `meta`)."""
    masks = _masks_by_hand([[[1.0, 0.0], [0.0, 0.0]]], [[[2.0, 1e-3], [1e-3, 1e-3]]], [(0, 0, 0, 1, 1)])
    student, teacher = torch.zeros(1, 3, 2, 2, device="meta"), torch.zeros(1, 3, 2, 2, device="meta")
    fg_loss, bg_loss = kd.feature_loss(student, teacher, masks)
    objects, backgrounds = kd.pooled_objects(student, masks)
    assert fg_loss.device.type == bg_loss.device.type == "meta"
    assert objects.shape == backgrounds.shape == (1, 3) and backgrounds.device.type == "meta"


def test_class_response_loss_sums_classes_and_averages_anchors_when_their_counts_differ():
    """(B=1, nc=2, N=3): T^2 * (sum over the 2 classes, mean over the 3 anchors) of the Bernoulli KL."""
    teacher = [[[2.0, -1.0, 0.5], [1.0, 3.0, -2.0]]]
    student = [[[0.0, 1.0, -0.5], [2.0, 0.5, 1.0]]]
    total = sum(_bernoulli_kl(_sigmoid(teacher[0][c][n] / 2.0), _sigmoid(student[0][c][n] / 2.0))
                for c in range(2) for n in range(3))
    got = kd.class_response_loss(torch.tensor(student), torch.tensor(teacher), 2.0)
    assert got.item() == pytest.approx(4.0 * total / 3, rel=1e-5)


def test_box_response_loss_keeps_the_full_kl_when_the_teacher_is_barely_confident():
    """One anchor whose teacher confidence is sigmoid(-3) = 0.047: the weight cancels, the loss is T^2 * KL."""
    # the same one-side disagreement as the literal test above: KL = 3/4 ln 3 - ln 2, times T^2 = 4
    teacher = torch.zeros(1, 8, 1)
    teacher[0, 0, 0] = 2 * math.log(3.0)
    got = kd.box_response_loss(torch.zeros(1, 8, 1), teacher, torch.full((1, 2, 1), -3.0), 2, 2.0)
    assert got.item() == pytest.approx(4 * (0.75 * math.log(3.0) - math.log(2.0)), rel=1e-6)
