"""The straightforward oriented-box post-processor: the oracle and the speed baseline for postprocess_obb.

Dequantize everything, then walk the anchors one by one: best class, threshold, DFL
expectation and the turn by the angle written out in Python floats, then Fast-NMS as a
loop over the candidates in score order, each compared with those ranked before it. The
overlap measure is the same probiou (the rule is the point of the comparison, not the
formula); everything else shares no code with the batched version.
"""
import math
from collections.abc import Sequence

import numpy as np

from deploy.runtime.postprocess import FrameResult, NmsConfig, Quant
from deploy.runtime.postprocess_obb import CLASS_OFFSET, empty_obb_result
from deploy.runtime.reference import _anchor_centre, _candidates
from deploy.runtime.rotated import probiou


def reference_obb_split(outputs: list[np.ndarray], strides: Sequence[int], cfg: NmsConfig = NmsConfig(),
                        quant: Quant = None, logits: bool = False) -> list[FrameResult]:
    """Reference post-processing of the OBB split layout [box0, cls0, angle0, box1, ...], frame by frame."""
    if quant is not None:
        outputs = [(o.astype(np.float32) - np.float32(z)) * np.float32(s) for o, (s, z) in zip(outputs, quant)]
    levels = [(o.shape[2], o.shape[3], int(s)) for o, s in zip(outputs[::3], strides)]
    results = []
    for b in range(outputs[0].shape[0]):
        dist = np.concatenate([o[b].reshape(o.shape[1], -1).T for o in outputs[::3]])
        cls = np.concatenate([o[b].reshape(o.shape[1], -1).T for o in outputs[1::3]])
        angle = np.concatenate([o[b].reshape(-1) for o in outputs[2::3]])
        candidates = sorted(_candidates(cls, cfg, logits), key=lambda t: (-t[0], t[1], t[2]))
        rboxes = [_decode_rbox(dist[a], float(angle[a]), *_anchor_centre(a, levels)) for _, a, _ in candidates]
        results.append(_fast_nms(candidates, rboxes, cfg))
    return results


def _decode_rbox(bins: np.ndarray, theta: float, cx: float, cy: float, stride: int) -> np.ndarray:
    """One anchor's box distribution and angle -> (cx, cy, w, h, angle) in input pixels."""
    reg_max = len(bins) // 4
    sides = []
    for side in range(4):
        logits = [float(v) for v in bins[side * reg_max : (side + 1) * reg_max]]
        top = max(logits)
        weights = [math.exp(v - top) for v in logits]
        sides.append(sum(k * wk for k, wk in enumerate(weights)) / sum(weights))
    left, up, right, down = sides
    along, across = (right - left) / 2, (down - up) / 2
    x = along * math.cos(theta) - across * math.sin(theta) + cx
    y = along * math.sin(theta) + across * math.cos(theta) + cy
    return np.array([x * stride, y * stride, (left + right) * stride, (up + down) * stride, theta], np.float32)


def _fast_nms(candidates: list, rboxes: list, cfg: NmsConfig) -> FrameResult:
    """Keep a candidate unless one ranked before it, of its class (any, agnostic), overlaps it by more than iou."""
    shifted = []
    for (_, _, c), r in zip(candidates, rboxes):
        s = r.copy()
        if not cfg.agnostic:
            s[:2] += np.float32(c) * np.float32(CLASS_OFFSET)
        shifted.append(s)
    kept = []
    for j in range(len(candidates)):
        earlier = [i for i in range(j) if cfg.agnostic or candidates[i][2] == candidates[j][2]]
        if not earlier or not (probiou(shifted[j][None], np.array([shifted[i] for i in earlier])) >
                               np.float32(cfg.iou)).any():
            kept.append(j)
    kept = kept[: cfg.max_det]
    if not kept:
        return empty_obb_result()
    out = np.array([rboxes[j] for j in kept], np.float32)
    swap = np.mod(out[:, 4], math.pi) >= math.pi / 2  # ultralytics' regularization, written out
    out[swap, 2], out[swap, 3] = out[swap, 3].copy(), out[swap, 2].copy()
    out[:, 4] = np.mod(out[:, 4], math.pi / 2)
    half_w = (out[:, 2] * np.abs(np.cos(out[:, 4])) + out[:, 3] * np.abs(np.sin(out[:, 4]))) / 2
    half_h = (out[:, 2] * np.abs(np.sin(out[:, 4])) + out[:, 3] * np.abs(np.cos(out[:, 4]))) / 2
    boxes = np.stack([out[:, 0] - half_w, out[:, 1] - half_h, out[:, 0] + half_w, out[:, 1] + half_h], 1)
    return FrameResult(boxes.astype(np.float32), np.array([candidates[j][0] for j in kept], np.float32),
                       np.array([candidates[j][2] for j in kept], np.int32),
                       np.array([candidates[j][1] for j in kept], np.int64), out)
