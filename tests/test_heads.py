"""Heads: the sidecar's task and layout choose how outputs become detections, and a new task plugs in."""
from __future__ import annotations

import json

import numpy as np
import pytest

from deploy.errors import UserError
from deploy.runtime.heads import HEADS, Head, SplitDetectHead, StandardDetectHead, head_for
from deploy.runtime.metadata import ModelMeta, load_meta
from deploy.runtime.postprocess import FrameResult, NmsConfig
from deploy.runtime.run_loop import RunLoop

SPLIT = dict(format="onnx", names=["a"], imgsz=64, layout="rknn-split", outputs=["b0", "c0"], strides=[8])


def test_a_sidecar_written_before_tasks_existed_is_a_detector(tmp_path):
    """A sidecar without `task` loads as task "detect" and gets the detect head of its layout."""
    model = tmp_path / "old.onnx"
    model.write_bytes(b"")
    (tmp_path / "old.onnx.json").write_text(json.dumps({**SPLIT, "schema_version": 1}))
    meta = load_meta(model)
    assert meta.task == "detect"
    assert type(head_for(meta)) is SplitDetectHead
    assert type(head_for(ModelMeta(**{**SPLIT, "layout": "standard"}))) is StandardDetectHead


def test_an_unknown_task_is_refused_with_what_is_known():
    """A task no head decodes: ValueError from head_for, one line for the user from the run loop."""
    meta = ModelMeta(**SPLIT, task="pose")
    with pytest.raises(ValueError, match=r"pose model with the rknn-split layout .*known: detect/rknn-split"):
        head_for(meta)
    with pytest.raises(UserError, match="pose model"):
        RunLoop(lambda i: None, meta)


def test_a_new_task_is_one_more_head():
    """Registering a head for (task, layout) is all it takes for head_for to use it."""
    class CountingHead(Head):
        def decode(self, outputs, cfg, int8_outputs):
            n = len(outputs)
            return FrameResult(np.zeros((n, 4), np.float32), np.ones(n, np.float32), np.zeros(n, np.int32),
                               np.arange(n))

    meta = ModelMeta(**SPLIT, task="count")
    head = head_for(meta, {**HEADS, ("count", "rknn-split"): CountingHead})
    assert len(head.decode([np.zeros(1)] * 3, NmsConfig(), False).boxes) == 3


class _Replay:
    """A backend that returns fixed outputs (the OBB heads of a planted scene)."""

    layout, int8_outputs = "nchw-float", False

    def __init__(self, outputs):
        self.outputs = outputs

    def infer(self, tensor):
        return self.outputs


def test_the_obb_head_returns_turned_boxes_in_the_frames_pixels():
    """A 320-px model on a 640x480 frame: rboxes scale back by 2 and shift by the letterbox padding, angles stay;
    the upright boxes enclose them; JSON carries both forms; the drawing follows the turned edges."""
    import cv2

    from deploy.runtime.draw import draw_detections
    from deploy.runtime.frame import Frame
    from deploy.runtime.pipeline import detect
    from deploy.runtime.postprocess_obb import postprocess_obb_split
    from deploy.runtime.rotated import corners
    from studio.core.heads import synthetic_obb_heads

    heads = synthetic_obb_heads(nc=3, imgsz=320, objects=6, seed=4)
    meta = ModelMeta(format="onnx", names=["a", "b", "c"], imgsz=320, layout="rknn-split", task="obb",
                     outputs=[f"o{i}" for i in range(9)], strides=[8, 16, 32])
    cfg = NmsConfig(conf=0.25, iou=0.7)
    frame = Frame(np.zeros((480, 640, 3), np.uint8), 0, "planted")
    dets = detect(_Replay(heads.outputs), meta, frame, cfg, keep_image=True)
    model_px = postprocess_obb_split(heads.outputs, heads.strides, cfg)[0]
    assert len(dets) == len(model_px) > 0
    pad_y = (320 - 240) / 2  # 640x480 shrinks to 320x240, centred
    np.testing.assert_allclose(dets.rboxes[:, 0], model_px.rboxes[:, 0] * 2, atol=1e-3)
    np.testing.assert_allclose(dets.rboxes[:, 1], (model_px.rboxes[:, 1] - pad_y) * 2, atol=1e-3)
    np.testing.assert_allclose(dets.rboxes[:, 2:4], model_px.rboxes[:, 2:4] * 2, atol=1e-3)
    np.testing.assert_array_equal(dets.rboxes[:, 4], model_px.rboxes[:, 4])
    quads = corners(dets.rboxes)
    lo, hi = dets.boxes[:, None, :2], dets.boxes[:, None, 2:]
    inside = (lo <= quads + 1e-3).all((1, 2)) & (quads <= hi + 1e-3).all((1, 2))
    clipped = (dets.boxes[:, :2] <= 0).any(1) | (dets.boxes[:, 2] >= 640) | (dets.boxes[:, 3] >= 480)
    assert (inside | clipped).all()
    item = dets.to_dict(meta.names)["detections"][0]
    assert len(item["corners"]) == 4 and len(item["rbox"]) == 5 and item["name"] in meta.names
    drawn = draw_detections(dets.image, dets, meta.names, scores=False)
    k = int(np.argmax(dets.rboxes[:, 2] * dets.rboxes[:, 3]))
    edge_mid = quads[k][:2].mean(0)  # the middle of one turned edge is painted
    x, y = int(round(edge_mid[0])), int(round(edge_mid[1]))
    if 2 <= x < 638 and 2 <= y < 478:
        assert drawn[y - 2 : y + 3, x - 2 : x + 3].any()
    assert cv2.countNonZero(cv2.cvtColor(drawn, cv2.COLOR_BGR2GRAY)) > 0
