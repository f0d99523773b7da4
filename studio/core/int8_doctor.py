"""`studio export --doctor`: when int8 loses accuracy, say which layers lose it and build a hybrid that keeps them.

rknn-toolkit2 measures, per compiled layer, how far its int8 output is from float when
fed float inputs (deploy/convert/doctor.py reads that). The layers that lose most are
rebuilt in float16 through the toolkit's hybrid quantization, and both models are
verified the same way (ONNX Runtime float vs the simulator on the report images), so
the report can put accuracy and size of int8 and hybrid side by side.
"""
from __future__ import annotations

from pathlib import Path

from deploy.convert.verify import compare_outputs, mark_below_resolution, write_report
from deploy.runtime.atomic import write_json_atomic
from deploy.runtime.metadata import sidecar_path
from studio.core.compress.report import fmt

DOCTOR_IMAGES = 4  # images the per-layer analysis runs on
SHOWN_LAYERS = 10  # layers listed in the report


def doctor_paths(out: Path) -> dict[str, Path]:
    """model.rknn -> model.hybrid.rknn (+ its report) and model.doctor.json / .md."""
    hybrid = out.with_name(out.stem + ".hybrid.rknn")
    return {"hybrid": hybrid, "hybrid_meta": sidecar_path(hybrid), "hybrid_report": hybrid.with_suffix(".report.json"),
            "hybrid_report_md": hybrid.with_suffix(".report.md"), "doctor": out.with_suffix(".doctor.json"),
            "doctor_md": out.with_suffix(".doctor.md")}


def _summary(report: dict, path: Path) -> dict:
    return {"rknn": path.name, "bytes": path.stat().st_size, "min_cosine": report["min_cosine"],
            "min_cosine_active": report["min_cosine_active"], "detection_agreement": report["detections"]["agreement"]}


def _markdown(doc: dict) -> str:
    lines = ["# int8 accuracy doctor", "",
             f"Per-layer analysis on {doc['analysed_images']} calibration images: cosine between each layer's "
             "float and int8 output, alone (`single`, fed float inputs) and accumulated (`entire`).", "",
             "| layer (tensor) | op | single cos | entire cos | kept in float16 |", "|---|---|---:|---:|:---:|"]
    for e in doc["worst_layers"]:
        lines.append(f"| `{e['tensor']}` | {e['op']} | {e['single_cos']:.5f} | {e['entire_cos']:.5f} | "
                     f"{'yes' if e['tensor'] in doc['float16'] else ''} |")
    lines += ["", "| model | size (KB) | min output cosine | same detections |", "|---|---:|---:|---:|"]
    for name in ("int8", "hybrid"):
        m = doc[name]
        lines.append(f"| {name} `{m['rknn']}` | {m['bytes'] / 1024:.0f} | {fmt(m['min_cosine_active'])} | "
                     f"{fmt(m['detection_agreement'], 3)} |")
    return "\n".join(lines) + "\n"


def write_doctor(found: dict, int8_report: dict, onnx_path: Path, simulate: list[Path], analysed: int, logits: bool,
                 paths: dict[str, Path], staging) -> dict:
    """The hybrid model's verification report and the doctor's report (staged); returns the doctor's summary."""
    hybrid_report = compare_outputs(onnx_path, simulate, found["simulated"], logits=logits)
    hybrid_report.update({k: int8_report[k] for k in ("imgsz", "images", "reference")},
                         rknn=str(paths["hybrid"]),
                         converted=int8_report["converted"] + " hybrid (float16 where the doctor chose)")
    mark_below_resolution(hybrid_report, found["quantization"] or [])
    write_report(hybrid_report, staging.path(paths["hybrid_report"]), staging.path(paths["hybrid_report_md"]))
    errors = found["errors"]
    doc = {"analysed_images": analysed,
           "worst_layers": sorted(errors, key=lambda e: e["single_cos"])[:SHOWN_LAYERS],
           "float16": found["chosen"], "layers_analysed": len(errors),
           "int8": _summary(int8_report, staging.path(paths["main"])),
           "hybrid": _summary(hybrid_report, staging.path(paths["hybrid"]))}
    write_json_atomic(staging.path(paths["doctor"]), doc)
    tmp = staging.path(paths["doctor_md"])
    tmp.write_text(_markdown(doc))
    return doc
