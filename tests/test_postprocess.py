"""The batched post-processor finds exactly the reference's detections, float and int8."""
from __future__ import annotations

import numpy as np
import pytest

from deploy.runtime.decode import dequantize, int8_threshold
from deploy.runtime.postprocess import NmsConfig, postprocess_split, postprocess_standard
from deploy.runtime.reference import reference_split, reference_standard
from studio.core.heads import quantize_heads, synthetic_heads


def assert_identical(batched, reference):
    assert len(batched) == len(reference)
    for got, want in zip(batched, reference):
        np.testing.assert_array_equal(got.anchors, want.anchors)  # same detections, same order
        np.testing.assert_array_equal(got.classes, want.classes)
        np.testing.assert_array_equal(got.scores, want.scores)
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-4, rtol=0)
        assert np.all(np.diff(got.scores) <= 0)


@pytest.mark.parametrize("nc", [1, 15, 80])
@pytest.mark.parametrize("imgsz", [320, 512, 640])
@pytest.mark.parametrize("objects", [0, 1, 30, 300])
def test_batched_matches_reference(nc, imgsz, objects):
    heads = synthetic_heads(nc=nc, imgsz=imgsz, objects=objects, seed=nc * 1000 + imgsz + objects)
    cfg = NmsConfig(conf=0.25, iou=0.45)
    got = postprocess_split(heads.outputs, heads.strides, cfg)
    assert_identical(got, reference_split(heads.outputs, heads.strides, cfg))
    if objects:
        assert len(got[0]) > 0
    else:
        assert len(got[0]) == 0  # nothing above the threshold


def test_everything_above_threshold_and_max_det():
    heads = synthetic_heads(nc=15, imgsz=96, objects=5, everything=True)
    for cfg in (NmsConfig(conf=0.25, max_det=300), NmsConfig(conf=0.25, max_det=7), NmsConfig(agnostic=True)):
        got = postprocess_split(heads.outputs, heads.strides, cfg)
        assert_identical(got, reference_split(heads.outputs, heads.strides, cfg))
    assert len(postprocess_split(heads.outputs, heads.strides, NmsConfig(max_det=7))[0]) == 7


def test_several_frames_per_call_equal_one_at_a_time():
    heads = synthetic_heads(nc=15, imgsz=320, objects=30, batch=3, seed=5)
    together = postprocess_split(heads.outputs, heads.strides)
    for b in range(3):
        alone = postprocess_split([o[b : b + 1] for o in heads.outputs], heads.strides)
        assert_identical([together[b]], alone)
    assert len({len(r) for r in together}) > 1 or all(len(r) for r in together)


def test_agnostic_suppresses_across_classes():
    heads = synthetic_heads(nc=80, imgsz=320, objects=300, seed=2)
    aware = postprocess_split(heads.outputs, heads.strides, NmsConfig())
    agnostic = postprocess_split(heads.outputs, heads.strides, NmsConfig(agnostic=True))
    assert_identical(agnostic, reference_split(heads.outputs, heads.strides, NmsConfig(agnostic=True)))
    assert len(agnostic[0]) < len(aware[0])


@pytest.mark.parametrize("objects", [0, 30, 300])
def test_int8_matches_reference_and_float(objects):
    heads = synthetic_heads(nc=80, imgsz=512, objects=objects, seed=objects + 7)
    q = quantize_heads(heads)
    got = postprocess_split(q.outputs, q.strides, NmsConfig(), quant=q.quant)
    assert_identical(got, reference_split(q.outputs, q.strides, NmsConfig(), quant=q.quant))
    floats = postprocess_split(heads.outputs, heads.strides, NmsConfig())
    # int8 vs float: the same objects found, scores within one int8 step
    assert abs(len(got[0]) - len(floats[0])) <= max(2, len(floats[0]) // 20)
    if objects:
        common = np.intersect1d(got[0].anchors, floats[0].anchors)
        assert len(common) >= 0.9 * len(floats[0])
        fs = dict(zip(floats[0].anchors.tolist(), floats[0].scores.tolist()))
        gs = dict(zip(got[0].anchors.tolist(), got[0].scores.tolist()))
        assert max(abs(fs[a] - gs[a]) for a in common.tolist()) <= 1 / 255 + 1e-6


def test_int8_threshold_matches_float_threshold():
    for conf in (0.001, 0.25, 0.5, 0.999):
        for scale, zp in ((1 / 255, -128), (0.003, -100), (0.08, -15)):
            q = int8_threshold(conf, scale, zp)
            values = dequantize(np.arange(-128, 128), scale, zp)
            assert np.array_equal(np.arange(-128, 128) >= q, values >= np.float32(conf))


def test_standard_layout_matches_reference():
    rng = np.random.default_rng(3)
    count, nc = 2100, 15
    xy = rng.uniform(0, 320, (1, 2, count))
    wh = rng.uniform(4, 60, (1, 2, count))
    scores = rng.random((1, nc, count)) * 0.3
    scores[0, rng.integers(nc, size=60), rng.integers(count, size=60)] = rng.uniform(0.3, 0.99, 60)
    output = np.concatenate([xy, wh, scores], axis=1).astype(np.float32)
    for cfg in (NmsConfig(), NmsConfig(agnostic=True), NmsConfig(max_det=10)):
        assert_identical(postprocess_standard(output, cfg), reference_standard(output, cfg))


@pytest.mark.slow  # the reference post-processor on 15 classes at 320 px (8-10 s here)
@pytest.mark.parametrize("int8", [False, True])
def test_multi_label_matches_reference_and_finds_more(int8):
    heads = synthetic_heads(nc=15, imgsz=320, objects=30, seed=11)
    if int8:
        heads = quantize_heads(heads)
    cfg = NmsConfig(conf=0.03, iou=0.7, max_det=100_000, multi_label=True)
    got = postprocess_split(heads.outputs, heads.strides, cfg, heads.quant)
    assert_identical(got, reference_split(heads.outputs, heads.strides, cfg, heads.quant))
    single = postprocess_split(heads.outputs, heads.strides, NmsConfig(conf=0.03, iou=0.7, max_det=100_000),
                               heads.quant)
    assert len(got[0]) > len(single[0])
    assert len(set(got[0].anchors.tolist())) < len(got[0])  # some anchors report several classes


def test_multi_label_standard_layout_matches_reference():
    rng = np.random.default_rng(4)
    output = np.concatenate([rng.uniform(0, 320, (1, 2, 500)), rng.uniform(4, 60, (1, 2, 500)),
                             rng.random((1, 6, 500)) * 0.2], axis=1).astype(np.float32)
    cfg = NmsConfig(conf=0.05, iou=0.7, multi_label=True)
    assert_identical(postprocess_standard(output, cfg), reference_standard(output, cfg))


@pytest.mark.parametrize("int8", [False, True])
@pytest.mark.parametrize("multi_label", [False, True])
def test_logit_class_outputs_match_reference_and_sigmoid_outputs(int8, multi_label):
    from studio.core.heads import LOGIT_GRID, as_logits

    heads = synthetic_heads(nc=15, imgsz=320, objects=30, seed=21)
    logit_heads = as_logits(heads)
    if int8:
        logit_heads = quantize_heads(logit_heads, LOGIT_GRID)
    cfg = NmsConfig(conf=0.25, multi_label=multi_label)
    got = postprocess_split(logit_heads.outputs, heads.strides, cfg, logit_heads.quant, logits=True)
    assert_identical(got, reference_split(logit_heads.outputs, heads.strides, cfg, logit_heads.quant, logits=True))
    assert got[0].scores.min() >= 0.25 and got[0].scores.max() <= 1
    if not int8:  # the same detections as from sigmoid outputs, scores equal to float precision
        probs = postprocess_split(heads.outputs, heads.strides, cfg)
        np.testing.assert_array_equal(got[0].anchors, probs[0].anchors)
        np.testing.assert_allclose(got[0].scores, probs[0].scores, rtol=1e-5)
