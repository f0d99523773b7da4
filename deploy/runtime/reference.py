"""The straightforward post-processor: the correctness oracle and the speed baseline.

Dequantize and decode every anchor, loop over classes, and run greedy NMS in plain
Python: deliberately simple rather than fast. `studio bench postprocess` measures the
batched version against it, and the tests require identical detections.
"""
from collections.abc import Sequence

import numpy as np

from deploy.runtime.decode import anchor_grid, decode_dfl, dequantize, level_shapes, logit, sigmoid, xywh_to_xyxy
from deploy.runtime.postprocess import FrameResult, NmsConfig, Quant, empty_result


def reference_split(outputs: list[np.ndarray], strides: Sequence[int], cfg: NmsConfig = NmsConfig(),
                    quant: Quant = None, logits: bool = False) -> list[FrameResult]:
    """Reference post-processing of the rknn-split layout, frame by frame (logits: class outputs are logits)."""
    if quant is not None:
        outputs = [dequantize(o, s, z) for o, (s, z) in zip(outputs, quant)]
    hw = level_shapes(outputs)
    centres, anchor_strides = anchor_grid(hw, strides)
    results = []
    for b in range(outputs[0].shape[0]):
        dist = np.concatenate([o[b].reshape(o.shape[1], -1).T for o in outputs[::2]])  # (A, 4*reg_max)
        cls = np.concatenate([o[b].reshape(o.shape[1], -1).T for o in outputs[1::2]])  # (A, nc)
        boxes = decode_dfl(dist, centres, anchor_strides)
        results.append(_nms_per_class(boxes, cls, cfg, logit(cfg.conf) if logits else None))
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


def _nms_per_class(boxes: np.ndarray, cls: np.ndarray, cfg: NmsConfig, logit_conf=None) -> FrameResult:
    """Threshold (on logits when logit_conf is given, then take their sigmoid), loop over classes, greedy NMS."""
    conf = np.float32(cfg.conf) if logit_conf is None else logit_conf
    if cfg.multi_label:  # every (anchor, class) above conf
        pairs = [(int(a), int(c)) for a, c in zip(*np.nonzero(cls >= conf))]
    else:  # each anchor's best class, if above conf
        best_class = cls.argmax(axis=1)
        pairs = [(int(a), int(best_class[a])) for a in np.flatnonzero(cls.max(axis=1) >= conf)]
    if logit_conf is not None:
        cls = sigmoid(cls)
    kept = []  # (score, anchor, class)
    for c in range(cls.shape[1]):  # loop over classes
        kept += [(float(cls[a, c]), a, c) for a, cc in pairs if cc == c]
    groups = {0: kept} if cfg.agnostic else {}
    if not cfg.agnostic:
        for item in kept:
            groups.setdefault(item[2], []).append(item)
    survivors = []
    for members in groups.values():  # greedy NMS within each class (or all together when agnostic)
        members.sort(key=lambda t: (-t[0], t[1], t[2]))
        as_floats = {t[1]: [float(v) for v in boxes[t[1]].astype(np.float64)] for t in members}
        while members:
            top = members.pop(0)
            survivors.append(top)
            members = [t for t in members if _iou(as_floats[top[1]], as_floats[t[1]]) <= cfg.iou]
    survivors.sort(key=lambda t: (-t[0], t[1], t[2]))
    survivors = survivors[: cfg.max_det]
    if not survivors:
        return empty_result()
    anchors = np.array([t[1] for t in survivors], np.int64)
    return FrameResult(boxes[anchors].astype(np.float32), np.array([t[0] for t in survivors], np.float32),
                       np.array([t[2] for t in survivors], np.int32), anchors)
