"""Recall at a working threshold: the share of labelled objects a model finds at conf 0.25, matched at IoU 0.5.

mAP summarizes every threshold; a user deploying at the default conf asks how many objects come
back. Each image's detections above `conf`, best first, take the best unmatched label of their
class with IoU >= `iou` (the exact overlap of turned rectangles for oriented boxes, of upright
boxes otherwise); labels marked difficult are left out. `found` flags each label, so a caller can
ask about a subset (say, objects at 20-70 degrees).
"""
from __future__ import annotations

import numpy as np

from deploy.runtime.decode import box_areas, iou_one_to_many
from deploy.runtime.rotated import polygon_iou

CONF, IOU = 0.25, 0.5


def found_labels(labels: np.ndarray, label_classes: np.ndarray, preds: np.ndarray, scores: np.ndarray,
                 classes: np.ndarray, oriented: bool, conf: float = CONF, iou: float = IOU) -> np.ndarray:
    """(M,) bool: which labels of one image a detection above conf matches (boxes xyxy, or rboxes if oriented)."""
    found = np.zeros(len(labels), bool)
    keep = scores >= conf
    preds, classes = preds[keep], classes[keep]
    order = np.argsort(-scores[keep], kind="stable")
    if oriented:
        overlaps = polygon_iou(preds, labels) if len(preds) and len(labels) else np.zeros((len(preds), len(labels)))
    else:
        lab = labels.astype(np.float64)
        areas = box_areas(lab)
        overlaps = np.array([iou_one_to_many(p, float(box_areas(p[None])[0]), lab, areas)
                             for p in preds.astype(np.float64)]).reshape(len(preds), len(labels))
    for k in order:
        free = np.flatnonzero(~found & (label_classes == classes[k]))
        if free.size:
            best = free[np.argmax(overlaps[k, free])]
            found[best] = overlaps[k, best] >= iou
    return found


def recall_summary(flags: list[np.ndarray]) -> dict:
    """The JSON block of `studio eval`: settings, counts and the recall."""
    hits = np.concatenate(flags) if flags else np.zeros(0, bool)
    return {"conf": CONF, "iou": IOU, "labels": int(hits.size), "found": int(hits.sum()),
            "recall": round(float(hits.mean()), 4) if hits.size else None}
