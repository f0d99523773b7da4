"""Recall at a working threshold: the share of labelled objects a model finds at conf 0.25, matched at IoU 0.5.

mAP summarizes every threshold; a user deploying at the default conf asks how many objects come
back. Each image's detections above `conf`, best first, take the best unmatched label of their
class with IoU >= `iou` (the exact overlap of turned rectangles for oriented boxes, of upright
boxes otherwise); labels marked difficult are left out. `found` flags each label, so a caller can
ask about a subset (say, objects at 20-70 degrees).
"""
from __future__ import annotations

import numpy as np

from deploy.runtime.postprocess import FrameResult
from deploy.runtime.rotated import enclosing

CONF, IOU = 0.25, 0.5


def found_labels(labels: np.ndarray, label_classes: np.ndarray, preds: np.ndarray, scores: np.ndarray,
                 classes: np.ndarray, oriented: bool, conf: float = CONF, iou: float = IOU) -> np.ndarray:
    """(M,) bool: which labels of one image a detection above conf matches (boxes xyxy, or rboxes if oriented),
    paired as the export report pairs detections (deploy.convert.verify.matched)."""
    from deploy.convert.verify import matched

    keep = scores >= conf
    order = np.argsort(-scores[keep], kind="stable")
    return matched(_as_frame(labels, label_classes, oriented), _as_frame(preds[keep][order], classes[keep][order],
                                                                        oriented), iou)


def _as_frame(boxes: np.ndarray, classes: np.ndarray, oriented: bool) -> FrameResult:
    """Boxes (or oriented boxes) and classes as a FrameResult, the form the pairing reads."""
    n = len(classes)
    upright = enclosing(boxes) if oriented else np.asarray(boxes, np.float32).reshape(-1, 4)
    return FrameResult(upright, np.ones(n, np.float32), np.asarray(classes), np.arange(n),
                       np.asarray(boxes, np.float32) if oriented else None)


def recall_summary(flags: list[np.ndarray]) -> dict:
    """The JSON block of `studio eval`: settings, counts and the recall."""
    hits = np.concatenate(flags) if flags else np.zeros(0, bool)
    return {"conf": CONF, "iou": IOU, "labels": int(hits.size), "found": int(hits.sum()),
            "recall": round(float(hits.mean()), 4) if hits.size else None}
