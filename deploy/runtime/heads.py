"""From a model's raw outputs to one frame's detections, chosen by the sidecar's task and output layout.

The pipeline only calls `head_for(meta).decode(...)` and `.to_original(...)`; a new task is one
more Head here with its tests, and nothing else in the run path changes.
"""
from typing import Callable, Optional

import numpy as np

from deploy.runtime.metadata import ModelMeta
from deploy.runtime.postprocess import FrameResult, NmsConfig, postprocess_split, postprocess_standard
from deploy.runtime.postprocess_obb import postprocess_obb_split, postprocess_obb_standard
from deploy.runtime.preprocess import LetterboxInfo, boxes_to_original
from deploy.runtime.rotated import enclosing


class Head:
    """Decodes the outputs of one frame (batch 1) of one kind of model."""

    def __init__(self, meta: ModelMeta):
        self.meta = meta

    def decode(self, outputs: list[np.ndarray], cfg: NmsConfig, int8_outputs: bool) -> FrameResult:
        raise NotImplementedError

    def to_original(self, result: FrameResult, info: LetterboxInfo) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """(boxes, rboxes) in the frame's own pixels: upright boxes clipped to it; oriented ones (if any) not."""
        return boxes_to_original(result.boxes, info), None


class SplitDetectHead(Head):
    """Axis-aligned boxes from the rknn-split layout: per level a box-distribution and a class output,
    raw int8 from the NPU (dequantized with the sidecar's scales) or float."""

    def decode(self, outputs: list[np.ndarray], cfg: NmsConfig, int8_outputs: bool) -> FrameResult:
        quant = [(q.scale, q.zero_point) for q in self.meta.quantization] if int8_outputs else None
        return postprocess_split(outputs, self.meta.strides, cfg, quant, logits=self.meta.class_scores == "logits")[0]


class StandardDetectHead(Head):
    """Axis-aligned boxes from ultralytics' own single output (1, 4 + nc, anchors), already decoded."""

    def decode(self, outputs: list[np.ndarray], cfg: NmsConfig, int8_outputs: bool) -> FrameResult:
        return postprocess_standard(outputs[0], cfg)[0]


class ObbHead(Head):
    """Oriented boxes mapped back to the frame: centres unpadded and rescaled, sizes rescaled, angles kept."""

    def to_original(self, result: FrameResult, info: LetterboxInfo) -> tuple[np.ndarray, Optional[np.ndarray]]:
        rboxes = result.rboxes.astype(np.float32, copy=True)
        rboxes[:, 0] = (rboxes[:, 0] - info.pad_x) / info.scale
        rboxes[:, 1] = (rboxes[:, 1] - info.pad_y) / info.scale
        rboxes[:, 2:4] /= info.scale
        h, w = info.original_hw
        return np.clip(enclosing(rboxes), 0, [w, h, w, h]).astype(np.float32), rboxes


class SplitObbHead(ObbHead):
    """Oriented boxes from the split layout: per level a box distribution, class scores and the angle."""

    def decode(self, outputs: list[np.ndarray], cfg: NmsConfig, int8_outputs: bool) -> FrameResult:
        quant = [(q.scale, q.zero_point) for q in self.meta.quantization] if int8_outputs else None
        return postprocess_obb_split(outputs, self.meta.strides, cfg, quant,
                                     logits=self.meta.class_scores == "logits")[0]


class StandardObbHead(ObbHead):
    """Oriented boxes from ultralytics' own single output (1, 4 + nc + 1, anchors): the torch model as it runs."""

    def decode(self, outputs: list[np.ndarray], cfg: NmsConfig, int8_outputs: bool) -> FrameResult:
        return postprocess_obb_standard(outputs[0], cfg)[0]


HEADS: dict[tuple[str, str], Callable[[ModelMeta], Head]] = {
    ("detect", "rknn-split"): SplitDetectHead,
    ("detect", "standard"): StandardDetectHead,
    ("obb", "rknn-split"): SplitObbHead,
    ("obb", "standard"): StandardObbHead,
}


def head_for(meta: ModelMeta, heads: Optional[dict] = None) -> Head:
    """The head for the sidecar's task and layout; ValueError naming what is supported otherwise."""
    heads = HEADS if heads is None else heads
    make = heads.get((meta.task, meta.layout))
    if make is None:
        known = ", ".join(f"{task}/{layout}" for task, layout in heads)
        raise ValueError(f"a {meta.task} model with the {meta.layout} layout cannot be run here (known: {known})")
    return make(meta)

