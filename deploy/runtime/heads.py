"""From a model's raw outputs to one frame's detections, chosen by the sidecar's task and output layout.

The pipeline only calls `head_for(meta).decode(...)`; a new task (oriented boxes, say) is one
more Head here with its tests, and nothing else in the run path changes.
"""
from typing import Callable, Optional

import numpy as np

from deploy.runtime.metadata import ModelMeta
from deploy.runtime.postprocess import FrameResult, NmsConfig, postprocess_split, postprocess_standard


class Head:
    """Decodes the outputs of one frame (batch 1) of one kind of model."""

    def __init__(self, meta: ModelMeta):
        self.meta = meta

    def decode(self, outputs: list[np.ndarray], cfg: NmsConfig, int8_outputs: bool) -> FrameResult:
        raise NotImplementedError


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


HEADS: dict[tuple[str, str], Callable[[ModelMeta], Head]] = {
    ("detect", "rknn-split"): SplitDetectHead,
    ("detect", "standard"): StandardDetectHead,
}


def head_for(meta: ModelMeta, heads: Optional[dict] = None) -> Head:
    """The head for the sidecar's task and layout; ValueError naming what is supported otherwise."""
    heads = HEADS if heads is None else heads
    make = heads.get((meta.task, meta.layout))
    if make is None:
        known = ", ".join(f"{task}/{layout}" for task, layout in heads)
        raise ValueError(f"a {meta.task} model with the {meta.layout} layout cannot be run here (known: {known})")
    return make(meta)
