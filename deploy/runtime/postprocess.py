"""Batched NumPy post-processing of YOLO outputs: threshold, decode candidates only, class-aware NMS.

Why it is fast: the class maximum is taken per anchor first and one 1-D mask is searched
(searching the (nc, anchors) mask costs 20x more); DFL boxes are decoded only for anchors
above the threshold; int8 outputs are compared in the quantized domain, so only the
candidates are ever dequantized; NMS visits only the boxes it keeps.

    dets = postprocess_split(outputs, strides=[8, 16, 32], cfg=NmsConfig(conf=0.25))

`outputs` is [box0, cls0, box1, cls1, ...], each (B, C, h, w): float32 (ONNX Runtime, the
rknn-toolkit2 APIs) or int8 with `quant=[(scale, zero_point), ...]` per output (raw NPU).
"""
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np

from deploy.runtime.decode import (
    anchor_grid,
    box_areas,
    decode_dfl,
    dequantize,
    int8_threshold,
    iou_one_to_many,
    level_shapes,
    logit,
    sigmoid,
    xywh_to_xyxy,
)

Quant = Optional[Sequence[tuple[float, int]]]


@dataclass(frozen=True)
class NmsConfig:
    """Thresholds shared by both post-processors."""

    conf: float = 0.25  # minimum class score
    iou: float = 0.45  # a box is suppressed by a kept box of its class when IoU > iou
    max_det: int = 300  # most detections per frame
    agnostic: bool = False  # suppress across classes too
    multi_label: bool = False  # every class above conf is a candidate, not only each anchor's best (for mAP)


@dataclass
class FrameResult:
    """Detections of one frame in model-input pixels, by descending score (ties: lower anchor first)."""

    boxes: np.ndarray  # (N, 4) float32 xyxy
    scores: np.ndarray  # (N,) float32
    classes: np.ndarray  # (N,) int32
    anchors: np.ndarray  # (N,) int64 global anchor index (level-major, then row-major)
    rboxes: Optional[np.ndarray] = None  # (N, 5) float32 cx, cy, w, h, angle (oriented boxes only)

    def __len__(self) -> int:
        return len(self.scores)


def empty_result() -> FrameResult:
    return FrameResult(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32),
                       np.zeros(0, np.int64))


_GRIDS = {}


def anchor_centres(hw: tuple[tuple[int, int], ...], strides: tuple[int, ...]):
    """Anchor centres and strides, cached per input geometry."""
    key = (hw, strides)
    if key not in _GRIDS:
        _GRIDS[key] = anchor_grid(hw, strides)
    return _GRIDS[key]


def postprocess_split(outputs: list[np.ndarray], strides: Sequence[int], cfg: NmsConfig = NmsConfig(),
                      quant: Quant = None, logits: bool = False) -> list[FrameResult]:
    """Post-process the rknn-split layout for B frames at once; one FrameResult per frame.

    logits: the class outputs hold logits; the threshold moves to the logit domain and
    only the candidates' scores go through the sigmoid.
    """
    batch = outputs[0].shape[0]
    hw = tuple(level_shapes(outputs))
    offsets = np.cumsum([0] + [h * w for h, w in hw])
    conf = logit(cfg.conf) if logits else cfg.conf
    found = [_level_candidates(outputs, level, offsets[level], conf, quant, cfg.multi_label)
             for level in range(len(hw))]
    frames, anchors, classes, scores, dist = (np.concatenate(parts) for parts in zip(*found))
    if frames.size == 0:
        return [empty_result() for _ in range(batch)]
    if logits:
        scores = sigmoid(scores)
    centres, anchor_strides = anchor_centres(hw, tuple(strides))
    boxes = decode_dfl(dist, centres[anchors], anchor_strides[anchors])
    return _per_frame(batch, frames, anchors, boxes, scores, classes, cfg)


def threshold_at(conf: float, quant: Quant, index: int):
    """The threshold to compare output `index` with: conf itself, or its int8 value on that output's grid."""
    return np.float32(conf) if quant is None else int8_threshold(conf, *quant[index])


def values_at(x: np.ndarray, quant: Quant, index: int) -> np.ndarray:
    """float32 values of output `index` (dequantized on its own grid when int8)."""
    return x.astype(np.float32, copy=False) if quant is None else dequantize(x, *quant[index])


def pick_classes(scores: np.ndarray, threshold, multi_label: bool):
    """(frames, anchors, classes, raw scores) of the (B, nc, A) class scores that pass `threshold`: every
    class above it (multi-label, for mAP) or each anchor's best class, found with one 1-D mask search
    (searching the (nc, A) mask costs 20x more)."""
    if multi_label:
        frames, classes, anchors = np.nonzero(scores >= threshold)
        return frames, anchors, classes.astype(np.int32), scores[frames, classes, anchors]
    peak = scores.max(axis=1)  # (B, A): best class score per anchor
    frames, anchors = np.divmod(np.flatnonzero(peak >= threshold), scores.shape[2])
    return frames, anchors, scores[frames, :, anchors].argmax(axis=1).astype(np.int32), peak[frames, anchors]


def _level_candidates(outputs, level: int, offset: int, conf: float, quant: Quant, multi_label: bool):
    """Candidates of one level: (frames, anchors, classes, scores, box distributions)."""
    box, cls = outputs[2 * level], outputs[2 * level + 1]
    batch, nc = cls.shape[:2]
    frames, local, classes, raw = pick_classes(cls.reshape(batch, nc, -1), threshold_at(conf, quant, 2 * level + 1),
                                               multi_label)
    scores = values_at(raw, quant, 2 * level + 1)
    dist = values_at(box.reshape(batch, box.shape[1], -1)[frames, :, local], quant, 2 * level)
    return frames, local + offset, classes, scores, dist


def postprocess_standard(output: np.ndarray, cfg: NmsConfig = NmsConfig()) -> list[FrameResult]:
    """Post-process ultralytics' standard (B, 4 + nc, A) output (xywh pixels, sigmoid scores)."""
    batch = output.shape[0]
    frames, anchors, classes, scores = pick_classes(output[:, 4:, :], np.float32(cfg.conf), cfg.multi_label)
    if frames.size == 0:
        return [empty_result() for _ in range(batch)]
    boxes = xywh_to_xyxy(output[frames, :4, anchors])
    return _per_frame(batch, frames, anchors, boxes, scores, classes, cfg)


def by_frame(batch: int, frames, anchors, scores, classes) -> tuple[np.ndarray, list[slice]]:
    """The order that sorts candidates by (frame, -score, anchor, class), and each frame's slice of it."""
    order = np.lexsort((anchors.astype(np.int64) << 20 | classes, -scores, frames))  # (anchor, class) as one key
    bounds = np.searchsorted(frames[order], np.arange(batch + 1))
    return order, [slice(bounds[b], bounds[b + 1]) for b in range(batch)]


def _per_frame(batch, frames, anchors, boxes, scores, classes, cfg: NmsConfig) -> list[FrameResult]:
    """Sort candidates (frame, -score, anchor, class), then greedy NMS frame by frame."""
    order, slices = by_frame(batch, frames, anchors, scores, classes)
    anchors, boxes, scores, classes = anchors[order], boxes[order], scores[order], classes[order]
    results = []
    for sl in slices:
        keep = greedy_nms(boxes[sl], classes[sl], cfg)
        results.append(FrameResult(boxes[sl][keep].astype(np.float32), scores[sl][keep], classes[sl][keep],
                                   anchors[sl][keep]))
    return results


MAX_PAIRS = 200_000  # above this many same-class pairs, visit kept boxes one by one instead


def greedy_nms(boxes: np.ndarray, classes: np.ndarray, cfg: NmsConfig) -> np.ndarray:
    """Indices kept by class-aware greedy NMS over boxes already sorted by descending score.

    Greedy NMS keeps box j unless a kept box of its class ranked before it overlaps it by
    more than cfg.iou. Boxes of different classes never interact, so only same-class pairs
    are measured, all at once; the keep flags are then settled by iterating that rule,
    which reaches the greedy answer in as many rounds as the longest suppression chain.
    When the pairs would be too many (one crowded class, or agnostic), it falls back to
    visiting the kept boxes one by one.
    """
    groups = np.zeros(len(boxes), np.int64) if cfg.agnostic else classes.astype(np.int64)
    by_group = np.lexsort((np.arange(len(boxes)), groups))  # group, then rank
    sizes = np.bincount(groups[by_group])
    sizes = sizes[sizes > 0]
    if int((sizes * (sizes - 1) // 2).sum()) > MAX_PAIRS:
        return _greedy_visit(boxes, groups, cfg)
    first, second = _pairs_within_groups(sizes)  # positions in by_group, first ranked before second
    src, dst = by_group[first], by_group[second]
    boxes64 = boxes.astype(np.float64)
    areas = box_areas(boxes64)
    overlap = pair_iou(boxes64, areas, src, dst) > cfg.iou
    return settle_greedy(len(boxes), src[overlap], dst[overlap])[: cfg.max_det]


def settle_greedy(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Indices greedy NMS keeps among n boxes ranked by score, given every overlapping pair (src ranked before
    dst): a box is kept unless a kept box overlaps it. Iterating that rule from "all kept" settles on the
    greedy answer in as many rounds as the longest chain of suppressions."""
    keep = np.ones(n, bool)
    while True:
        suppressed = np.zeros(n, bool)
        suppressed[dst[keep[src]]] = True
        if np.array_equal(~suppressed, keep):
            return np.flatnonzero(keep)
        keep = ~suppressed


def _pairs_within_groups(sizes: np.ndarray):
    """All (i, j), i < j, of positions inside each consecutive group of the given sizes."""
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)  # group start of each position
    local = np.arange(sizes.sum()) - starts
    partners = np.repeat(sizes, sizes) - 1 - local  # how many later members each position has
    total = int(partners.sum())
    first = np.repeat(np.arange(sizes.sum()), partners)
    offset_in_run = np.arange(total) - np.repeat(np.cumsum(partners) - partners, partners)
    return first, first + 1 + offset_in_run


def pair_iou(boxes: np.ndarray, areas: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes[a[k]] and boxes[b[k]] for each k, float64, the same arithmetic as iou_one_to_many."""
    iw = np.maximum(0.0, np.minimum(boxes[a, 2], boxes[b, 2]) - np.maximum(boxes[a, 0], boxes[b, 0]))
    ih = np.maximum(0.0, np.minimum(boxes[a, 3], boxes[b, 3]) - np.maximum(boxes[a, 1], boxes[b, 1]))
    inter = iw * ih
    return inter / np.maximum(areas[a] + areas[b] - inter, 1e-300)


def _greedy_visit(boxes: np.ndarray, groups: np.ndarray, cfg: NmsConfig) -> np.ndarray:
    """Greedy NMS visiting only the boxes it keeps: each round keeps the best and drops its overlaps."""
    boxes64 = boxes.astype(np.float64)
    areas = box_areas(boxes64)
    remaining = np.arange(len(boxes))
    keep = []
    while remaining.size and len(keep) < cfg.max_det:
        i, rest = remaining[0], remaining[1:]
        keep.append(i)
        if not rest.size:
            break
        suppress = iou_one_to_many(boxes64[i], areas[i], boxes64[rest], areas[rest]) > cfg.iou
        suppress &= groups[rest] == groups[i]
        remaining = rest[~suppress]
    return np.asarray(keep, dtype=np.int64)
