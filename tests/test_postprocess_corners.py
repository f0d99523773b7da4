"""Corner cases of the batched post-processor, each worked out by hand: exact thresholds, output dtypes,
per-output int8 grids, the anchor-grid cache, and the crowded-class fallback of greedy NMS."""
from __future__ import annotations

import numpy as np
import pytest

from deploy.runtime import postprocess
from deploy.runtime.postprocess import NmsConfig, empty_result, greedy_nms, postprocess_split, postprocess_standard

STRIDES = [8, 16]  # two levels of a 32 px input: 4x4 and 2x2 anchors
CLS_GRIDS = [(1 / 255, -128), (2 / 255, -128)]  # a different int8 grid per class output
BOX_GRID = (0.1, 0)


def assert_dtypes(result):
    assert result.boxes.dtype == np.float32 and result.boxes.shape == (len(result), 4)
    assert result.scores.dtype == np.float32 and result.scores.shape == (len(result),)
    assert result.classes.dtype == np.int32 and result.classes.shape == (len(result),)
    assert result.anchors.dtype == np.int64 and result.anchors.shape == (len(result),)


def hand_heads():
    """Two frames of int8 split outputs; frame 0 holds four class values near the threshold, frame 1 none.

    Every box logit is equal, so each DFL side is 0.5 grid units and a box is exactly its anchor's cell.
    """
    box0, box1 = np.full((2, 8, 4, 4), 5, np.int8), np.full((2, 8, 2, 2), 5, np.int8)
    cls0, cls1 = np.full((2, 2, 4, 4), -128, np.int8), np.full((2, 2, 2, 2), -128, np.int8)
    cls0[0, 1, 1, 2] = -128 + 100  # anchor 6 (row 1, col 2), class 1: 100/255 passes 0.25
    cls0[0, 0, 1, 2] = -128 + 80  # anchor 6, class 0: 80/255 passes, but is not anchor 6's best
    cls0[0, 0, 3, 0] = -128 + 40  # anchor 12, class 0: 40/255 fails (it would pass on cls1's grid)
    cls1[0, 0, 0, 1] = -128 + 60  # anchor 16 + 1, class 0: 120/255 on its own grid (60/255 on cls0's: fails)
    cls1[0, 1, 1, 1] = -128 + 20  # anchor 16 + 3, class 1: 40/255 fails
    outputs = [box0, cls0, box1, cls1]
    quant = [BOX_GRID, CLS_GRIDS[0], BOX_GRID, CLS_GRIDS[1]]
    return outputs, quant


def deq(n, scale):
    """n int8 steps above the zero point, in float32 as an NPU runtime dequantizes."""
    return np.float32(n) * np.float32(scale)


@pytest.mark.parametrize("int8", [False, True])
def test_each_class_output_uses_its_own_int8_grid(int8, monkeypatch):
    """Each level is thresholded and dequantized on its own class output's grid; results have the documented dtypes."""
    monkeypatch.setattr(postprocess, "_GRIDS", {})  # a cold anchor-grid cache
    outputs, quant = hand_heads()
    if not int8:  # the same values as float32 outputs
        outputs = [((o.astype(np.float32) - np.float32(zp)) * np.float32(s)) for o, (s, zp) in zip(outputs, quant)]
        quant = None
    got = postprocess_split(outputs, STRIDES, NmsConfig(conf=0.25), quant)
    assert len(got) == 2 and len(got[1]) == 0
    np.testing.assert_array_equal(got[0].anchors, [17, 6])
    np.testing.assert_array_equal(got[0].classes, [0, 1])
    np.testing.assert_array_equal(got[0].scores, [deq(60, 2 / 255), deq(100, 1 / 255)])
    np.testing.assert_array_equal(got[0].boxes, [[16, 0, 32, 16], [16, 8, 24, 16]])
    for result in got:
        assert_dtypes(result)


@pytest.mark.parametrize("int8", [False, True])
def test_multi_label_uses_each_class_outputs_own_grid(int8):
    """Multi-label mode reports every (anchor, class) above conf, on each level's own grid, with int32 classes."""
    outputs, quant = hand_heads()
    if not int8:
        outputs = [((o.astype(np.float32) - np.float32(zp)) * np.float32(s)) for o, (s, zp) in zip(outputs, quant)]
        quant = None
    got = postprocess_split(outputs, STRIDES, NmsConfig(conf=0.25, multi_label=True), quant)
    assert len(got) == 2 and len(got[1]) == 0
    np.testing.assert_array_equal(got[0].anchors, [17, 6, 6])
    np.testing.assert_array_equal(got[0].classes, [0, 1, 0])
    np.testing.assert_array_equal(got[0].scores, [deq(60, 2 / 255), deq(100, 1 / 255),
                                                  deq(80, 1 / 255)])
    np.testing.assert_array_equal(got[0].boxes, [[16, 0, 32, 16], [16, 8, 24, 16], [16, 8, 24, 16]])
    for result in got:
        assert_dtypes(result)


def test_anchor_grid_is_built_once_per_geometry(monkeypatch):
    """The anchor grid of a geometry is computed on first use (cell centres, strides) and then reused."""
    monkeypatch.setattr(postprocess, "_GRIDS", {})
    hw, strides = ((2, 3), (1, 2)), (8, 16)
    centres, anchor_strides = postprocess.anchor_centres(hw, strides)
    np.testing.assert_array_equal(centres, [[0.5, 0.5], [1.5, 0.5], [2.5, 0.5], [0.5, 1.5], [1.5, 1.5], [2.5, 1.5],
                                            [0.5, 0.5], [1.5, 0.5]])
    np.testing.assert_array_equal(anchor_strides, [8] * 6 + [16] * 2)
    again = postprocess.anchor_centres(hw, strides)
    assert again[0] is centres and again[1] is anchor_strides
    assert list(postprocess._GRIDS) == [(hw, strides)]


def test_empty_result_shapes_and_dtypes():
    """An empty frame has (0, 4) float32 boxes, float32 scores, int32 classes and int64 anchors."""
    result = empty_result()
    assert len(result) == 0
    assert result.boxes.shape == (0, 4)
    assert_dtypes(result)


def standard_output(scores):
    """(1, 4 + nc, A) standard output: every anchor a 4x4 box centred at (10 + 20 a, 10)."""
    nc, count = np.asarray(scores).shape
    xywh = np.stack([10 + 20 * np.arange(count), np.full(count, 10), np.full(count, 4), np.full(count, 4)])
    return np.concatenate([xywh, scores]).astype(np.float32)[None]


@pytest.mark.parametrize("multi_label", [False, True])
def test_standard_score_equal_to_conf_is_kept(multi_label):
    """A score exactly at conf passes (>=) and one a float32 ulp below does not, in the standard layout."""
    below = np.nextafter(np.float32(0.25), np.float32(0))
    output = standard_output([[0.1, below], [0.25, 0.1]])  # anchor 0: class 1 at conf; anchor 1: class 0 below
    [got] = postprocess_standard(output, NmsConfig(conf=0.25, multi_label=multi_label))
    np.testing.assert_array_equal(got.anchors, [0])
    np.testing.assert_array_equal(got.classes, [1])
    np.testing.assert_array_equal(got.scores, [0.25])
    np.testing.assert_array_equal(got.boxes, [[8, 8, 12, 12]])
    assert_dtypes(got)


@pytest.mark.parametrize("multi_label", [False, True])
def test_standard_nothing_above_conf_gives_one_empty_result_per_frame(multi_label):
    """With no score above conf, the standard layout returns one empty, correctly typed result per frame."""
    output = np.repeat(standard_output([[0.1, 0.2], [0.2, 0.1]]), 3, axis=0)
    got = postprocess_standard(output, NmsConfig(conf=0.25, multi_label=multi_label))
    assert len(got) == 3
    for result in got:
        assert len(result) == 0
        assert_dtypes(result)


def test_iou_exactly_at_threshold_is_not_suppressed():
    """A box overlapping a kept box by exactly cfg.iou survives (suppression needs IoU > iou)."""
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [0, 0, 10, 6]], np.float32)  # IoU with box 0: 0.5, 0.6
    keep = greedy_nms(boxes, np.zeros(3, np.int32), NmsConfig(iou=0.5))
    np.testing.assert_array_equal(keep, [0, 1])


def test_sub_pixel_boxes_are_suppressed_by_their_true_iou():
    """Boxes smaller than one square pixel get their true IoU (no clamping of the union at 1)."""
    boxes = np.array([[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5], [0, 0, 0.5, 0.25]], np.float32)  # IoU 1 and 0.5
    keep = greedy_nms(boxes, np.zeros(3, np.int32), NmsConfig(iou=0.45))
    np.testing.assert_array_equal(keep, [0])


def triangular_parts(total):
    """Group sizes n_i whose same-class pair counts n_i (n_i - 1) / 2 add up to total (greedy, largest first)."""
    sizes = []
    while total:
        n = int((1 + np.sqrt(1 + 8 * total)) / 2)
        while n * (n - 1) // 2 > total:
            n -= 1
        sizes.append(n)
        total -= n * (n - 1) // 2
    return sizes


def crowded_boxes(sizes):
    """Disjoint 10x10 boxes in classes of the given sizes, except three in class 0 that overlap box 0/2."""
    count = sum(sizes)
    x = 20.0 * np.arange(count)
    boxes = np.stack([x, np.zeros(count), x + 10, np.full(count, 10.0)], axis=1).astype(np.float32)
    boxes[1] = [0, 0, 10, 5]  # IoU 0.5 with box 0: kept at iou=0.5
    boxes[3] = [40, 0, 50, 6]  # IoU 0.6 with box 2: suppressed
    boxes[4] = [40, 0, 50, 10]  # identical to box 2: suppressed
    classes = np.repeat(np.arange(len(sizes)), sizes).astype(np.int32)
    return boxes, classes


@pytest.mark.parametrize("extra_pairs", [0, 1])
def test_crowded_class_fallback_starts_just_above_max_pairs(extra_pairs, monkeypatch):
    """Exactly MAX_PAIRS same-class pairs are measured at once; one more switches to visiting; both give greedy NMS."""
    visits = []
    visit = postprocess._greedy_visit

    def spy(*args):
        visits.append(len(args[0]))
        return visit(*args)

    monkeypatch.setattr(postprocess, "_greedy_visit", spy)
    sizes = triangular_parts(postprocess.MAX_PAIRS) + [2] * extra_pairs
    assert sum(n * (n - 1) // 2 for n in sizes) == postprocess.MAX_PAIRS + extra_pairs
    boxes, classes = crowded_boxes(sizes)
    keep = greedy_nms(boxes, classes, NmsConfig(iou=0.5, max_det=10_000))
    np.testing.assert_array_equal(keep, np.setdiff1d(np.arange(len(boxes)), [3, 4]))
    assert keep.dtype == np.int64
    assert visits == [len(boxes)] * extra_pairs
    assert len(greedy_nms(boxes, classes, NmsConfig(iou=0.5, max_det=5))) == 5


@pytest.mark.parametrize("extra_pairs", [0, 1])
def test_crowded_class_max_det_zero_keeps_no_index(extra_pairs):
    """max_det=0 keeps nothing, as an empty int64 index array, on both NMS paths."""
    boxes, classes = crowded_boxes(triangular_parts(postprocess.MAX_PAIRS) + [2] * extra_pairs)
    keep = greedy_nms(boxes, classes, NmsConfig(max_det=0))
    assert keep.shape == (0,) and keep.dtype == np.int64
    assert len(boxes[keep]) == 0
