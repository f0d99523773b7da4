"""The straightforward post-processor: the correctness oracle and the speed baseline.

Dequantize everything, threshold, then decode box by box and run greedy NMS class by
class in plain Python: deliberately simple rather than fast. It shares no arithmetic
with the batched post-processor (anchors, DFL, sigmoid and IoU are written out here
again, loop by loop), so a slip in either one shows up as a difference between them.
`studio bench postprocess` measures the batched version against it, and the tests
require identical detections.
"""
import math
from collections.abc import Sequence

import numpy as np

from deploy.runtime.postprocess import FrameResult, NmsConfig, Quant, empty_result


def reference_split(outputs: list[np.ndarray], strides: Sequence[int], cfg: NmsConfig = NmsConfig(),
                    quant: Quant = None, logits: bool = False) -> list[FrameResult]:
    """Reference post-processing of the rknn-split layout, frame by frame (logits: class outputs are logits)."""
    if quant is not None:  # int8 -> float32 as (q - zero_point) * scale
        outputs = [(o.astype(np.float32) - np.float32(z)) * np.float32(s) for o, (s, z) in zip(outputs, quant)]
    levels = [(o.shape[2], o.shape[3], int(s)) for o, s in zip(outputs[::2], strides)]  # (h, w, stride)
    results = []
    for b in range(outputs[0].shape[0]):
        dist = np.concatenate([o[b].reshape(o.shape[1], -1).T for o in outputs[::2]])  # (A, 4*reg_max)
        cls = np.concatenate([o[b].reshape(o.shape[1], -1).T for o in outputs[1::2]])  # (A, nc)
        candidates = _candidates(cls, cfg, logits)
        boxes = {a: _decode_box(dist[a], *_anchor_centre(a, levels)) for a in {a for _, a, _ in candidates}}
        results.append(_nms_per_class(candidates, boxes, cfg))
    return results


def reference_standard(output: np.ndarray, cfg: NmsConfig = NmsConfig()) -> list[FrameResult]:
    """Reference post-processing of the standard (B, 4 + nc, A) layout (xywh pixels, sigmoid scores)."""
    results = []
    for b in range(output.shape[0]):
        pred = output[b].T  # (A, 4 + nc)
        candidates = _candidates(pred[:, 4:], cfg, logits=False)
        boxes = {}
        for _, a, _ in candidates:
            cx, cy, w, h = (np.float32(v) for v in pred[a, :4])
            half_w, half_h = w / np.float32(2), h / np.float32(2)
            boxes[a] = np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h], np.float32)
        results.append(_nms_per_class(candidates, boxes, cfg))
    return results


def _candidates(cls: np.ndarray, cfg: NmsConfig, logits: bool) -> list[tuple[np.float32, int, int]]:
    """(score, anchor, class) of every anchor's best class (or every class, multi-label) with score >= conf."""
    scores = cls
    if logits:  # the threshold applies to probabilities: take the sigmoid of every value first
        scores = (1.0 / (1.0 + np.exp(-cls.astype(np.float64)))).astype(np.float32)
    conf = np.float32(cfg.conf)
    if cfg.multi_label:
        return [(scores[a, c], int(a), int(c)) for a, c in zip(*np.nonzero(scores >= conf))]
    found = []
    for a in range(len(scores)):
        best = int(np.argmax(scores[a]))  # the first class on ties
        if scores[a, best] >= conf:
            found.append((scores[a, best], a, best))
    return found


def _anchor_centre(anchor: int, levels: list[tuple[int, int, int]]) -> tuple[float, float, int]:
    """Grid-cell centre (x, y) in cells and the stride of a global anchor index (levels in order, rows then columns)."""
    for h, w, stride in levels:
        if anchor < h * w:
            row, col = divmod(anchor, w)
            return col + 0.5, row + 0.5, stride
        anchor -= h * w
    raise IndexError("anchor index beyond the last level")


def _decode_box(bins: np.ndarray, cx: float, cy: float, stride: int) -> np.ndarray:
    """One anchor's (4 * reg_max,) box-distribution logits -> xyxy input pixels: softmax expectation per side."""
    reg_max = len(bins) // 4
    sides = []
    for side in range(4):  # left, top, right, bottom distances in cells
        logits = [float(v) for v in bins[side * reg_max : (side + 1) * reg_max]]
        top = max(logits)
        weights = [math.exp(v - top) for v in logits]
        sides.append(sum(k * wk for k, wk in enumerate(weights)) / sum(weights))
    left, up, right, down = sides
    return np.array([(cx - left) * stride, (cy - up) * stride, (cx + right) * stride, (cy + down) * stride],
                    np.float32)


def _iou(a, b) -> float:
    """IoU of two xyxy boxes given as Python floats."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / max(union, 1e-300)


def _nms_per_class(candidates: list, boxes: dict, cfg: NmsConfig) -> FrameResult:
    """Greedy NMS within each class (or all together when agnostic) over (score, anchor, class) candidates."""
    groups: dict = {}
    for item in candidates:
        groups.setdefault(0 if cfg.agnostic else item[2], []).append(item)
    survivors = []
    for members in groups.values():
        members.sort(key=lambda t: (-t[0], t[1], t[2]))
        as_floats = {t[1]: [float(v) for v in boxes[t[1]]] for t in members}
        while members:
            top = members.pop(0)
            survivors.append(top)
            members = [t for t in members if _iou(as_floats[top[1]], as_floats[t[1]]) <= cfg.iou]
    survivors.sort(key=lambda t: (-t[0], t[1], t[2]))
    survivors = survivors[: cfg.max_det]
    if not survivors:
        return empty_result()
    return FrameResult(np.array([boxes[t[1]] for t in survivors], np.float32).reshape(-1, 4),
                       np.array([t[0] for t in survivors], np.float32),
                       np.array([t[2] for t in survivors], np.int32), np.array([t[1] for t in survivors], np.int64))
