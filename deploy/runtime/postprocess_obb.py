"""Batched NumPy post-processing of oriented-box outputs: threshold per anchor, decode candidates, rotated NMS.

The split layout has three outputs per level: the box distribution (B, 4*reg_max, h, w),
the class scores (B, nc, h, w) and the angle in radians (B, 1, h, w). As for upright boxes,
the best class is taken per anchor first and only anchors above the threshold are decoded
(int8 outputs are compared in the quantized domain). Suppression is ultralytics 8.4's rule:
Fast-NMS over probabilistic IoU (a box goes when any higher-scoring box of its class, kept
or not, overlaps it by more than `iou`), with its per-class coordinate offset, so the
decisions are its own. Only pairs close enough to matter are measured: the overlap of two
boxes whose centres are d apart is at most what their Gaussians allow (a bound below).

    dets = postprocess_obb_split(outputs, strides=[8, 16, 32], cfg=NmsConfig(conf=0.25, iou=0.7))
"""
import math
from collections.abc import Iterator, Sequence

import numpy as np

from deploy.runtime.decode import dfl_distances, logit, sigmoid
from deploy.runtime.postprocess import (
    FrameResult,
    NmsConfig,
    Quant,
    anchor_centres,
    by_frame,
    pick_classes,
    threshold_at,
    values_at,
)
from deploy.runtime.rotated import enclosing, pair_probiou, regularize

PER_LEVEL = 3  # box distribution, class scores, angle
CLASS_OFFSET = 7680.0  # ultralytics' max_wh: boxes of class c move by c * this before NMS
MAX_NMS = 30000  # at most this many candidates (the best) enter NMS, as in ultralytics
PAIR_BLOCK = 2_000_000  # candidate pairs measured at once


def empty_obb_result() -> FrameResult:
    return FrameResult(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32),
                       np.zeros(0, np.int64), np.zeros((0, 5), np.float32))


def postprocess_obb_split(outputs: list[np.ndarray], strides: Sequence[int], cfg: NmsConfig = NmsConfig(),
                          quant: Quant = None, logits: bool = False) -> list[FrameResult]:
    """Post-process the OBB split layout for B frames at once; rboxes (cx, cy, w, h, angle) in input pixels,
    angles regularized into [0, pi/2) as ultralytics reports them, boxes the upright boxes around them."""
    batch = outputs[0].shape[0]
    hw = [tuple(o.shape[2:]) for o in outputs[::PER_LEVEL]]
    offsets = np.cumsum([0] + [h * w for h, w in hw])
    conf = logit(cfg.conf) if logits else cfg.conf
    found = [_candidates(outputs, level, offsets[level], conf, quant, cfg.multi_label) for level in range(len(hw))]
    frames, anchors, classes, scores, dist, angles = (np.concatenate(parts) for parts in zip(*found))
    if frames.size == 0:
        return [empty_obb_result() for _ in range(batch)]
    if logits:
        scores = sigmoid(scores)
    centres, anchor_strides = anchor_centres(tuple(hw), tuple(strides))
    rboxes = decode_rboxes(dist, angles, centres[anchors], anchor_strides[anchors])
    return _nms_per_frame(batch, frames, anchors, classes, scores, rboxes, cfg)


def postprocess_obb_standard(output: np.ndarray, cfg: NmsConfig = NmsConfig()) -> list[FrameResult]:
    """Post-process ultralytics' own OBB output (B, 4 + nc + 1, A): xywh pixels, sigmoid scores, the angle."""
    frames, anchors, classes, scores = pick_classes(output[:, 4:-1, :], np.float32(cfg.conf), cfg.multi_label)
    rboxes = np.concatenate([output[frames, :4, anchors], output[frames, -1:, anchors]], 1).astype(np.float32)
    return _nms_per_frame(output.shape[0], frames, anchors, classes, scores.astype(np.float32), rboxes, cfg)


def _nms_per_frame(batch, frames, anchors, classes, scores, rboxes, cfg: NmsConfig) -> list[FrameResult]:
    """Sort candidates (frame, -score, anchor, class) and run Fast-NMS frame by frame."""
    if frames.size == 0:
        return [empty_obb_result() for _ in range(batch)]
    order, slices = by_frame(batch, frames, anchors, scores, classes)
    anchors, classes, scores, rboxes = anchors[order], classes[order], scores[order], rboxes[order]
    results = []
    for sl in slices:
        keep = fast_nms(rboxes[sl], classes[sl], cfg)
        kept = regularize(rboxes[sl][keep])
        results.append(FrameResult(enclosing(kept), scores[sl][keep], classes[sl][keep], anchors[sl][keep], kept))
    return results


def _candidates(outputs, level: int, offset: int, conf: float, quant: Quant, multi_label: bool):
    """(frames, anchors, classes, scores, distributions, angles) of one level's anchors that pass conf."""
    box, cls, ang = outputs[PER_LEVEL * level : PER_LEVEL * level + 3]
    batch, nc = cls.shape[:2]
    k = PER_LEVEL * level
    frames, local, classes, raw = pick_classes(cls.reshape(batch, nc, -1), threshold_at(conf, quant, k + 1),
                                               multi_label)
    scores = values_at(raw, quant, k + 1)
    dist = values_at(box.reshape(batch, box.shape[1], -1)[frames, :, local], quant, k)
    angle = values_at(ang.reshape(batch, -1)[frames, local], quant, k + 2)
    return frames, local + offset, classes, scores, dist, angle


def decode_rboxes(dist: np.ndarray, angles: np.ndarray, centres: np.ndarray, strides: np.ndarray) -> np.ndarray:
    """(K, 5) float32 rotated boxes in input pixels: the distances' midpoint turned by the angle, as
    ultralytics' dist2rbox, then scaled by the anchor's stride."""
    ltrb = dfl_distances(dist)
    half = (ltrb[:, 2:] - ltrb[:, :2]) / 2  # offset of the centre from the anchor, before turning
    theta = angles.astype(np.float64)
    cos, sin = np.cos(theta), np.sin(theta)
    cx = half[:, 0] * cos - half[:, 1] * sin + centres[:, 0]
    cy = half[:, 0] * sin + half[:, 1] * cos + centres[:, 1]
    s = strides.astype(np.float64)
    wh = ltrb[:, :2] + ltrb[:, 2:]
    return np.stack([cx * s, cy * s, wh[:, 0] * s, wh[:, 1] * s, theta], 1).astype(np.float32)


def fast_nms(rboxes: np.ndarray, classes: np.ndarray, cfg: NmsConfig) -> np.ndarray:
    """Indices kept by class-aware Fast-NMS over probiou, for boxes already sorted by descending score.

    Box j goes when any box ranked before it (suppressed or not) of its class overlaps it by
    more than cfg.iou. Pairs are found by sweeping centres along x within each class, and only
    those within reach of the bound are measured.
    """
    n = min(len(rboxes), MAX_NMS)
    if n == 0:
        return np.zeros(0, np.int64)
    boxes = rboxes[:n].copy()
    if not cfg.agnostic:
        boxes[:, :2] += classes[:n, None].astype(np.float32) * np.float32(CLASS_OFFSET)
    suppressed = np.zeros(n, bool)
    for first, second in _near_pairs(boxes, cfg.iou):
        overlap = pair_probiou(boxes, first, second) > np.float32(cfg.iou)
        suppressed[np.maximum(first, second)[overlap]] = True  # the later-ranked box of each overlapping pair
    return np.flatnonzero(~suppressed)[: cfg.max_det]


def reach_bound(iou: float) -> float:
    """The Bhattacharyya distance above which probiou cannot exceed `iou`, halved for safety."""
    gap = min(max(1.0 - iou, 1e-12), 1.0)
    return -math.log(max(1.0 - gap * gap, 1e-300)) * 2.0


def _near_pairs(boxes: np.ndarray, iou: float) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Index pairs that might overlap by more than `iou`, in blocks of at most PAIR_BLOCK candidates (a
    crowd of huge boxes, as an untrained model makes, stays within memory). The distance part of the
    Bhattacharyya distance, at least 3 d^2 / (L1^2 + L2^2) for longest sides L, must stay under reach_bound;
    so a pair's centres are at most sqrt(2 * bound / 3) times its larger box's longest side apart along x:
    each box looks for partners no larger than itself within that reach, after sorting by x."""
    limit = reach_bound(iou)
    order = np.argsort(boxes[:, 0], kind="stable")
    r = boxes[order].astype(np.float64)
    xs, ys = r[:, 0], r[:, 1]
    longest = np.maximum(r[:, 2], r[:, 3])
    reach = np.sqrt(2.0 * limit / 3.0) * longest
    lo = np.searchsorted(xs, xs - reach, side="left")
    counts = np.searchsorted(xs, xs + reach, side="right") - lo
    total = np.cumsum(counts)
    edges = (0, len(xs)) if total[-1] <= PAIR_BLOCK else np.unique(np.concatenate(
        [[0], np.searchsorted(total, np.arange(PAIR_BLOCK, total[-1], PAIR_BLOCK)), [len(xs)]]))
    for start, end in zip(edges[:-1], edges[1:]):  # a row's partners (<= MAX_NMS) always fit in one block
        c = counts[start:end]
        before = total[start:end] - c - (total[start - 1] if start else 0)  # a row's first slot in the block
        a = np.repeat(np.arange(start, end), c)
        b = np.arange(len(a)) + np.repeat(lo[start:end] - before, c)
        la, lb = longest[a], longest[b]
        pick = (lb < la) | ((lb == la) & (b > a))  # each pair once: from the larger box
        pick &= 3.0 * ((xs[a] - xs[b]) ** 2 + (ys[a] - ys[b]) ** 2) <= limit * (la * la + lb * lb)
        yield order[a[pick]], order[b[pick]]
