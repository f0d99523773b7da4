"""Oriented-box post-processing: the batched version finds exactly the reference's detections (float and int8,
near the angle wrap, squares), and its suppression makes ultralytics' own decisions on the same candidates."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ultralytics.utils.nms import non_max_suppression

from deploy.runtime.postprocess import NmsConfig
from deploy.runtime.postprocess_obb import fast_nms, postprocess_obb_split
from deploy.runtime.reference_obb import reference_obb_split
from deploy.runtime.rotated import corners, polygon_iou
from studio.core.heads import quantize_obb_heads, synthetic_obb_heads

CFG = NmsConfig(conf=0.25, iou=0.7)


def assert_identical(batched, reference):
    assert len(batched) == len(reference)
    for got, want in zip(batched, reference):
        np.testing.assert_array_equal(got.anchors, want.anchors)
        np.testing.assert_array_equal(got.classes, want.classes)
        np.testing.assert_array_equal(got.scores, want.scores)
        np.testing.assert_allclose(got.rboxes, want.rboxes, atol=1e-4, rtol=0)
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3, rtol=0)
        assert np.all(np.diff(got.scores) <= 0)
        assert ((got.rboxes[:, 4] >= 0) & (got.rboxes[:, 4] < math.pi / 2)).all()  # regularized


@pytest.mark.parametrize("nc, imgsz, objects, kind", [
    (15, 512, 100, ""), (1, 320, 100, ""), (15, 640, 500, ""), (1, 512, 1, ""), (15, 320, 0, ""),
    (15, 512, 100, "wrap"), (1, 640, 100, "wrap"), (15, 512, 100, "squares"), (1, 320, 30, "squares"),
])
@pytest.mark.parametrize("int8", [False, True])
def test_batched_matches_reference(nc, imgsz, objects, kind, int8):
    heads = synthetic_obb_heads(nc=nc, imgsz=imgsz, objects=objects, seed=imgsz + objects + nc,
                                wrap=kind == "wrap", squares=kind == "squares")
    if int8:
        heads = quantize_obb_heads(heads)
    got = postprocess_obb_split(heads.outputs, heads.strides, CFG, heads.quant)
    assert_identical(got, reference_obb_split(heads.outputs, heads.strides, CFG, heads.quant))
    assert (len(got[0]) > 0) == (objects > 0)
    if kind == "squares" and not int8:
        assert np.allclose(got[0].rboxes[:, 2], got[0].rboxes[:, 3], rtol=1e-3)


def test_other_settings_match_the_reference_too():
    heads = synthetic_obb_heads(nc=4, imgsz=320, objects=60, seed=3)
    for cfg in (NmsConfig(conf=0.1, iou=0.3, max_det=25), NmsConfig(conf=0.4, iou=0.9, agnostic=True),
                NmsConfig(conf=0.3, iou=0.5, multi_label=True)):
        assert_identical(postprocess_obb_split(heads.outputs, heads.strides, cfg),
                         reference_obb_split(heads.outputs, heads.strides, cfg))
    assert len(postprocess_obb_split(heads.outputs, heads.strides, NmsConfig(max_det=25))[0]) == 25


def test_int8_finds_the_float_detections():
    heads = synthetic_obb_heads(nc=15, imgsz=512, objects=100, seed=9)
    floats = postprocess_obb_split(heads.outputs, heads.strides, CFG)[0]
    ints = postprocess_obb_split(*(lambda q: (q.outputs, q.strides, CFG, q.quant))(quantize_obb_heads(heads)))[0]
    iou = polygon_iou(floats.rboxes, ints.rboxes)
    same_class = floats.classes[:, None] == ints.classes[None]
    assert ((iou * same_class).max(1) > 0.9).mean() >= 0.9


def _ultralytics_keeps(rboxes, scores, classes, nc, cfg):
    """Rows kept by ultralytics' own NMS (rotated) for these candidates, as (class, score) pairs."""
    pred = np.zeros((1, 4 + nc + 1, len(scores)), np.float32)
    pred[0, :4] = rboxes[:, :4].T
    pred[0, 4 + classes, np.arange(len(scores))] = scores
    pred[0, -1] = rboxes[:, 4]
    out = non_max_suppression(torch.from_numpy(pred), cfg.conf, cfg.iou, agnostic=cfg.agnostic, max_det=cfg.max_det,
                              nc=nc, rotated=True)[0].numpy()
    return out[:, 4], out[:, 5].astype(int)


@pytest.mark.parametrize("nc, agnostic", [(1, False), (5, False), (5, True)])
def test_suppression_makes_ultralytics_decisions(nc, agnostic):
    """Crowded candidates (rows of neighbours with small jitter), distinct scores: the kept set and order agree."""
    rng = np.random.default_rng(nc)
    base = np.concatenate([rng.uniform(20, 600, (120, 2)), rng.uniform(6, 60, (120, 2)),
                           rng.uniform(-math.pi / 4, 3 * math.pi / 4, (120, 1))], 1)
    copies = base[rng.integers(len(base), size=900)]
    jitter = np.concatenate([rng.normal(0, 3, (900, 2)), rng.normal(0, 2, (900, 2)), rng.normal(0, 0.15, (900, 1))], 1)
    rboxes = np.abs(copies + jitter).astype(np.float32) * [1, 1, 1, 1, 0] + (copies + jitter)[:, 4:] * [0, 0, 0, 0, 1]
    rboxes = rboxes.astype(np.float32)
    scores = rng.permutation(np.linspace(0.3, 0.99, 900)).astype(np.float32)
    classes = rng.integers(nc, size=900).astype(np.int32)
    cfg = NmsConfig(conf=0.25, iou=0.7, agnostic=agnostic)
    order = np.argsort(-scores, kind="stable")
    keep = order[fast_nms(rboxes[order], classes[order], cfg)]
    want_scores, want_classes = _ultralytics_keeps(rboxes, scores, classes, nc, cfg)
    assert 50 < len(keep) < 800  # a real test: many suppressed, many kept
    np.testing.assert_array_equal(scores[keep], want_scores)
    np.testing.assert_array_equal(classes[keep], want_classes)


def test_decoded_boxes_turn_with_their_angle():
    """One object planted at a known pose decodes to that pose (in pixels), angle regularized."""
    heads = synthetic_obb_heads(nc=2, imgsz=320, objects=1, seed=11)
    got = postprocess_obb_split(heads.outputs, heads.strides, CFG)[0]
    assert len(got) == 1
    quad = corners(got.rboxes)[0]
    assert np.allclose(np.sort(np.linalg.norm(quad - quad.mean(0), axis=1)), np.hypot(*got.rboxes[0, 2:4]) / 2,
                       rtol=1e-4)


def test_a_crowd_of_huge_boxes_is_suppressed_in_blocks_with_the_same_decisions(monkeypatch):
    """An untrained model's thousands of huge overlapping boxes: pairs are measured in blocks (bounded memory),
    and the kept set is the same as measuring them all at once."""
    from deploy.runtime import postprocess_obb

    rng = np.random.default_rng(4)
    rboxes = np.concatenate([rng.uniform(0, 600, (2500, 2)), rng.uniform(100, 600, (2500, 2)),
                             rng.uniform(0, 3, (2500, 1))], 1).astype(np.float32)
    classes = rng.integers(2, size=2500).astype(np.int32)
    whole = fast_nms(rboxes, classes, CFG)
    monkeypatch.setattr(postprocess_obb, "PAIR_BLOCK", 20_000)
    assert len(list(postprocess_obb._near_pairs(rboxes, CFG.iou))) > 5
    np.testing.assert_array_equal(fast_nms(rboxes, classes, CFG), whole)
