"""The straightforward post-processor: the correctness oracle and the speed baseline.

Dequantize and decode every anchor, loop over classes, and run greedy NMS in plain
Python: deliberately simple rather than fast. `studio bench postprocess` measures the
batched version against it, and the tests require identical detections.
"""
from collections.abc import Sequence

import numpy as np

from deploy.runtime.decode import anchor_grid, decode_dfl, dequantize, level_shapes, xywh_to_xyxy
from deploy.runtime.postprocess import FrameResult, NmsConfig, Quant, empty_result


def reference_split(outputs: list[np.ndarray], strides: Sequence[int], cfg: NmsConfig = NmsConfig(),
                    quant: Quant = None) -> list[FrameResult]:
    """Reference post-processing of the rknn-split layout, frame by frame."""
    if quant is not None:
        outputs = [dequantize(o, s, z) for o, (s, z) in zip(outputs, quant)]
    hw = level_shapes(outputs)
    centres, anchor_strides = anchor_grid(hw, strides)
    results = []
    for b in range(outputs[0].shape[0]):
        dist = np.concatenate([o[b].reshape(o.shape[1], -1).T for o in outputs[::2]])  # (A, 4*reg_max)
        cls = np.concatenate([o[b].reshape(o.shape[1], -1).T for o in outputs[1::2]])  # (A, nc)
        boxes = decode_dfl(dist, centres, anchor_strides)
        results.append(_nms_per_class(boxes, cls, cfg))
    return results


def reference_standard(output: np.ndarray, cfg: NmsConfig = NmsConfig()) -> list[FrameResult]:
    """Reference post-processing of the standard (B, 4 + nc, A) layout."""
    results = []
    for b in range(output.shape[0]):
        pred = output[b].T  # (A, 4 + nc)
        results.append(_nms_per_class(xywh_to_xyxy(pred[:, :4]), pred[:, 4:], cfg))
    return results


def _iou(a, b) -> float:
    """IoU of two xyxy boxes (Python floats), in the order decode.iou_one_to_many computes it."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / max(union, 1e-300)


def _nms_per_class(boxes: np.ndarray, cls: np.ndarray, cfg: NmsConfig) -> FrameResult:
    best_class = cls.argmax(axis=1)
    best_score = cls.max(axis=1)
    kept = []  # (score, anchor, class)
    above = [a for a in range(len(best_score)) if best_score[a] >= np.float32(cfg.conf)]
    groups = range(1) if cfg.agnostic else range(cls.shape[1])
    for c in groups:
        members = [a for a in above if cfg.agnostic or best_class[a] == c]
        members.sort(key=lambda a: (-float(best_score[a]), a))
        as_floats = {a: [float(v) for v in boxes[a].astype(np.float64)] for a in members}
        while members:
            top = members.pop(0)
            kept.append((float(best_score[top]), top, int(best_class[top])))
            members = [a for a in members if _iou(as_floats[top], as_floats[a]) <= cfg.iou]
    kept.sort(key=lambda t: (-t[0], t[1]))
    kept = kept[: cfg.max_det]
    if not kept:
        return empty_result()
    anchors = np.array([k[1] for k in kept], np.int64)
    return FrameResult(boxes[anchors].astype(np.float32), best_score[anchors].astype(np.float32),
                       np.array([k[2] for k in kept], np.int32), anchors)
