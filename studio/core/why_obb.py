"""`studio bench why-obb`: what oriented boxes buy, measured on the same images.

An OBB model and an upright model trained on the same images (one dataset written twice, with
--task obb and --task detect, so both label the same objects in the same order) are evaluated on
a held-back split. Reported for each: mAP, and recall at the working threshold (conf 0.25,
IoU 0.5: turned rectangles for the OBB model, upright boxes for the other) over all objects and
over objects turned 20-70 degrees from the image axes, where upright boxes of touching
neighbours overlap most; and recall by crowding, the largest IoU of an object's upright box with a
neighbour's. Upright NMS can only delete a real object whose crowding exceeds the NMS IoU, and
touching rectangles rarely get there: two 4:1 rectangles side by side at 45 degrees have upright
boxes at IoU 0.47, two 10:1 ones at 0.70.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deploy.errors import UserError
from deploy.runtime.rotated import corners
from studio.core.evaluate import EvalRequest, evaluate
from studio.core.evaluate_obb import obb_truth

CROWDING = (0.0, 0.1, 0.3, 0.5, 0.7, 1.0)  # bucket edges of the largest upright IoU with a neighbour


def why_obb(obb_model: Path, detect_model: Path, obb_data: Path, detect_data: Path, split: str = "test",
            imgsz: int | None = None, turned: tuple[float, float] = (20.0, 70.0), iou: float = 0.7) -> dict:
    """Both models on the split at NMS IoU `iou`; recall over all objects, over those turned within `turned`
    degrees and by crowding (imgsz: for .pt checkpoints, else the size each was trained at)."""
    obb = evaluate(EvalRequest(obb_model, obb_data, split=split, imgsz=imgsz, iou=iou))
    upright = evaluate(EvalRequest(detect_model, detect_data, split=split, imgsz=imgsz, iou=iou))
    if obb.settings["task"] != "obb" or upright.settings["task"] != "detect":
        raise UserError("give an oriented-box model first and an upright (detect) model second")
    truths, _ = obb_truth(obb_data, split, list(obb.per_class), None)
    counts = [len(f) for f in obb.found]
    if counts != [len(f) for f in upright.found]:
        raise UserError(f"{obb_data} and {detect_data} do not label the same objects in the {split} split: write "
                        "both from one seed (studio data synth --task obb, then --task detect)")
    angles = np.concatenate([np.degrees(t.rboxes[~t.difficult, 4]) % 90 for t in truths])
    selected = (angles >= turned[0]) & (angles <= turned[1])
    crowding = np.concatenate([crowding_of(t.rboxes[~t.difficult]) for t in truths])
    report = {"split": split, "nms_iou": iou, "objects": int(sum(counts)), "turned": list(turned),
              "objects_turned": int(selected.sum()), "crowding": []}
    hits = {"obb": np.concatenate(obb.found), "detect": np.concatenate(upright.found)}
    for lo, hi in zip(CROWDING[:-1], CROWDING[1:]):
        bucket = (crowding >= lo) & ((crowding < hi) | (hi == CROWDING[-1]))
        report["crowding"].append({"upright_iou": [lo, hi], "objects": int(bucket.sum()), **{
            name: round(float(h[bucket].mean()), 4) if bucket.any() else None for name, h in hits.items()}})
    for name, result in (("obb", obb), ("detect", upright)):
        found = hits[name]
        report[name] = {"model": str(result.model), "map50_95": result.map50_95, "map50": result.map50,
                        "recall": round(float(found.mean()), 4),
                        "recall_turned": round(float(found[selected].mean()), 4) if selected.any() else None}
    report["recall_gain_points"] = round(100 * (report["obb"]["recall"] - report["detect"]["recall"]), 2)
    if selected.any():
        report["recall_turned_gain_points"] = round(
            100 * (report["obb"]["recall_turned"] - report["detect"]["recall_turned"]), 2)
    return report


def crowding_of(rboxes: np.ndarray) -> np.ndarray:
    """(N,) the largest IoU of each turned rectangle's upright box with another's in the same image (0 if alone)."""
    if len(rboxes) < 2:
        return np.zeros(len(rboxes))
    quads = corners(rboxes).astype(np.float64)
    lo, hi = quads.min(1), quads.max(1)
    inter = np.prod(np.clip(np.minimum(hi[:, None], hi[None]) - np.maximum(lo[:, None], lo[None]), 0, None), -1)
    area = np.prod(hi - lo, -1)
    iou = inter / (area[:, None] + area[None] - inter)
    np.fill_diagonal(iou, 0.0)
    return iou.max(1)
