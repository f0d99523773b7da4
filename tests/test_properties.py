"""Properties of the numerical core that hold for every input, checked on inputs hypothesis generates.

Each property is stated without the code under test's own helpers: the letterbox is checked
by where a painted rectangle lands, the tile grid by a coverage mask, the batched
post-processor against the plain reference, greedy NMS by the rule that defines it.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploy.runtime import postprocess
from deploy.runtime.postprocess import NmsConfig, greedy_nms, postprocess_split
from deploy.runtime.preprocess import PAD_VALUE, boxes_to_original, letterbox
from deploy.runtime.reference import reference_split
from deploy.runtime.tiling import tile_grid, tile_origins
from studio.core.heads import LOGIT_GRID, as_logits, quantize_heads, synthetic_heads
from tests.test_postprocess import assert_identical

# Every run tries the same examples (derandomize): a failure seen once is seen again, in CI too.
NUMERIC = settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@st.composite
def painted_images(draw):
    """(image, box, size): an h x w image with a red rectangle at box (x0, y0, x1, y1), and the input size."""
    h, w = draw(st.integers(8, 500)), draw(st.integers(8, 500))
    size = draw(st.sampled_from([32, 64, 96, 128, 160, 320]))
    scale = min(size / h, size / w)
    least = int(np.ceil(3 / scale)) + 2  # at least 3 input pixels on a side: it survives the resize
    if least > min(h, w):
        least = min(h, w)
    x0 = draw(st.integers(0, w - least))
    x1 = draw(st.integers(x0 + least, w))
    y0 = draw(st.integers(0, h - least))
    y1 = draw(st.integers(y0 + least, h))
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 2] = 50  # a constant channel: it marks where the image lands in the canvas, resized or not
    image[y0:y1, x0:x1, 0] = 255
    return image, (x0, y0, x1, y1), size


@NUMERIC
@given(painted_images())
def test_letterbox_then_boxes_to_original_finds_what_was_painted(case):
    image, painted, size = case
    h, w = image.shape[:2]
    canvas, info = letterbox(image, size)
    assert canvas.shape == (size, size, 3) and info.original_hw == (h, w)
    assert info.scale == pytest.approx(min(size / h, size / w))
    # the image is centred: the grey borders on either side differ by at most a pixel
    content = np.argwhere(canvas[..., 2] != PAD_VALUE)
    top, left = content.min(axis=0)
    bottom, right = size - 1 - content.max(axis=0)
    assert abs(int(top) - int(bottom)) <= 1 and abs(int(left) - int(right)) <= 1
    assert (top == 0 and bottom <= 1) or (left == 0 and right <= 1)  # it fills the input along one side
    # the white rectangle, found in the canvas and mapped back, lands where it was painted
    ys, xs = np.nonzero(canvas[..., 0] > 127)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    back = boxes_to_original(found, info)[0]
    assert np.abs(back - np.array(painted, np.float32)).max() <= 1.5 / info.scale + 1
    assert (back >= 0).all() and back[2] <= w and back[3] <= h


@NUMERIC
@given(st.integers(1, 5000), st.integers(16, 1024), st.floats(0.0, 0.6))
def test_tile_origins_cover_the_side_with_the_stated_overlap(length, tile, overlap):
    origins = tile_origins(length, tile, overlap)
    assert origins[0] == 0
    if length <= tile:
        assert origins == [0]
        return
    assert origins[-1] + tile == length  # the last tile ends at the far edge: nothing left uncovered
    gaps = np.diff(origins)
    assert (gaps > 0).all()
    assert (tile - gaps >= tile * overlap - 1e-9).all()  # neighbours share at least overlap x tile pixels
    # as few tiles as that overlap allows: one tile fewer could not reach the end with those steps
    step = max(1, int(tile * (1 - overlap)))
    assert (len(origins) - 2) * step < length - tile


@NUMERIC
@given(st.integers(1, 700), st.integers(1, 700), st.integers(16, 256), st.floats(0.0, 0.5))
def test_tile_grid_covers_every_pixel_inside_the_image(h, w, tile, overlap):
    covered = np.zeros((h, w), np.int32)
    grid = tile_grid(h, w, tile, overlap)
    for x, y, size in grid:
        assert size == tile and 0 <= x and 0 <= y
        assert (x + tile <= w or x == 0) and (y + tile <= h or y == 0)  # a tile sticks out only of a small side
        covered[y : y + tile, x : x + tile] += 1
    assert covered.min() >= 1
    assert len(grid) == len(set(grid)) == len(tile_origins(h, tile, overlap)) * len(tile_origins(w, tile, overlap))
    assert [(y, x) for x, y, _ in grid] == sorted((y, x) for x, y, _ in grid)  # row by row


@st.composite
def heads_and_config(draw):
    nc = draw(st.integers(1, 12))
    imgsz = draw(st.sampled_from([64, 96, 128, 160, 256]))
    heads = synthetic_heads(nc=nc, imgsz=imgsz, objects=draw(st.integers(0, 40)), batch=draw(st.integers(1, 2)),
                            seed=draw(st.integers(0, 2**31)), background=draw(st.sampled_from([0.05, 0.3])))
    cfg = NmsConfig(conf=draw(st.floats(0.05, 0.95)), iou=draw(st.floats(0.05, 0.95)),
                    max_det=draw(st.integers(1, 300)), agnostic=draw(st.booleans()),
                    multi_label=draw(st.booleans()))
    form = draw(st.sampled_from(["float", "int8", "logits", "int8-logits"]))
    return heads, cfg, form


@NUMERIC
@given(heads_and_config())
def test_batched_post_processing_equals_the_reference_on_any_heads(case):
    heads, cfg, form = case
    logits = form.endswith("logits")
    if logits:
        heads = as_logits(heads)
    if form.startswith("int8"):
        heads = quantize_heads(heads, LOGIT_GRID) if logits else quantize_heads(heads)
    got = postprocess_split(heads.outputs, heads.strides, cfg, heads.quant, logits=logits)
    want = reference_split(heads.outputs, heads.strides, cfg, heads.quant, logits=logits)
    assert_identical(got, want)
    assert all(len(r) <= cfg.max_det for r in got)


@st.composite
def ranked_boxes(draw):
    """Boxes sorted by descending score (rank = index), clustered so that many overlap, with their classes."""
    n = draw(st.integers(0, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    centres = rng.uniform(0, 100, (max(1, n // 4), 2))[rng.integers(0, max(1, n // 4), n)]
    centres = centres + rng.normal(0, draw(st.sampled_from([1.0, 5.0, 20.0])), (n, 2))
    sizes = rng.uniform(2, 40, (n, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1).astype(np.float32)
    classes = rng.integers(0, draw(st.integers(1, 4)), n).astype(np.int32)
    cfg = NmsConfig(iou=draw(st.floats(0.05, 0.95)), max_det=draw(st.integers(1, 80)), agnostic=draw(st.booleans()))
    return boxes, classes, cfg


@NUMERIC
@given(ranked_boxes())
def test_greedy_nms_keeps_exactly_what_the_greedy_rule_keeps(case):
    boxes, classes, cfg = case
    keep = greedy_nms(boxes, classes, cfg)
    assert len(keep) <= cfg.max_det and (np.diff(keep) > 0).all()  # by rank, at most max_det
    as_floats = boxes.astype(np.float64).tolist()
    same = (lambda i, j: True) if cfg.agnostic else (lambda i, j: classes[i] == classes[j])
    kept = set(keep.tolist())
    last = keep[-1] if len(keep) else -1
    for j in range(len(boxes)):
        above = [i for i in kept if i < j and same(i, j) and _iou(as_floats[i], as_floats[j]) > cfg.iou]
        if j in kept:  # no kept box of its group ranked before it overlaps it too much
            assert not above, (j, above)
        elif j < last or len(keep) < cfg.max_det:  # dropped by suppression, not by the max_det cut
            assert above, j  # a kept box of its group ranked before it overlaps it by more than iou


@NUMERIC
@given(ranked_boxes())
def test_greedy_nms_visit_fallback_agrees_with_the_pairwise_path(case):
    boxes, classes, cfg = case
    pairwise = greedy_nms(boxes, classes, cfg)
    saved = postprocess.MAX_PAIRS
    postprocess.MAX_PAIRS = -1  # every input takes the one-by-one path
    try:
        visited = greedy_nms(boxes, classes, cfg)
    finally:
        postprocess.MAX_PAIRS = saved
    np.testing.assert_array_equal(pairwise, visited)
