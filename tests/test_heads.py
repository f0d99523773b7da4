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
    meta = ModelMeta(**SPLIT, task="obb")
    with pytest.raises(ValueError, match=r"obb model with the rknn-split layout .*known: detect/rknn-split"):
        head_for(meta)
    with pytest.raises(UserError, match="obb model"):
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
