"""Oriented-box mAP as ultralytics' OBB validation defines it, for `studio eval` on OBB models.

Predictions are matched to labels by probabilistic IoU (probiou) at the ten thresholds
0.50:0.95, greedily in confidence order, and AP per class comes from ultralytics' own
`ap_per_class` (101-point interpolation): the same figures as `yolo val` of an OBB model.
Labels marked difficult (a DOTA import's difficult.json) are left out, and so is a
prediction that covers one (probiou >= 0.5) without matching another label: neither counts.
Size buckets use the COCO areas on the turned rectangle's own area (w * h): a bucket scores
its labels, its matched predictions and the unmatched predictions of its size.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy.errors import UserError
from deploy.runtime.rotated import from_polygon, probiou
from studio.core.data.formats import (
    image_size,
    images_in,
    label_path,
    read_obb_labels,
    read_yaml,
    split_dirs,
    yaml_names,
)

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
SIZE_BUCKETS = {"small": (0, 32**2), "medium": (32**2, 96**2), "large": (96**2, np.inf)}


@dataclass
class Truth:
    """The labels of one image in pixels."""

    rboxes: np.ndarray  # (M, 5) cx, cy, w, h, angle
    classes: np.ndarray  # (M,) int
    difficult: np.ndarray  # (M,) bool


def eval_split(data: Path, split: str, names_expected: list[str], limit: int | None) -> tuple[list[Path], dict]:
    """The images of a split to evaluate and the difficult marks (difficult.json), or one line saying what is
    wrong (other classes than the model's, no such split, no images)."""
    cfg = read_yaml(data)
    names = yaml_names(cfg, data)
    if names != names_expected:
        raise UserError(f"the model's classes {names_expected} differ from the dataset's {names}")
    dirs = split_dirs(cfg, data)
    if split not in dirs:
        raise UserError(f"{data}: has no '{split}' split (it has: {', '.join(dirs)})")
    images = images_in(dirs[split])[:limit]
    if not images:
        raise UserError(f"{dirs[split]}: no images to evaluate")
    marks = data.parent / "difficult.json"
    return images, json.loads(marks.read_text()) if marks.is_file() else {}


def obb_truth(data: Path, split: str, names: list[str], limit: int | None) -> tuple[list[Truth], list[Path]]:
    """The oriented labels of a split (difficult ones marked) and its images."""
    images, difficult = eval_split(data, split, names, limit)
    truths = []
    for path in images:
        w, h = image_size(path)
        lbl = label_path(path)
        rows = read_obb_labels(lbl, len(names)) if lbl.is_file() else []
        hard = set(difficult.get(f"{split}/{path.stem}", []))
        rboxes = np.array([from_polygon(np.reshape(q, (4, 2)) * [w, h]) for _, q in rows], np.float32).reshape(-1, 5)
        truths.append(Truth(rboxes, np.array([c for c, _ in rows], np.int64),
                            np.array([k in hard for k in range(len(rows))], bool)))
    if not any(len(t.classes) for t in truths):
        raise UserError(f"{data}: the {split} split has no labelled objects, so there is no mAP to compute")
    return truths, images


@dataclass
class _Matched:
    """Every kept prediction of the split with its correctness per threshold, and every label counted."""

    correct: np.ndarray  # (N, 10) bool
    scores: np.ndarray  # (N,)
    classes: np.ndarray  # (N,)
    pred_area: np.ndarray  # (N,)
    matched_area: np.ndarray  # (N,) area of the label matched at IoU 0.5 (nan: none)
    label_classes: np.ndarray  # (M,)
    label_area: np.ndarray  # (M,)


def match_split(truths: list[Truth], predictions: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> _Matched:
    """Match each image's predictions (rboxes, scores, classes) to its labels as ultralytics' validator does."""
    import torch
    from ultralytics.engine.validator import BaseValidator

    matcher = type("Matcher", (), {"iouv": torch.from_numpy(IOU_THRESHOLDS)})()
    parts = []
    for truth, (rboxes, scores, classes) in zip(truths, predictions):
        order = np.argsort(-scores, kind="stable")
        rboxes, scores, classes = rboxes[order], scores[order], classes[order]
        normal = ~truth.difficult
        iou = probiou(truth.rboxes[normal], rboxes) if len(rboxes) else np.zeros((normal.sum(), 0), np.float32)
        correct = BaseValidator.match_predictions(matcher, torch.from_numpy(classes), torch.from_numpy(
            truth.classes[normal]), torch.from_numpy(iou)).numpy()
        same = truth.classes[normal][:, None] == classes[None]
        best = np.where(same, iou, -1).argmax(0) if normal.any() else np.zeros(len(scores), int)
        matched_area = np.where(correct[:, 0], truth.rboxes[normal][best, 2] * truth.rboxes[normal][best, 3]
                                if normal.any() else np.nan, np.nan)
        keep = np.ones(len(scores), bool)
        if truth.difficult.any() and len(scores):  # covering a difficult label without matching a normal one
            covers = (probiou(truth.rboxes[truth.difficult], rboxes) >= 0.5).any(0)
            keep = ~covers | correct[:, 0]
        parts.append((correct[keep], scores[keep], classes[keep], (rboxes[:, 2] * rboxes[:, 3])[keep],
                      matched_area[keep], truth.classes[normal], (truth.rboxes[normal, 2] * truth.rboxes[normal, 3])))
    cat = [np.concatenate(p) for p in zip(*parts)]
    return _Matched(cat[0].reshape(-1, len(IOU_THRESHOLDS)), *cat[1:])


def _ap(correct, scores, classes, label_classes) -> np.ndarray | None:
    """(classes present, 10) AP from ultralytics' ap_per_class, or None without labels."""
    from ultralytics.utils.metrics import ap_per_class

    if not len(label_classes):
        return None
    if not len(scores):
        return np.zeros((len(np.unique(label_classes)), len(IOU_THRESHOLDS)))
    return ap_per_class(correct, scores, classes, label_classes)[5]


def obb_metrics(matched: _Matched, names: list[str]) -> dict:
    """mAP50-95, mAP50, AP50-95 per class and per size bucket."""
    m = matched
    ap = _ap(m.correct, m.scores, m.classes, m.label_classes)
    present = np.unique(m.label_classes)
    per_class = {n: (round(float(ap[list(present).index(k)].mean()), 4) if k in present else None)
                 for k, n in enumerate(names)}
    per_size = {}
    for bucket, (lo, hi) in SIZE_BUCKETS.items():
        labels = (m.label_area >= lo) & (m.label_area < hi)
        own = np.where(np.isnan(m.matched_area), (m.pred_area >= lo) & (m.pred_area < hi),
                       (m.matched_area >= lo) & (m.matched_area < hi))
        part = _ap(m.correct[own], m.scores[own], m.classes[own], m.label_classes[labels])
        per_size[bucket] = None if part is None else round(float(part.mean()), 4)
    return {"map50_95": round(float(ap.mean()), 4), "map50": round(float(ap[:, 0].mean()), 4),
            "per_class": per_class, "per_size": per_size}
