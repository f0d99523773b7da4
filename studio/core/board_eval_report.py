"""The side-by-side report of `studio board eval` as rows (CLI and GUI) and Markdown."""
from __future__ import annotations

from studio.core.compress.report import fmt

HEADERS = ["column", "where", "mAP50-95", "mAP50", "small", "recall"]


def summary_rows(report: dict) -> list[tuple]:
    """One row per column: float on the host, int8 in the simulator, the board."""
    return [(c["name"], c["where"], fmt(c["map50_95"]), fmt(c["map50"]), fmt((c["per_size"] or {}).get("small")),
             fmt((c.get("recall") or {}).get("recall"))) for c in report["columns"]]


def class_rows(report: dict) -> tuple[list[str], list[tuple]]:
    """AP50-95 per class, a column each."""
    columns = report["columns"]
    names = list(columns[-1]["per_class"])
    return ["class"] + [c["name"] for c in columns], [
        (name, *(fmt(c["per_class"].get(name)) for c in columns)) for name in names]


def lines(report: dict) -> list[str]:
    """What else the report says, one sentence each: agreement, transfer, notes."""
    out = []
    agree = report.get("agreement")
    if agree:
        out.append(f"same detections as {agree['with']} on {agree['same_images']} of {agree['images']} images "
                   f"({agree['share']:.1%})" + (f"; differing: {', '.join(agree['differing'][:5])}"
                                                 if agree["differing"] else ""))
    raw = report.get("raw")
    if raw:
        det = raw["detections"]
        out.append(f"raw outputs of {raw['samples']} image(s) against {raw['with']} on the board's own inputs: min "
                   f"cosine {raw['min_cosine']:.4f} ({'agrees' if raw['agrees'] else 'DISAGREES'}), detections "
                   f"agree {det['agreement']:.3f}")
        for cause in raw["causes"]:
            reached = f" (re-simulated: cosine {cause['min_cosine']:.4f})" if cause["min_cosine"] is not None else ""
            out.append(f"{'likely' if cause['likely'] else 'not'} {cause['cause']}: {cause['says']}{reached}"
                       + (f"; fix: {cause['fix']}" if cause["likely"] else ""))
    for finding in report.get("doctor", []):
        out.append(f"board doctor: {'BLOCKS ' if finding['blocks'] else ''}{finding['rule']}: {finding['says']}; "
                   f"fix: {finding['fix']}")
    differ = report.get("quantization_differences")
    if differ:
        out.append(f"the deployed file's int8 grids differ from the simulator's rebuild on {len(differ)} output(s) "
                   f"({', '.join(d['output'] for d in differ)}): the file was built from another ONNX or calibration")
    t = report["transfer"]
    out.append(f"images: {t['files_sent']} file(s) sent, {t['bytes_sent'] / 2**20:.2f} MiB of "
               f"{t['image_bytes'] / 2**20:.2f} MiB (a repeat run sends none)")
    return out + list(report.get("notes", []))


def markdown(report: dict) -> str:
    s = report["settings"]
    text = [f"# {report['model']} on {report['board']}: {report['split']} split, {report['images']} images", "",
            f"conf {s['conf']}, IoU {s['iou']}, {s['max_det']} detections, {s['metric']}; on the board: "
            f"{s['backend']}, {s['workers']} worker(s).", "",
            "| " + " | ".join(HEADERS) + " |", "|---|---|" + "---:|" * (len(HEADERS) - 2)]
    text += ["| " + " | ".join(str(v) for v in row) + " |" for row in summary_rows(report)]
    heads, rows = class_rows(report)
    text += ["", "AP50-95 per class:", "", "| " + " | ".join(heads) + " |", "|---|" + "---:|" * (len(heads) - 1)]
    text += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    text += [""] + [f"- {line}" for line in lines(report)]
    return "\n".join(text) + "\n"
