"""Oriented-box geometry: ultralytics' conventions reproduced, exact clipping and overlap, labels cut by a window."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ultralytics.utils.metrics import batch_probiou
from ultralytics.utils.ops import regularize_rboxes, xywhr2xyxyxyxy, xyxyxyxy2xywhr

from deploy.runtime.rotated import (
    clip_polygon,
    corners,
    enclosing,
    from_polygon,
    polygon_area,
    polygon_iou,
    probiou,
    quad_overlaps,
    regularize,
)
from studio.core.data.oriented import oriented_corners, upright_box


def _random_rboxes(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(0, 300, (n, 2)), rng.uniform(2, 60, (n, 2)),
                           rng.uniform(-math.pi, math.pi, (n, 1))], 1).astype(np.float32)


def test_conversions_match_ultralytics():
    r = _random_rboxes(200, 0)
    assert np.allclose(corners(r), xywhr2xyxyxyxy(r.astype(np.float64)), atol=1e-4)
    ours = np.array([from_polygon(q) for q in corners(r)])
    assert np.allclose(ours, xyxyxyxy2xywhr(corners(r)), atol=1e-4)
    assert np.allclose(regularize(r), regularize_rboxes(torch.from_numpy(r)).numpy(), atol=1e-5)
    box = enclosing(r)
    q = corners(r)
    assert np.allclose(box, np.concatenate([q.min(1), q.max(1)], 1), atol=1e-3)


def test_probiou_matches_ultralytics_in_float32():
    a, b = _random_rboxes(60, 1), _random_rboxes(80, 2)
    b[:20] = a[:20] + np.float32(0.5)  # near neighbours, where decisions are made
    ours = probiou(a, b)
    theirs = batch_probiou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    assert ours.dtype == np.float32 and np.abs(ours - theirs).max() < 2e-6


def test_clip_polygon_and_exact_iou():
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    assert polygon_area(clip_polygon(square, 5, -1, 20, 20)) == pytest.approx(50)
    diamond = np.array([[5, 0], [10, 5], [5, 10], [0, 5]], float)
    assert polygon_area(clip_polygon(diamond, 0, 0, 5, 10)) == pytest.approx(25)
    assert len(clip_polygon(square, 20, 20, 30, 30)) == 0
    r = np.array([[50, 50, 40, 10, 0.3], [50, 50, 40, 10, 0.3 + math.pi], [50, 50, 10, 40, 0.3 + math.pi / 2],
                  [200, 200, 5, 5, 0.0], [55, 50, 40, 10, 0.3]])
    iou = polygon_iou(r[:1], r)[0]
    assert iou[:3] == pytest.approx([1, 1, 1], abs=1e-4) and iou[3] == 0
    upright = np.array([[10, 10, 20, 10, 0.0]]), np.array([[20, 10, 20, 10, 0.0]])  # half overlap: 100 / 300
    assert polygon_iou(*upright)[0, 0] == pytest.approx(1 / 3, abs=1e-5)


def test_quad_overlaps_equal_the_clipped_areas_of_each_pair():
    boxes = _random_rboxes(400, seed=3)
    turned = corners(boxes)
    rng = np.random.default_rng(4)
    x0, y0 = boxes[:, 0] + rng.uniform(-90, 30, 400), boxes[:, 1] + rng.uniform(-90, 30, 400)  # near each box
    x1, y1 = x0 + rng.uniform(5, 80, 400), y0 + rng.uniform(5, 80, 400)
    windows = np.stack([np.c_[x0, y0], np.c_[x1, y0], np.c_[x1, y1], np.c_[x0, y1]], 1)
    clipped = [polygon_area(clip_polygon(q, *w)) for q, w in zip(turned, np.c_[x0, y0, x1, y1])]
    assert quad_overlaps(turned, windows) == pytest.approx(clipped, abs=1e-6)
    assert quad_overlaps(windows, turned) == pytest.approx(clipped, abs=1e-6)  # either way round
    assert (np.array(clipped) == 0).sum() > 50 and (np.array(clipped) > 0).sum() > 50  # both cases drawn
    own = _random_rboxes(400, seed=5)
    assert quad_overlaps(corners(own), corners(own)) == pytest.approx(own[:, 2] * own[:, 3], rel=1e-5)


def test_a_label_cut_by_a_window_becomes_the_rectangle_of_its_visible_part():
    quad = corners(np.array([[100, 50, 60, 12, math.radians(40)]]))[0]
    whole = oriented_corners(quad, 0, 0, 200, 200)
    assert np.allclose(whole, quad)
    cut = oriented_corners(quad, 0, 0, 110, 200)  # about two thirds inside
    assert cut is not None and (cut >= 0).all() and (cut[:, 0] <= 110).all()
    kept = from_polygon(cut)
    assert kept[2] < 60 and kept[3] == pytest.approx(12, abs=1.5)  # shorter, as thick
    assert math.degrees(kept[4]) % 180 == pytest.approx(40, abs=2)  # the same orientation
    assert oriented_corners(quad, 0, 0, 85, 200) is None  # less than half inside: dropped
    assert oriented_corners(quad, 0, 0, 85, 200, min_visible=0.05) is not None
    x0, y0, x1, y1 = upright_box(quad, 0, 0, 110, 200)
    assert x1 == pytest.approx(110) and x0 == pytest.approx(quad[:, 0].min())
