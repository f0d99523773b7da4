"""How faithful is a conversion? Run the same images through ONNX Runtime (fp32) and the RKNN
simulator, and compare every output by cosine similarity.

A cosine near 1 means the converted model computes what the float model computes;
class-score outputs are the first to suffer from a bad int8 range, so the report is
per output, with its minimum over images as well as its mean.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from deploy.convert.onnx_graph import output_task
from deploy.runtime.atomic import write_json_atomic, write_text_atomic
from deploy.runtime.decode import box_areas, iou_one_to_many
from deploy.runtime.postprocess import FrameResult, NmsConfig, postprocess_split
from deploy.runtime.postprocess_obb import postprocess_obb_split
from deploy.runtime.rotated import polygon_iou

AGREEMENT_CFG = NmsConfig(conf=0.25, iou=0.45)  # the defaults of studio predict
MATCH_IOU = 0.5
STRIDE_OF_FIRST_LEVEL = 8  # the split layout's first output is the stride-8 grid


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two tensors, flattened; 1.0 for two zero tensors, 0.0 if only one is zero."""
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(np.dot(a, b) / (na * nb))


def compare_outputs(
    onnx_path: Path,
    inputs: list[Path],
    converted: list[list[np.ndarray]],
    progress: Callable[[int, int], None] | None = None,
    logits: bool = False,
) -> dict:
    """Per output: min and mean cosine between ONNX Runtime and the converted model's outputs.

    `inputs` are the letterboxed (1, 3, H, W) uint8 RGB .npy files the converted model saw.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    task = output_task({o.name: list(o.shape) for o in session.get_outputs()})
    input_name = session.get_inputs()[0].name
    references = []
    for i, npy in enumerate(inputs):
        nchw = np.load(npy).astype(np.float32) / np.float32(255.0)
        references.append(session.run(None, {input_name: nchw}))
        if progress:
            progress(i + 1, len(inputs))
    return compare_sets(references, converted, names, logits=logits, task=task)


def compare_sets(references: list[list[np.ndarray]], converted: list[list[np.ndarray]], names: list[str],
                 logits: bool = False, task: str = "detect") -> dict:
    """Per output: min and mean cosine of each image's converted outputs against its reference outputs, and
    the detection agreement after post-processing (the input size is read off the outputs' grids)."""
    scores: list[list[float]] = [[] for _ in names]
    peaks = [0.0] * len(names)  # largest |reference value| per output
    counts = np.zeros(3, np.int64)  # reference detections, converted detections, matched
    for reference, outputs in zip(references, converted):
        outputs = [out.reshape(ref.shape) for ref, out in zip(reference, outputs)]
        for k, (ref, out) in enumerate(zip(reference, outputs)):
            scores[k].append(cosine(ref, out))
            peaks[k] = max(peaks[k], float(np.abs(ref).max()))
        imgsz = STRIDE_OF_FIRST_LEVEL * reference[0].shape[2]
        counts += detection_counts(reference, outputs, imgsz=imgsz, logits=logits, task=task)
    outputs = [
        {"name": n, "min_cosine": round(min(s), 6), "mean_cosine": round(float(np.mean(s)), 6), "reference_max": peak}
        for n, s, peak in zip(names, scores, peaks)
    ]
    return {
        "outputs": outputs,
        "min_cosine": min(o["min_cosine"] for o in outputs),
        "mean_cosine": round(float(np.mean([o["mean_cosine"] for o in outputs])), 6),
        "detections": agreement(*counts.tolist()),
    }


def match_detections(a: FrameResult, b: FrameResult, min_iou: float = MATCH_IOU) -> int:
    """How many detections of b pair with one of a (see matched)."""
    return int(matched(a, b, min_iou).sum())


def matched(a: FrameResult, b: FrameResult, min_iou: float = MATCH_IOU) -> np.ndarray:
    """(len(a),) bool: which of a pair with a detection of b. Each detection of b, in order (best scores
    first), takes the unpaired one of a of its class with the highest IoU (of the turned rectangles for
    oriented boxes), if that reaches min_iou."""
    used = np.zeros(len(a), bool)
    a64 = a.boxes.astype(np.float64)
    areas = box_areas(a64)
    for k, (box, cls) in enumerate(zip(b.boxes.astype(np.float64), b.classes)):
        free = np.flatnonzero(~used & (a.classes == cls))
        if not free.size:
            continue
        if a.rboxes is not None:
            ious = polygon_iou(b.rboxes[k : k + 1], a.rboxes[free])[0]
        else:
            ious = iou_one_to_many(box, float(box_areas(box[None])[0]), a64[free], areas[free])
        best = int(np.argmax(ious))
        used[free[best]] = ious[best] >= min_iou
    return used


def detection_counts(reference: list[np.ndarray], converted: list[np.ndarray], imgsz: int,
                     logits: bool = False, task: str = "detect") -> np.ndarray:
    """(reference detections, converted detections, matched) for one image of the split layout."""
    per_scale = 3 if task == "obb" else 2
    strides = [imgsz // o.shape[2] for o in reference[::per_scale]]
    decode = postprocess_obb_split if task == "obb" else postprocess_split
    ref = decode(reference, strides, AGREEMENT_CFG, logits=logits)[0]
    conv = decode(converted, strides, AGREEMENT_CFG, logits=logits)[0]
    return np.array([len(ref), len(conv), match_detections(ref, conv)])


def agreement(reference: int, converted: int, matched: int) -> dict:
    """Detection agreement after post-processing: matched pairs over the mean count (an F1)."""
    total = reference + converted
    return {"conf": AGREEMENT_CFG.conf, "match_iou": MATCH_IOU, "reference": reference, "converted": converted,
            "matched": matched, "agreement": round(2 * matched / total, 4) if total else 1.0}


def mark_below_resolution(report: dict, quantization: list[dict]) -> None:
    """Flag int8 outputs whose reference values all round to the zero point.

    Such an output (typically the class scores of a pyramid level the model never uses)
    has cosine 0 against the float model, yet changes no detection above one int8 step.
    The report says so per output, and gives the minimum over the other outputs too.
    """
    steps = {q["name"]: q["scale"] for q in quantization if q.get("dtype") == "int8"}
    for out in report["outputs"]:
        step = steps.get(out["name"])
        out["int8_step"] = step
        out["below_int8_step"] = step is not None and out["reference_max"] < step / 2
    active = [o["min_cosine"] for o in report["outputs"] if not o["below_int8_step"]]
    report["min_cosine_active"] = min(active) if active else None


def report_markdown(report: dict) -> str:
    """A human-readable summary of a verification report."""
    lines = [
        f"# Conversion report: {Path(report['rknn']).name}",
        "",
        f"Reference: {report['reference']}  ",
        f"Converted: {report['converted']}  ",
        f"Images: {len(report['images'])}, letterboxed to {report['imgsz']}x{report['imgsz']}",
        "",
        "| output | min cosine | mean cosine | largest float value | int8 step |",
        "|---|---|---|---|---|",
    ]
    for o in report["outputs"]:
        step = f"{o['int8_step']:.3g}" if o.get("int8_step") else "-"
        flag = " (below one step)" if o.get("below_int8_step") else ""
        lines.append(f"| {o['name']} | {o['min_cosine']:.4f} | {o['mean_cosine']:.4f} | "
                     f"{o['reference_max']:.3g}{flag} | {step} |")
    lines += ["", f"Minimum over all outputs: **{report['min_cosine']:.4f}**"]
    flagged = [o["name"] for o in report["outputs"] if o.get("below_int8_step")]
    if flagged:
        lines += [
            f"Minimum over outputs with signal: **{report['min_cosine_active']:.4f}**",
            "",
            f"{', '.join(flagged)}: every float value is below half an int8 step, so the NPU outputs "
            "its zero point and the cosine is 0. These outputs never reach a confidence threshold "
            "above one step, so detections are unaffected; a model trained longer, or on objects "
            "of every size, uses all pyramid levels.",
        ]
    det = report.get("detections")
    if det:
        lines += ["", f"Detections after post-processing (conf {det['conf']}, matched at IoU >= {det['match_iou']}, "
                      f"same class): reference {det['reference']}, converted {det['converted']}, matched "
                      f"{det['matched']}: agreement **{det['agreement']:.3f}**"]
    lines.append("")
    return "\n".join(lines)


def write_report(report: dict, json_path: Path, md_path: Path) -> None:
    """Write the report as JSON and Markdown, each atomically."""
    write_json_atomic(json_path, report)
    write_text_atomic(md_path, report_markdown(report))
