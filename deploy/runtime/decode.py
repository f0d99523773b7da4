"""The batched post-processor's arithmetic: anchors, DFL decoding, IoU, int8 thresholds.

The batched post-processor and tile merging call these; the reference post-processor
(reference.py) writes the same maths out again loop by loop, so the two check each other.
"""
from collections.abc import Sequence

import numpy as np


def anchor_grid(hw: Sequence[tuple[int, int]], strides: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Anchor centres (A, 2) in grid units (x + 0.5, y + 0.5) and each anchor's stride (A,), level by level."""
    centres, anchor_strides = [], []
    for (h, w), s in zip(hw, strides):
        ys, xs = np.divmod(np.arange(h * w, dtype=np.float32), np.float32(w))
        centres.append(np.stack([xs + 0.5, ys + 0.5], axis=1))
        anchor_strides.append(np.full(h * w, s, np.float32))
    return np.concatenate(centres), np.concatenate(anchor_strides)


def dfl_distances(dist: np.ndarray) -> np.ndarray:
    """(K, 4 * reg_max) box-distribution logits -> (K, 4) float64 left, top, right, bottom in grid units.

    The softmax expectation per side, computed in float64: numpy's SIMD exp may differ by an ulp
    between its vector body and its tail, so float32 results would depend on how many rows are
    decoded together; in float64 that difference vanishes when the caller rounds to float32.
    The logits are shifted by their overall maximum (one reduction instead of one per row, which
    costs more than the rest together); a row so far below it that its exponentials all vanish
    is shifted by its own maximum instead.
    """
    k = dist.shape[0]
    logits = dist.reshape(k * 4, -1).astype(np.float64)
    reg_max = logits.shape[1]
    weights = np.stack([np.arange(reg_max, dtype=np.float64), np.ones(reg_max)], 1)
    sums = np.exp(logits - logits.max(initial=0.0)) @ weights  # (4K, 2): sum of k * p, sum of p
    lost = sums[:, 1] < 1e-200
    if lost.any():
        sums[lost] = np.exp(logits[lost] - logits[lost].max(axis=1, keepdims=True)) @ weights
    return (sums[:, 0] / sums[:, 1]).reshape(k, 4)


def decode_dfl(dist: np.ndarray, centres: np.ndarray, strides: np.ndarray) -> np.ndarray:
    """(K, 4 * reg_max) box-distribution logits -> (K, 4) float32 xyxy boxes in input pixels."""
    ltrb = dfl_distances(dist)
    x1y1 = centres - ltrb[:, :2]
    x2y2 = centres + ltrb[:, 2:]
    return (np.concatenate([x1y1, x2y2], axis=1) * strides[:, None]).astype(np.float32)


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """(K, 4) centre-size boxes -> corner boxes."""
    half = xywh[:, 2:] / 2
    return np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """(M,) float64 areas of (M, 4) float64 xyxy boxes."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def iou_one_to_many(box: np.ndarray, area: float, boxes: np.ndarray, areas: np.ndarray) -> np.ndarray:
    """IoU of one float64 xyxy box against (M, 4) float64 boxes (areas precomputed by box_areas).

    The reference does the same operations in the same order on Python floats, so both
    post-processors suppress exactly the same pairs.
    """
    iw = np.maximum(0.0, np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]))
    ih = np.maximum(0.0, np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]))
    inter = iw * ih
    union = area + areas - inter
    return inter / np.maximum(union, 1e-300)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8 NPU values -> float32, as (q - zero_point) * scale."""
    return (q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def int8_threshold(conf: float, scale: float, zero_point: int) -> int:
    """Smallest int8 q whose dequantized value is >= conf (128 if none), using dequantize's own arithmetic."""
    values = dequantize(np.arange(-128, 128, dtype=np.int16), scale, zero_point)
    above = np.flatnonzero(values >= np.float32(conf))
    return int(above[0]) - 128 if above.size else 128


def level_shapes(outputs: list[np.ndarray]) -> list[tuple[int, int]]:
    """(h, w) of each level from the split outputs [box0, cls0, box1, cls1, ...]."""
    return [tuple(o.shape[2:]) for o in outputs[::2]]


def logit(p: float) -> np.float32:
    """The logit whose sigmoid is p: a confidence threshold moved to the logit domain."""
    p = min(max(p, 1e-12), 1 - 1e-7)
    return np.float32(np.log(p / (1 - p)))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """float32 sigmoid of class logits (only candidates get here)."""
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)
