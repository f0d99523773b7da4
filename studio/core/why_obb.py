"""`studio bench why-obb`: what oriented boxes buy, measured on the same images.

An OBB model and an upright model trained on the same images (one dataset written twice, with
--task obb and --task detect, so both label the same objects in the same order) are evaluated on
a held-back split. Reported for each: mAP, and recall at the working threshold (conf 0.25,
IoU 0.5: turned rectangles for the OBB model, upright boxes for the other) over all objects and
over objects turned 20-70 degrees from the image axes, where upright boxes of touching
neighbours overlap most and upright NMS deletes real objects.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from deploy.errors import UserError
from studio.core.evaluate import EvalRequest, evaluate
from studio.core.evaluate_obb import obb_truth


def why_obb(obb_model: Path, detect_model: Path, obb_data: Path, detect_data: Path, split: str = "test",
            imgsz: int | None = None, turned: tuple[float, float] = (20.0, 70.0)) -> dict:
    """Both models on the split; recall over all objects and over those turned within `turned` degrees
    (imgsz: for .pt checkpoints, else the size each was trained at)."""
    obb = evaluate(EvalRequest(obb_model, obb_data, split=split, imgsz=imgsz))
    upright = evaluate(EvalRequest(detect_model, detect_data, split=split, imgsz=imgsz))
    if obb.settings["task"] != "obb" or upright.settings["task"] != "detect":
        raise UserError("give an oriented-box model first and an upright (detect) model second")
    truths, _ = obb_truth(obb_data, split, list(obb.per_class), None)
    counts = [len(f) for f in obb.found]
    if counts != [len(f) for f in upright.found]:
        raise UserError(f"{obb_data} and {detect_data} do not label the same objects in the {split} split: write "
                        "both from one seed (studio data synth --task obb, then --task detect)")
    angles = np.concatenate([np.degrees(t.rboxes[~t.difficult, 4]) % 90 for t in truths])
    selected = (angles >= turned[0]) & (angles <= turned[1])
    report = {"split": split, "objects": int(sum(counts)), "turned": list(turned),
              "objects_turned": int(selected.sum())}
    for name, result in (("obb", obb), ("detect", upright)):
        hits = np.concatenate(result.found)
        report[name] = {"model": str(result.model), "map50_95": result.map50_95, "map50": result.map50,
                        "recall": round(float(hits.mean()), 4),
                        "recall_turned": round(float(hits[selected].mean()), 4) if selected.any() else None}
    report["recall_gain_points"] = round(100 * (report["obb"]["recall"] - report["detect"]["recall"]), 2)
    if selected.any():
        report["recall_turned_gain_points"] = round(
            100 * (report["obb"]["recall_turned"] - report["detect"]["recall_turned"]), 2)
    return report
